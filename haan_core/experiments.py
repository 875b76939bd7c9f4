"""What the book's notebooks call: configs from notebook parameters, cached runs, labels.

A notebook's parameters cell holds plain values (dataset, seed, device, epochs, ...);
``None`` means "the paper's value or the dataset's recipe".
"""
from __future__ import annotations

from .config import HAANConfig
from .datasets import load_dataset
from .runs import cached_train


def make_config(dataset="synthetic", variant="HAAN", **params) -> HAANConfig:
    """HAANConfig.for_dataset with the parameters that are not None."""
    params = {k: v for k, v in params.items() if v is not None}
    params.setdefault("progress", False)
    return HAANConfig.for_dataset(dataset, variant=variant, **params)


def train_variants(variants, dataset="synthetic", cache_dir=None, **params) -> dict:
    """{variant: Run}, each trained once per configuration and cached on disk."""
    data, runs = None, {}
    for v in variants:
        cfg = make_config(dataset, v, **params)
        if data is None:
            data = load_dataset(cfg)
        runs[v] = cached_train(cfg, cache_dir=cache_dir, data=data)
    return runs


# how the papers write each method's name, for table rows and legends; a method added to
# haan_core.methods.METHODS without an entry here is shown upper-cased
METHOD_LABELS = {"haan": "HAAN", "shan": "SHAN", "tshsr": "TSHSR", "liu": "Liu et al."}


def method_label(name: str) -> str:
    """The row label of a method of :data:`haan_core.methods.METHODS` ("shan" -> "SHAN")."""
    return METHOD_LABELS.get(name, name.upper())


class MethodRuns(dict):
    """{label: Run} of :func:`train_methods`, with the methods it had to leave out:
    ``skipped`` (their registry names) and ``note`` ("not trainable yet: liu", or "")."""

    def __init__(self, runs=(), skipped=()):
        super().__init__(runs)
        self.skipped = list(skipped)
        self.scaled = {}    # {label: (epochs run, the recipe's epochs)}: see BOOK_EPOCHS

    def combined_scores(self) -> dict:
        """{label: {"i2t", "t2i", "avg"}} of each method whose paper scores with two trained
        networks (:data:`haan_core.sweep.COMBINED`; SGRAF: the mean of SGR's and SAF's test
        matrices, Diao et al.), where both are here. Nothing is trained."""
        from .sweep import COMBINED, combined_scores
        out = {}
        for name, (a, b) in COMBINED.items():
            ra, rb = self.get(method_label(a)), self.get(method_label(b))
            if ra is not None and rb is not None:
                parts = [{**r.test_eval, "S": r.test_eval["sims"]["S"]} for r in (ra, rb)]
                out[method_label(name)] = combined_scores(name, *parts, (a, b),
                                                          ra.config.eval_k)
        return out

    @property
    def scaled_caption(self) -> str:
        """"; SCALED epochs (not the recipe's): SGR 1 of 40, ..." for a caption, or ""."""
        return ("; SCALED epochs (not the recipe's): " +
                ", ".join(f"{label} {ran} of {full}" for label, (ran, full)
                          in self.scaled.items())) if self.scaled else ""

    @property
    def scaled_note(self) -> str:
        """"SCALED ..." naming each method trained for other epochs than its recipe, or ""."""
        if not self.scaled:
            return ""
        each = ", ".join(f"{label} {ran} (recipe {full})"
                         for label, (ran, full) in self.scaled.items())
        return (f"SCALED: trained for other epochs than their recipes: {each}. The parameter "
                "method_epochs sets them; by default, on the synthetic data, the slowest "
                "methods are cut to fit the book's build on a CPU, and method_epochs = {} "
                "trains the full recipes (hours on a CPU)")

    @property
    def note(self) -> str:
        return f"not trainable yet: {', '.join(self.skipped)}" if self.skipped else ""

    def recipe_note(self, cfg) -> str:
        """The runs whose epochs, batch size or learning rate differ from ``cfg`` (HAAN's
        configuration): a method's own recipe (its paper's, ``Method.recipe``) replaces the
        dataset's where the notebook's parameters leave them at None. "" when none differs."""
        fields = (("epochs", "epochs"), ("batch_size", "batch"), ("lr", "lr"))
        diff = []
        for label, run in self.items():
            own = [f"{name} {getattr(run.config, f):g}" for f, name in fields
                   if getattr(run.config, f) != getattr(cfg, f)
                   and not (f == "epochs" and label in self.scaled)]   # said by scaled_note
            if own:
                diff.append(f"{label} ({', '.join(own)})")
        if not diff:
            return ""
        haan = ", ".join(f"{name} {getattr(cfg, f):g}" for f, name in fields)
        return f"trained with their own recipe, not HAAN's ({haan}): {'; '.join(diff)}"


# The book's default build trains every compared method on the synthetic data. Four score
# every image-caption pair with a network; on one busy core of a 2-core CPU an epoch of the
# synthetic default took SAF 42 s, SHAN 52 s, SGR 246 s and TSHSR 258 s, so their full
# recipes (30 or 40 epochs) would add hours. On the synthetic data, where a notebook leaves
# `epochs` and `method_epochs` at None, they train for these many epochs instead (SGR's and
# TSHSR's one epoch is their warm-up over all negatives), and the pages print which
# (MethodRuns.scaled_note).
BOOK_EPOCHS = {"sgr": 1, "tshsr": 1, "saf": 3, "shan": 3}


def method_epochs_for(dataset: str, method_epochs=None) -> dict:
    """{method: epochs} that replace a method's recipe epochs: ``method_epochs`` as given,
    or, when None, :data:`BOOK_EPOCHS` on the synthetic data and nothing on a real dataset
    (the committed real-data runs use the full recipes)."""
    from .errors import HAANInputError
    from .methods import METHODS
    if method_epochs is None:
        return dict(BOOK_EPOCHS) if dataset == "synthetic" else {}
    if not isinstance(method_epochs, dict):
        raise HAANInputError(f"method_epochs must be a dict such as {{'sgr': 10}} or None, "
                             f"got {method_epochs!r}")
    for m, n in method_epochs.items():
        if m not in METHODS:
            raise HAANInputError(f"method_epochs names an unknown method {m!r}; known: "
                                 f"{sorted(METHODS)}")
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise HAANInputError(f"method_epochs[{m!r}] must be a whole number of epochs "
                                 f">= 1, got {n!r}")
    return dict(method_epochs)


def train_methods(methods, dataset="synthetic", cache_dir=None, data=None,
                  method_epochs=None, **params) -> MethodRuns:
    """{label: Run} of compared methods (issue #11) by registry name, e.g.
    ``["shan", "tshsr"]``, each trained by HAAN's loop with the parameters
    :func:`train_variants` takes (so the same data and seed) and cached on disk. A parameter
    left at None takes the dataset's recipe, or the method's own where its registry entry
    gives one (``recipe_note`` of the result names those).

    A method the registry marks as not trainable yet is skipped and named in the result's
    ``skipped`` and ``note``; it is picked up as soon as the registry says it trains. An
    unknown name is a HAANInputError naming the known ones. A compared method has no
    variant: each runs with the default ("HAAN"), which its configuration requires.

    Where ``params`` leaves ``epochs`` at None, a method named in
    :func:`method_epochs_for` (``dataset``, ``method_epochs``) trains for that many epochs
    instead of its recipe's; the result's ``scaled`` and ``scaled_note`` name them."""
    from .errors import HAANInputError
    from .methods import METHODS
    methods = list(methods)
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise HAANInputError(f"unknown method {unknown[0]!r}; known: {sorted(METHODS)} "
                             "(python -m haan_core methods lists them)")
    labels = [method_label(m) for m in dict.fromkeys(methods)]
    if len(set(labels)) != len(labels):
        raise HAANInputError(f"two methods share a label in {labels}: give each its own "
                             "entry in haan_core.experiments.METHOD_LABELS")
    scale = method_epochs_for(dataset, method_epochs)   # checked even where epochs wins
    if params.get("epochs") is not None:
        scale = {}
    runs = MethodRuns(skipped=[m for m in dict.fromkeys(methods) if not METHODS[m].trains])
    for m in dict.fromkeys(methods):
        if m in runs.skipped:
            continue
        cfg = make_config(dataset, method=m, **params)
        if m in scale and scale[m] != cfg.epochs:
            runs.scaled[method_label(m)] = (scale[m], cfg.epochs)
            cfg = cfg.replace(epochs=scale[m])
        if data is None:
            data = load_dataset(cfg)
        runs[method_label(m)] = cached_train(cfg, cache_dir=cache_dir, data=data)
    return runs


def data_label(cfg_or_dataset) -> str:
    """"SYNTHETIC data ..." or the real dataset's name, for captions."""
    name = getattr(cfg_or_dataset, "dataset", cfg_or_dataset)
    if name == "synthetic":
        return ("synthetic data (embedded, generated by haan_core: NOT one of the paper's "
                "datasets)")
    from .reported import DATASET_TITLES
    return DATASET_TITLES.get(name, name)


def patch_attention(run, data, index: int, lam: float | None = None):
    """For pair ``index`` (a row of ``data``): under eq. 13, with the image and the text of
    that pair, the word each of the image's patches attends to most, and that weight.

    Returns (words, weights), one per patch in the order of the 3 x 3 crops (row by row).
    ``lam``: eq. 13's inverse temperature; None takes the run's."""
    import torch
    from .similarity import lcm_attention
    model = run.model(data).cpu()
    b = data.batch(torch.tensor([index]))
    with torch.no_grad():
        patches = model.lan.encode_images(b["patches"])              # eq. 8 on every patch
        words, lengths = model.lan.encode_texts(b["tokens"], b["lengths"])   # eq. 9
        _, A = lcm_attention(patches, words, lengths,
                             lam=run.config.lam if lam is None else lam)
    weight, y = A[0, 0].max(dim=1)                                     # (alpha,)
    return [data.vocab[int(t)] for t in b["tokens"][0, y]], weight.tolist()


def draw_patch_attention(ax, words, weights, image=None, marks=None, grid: int = 3):
    """Each patch of a grid x grid cut with its most-attended word and weight written on
    it; over the picture when ``image`` (a PIL image) is given, else on an empty grid
    (``marks``: patches to shade, e.g. the synthetic data's object patches)."""
    import numpy as np
    if image is not None:
        ax.imshow(np.asarray(image.convert("RGB")), extent=(0, grid, grid, 0))
    else:
        ax.imshow(np.zeros((grid, grid)), cmap="Greys", vmin=0, vmax=1, extent=(0, grid, grid, 0))
    for k in range(1, grid):
        ax.axhline(k, color="white" if image is not None else "grey", lw=1.5)
        ax.axvline(k, color="white" if image is not None else "grey", lw=1.5)
    for x, (word, w) in enumerate(zip(words, weights)):
        row, col = divmod(x, grid)
        if marks is not None and bool(marks[x]):
            ax.add_patch(__import__("matplotlib").patches.Rectangle(
                (col, row), 1, 1, color="tab:orange", alpha=0.25))
        ax.text(col + 0.5, row + 0.5, f"{word}\n{w:.2f}", ha="center", va="center",
                fontsize=10, color="black",
                bbox=dict(boxstyle="round,pad=0.2", fc="white", alpha=0.8, lw=0))
    ax.set(xlim=(0, grid), ylim=(grid, 0), xticks=[], yticks=[])
