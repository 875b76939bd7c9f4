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
import torch.nn as nn

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
    return multi_margin_from_distances(D, img_labels, txt_labels, margins, breaks)


def multi_margin_from_distances(D: torch.Tensor, img_labels: torch.Tensor,
                                txt_labels: torch.Tensor, margins=(7.0, 7.5, 8.0),
                                breaks=(1 / 3, 2 / 3)) -> torch.Tensor:
    """Eqs. 14-18 on a batch's squared distances D[p, q] = ||f(i_p) - g(t_q)||^2 (what
    :func:`multi_margin_triplet` computes first; the training loop hands Framework II's
    scores, -D, to the loss)."""
    margins, breaks = _check_bands(margins, breaks)
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


# ---------------------------------------------------------------------------------------
# Framework I (Section 3): multi-grained fusion by a deep belief network. Each stage is
# trained on the train split before Framework II, then frozen; the choices the paper leaves
# open are in the ambiguity log (entries 50-52) and in OPTIONS.
# ---------------------------------------------------------------------------------------

# The best margin-set of Section 5.4.2 on each dataset Liu et al. measured (NUS-WIDE 5K's
# is {1, 1.1, 1.2}; this companion has no NUS-WIDE). Datasets they did not use (Wiki, the
# synthetic default) take Corel 5K's, the dataset of Liu's Table 4 that HAAN shares:
# a choice, ambiguity log 52.
MARGIN_SETS = {"pascal": (1.0, 3.0, 7.0), "corel5k": (7.0, 7.5, 8.0)}
DEFAULT_MARGIN_SET = "corel5k"

OPTIONS = {   # method_options of "liu", with their defaults
    "margins": None,              # the margin-set; None: the dataset's (MARGIN_SETS)
    "breaks": (1 / 3, 2 / 3),     # e_1, ..., e_{w-1} (not given: equal thirds, entry 34)
    "lambda1": 1.0,               # eq. 22, weight of the multi-margin triplet loss
    "lambda2": 1.0,               # eq. 22, weight of each cross-entropy term (eq. 21)
    "rbm_epochs": 10,             # CD-1 epochs of each RBM of Framework I
    "rbm_lr": 0.1,                # CD-1 learning rate (Gaussian visible units: / 10),
                                  # momentum 0.5
    "mlp_epochs": 10,             # Adam epochs of Framework I's feed-forward stages
    "mlp_lr": 1e-3,
    "framework1": "concat",       # "rbm": Section 3's DBN stack; "concat" (default, a
                                  # deviation): coarse and fine joined by concatenation
                                  # (ambiguity log 50: the stack as built here loses most
                                  # class information)
}


def margin_set(dataset: str) -> tuple:
    """Liu et al.'s best margin-set on ``dataset`` (Section 5.4.2), or Corel 5K's where
    they did not measure it."""
    return MARGIN_SETS.get(dataset, MARGIN_SETS[DEFAULT_MARGIN_SET])


def method_options(cfg) -> dict:
    """OPTIONS with ``cfg.method_options`` over them; an unknown key is a clear error."""
    given = dict(getattr(cfg, "method_options", None) or {})
    unknown = sorted(set(given) - set(OPTIONS))
    if unknown:
        raise HAANInputError(f"unknown option(s) {unknown} for method 'liu'; known: "
                             f"{sorted(OPTIONS)}")
    opts = {**OPTIONS, **given}
    if opts["margins"] is None:
        opts["margins"] = margin_set(getattr(cfg, "dataset", DEFAULT_MARGIN_SET))
    _check_bands(opts["margins"], opts["breaks"])
    if opts["framework1"] not in ("rbm", "concat"):
        raise HAANInputError(f"framework1 must be 'rbm' or 'concat', got "
                             f"{opts['framework1']!r}")
    for k in ("rbm_epochs", "mlp_epochs"):
        if int(opts[k]) < 0:
            raise HAANInputError(f"{k} must be >= 0, got {opts[k]}")
    for k in ("rbm_lr", "mlp_lr", "lambda1"):
        if not float(opts[k]) > 0:
            raise HAANInputError(f"{k} must be positive, got {opts[k]}")
    if float(opts["lambda2"]) < 0:
        raise HAANInputError(f"lambda2 must be >= 0, got {opts['lambda2']}")
    return opts


class RBM(nn.Module):
    """A restricted Boltzmann machine with Bernoulli hidden units, trained by CD-1.

    ``visible`` is "gaussian" (real features of unit variance: the Gaussian RBM of eqs.
    1-4), "binary" (the upper layers of a DBN) or "softmax" (the Replicated Softmax of eqs.
    5-6, Salakhutdinov and Hinton 2009: v holds word counts, and the hidden biases are
    scaled by the document's length D = sum_k v_k).
    """

    def __init__(self, n_visible: int, n_hidden: int, visible: str = "binary"):
        super().__init__()
        if visible not in ("gaussian", "binary", "softmax"):
            raise HAANInputError(f"visible must be gaussian, binary or softmax, got {visible!r}")
        self.visible = visible
        self.W = nn.Parameter(torch.randn(n_visible, n_hidden) * 0.01, requires_grad=False)
        self.a = nn.Parameter(torch.zeros(n_visible), requires_grad=False)   # visible bias
        self.b = nn.Parameter(torch.zeros(n_hidden), requires_grad=False)    # hidden bias

    def _length(self, v):
        return v.sum(1, keepdim=True) if self.visible == "softmax" else 1.0

    def hidden_prob(self, v: torch.Tensor) -> torch.Tensor:
        """p(h_j = 1 | v) = sigmoid(D_or_1 * b_j + sum_i v_i W_ij)."""
        return torch.sigmoid(v @ self.W + self._length(v) * self.b)

    def visible_mean(self, h: torch.Tensor, length=None) -> torch.Tensor:
        """E[v | h]: a + W h (Gaussian), sigmoid (binary), D * softmax (Replicated Softmax)."""
        x = h @ self.W.T + self.a
        if self.visible == "gaussian":
            return x
        if self.visible == "binary":
            return torch.sigmoid(x)
        return length * torch.softmax(x, dim=1)

    def cd1_gradients(self, v0: torch.Tensor, h0: torch.Tensor) -> tuple:
        """The CD-1 estimates of the log-likelihood gradient for W, a, b on a batch v0,
        given the hidden sample h0 ~ p(h | v0): the reconstruction v1 = E[v | h0] (mean
        field), then <v h>_data - <v h>_recon with p(h | v) in place of h, batch means."""
        length = self._length(v0)
        v1 = self.visible_mean(h0, length)
        ph0, ph1 = self.hidden_prob(v0), self.hidden_prob(v1)
        n = v0.shape[0]
        dW = (v0.T @ ph0 - v1.T @ ph1) / n
        da = (v0 - v1).mean(0)
        db = (length * (ph0 - ph1)).mean(0) if self.visible == "softmax" \
            else (ph0 - ph1).mean(0)
        return dW, da, db

    @torch.no_grad()
    def fit(self, data: torch.Tensor, epochs: int, lr: float, batch: int,
            generator: torch.Generator) -> list:
        """CD-1 for ``epochs`` over ``data`` (rows are samples); the mean squared
        reconstruction error of each epoch, to see it learn."""
        lr = lr / 10 if self.visible == "gaussian" else lr
        velocity = [torch.zeros_like(t) for t in (self.W, self.a, self.b)]
        errors = []
        for _ in range(epochs):
            order = torch.randperm(len(data), generator=generator).to(data.device)
            err = 0.0
            for s in range(0, len(data), batch):
                v0 = data[order[s:s + batch]]
                ph0 = self.hidden_prob(v0)
                h0 = torch.bernoulli(ph0, generator=_gen_on(generator, v0.device))
                for vel, par, grad in zip(velocity, (self.W, self.a, self.b),
                                          self.cd1_gradients(v0, h0)):
                    vel.mul_(0.5).add_(grad, alpha=lr)   # momentum 0.5
                    par += vel
                err += float(((v0 - self.visible_mean(h0, self._length(v0))) ** 2).sum())
            errors.append(err / max(1, data.numel()))
        return errors


def _gen_on(generator: torch.Generator, device) -> torch.Generator | None:
    """Sampling on a GPU needs a generator there: one seeded from ``generator``."""
    if torch.device(device).type == "cpu":
        return generator
    seed = int(torch.randint(0, 2 ** 62, (1,), generator=generator))
    return torch.Generator(device=device).manual_seed(seed)


class DBN(nn.Module):
    """Two stacked RBMs trained greedily (eqs. 1-6): the first with the modality's visible
    units, the second binary on the first's hidden probabilities; the output O is the
    second layer's hidden probabilities."""

    def __init__(self, n_visible, n_h1, n_h2, visible):
        super().__init__()
        self.rbm1 = RBM(n_visible, n_h1, visible)
        self.rbm2 = RBM(n_h1, n_h2, "binary")

    def forward(self, v):
        return self.rbm2.hidden_prob(self.rbm1.hidden_prob(v))

    def fit(self, v, epochs, lr, batch, generator):
        self.rbm1.fit(v, epochs, lr, batch, generator)
        with torch.no_grad():
            h = self.rbm1.hidden_prob(v)
        self.rbm2.fit(h, epochs, lr, batch, generator)


def three_layers(d_in: int, width: int) -> nn.Sequential:
    """A "three-layer fully connected network" (Section 5.1): three linear layers of the
    given width with ReLU between them."""
    return nn.Sequential(nn.Linear(d_in, width), nn.ReLU(), nn.Linear(width, width),
                         nn.ReLU(), nn.Linear(width, width))


class Standardize(nn.Module):
    """Zero mean, unit variance per feature, from the train split (Gaussian RBMs assume
    unit-variance visible units)."""

    def __init__(self, dim: int):
        super().__init__()   # the identity until fitted; buffers, so a checkpoint holds them
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    @torch.no_grad()
    def fit(self, x: torch.Tensor) -> "Standardize":
        self.mean.copy_(x.mean(0))
        self.std.copy_(x.std(0).clamp_min(1e-6))
        return self

    def forward(self, x):
        return (x - self.mean) / self.std


def bag_of_words(tokens: torch.Tensor, lengths: torch.Tensor, vocab: int) -> torch.Tensor:
    """(B, vocab) word counts of each text (the coarse-grained text of Section 3.1; index
    0, the padding, never counted)."""
    mask = torch.arange(tokens.shape[1], device=tokens.device)[None, :] < lengths[:, None]
    bow = torch.zeros(tokens.shape[0], vocab, device=tokens.device)
    bow.scatter_add_(1, tokens.long(), mask.float())
    bow[:, 0] = 0
    return bow


class FrameworkI(nn.Module):
    """Section 3 for both modalities; ``image(global, patches)`` -> i and ``text(tokens,
    lengths)`` -> t. Widths are Section 5.1's (Gaussian DBN 2048-1024, Replicated Softmax
    1024-1024, joint optimisation 1024, joint RBM 1024 and 2048, feed-forward 1024)
    multiplied by ``scale`` (embed_dim / 1024: 1 at the paper's recipe)."""

    def __init__(self, img_dim, patch_dim, vocab, classes, scale=1.0):
        super().__init__()
        w = lambda n: max(8, int(round(n * scale)))   # noqa: E731
        self.vocab, self.classes = vocab, classes
        self.img_dbn = DBN(img_dim, w(2048), w(1024), "gaussian")     # coarse, eq. 3
        self.patch_dbn = DBN(patch_dim, w(2048), w(1024), "gaussian")  # fine, eq. 4
        self.text_dbn = DBN(vocab, w(1024), w(1024), "softmax")       # coarse, eq. 5
        self.tag_dbn = DBN(vocab, w(1024), w(1024), "softmax")        # fine, eq. 6
        self.rec = nn.ModuleDict({k: three_layers(w(1024), w(1024))   # eqs. 7 and 9
                                  for k in ("I", "T", "IP", "TP")})
        self.joint = nn.ModuleDict({m: nn.ModuleDict({               # eqs. 10-11
            "coarse": RBM(w(1024), w(1024), "gaussian"),
            "fine": RBM(w(1024), w(1024), "gaussian"),
            "top": RBM(2 * w(1024), w(2048), "binary")}) for m in ("image", "text")})
        self.ff = nn.ModuleDict({m: three_layers(w(2048), w(1024)) for m in ("image", "text")})
        # Standardize layers of the inputs and of each stage's outputs, fitted by fit()
        self.norm = nn.ModuleDict({"img": Standardize(img_dim), "patch": Standardize(patch_dim),
                                   **{k: Standardize(w(1024)) for k in (
                                       "OI", "OIP", "OT", "OTP", "image_rc", "image_rf",
                                       "text_rc", "text_rf")}})
        self.out_dim = w(1024)

    # the four granularities as the DBNs see them, and their outputs O (eq. 8 merges)
    def _image_O(self, g, p):
        n = self.norm
        o_i = self.img_dbn(n["img"](g))
        o_p = self.patch_dbn(n["patch"](p.reshape(-1, p.shape[-1]))).reshape(*p.shape[:2], -1)
        return o_i, o_p.mean(1)                                       # eq. 8, m^IP

    def _text_O(self, tokens, lengths):
        bow = bag_of_words(tokens, lengths, self.vocab)
        o_t = self.text_dbn(bow)
        onehot = torch.zeros(*tokens.shape, self.vocab, device=tokens.device)
        onehot.scatter_(2, tokens.long()[..., None], 1.0)             # one tag = one patch
        o_w = self.tag_dbn(onehot.reshape(-1, self.vocab)).reshape(*tokens.shape, -1)
        mask = (torch.arange(tokens.shape[1], device=tokens.device)[None, :]
                < lengths[:, None]).float()
        m_tp = (o_w * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp_min(1)
        return o_t, m_tp                                              # eq. 8, m^TP

    def _fused(self, modality, coarse, fine):
        keys = ("I", "IP") if modality == "image" else ("T", "TP")
        n = self.norm
        r_c = self.rec[keys[0]](n["O" + keys[0]](coarse))
        r_f = self.rec[keys[1]](n["O" + keys[1]](fine))
        j = self.joint[modality]
        n = self.norm
        h = torch.cat([j["coarse"].hidden_prob(n[modality + "_rc"](r_c)),
                       j["fine"].hidden_prob(n[modality + "_rf"](r_f))], 1)
        return j["top"].hidden_prob(h)

    @torch.no_grad()
    def image(self, g, p):
        o_i, m_ip = self._image_O(g, p)
        return self.ff["image"](self._fused("image", o_i, m_ip))

    @torch.no_grad()
    def text(self, tokens, lengths):
        o_t, m_tp = self._text_O(tokens, lengths)
        return self.ff["text"](self._fused("text", o_t, m_tp))

    def fit(self, data, train_idx, opts, device, seed) -> float:
        """Train every stage in order on the train split; returns the seconds it took."""
        import time
        start = time.perf_counter()
        gen = torch.Generator().manual_seed(seed)
        ep, lr, bs = int(opts["rbm_epochs"]), float(opts["rbm_lr"]), 100
        b = data.batch(train_idx, device)
        g, p, tok, n = b["global"], b["patches"], b["tokens"], b["lengths"]
        labels = b["img_labels"]
        self.to(device)
        self.norm["img"].fit(g)
        self.norm["patch"].fit(p.reshape(-1, p.shape[-1]))
        # 3.2.1: the four DBNs (CD-1, greedy)
        self.img_dbn.fit(self.norm["img"](g), ep, lr, bs, gen)
        self.patch_dbn.fit(self.norm["patch"](p.reshape(-1, p.shape[-1])), ep, lr, bs, gen)
        self.text_dbn.fit(bag_of_words(tok, n, self.vocab), ep, lr, bs, gen)
        mask = torch.arange(tok.shape[1], device=tok.device)[None, :] < n[:, None]
        words = tok[mask].long()
        onehot = torch.zeros(len(words), self.vocab, device=tok.device)
        onehot[torch.arange(len(words)), words] = 1.0
        self.tag_dbn.fit(onehot, ep, lr, bs, gen)
        with torch.no_grad():
            o_i, m_ip = self._image_O(g, p)
            o_t, m_tp = self._text_O(tok, n)
            # the DBNs' outputs are probabilities near 0.5: standardised for what follows
            for key, x in (("I", o_i), ("IP", m_ip), ("T", o_t), ("TP", m_tp)):
                self.norm["O" + key].fit(x)
            o_i, m_ip = self.norm["OI"](o_i), self.norm["OIP"](m_ip)
            o_t, m_tp = self.norm["OT"](o_t), self.norm["OTP"](m_tp)
        # eqs. 7 and 9: the joint optimisation of each granularity
        self._fit_mlps([(self.rec["I"], self.rec["T"], o_i, o_t),
                        (self.rec["IP"], self.rec["TP"], m_ip, m_tp)], opts, gen)
        # 3.2.2: the joint RBMs (eqs. 10-11), then the feed-forward nets with soft-max
        fused = {}
        for modality, (c, f) in (("image", (o_i, m_ip)), ("text", (o_t, m_tp))):
            keys = ("I", "IP") if modality == "image" else ("T", "TP")
            with torch.no_grad():
                r_c, r_f = self.rec[keys[0]](c), self.rec[keys[1]](f)
            self.norm[modality + "_rc"].fit(r_c)
            self.norm[modality + "_rf"].fit(r_f)
            j = self.joint[modality]
            j["coarse"].fit(self.norm[modality + "_rc"](r_c), ep, lr, bs, gen)
            j["fine"].fit(self.norm[modality + "_rf"](r_f), ep, lr, bs, gen)
            with torch.no_grad():
                h = torch.cat([j["coarse"].hidden_prob(self.norm[modality + "_rc"](r_c)),
                               j["fine"].hidden_prob(self.norm[modality + "_rf"](r_f))], 1)
            j["top"].fit(h, ep, lr, bs, gen)
            with torch.no_grad():
                fused[modality] = j["top"].hidden_prob(h)
        self._fit_classifiers(fused, labels, self.classes, opts, gen)
        for prm in self.parameters():
            prm.requires_grad_(False)
        return time.perf_counter() - start

    def _fit_mlps(self, stages, opts, gen):
        """Eqs. 7 and 9: ||O^I - R^I||^2 + ||O^T - R^T||^2 + ||R^I - R^T||^2 per pair,
        batch means (the inter-modality term on the reconstructions R: on the DBN outputs
        O it has nothing to train; ambiguity log 51)."""
        for net_i, net_t, o_i, o_t in stages:
            opt = torch.optim.Adam(list(net_i.parameters()) + list(net_t.parameters()),
                                   lr=float(opts["mlp_lr"]))
            for _ in range(int(opts["mlp_epochs"])):
                for idx in torch.randperm(len(o_i), generator=gen).split(100):
                    idx = idx.to(o_i.device)
                    r_i, r_t = net_i(o_i[idx]), net_t(o_t[idx])
                    loss = (((o_i[idx] - r_i) ** 2).sum(1) + ((o_t[idx] - r_t) ** 2).sum(1)
                            + ((r_i - r_t) ** 2).sum(1)).mean()
                    opt.zero_grad()
                    loss.backward()
                    opt.step()

    def _fit_classifiers(self, fused, labels, classes, opts, gen):
        """Section 5.1: the feed-forward network on the joint RBM, trained with soft-max
        (cross-entropy over the classes) through a linear classifier; i and t are its
        outputs."""
        for modality, x in fused.items():
            head = nn.Linear(self.out_dim, classes).to(x.device)
            ff = self.ff[modality]
            opt = torch.optim.Adam(list(ff.parameters()) + list(head.parameters()),
                                   lr=float(opts["mlp_lr"]))
            for _ in range(int(opts["mlp_epochs"])):
                for idx in torch.randperm(len(x), generator=gen).split(100):
                    idx = idx.to(x.device)
                    loss = nn.functional.cross_entropy(head(ff(x[idx])), labels[idx])
                    opt.zero_grad()
                    loss.backward()
                    opt.step()


# ---------------------------------------------------------------------------------------
# Framework II (Section 4): f and g, three fully connected layers of 1024, trained with
# eq. 22; the score of a pair is -||f(i) - g(t)||^2, so ranking by it is ranking by the
# squared Euclidean distance the loss shapes.
# ---------------------------------------------------------------------------------------

class LiuNet(nn.Module):
    image_inputs = ("global", "patches")   # what encode_images takes from a batch

    def __init__(self, img_dim, patch_dim, vocab, classes, embed_dim=1024, framework1=True):
        super().__init__()
        self.fw1 = FrameworkI(img_dim, patch_dim, vocab, classes, scale=embed_dim / 1024) \
            if framework1 else None
        self.vocab = vocab
        d_i = self.fw1.out_dim if framework1 else img_dim + patch_dim
        d_t = self.fw1.out_dim if framework1 else vocab * 2
        self.f = three_layers(d_i, embed_dim)
        self.g = three_layers(d_t, embed_dim)
        self.cls_i = nn.Linear(embed_dim, classes)     # eq. 21's soft-max classifiers
        self.cls_t = nn.Linear(embed_dim, classes)
        self.lambda2 = 1.0
        self.framework1_seconds = 0.0

    def encode_images(self, inputs):
        g, p = inputs
        x = self.fw1.image(g, p) if self.fw1 is not None else torch.cat([g, p.mean(1)], 1)
        return self.f(x)

    def encode_texts(self, tokens, lengths):
        if self.fw1 is not None:
            x = self.fw1.text(tokens, lengths)
        else:   # "concat": the coarse BoW and the fine one (the mean one-hot tag, eq. 8)
            bow = bag_of_words(tokens, lengths, self.vocab)
            x = torch.cat([bow, bow / bow.sum(1, keepdim=True).clamp_min(1)], 1)
        return self.g(x)

    def similarity(self, img, txt, chunk_size=None):
        """-||f(i) - g(t)||^2 for every image and text (N x M)."""
        return -torch.cdist(img.float(), txt.float()).pow(2)

    def extra_loss(self, img, txt, img_labels, txt_labels):
        """Eq. 21's two cross-entropy terms, weighted by lambda2 (eq. 22)."""
        ce = nn.functional.cross_entropy
        return self.lambda2 * (ce(self.cls_i(img.float()), img_labels)
                               + ce(self.cls_t(txt.float()), txt_labels))


def build(cfg, data, device) -> LiuNet:
    """Liu et al.'s network for ``data``: Framework I trained on the train split, frozen,
    under Framework II; or, with ``framework1: concat`` (the default, a deviation), the
    coarse and fine features of each modality concatenated (global features with the mean
    of the patches, eq. 8; the bag of words with the mean one-hot tag) as Framework II's
    input."""
    if data.global_feats is None:
        raise HAANInputError(f"method 'liu' fuses coarse (global) and fine (patch) image "
                             f"features, and dataset {data.name!r} has no global features")
    opts = method_options(cfg)
    classes = int(data.labels.max()) + 1
    net = LiuNet(data.feat_dim, data.patch_dim, len(data.vocab), classes, embed_dim=cfg.embed_dim,
                 framework1=opts["framework1"] == "rbm")
    net.lambda2 = float(opts["lambda2"])
    if net.fw1 is not None:
        net.framework1_seconds = net.fw1.fit(data, data.splits["train"], opts, device,
                                             cfg.seed)
    return net


def loss(cfg):
    """Eq. 22 without the cross-entropy terms (LiuNet.extra_loss adds them): lambda1 times
    the multi-margin triplet loss of the batch's squared distances, -sim."""
    opts = method_options(cfg)
    lam1 = float(opts["lambda1"])
    return lambda sim, il, tl: lam1 * multi_margin_from_distances(
        -sim, il, tl, opts["margins"], opts["breaks"])
