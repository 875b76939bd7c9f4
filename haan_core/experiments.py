"""What the book's notebooks call: configs from notebook parameters, cached runs, labels.

A notebook's parameters cell holds plain values (dataset, seed, device, epochs, ...);
``None`` means "the paper's value or the dataset's recipe".
"""
from __future__ import annotations

import json
from pathlib import Path

from .config import HAANConfig
from .datasets import load_dataset
from .errors import HAANInputError
from .measured import MACHINE_FIELDS, RESULTS_DIR
from .runs import Run, cached_train, default_cache_dir, run_key


def make_config(dataset="synthetic", variant="HAAN", **params) -> HAANConfig:
    """HAANConfig.for_dataset with the parameters that are not None."""
    params = {k: v for k, v in params.items() if v is not None}
    params.setdefault("progress", False)
    return HAANConfig.for_dataset(dataset, variant=variant, **params)


# ---- runs kept in the repository (issue #9: the default book in minutes) ----------------
#
# The default book uses about twenty runs on the synthetic data (the seven variants, the
# compared methods, the rho sweep): about 17 minutes of a 2-core CPU. Those that take
# KEEP_MIN_SECONDS or more are kept under data/measured/book_runs/, one small pair of files
# each, named by the run key of haan_core.runs (every configuration field, the device type
# and the hash of the training code). A page that needs such a run and does not find it in
# its own cache reads the kept one, and says so (kept_note); it trains when the key differs,
# that is, as soon as the configuration or any training code differs from the run's. A kept
# run holds the result JSON (scores, curves, provenance) and the test matrices (float16
# where that keeps their test mAP, sweep.storage_dtype), not the weights: a page that needs the network trains it (gcm_lcm, awl).
KEPT_DIR = RESULTS_DIR / "book_runs"
KEEP_MIN_SECONDS = 10.0


class KeptRun(Run):
    """A run read from :data:`KEPT_DIR`: scores, curves, provenance and test matrices
    (float16 where that keeps their test mAP, else float32; read back as float32), no
    weights."""

    def model(self, data):
        raise HAANInputError(
            f"run {self.path.stem} was read from the runs kept in the repository "
            f"(data/measured/book_runs), which hold no weights: train it here with "
            f"haan_core.runs.cached_train(cfg), or the page's parameter kept_runs = False")


def kept_name(cfg: HAANConfig, key: str | None = None) -> str:
    """"synthetic-HAAN-GCM-<key>", "synthetic-sgr-<key>": a kept run's file name."""
    head = cfg.variant if cfg.method == "haan" else cfg.method
    head = head.replace("(", "_").replace(")", "")
    return f"{cfg.dataset}-{head}-{key or run_key(cfg)}"


def kept_run(cfg: HAANConfig, kept_dir=None):
    """The run kept for ``cfg``'s key (:class:`KeptRun`), or None."""
    js = Path(kept_dir or KEPT_DIR) / f"{kept_name(cfg)}.json"
    if not js.exists():
        return None
    from .sweep import read_matrices
    result = json.loads(js.read_text())
    z = read_matrices(js.with_suffix(".npz"))
    test_eval = {"sims": {k[len("sims_"):]: v for k, v in z.items() if k.startswith("sims_")},
                 "img_labels": z["img_labels"], "txt_labels": z["txt_labels"]}
    return KeptRun(cfg, result, test_eval, None, js, from_cache=True)


def _cached(cfg: HAANConfig, cache_dir=None) -> bool:
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return (cache / f"{cfg.dataset}-{cfg.variant}-{run_key(cfg)}").is_dir()


def needs_training(cfg: HAANConfig, cache_dir=None, kept: bool = True, kept_dir=None):
    return not (_cached(cfg, cache_dir) or (kept and (Path(kept_dir or KEPT_DIR) /
                                                      f"{kept_name(cfg)}.json").exists()))


def book_run(cfg: HAANConfig, cache_dir=None, data=None, kept: bool = True, kept_dir=None):
    """:func:`haan_core.runs.cached_train`, except that with ``kept`` (default) a run that
    is not in the cache but is kept under :data:`KEPT_DIR` with the same key is read from
    there (a :class:`KeptRun`) instead of trained."""
    if kept and not _cached(cfg, cache_dir):
        run = kept_run(cfg, kept_dir)
        if run is not None:
            return run
    return cached_train(cfg, cache_dir=cache_dir, data=data)


def kept_note(runs) -> str:
    """"KEPT, NOT TRAINED HERE: ..." naming the runs of ``runs`` ({label: Run} or a list)
    read from the kept runs, where and when they were trained; "" when there are none."""
    kept = [(label, r) for label, r in (runs.items() if isinstance(runs, dict)
                                        else enumerate(runs)) if isinstance(r, KeptRun)]
    if not kept:
        return ""
    made = sorted({(r.result["provenance"]["commit"][:7], r.result["device"],
                    r.result["provenance"]["time_utc"][:10]) for _, r in kept})
    where = "; ".join(f"commit {c} on {d}, {t}" for c, d, t in made)
    seconds = sum(r.result["train_seconds"] for _, r in kept)
    labels = "; ".join(str(label) for label, _ in kept)
    return (f"KEPT, NOT TRAINED HERE: {labels} were read from the runs kept in the "
            f"repository (data/measured/book_runs: same configuration and same training "
            f"code as now), trained at {where} ({seconds:.0f} s of training in all; their "
            f"test matrices are kept in float16 where that keeps their test mAP). The parameter kept_runs = False trains "
            f"them here.")


def keep_runs(cache_dir=None, kept_dir=None, min_seconds: float = KEEP_MIN_SECONDS,
              log=print) -> dict:
    """Keep every synthetic run of the cache that took ``min_seconds`` or more to train
    and was trained by this code on a CPU; remove the kept runs that no key of this code
    can reach any more. Run after ``make book`` from an empty cache
    (``python -m haan_core.book keep``). Returns {"kept": [...], "removed": [...]}."""
    import torch

    from .provenance import write_json
    from .sweep import write_matrices
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    out = Path(kept_dir or KEPT_DIR)
    kept, current = [], set()
    for entry in sorted(cache.glob("synthetic-*")):
        if not (entry / "result.json").exists():
            continue
        result = json.loads((entry / "result.json").read_text())
        cfg = HAANConfig(**result["provenance"]["config"])
        key = run_key(cfg)
        if not entry.name.endswith(key) or result["train_seconds"] < min_seconds \
                or not result["device"].startswith("cpu"):
            continue        # other code, quick to train, or not made on a CPU
        if any(result["provenance"]["config"].get(k) is not None for k in MACHINE_FIELDS):
            continue        # names a folder of the machine that ran
        name = kept_name(cfg, key)
        current.add(name)
        test_eval = torch.load(entry / "test_eval.pt", weights_only=True)
        write_matrices(out / f"{name}.npz", test_eval, prefix="sims_")   # the .json last
        write_json(out / f"{name}.json", result)
        kept.append(name)
        log(f"kept {name} ({result['train_seconds']:.0f} s of training)")
    removed = []
    for js in sorted(out.glob("*.json")):
        if js.stem not in current and not _current(js):
            for f in (js, js.with_suffix(".npz")):
                f.unlink(missing_ok=True)
            removed.append(js.stem)
            log(f"removed {js.stem} (made by other code)")
    return {"kept": kept, "removed": removed}


def _current(js: Path) -> bool:
    """A kept run's file name carries the key its configuration has under this code."""
    cfg = HAANConfig(**json.loads(js.read_text())["provenance"]["config"])
    return js.stem == kept_name(cfg)


def stale_kept(kept_dir=None) -> list:
    """The kept runs whose key this code no longer gives (their training code changed)."""
    return [js.stem for js in sorted(Path(kept_dir or KEPT_DIR).glob("*.json"))
            if not _current(js)]


def train_variants(variants, dataset="synthetic", cache_dir=None, kept: bool = True,
                   **params) -> dict:
    """{variant: Run}, each trained once per configuration and cached on disk, or read
    from the kept runs (:func:`book_run`; ``kept=False`` trains them)."""
    data, runs = None, {}
    for v in variants:
        cfg = make_config(dataset, v, **params)
        if data is None and needs_training(cfg, cache_dir, kept):
            data = load_dataset(cfg)
        runs[v] = book_run(cfg, cache_dir=cache_dir, data=data, kept=kept)
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
                  method_epochs=None, kept: bool = True, **params) -> MethodRuns:
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
    instead of its recipe's; the result's ``scaled`` and ``scaled_note`` name them.

    With ``kept`` (default), a run kept in the repository with the same key is read
    instead of trained (:func:`book_run`, :func:`kept_note`)."""
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
        if data is None and needs_training(cfg, cache_dir, kept):
            data = load_dataset(cfg)
        runs[method_label(m)] = book_run(cfg, cache_dir=cache_dir, data=data, kept=kept)
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
