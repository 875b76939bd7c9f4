"""SCAN: Lee, Chen, Hua, Hu and He, "Stacked Cross Attention for Image-Text Matching"
(ECCV 2018), Section 3, adapted to HAAN's class-level retrieval.

An image I (k region features v_i) and a text T (n word features e_j) are scored by two
stacked attentions (Section 3.1), in one of two formulations:

- text-to-image, "t2i" (the paper's Text-Image formulation, t-i): each word e_j attends
  over the regions; the attended image vector a^v_j is compared with its word, and the
  words' relevances are pooled;
- image-to-text, "i2t" (Image-Text, i-t): each region v_i attends over the words; the
  attended sentence vector a^t_i is compared with its region, and the regions' relevances
  are pooled.

In both: s_ij = cos(v_i, e_j) (eq. 1); the normalised similarity s_bar_ij (Sec. 3.1,
inline): the paper's text thresholds at zero and l2-normalises, [s_ij]_+ / sqrt(sum
[s_ij]_+^2), over the regions i for i-t and over the words j for t-i, i.e. over the
fragments that query; the reference implementation (kuanghuei/SCAN, model.py,
``func_attention`` with its default ``raw_feature_norm="clipped_l2norm"``) uses
LeakyReLU(0.1) instead of [.]_+, then the same l2 norm; attention weights
softmax(lambda_1 s_bar) over the attended fragments (eq. 3 for i-t); the attended vector
(eq. 2 for i-t); the relevance R, the cosine between a query fragment and its attended
vector (eq. 4 for i-t); and the score, LogSumExp pooling (1 / lambda_2) log sum
exp(lambda_2 R) (eq. 5 for i-t, eq. 7 for t-i) or average pooling (eq. 6 for i-t, eq. 8
for t-i) over the query fragments. The t-i formulation's normalisation, attention and R'
are written inline in Section 3.1 (the same forms with the roles swapped). Equation
numbers are those of the ECCV 2018 paper, checked against its PDF; the loss is eq. 12
(hardest negative; eq. 11 sums over all negatives), Section 3.2.

Training uses SCAN's hinge triplet loss with the hardest negative of the batch (Sec. 3.2,
VSE++), summed over the batch as the reference ``ContrastiveLoss`` does.

Adaptation to this project (each choice is a parameter):
the paper's k = 36 bottom-up-attention (Faster R-CNN) regions are replaced by the alpha = 9
patch features of a 3 x 3 grid (SCAN has no positional term, so their order does not
matter); each is projected by one linear layer and l2-normalised, SCAN's image encoder for
precomputed features (``EncoderImagePrecomp``: Xavier-uniform weight, zero bias). Texts
are token ids (0 = padding) read by HAAN's Bi-GRU encoder, which is SCAN's (Sec. 3.4: the
mean of the two directions, l2-normalised) with HAAN's initialisation. Positives are pairs
of the same class, and a same-class pair is never a negative in :func:`scan_loss`. The
reference code's l2norm adds 1e-8 to the norm; here norms are floored at ``EPS``, as
everywhere in this package.

Padding: words at positions >= length are zeroed before anything is computed, enter no
normalisation, get attention weight exactly 0 (i2t) or attend to nothing that is used
(t2i), are not pooled, and receive no gradient.

Shapes: N images with k regions, M texts of at most n words, width D. The score of all
N x M pairs is computed at once (no loop over images or texts), a chunk of texts at a
time. The attended vectors are never built on this path: R needs only
q . a = sum alpha (q . c) and |a|^2 = alpha^T G alpha with G the Gram matrix of the
attended fragments, so the largest intermediate tensors are (N, chunk, k, n), not
(N, chunk, n, D). :meth:`SCANNet.explain` builds them for small batches.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import HAANInputError
from ..models import TextEncoder
from ..similarity import EPS, word_mask
from .shan import check_pair_embeddings, check_patches, check_tokens, shan_loss

__all__ = ["SCANTexts", "SCANNet", "region_word_cosine", "clipped_l2norm",
           "cross_attention", "attended_vectors", "relevance", "pool", "scan_loss",
           "FORMULATIONS", "POOLINGS"]

FORMULATIONS = ("t2i", "i2t")
POOLINGS = ("lse", "mean")


class SCANTexts(NamedTuple):
    """The text embedding: word features (M, n, D), zero at padding, and lengths (M,).
    A tuple (words, lengths), the shape LAN's and SHAN's ``encode_texts`` return."""
    words: torch.Tensor
    lengths: torch.Tensor


# ----------------------------------------------------------------- the equations
# Every tensor of a pair is laid out (image, text, region i, word j): (N, M, k, n), in
# both formulations; ``mask`` (M, n) is True at real words.


def _check_formulation(formulation: str) -> None:
    if formulation not in FORMULATIONS:
        raise HAANInputError(f"formulation must be one of {FORMULATIONS} (t2i: words "
                             f"attend over regions; i2t: regions over words), "
                             f"got {formulation!r}")


def region_word_cosine(V: torch.Tensor, T: torch.Tensor) -> torch.Tensor:
    """SCAN eq. 1: s_ij = v_i . e_j / (|v_i| |e_j|) for all pairs, norms floored at EPS.
    V (N, k, D), T (M, n, D) -> s (N, M, k, n)."""
    dots = torch.einsum("akd,bjd->abkj", V, T)
    return dots / (V.norm(dim=-1)[:, None, :, None]
                   * T.norm(dim=-1)[None, :, None, :]).clamp_min(EPS)


def clipped_l2norm(s: torch.Tensor, mask: torch.Tensor, formulation: str = "t2i",
                   negative_slope: float = 0.1) -> torch.Tensor:
    """SCAN Sec. 3.1, the normalised similarity s_bar_ij.

    s (N, M, k, n) from :func:`region_word_cosine`, mask (M, n). Each s_ij is clipped,
    LeakyReLU(negative_slope)(s_ij) (the reference's ``clipped_l2norm`` uses 0.1; 0 gives
    the paper's [s_ij]_+), set to 0 at padded words, then divided by the l2 norm of the
    query fragments' vector it belongs to: over the words j (for each region i) in "t2i",
    over the regions i (for each word j) in "i2t". Norms are floored at EPS (a vector that
    clips to 0 stays 0).
    """
    _check_formulation(formulation)
    c = F.leaky_relu(s, negative_slope)
    c = torch.where(mask[None, :, None, :], c, torch.zeros_like(c))
    dim = 3 if formulation == "t2i" else 2
    return c / c.norm(dim=dim, keepdim=True).clamp_min(EPS)


def cross_attention(s_bar: torch.Tensor, mask: torch.Tensor, formulation: str = "t2i",
                    lambda_softmax: float = 9.0) -> torch.Tensor:
    """SCAN eq. 3 (i-t) and its t-i counterpart (Sec. 3.1, inline): the attention weights.

    "i2t": alpha_ij = softmax over the real words j of lambda_1 s_bar_ij (each region
    attends over the words; exactly 0 at padded words). "t2i": alpha'_ij = softmax over
    the regions i of lambda_1 s_bar_ij (each word attends over the regions; the columns of
    padded words are set to 0, as they are never used). Returns alpha (N, M, k, n).
    """
    _check_formulation(formulation)
    m = mask[None, :, None, :]
    logits = lambda_softmax * s_bar
    if formulation == "t2i":
        alpha = torch.softmax(logits, dim=2)
        return torch.where(m, alpha, torch.zeros_like(alpha))
    return torch.softmax(logits.masked_fill(~m, float("-inf")), dim=3)


def attended_vectors(alpha: torch.Tensor, V: torch.Tensor, T: torch.Tensor,
                     formulation: str = "t2i") -> torch.Tensor:
    """SCAN eq. 2 (i-t) and its t-i counterpart (inline): the attended vectors, built
    explicitly.

    "t2i": a^v_j = sum_i alpha'_ij v_i -> (N, M, n, D) (0 at padded words);
    "i2t": a^t_i = sum_j alpha_ij e_j -> (N, M, k, D).
    Used by :meth:`SCANNet.explain`; the scores never build them (see :func:`relevance`).
    """
    _check_formulation(formulation)
    if formulation == "t2i":
        return torch.einsum("abkj,akd->abjd", alpha, V)
    return torch.einsum("abkj,bjd->abkd", alpha, T)


def relevance(alpha: torch.Tensor, V: torch.Tensor, T: torch.Tensor, mask: torch.Tensor,
              formulation: str = "t2i") -> torch.Tensor:
    """SCAN eq. 4 (i-t) and its t-i counterpart R' (inline): R, the cosine of each query
    fragment and its attended vector, for all pairs, without building the attended
    vectors.

    With q a query fragment, c_1.. the attended fragments and a = sum alpha_c c:
    q . a = sum alpha_c (q . c) and |a|^2 = sum sum alpha_c alpha_c' (c . c'), the Gram
    matrix of the image's regions (t2i) or of the text's words (i2t). |a| is floored at
    EPS, and so is the product of the two norms.

    "t2i": R'(e_j, a^v_j) -> (N, M, n), 0 at padded words; "i2t": R(v_i, a^t_i) ->
    (N, M, k). T must be zero at padded words.
    """
    _check_formulation(formulation)
    dots = torch.einsum("akd,bjd->abkj", V, T)                     # v_i . e_j
    if formulation == "t2i":
        num = (alpha * dots).sum(2)                                # e_j . a^v_j
        gram = V @ V.transpose(1, 2)                               # (N, k, k)
        sq = (torch.einsum("akl,ablj->abkj", gram, alpha) * alpha).sum(2)
        q_norm = T.norm(dim=-1)[None]                              # (1, M, n)
    else:
        num = (alpha * dots).sum(3)                                # v_i . a^t_i
        gram = T @ T.transpose(1, 2)                               # (M, n, n)
        sq = (torch.einsum("bjl,abkl->abkj", gram, alpha) * alpha).sum(3)
        q_norm = V.norm(dim=-1)[:, None]                           # (N, 1, k)
    a_norm = sq.clamp_min(EPS * EPS).sqrt()                        # |a|, floored at EPS
    R = num / (q_norm * a_norm).clamp_min(EPS)
    if formulation == "t2i":
        R = torch.where(mask[None], R, torch.zeros_like(R))
    return R


def pool(R: torch.Tensor, mask: torch.Tensor, formulation: str = "t2i",
         pooling: str = "lse", lambda_lse: float = 6.0) -> torch.Tensor:
    """SCAN eqs. 5 and 7 (LogSumExp, "lse"): S = (1 / lambda_2) log sum exp(lambda_2 R),
    and eqs. 6 and 8 (average, "mean"): S = mean R, over the k regions (i2t: eqs. 5, 6)
    or over the real words of each text (t2i: eqs. 7, 8; padded words are not pooled).
    R (N, M, k or n) -> S (N, M)."""
    _check_formulation(formulation)
    if pooling not in POOLINGS:
        raise HAANInputError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    m = mask[None] if formulation == "t2i" else None
    if pooling == "lse":
        x = lambda_lse * R
        if m is not None:
            x = x.masked_fill(~m, float("-inf"))
        return torch.logsumexp(x, dim=-1) / lambda_lse
    if m is None:
        return R.mean(-1)
    R = torch.where(m, R, torch.zeros_like(R))
    return R.sum(-1) / m.sum(-1).to(R.dtype)


# ----------------------------------------------------------------- the network


def _positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise HAANInputError(f"{name} must be a positive integer, got {value!r}")


def _number(name: str, value, positive: bool) -> float:
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) \
        and math.isfinite(value) and (value > 0 if positive else value >= 0)
    if not ok:
        raise HAANInputError(f"{name} must be a finite number {'> 0' if positive else '>= 0'}"
                             f", got {value!r}")
    return float(value)


class SCANNet(nn.Module):
    """SCAN (Section 3) as a network with the interface of HAAN's GAN and LAN.

    Parameters (defaults: the reference code's defaults, which are its published
    Flickr30K and MS-COCO "SCAN t-i LSE" configuration):
      img_dim        width of a patch feature (the paper's 2048-d region feature)
      vocab_size     token ids 0..vocab_size-1, 0 = padding
      word_dim=300   learned word embedding (Sec. 3.4)
      embed_dim=1024 D, the joint space (Sec. 3.3-3.4)
      formulation="t2i"  "t2i" (Text-Image, words attend over regions) or "i2t"
                     (Image-Text, regions attend over words)
      pooling="lse"  "lse" (eqs. 5/7, LogSumExp) or "mean" (eqs. 6/8, average, the
                     paper's AVG)
      lambda_softmax=9.0  lambda_1, the inverse temperature of eq. 3's softmax
      lambda_lse=6.0 lambda_2 of eqs. 5/7 (unused by "mean")
      negative_slope=0.1  the clip of s_bar: LeakyReLU(0.1), the reference code's
                     "clipped_l2norm"; 0 gives the paper's text, [s]_+
      max_chunk_elements=2**24  texts per chunk when ``similarity`` gets no chunk_size:
                     as many as keep N * chunk * k * n under this

    The published configurations (kuanghuei/SCAN, README.md):
      t-i LSE  lambda_softmax=9, lambda_lse=6 (Flickr30K and MS-COCO)  <- the defaults
      t-i AVG  lambda_softmax=9, pooling="mean"
      i-t LSE  lambda_softmax=4, lambda_lse=5 (Flickr30K) or 20 (MS-COCO)
      i-t AVG  lambda_softmax=4, pooling="mean"
    all with the hardest negative (--max_violation), the Bi-GRU, margin 0.2, Adam at lr
    2e-4 (5e-4 on MS-COCO) for 30 epochs (20), decayed by 0.1 after 15 (10), batch 128,
    gradient clipping 2.0. An "i2t" model should be built with lambda_softmax=4.
    """

    def __init__(self, img_dim: int, vocab_size: int, *, word_dim: int = 300,
                 embed_dim: int = 1024, formulation: str = "t2i", pooling: str = "lse",
                 lambda_softmax: float = 9.0, lambda_lse: float = 6.0,
                 negative_slope: float = 0.1, max_chunk_elements: int = 1 << 24):
        super().__init__()
        _check_formulation(formulation)
        if pooling not in POOLINGS:
            raise HAANInputError(f"pooling must be one of {POOLINGS} (lse: eqs. 5/7, "
                                 f"mean: eqs. 6/8), got {pooling!r}")
        for name, value in (("img_dim", img_dim), ("vocab_size", vocab_size),
                            ("word_dim", word_dim), ("embed_dim", embed_dim),
                            ("max_chunk_elements", max_chunk_elements)):
            _positive_int(name, value)
        self.lambda_softmax = _number("lambda_softmax", lambda_softmax, positive=True)
        self.lambda_lse = _number("lambda_lse", lambda_lse, positive=True)
        self.negative_slope = _number("negative_slope", negative_slope, positive=False)
        self.img_dim, self.embed_dim = img_dim, embed_dim
        self.formulation, self.pooling = formulation, pooling
        self.max_chunk_elements = max_chunk_elements

        self.img = nn.Linear(img_dim, embed_dim)          # Sec. 3.3: v_i = W_v f_i + b_v
        nn.init.xavier_uniform_(self.img.weight)          # EncoderImagePrecomp's init
        nn.init.zeros_(self.img.bias)
        self.txt = TextEncoder(vocab_size, word_dim, embed_dim)   # Sec. 3.4: Bi-GRU

    # ------------------------------------------------------------- encoders

    def encode_images(self, patch_feats: torch.Tensor) -> torch.Tensor:
        """SCAN Sec. 3.3 per patch: (N, k, img_dim) -> (N, k, D) unit rows v_i."""
        check_patches(patch_feats, self.img_dim)
        return F.normalize(self.img(patch_feats), dim=-1, eps=EPS)

    def encode_texts(self, tokens: torch.Tensor, lengths: torch.Tensor) -> SCANTexts:
        """SCAN Sec. 3.4: token ids (M, n) -> Bi-GRU word features e_j (mean of the two
        directions), unit rows, zero at padding."""
        lengths = check_tokens(tokens, lengths)
        words = F.normalize(self.txt.words(tokens, lengths), dim=-1, eps=EPS)
        return SCANTexts(words, lengths)

    # ------------------------------------------------------------- scores

    def similarity(self, img_emb: torch.Tensor, txt_emb, chunk_size: int | None = None
                   ) -> torch.Tensor:
        """S(I, T) (eqs. 5-8, of the chosen formulation and pooling) for every image
        against every text: (N, M). Texts are processed ``chunk_size`` at a time (by
        default as many as keep N * chunk * k * n under ``max_chunk_elements``); the
        chunking changes nothing but memory. Words at positions >= length never
        influence a score."""
        V, T, mask = self._check_embeddings(img_emb, txt_emb)
        N, k, _ = V.shape
        M, n, _ = T.shape
        if chunk_size is None:
            chunk_size = max(1, self.max_chunk_elements // max(1, N * k * n))
        elif isinstance(chunk_size, bool) or not isinstance(chunk_size, int) \
                or chunk_size < 1:
            raise HAANInputError(f"chunk_size must be a positive integer or None, "
                                 f"got {chunk_size!r}")
        return torch.cat([self._pairs(V, T[s:s + chunk_size], mask[s:s + chunk_size])
                          ["score"] for s in range(0, M, chunk_size)], dim=1)

    def explain(self, img_emb: torch.Tensor, txt_emb) -> dict:
        """Every intermediate for all N x M pairs, unchunked (for small batches: tests and
        attention maps such as the paper's figures). Keys: s (N, M, k, n), s_bar,
        alpha (Sec. 3.1, eq. 3), attended (eq. 2: (N, M, n, D) for t2i, (N, M, k, D) for
        i2t), R (eq. 4: (N, M, n) or (N, M, k)), score (eqs. 5-8, (N, M))."""
        V, T, mask = self._check_embeddings(img_emb, txt_emb)
        out = self._pairs(V, T, mask, details=True)
        out["attended"] = attended_vectors(out["alpha"], V, T, self.formulation)
        return out

    def _pairs(self, V, T, mask, details=False) -> dict:
        """All images V (N, k, D) against the texts T (c, n, D), zero at padding."""
        f = self.formulation
        s = region_word_cosine(V, T)                                         # eq. 1
        s_bar = clipped_l2norm(s, mask, f, self.negative_slope)              # Sec. 3.1
        alpha = cross_attention(s_bar, mask, f, self.lambda_softmax)         # eq. 3
        R = relevance(alpha, V, T, mask, f)                                  # eq. 4
        score = pool(R, mask, f, self.pooling, self.lambda_lse)              # eqs. 5-8
        if details:
            return {"s": s, "s_bar": s_bar, "alpha": alpha, "R": R, "score": score}
        return {"score": score}

    def _check_embeddings(self, img_emb, txt_emb):
        img_emb, words, lengths = check_pair_embeddings(img_emb, txt_emb, self.embed_dim)
        if img_emb.dtype != words.dtype or img_emb.device != words.device:
            raise HAANInputError(
                f"img_emb and words must share dtype and device, got {img_emb.dtype} on "
                f"{img_emb.device} and {words.dtype} on {words.device}")
        mask = word_mask(lengths, words.shape[1])
        words = torch.where(mask[..., None], words, torch.zeros_like(words))
        return img_emb, words, mask


# ----------------------------------------------------------------- the loss


def scan_loss(sim: torch.Tensor, img_labels: torch.Tensor, txt_labels: torch.Tensor,
              margin: float = 0.2, hardest: bool = True, directions: str = "both",
              reduction: str = "sum") -> torch.Tensor:
    """SCAN eq. 12 (Sec. 3.2), the bidirectional hinge triplet loss with the hardest
    negative (VSE++), on a batch score matrix sim (N, M) of S(I, T) (eqs. 5-8).

    For every positive pair (i, j), here a pair of the same class,

        [m - S_ij + S_i,T^]_+   (T^ = the highest-scored text of another class than i)
      + [m - S_ij + S_I^,j]_+   (I^ = the highest-scored image of another class than j);

    a same-class pair is never a negative. This is the loss of SHAN (eq. 17), which took
    it from SCAN, so it delegates to :func:`haan_core.methods.shan.shan_loss` (the same
    validation and options: ``hardest=False`` sums over all negatives, eq. 11,
    ``directions`` keeps one term). The only difference is the default
    ``reduction="sum"``: SCAN's ``ContrastiveLoss`` returns the sum over the batch
    (cost_s.sum() + cost_im.sum()), not a mean; with one positive per anchor (labels =
    arange) it is that loss exactly. ``"mean"`` divides by the number of positive pairs.
    Margin 0.2 is SCAN's default.
    """
    return shan_loss(sim, img_labels, txt_labels, margin=margin, hardest=hardest,
                     directions=directions, reduction=reduction)
