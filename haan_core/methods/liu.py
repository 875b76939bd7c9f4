"""Liu et al., "Cross-media retrieval via fusing multi-modality and multi-grained data"
(2023, from HAAN's lab): the multi-margin triplet loss of Framework II (eqs. 14-18).

A triplet's margin is not one constant: it depends on how far apart the anchor and the
negative already are. The distances of the batch are normalised to [0, 1] (eq. 14), the
interval is cut at the breaks e_1 < ... < e_{w-1} into w sub-ranges, and a negative whose
normalised distance falls in the m-th sub-range gets the margin a_m (eq. 15).
"""
from __future__ import annotations

import math

import torch

from ..errors import HAANInputError, check_labels, check_nonempty, check_tensor


def _check_bands(margins, breaks) -> tuple[list[float], list[float]]:
    try:
        margins = [float(a) for a in margins]
        breaks = [float(e) for e in breaks]
    except (TypeError, ValueError):
        raise HAANInputError(f"margins and breaks must be sequences of numbers, got "
                             f"margins={margins!r}, breaks={breaks!r}") from None
    if not margins:
        raise HAANInputError("margins is empty: give at least one margin, e.g. (0.2,)")
    if not all(math.isfinite(x) for x in margins + breaks):
        raise HAANInputError(f"margins and breaks must be finite, got {margins}, {breaks}")
    if len(breaks) != len(margins) - 1:
        raise HAANInputError(f"{len(margins)} margins need {len(margins) - 1} breaks (one "
                             f"fewer, cutting [0, 1] into as many sub-ranges), got "
                             f"{len(breaks)}")
    if any(b <= a for a, b in zip(margins, margins[1:])):
        raise HAANInputError(f"margins must be ascending (a_1 < a_2 < ...), got {margins}")
    if any(b <= a for a, b in zip(breaks, breaks[1:])):
        raise HAANInputError(f"breaks must be ascending (e_1 < e_2 < ...), got {breaks}")
    if breaks and not (0 < breaks[0] and breaks[-1] < 1):
        raise HAANInputError(f"breaks must lie strictly inside (0, 1), got {breaks}")
    return margins, breaks


def margin_of(dis_norm: torch.Tensor, margins, breaks) -> torch.Tensor:
    """Eq. 15: a_m for each normalised distance, where the sub-ranges are [0, e_1],
    (e_1, e_2], ..., (e_{w-1}, 1]: m - 1 is the number of breaks below the distance."""
    margins, breaks = _check_bands(margins, breaks)
    e = torch.tensor(breaks, dtype=dis_norm.dtype, device=dis_norm.device)
    band = torch.searchsorted(e, dis_norm.contiguous(), right=False)   # breaks < x
    return torch.tensor(margins, dtype=dis_norm.dtype, device=dis_norm.device)[band]


def multi_margin_triplet(img: torch.Tensor, txt: torch.Tensor, img_labels: torch.Tensor,
                         txt_labels: torch.Tensor, margins=(7.0, 7.5, 8.0),
                         breaks=(1 / 3, 2 / 3)) -> torch.Tensor:
    """Liu et al. eqs. 14-18: img (B, d), txt (B, d) and their labels -> a scalar.

    D[p, q] is the squared Euclidean distance of img[p] and txt[q] (all pairs of the
    batch); dis_norm = (D - min D) / (max D - min D) over the whole matrix (eq. 14; all
    zeros when max = min). Image anchor a, positive text j (a's class), negative text k:
    max(0, a_m + D[a, j] - D[a, k]) with a_m from dis_norm[a, k] (eq. 17). Text anchor a,
    positive image j, negative image k: max(0, a_m + D[j, a] - D[k, a]) with a_m from
    dis_norm[k, a] (eq. 18). The sum of both kinds of term over all triplets is divided
    by N, the number of image-anchor triplets (eq. 16); 0 when N = 0.

    Defaults: the margin-set with the best Corel 5K mAP in the paper's Section 5.4.2,
    {7, 7.5, 8}; the paper gives no values for the breaks e_1, e_2, so they cut [0, 1] in
    equal thirds (ambiguity log, entry 34). Margins are strictly ascending (Definition 1).
    """
    margins, breaks = _check_bands(margins, breaks)
    check_tensor(img, "img", 2)
    check_tensor(txt, "txt", 2)
    check_nonempty(img, "img")
    if img.shape != txt.shape:
        raise HAANInputError(f"img and txt must both be (B, d) with the same B and d (pairs "
                             f"of a batch), got {tuple(img.shape)} and {tuple(txt.shape)}")
    B = img.shape[0]
    img_labels = check_labels(img_labels, "img_labels", B).to(img.device)
    txt_labels = check_labels(txt_labels, "txt_labels", B).to(img.device)
    D = torch.cdist(img, txt).pow(2)                       # (B, B), D[p, q]
    with torch.no_grad():                                  # eq. 14: only picks margins
        lo, hi = D.min(), D.max()
        dis_norm = (D - lo) / (hi - lo) if hi > lo else torch.zeros_like(D)
        margin = margin_of(dis_norm, margins, breaks)      # eq. 15, margin[p, q]
    same = img_labels[:, None] == txt_labels[None, :]      # same[p, q]: img p, text q

    def terms(Da, margin_a, pos, neg):
        # Da[a, x] = distance of anchor a to candidate x; (anchor, positive j, negative k)
        t = torch.relu(margin_a[:, None, :] + Da[:, :, None] - Da[:, None, :])
        return (t * (pos[:, :, None] & neg[:, None, :])).sum()

    img_terms = terms(D, margin, same, ~same)              # eq. 17, rows are image anchors
    txt_terms = terms(D.T, margin.T, same.T, ~same.T)      # eq. 18, rows are text anchors
    n = (same.sum(1) * (~same).sum(1)).sum()               # image-anchor triplets
    if n == 0:
        return (img_terms + txt_terms) * 0.0
    return (img_terms + txt_terms) / n
