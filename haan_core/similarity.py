"""GCM and LCM: the two image-text similarity modules of Section 3.3.

``gcm`` is eq. 10: the cosine similarity of every global image vector with every global
text vector.

``lcm`` is eqs. 11-15 for all N x M image-text pairs at once. Written naively, eq. 13
builds a text-context vector kappa for every (image, text, patch) triple, an
(N, M, alpha, d) tensor: 3.3 GB for 300 x 300 pairs at d = 1024. We never build it.
Eq. 14 only needs two scalars of kappa, and both follow from quantities of size
(N, M, alpha, beta):

    n . kappa   = sum_y a_xy (n . m_y)                     (a = attention of eq. 13)
    |kappa|^2   = sum_y sum_y' a_xy a_xy' (m_y . m_y')     (a word Gram matrix)

and the images are processed in chunks, so memory stays bounded for any N x M.

Two more facts make ``lcm`` cheap (the same numbers, less work):

- eq. 14 is a cosine, so it does not change when kappa is multiplied by a positive number.
  The softmax of eq. 13 divides every weight of one kappa by the same sum, so that sum
  cancels: ``lcm`` uses the unnormalised weights exp(lam U_bar - c), with c = lam or, for
  |lam| > 60, the largest lam U_bar among the text's real words (as softmax subtracts);
- n . m_y = |n| |m_y| U_xy (eq. 11), so one product of unit vectors, laid out as
  (text, word, image, patch), gives U and the numerator, and a batched product with each
  text's cosine Gram matrix gives |kappa|^2, with no copy of the large tensor.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .errors import HAANInputError, check_nonempty, check_tensor

EPS = 1e-8  # guards every division by a norm; see the ambiguity log ("eps")


def gcm(img: torch.Tensor, txt: torch.Tensor) -> torch.Tensor:
    """Eq. 10. Cosine similarity L^C(p, q) of global vectors: (N, d), (M, d) -> (N, M)."""
    check_tensor(img, "img", 2)
    check_tensor(txt, "txt", 2)
    check_nonempty(img, "img")
    check_nonempty(txt, "txt")
    if img.shape[1] != txt.shape[1]:
        raise HAANInputError(
            f"img and txt must share the embedding width: got {img.shape[1]} and {txt.shape[1]}")
    return F.normalize(img, dim=1, eps=EPS) @ F.normalize(txt, dim=1, eps=EPS).T


def word_mask(lengths: torch.Tensor, beta: int) -> torch.Tensor:
    """(M, beta) boolean mask, True at real words (position < length)."""
    return torch.arange(beta, device=lengths.device)[None, :] < lengths[:, None]


def _check_local(patches, words, lengths):
    check_tensor(patches, "patches", 3)
    check_tensor(words, "words", 3)
    check_nonempty(patches, "patches")
    check_nonempty(words, "words")
    if patches.shape[2] != words.shape[2]:
        raise HAANInputError("patches and words must share the embedding width: got "
                             f"{patches.shape[2]} and {words.shape[2]}")
    if not isinstance(lengths, torch.Tensor) or lengths.dim() != 1 \
            or lengths.shape[0] != words.shape[0]:
        raise HAANInputError(
            f"lengths must be a 1-d tensor with one entry per text ({words.shape[0]}), "
            f"got {getattr(lengths, 'shape', type(lengths).__name__)}")
    if lengths.is_floating_point() or lengths.is_complex():
        raise HAANInputError(f"lengths must hold integer word counts, got dtype {lengths.dtype}")
    lengths = lengths.to(device=words.device, dtype=torch.long)
    if (lengths < 1).any() or (lengths > words.shape[1]).any():
        raise HAANInputError(
            f"every length must lie in 1..{words.shape[1]} (the padded text length); "
            f"got min {int(lengths.min())}, max {int(lengths.max())}")
    return lengths


def lcm_attention(patches: torch.Tensor, words: torch.Tensor, lengths: torch.Tensor,
                  lam: float = 9.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Eqs. 11-13 for all pairs: cosines U (eq. 11) and attention weights (eq. 13).

    patches (N, alpha, d), words (M, beta, d) -> U, A, both (N, M, alpha, beta).
    A[p, q, x, y] is the weight of word y in the text-context vector of patch x;
    it is exactly 0 at padded words. Use for small N x M (drawing attention maps);
    :func:`lcm` computes the similarity in bounded memory.
    """
    lengths = _check_local(patches, words, lengths)
    dots = torch.einsum("nxd,myd->nmxy", patches, words)
    return _attention(dots, patches, words, lengths, lam)


def _attention(dots, patches, words, lengths, lam):
    mask = word_mask(lengths, words.shape[1])[None, :, None, :]      # (1, M, 1, beta)
    p_norm = patches.norm(dim=2)[:, None, :, None]                   # (n, 1, alpha, 1)
    w_norm = words.norm(dim=2)[None, :, None, :]                     # (1, M, 1, beta)
    U = dots / (p_norm * w_norm).clamp_min(EPS)                      # eq. 11
    r = torch.relu(U)
    U_bar = r / r.norm(dim=2, keepdim=True).clamp_min(EPS)          # eq. 12: over patches x
    logits = (lam * U_bar).masked_fill(~mask, float("-inf"))
    A = torch.softmax(logits, dim=3)                                 # eq. 13 weights, over words y
    return U, A


def lcm(patches: torch.Tensor, words: torch.Tensor, lengths: torch.Tensor,
        lam: float = 9.0, chunk_size: int | None = None,
        max_chunk_elements: int = 1 << 20) -> torch.Tensor:
    """Eqs. 11-15. Local similarity L^F(p, q) of every image with every text.

    patches (N, alpha, d), words (M, beta, d), lengths (M,) -> (N, M).
    Words at positions >= lengths[q] are padding and do not influence the result.
    Images are processed ``chunk_size`` at a time (by default as many as keep one
    (M, beta, chunk, alpha) tensor under ``max_chunk_elements``).
    """
    lengths = _check_local(patches, words, lengths)
    N, alpha, d = patches.shape
    M, beta, _ = words.shape
    if chunk_size is None:
        chunk_size = max(1, max_chunk_elements // max(1, M * alpha * beta))
    p_norm = patches.norm(dim=2)                                     # |n_x|      (N, alpha)
    w_norm = words.norm(dim=2)                                       # |m_y|      (M, beta)
    p_unit = patches / p_norm.clamp_min(EPS)[..., None]
    w_unit = words / w_norm.clamp_min(EPS)[..., None]
    gram = w_unit @ w_unit.transpose(1, 2)                           # cos(m_y, m_z) (M, beta, beta)
    real = word_mask(lengths, beta)[:, :, None, None]                # (M, beta, 1, 1)
    # log |m_y| (0 at padding becomes -inf, so exp gives weight 0); a zero word has no
    # direction (w_unit = 0), so the floor EPS under its norm changes nothing
    log_scale = torch.where(real, w_norm.clamp_min(EPS).log()[:, :, None, None], -torch.inf)
    w_flat = w_unit.reshape(M * beta, d)
    out = []
    for start in range(0, N, chunk_size):
        P = p_unit[start:start + chunk_size]
        n = P.shape[0]
        U = (w_flat @ P.reshape(n * alpha, d).T).view(M, beta, n, alpha)  # eq. 11
        r = torch.relu(U)
        inv = 1 / r.norm(dim=3, keepdim=True).clamp_min(EPS)          # eq. 12: U_bar = r * inv
        # lam U_bar + log|m_y| (-inf at padding), shifted as softmax does by its largest
        # over the text's real words: the largest weight is 1, so exp neither overflows
        # nor leaves every weight so small that |kappa| meets the EPS floor of eq. 14.
        # The shift multiplies every weight of a (text, image, patch) by one factor, which
        # eq. 14's cosine cancels: its gradient is 0, so it is taken out of autograd
        # (differentiating amax would cost a pass over the whole tensor for nothing)
        logits = torch.addcmul(log_scale, r, lam * inv)
        logits = logits - logits.detach().amax(dim=1, keepdim=True)
        w = torch.exp(logits)  # eq. 13 times |m_y|, up to one positive factor per (text,
        #                        image, patch); 0 at padding
        num = (w * U).sum(dim=1)                       # n_x . kappa_x / |n_x| (same factor)
        kappa_sq = (torch.bmm(gram, w.view(M, beta, n * alpha)).view(M, beta, n, alpha)
                    * w).sum(dim=1)                                  # |kappa_x|^2 (factor^2)
        pn = p_norm[start:start + chunk_size]
        rel = pn * num / (pn * kappa_sq.clamp_min(0).sqrt()).clamp_min(EPS)  # eq. 14
        out.append(rel.mean(dim=2))                                  # eq. 15: mean over patches
    return torch.cat(out, dim=1).T
