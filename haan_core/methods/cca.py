"""CCA and kernel CCA, the traditional rows of HAAN's Table 3 (issue #12), fitted in closed
form on the train split and scored by the cosine in the common space.

CCA (Hotelling 1936) finds directions w_x, w_y that maximise corr(X w_x, Y w_y). Here each
view is centred and whitened by the Cholesky factor of its regularised covariance,

    C_xx + r_x I = L_x L_x^T,   C_yy + r_y I = L_y L_y^T,   T = L_x^{-1} C_xy L_y^{-T} = U S V^T,

and W_x = L_x^{-T} U, W_y = L_y^{-T} V: the columns are the canonical directions and S the
canonical correlations (of the regularised problem), largest first. Everything in float64,
with no eigen-solver on a non-symmetric matrix. The ridge is relative: r = reg * trace(C) / d.

Kernel CCA (HAAN's KCCA row cites Ballan et al. 2014) is CCA between RBF feature maps,
k(a, b) = exp(-||a - b||^2 / (2 sigma^2)). The kernel is approximated on m landmarks drawn
from the train split (Nystroem: phi(x) = K(x, L) K(L, L)^{-1/2}), the low-rank route that
Hardoon et al. (2004) take with partial Gram-Schmidt; it is exact when every train item is
a landmark. sigma is a multiple of the median distance between landmarks.

Images are the global feature, texts the bag of words (the tags of Corel 5K). The ridge,
the number of components and (KCCA) the kernel width are chosen on the validation split
by AVG mAP, the criterion the training loop selects snapshots by (ambiguity log 54).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from ..errors import HAANInputError
from .liu import bag_of_words

OPTIONS = {   # method_options of "kcca", with their defaults; "cca" has the first two
    "regs": (1e-3, 1e-2, 1e-1),              # relative ridges tried on validation
    "components": (4, 8, 16, 32, 64, 128, 256),  # components tried (<= the rank)
    "widths": (0.5, 1.0, 2.0),               # sigma / median distance, tried
    "landmarks": 1000,                       # Nystroem landmarks (all if fewer)
}
LINEAR_OPTIONS = ("regs", "components")


def check_options(opts: dict) -> dict:
    """The options with their types checked; a clear error names what is wrong."""
    out = dict(opts)
    for key in ("regs", "components", "widths"):
        if key not in out:
            continue
        vals = out[key]
        if isinstance(vals, (int, float)):
            vals = (vals,)
        try:
            vals = tuple(float(v) for v in vals)
        except (TypeError, ValueError):
            raise HAANInputError(f"{key} must be a list of numbers, got {out[key]!r}") from None
        if not vals or not all(math.isfinite(v) and v > 0 for v in vals):
            raise HAANInputError(f"{key} must be a non-empty list of positive numbers, got "
                                 f"{out[key]!r}")
        out[key] = vals
    if not all(float(c).is_integer() for c in out["components"]):
        raise HAANInputError(f"components must be whole numbers, got {opts['components']!r}")
    out["components"] = tuple(int(c) for c in out["components"])
    if "landmarks" in out:
        m = out["landmarks"]
        if isinstance(m, bool) or not isinstance(m, int) or m < 2:
            raise HAANInputError(f"landmarks must be an integer >= 2, got {m!r}")
    return out


def canonical(X: torch.Tensor, Y: torch.Tensor, reg: float = 1e-3) -> dict:
    """CCA of X (n, p) and Y (n, q) as described above. Returns {"Wx" (p, k), "Wy" (q, k),
    "corr" (k,), "mx" (p,), "my" (q,)} in float64, k = min(p, q), correlations descending."""
    if X.ndim != 2 or Y.ndim != 2 or X.shape[0] != Y.shape[0]:
        raise HAANInputError(f"canonical needs X (n, p) and Y (n, q) with the same n, got "
                             f"{tuple(X.shape)} and {tuple(Y.shape)}")
    if X.shape[0] < 2:
        raise HAANInputError("canonical needs at least 2 pairs")
    X, Y = X.double(), Y.double()
    mx, my = X.mean(0), Y.mean(0)
    Xc, Yc = X - mx, Y - my
    n = X.shape[0]

    def chol(A):
        d = A.shape[0]
        ridge = reg * torch.trace(A) / d if torch.trace(A) > 0 else reg
        return torch.linalg.cholesky(A + ridge * torch.eye(d, dtype=A.dtype, device=A.device))
    Lx = chol(Xc.T @ Xc / (n - 1))
    Ly = chol(Yc.T @ Yc / (n - 1))
    Cxy = Xc.T @ Yc / (n - 1)
    T = torch.linalg.solve_triangular(Lx, Cxy, upper=False)                  # L_x^{-1} C_xy
    T = torch.linalg.solve_triangular(Ly, T.T, upper=False).T                # ... L_y^{-T}
    U, S, Vh = torch.linalg.svd(T, full_matrices=False)
    Wx = torch.linalg.solve_triangular(Lx.T, U, upper=True)                  # L_x^{-T} U
    Wy = torch.linalg.solve_triangular(Ly.T, Vh.T, upper=True)
    return {"Wx": Wx, "Wy": Wy, "corr": S, "mx": mx, "my": my}


def rbf(A: torch.Tensor, B: torch.Tensor, sigma: float) -> torch.Tensor:
    """exp(-||a - b||^2 / (2 sigma^2)) for every row a of A and b of B."""
    d2 = (A.pow(2).sum(1)[:, None] + B.pow(2).sum(1)[None, :] - 2 * A @ B.T).clamp_min(0)
    return torch.exp(-d2 / (2 * sigma ** 2))


class Nystroem(nn.Module):
    """phi(x) = K(x, L) K(L, L)^{-1/2}: an explicit feature map whose inner products
    approximate the RBF kernel (exactly on the span of the landmarks L)."""

    def __init__(self, landmarks: torch.Tensor, sigma: float):
        super().__init__()
        L = landmarks.double()
        evals, evecs = torch.linalg.eigh(rbf(L, L, sigma))
        keep = evals > evals.max() * 1e-10                 # drop a numerically null space
        self.register_buffer("landmarks", L)
        self.register_buffer("proj", evecs[:, keep] / evals[keep].sqrt())
        self.sigma = float(sigma)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rbf(x.double(), self.landmarks, self.sigma) @ self.proj


def median_distance(x: torch.Tensor) -> float:
    """The median distance between distinct rows of x (a positive fallback of 1)."""
    x = x.double()
    d = torch.cdist(x, x)
    d = d[torch.triu(torch.ones_like(d, dtype=torch.bool), diagonal=1)]
    d = d[d > 0]
    return float(d.median()) if len(d) else 1.0


class CCANet(nn.Module):
    """A fitted CCA (or kernel CCA): images by their global feature, texts by their bag of
    words, each projected onto the first ``k`` canonical directions; a pair's score is the
    cosine there. Nothing in it is trained by gradient: the loop only validates and tests
    it."""
    image_inputs = ("global",)

    def __init__(self, fit: dict, k: int, vocab: int, maps: dict | None = None):
        super().__init__()
        self.register_buffer("Wx", fit["Wx"][:, :k].clone())
        self.register_buffer("Wy", fit["Wy"][:, :k].clone())
        self.register_buffer("mx", fit["mx"].clone())
        self.register_buffer("my", fit["my"].clone())
        self.maps = nn.ModuleDict(maps or {})     # KCCA: the Nystroem map of each view
        self.vocab, self.k = vocab, k

    def _view(self, name, x):
        return self.maps[name](x) if name in self.maps else x.double()

    def encode_images(self, inputs) -> torch.Tensor:
        (g,) = inputs
        return ((self._view("image", g) - self.mx) @ self.Wx).float()

    def encode_texts(self, tokens, lengths) -> torch.Tensor:
        bow = bag_of_words(tokens, lengths, self.vocab)
        return ((self._view("text", bow) - self.my) @ self.Wy).float()

    def similarity(self, img, txt, chunk_size=None) -> torch.Tensor:
        """The cosine of every image-text pair in the common space, (N, M)."""
        return nn.functional.normalize(img, dim=1) @ nn.functional.normalize(txt, dim=1).T


def build(cfg, data, device, kernel: bool) -> CCANet:
    """Fit on the train split every (ridge, width) of the options, and keep the (ridge,
    width, components) of the best validation AVG mAP."""
    from . import method_options
    if data.global_feats is None:
        raise HAANInputError(f"method {cfg.method!r} projects the global image feature, and "
                             f"dataset {data.name!r} has none")
    opts = check_options(method_options(cfg))
    vocab = len(data.vocab)
    tr, va = data.splits["train"], data.splits["val"]
    b_tr, b_va = data.batch(tr, "cpu"), data.batch(va, "cpu")
    X, Y = b_tr["global"].double(), bag_of_words(b_tr["tokens"], b_tr["lengths"], vocab).double()
    gen = torch.Generator().manual_seed(cfg.seed)
    if kernel:
        pick = torch.randperm(len(tr), generator=gen)[:opts["landmarks"]]
        med = {"image": median_distance(X[pick]), "text": median_distance(Y[pick])}
        widths = opts["widths"]
    else:
        widths = (None,)
    best = (-1.0, None)
    for width in widths:
        maps = {} if width is None else {
            "image": Nystroem(X[pick], width * med["image"]),
            "text": Nystroem(Y[pick], width * med["text"])}
        fx = maps["image"](X) if maps else X
        fy = maps["text"](Y) if maps else Y
        for reg in opts["regs"]:
            best = _best_components(canonical(fx, fy, reg), maps, vocab, b_va, opts, best,
                                    {"reg": reg, "width": width})
    return best[1].to(device)


def _best_components(fit, maps, vocab, b_va, opts, best, chosen):
    """The best of ``best`` and this fit truncated to each number of components."""
    from ..metrics import retrieval_scores
    rank = fit["Wx"].shape[1]
    for k in sorted({min(c, rank) for c in opts["components"]}):
        net = CCANet(fit, k, vocab, maps)
        sim = net.similarity(net.encode_images((b_va["global"],)),
                             net.encode_texts(b_va["tokens"], b_va["lengths"]))
        avg = retrieval_scores(sim, b_va["img_labels"], b_va["txt_labels"])["avg"]
        if avg > best[0]:
            best = (avg, net)
            net.chosen = {**chosen, "components": k, "val_avg": avg}
    return best
