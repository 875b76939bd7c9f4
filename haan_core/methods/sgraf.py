"""SGRAF: Diao, Zhang, Ma and Lu, "Similarity Reasoning and Filtration for Image-Text
Matching" (AAAI 2021), adapted to HAAN's class-level retrieval.

SGRAF scores an image-text pair from *similarity vectors* rather than scalar cosines:

1. global vectors: each image's regions and each text's words are pooled by self-attention,
   queried by their mean (the reference's ``VisualSA``/``TextSA``);
2. similarity representations (eq. 1): s(x, y; W) = W |x - y|^2 / ||W |x - y|^2||_2, with
   |.|^2 the element-wise square; one global vector s^g = s(v_bar, t_bar; W_g) (eq. 2) and,
   for every word j, s^l_j = s(a^v_j, t_j; W_l) (eq. 5), where a^v_j (eq. 4) is the image
   attended by word j (text-to-image attention, eq. 3, SCAN's with temperature
   lambda = 9);
3. the L + 1 vectors are the nodes of a graph, reduced to one vector by either
   * SGR, Similarity Graph Reasoning: ``sgr_steps`` steps of edges e_pq = softmax_q of
     (W_in s_p) . (W_out s_q) (eq. 6) and updates s_p <- ReLU(W_r sum_q e_pq s_q)
     (eqs. 7-8);
     the global node is read out; or
   * SAF, Similarity Attention Filtration: weights beta_p = sigma(BN(W_f s_p)) / sum_q
     sigma(BN(W_f s_q)) (eq. 9), s_f = sum_p beta_p s_p (inline);
4. the score is sigmoid(w . s + b).

Training is the bidirectional hinge triplet loss with the hardest negative of the batch
(eq. 10, VSE++'s), margin 0.2. The paper trains SGR and SAF as two separate networks
and, for "SGRAF", averages the two networks' score matrices (:func:`sgraf_combine`).
Here one :class:`SGRAFNet` is one of the two (``module="sgr"`` or ``"saf"``).

Equation numbers are those of the paper (arXiv 2101.01368, checked against its PDF): 1
the similarity function, 2 the global vector, 3 the attention weights, 4 the attended
image vector, 5 the local vectors, 6 the edges, 7-8 the node update (aggregation, then
ReLU of W_r), 9 the SAF weights (s_f is written inline), 10 the loss. Where the paper
and its reference code (github.com/Paranioar/SGRAF, ``model.py``) differ, we follow the
code and say so:

* eq. 3: the reference normalises LeakyReLU(c_ij, 0.1) (the paper prints [c_ij]_+) by
  its l2 norm over the words j of the text, then takes the softmax over the regions i
  with temperature 9; eq. 4: a^v_j is l2-normalised (the paper does not normalise it).
  c_ij is the cosine of region i and word j (the reference's dot product of unit
  vectors: the same number for encoded inputs);
* norms are floored at ``EPS`` where the reference adds 1e-8 to them (and to the sum of
  eq. 9), as everywhere in this package;
* s_f: the reference l2-normalises it before the score head (the paper does not);
* a bias in every linear map, except where it cancels in a softmax or in the batch norm,
  where it would only be a parameter without gradient: the score vector of the pooling,
  W_out of eq. 6, and W_f of eq. 9 when the batch norm is on (the paper's eqs. 6 and 8
  print no biases);
* Xavier-uniform weights and zero biases for the linear maps, the word embedding uniform
  in [-0.1, 0.1] (padding row 0), as in the reference.

Adaptation to this project (each choice is a parameter or stated here; ambiguity log):

* regions: SGRAF's 36 Faster R-CNN regions are replaced by the alpha = 9 patch features of
  the 3 x 3 grid (row-major; SGRAF has no positional term, so their order does not
  matter), each through a linear layer and l2-normalised;
* words: HAAN's packed Bi-GRU (:class:`haan_core.models.TextEncoder`, the mean of the two
  directions, as SGRAF), l2-normalised; no dropout (the reference drops 0.4 of the word
  embeddings and of the pooling's hidden units) and no batch norm in the image pooling
  (the reference normalises its hidden units over the batch): so that an image's or a
  text's vectors do not depend on the other items of the batch;
* SAF's batch norm (``saf_batchnorm=True``, eq. 9 names it): BatchNorm1d(1) over the
  scalars W_f s_p. The reference scores one caption against the batch's images at a time,
  so in training its statistics are those of one caption: the mean and variance over all
  images of the call and that caption's L + 1 nodes. We compute exactly these, over the
  real nodes only (padding is not a node), for all captions at once; the running mean and
  variance are updated once per caption in caption order (momentum 0.1), as M successive
  calls of the reference would, so they follow the last ~20 captions seen. In training
  mode a score therefore depends on the other images of the call (never on the other
  texts); in eval mode the running statistics are used and it depends on the pair only.
  ``saf_batchnorm=False`` is sigma(W_f s_p + b) in both modes;
* texts are token ids (0 = padding) with lengths; padded words are never nodes: they are
  masked in the word normalisation and out of the attention, the text pooling, the
  graph's edges, the filtration weights and the batch-norm statistics, and receive no
  gradient;
* positives are the pairs of one class, and a same-class pair is never a negative in
  :func:`sgraf_loss`.

Shapes: N images with K regions, M texts of at most n words, width D, similarity width
s = ``sim_dim``. All N x M scores are computed at once, a chunk of texts at a time (no loop
over images or texts); the largest intermediates are (N, chunk, n, D), (N, chunk, K, n)
and (N, chunk, n + 1, max(n + 1, s)). All images are in every chunk, so the per-caption
batch-norm statistics, and hence the scores, do not depend on the chunking. SGR is
computed with two short cuts that change no number beyond rounding: eq. 6's W_in and W_out
are multiplied together before they meet the nodes (:meth:`GraphReasoningStep.queries`),
and in ``similarity`` the last step updates the global node alone, the only node read out
(:meth:`GraphReasoningStep.first_node`; ``explain`` updates every node, and the tests hold
the two to each other).

Training recipe of the reference (README and ``opts.py``): Adam, lr 2e-4 decayed by 0.1
once, batch 128, gradient norm clipped at 2, margin 0.2 with the hardest negative; on
Flickr30K SGR trains 40 epochs (decay after 30) and SAF 30 (decay after 20); on MSCOCO both
20 (decay after 10). ``RECIPE`` holds the Flickr30K settings per module, under the field
names of :class:`haan_core.HAANConfig`.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import HAANInputError, check_tensor
from ..models import TextEncoder
from ..similarity import EPS, word_mask
from .shan import (SHANTexts, check_pair_embeddings, check_patches, check_tokens,
                   shan_loss)

__all__ = ["RECIPE", "MODULES", "SGRAFNet", "SelfAttentionPool", "GraphReasoningStep",
           "AttentionFiltration", "similarity_vector", "text_to_image_attention",
           "sgraf_loss", "sgraf_combine"]

MODULES = ("sgr", "saf")

# Flickr30K, README of github.com/Paranioar/SGRAF and its opts.py defaults
RECIPE = {
    "sgr": {"optimizer": "adam", "lr": 2e-4, "batch_size": 128, "epochs": 40,
            "lr_decay_epoch": 30, "lr_decay": 0.1, "grad_clip": 2.0, "tri_margin": 0.2,
            "tri_hardest": True},
    "saf": {"optimizer": "adam", "lr": 2e-4, "batch_size": 128, "epochs": 30,
            "lr_decay_epoch": 20, "lr_decay": 0.1, "grad_clip": 2.0, "tri_margin": 0.2,
            "tri_hardest": True},
}


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True).clamp_min(EPS)


# ----------------------------------------------------------------- eqs. 1-5


def similarity_vector(x: torch.Tensor, y: torch.Tensor, proj: nn.Linear) -> torch.Tensor:
    """SGRAF eq. 1: s(x, y; W) = W |x - y|^2 / ||W |x - y|^2||_2 (|.|^2 element-wise; W =
    ``proj``, D -> s, with its bias as in the reference). x and y broadcast; the result
    has their broadcast shape with the last axis s. Eq. 2 is this with W_g on the global
    vectors, eq. 5 with W_l on an attended image and a word."""
    return _unit(proj((x - y) ** 2))


def text_to_image_attention(V: torch.Tensor, T: torch.Tensor, mask: torch.Tensor,
                            lam: float = 9.0, leaky_slope: float = 0.1):
    """SGRAF eqs. 3-4 for all pairs: each word j attends to the regions i of each image.

    V (N, K, D) regions, T (M, n, D) words, mask (M, n) real words. With c_ij the cosine
    of region i and word j and f the LeakyReLU of slope ``leaky_slope`` (0.1 in the
    reference; 0 gives the paper's [.]_+):

        c^_ij = f(c_ij) / sqrt(sum_j' f(c_ij')^2)     (over the text's real words j')
        alpha_ij = softmax_i(lam * c^_ij)             (over the regions i; eq. 3)
        a^v_j = l2norm(sum_i alpha_ij v_i)            (eq. 4; l2norm: the reference's)

    Returns (alpha (N, M, K, n), a^v (N, M, n, D)), both 0 at padded words.
    """
    c = torch.einsum("akd,bjd->abkj", _unit(V), _unit(T))
    real = mask[None, :, None, :]
    c = F.leaky_relu(c, leaky_slope).masked_fill(~real, 0.0)
    c_hat = c / c.norm(dim=3, keepdim=True).clamp_min(EPS)
    alpha = torch.softmax(lam * c_hat, dim=2).masked_fill(~real, 0.0)
    attended = _unit(torch.einsum("abkj,akd->abjd", alpha, V))
    return alpha, attended


class SelfAttentionPool(nn.Module):
    """The global image v_bar and text t_bar of SGRAF (the reference's VisualSA/TextSA),
    self-attention queried by the mean of the items:

        q = mean_i x_i,  g_i = tanh(W_l x_i + b_l) (.) tanh(W_q q + b_q),
        w_i = softmax_i(u . g_i),  x_bar = l2norm(sum_i w_i x_i)

    without the reference's dropout and (image side) batch norm, and without the bias of
    u, which the softmax cancels. X (..., P, D), mask (..., P) or None -> (x_bar (..., D),
    w (..., P)); padded items are out of the mean, weigh 0 and are never read.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.local = nn.Linear(dim, dim)
        self.query = nn.Linear(dim, dim)
        self.score = nn.Linear(dim, 1, bias=False)

    def forward(self, X: torch.Tensor, mask: torch.Tensor | None = None):
        if mask is None:
            mask = torch.ones(X.shape[:-1], dtype=torch.bool, device=X.device)
        X = X.masked_fill(~mask[..., None], 0.0)
        q = X.sum(-2) / mask.sum(-1, keepdim=True).to(X.dtype)
        g = torch.tanh(self.local(X)) * torch.tanh(self.query(q))[..., None, :]
        logits = self.score(g).squeeze(-1).masked_fill(~mask, float("-inf"))
        w = torch.softmax(logits, dim=-1)
        return _unit((w[..., None] * X).sum(-2)), w


# ----------------------------------------------------------------- eqs. 6-8: SGR


class GraphReasoningStep(nn.Module):
    """One step of Similarity Graph Reasoning, SGRAF eqs. 6-8, over the nodes of many
    pairs at once:

        e_pq = softmax_q((W_in s_p + b_in) . (W_out s_q))          eq. 6 (real q only)
        s_p <- ReLU(W_r sum_q e_pq s_q + b_r)                       eqs. 7-8

    W_out has no bias: it would add (W_in s_p + b_in) . b_out, the same for every q, which
    the softmax cancels. S (..., P, s), mask broadcastable to S.shape[:-1] (True at real
    nodes) -> (new S, 0 at padded nodes; edges (..., P, P), 0 towards padded nodes).
    """

    def __init__(self, sim_dim: int):
        super().__init__()
        self.w_in = nn.Linear(sim_dim, sim_dim)
        self.w_out = nn.Linear(sim_dim, sim_dim, bias=False)
        self.w_r = nn.Linear(sim_dim, sim_dim)

    def queries(self, S: torch.Tensor) -> torch.Tensor:
        """(W_in s_p + b_in)^T W_out for every node, so that eq. 6's logit of (p, q) is
        this row times s_q: one s x s product per node instead of two (W_in and W_out
        are folded, W_out^T W_in, before they meet the nodes)."""
        w_out = self.w_out.weight
        return F.linear(S, w_out.t() @ self.w_in.weight, w_out.t() @ self.w_in.bias)

    def edges(self, S: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Eq. 6: (..., P, P), rows p (every node), columns q (real nodes only)."""
        logits = self.queries(S) @ S.transpose(-1, -2)
        return torch.softmax(logits.masked_fill(~mask[..., None, :], float("-inf")), dim=-1)

    def forward(self, S: torch.Tensor, mask: torch.Tensor):
        e = self.edges(S, mask)
        out = torch.relu(self.w_r(e @ S.masked_fill(~mask[..., None], 0.0)))   # eqs. 7-8
        return out.masked_fill(~mask[..., None], 0.0), e

    def first_node(self, S: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Eqs. 6-8 for node 0 alone (the global node, always real): (..., P, s) ->
        (..., s), the first row of :meth:`forward`'s nodes. The last step's other nodes
        are never read, so SGR's last step computes only this one."""
        logits = (self.queries(S[..., :1, :]) @ S.transpose(-1, -2)).squeeze(-2)
        e = torch.softmax(logits.masked_fill(~mask, float("-inf")), dim=-1)
        agg = (e[..., None] * S.masked_fill(~mask[..., None], 0.0)).sum(-2)
        return torch.relu(self.w_r(agg))


# ----------------------------------------------------------------- eq. 9: SAF


class AttentionFiltration(nn.Module):
    """Similarity Attention Filtration, SGRAF eq. 9 and s_f, over the nodes of all pairs of
    a chunk: S (N, c, P, s) for N images and c texts, mask (c, P) real nodes.

        z_p = W_f s_p                                   (a bias only without batch norm)
        beta_p = sigma(BN(z_p)) / sum_q sigma(BN(z_q))  eq. 9, over the real nodes
        s_f = l2norm(sum_p beta_p s_p)                  inline (l2norm: the reference's)

    BN (``batch_norm=True``) is the reference's BatchNorm1d(1): in training mode, for each
    text, the mean and (biased) variance of z over the N images and the text's real nodes;
    in eval mode the running statistics. ``batch_norm=False``: BN is the identity.
    """

    def __init__(self, sim_dim: int, batch_norm: bool = True):
        super().__init__()
        self.w_f = nn.Linear(sim_dim, 1, bias=not batch_norm)
        self.bn = nn.BatchNorm1d(1) if batch_norm else None

    def normalise(self, z: torch.Tensor, mask: torch.Tensor):
        """BN of eq. 9: z (N, c, P), mask (c, P) -> (BN(z), per-text statistics or None).
        The statistics (mean, unbiased variance, each (c,)) are what the running averages
        take (see :meth:`update_running`)."""
        if self.bn is None:
            return z, None
        bn = self.bn
        if self.training:
            real = mask[None].expand_as(z)
            count = (mask.sum(-1) * z.shape[0]).to(z.dtype)               # N (L + 1)
            mean = z.masked_fill(~real, 0.0).sum((0, 2)) / count
            dev = z - mean[None, :, None]
            var = (dev ** 2).masked_fill(~real, 0.0).sum((0, 2)) / count   # biased
            z_hat = dev / torch.sqrt(var + bn.eps)[None, :, None]
            stats = (mean.detach(), (var * count / (count - 1)).detach())
        else:
            z_hat = (z - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps)
            stats = None
        return z_hat * bn.weight + bn.bias, stats

    @torch.no_grad()
    def update_running(self, mean: torch.Tensor, var: torch.Tensor) -> None:
        """The running mean and variance after one BatchNorm1d call per text, in order:
        r <- (1 - m) r + m x_j for j = 1..M, in closed form
        r_M = (1 - m)^M r_0 + sum_j m (1 - m)^(M - j) x_j."""
        bn = self.bn
        m = bn.momentum
        if isinstance(m, bool) or not isinstance(m, (int, float)) or not 0 < m <= 1:
            raise HAANInputError(f"the SAF batch norm needs a momentum in (0, 1], got {m!r}")
        M = mean.shape[0]
        decay = (1 - m) ** torch.arange(M - 1, -1, -1, dtype=torch.float64,
                                        device=mean.device)
        for buf, x in ((bn.running_mean, mean), (bn.running_var, var)):
            new = (1 - m) ** M * buf.double() + (m * decay * x.double()).sum()
            buf.copy_(new.to(buf.dtype))
        bn.num_batches_tracked.add_(M)

    def forward(self, S: torch.Tensor, mask: torch.Tensor):
        """-> (s_f (N, c, s), beta (N, c, P), 0 at padded nodes, statistics or None)."""
        z = self.w_f(S).squeeze(-1)
        z_hat, stats = self.normalise(z, mask)
        gate = torch.sigmoid(z_hat).masked_fill(~mask[None], 0.0)
        beta = gate / gate.sum(-1, keepdim=True).clamp_min(EPS)             # eq. 9
        s_f = _unit((beta[..., None] * S.masked_fill(~mask[None, :, :, None], 0.0)).sum(-2))
        return s_f, beta, stats


# ----------------------------------------------------------------- the network


class SGRAFNet(nn.Module):
    """SGR or SAF (one of SGRAF's two networks) with the interface of HAAN's LAN.

    Parameters (defaults: the reference's ``opts.py``):
      img_dim          width of a patch feature (the reference's 2048-d region feature)
      vocab_size       token ids 0..vocab_size-1, 0 = padding
      word_dim=300     learned word embedding
      embed_dim=1024   D, the joint space
      sim_dim=256      s, the width of the similarity vectors (eq. 1)
      module="sgr"     "sgr" (eqs. 6-8) or "saf" (eq. 9)
      sgr_steps=3      graph-reasoning steps of SGR (each its own weights)
      lambda_softmax=9 temperature of eq. 3
      leaky_slope=0.1  negative slope in eq. 3 (the reference's; 0: the paper's [.]_+)
      saf_batchnorm=True  SAF's batch norm of eq. 9 (see the module docstring)
      max_chunk_elements=2**24  texts per chunk when ``similarity`` gets no chunk_size: as
                       many as keep N * chunk * max(n D, K n, (n+1) max(n+1, s)) under it
    """

    def __init__(self, img_dim: int, vocab_size: int, *, word_dim: int = 300,
                 embed_dim: int = 1024, sim_dim: int = 256, module: str = "sgr",
                 sgr_steps: int = 3, lambda_softmax: float = 9.0, leaky_slope: float = 0.1,
                 saf_batchnorm: bool = True, max_chunk_elements: int = 1 << 24):
        super().__init__()
        if module not in MODULES:
            raise HAANInputError(f"module must be one of {MODULES} (SGRAF trains the two "
                                 f"as separate networks), got {module!r}")
        for name, value in (("img_dim", img_dim), ("vocab_size", vocab_size),
                            ("word_dim", word_dim), ("embed_dim", embed_dim),
                            ("sim_dim", sim_dim), ("sgr_steps", sgr_steps),
                            ("max_chunk_elements", max_chunk_elements)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise HAANInputError(f"{name} must be a positive integer, got {value!r}")
        for name, value in (("lambda_softmax", lambda_softmax), ("leaky_slope", leaky_slope)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value):
                raise HAANInputError(f"{name} must be a finite number, got {value!r}")
        if not isinstance(saf_batchnorm, bool):
            raise HAANInputError(f"saf_batchnorm must be True or False, got {saf_batchnorm!r}")
        self.module_name, self.img_dim = module, img_dim
        self.embed_dim, self.sim_dim = embed_dim, sim_dim
        self.vocab_size = vocab_size
        self.lam, self.leaky_slope = float(lambda_softmax), float(leaky_slope)
        self.max_chunk_elements = max_chunk_elements

        self.img = nn.Linear(img_dim, embed_dim)                 # regions
        self.txt = TextEncoder(vocab_size, word_dim, embed_dim)  # words
        self.img_pool = SelfAttentionPool(embed_dim)             # v_bar
        self.txt_pool = SelfAttentionPool(embed_dim)             # t_bar
        self.sim_glo = nn.Linear(embed_dim, sim_dim)             # W_g, eq. 2
        self.sim_loc = nn.Linear(embed_dim, sim_dim)             # W_l, eq. 5
        self.sgr = nn.ModuleList(GraphReasoningStep(sim_dim) for _ in range(sgr_steps)) \
            if module == "sgr" else None
        self.saf = AttentionFiltration(sim_dim, saf_batchnorm) if module == "saf" else None
        self.head = nn.Linear(sim_dim, 1)                        # the score
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The reference's initialisation: Xavier-uniform linear weights, zero biases,
        word embedding uniform in [-0.1, 0.1] (padding row 0); the GRU keeps PyTorch's."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm1d):
                m.reset_parameters()
        with torch.no_grad():
            nn.init.uniform_(self.txt.embed.weight, -0.1, 0.1)
            self.txt.embed.weight[0].zero_()

    # ------------------------------------------------------------- encoders

    def encode_images(self, patch_feats: torch.Tensor) -> torch.Tensor:
        """(N, K, img_dim) patch ("region") features -> (N, K, D) unit region vectors."""
        check_patches(patch_feats, self.img_dim)
        return _unit(self.img(patch_feats))

    def encode_texts(self, tokens: torch.Tensor, lengths: torch.Tensor) -> SHANTexts:
        """Token ids (M, n), lengths (M,) -> SHANTexts(words (M, n, D) unit rows, zero at
        padding; lengths). Sequences are packed: padding never enters the Bi-GRU."""
        lengths = check_tokens(tokens, lengths, self.vocab_size)
        return SHANTexts(_unit(self.txt.words(tokens, lengths)), lengths)

    # ------------------------------------------------------------- scores

    def similarity(self, img_emb: torch.Tensor, txt_emb, chunk_size: int | None = None
                   ) -> torch.Tensor:
        """The (N, M) score of every image with every text (eqs. 1-9 and the head).

        img_emb (N, K, D) from :meth:`encode_images`; txt_emb the (words, lengths) of
        :meth:`encode_texts`. Texts are processed ``chunk_size`` at a time (by default as
        many as fit ``max_chunk_elements``); the chunking changes nothing but memory.
        Words at positions >= length never influence a score. In training mode with
        SAF's batch norm, the running statistics are updated once per text, in order.
        """
        V, T, lengths = self._check_embeddings(img_emb, txt_emb)
        N, K, D = V.shape
        M, n, _ = T.shape
        if chunk_size is None:
            per_text = N * max(n * D, K * n, (n + 1) * max(n + 1, self.sim_dim))
            chunk_size = max(1, self.max_chunk_elements // max(1, per_text))
        elif isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise HAANInputError(f"chunk_size must be a positive integer or None, "
                                 f"got {chunk_size!r}")
        mask = word_mask(lengths, n)
        v_glo, t_glo = self.global_vectors(V, T, mask)
        scores, stats = [], []
        for s in range(0, M, chunk_size):
            out = self._pairs(V, T[s:s + chunk_size], mask[s:s + chunk_size], v_glo,
                              t_glo[s:s + chunk_size])
            scores.append(out["score"])
            stats.append(out["bn_stats"])
        if stats[0] is not None:
            self.saf.update_running(torch.cat([m for m, _ in stats]),
                                    torch.cat([v for _, v in stats]))
        return torch.cat(scores, dim=1)

    def explain(self, img_emb: torch.Tensor, txt_emb) -> dict:
        """Every intermediate for all N x M pairs, unchunked and without updating running
        statistics (for tests and small batches). Keys: v_glo (N, D), t_glo (M, D),
        alpha (N, M, K, n) (eq. 3), attended (N, M, n, D) (eq. 4), s_glo (N, M, s) (eq. 2),
        s_loc (N, M, n, s) (eq. 5), nodes (N, M, n + 1, s) (node 0 global, then the words),
        node_mask (M, n + 1); SGR: steps (the nodes after each step), edges (each step's,
        (N, M, n + 1, n + 1)); SAF: z, z_hat, beta (N, M, n + 1); vector (N, M, s), the
        input of the head; score (N, M)."""
        V, T, lengths = self._check_embeddings(img_emb, txt_emb)
        mask = word_mask(lengths, T.shape[1])
        v_glo, t_glo = self.global_vectors(V, T, mask)
        out = self._pairs(V, T, mask, v_glo, t_glo, details=True)
        out.update(v_glo=v_glo, t_glo=t_glo)
        return out

    def global_vectors(self, V: torch.Tensor, T: torch.Tensor, mask: torch.Tensor):
        """v_bar (N, D) of each image and t_bar (M, D) of each text (self-attention)."""
        return self.img_pool(V)[0], self.txt_pool(T, mask)[0]

    def _pairs(self, V, T, mask, v_glo, t_glo, details=False) -> dict:
        """Eqs. 1-9 and the head for all images V (N, K, D) against texts T (c, n, D).

        Without ``details``, SGR's last step updates the global node alone
        (:meth:`GraphReasoningStep.first_node`), the only node read out."""
        n = int(mask.sum(1).max())                  # this chunk's longest text
        T, mask = T[:, :n], mask[:, :n]
        alpha, attended = text_to_image_attention(V, T, mask, self.lam,
                                                  self.leaky_slope)          # eqs. 3-4
        s_glo = similarity_vector(v_glo[:, None], t_glo[None], self.sim_glo)  # eq. 2
        s_loc = similarity_vector(attended, T[None], self.sim_loc)          # eq. 5
        node_mask = F.pad(mask, (1, 0), value=True)                         # (c, n + 1)
        nodes = torch.cat([s_glo[:, :, None], s_loc], dim=2)
        nodes = nodes.masked_fill(~node_mask[None, :, :, None], 0.0)
        out = {"bn_stats": None}
        if self.sgr is not None:
            S, steps, edges = nodes, [], []
            last = len(self.sgr) - 1
            for i, step in enumerate(self.sgr):                             # eqs. 6-8
                if i == last and not details:
                    vector = step.first_node(S, node_mask[None])
                    break
                S, e = step(S, node_mask[None])
                steps.append(S)
                edges.append(e)
            else:
                vector = S[:, :, 0]                  # the global node
            if details:
                out.update(steps=steps, edges=edges)
        else:
            vector, beta, stats = self.saf(nodes, node_mask)                # eq. 9
            out["bn_stats"] = stats
            if details:
                z = self.saf.w_f(nodes).squeeze(-1)
                out.update(z=z, z_hat=self.saf.normalise(z, node_mask)[0], beta=beta)
        out["score"] = torch.sigmoid(self.head(vector)).squeeze(-1)
        if details:
            out.update(alpha=alpha, attended=attended, s_glo=s_glo, s_loc=s_loc,
                       nodes=nodes, node_mask=node_mask, vector=vector)
        return out

    def _check_embeddings(self, img_emb, txt_emb):
        return check_pair_embeddings(img_emb, txt_emb, self.embed_dim)


# ----------------------------------------------------------------- loss and combination


def sgraf_loss(sim: torch.Tensor, img_labels: torch.Tensor, txt_labels: torch.Tensor,
               margin: float = 0.2, hardest: bool = True, directions: str = "both",
               reduction: str = "mean") -> torch.Tensor:
    """SGRAF eq. 10: the bidirectional hinge triplet loss with the hardest negative of the
    batch, margin 0.2 (the reference's ``ContrastiveLoss`` with ``max_violation``), which
    is VSE++'s loss, the same as SHAN's eq. 17: this is :func:`shan_loss`.

    Class-aware: every same-class pair is a positive and only other-class items are
    negatives, so a same-class pair is never a negative; an anchor without negatives adds
    0. The reference sums over its batch (``reduction="sum"``); the default divides that
    sum by the number of positive pairs, as SHAN's and TSHSR's losses here do.
    """
    return shan_loss(sim, img_labels, txt_labels, margin=margin, hardest=hardest,
                     directions=directions, reduction=reduction)


def sgraf_combine(sim_sgr: torch.Tensor, sim_saf: torch.Tensor) -> torch.Tensor:
    """SGRAF = the mean of the SGR and SAF networks' score matrices, (S_sgr + S_saf) / 2.

    The paper trains the two modules separately and averages their similarities at test
    time; the reference code has no ensemble script, and its author describes it as the
    average of the two stored matrices, then ranked (Paranioar/SGRAF issue #17). Both
    scores are sigmoids in (0, 1), so no rescaling is needed. (N, M), (N, M) -> (N, M).
    """
    check_tensor(sim_sgr, "sim_sgr", 2)
    check_tensor(sim_saf, "sim_saf", 2)
    if sim_sgr.shape != sim_saf.shape:
        raise HAANInputError(f"sim_sgr and sim_saf must score the same images and texts: "
                             f"got shapes {tuple(sim_sgr.shape)} and {tuple(sim_saf.shape)}")
    return (sim_sgr + sim_saf) / 2
