"""DCCA: Andrew, Arora, Bilmes and Livescu, "Deep Canonical Correlation Analysis" (ICML
2013), a row of HAAN's Table 3 (issue #12), on HAAN's features.

Two networks f_1 (images) and f_2 (texts) are trained to maximise the total canonical
correlation of their outputs H_1 = f_1(X_1), H_2 = f_2(X_2) (o x m, m pairs) (DCCA eq. 1):

    corr(H_1, H_2) = ||T||_tr = trace((T^T T)^{1/2}),   T = S11^{-1/2} S12 S22^{-1/2}  (eq. 10)

    S12 = H1c H2c^T / (m - 1),  S11 = H1c H1c^T / (m - 1) + r1 I,  S22 likewise with r2,

where H1c, H2c are the centred outputs. The sum of all o canonical correlations is the
trace norm of T (the sum of its singular values). Computed here in float64, with each
S^{-1/2} replaced by the inverse of its Cholesky factor: L_1^{-1} S12 L_2^{-T} = Q_1 T Q_2^T
with Q orthogonal, so its singular values are T's, and Cholesky, triangular solves and
singular values have stable gradients (no eigen-decomposition of a near-degenerate
matrix, no deprecated solver). The gradient of eq. 10 is the one of the paper's eqs. 11-12.

After training, linear CCA (:func:`haan_core.methods.cca.canonical`) is fitted on the two
networks' outputs for the train split, and a pair is scored by the cosine of its first
``components`` canonical projections (DCCA Section 3: "the final representation ...
computed by projecting onto the top canonical directions"). The fit is redone whenever
the network is switched to evaluation mode (``train(False)``, which the training loop does
before it validates or tests), on the train split it was built with; it is stored as
buffers, so the snapshot the loop keeps carries the CCA of its own weights.

Adaptation to this project (ambiguity log 55): images are the global feature, texts the
bag of words (as for CCA and KCCA); each network has two hidden layers of 1024 units with
the paper's nonlinearity s = g^{-1}, g(y) = y^3 / 3 + y (Section 4.1; ``activation``), o =
64 outputs; trained by Adam on minibatches of 800 pairs rather than the paper's full-batch
L-BFGS with layer-wise pretraining (Wang et al. 2015 showed minibatches of a few hundred
work), r1 = r2 = 1e-4.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from ..errors import HAANInputError, check_tensor
from .cca import canonical
from .liu import bag_of_words

ACTIVATIONS = ("cube_root", "sigmoid", "relu")


class _InverseCubic(torch.autograd.Function):
    """s(x) with its exact derivative s'(x) = 1 / g'(s(x)) = 1 / (s(x)^2 + 1)."""

    @staticmethod
    def forward(ctx, x):
        ax = x.abs()
        a = (1.5 * ax + torch.sqrt(2.25 * ax * ax + 1.0)).pow(1.0 / 3.0)
        y = torch.sign(x) * (a - 1.0 / a)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad / (y * y + 1.0)


def cube_root_activation(x: torch.Tensor) -> torch.Tensor:
    """DCCA Section 4.1's nonlinearity s(x) = g^{-1}(x), g(y) = y^3 / 3 + y: the one real
    root of y^3 + 3y - 3x = 0 (Cardano), written y = a - 1/a with a = cbrt(1.5|x| +
    sqrt(2.25 x^2 + 1)) >= 1 and the sign of x (s is odd), which has no cancellation; its
    derivative is 1 / (y^2 + 1) (autograd through sign would give 0 at x = 0)."""
    return _InverseCubic.apply(x)


class _Activation(nn.Module):
    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def forward(self, x):
        if self.kind == "cube_root":
            return cube_root_activation(x)
        return torch.sigmoid(x) if self.kind == "sigmoid" else torch.relu(x)


def mlp(in_dim: int, hidden: tuple, out_dim: int, activation: str) -> nn.Sequential:
    """Fully connected layers with ``activation`` between them, none after the last."""
    layers, width = [], in_dim
    for h in hidden:
        layers += [nn.Linear(width, h), _Activation(activation)]
        width = h
    layers.append(nn.Linear(width, out_dim))
    return nn.Sequential(*layers)


def total_correlation(H1: torch.Tensor, H2: torch.Tensor, r1: float = 1e-4,
                      r2: float = 1e-4) -> torch.Tensor:
    """DCCA eq. 10: the sum of the canonical correlations of H1 (m, o1) and H2 (m, o2), one
    row per pair (the transpose of the paper's o x m), regularised by r1, r2 (a ridge on
    each covariance); float64, differentiable. Returns a 0-d float64 tensor."""
    check_tensor(H1, "H1", 2)
    check_tensor(H2, "H2", 2)
    if H1.shape[0] != H2.shape[0]:
        raise HAANInputError(f"H1 and H2 need one row per pair, the same number: got "
                             f"{H1.shape[0]} and {H2.shape[0]}")
    m = H1.shape[0]
    if m < 2:
        raise HAANInputError("the canonical correlation needs at least 2 pairs")
    for name, r in (("r1", r1), ("r2", r2)):
        if isinstance(r, bool) or not isinstance(r, (int, float)) or not math.isfinite(r) \
                or r <= 0:
            raise HAANInputError(f"{name} must be a finite number > 0 (a ridge that keeps the "
                                 f"covariance invertible), got {r!r}")
    A, B = H1.double(), H2.double()
    A, B = A - A.mean(0), B - B.mean(0)
    eye = lambda d: torch.eye(d, dtype=A.dtype, device=A.device)   # noqa: E731
    S11 = A.T @ A / (m - 1) + r1 * eye(A.shape[1])
    S22 = B.T @ B / (m - 1) + r2 * eye(B.shape[1])
    S12 = A.T @ B / (m - 1)
    L1, L2 = torch.linalg.cholesky(S11), torch.linalg.cholesky(S22)
    T = torch.linalg.solve_triangular(L1, S12, upper=False)             # L1^{-1} S12
    T = torch.linalg.solve_triangular(L2, T.T, upper=False).T           # ... L2^{-T}
    return torch.linalg.svdvals(T).sum()


class DCCANet(nn.Module):
    """DCCA's two networks, and the linear CCA fitted on their train-split outputs.

    ``train_inputs`` = (global features, bag of words) of the train split, on which the
    CCA is refitted each time the network enters evaluation mode."""
    image_inputs = ("global",)

    def __init__(self, img_dim: int, vocab: int, train_inputs: tuple, *,
                 hidden=(1024, 1024), out_dim: int = 64, activation: str = "cube_root",
                 r1: float = 1e-4, r2: float = 1e-4, components: int | None = None,
                 cca_reg: float = 1e-4):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise HAANInputError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
        hidden = tuple(int(h) for h in hidden)
        if not all(h >= 1 for h in hidden) or out_dim < 1:
            raise HAANInputError(f"hidden widths and out_dim must be positive, got {hidden}, "
                                 f"{out_dim}")
        components = out_dim if components is None else int(components)
        if not 1 <= components <= out_dim:
            raise HAANInputError(f"components must be in 1..out_dim={out_dim}, got "
                                 f"{components}")
        self.f1 = mlp(img_dim, hidden, out_dim, activation)
        self.f2 = mlp(vocab, hidden, out_dim, activation)
        self.vocab, self.r1, self.r2 = vocab, float(r1), float(r2)
        self.components, self.cca_reg = components, float(cca_reg)
        g, bow = train_inputs
        self.register_buffer("train_global", g.float(), persistent=False)
        self.register_buffer("train_bow", bow.float(), persistent=False)
        for name, width in (("Wx", out_dim), ("Wy", out_dim)):
            self.register_buffer(name, torch.zeros(width, components, dtype=torch.float64))
        self.register_buffer("mx", torch.zeros(out_dim, dtype=torch.float64))
        self.register_buffer("my", torch.zeros(out_dim, dtype=torch.float64))

    # the networks' outputs H (what the DCCA objective sees)
    def image_outputs(self, g):
        return self.f1(g)

    def text_outputs(self, bow):
        return self.f2(bow)

    def train(self, mode: bool = True):
        super().train(mode)
        if not mode:
            self.fit_cca()
        return self

    @torch.no_grad()
    def fit_cca(self) -> None:
        """Linear CCA on the train split's outputs of the current networks."""
        fit = canonical(self.f1(self.train_global), self.f2(self.train_bow), self.cca_reg)
        k = self.components
        self.Wx.copy_(fit["Wx"][:, :k])
        self.Wy.copy_(fit["Wy"][:, :k])
        self.mx.copy_(fit["mx"])
        self.my.copy_(fit["my"])

    def encode_images(self, inputs):
        (g,) = inputs
        H = self.f1(g)
        return H if self.training else ((H.double() - self.mx) @ self.Wx).float()

    def encode_texts(self, tokens, lengths):
        H = self.f2(bag_of_words(tokens, lengths, self.vocab))
        return H if self.training else ((H.double() - self.my) @ self.Wy).float()

    def similarity(self, img, txt, chunk_size=None) -> torch.Tensor:
        """The cosine of every pair: of the canonical projections in evaluation mode (the
        score), of the raw outputs while training (only logged: the objective is eq. 10)."""
        return nn.functional.normalize(img, dim=1) @ nn.functional.normalize(txt, dim=1).T

    def extra_loss(self, img, txt, img_labels, txt_labels) -> torch.Tensor:
        """-corr(H1, H2) (eq. 10) of the batch: DCCA minimises the negative correlation."""
        return -total_correlation(img, txt, self.r1, self.r2).float()


def dcca_loss(sim, img_labels, txt_labels):
    """DCCA's objective is not a function of the score matrix: all of it is
    :meth:`DCCANet.extra_loss`; the loop adds this zero to it."""
    return sim.new_zeros(())


def build(cfg, data, device, opts: dict) -> DCCANet:
    if data.global_feats is None:
        raise HAANInputError(f"method 'dcca' maps the global image feature, and dataset "
                             f"{data.name!r} has none")
    b = data.batch(data.splits["train"], "cpu")
    bow = bag_of_words(b["tokens"], b["lengths"], len(data.vocab))
    return DCCANet(data.feat_dim, len(data.vocab), (b["global"], bow),
                   hidden=opts["hidden"], out_dim=opts["out_dim"],
                   activation=opts["activation"], r1=opts["r"], r2=opts["r"],
                   components=opts["components"], cca_reg=opts["r"])
