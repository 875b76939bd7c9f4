"""SHAN: Ji, Chen and Wang, "Step-Wise Hierarchical Alignment Network for Image-Text
Matching" (IJCAI 2021), Section 3, adapted to HAAN's class-level retrieval.

An image-text pair is scored in three steps (Section 3.2), and the scores are added
(eq. 16):

1. fragment-level L2L: region-word affinities (eq. 3), bidirectional cross-attention
   (eqs. 4-5), region- and word-related cosines (eq. 6), their weighted average (eq. 7);
2. context-level G2L: each fragment fused with the message the other modality sent it
   through a gate (eq. 8), self-attention pooling into one context vector per side
   (eq. 9), global-queried attention over the other side's fragments (eqs. 10-11), two
   cosines (eq. 12) and their weighted sum (eq. 13);
3. context-level G2G: each context vector plus what it attended to (eq. 14), one cosine
   (eq. 15).

Training uses the bidirectional hinge triplet loss with the hardest negative of the
batch (eq. 17, as in VSE++).

Adaptation to this project (each choice is a parameter, see the module's report rows):
the paper's k = 36 Faster R-CNN regions are replaced by the alpha = 9 patch features of a
3 x 3 grid (row-major; SHAN has no positional term, so their order does not matter); when
the model is built with ``global_dim``, the global image feature is projected by its own
layer (eq. 1) and appended as a region k + 1. Texts are token ids (0 = padding) read by
HAAN's Bi-GRU encoder, which is eq. 2 (the mean of the two directions) with a learned
embedding only (no GloVe). Positives are pairs of the same class, and a same-class pair is
never a negative in :func:`shan_loss`.

Shapes: N images with k regions, M texts of at most n words, width D. The score of all
N x M pairs is computed at once (no loop over images or texts), a chunk of texts at a time;
the largest intermediate tensors are (N, chunk, k, D) and (N, chunk, n, D).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import HAANInputError, check_labels, check_nonempty, check_tensor
from ..models import TextEncoder
from ..similarity import EPS, word_mask
from .ranking import hinge_sum

__all__ = ["SHANTexts", "SHANNet", "GatedFusion", "AttentionPool", "affinity",
           "cross_attention", "l2l_score", "attend_words", "attend_regions", "g2l_score",
           "g2g_score", "shan_loss", "cosine"]

AFFINITIES = ("cosine", "dot")
REDUCTIONS_L2L = ("mean", "sum")
GATES = ("vector", "scalar")
DIRECTIONS = ("both", "i2t", "t2i")
REDUCTIONS_LOSS = ("mean", "sum")


class SHANTexts(NamedTuple):
    """The text embedding: word features (M, n, D), zero at padding, and lengths (M,).
    A tuple (words, lengths), the same shape LAN's ``encode_texts`` returns."""
    words: torch.Tensor
    lengths: torch.Tensor


# ----------------------------------------------------------------- small helpers


def cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine of the last dimension, broadcasting the others; norms floored at EPS.
    The cosine of eqs. 6, 10-12 and 15."""
    return (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1)).clamp_min(EPS)


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True).clamp_min(EPS)


def _masked_softmax(logits: torch.Tensor, mask: torch.Tensor | None, dim: int) -> torch.Tensor:
    """Softmax over ``dim`` that gives exactly 0 where ``mask`` is False (padding).
    Every text has a real word, so no slice is all masked."""
    if mask is not None:
        logits = logits.masked_fill(~mask, float("-inf"))
    return torch.softmax(logits, dim=dim)


def _masked_mean(x: torch.Tensor, mask: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    return torch.where(mask, x, torch.zeros_like(x)).sum(-1) / count


# ----------------------------------------------------------------- step 1: L2L


def affinity(pv: torch.Tensor, pt: torch.Tensor, kind: str = "cosine") -> torch.Tensor:
    """SHAN eq. 3: A = (W~_v V)(W~_t T)^T for all pairs.

    pv (N, k, D) projected regions W~_v v_i, pt (M, n, D) projected words W~_t t_j
    -> A (N, M, k, n). ``kind="dot"`` is eq. 3 as printed; ``"cosine"`` (default) divides
    each product by the two norms, so that A lies in [-1, 1], the range that the
    temperature lambda = 15 of eqs. 4-5 is set for.
    """
    if kind == "cosine":
        pv, pt = _unit(pv), _unit(pt)
    return torch.einsum("akd,bjd->abkj", pv, pt)


def cross_attention(V: torch.Tensor, T: torch.Tensor, mask: torch.Tensor, A: torch.Tensor,
                    lam: float = 15.0):
    """SHAN eqs. 4-5, bidirectional cross-attention for all pairs.

    V (N, k, D) regions, T (M, n, D) words, mask (M, n) real words, A (N, M, k, n) from
    eq. 3. Returns
      alpha  (N, M, k, n): eq. 4, softmax over the words j of lambda A_ij (0 at padding);
      beta   (N, M, k, n): eq. 5, softmax over the regions i of lambda A_ij;
      t_star (N, M, k, D): eq. 4, t*_i = sum_j alpha_ij t_j (region-attended text);
      v_star (N, M, n, D): eq. 5, v*_j = sum_i beta_ij v_i (word-attended image).
    Rows of beta and v_star at padded words are computed but never used downstream.
    """
    logits = lam * A
    alpha = _masked_softmax(logits, mask[None, :, None, :], dim=3)
    beta = torch.softmax(logits, dim=2)
    t_star = torch.einsum("abkj,bjd->abkd", alpha, T)
    v_star = torch.einsum("abkj,akd->abjd", beta, V)
    return alpha, beta, t_star, v_star


def attended_cosines(V: torch.Tensor, T: torch.Tensor, alpha: torch.Tensor,
                     beta: torch.Tensor):
    """SHAN eq. 6's cosines R_v(v_i, t*_i) (N, M, k) and R_t(t_j, v*_j) (N, M, n) from the
    attention weights of eqs. 4-5, without the attended vectors: t*_i = sum_j alpha_ij t_j
    gives v_i . t*_i = sum_j alpha_ij (v_i . t_j) and |t*_i|^2 = alpha_i^T (T T^T) alpha_i,
    and v*_j the same with beta and V V^T. The same numbers as :func:`cosine` of the
    vectors (up to rounding), in N x M x k x n operations instead of N x M x k x D."""
    VT = torch.einsum("akd,bjd->abkj", V, T)                            # v_i . t_j
    sq_t = torch.einsum("abkj,bjl,abkl->abk", alpha, T @ T.transpose(1, 2), alpha)
    sq_v = torch.einsum("abkj,akl,ablj->abj", beta, V @ V.transpose(1, 2), beta)
    # the norms floored like cosine()'s: a square root's gradient at 0 is infinite
    norm_t = sq_t.clamp_min(EPS * EPS).sqrt()                           # |t*_i|
    norm_v = sq_v.clamp_min(EPS * EPS).sqrt()                           # |v*_j|
    R_v = (alpha * VT).sum(3) / (V.norm(dim=-1)[:, None] * norm_t).clamp_min(EPS)
    R_t = (beta * VT).sum(2) / (T.norm(dim=-1)[None] * norm_v).clamp_min(EPS)
    return R_v, R_t


def l2l_score(V, T, t_star, v_star, mask, mu1: float = 0.3, reduce: str = "mean",
              alpha=None, beta=None):
    """SHAN eqs. 6-7: S_L2L = mu1 * agg_i R_v(v_i, t*_i) + (1 - mu1) * agg_j R_t(t_j, v*_j).

    R_v, R_t are the cosines of eq. 6; agg is the mean over the k regions and over the
    n real words (``reduce="mean"``, the text's "taking average") or the sum (``"sum"``,
    eq. 7 as printed). Returns (S_L2L (N, M), R_v (N, M, k), R_t (N, M, n), 0 at padding).
    Given the attention weights ``alpha``, ``beta`` of eqs. 4-5, the cosines come from
    them (:func:`attended_cosines`, the faster way) and t_star, v_star are not read.
    """
    if alpha is not None and beta is not None:
        R_v, R_t = attended_cosines(V, T, alpha, beta)     # eq. 6
    else:
        R_v = cosine(V[:, None], t_star)                   # eq. 6, regions
        R_t = cosine(T[None], v_star)                      # eq. 6, words
    m = mask[None]
    R_t = torch.where(m, R_t, torch.zeros_like(R_t))
    if reduce == "mean":
        count = mask.sum(1).to(R_t.dtype)[None]
        s = mu1 * R_v.mean(2) + (1 - mu1) * R_t.sum(2) / count
    else:
        s = mu1 * R_v.sum(2) + (1 - mu1) * R_t.sum(2)
    return s, R_v, R_t


# ----------------------------------------------------------------- step 2: G2L


class GatedFusion(nn.Module):
    """SHAN eq. 8: x^c = g * x + (1 - g) * y, g = sigmoid(W_g cat(x, y) + b_g).

    x is a fragment (region v_i or word t_j), y the message the other modality sent it
    (t*_i or v*_j). ``gate="vector"`` (default) has one gate per dimension (W_g: 2D -> D,
    the "element-wise fusion"); ``"scalar"`` one gate per fragment (W_g: 2D -> 1, the
    printed "g in [0, 1]"). x and y broadcast against each other: W_g cat(x, y) is computed
    as W_g[:, :D] x + W_g[:, D:] y, the same number, so x need not be copied per pair.
    """

    def __init__(self, dim: int, gate: str = "vector"):
        super().__init__()
        if gate not in GATES:
            raise HAANInputError(f"gate must be one of {GATES}, got {gate!r}")
        self.dim = dim
        self.fc = nn.Linear(2 * dim, dim if gate == "vector" else 1)   # W_g and b_g

    def project_fragment(self, x: torch.Tensor) -> torch.Tensor:
        """W_g[:, :D] x + b_g, the fragment's part of eq. 8's W_g cat(x, y) + b_g."""
        return F.linear(x, self.fc.weight[:, :self.dim], self.fc.bias)

    def project_message(self, y: torch.Tensor) -> torch.Tensor:
        """W_g[:, D:] y, the message's part of eq. 8's W_g cat(x, y)."""
        return F.linear(y, self.fc.weight[:, self.dim:])

    def gate(self, x: torch.Tensor, y: torch.Tensor, wx: torch.Tensor | None = None,
             wy: torch.Tensor | None = None) -> torch.Tensor:
        """g of eq. 8. ``wx``, ``wy`` are ``project_fragment(x)``, ``project_message(y)``
        when the caller has them already."""
        wx = self.project_fragment(x) if wx is None else wx
        wy = self.project_message(y) if wy is None else wy
        return torch.sigmoid(wx + wy)

    def forward(self, x: torch.Tensor, y: torch.Tensor, wx: torch.Tensor | None = None,
                wy: torch.Tensor | None = None) -> torch.Tensor:
        g = self.gate(x, y, wx, wy)
        return y + g * (x - y)                  # = g * x + (1 - g) * y, fewer passes


class AttentionPool(nn.Module):
    """SHAN eq. 9: gamma = softmax(W^ X^cT), pooled = gamma X^c.

    X (..., L, D) fused fragments, mask (..., L) or None -> (pooled (..., D),
    gamma (..., L)). W^ is a 1 x D projection; a bias would cancel in the softmax, so
    there is none. Padded words get weight 0.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.fc = nn.Linear(dim, 1, bias=False)               # W^_v or W^_t

    def forward(self, X: torch.Tensor, mask: torch.Tensor | None = None):
        gamma = _masked_softmax(self.fc(X).squeeze(-1), mask, dim=-1)
        pooled = (gamma[..., None] * X).sum(-2)
        return pooled, gamma


def attend_words(v_c: torch.Tensor, T: torch.Tensor, mask: torch.Tensor,
                 temperature: float = 1.0):
    """SHAN eq. 10: the image's context vector v_c queries the words of each text.

    v_c (N, M, D), T (M, n, D), mask (M, n) -> (t*_c (N, M, D), alpha (N, M, n)) with
    alpha_j = softmax_j(temperature * cos(v_c, t_j)) over the real words and
    t*_c = sum_j alpha_j t_j. The paper's exp(sim) is ``temperature = 1``.
    """
    s = torch.einsum("abd,bjd->abj", _unit(v_c), _unit(T))
    alpha = _masked_softmax(temperature * s, mask[None], dim=2)
    return torch.einsum("abj,bjd->abd", alpha, T), alpha


def attend_regions(t_c: torch.Tensor, V: torch.Tensor, temperature: float = 1.0):
    """SHAN eq. 11: the text's context vector t_c queries the regions of each image.

    t_c (N, M, D), V (N, k, D) -> (v*_c (N, M, D), beta (N, M, k)) with
    beta_i = softmax_i(temperature * cos(t_c, v_i)) and v*_c = sum_i beta_i v_i.
    """
    s = torch.einsum("abd,akd->abk", _unit(t_c), _unit(V))
    beta = torch.softmax(temperature * s, dim=2)
    return torch.einsum("abk,akd->abd", beta, V), beta


def g2l_score(v_c, t_c_star, t_c, v_c_star, mu2: float = 0.5):
    """SHAN eqs. 12-13: S_G2L = mu2 * cos(v_c, t*_c) + (1 - mu2) * cos(t_c, v*_c).
    Returns (S_G2L, R_v, R_t), each (N, M)."""
    R_v = cosine(v_c, t_c_star)
    R_t = cosine(t_c, v_c_star)
    return mu2 * R_v + (1 - mu2) * R_t, R_v, R_t


# ----------------------------------------------------------------- step 3: G2G


def g2g_score(v_c, t_c_star, t_c, v_c_star):
    """SHAN eqs. 14-15: v_g = v_c + t*_c, t_g = t_c + v*_c (the element-wise sum),
    S_G2G = cos(v_g, t_g). Returns (S_G2G (N, M), v_g, t_g)."""
    v_g = v_c + t_c_star
    t_g = t_c + v_c_star
    return cosine(v_g, t_g), v_g, t_g


# ----------------------------------------------------------------- the network


class SHANNet(nn.Module):
    """SHAN (Section 3) as a network with the interface of HAAN's GAN and LAN.

    Parameters (defaults: the paper's Section 4.2 where it gives one):
      img_dim        width of a patch feature (the paper's 2048-d region feature)
      vocab_size     token ids 0..vocab_size-1, 0 = padding
      word_dim=300   learned word embedding (the paper also concatenates GloVe; none here)
      embed_dim=1024 D, the joint space of eqs. 1-2
      global_dim=None  width of the global image feature; when set, it is projected by
                     its own layer (eq. 1) and appended as one more region, and
                     ``encode_images`` requires it; when None, no global feature is used
      lam=15         lambda of eqs. 4-5
      mu1=0.3, mu2=0.5  eqs. 7 and 13
      affinity="cosine"  eq. 3 on unit vectors ("dot": as printed)
      l2l_reduce="mean"  eq. 7 averages ("sum": the printed sums)
      gate="vector"  eq. 8's gate per dimension ("scalar": one per fragment)
      share_fusion=False  whether the visual and textual fusions of eq. 8 share W_g, b_g
      g2l_temperature=1.0  multiplies the cosine inside eqs. 10-11 (1 = the paper's exp(sim))
      l2_norm=True   l2-normalise each region and word feature (eqs. 1-2)
      score_weights=(1, 1, 1)  weights of S_L2L, S_G2L, S_G2G in eq. 16 (the paper adds
                     them; (1, 0, 0) and (1, 1, 0) are Table 3's ablations)
      max_chunk_elements=2**24  texts per chunk when ``similarity`` gets no chunk_size:
                     as many as keep N * chunk * (k + n) * D under this
    """

    def __init__(self, img_dim: int, vocab_size: int, *, word_dim: int = 300,
                 embed_dim: int = 1024, global_dim: int | None = None, lam: float = 15.0,
                 mu1: float = 0.3, mu2: float = 0.5, affinity: str = "cosine",
                 l2l_reduce: str = "mean", gate: str = "vector", share_fusion: bool = False,
                 g2l_temperature: float = 1.0, l2_norm: bool = True,
                 score_weights=(1.0, 1.0, 1.0), max_chunk_elements: int = 1 << 24):
        super().__init__()
        for name, value, allowed in (("affinity", affinity, AFFINITIES),
                                     ("l2l_reduce", l2l_reduce, REDUCTIONS_L2L),
                                     ("gate", gate, GATES)):
            if value not in allowed:
                raise HAANInputError(f"{name} must be one of {allowed}, got {value!r}")
        for name, value in (("img_dim", img_dim), ("vocab_size", vocab_size),
                            ("word_dim", word_dim), ("embed_dim", embed_dim),
                            ("max_chunk_elements", max_chunk_elements)):
            if not isinstance(value, int) or value < 1:
                raise HAANInputError(f"{name} must be a positive integer, got {value!r}")
        if global_dim is not None and (not isinstance(global_dim, int) or global_dim < 1):
            raise HAANInputError(f"global_dim must be a positive integer or None, "
                                 f"got {global_dim!r}")
        weights = tuple(float(w) for w in score_weights)
        if len(weights) != 3 or not all(math.isfinite(w) for w in weights):
            raise HAANInputError("score_weights must be three finite numbers (L2L, G2L, "
                                 f"G2G), got {score_weights!r}")
        self.img_dim, self.global_dim, self.embed_dim = img_dim, global_dim, embed_dim
        self.lam, self.mu1, self.mu2 = float(lam), float(mu1), float(mu2)
        self.affinity_kind, self.l2l_reduce = affinity, l2l_reduce
        self.g2l_temperature, self.l2_norm = float(g2l_temperature), l2_norm
        self.score_weights = weights
        self.max_chunk_elements = max_chunk_elements

        self.img = nn.Linear(img_dim, embed_dim)                          # eq. 1: W_v, b_v
        self.glob = nn.Linear(global_dim, embed_dim) if global_dim else None  # eq. 1, own W
        self.txt = TextEncoder(vocab_size, word_dim, embed_dim)           # eq. 2
        self.proj_v = nn.Linear(embed_dim, embed_dim, bias=False)         # eq. 3: W~_v
        self.proj_t = nn.Linear(embed_dim, embed_dim, bias=False)         # eq. 3: W~_t
        self.fuse_v = GatedFusion(embed_dim, gate)                        # eq. 8, regions
        self.fuse_t = self.fuse_v if share_fusion else GatedFusion(embed_dim, gate)  # words
        self.pool_v = AttentionPool(embed_dim)                            # eq. 9: W^_v
        self.pool_t = AttentionPool(embed_dim)                            # eq. 9: W^_t

    # ------------------------------------------------------------- encoders

    def encode_images(self, patch_feats: torch.Tensor,
                      global_feats: torch.Tensor | None = None) -> torch.Tensor:
        """SHAN eq. 1 per patch (and, with ``global_dim``, for the global feature, appended
        as the last region): (N, alpha, img_dim) [, (N, global_dim)] -> (N, k, D),
        k = alpha or alpha + 1; unit rows when ``l2_norm``."""
        check_patches(patch_feats, self.img_dim)
        regions = self.img(patch_feats)
        if self.glob is not None:
            if global_feats is None:
                raise HAANInputError("this SHANNet was built with global_dim="
                                     f"{self.global_dim}: pass global_feats (N, "
                                     f"{self.global_dim}), or build it with global_dim=None")
            check_tensor(global_feats, "global_feats", 2)
            if global_feats.shape != (patch_feats.shape[0], self.global_dim):
                raise HAANInputError(
                    f"global_feats must be ({patch_feats.shape[0]}, {self.global_dim}) (one "
                    f"row per image), got {tuple(global_feats.shape)}")
            regions = torch.cat([regions, self.glob(global_feats)[:, None]], dim=1)
        elif global_feats is not None:
            raise HAANInputError("global_feats given, but this SHANNet was built with "
                                 "global_dim=None and would ignore it: build it with "
                                 "global_dim=<width> to use the global feature as a region")
        return F.normalize(regions, dim=-1, eps=EPS) if self.l2_norm else regions

    def encode_texts(self, tokens: torch.Tensor, lengths: torch.Tensor) -> SHANTexts:
        """SHAN eq. 2: token ids (M, n) -> Bi-GRU word features t_j (mean of the two
        directions), zero at padding; unit rows when ``l2_norm``."""
        lengths = check_tokens(tokens, lengths)
        words = self.txt.words(tokens, lengths)
        if self.l2_norm:
            words = F.normalize(words, dim=-1, eps=EPS)
        return SHANTexts(words, lengths)

    # ------------------------------------------------------------- scores

    def similarity(self, img_emb: torch.Tensor, txt_emb, chunk_size: int | None = None
                   ) -> torch.Tensor:
        """SHAN eq. 16 for every image against every text: (N, M)."""
        return self.similarity_parts(img_emb, txt_emb, chunk_size)["score"]

    def similarity_parts(self, img_emb: torch.Tensor, txt_emb, chunk_size: int | None = None
                         ) -> dict:
        """{"l2l": eq. 7, "g2l": eq. 13, "g2g": eq. 15, "score": eq. 16}, each (N, M).

        Texts are processed ``chunk_size`` at a time (by default as many as keep the
        largest intermediate under ``max_chunk_elements``); the chunking changes nothing
        but memory. Words at positions >= length never influence a score.
        """
        V, T, lengths = self._check_embeddings(img_emb, txt_emb)
        N, k, D = V.shape
        M, n, _ = T.shape
        if chunk_size is None:
            chunk_size = max(1, self.max_chunk_elements // max(1, N * (k + n) * D))
        elif not isinstance(chunk_size, int) or chunk_size < 1:
            raise HAANInputError(f"chunk_size must be a positive integer or None, "
                                 f"got {chunk_size!r}")
        mask = word_mask(lengths, n)
        img_side = self._image_side(V)                     # once, not once per chunk
        parts = [self._pairs(V, T[s:s + chunk_size], mask[s:s + chunk_size],
                             img_side=img_side) for s in range(0, M, chunk_size)]
        return {key: torch.cat([p[key] for p in parts], dim=1)
                for key in ("l2l", "g2l", "g2g", "score")}

    def explain(self, img_emb: torch.Tensor, txt_emb) -> dict:
        """Every intermediate of eqs. 3-16 for all N x M pairs, unchunked (for small
        batches: tests and attention maps such as the paper's Figure 3). Keys: A, alpha,
        beta, t_star, v_star, R_v, R_t, l2l (eqs. 3-7); V_c, T_c, v_c, t_c, gamma_v,
        gamma_t, t_c_star, v_c_star, alpha_g, beta_g, R_v_g, R_t_g, g2l (eqs. 8-13);
        v_g, t_g, g2g (eqs. 14-15); score (eq. 16)."""
        V, T, lengths = self._check_embeddings(img_emb, txt_emb)
        return self._pairs(V, T, word_mask(lengths, T.shape[1]), details=True)

    def _image_side(self, V) -> tuple:
        """What eqs. 3 and 8 apply to the regions alone, whatever the text: W~_v V (eq. 3),
        the visual fusion's fragment part and the textual fusion's message part of W_g
        (eq. 8), each (N, k, .)."""
        return self.proj_v(V), self.fuse_v.project_fragment(V), self.fuse_t.project_message(V)

    def _pairs(self, V, T, mask, details=False, img_side=None) -> dict:
        """Eqs. 3-16 for all images V (N, k, D) against the texts T (c, n, D);
        ``img_side`` is ``_image_side(V)`` when the caller has it already."""
        pv, wx_v, wy_v = self._image_side(V) if img_side is None else img_side
        A = affinity(pv, self.proj_t(T), self.affinity_kind)                      # eq. 3
        alpha, beta, t_star, v_star = cross_attention(V, T, mask, A, self.lam)    # eqs. 4-5
        l2l, R_v, R_t = l2l_score(V, T, t_star, v_star, mask, self.mu1,
                                  self.l2l_reduce, alpha, beta)                   # eqs. 6-7
        # eq. 8's W_g y for every pair. The message y is an attention-weighted sum of the
        # other side's fragments (t*_i of eq. 4, v*_j of eq. 5), and W_g is linear, so
        # W_g y = sum_j alpha_ij (W_g t_j): the D x D product is taken once per word and
        # region, not once per pair (the same number up to rounding, about D / n times
        # fewer operations than projecting the N x M x k attended vectors).
        t_msg = torch.einsum("abkj,bjo->abko", alpha, self.fuse_v.project_message(T))
        v_msg = torch.einsum("abkj,ako->abjo", beta, wy_v)
        V_c = self.fuse_v(V[:, None], t_star, wx_v[:, None], t_msg)               # eq. 8
        T_c = self.fuse_t(T[None], v_star, wy=v_msg)                              # eq. 8
        v_c, gamma_v = self.pool_v(V_c)                                           # eq. 9
        t_c, gamma_t = self.pool_t(T_c, mask[None])                               # eq. 9
        t_c_star, alpha_g = attend_words(v_c, T, mask, self.g2l_temperature)      # eq. 10
        v_c_star, beta_g = attend_regions(t_c, V, self.g2l_temperature)           # eq. 11
        g2l, R_v_g, R_t_g = g2l_score(v_c, t_c_star, t_c, v_c_star, self.mu2)     # eqs. 12-13
        g2g, v_g, t_g = g2g_score(v_c, t_c_star, t_c, v_c_star)                   # eqs. 14-15
        w1, w2, w3 = self.score_weights
        score = w1 * l2l + w2 * g2l + w3 * g2g                                    # eq. 16
        out = {"l2l": l2l, "g2l": g2l, "g2g": g2g, "score": score}
        if details:
            out.update(A=A, alpha=alpha, beta=beta, t_star=t_star, v_star=v_star, R_v=R_v,
                       R_t=R_t, V_c=V_c, T_c=T_c, v_c=v_c, t_c=t_c, gamma_v=gamma_v,
                       gamma_t=gamma_t, t_c_star=t_c_star, v_c_star=v_c_star,
                       alpha_g=alpha_g, beta_g=beta_g, R_v_g=R_v_g, R_t_g=R_t_g, v_g=v_g,
                       t_g=t_g)
        return out

    def _check_embeddings(self, img_emb, txt_emb):
        return check_pair_embeddings(img_emb, txt_emb, self.embed_dim)


def check_patches(patch_feats, img_dim: int) -> None:
    """(N, k, img_dim) patch features, non-empty, of the width a model was built for."""
    check_tensor(patch_feats, "patch_feats", 3)
    check_nonempty(patch_feats, "patch_feats")
    check_nonempty(patch_feats, "patch_feats", 1)
    if patch_feats.shape[2] != img_dim:
        raise HAANInputError(f"patch_feats has width {patch_feats.shape[2]}, the model "
                             f"was built for img_dim={img_dim}")


def check_pair_embeddings(img_emb, txt_emb, embed_dim: int) -> tuple:
    """Region embeddings (N, k, D) and the (words (M, n, D), lengths) pair of
    ``encode_texts``, of width ``embed_dim``: returns (img_emb, words, lengths as long)."""
    check_tensor(img_emb, "img_emb", 3)
    check_nonempty(img_emb, "img_emb")
    check_nonempty(img_emb, "img_emb", 1)
    if not (isinstance(txt_emb, tuple) and len(txt_emb) == 2):
        raise HAANInputError("txt_emb must be the (words, lengths) pair that "
                             f"encode_texts returns, got {type(txt_emb).__name__}")
    words, lengths = txt_emb
    check_tensor(words, "words", 3)
    check_nonempty(words, "words")
    check_nonempty(words, "words", 1)
    if img_emb.shape[2] != embed_dim or words.shape[2] != embed_dim:
        raise HAANInputError(
            f"img_emb and words must have width embed_dim={embed_dim}, got "
            f"{img_emb.shape[2]} and {words.shape[2]}")
    return img_emb, words, check_lengths(lengths, words.shape[0], words.shape[1],
                                         words.device)


def check_tokens(tokens, lengths, vocab_size: int | None = None) -> torch.Tensor:
    """Validate a batch of texts, token ids (M, n) (0 = padding) and their lengths (M,),
    with a clear error naming what is wrong; returns the lengths as a long tensor on the
    tokens' device (shared by SHAN, TSHSR, SCAN and SGRAF)."""
    if not isinstance(tokens, torch.Tensor) or tokens.dim() != 2:
        raise HAANInputError(f"tokens must be a 2-d tensor (M, n) of token ids, got "
                             f"{getattr(tokens, 'shape', type(tokens).__name__)}")
    if tokens.is_floating_point() or tokens.is_complex() or tokens.dtype == torch.bool:
        raise HAANInputError(f"tokens must hold integer ids, got dtype {tokens.dtype}")
    check_nonempty(tokens, "tokens")
    check_nonempty(tokens, "tokens", 1)
    lengths = check_lengths(lengths, tokens.shape[0], tokens.shape[1], tokens.device)
    if vocab_size is not None and ((tokens < 0).any() or (tokens >= vocab_size).any()):
        raise HAANInputError(f"token ids must lie in 0..{vocab_size - 1} (the vocabulary), "
                             f"got min {int(tokens.min())}, max {int(tokens.max())}")
    return lengths


def check_lengths(lengths, M: int, n: int, device) -> torch.Tensor:
    """The word counts of M texts padded to n words as a long tensor on ``device``; a
    clear error when they are not 1-d integers in 1..n (shared by SHAN, TSHSR, SCAN and
    SGRAF)."""
    if not isinstance(lengths, torch.Tensor) or lengths.dim() != 1 or lengths.shape[0] != M:
        raise HAANInputError(
            f"lengths must be a 1-d tensor with one entry per text ({M}), got "
            f"{getattr(lengths, 'shape', type(lengths).__name__)}")
    if lengths.is_floating_point() or lengths.is_complex() or lengths.dtype == torch.bool:
        raise HAANInputError(
            f"lengths must hold integer word counts, got dtype {lengths.dtype}")
    if M and ((lengths < 1).any() or (lengths > n).any()):
        raise HAANInputError(f"every length must lie in 1..{n} (the padded text length); "
                             f"got min {int(lengths.min())}, max {int(lengths.max())}")
    return lengths.to(device=device, dtype=torch.long)


# ----------------------------------------------------------------- the loss


def shan_loss(sim: torch.Tensor, img_labels: torch.Tensor, txt_labels: torch.Tensor,
              margin: float = 0.2, hardest: bool = True, directions: str = "both",
              reduction: str = "mean") -> torch.Tensor:
    """SHAN eq. 17, the bidirectional hinge triplet loss, on a batch score matrix.

    sim (N, M) scores S(I, T) (eq. 16) of N images and M texts; img_labels (N,),
    txt_labels (M,) class ids. Every same-class pair (i, j) is a positive and contributes

        [m - S_ij + S_i,T^]_+   (i2t: T^ = argmax over texts of another class than i)
      + [m - S_ij + S_I^,j]_+   (t2i: I^ = argmax over images of another class than j),

    the hardest negative of the batch (VSE++ [Faghri et al.]) when ``hardest``; otherwise
    each term is summed over all negatives. A same-class pair is never a negative. An
    anchor with no negative adds nothing. ``directions`` keeps one term ("i2t", "t2i") or
    both (the paper). ``reduction="mean"`` divides the sum by the number of positive
    pairs, ``"sum"`` does not (VSE++ sums over its B matched pairs). Returns a scalar.
    """
    check_tensor(sim, "sim", 2)
    check_nonempty(sim, "sim", 0)
    check_nonempty(sim, "sim", 1)
    img_labels = check_labels(img_labels, "img_labels", sim.shape[0]).to(sim.device)
    txt_labels = check_labels(txt_labels, "txt_labels", sim.shape[1]).to(sim.device)
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) \
            or not math.isfinite(margin) or margin < 0:
        raise HAANInputError(f"margin must be a finite number >= 0, got {margin!r}")
    if not isinstance(hardest, bool):
        raise HAANInputError(f"hardest must be True or False, got {hardest!r}")
    if directions not in DIRECTIONS:
        raise HAANInputError(f"directions must be one of {DIRECTIONS}, got {directions!r}")
    if reduction not in REDUCTIONS_LOSS:
        raise HAANInputError(f"reduction must be one of {REDUCTIONS_LOSS}, got {reduction!r}")
    pos = img_labels[:, None] == txt_labels[None, :]
    total = hinge_sum(sim, pos, margin, hardest, directions)
    if reduction == "mean":
        total = total / pos.sum().clamp_min(1)
    return total
