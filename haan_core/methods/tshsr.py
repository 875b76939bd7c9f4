"""Chen et al., "Two-stream hierarchical similarity reasoning for image-text matching"
(TSHSR, a compared method, issue #11): Section III, eqs. 1-9.

For every image-text pair TSHSR builds similarity *vectors* (eq. 1) between

* each word and the image regions attended by that word (eq. 2): the image-to-text
  stream, L nodes plus the global node, reasoned over by M layers of hierarchical
  similarity reasoning (HSR, eqs. 4-6): a relation matrix between the nodes (eq. 4),
  re-weighted by a sigmoid gate from a 3x3 convolution over that matrix (eq. 5), and a
  residual update of the nodes (eq. 6);
* each region and the words attended by that region (eq. 3): the text-to-image stream,
  K nodes plus the global node, averaged (eq. 7);

adds the two streams' vectors (eq. 8) and maps the sum to a scalar score. It is trained
with the bidirectional hardest-negative ranking loss of VSE++ (eq. 9).

Adaptation to this project (class-level retrieval on Corel 5K and the synthetic data):
the "regions" are the alpha = 9 patch features of a 3x3 grid, (N, 9, D_img), instead of
K = 36 Faster R-CNN regions; texts are token ids (M, beta) with lengths (M,), token 0 is
padding; positives in the loss are the pairs of one class, and a same-class pair is never
used as a negative. Where the paper is silent (or its equations were garbled in print) the
choice is a parameter with a default; the module docstrings name them and the ambiguity
log lists them.

Unlike GCM and LCM, the score is a network over each pair, so :meth:`TSHSRNet.similarity`
runs that network on all N x M pairs at once, vectorised over pairs, in blocks of images
and texts that keep memory bounded. Padded words are masked at every step (attention,
pooling, the nodes of the relation matrix), so they never influence a score.
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
from .shan import check_lengths, check_tokens

GLOBAL_POOLS = ("attention", "mean")
SIM_NORMS = ("projected", "difference")
READOUTS = ("global", "mean")
SCORE_HEADS = ("sigmoid", "linear")
DIRECTIONS = ("both", "i2t", "t2i")
REDUCTIONS = ("mean", "sum")


class TextEmbedding(NamedTuple):
    """What :meth:`TSHSRNet.encode_texts` returns: word vectors, zero at padding, and the
    number of real words of each text. Unpacks as ``words, lengths``."""
    words: torch.Tensor     # (M, beta, d)
    lengths: torch.Tensor   # (M,) long, 1..beta


def _choice(value, options, name):
    if value not in options:
        raise HAANInputError(f"{name} must be one of {options}, got {value!r}")
    return value


def _l2(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True).clamp_min(EPS)


def _check_pair_embeddings(regions, words, lengths):
    check_tensor(regions, "regions", 3)
    check_tensor(words, "words", 3)
    check_nonempty(regions, "regions")
    check_nonempty(words, "words")
    check_nonempty(regions, "regions", 1)
    check_nonempty(words, "words", 1)
    if regions.shape[2] != words.shape[2]:
        raise HAANInputError("regions and words must share the embedding width: got "
                             f"{regions.shape[2]} and {words.shape[2]}")
    return check_lengths(lengths, words.shape[0], words.shape[1], words.device)


# ---------------------------------------------------------------------------------------
# Eq. 1: the similarity vector


def similarity_vector(x: torch.Tensor, y: torch.Tensor, proj: nn.Linear,
                      norm: str = "projected") -> torch.Tensor:
    """TSHSR eq. 1 (from SGRAF [17]): the m-dimensional similarity vector of x and y,

        S(x, y) = W |x - y|^2 / ||W |x - y|^2||_2      (norm="projected", SGRAF's form)
        S(x, y) = W |x - y|^2 / ||x - y||_2            (norm="difference", eq. 1 as printed)

    with |.|^2 the element-wise square and W = ``proj`` (d -> m). x and y broadcast
    against each other; the result has their broadcast shape with the last axis m.
    """
    diff = x - y
    s = proj(diff * diff)
    if norm == "projected":
        return _l2(s)
    if norm == "difference":
        return s / diff.norm(dim=-1, keepdim=True).clamp_min(EPS)
    raise HAANInputError(f"norm must be one of {SIM_NORMS}, got {norm!r}")


# ---------------------------------------------------------------------------------------
# Eqs. 2-3: cross attention, for all (image, text) pairs at once


def region_word_cosines(regions: torch.Tensor, words: torch.Tensor) -> torch.Tensor:
    """c_ij = cos(v_i, t_j) of eqs. 2-3: (n, K, d), (m, beta, d) -> (n, m, K, beta)."""
    return torch.einsum("nkd,mbd->nmkb", _l2(regions), _l2(words))


def attend_regions(regions: torch.Tensor, words: torch.Tensor, lengths: torch.Tensor,
                   lam: float = 9.0, cos: torch.Tensor | None = None):
    """TSHSR eq. 2: for each word j, the attended visual feature a^v_j = sum_i alpha_ij v_i,

        alpha_ij = softmax_i(lam * c_bar_ij),  c_bar_ij = [c_ij]_+ / sqrt(sum_j [c_ij]_+^2)

    (the square root runs over the text's real words j). regions (n, K, d), words
    (m, beta, d), lengths (m,) -> attended (n, m, beta, d) and alpha (n, m, K, beta);
    both are 0 at padded words. ``cos``: the cosines of :func:`region_word_cosines`,
    when already computed.
    """
    real = word_mask(lengths, words.shape[1])[None, :, None, :]          # (1, m, 1, beta)
    cos = region_word_cosines(regions, words) if cos is None else cos
    c = torch.relu(cos).masked_fill(~real, 0.0)
    c_bar = c / c.norm(dim=3, keepdim=True).clamp_min(EPS)              # over words j
    alpha = torch.softmax(lam * c_bar, dim=2).masked_fill(~real, 0.0)   # over regions i
    return torch.einsum("nmkb,nkd->nmbd", alpha, regions), alpha


def attend_words(regions: torch.Tensor, words: torch.Tensor, lengths: torch.Tensor,
                 lam: float = 9.0, cos: torch.Tensor | None = None):
    """TSHSR eq. 3: for each region i, the attended textual feature b^t_i = sum_j beta_ij t_j,

        beta_ij = softmax_j(lam * c_bar_ij),  c_bar_ij = [c_ij]_+ / sqrt(sum_i [c_ij]_+^2)

    (the softmax runs over the text's real words only). -> attended (n, m, K, d) and
    beta (n, m, K, beta), exactly 0 at padded words.
    """
    real = word_mask(lengths, words.shape[1])[None, :, None, :]
    cos = region_word_cosines(regions, words) if cos is None else cos
    c = torch.relu(cos).masked_fill(~real, 0.0)
    c_bar = c / c.norm(dim=2, keepdim=True).clamp_min(EPS)              # over regions i
    beta = torch.softmax((lam * c_bar).masked_fill(~real, float("-inf")), dim=3)
    return torch.einsum("nmkb,mbd->nmkd", beta, words), beta


# ---------------------------------------------------------------------------------------
# Section III-A: global features


class GlobalPool(nn.Module):
    """The global feature of Section III-A, v_bar = V (.) q_bar_v (and t_bar = T (.) q_bar_t),
    q_bar the mean of the local features.

    The printed formula is garbled; "inspired by [17]" points to SGRAF's self-attention
    pooling, which uses exactly that element-wise product with the mean as its query:

        g_i = tanh(W_l x_i + b_l) (.) tanh(W_g q_bar + b_g)
        a_i = softmax_i(w_a . g_i),   x_bar = sum_i a_i x_i                 (mode="attention")

    (without SGRAF's batch norm and dropout, so that a score does not depend on the batch,
    and without the bias of w_a, which the softmax cancels).
    mode="mean" takes x_bar = q_bar. l2-normalised when ``l2_norm``. Padded items (mask
    False) take no part.
    """

    def __init__(self, dim: int, mode: str = "attention", l2_norm: bool = True):
        super().__init__()
        self.mode = _choice(mode, GLOBAL_POOLS, "global_pool")
        self.l2_norm = l2_norm
        if mode == "attention":
            self.local = nn.Linear(dim, dim)
            self.query = nn.Linear(dim, dim)
            self.score = nn.Linear(dim, 1, bias=False)   # a bias would cancel in softmax

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, P, d), mask (B, P) bool or None -> (B, d)."""
        if mask is None:
            mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        x = x.masked_fill(~mask[..., None], 0.0)
        q_bar = x.sum(1) / mask.sum(1, keepdim=True).to(x.dtype)
        if self.mode == "mean":
            out = q_bar
        else:
            g = torch.tanh(self.local(x)) * torch.tanh(self.query(q_bar))[:, None, :]
            logits = self.score(g).squeeze(-1).masked_fill(~mask, float("-inf"))
            out = (torch.softmax(logits, dim=1)[..., None] * x).sum(1)
        return _l2(out) if self.l2_norm else out


# ---------------------------------------------------------------------------------------
# Eqs. 4-6: one layer of hierarchical similarity reasoning


class HSRLayer(nn.Module):
    """TSHSR eqs. 4-6, one HSR layer over the nodes S (B, P, m) of B image-text pairs.

        R_pq = (W_p S_p) . (W_q S_q)                     eq. 4, the relation matrix
        R'   = R (.) sigmoid(f(R))                        eq. 5, f a 3x3 convolution
        S*   = W_r(R' (S W_g)) + S                        eq. 6, residual update

    ``mask`` (B, P) marks the real nodes of each pair (its words and its global node).
    R is 0 wherever a row or column is not a real node, so the convolution, which pads
    with zeros, sees each pair's real (L+1) x (L+1) matrix exactly as if it stood alone;
    padded nodes leave the layer as 0. Linear maps have a bias when ``bias``; the
    paper gives no nonlinearity and no normalisation of R, and none is added. The pairs
    of linear maps that meet the nodes one after the other (W_p and W_q in eq. 4, W_g and
    W_r in eq. 6) are multiplied together first: the same numbers up to rounding, half the
    products (tests compare the layer with a loop over the nodes of eqs. 4-6). Where only
    the global node is read out, the last layer updates it alone (:meth:`last_node`).
    """

    def __init__(self, sim_dim: int, relation_dim: int | None = None, bias: bool = True):
        super().__init__()
        relation_dim = sim_dim if relation_dim is None else relation_dim
        self.W_p = nn.Linear(sim_dim, relation_dim, bias=bias)    # varphi of eq. 4
        self.W_q = nn.Linear(sim_dim, relation_dim, bias=bias)    # phi of eq. 4
        self.f = nn.Conv2d(1, 1, kernel_size=3, padding=1, bias=bias)   # eq. 5
        self.W_g = nn.Linear(sim_dim, sim_dim, bias=bias)          # eq. 6
        self.W_r = nn.Linear(sim_dim, sim_dim, bias=bias)          # eq. 6

    def relation(self, S: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Eq. 4: R (B, P, P), 0 outside the real nodes."""
        pair = mask[:, :, None] & mask[:, None, :]
        return self.relation_rows(S, S).masked_fill(~pair, 0.0)

    def relation_rows(self, rows: torch.Tensor, S: torch.Tensor) -> torch.Tensor:
        """Eq. 4's R_pq = (W_p S_p + b_p) . (W_q S_q + b_q) for the nodes ``rows``
        (B, r', s) against the nodes S (B, P, s) -> (B, r', P), nothing masked.

        When the relation width r is at least half the similarity width s, W_p and W_q
        are multiplied together before they meet the nodes, one s x s product per node
        instead of two s x r ones (the same numbers up to rounding):
        R_pq = (S_p^T W_p^T W_q + b_p^T W_q) S_q + (S_p . W_p^T b_q + b_p . b_q)."""
        W_p, W_q = self.W_p.weight, self.W_q.weight                     # (r, s)
        if 2 * W_p.shape[0] < W_p.shape[1]:
            return self.W_p(rows) @ self.W_q(S).transpose(1, 2)
        b_p, b_q = self.W_p.bias, self.W_q.bias
        R = F.linear(rows, W_q.t() @ W_p, None if b_p is None else W_q.t() @ b_p) \
            @ S.transpose(1, 2)
        if b_q is not None:
            R = R + F.linear(rows, (W_p.t() @ b_q)[None], (b_p @ b_q)[None])
        return R

    def reweight(self, R: torch.Tensor) -> torch.Tensor:
        """Eq. 5: R' = R (.) sigmoid(f(R)); 0 where R is."""
        return R * torch.sigmoid(self.f(R.unsqueeze(1)).squeeze(1))

    def update(self, R2: torch.Tensor, S: torch.Tensor, S_p: torch.Tensor) -> torch.Tensor:
        """Eq. 6, W_r (R' (W_g S + b_g)) + b_r + S_p, for the rows R2 (B, r', P) of R'
        and their own nodes S_p (B, r', s). W_r and W_g are multiplied together before
        they meet the nodes: one s x s product per node instead of two."""
        W_r = self.W_r.weight
        out = F.linear(R2 @ S, W_r @ self.W_g.weight, self.W_r.bias)
        if self.W_g.bias is not None:
            out = out + R2.sum(-1, keepdim=True) * (W_r @ self.W_g.bias)
        return out + S_p

    def forward(self, S: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        R2 = self.reweight(self.relation(S, mask))
        return self.update(R2, S, S).masked_fill(~mask[:, :, None], 0.0)

    def last_node(self, S: torch.Tensor, mask: torch.Tensor, idx: torch.Tensor
                  ) -> torch.Tensor:
        """Eqs. 4-6 for one node of each pair, its last real node (position ``idx``
        (B,), a real node that no real node follows): (B, s), row ``idx`` of
        :meth:`forward`'s output. Eq. 5's 3x3 convolution at that row reads R's rows
        idx - 1, idx and idx + 1, and the last is 0, so only two rows of R are formed."""
        B, P, s = S.shape
        rows = torch.stack([(idx - 1).clamp_min(0), idx], dim=1)          # (B, 2)
        S_rows = S.gather(1, rows[..., None].expand(B, 2, s))
        keep = torch.stack([idx >= 1, torch.ones_like(idx, dtype=torch.bool)], dim=1)
        R = self.relation_rows(S_rows, S).masked_fill(
            ~(keep[:, :, None] & mask[:, None, :]), 0.0)                  # eq. 4, 2 rows
        band = F.pad(R, (0, 0, 0, 1))                                      # row idx + 1: 0
        f = self.f(band.unsqueeze(1)).squeeze(1)[:, 1]                     # eq. 5 at idx
        R2 = (R[:, 1] * torch.sigmoid(f))[:, None]                         # (B, 1, P)
        return self.update(R2, S, S_rows[:, 1:]).squeeze(1)                # eq. 6


def i2t_nodes(s_i2t: torch.Tensor, s_g: torch.Tensor, lengths: torch.Tensor):
    """The initial image-to-text feature S^{i2t} = {S_1, ..., S_L, S_{L+1}} of Section III-C:
    each text's L word nodes (eq. 2 through eq. 1) in order, then its global node s^g at
    position L + 1, then padding.

    s_i2t (n, m, beta, s), s_g (n, m, s), lengths (m,) -> nodes (n, m, beta + 1, s) and
    the node mask (m, beta + 1), True at positions 1..L+1 (0-based 0..L).
    """
    beta = s_i2t.shape[2]
    pos = torch.arange(beta + 1, device=lengths.device)
    is_global = (pos[None, :] == lengths[:, None])                       # (m, beta + 1)
    real = pos[None, :] <= lengths[:, None]
    nodes = F.pad(s_i2t, (0, 0, 0, 1))
    nodes = torch.where(is_global[None, :, :, None], s_g[:, :, None, :], nodes)
    return nodes.masked_fill(~real[None, :, :, None], 0.0), real


def t2i_alignment(s_t2i: torch.Tensor, s_g: torch.Tensor) -> torch.Tensor:
    """TSHSR eq. 7: S*_{t2i} = (1 / (K + 1)) sum_j S^{t2i}_j over the K region nodes (eq. 3
    through eq. 1) and the global node s^g. s_t2i (..., K, s), s_g (..., s) -> (..., s)."""
    return (s_t2i.sum(-2) + s_g) / (s_t2i.shape[-2] + 1)


# ---------------------------------------------------------------------------------------
# The network


class TSHSRNet(nn.Module):
    """TSHSR (Fig. 3) as a network with the interface the training loop expects.

    ``encode_images(patch_feats)``: (N, K, img_dim) -> (N, K, embed_dim) region vectors
    (a linear map, Section III-A-1). ``encode_texts(tokens, lengths)``: a Bi-GRU whose
    word vector is the mean of its two directions (Section III-A-2; the project's
    :class:`haan_core.models.TextEncoder`) -> :class:`TextEmbedding`. ``similarity`` scores
    every image against every text (eqs. 1-8 and the score head).

    Parameters (defaults: the paper's Section IV-A-3 where it gives one)
      word_dim=300, embed_dim=1024 (d), sim_dim=256 (m), lam=9 (eqs. 2-3), n_layers=3 (M;
      0 switches HSR off); and where the paper is silent:
      relation_dim    width of the embeddings varphi, phi of eq. 4 (None: sim_dim)
      global_pool     "attention" (SGRAF's pooling, see :class:`GlobalPool`) or "mean"
      sim_norm        the denominator of eq. 1, "projected" or "difference"
      share_projection  one W of eq. 1 for s^g, s^{i2t} and s^{t2i} (eq. 1 names one W);
                      False gives each its own, as SGRAF has for local and global
      readout         the image-to-text vector taken from the last HSR layer's nodes:
                      "global" (the global node S_{L+1}, as SGRAF reads its global node)
                      or "mean" (the mean of the L + 1 nodes)
      score_head      the scalar score of S*: "sigmoid" (sigmoid(w . S* + b), SGRAF's
                      evaluation head) or "linear" (w . S* + b)
      bias            biases in the linear maps W, W_p, W_q, W_g, W_r and the convolution f
      l2_norm         l2-normalise region and word vectors, global features and attended
                      features (as SGRAF does)
      max_chunk_elements  memory bound of one block of pairs in ``similarity``
    """

    def __init__(self, img_dim: int, vocab_size: int, *, word_dim: int = 300,
                 embed_dim: int = 1024, sim_dim: int = 256, relation_dim: int | None = None,
                 lam: float = 9.0, n_layers: int = 3, global_pool: str = "attention",
                 sim_norm: str = "projected", share_projection: bool = True,
                 readout: str = "global", score_head: str = "sigmoid", bias: bool = True,
                 l2_norm: bool = True, max_chunk_elements: int = 1 << 23):
        super().__init__()
        for name, v in (("img_dim", img_dim), ("vocab_size", vocab_size),
                        ("word_dim", word_dim), ("embed_dim", embed_dim),
                        ("sim_dim", sim_dim), ("max_chunk_elements", max_chunk_elements)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise HAANInputError(f"{name} must be a positive integer, got {v!r}")
        if not isinstance(n_layers, int) or isinstance(n_layers, bool) or n_layers < 0:
            raise HAANInputError(f"n_layers (M) must be an integer >= 0, got {n_layers!r}")
        if not isinstance(lam, (int, float)) or not math.isfinite(lam):
            raise HAANInputError(f"lam must be a finite number, got {lam!r}")
        self.sim_norm = _choice(sim_norm, SIM_NORMS, "sim_norm")
        self.readout = _choice(readout, READOUTS, "readout")
        self.score_head = _choice(score_head, SCORE_HEADS, "score_head")
        self.lam = float(lam)
        self.l2_norm = l2_norm
        self.max_chunk_elements = max_chunk_elements
        self.vocab_size = vocab_size
        self.img_fc = nn.Linear(img_dim, embed_dim)
        self.txt = TextEncoder(vocab_size, word_dim, embed_dim)
        self.img_pool = GlobalPool(embed_dim, global_pool, l2_norm)
        self.txt_pool = GlobalPool(embed_dim, global_pool, l2_norm)
        self.W_glo = nn.Linear(embed_dim, sim_dim, bias=bias)             # W of eq. 1
        self.W_i2t = self.W_glo if share_projection else nn.Linear(embed_dim, sim_dim, bias)
        self.W_t2i = self.W_glo if share_projection else nn.Linear(embed_dim, sim_dim, bias)
        self.hsr = nn.ModuleList(HSRLayer(sim_dim, relation_dim, bias)
                                 for _ in range(n_layers))
        self.head = nn.Linear(sim_dim, 1)

    # -- encoders ------------------------------------------------------------------------

    def encode_images(self, patch_feats: torch.Tensor) -> torch.Tensor:
        """(N, K, img_dim) patch ("region") features -> (N, K, embed_dim) vectors v_i."""
        check_tensor(patch_feats, "patch_feats", 3)
        if patch_feats.shape[2] != self.img_fc.in_features:
            raise HAANInputError(f"patch_feats must have {self.img_fc.in_features} features "
                                 f"per patch, got {patch_feats.shape[2]}")
        v = self.img_fc(patch_feats)
        return _l2(v) if self.l2_norm else v

    def encode_texts(self, tokens: torch.Tensor, lengths: torch.Tensor) -> TextEmbedding:
        """(M, beta) token ids (0 = padding), (M,) lengths -> :class:`TextEmbedding` with
        word vectors t_j, (M, beta, embed_dim), zero at padding."""
        lengths = check_tokens(tokens, lengths, self.vocab_size)
        real = word_mask(lengths, tokens.shape[1])
        t = self.txt.words(tokens, lengths)          # packed: padding tokens are never read
        t = _l2(t) if self.l2_norm else t
        return TextEmbedding(t.masked_fill(~real[..., None], 0.0), lengths)

    # -- eqs. 1-8 ------------------------------------------------------------------------

    def global_features(self, regions, words, lengths):
        """Section III-A: v_bar (n, d) of each image and t_bar (m, d) of each text."""
        return (self.img_pool(regions),
                self.txt_pool(words, word_mask(lengths, words.shape[1])))

    def _maybe_l2(self, x):
        return _l2(x) if self.l2_norm else x

    def local_similarities(self, regions, words, lengths, v_bar=None, t_bar=None):
        """Eqs. 1-3 for every pair: s^g (n, m, s), s^{i2t} (n, m, beta, s) (word j against
        the regions it attends, eq. 2) and s^{t2i} (n, m, K, s) (region i against the
        words it attends, eq. 3). s^{i2t} at padded words is meaningless (masked later)."""
        if v_bar is None or t_bar is None:
            v_bar, t_bar = self.global_features(regions, words, lengths)
        cos = region_word_cosines(regions, words)
        a_v, _ = attend_regions(regions, words, lengths, self.lam, cos=cos)
        b_t, _ = attend_words(regions, words, lengths, self.lam, cos=cos)
        s_g = similarity_vector(v_bar[:, None, :], t_bar[None, :, :], self.W_glo,
                                self.sim_norm)
        s_i2t = similarity_vector(self._maybe_l2(a_v), words[None], self.W_i2t,
                                  self.sim_norm)
        s_t2i = similarity_vector(regions[:, None], self._maybe_l2(b_t), self.W_t2i,
                                  self.sim_norm)
        return s_g, s_i2t, s_t2i

    def reason(self, nodes: torch.Tensor, node_mask: torch.Tensor,
               lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Eqs. 4-6 repeated over the M layers: nodes (n, m, P, s), node_mask (m, P) ->
        (n, m, P, s). With ``lengths`` (m,), only the global node S_{L+1} (position L)
        is wanted: the last layer updates that node alone (:meth:`HSRLayer.last_node`)
        and it is returned, (n, m, s)."""
        n, m, P, s = nodes.shape
        S = nodes.reshape(n * m, P, s)
        mask = node_mask[None].expand(n, m, P).reshape(n * m, P)
        layers = list(self.hsr)
        if lengths is None:
            for layer in layers:
                S = layer(S, mask)
            return S.view(n, m, P, s)
        idx = lengths[None].expand(n, m).reshape(n * m)
        for layer in layers[:-1]:
            S = layer(S, mask)
        if layers:
            return layers[-1].last_node(S, mask, idx).view(n, m, s)
        return S.gather(1, idx[:, None, None].expand(-1, 1, s)).view(n, m, s)

    def global_representation(self, regions, words, lengths, v_bar=None, t_bar=None):
        """Eqs. 1-8 for every pair: S*_{i2t}, S*_{t2i} and S* = S*_{i2t} + S*_{t2i}, each
        (n, m, s)."""
        s_g, s_i2t, s_t2i = self.local_similarities(regions, words, lengths, v_bar, t_bar)
        nodes, node_mask = i2t_nodes(s_i2t, s_g, lengths)
        if self.readout == "global":                                       # eqs. 4-6
            S_i2t = self.reason(nodes, node_mask, lengths)                # node S_{L+1}
        else:
            S = self.reason(nodes, node_mask)
            S_i2t = S.sum(2) / (lengths + 1).to(S.dtype)[None, :, None]
        S_t2i = t2i_alignment(s_t2i, s_g)                                  # eq. 7
        return S_i2t, S_t2i, S_i2t + S_t2i                                 # eq. 8

    def score(self, S_star: torch.Tensor) -> torch.Tensor:
        """The scalar similarity of S* (eq. 8's vector): the score head."""
        out = self.head(S_star).squeeze(-1)
        return torch.sigmoid(out) if self.score_head == "sigmoid" else out

    def similarity(self, img_emb: torch.Tensor, txt_emb, chunk_size: int | None = None,
                   max_chunk_elements: int | None = None) -> torch.Tensor:
        """The (N, M) TSHSR score of every image with every text.

        img_emb: (N, K, d) from :meth:`encode_images`; txt_emb: ``(words, lengths)`` from
        :meth:`encode_texts`. Pairs are scored in blocks of ``chunk_size`` texts (all that
        fit under ``max_chunk_elements`` when None) and as many images as keep one
        (images, texts, max(beta + 1, K), max(d, s)) tensor under ``max_chunk_elements``
        (default: the network's); the blocks give the same numbers as one block would.
        """
        try:
            words, lengths = txt_emb
        except (TypeError, ValueError):
            raise HAANInputError("txt_emb must be (words, lengths), as encode_texts returns"
                                 ) from None
        regions = img_emb
        lengths = _check_pair_embeddings(regions, words, lengths)
        max_el = self.max_chunk_elements if max_chunk_elements is None else max_chunk_elements
        for name, v in (("chunk_size", chunk_size), ("max_chunk_elements", max_el)):
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
                raise HAANInputError(f"{name} must be a positive integer or None, got {v!r}")
        N, K, d = regions.shape
        M, beta, _ = words.shape
        real = word_mask(lengths, beta)
        # a second guard: every step below masks padded words itself
        words = words.masked_fill(~real[..., None], 0.0)
        v_bar, t_bar = self.global_features(regions, words, lengths)
        per_pair = max(beta + 1, K) * max(d, self.W_glo.out_features)
        t_chunk = chunk_size if chunk_size is not None else max(1, max_el // per_pair)
        t_chunk = min(t_chunk, M)
        i_chunk = min(N, max(1, max_el // (t_chunk * per_pair)))
        rows = []
        for i in range(0, N, i_chunk):
            cols = []
            for j in range(0, M, t_chunk):
                w, n_ = words[j:j + t_chunk], lengths[j:j + t_chunk]
                w = w[:, :int(n_.max())]                 # this block's longest text
                *_, S_star = self.global_representation(
                    regions[i:i + i_chunk], w, n_, v_bar[i:i + i_chunk], t_bar[j:j + t_chunk])
                cols.append(self.score(S_star))
            rows.append(torch.cat(cols, dim=1))
        return torch.cat(rows, dim=0)


# ---------------------------------------------------------------------------------------
# Eq. 9: the bidirectional ranking loss


def tshsr_loss(sim: torch.Tensor, img_labels: torch.Tensor, txt_labels: torch.Tensor,
               margin: float = 0.2, hardest: bool = True, directions: str = "both",
               reduction: str = "mean") -> torch.Tensor:
    """TSHSR eq. 9, the bidirectional ranking loss of VSE++ [13], with class-level pairs.

    sim (N, M): rows images, columns texts. A positive pair (i, j) is one of a single class
    (img_labels[i] == txt_labels[j]); the negatives of image i are the texts of other
    classes, those of text j the images of other classes, so a same-class pair is never a
    negative. For every positive pair:

        [margin - S(i, j) + max_{k neg of i} S(i, k)]_+      (direction "i2t": t^-)
      + [margin - S(i, j) + max_{k neg of j} S(k, j)]_+      (direction "t2i": v^-)

    ``hardest=False`` sums each hinge over all negatives instead of taking the hardest.
    An anchor without negatives contributes 0. ``reduction="mean"`` divides the total by
    the number of positive pairs (0 when there is none), "sum" returns it.
    """
    check_tensor(sim, "sim", 2)
    check_nonempty(sim, "sim", 0)
    check_nonempty(sim, "sim", 1)
    img_labels = check_labels(img_labels, "img_labels", sim.shape[0]).to(sim.device)
    txt_labels = check_labels(txt_labels, "txt_labels", sim.shape[1]).to(sim.device)
    _choice(directions, DIRECTIONS, "directions")
    _choice(reduction, REDUCTIONS, "reduction")
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) \
            or not math.isfinite(margin):
        raise HAANInputError(f"margin must be a finite number, got {margin!r}")
    pos = img_labels[:, None] == txt_labels[None, :]
    total = hinge_sum(sim, pos, margin, hardest, directions)
    if reduction == "mean":
        total = total / pos.sum().clamp_min(1)
    return total
