"""Methods from the papers HAAN is read beside (issue #11), one module per method, and
the registry that selects one by name (``--method``), as timm selects a model.

A method gives the training loop of :mod:`haan_core.train` what HAAN gives it: a model
whose ``networks()`` maps an objective name to a network with ``encode_images``,
``encode_texts`` and ``similarity`` (the full N x M matrix of a split), and a loss
``loss(sim, img_labels, txt_labels)`` for each. A network may name the batch inputs its
``encode_images`` takes (``image_inputs``, e.g. ("global", "patches")) and add terms of
its own to the loss (``extra_loss(img, txt, img_labels, txt_labels)``). HAAN has two networks, "C" (GAN) and "F"
(LAN), fused by eq. 7; a method with one network names it "S", and its matrix is the one
tested. So one loop trains, validates, selects on validation and tests every method.

Modules: :mod:`haan_core.methods.shan` (Ji et al., IJCAI 2021),
:mod:`haan_core.methods.tshsr` (Chen et al.), :mod:`haan_core.methods.liu` (Liu et al.
2023: Frameworks I and II, the multi-margin triplet loss of eqs. 14-18),
:mod:`haan_core.methods.cca` (CCA, KCCA), :mod:`haan_core.methods.dcca` (Andrew et al.
2013), :mod:`haan_core.methods.scan` (Lee et al. 2018), :mod:`haan_core.methods.sgraf`
(Diao et al. 2021: SGR and SAF, each its own method; SGRAF averages their matrices) and
:mod:`haan_core.methods.dscmr` (Zhen et al. 2019).
HAAN itself lives in :mod:`haan_core.models`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch.nn as nn

from ..errors import HAANInputError


@dataclass(frozen=True)
class Method:
    name: str
    paper: str
    cite: str          # key in book/references.bib
    trains: bool       # selectable with --method (False: parts only, not yet a network)
    notes: str = ""
    recipe: tuple = ()  # (field, value) pairs over the dataset's recipe; flags override them
    dataset_recipes: tuple = ()   # (dataset, ((field, value), ...)): over ``recipe`` there
    options: tuple = ()  # (name, default) of its --method-option keys (liu: liu.OPTIONS)


def _sgraf_recipe(module: str) -> tuple:
    """SGR's or SAF's published Flickr30K recipe (:data:`haan_core.methods.sgraf.RECIPE`) as
    configuration fields (the loop's optimiser is Adam and its clipping 2.0, theirs too)."""
    from .sgraf import RECIPE
    r = RECIPE[module]
    return tuple((k, r[k]) for k in ("epochs", "lr_decay_epoch", "batch_size", "lr",
                                     "tri_margin", "tri_hardest"))


METHODS = {
    "haan": Method("haan", "Wang et al., HAAN (Sensors 2023): GAN + LAN, GCM, LCM, AWL",
                   "wang2023haan", True, "--variant picks a row of Table 5"),
    "shan": Method("shan", "Ji et al., SHAN (IJCAI 2021): L2L, G2L and G2G alignment",
                   "ji2021shan", True, "regions = the 3 x 3 patches; loss: class-aware "
                   "hinge triplet with the hardest negative (eq. 17), --tri-margin; recipe: "
                   "Adam, 30 epochs (Section 4.2), lr 2e-4 and batch 128 (SCAN's: the paper "
                   "is silent), ambiguity log 53",
                   recipe=(("epochs", 30), ("batch_size", 128), ("lr", 2e-4),
                           ("tri_margin", 0.2), ("tri_hardest", True)),
                   options=(("warmup_epochs", 0),)),
    "tshsr": Method("tshsr", "Chen et al., TSHSR: two-stream hierarchical similarity "
                    "reasoning", "chen2023tshsr", True, "regions = the 3 x 3 patches; loss: "
                    "eq. 9, class-aware, hardest negative, --tri-margin; recipe: Flickr30K's "
                    "(Section IV-A): Adam, batch 128, lr 2e-4, 40 epochs, decay 0.1 after 30; "
                    "the first epoch sums the hinge over all negatives (warm-up, ambiguity "
                    "log 49 and 53: --method-option warmup_epochs=0 switches it off)",
                    recipe=(("epochs", 40), ("lr_decay_epoch", 30), ("batch_size", 128),
                            ("lr", 2e-4), ("tri_margin", 0.2), ("tri_hardest", True)),
                    options=(("warmup_epochs", 1),)),
    "liu": Method("liu", "Liu et al. (2023): multi-grained fusion and multi-margin triplets",
                  "liu2023multigrained", True, "Framework I (DBNs, Replicated Softmax and "
                  "joint RBMs by CD-1) trained first and frozen, then Framework II (eq. 22); "
                  "options: --method-option margins=[7,7.5,8] and others (liu.OPTIONS); "
                  "default framework1=concat, a deviation (ambiguity log 50)",
                  recipe=(("batch_size", 80), ("lr", 1e-3)),
                  # Liu et al.'s Table 3 times Framework II at 10,000 and 20,000 iterations of
                  # batch 80; on our Corel 5K train split (57 batches) 10,000 is 176 epochs
                  dataset_recipes=(("corel5k", (("epochs", 176),)),)),
    "cca": Method("cca", "CCA (Hotelling 1936), HAAN's Table 3 traditional row setting",
                  "hotelling1936cca", True, "closed form on the train split: global image "
                  "feature, bag of words; ridge and components chosen on validation; cosine "
                  "in the common space (ambiguity log 54)",
                  recipe=(("epochs", 1),),
                  options=(("regs", (1e-3, 1e-2, 1e-1)),
                           ("components", (4, 8, 16, 32, 64, 128, 256)))),
    "kcca": Method("kcca", "Kernel CCA with an RBF kernel (HAAN's KCCA row: Ballan et al., "
                   "ICMR 2014)", "ballan2014kcca", True, "closed form on the train split, "
                   "Nystroem map on 1000 landmarks; ridge, width and components chosen on "
                   "validation (ambiguity log 54)",
                   recipe=(("epochs", 1),),
                   options=(("regs", (1e-3, 1e-2, 1e-1)),
                            ("components", (4, 8, 16, 32, 64, 128, 256)),
                            ("widths", (0.5, 1.0, 2.0)), ("landmarks", 1000))),
    "dcca": Method("dcca", "DCCA (Andrew et al., ICML 2013): deep networks maximising the "
                   "canonical correlation, then linear CCA on their outputs",
                   "andrew2013dcca", True, "global image feature and bag of words; two "
                   "hidden layers of 1024 with the paper's s = g^-1 nonlinearity, 64 outputs, "
                   "r1 = r2 = 1e-4; Adam on minibatches of 800 (the paper: full-batch L-BFGS); "
                   "cosine of the canonical projections (ambiguity log 55)",
                   recipe=(("epochs", 100), ("batch_size", 800), ("lr", 1e-3)),
                   options=(("hidden", (1024, 1024)), ("out_dim", 64),
                            ("activation", "cube_root"), ("r", 1e-4), ("components", None))),
    "scan": Method("scan", "SCAN (Lee et al., ECCV 2018): stacked cross attention between "
                   "regions and words", "lee2018scan", True, "regions = the 3 x 3 patches; "
                   "text-to-image attention with LogSumExp pooling (lambda_softmax 9, "
                   "lambda_lse 6: the released defaults; --method-option formulation=i2t, "
                   "pooling=mean, ...); hinge triplet with the hardest negative, margin 0.2, "
                   "summed over the positives, class-aware; recipe: Flickr30K's (30 epochs, "
                   "batch 128, lr 2e-4 decayed by 0.1 after 15); the first epoch sums over all "
                   "negatives (warm-up; ambiguity log 57-59)",
                   recipe=(("epochs", 30), ("batch_size", 128), ("lr", 2e-4),
                           ("tri_margin", 0.2), ("tri_hardest", True)),
                   options=(("formulation", "t2i"), ("pooling", "lse"),
                            ("lambda_softmax", 9.0), ("lambda_lse", 6.0),
                            ("warmup_epochs", 1))),
    "sgr": Method("sgr", "SGRAF's SGR (Diao et al., AAAI 2021): similarity vectors and graph "
                  "reasoning", "diao2021sgraf", True, "regions = the 3 x 3 patches; sim_dim "
                  "256, 3 reasoning steps, lambda 9; hinge triplet with the hardest negative, "
                  "margin 0.2, class-aware; recipe: Flickr30K's (40 epochs, decay after 30, "
                  "batch 128, lr 2e-4), a one-epoch warm-up over all negatives (ambiguity log "
                  "60-62); SGRAF averages an SGR and an SAF network's matrices",
                  recipe=_sgraf_recipe("sgr"),
                  options=(("sim_dim", 256), ("sgr_steps", 3), ("warmup_epochs", 1))),
    "saf": Method("saf", "SGRAF's SAF (Diao et al., AAAI 2021): similarity vectors and "
                  "attention filtration", "diao2021sgraf", True, "as sgr, with SAF's recipe "
                  "(30 epochs, decay after 20)",
                  recipe=_sgraf_recipe("saf"),
                  options=(("sim_dim", 256), ("warmup_epochs", 1))),
    "dscmr": Method("dscmr", "DSCMR (Zhen et al., CVPR 2019): label-space, common-space and "
                    "invariance losses", "zhen2019dscmr", True, "global image feature and bag "
                    "of words; the released code's sizes (2048, shared 1024), lambda 1e-3, "
                    "eta 0.1, Adam lr 1e-4, batch 100, 200 epochs (ambiguity log 56)",
                    recipe=(("epochs", 200), ("batch_size", 100), ("lr", 1e-4)),
                    options=(("hidden", 2048), ("common", 1024), ("lambda", 1e-3),
                             ("eta", 1e-1))),
}
CLOSED_FORM = ("cca", "kcca")   # fitted when built; the loop trains nothing, then tests


class OneNetwork(nn.Module):
    """A method with one network, trained on one objective named "S"."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def networks(self) -> dict:
        return {"S": self.net}


def recipe(name: str, dataset: str | None = None) -> dict:
    """The training settings a method's paper gives (or, where it is silent, our measured
    choice: ambiguity log 50), for ``dataset`` when the paper gives it its own, laid over
    the dataset's recipe by HAANConfig.for_dataset."""
    check_method(name)
    m = METHODS[name]
    return {**dict(m.recipe), **dict(dict(m.dataset_recipes).get(dataset, ()))}


def check_method(name: str) -> None:
    if name not in METHODS:
        raise HAANInputError(f"unknown method {name!r}; known: {sorted(METHODS)} "
                             "(python -m haan_core methods lists them)")
    if not METHODS[name].trains:
        raise HAANInputError(f"method {name!r} cannot be trained yet: "
                             f"{METHODS[name].notes}")


def build_method(cfg, data, device="cpu") -> nn.Module:
    """The model of ``cfg.method`` (not HAAN) for ``data``."""
    check_method(cfg.method)
    if cfg.method in CLOSED_FORM:
        from .cca import build as build_cca
        return OneNetwork(build_cca(cfg, data, device, kernel=cfg.method == "kcca"))
    if cfg.method == "dcca":
        from .dcca import build as build_dcca
        return OneNetwork(build_dcca(cfg, data, device, method_options(cfg)))
    if cfg.method == "dscmr":
        from .dscmr import build as build_dscmr
        return OneNetwork(build_dscmr(cfg, data, device, method_options(cfg)))
    if data.patch_feats is None:
        raise HAANInputError(f"method {cfg.method!r} aligns image patches with words, and "
                             f"dataset {data.name!r} has no patch features")
    if cfg.method == "shan":
        from .shan import SHANNet
        return OneNetwork(SHANNet(data.patch_dim, len(data.vocab), word_dim=cfg.word_dim,
                                  embed_dim=cfg.embed_dim))
    if cfg.method == "tshsr":
        from .tshsr import TSHSRNet
        return OneNetwork(TSHSRNet(data.patch_dim, len(data.vocab), word_dim=cfg.word_dim,
                                   embed_dim=cfg.embed_dim))
    if cfg.method == "liu":
        from .liu import build
        return OneNetwork(build(cfg, data, device))
    if cfg.method == "scan":
        from .scan import SCANNet
        o = method_options(cfg)
        return OneNetwork(SCANNet(data.patch_dim, len(data.vocab), word_dim=cfg.word_dim,
                                  embed_dim=cfg.embed_dim, formulation=o["formulation"],
                                  pooling=o["pooling"], lambda_softmax=o["lambda_softmax"],
                                  lambda_lse=o["lambda_lse"]))
    if cfg.method in ("sgr", "saf"):
        from .sgraf import SGRAFNet
        o = method_options(cfg)
        return OneNetwork(SGRAFNet(data.patch_dim, len(data.vocab), word_dim=cfg.word_dim,
                                   embed_dim=cfg.embed_dim, sim_dim=o["sim_dim"],
                                   module=cfg.method, sgr_steps=o.get("sgr_steps", 3)))
    raise HAANInputError(f"no network for method {cfg.method!r}")


def method_options(cfg) -> dict:
    """A method's options (its defaults with ``cfg.method_options`` over them); an unknown
    key or a bad value is a clear error."""
    check_method(cfg.method)
    if cfg.method == "liu":
        from .liu import method_options as liu_options
        return liu_options(cfg)
    defaults = dict(METHODS[cfg.method].options)
    given = dict(cfg.method_options or {})
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise HAANInputError(f"unknown option(s) {unknown} for method {cfg.method!r}; "
                             f"known: {sorted(defaults) or 'none'}")
    opts = {**defaults, **given}
    if cfg.method in CLOSED_FORM:
        from .cca import check_options
        opts = check_options(opts)
    if cfg.method in ("dcca", "dscmr", "scan", "sgr", "saf"):
        opts = _check_network_options(cfg.method, opts)
    if "warmup_epochs" in opts:
        w = opts["warmup_epochs"]
        if isinstance(w, bool) or not isinstance(w, int) or w < 0:
            raise HAANInputError(f"warmup_epochs must be an integer >= 0, got {w!r}")
    return opts


def _positive_int(v) -> bool:
    return not isinstance(v, bool) and isinstance(v, int) and v >= 1


def _check_network_options(method: str, opts: dict) -> dict:
    """DCCA's and DSCMR's options, with a clear error naming what is wrong."""
    out = dict(opts)
    bad = None
    if method == "dcca":
        hidden = out["hidden"]
        hidden = (hidden,) if isinstance(hidden, int) else tuple(hidden)
        out["hidden"] = hidden
        if not all(_positive_int(h) for h in hidden):
            bad = f"hidden must be a list of positive integers, got {opts['hidden']!r}"
        elif not _positive_int(out["out_dim"]):
            bad = f"out_dim must be a positive integer, got {out['out_dim']!r}"
        elif out["activation"] not in ("cube_root", "sigmoid", "relu"):
            bad = f"activation must be cube_root, sigmoid or relu, got {out['activation']!r}"
        elif isinstance(out["r"], bool) or not isinstance(out["r"], (int, float)) \
                or not out["r"] > 0:
            bad = f"r must be a number > 0, got {out['r']!r}"
        elif out["components"] is not None and not (
                _positive_int(out["components"]) and out["components"] <= out["out_dim"]):
            bad = f"components must be an integer in 1..out_dim, got {out['components']!r}"
    elif method in ("sgr", "saf"):
        for key in ("sim_dim", "sgr_steps"):
            if key in out and not _positive_int(out[key]):
                bad = f"{key} must be a positive integer, got {out[key]!r}"
    elif method == "scan":
        if out["formulation"] not in ("t2i", "i2t"):
            bad = f"formulation must be t2i or i2t, got {out['formulation']!r}"
        elif out["pooling"] not in ("lse", "mean"):
            bad = f"pooling must be lse or mean, got {out['pooling']!r}"
        for key in ("lambda_softmax", "lambda_lse"):
            v = out[key]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                bad = f"{key} must be a number > 0, got {v!r}"
    else:
        for key in ("hidden", "common"):
            if not _positive_int(out[key]):
                bad = f"{key} must be a positive integer, got {out[key]!r}"
        for key in ("lambda", "eta"):
            v = out[key]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0:
                bad = f"{key} must be a number >= 0, got {v!r}"
    if bad:
        raise HAANInputError(f"--method-option for {method}: {bad}")
    return out


class WarmupRanking:
    """A hinge ranking loss (SHAN eq. 17, TSHSR eq. 9) that sums over all negatives for
    the first ``warmup_epochs`` epochs, then takes the hardest negative when ``hardest``
    (ambiguity log 49: from the start the hardest-negative loss can stay at chance). The
    training loop tells it the epoch (``set_epoch``)."""

    def __init__(self, loss, margin: float, hardest: bool, warmup_epochs: int = 0):
        self.loss, self.margin, self.hardest = loss, margin, hardest
        self.warmup_epochs, self.epoch = warmup_epochs, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __call__(self, sim, img_labels, txt_labels):
        hardest = self.hardest and self.epoch >= self.warmup_epochs
        return self.loss(sim, img_labels, txt_labels, margin=self.margin, hardest=hardest)


def method_loss(cfg):
    """The loss of ``cfg.method`` (not HAAN) as loss(sim, img_labels, txt_labels)."""
    check_method(cfg.method)
    if cfg.method in CLOSED_FORM:
        return None   # nothing is trained by gradient
    if cfg.method == "dcca":
        from .dcca import dcca_loss
        return dcca_loss
    if cfg.method == "dscmr":
        from .dscmr import dscmr_loss
        lam = method_options(cfg)["lambda"]
        return lambda sim, il, tl: dscmr_loss(sim, il, tl, lam=lam)
    if cfg.method == "shan":
        from .shan import shan_loss as loss
    elif cfg.method == "tshsr":
        from .tshsr import tshsr_loss as loss
    elif cfg.method == "scan":
        from .scan import scan_loss as loss
    elif cfg.method in ("sgr", "saf"):
        from .sgraf import sgraf_loss as loss
    elif cfg.method == "liu":
        from .liu import loss as liu_loss
        return liu_loss(cfg)
    else:
        raise HAANInputError(f"no loss for method {cfg.method!r}")
    return WarmupRanking(loss, cfg.tri_margin, cfg.tri_hardest,
                         method_options(cfg).get("warmup_epochs", 0))


def table() -> str:
    """The registry as text, for ``python -m haan_core methods``."""
    lines = [f"{'method':8s} {'trains':7s} paper"]
    for m in METHODS.values():
        lines.append(f"{m.name:8s} {'yes' if m.trains else 'no':7s} {m.paper}")
        if m.notes:
            lines.append(f"{'':16s} {m.notes}")
    return "\n".join(lines)
