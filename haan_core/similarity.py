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
        max_chunk_elements: int = 1 << 22) -> torch.Tensor:
    """Eqs. 11-15. Local similarity L^F(p, q) of every image with every text.

    patches (N, alpha, d), words (M, beta, d), lengths (M,) -> (N, M).
    Words at positions >= lengths[q] are padding and do not influence the result.
    Images are processed ``chunk_size`` at a time (by default as many as keep one
    (chunk, M, alpha, beta) tensor under ``max_chunk_elements``).
    """
    lengths = _check_local(patches, words, lengths)
    N, alpha, _ = patches.shape
    M, beta, _ = words.shape
    if chunk_size is None:
        chunk_size = max(1, max_chunk_elements // max(1, M * alpha * beta))
    gram = torch.einsum("myd,mzd->myz", words, words)                # (M, beta, beta)
    out = []
    for start in range(0, N, chunk_size):
        P = patches[start:start + chunk_size]
        dots = torch.einsum("nxd,myd->nmxy", P, words)               # n_x . m_y
        _, A = _attention(dots, P, words, lengths, lam)
        num = (A * dots).sum(dim=3)                                  # n_x . kappa_x
        kappa_sq = (torch.einsum("nmxy,myz->nmxz", A, gram) * A).sum(dim=3)
        kappa_norm = kappa_sq.clamp_min(0).sqrt()                    # |kappa_x|
        rel = num / (P.norm(dim=2)[:, None, :] * kappa_norm).clamp_min(EPS)  # eq. 14
        out.append(rel.mean(dim=2))                                  # eq. 15: mean over patches
    return torch.cat(out, dim=0)
