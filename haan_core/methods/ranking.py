"""The class-aware bidirectional hinge ranking loss that SHAN (eq. 17) and TSHSR (eq. 9)
both take from VSE++, shared by :func:`haan_core.methods.shan.shan_loss` and
:func:`haan_core.methods.tshsr.tshsr_loss` (each validates its own arguments).

It is the hinge of HAAN's TRI (:func:`haan_core.losses.triplet`); only the normalisation
differs: here the sum runs over both directions and is divided by the number of positive
pairs, there it is divided by the number of anchors of each direction.
"""
from __future__ import annotations

import torch


def hinge_sum(sim: torch.Tensor, pos: torch.Tensor, margin: float, hardest: bool,
              directions: str) -> torch.Tensor:
    """Sum over positive pairs (i, j) (``pos``: same class) of [m - S_ij + S_neg]_+ per
    direction: image anchors on the rows ("i2t"), text anchors on the columns ("t2i"), or
    both. S_neg is the hardest other-class item of the anchor when ``hardest``, else the
    hinge is summed over all of them. A same-class pair is never a negative; an anchor
    without negatives adds 0."""
    views = []
    if directions in ("both", "i2t"):
        views.append((sim, pos))             # image anchors on the rows, texts as candidates
    if directions in ("both", "t2i"):
        views.append((sim.T, pos.T))         # text anchors on the rows, images as candidates
    total = sim.new_zeros(())
    for L, P in views:
        neg = ~P
        if hardest:
            has_neg = neg.any(dim=1, keepdim=True)
            hardest_neg = L.masked_fill(P, float("-inf")).amax(dim=1, keepdim=True)
            hardest_neg = torch.where(has_neg, hardest_neg, torch.zeros_like(hardest_neg))
            hinge = (margin - L + hardest_neg).clamp_min(0) * (P & has_neg)
        else:
            # hinge[a, j, k] over (positive j, negative k) of anchor a
            hinge = (margin - L[:, :, None] + L[:, None, :]).clamp_min(0)
            hinge = hinge * (P[:, :, None] & neg[:, None, :])
        total = total + hinge.sum()
    return total
