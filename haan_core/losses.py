"""The Adaptive Weighted Loss (AWL, Section 3.4) and the triplet loss used as TRI.

AWL has two stages that are kept apart here, as in metric-learning libraries that
separate *mining* (which pairs take part) from *weighting* (how much each one counts):

* stage 1, :func:`mine_pairs`: eqs. 16-17 choose, for every anchor, the informative
  positives S+ and negatives S- with margin rho;
* stage 2, :func:`pair_weights`: eqs. 18-22 weight the chosen pairs by a softmax over
  each set, so hard positives (low similarity) and hard negatives (high similarity)
  count most.

:func:`awl` is eq. 23 and :func:`awl_grad` its closed-form gradient, eq. 24.

Rows of a similarity matrix are images and columns are texts. The image-anchor term
walks over rows (candidates are texts), the text-anchor term over columns.
"""
from __future__ import annotations

import torch

from .errors import HAANInputError, check_labels, check_nonempty, check_tensor

DIRECTIONS = ("both", "i2t", "t2i")


def _check_pair_input(sim, img_labels, txt_labels, directions):
    check_tensor(sim, "sim", 2)
    check_nonempty(sim, "sim", 0)
    check_nonempty(sim, "sim", 1)
    check_labels(img_labels, "img_labels", sim.shape[0])
    check_labels(txt_labels, "txt_labels", sim.shape[1])
    if directions not in DIRECTIONS:
        raise HAANInputError(f"directions must be one of {DIRECTIONS}, got {directions!r}")


def _anchor_views(sim, img_labels, txt_labels, directions):
    """(similarity, positive-mask) per anchor direction: rows are anchors in each view."""
    img_labels = img_labels.to(sim.device)
    txt_labels = txt_labels.to(sim.device)
    pos = img_labels[:, None] == txt_labels[None, :]
    views = []
    if directions in ("both", "i2t"):
        views.append((sim, pos))            # image anchors, text candidates
    if directions in ("both", "t2i"):
        views.append((sim.T, pos.T))        # text anchors, image candidates
    return views


def mine_pairs(sim: torch.Tensor, pos: torch.Tensor, rho: float = 0.6):
    """Stage 1, eqs. 16-17, for anchors on the rows of ``sim``.

    A positive j of anchor i is kept when  L_ij < max_{k negative} L_ik + rho  (eq. 16);
    a negative j is kept when              L_ij > min_{k positive} L_ik - rho  (eq. 17).
    An anchor with no negative keeps no positive (the max over an empty set is -inf),
    and one with no positive keeps no negative (the min is +inf).
    Returns boolean masks (S+, S-) shaped like ``sim``. Mining is a selection: it
    reads ``sim`` without gradient.
    """
    L = sim.detach()
    neg = ~pos
    hardest_neg = L.masked_fill(~neg, float("-inf")).amax(dim=1, keepdim=True)
    easiest_pos = L.masked_fill(~pos, float("inf")).amin(dim=1, keepdim=True)
    keep_pos = pos & (L < hardest_neg + rho)
    keep_neg = neg & (L > easiest_pos - rho)
    return keep_pos, keep_neg


def signed_margin(sim: torch.Tensor, pos_set: torch.Tensor) -> torch.Tensor:
    """The exponent of eqs. 20-22: 1(s in S+) * (1 - L), i.e. (1 - L) for positives and
    (L - 1) for everything else."""
    return torch.where(pos_set, 1 - sim, sim - 1)


def pair_weights(sim: torch.Tensor, keep_pos: torch.Tensor, keep_neg: torch.Tensor):
    """Stage 2, eqs. 18-19 (unified as eq. 22): softmax weights within S+ and within S-.

    W+_ij = exp(1 - L_ij) / sum_{k in S+_i} exp(1 - L_ik)     (eq. 18)
    W-_ij = exp(L_ij - 1) / sum_{k in S-_i} exp(L_ik - 1)     (eq. 19)
    Entries outside the sets are 0; the weights of a non-empty set sum to 1.
    """
    z = signed_margin(sim, keep_pos)
    w_pos = _masked_softmax(z, keep_pos)
    w_neg = _masked_softmax(z, keep_neg)
    return w_pos, w_neg


def _masked_softmax(z, mask):
    z = z.masked_fill(~mask, float("-inf"))
    has = mask.any(dim=1, keepdim=True)
    z = torch.where(has, z, torch.zeros_like(z))     # empty rows: finite, then zeroed
    return torch.softmax(z, dim=1) * has


def _masked_logsumexp(z, mask):
    """log sum_{mask} exp(z) per row; 0 for a row with an empty mask (adds nothing)."""
    has = mask.any(dim=1)
    z = torch.where(mask, z, torch.full_like(z, float("-inf")))
    z = torch.where(has[:, None], z, torch.zeros_like(z))  # keep gradients finite
    return torch.logsumexp(z, dim=1) * has


def _masked_mean(z, mask):
    count = mask.sum(dim=1)
    return (z * mask).sum(dim=1) / count.clamp_min(1)


def _awl_rows(L, pos, rho, mining, weighting):
    """Eq. 23 for the anchors on the rows of L: (1/B) sum_i {lse_{S+} + lse_{S-}}."""
    if mining:
        keep_pos, keep_neg = mine_pairs(L, pos, rho)
    else:
        keep_pos, keep_neg = pos, ~pos
    z = signed_margin(L, keep_pos)
    if weighting:
        per_anchor = _masked_logsumexp(z, keep_pos) + _masked_logsumexp(z, keep_neg)
    else:  # stage 2 off: every chosen pair counts the same
        per_anchor = _masked_mean(z, keep_pos) + _masked_mean(z, keep_neg)
    return per_anchor.sum() / L.shape[0]


def awl(sim: torch.Tensor, img_labels: torch.Tensor, txt_labels: torch.Tensor,
        rho: float = 0.6, mining: bool = True, weighting: bool = True,
        directions: str = "both") -> torch.Tensor:
    """Eq. 23, the adaptive weighted loss of a (B, B) image-text similarity matrix.

    ``mining`` switches stage 1 (eqs. 16-17; off keeps every positive and negative);
    ``weighting`` switches stage 2 (eqs. 18-22; off replaces each log-sum-exp with the
    plain mean over its set). ``directions="both"`` adds the image-anchor term (rows)
    and the text-anchor term (columns), each (1/B) * sum over its anchors.
    """
    _check_pair_input(sim, img_labels, txt_labels, directions)
    return sum(_awl_rows(L, pos, rho, mining, weighting)
               for L, pos in _anchor_views(sim, img_labels, txt_labels, directions))


def awl_grad(sim: torch.Tensor, img_labels: torch.Tensor, txt_labels: torch.Tensor,
             rho: float = 0.6, mining: bool = True, weighting: bool = True,
             directions: str = "both") -> torch.Tensor:
    """Eq. 24, the closed-form gradient d tau / d L_ij of :func:`awl`.

    For an anchor i:  -(1/B) W+_ij  if j in S+_i,  +(1/B) W-_ij  if j in S-_i,  else 0,
    with W the weights of eqs. 18-19 (or 1/|S| each when stage 2 is off). The text-anchor
    term contributes the same on the transposed matrix.
    """
    _check_pair_input(sim, img_labels, txt_labels, directions)
    grad = torch.zeros_like(sim)
    for k, (L, pos) in enumerate(_anchor_views(sim.detach(), img_labels, txt_labels,
                                               directions)):
        if mining:
            keep_pos, keep_neg = mine_pairs(L, pos, rho)
        else:
            keep_pos, keep_neg = pos, ~pos
        if weighting:
            w_pos, w_neg = pair_weights(L, keep_pos, keep_neg)
        else:
            w_pos = keep_pos.to(L.dtype) / keep_pos.sum(1, keepdim=True).clamp_min(1)
            w_neg = keep_neg.to(L.dtype) / keep_neg.sum(1, keepdim=True).clamp_min(1)
        g = (w_neg - w_pos) / L.shape[0]
        transposed = directions == "t2i" or k == 1
        grad = grad + (g.T if transposed else g)
    return grad


def triplet(sim: torch.Tensor, img_labels: torch.Tensor, txt_labels: torch.Tensor,
            margin: float = 0.2, hardest: bool = True, directions: str = "both"
            ) -> torch.Tensor:
    """Hinge triplet loss [12], the TRI of the ablation (Table 5).

    For each anchor i, each positive j (same class) and each negative k:
    [margin - L_ij + L_ik]_+ ; summed over negatives, or only the hardest negative when
    ``hardest`` (as in VSE++). Summed over positives and averaged over the B anchors,
    per direction. Class labels define positives, as they do for AWL.
    """
    _check_pair_input(sim, img_labels, txt_labels, directions)
    total = sim.new_zeros(())
    for L, pos in _anchor_views(sim, img_labels, txt_labels, directions):
        # hinge[i, j, k] = margin - L_ij + L_ik over (positive j, negative k)
        hinge = (margin - L[:, :, None] + L[:, None, :]).clamp_min(0)
        valid = pos[:, :, None] & ~pos[:, None, :]
        hinge = hinge * valid
        per_pos = hinge.amax(dim=2) if hardest else hinge.sum(dim=2)
        total = total + per_pos.sum() / L.shape[0]
    return total
