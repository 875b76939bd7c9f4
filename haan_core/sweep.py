"""Declared grids of runs on a real dataset (the paper's Section 4), run once and kept.

    python -m haan_core sweep table6 --root data/corel5k            # 7 variants x seeds 0-2
    python -m haan_core sweep figure6 --root data/corel5k --workers 4
    python -m haan_core sweep table6 --list                         # what is done, what is not

A grid is a list of runs: one variant with a few fields changed from the dataset's recipe,
at each seed. Each finished run is written on its own, atomically, under
``data/measured/runs/<dataset>/``:

  ``<run>.json``  scores per module (C, F and the fused eq. 7), the validation curve, the
                  objective of each network at every iteration, the training time, and the
                  provenance (commit the run started from, configuration, seed, device, time;
                  no machine paths);
  ``<run>.npz``   the test similarity matrices of C and F (the fused matrix is eq. 7 of
                  the two; a compared method's one matrix, S) with the test labels: what
                  Figures 5, 7 and 9 are drawn from without retraining. Each is in float16
                  where that keeps its test AVG mAP within 1e-4, in float32 otherwise
                  (:func:`storage_dtype`). About 0.25 MB a run on Corel 5K (249 x 249 x 2).

The .npz is written first and the .json last, so a .json means a whole run. A run whose
.json holds the same configuration and the same training code (the hash of the modules
that HAAN's training runs, :func:`method_code`) is skipped: an interrupted sweep
resumes where it stopped, and a run made on a GPU counts on a CPU (the device is not part
of what a run is; its provenance says where it ran).

Runs go to local worker processes (``--workers N``), or through submitit to a Slurm cluster
(``--executor slurm``) or to submitit's local executor (``--executor local``). Each worker
loads the features from the cache, which the sweep fills once before any run starts.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .claims import SECTION4_CLAIMS, Difference
from .config import VARIANTS, HAANConfig
from .errors import HAANInputError
from .measured import MACHINE_FIELDS, RESULTS_DIR
from .provenance import atomic_write, write_json

RUNS_DIR = RESULTS_DIR / "runs"

# fields that say where or how a run was made, not what it is
NOT_IDENTITY = MACHINE_FIELDS + ("device", "progress")

# the features every Corel 5K run uses (no VGG19 weights can be fetched on the machines
# that measured them; the ambiguity log and the data page say what this changes)
COREL = {"backbone": "efficientnet_lite0", "patch_mode": "crops"}


@dataclass(frozen=True)
class Spec:
    """One run: a variant, fields changed from the recipe, a seed."""
    dataset: str
    variant: str
    overrides: tuple          # ((field, value), ...): what this run changes from the base
    seed: int
    base: tuple = ()          # ((field, value), ...): the grid's own, on top of the recipe

    @property
    def method(self) -> str:
        return dict(self.overrides).get("method", "haan")

    @property
    def name(self) -> str:
        """HAAN's runs by variant ("HAAN-GCM-seed0"), other methods by name ("liu-seed0")."""
        changed = "".join(f"-{k}{v}" for k, v in self.overrides if k != "method")
        head = self.variant if self.method == "haan" else self.method
        head = head.replace("(", "_").replace(")", "")   # a plain file name
        return f"{head}{changed}-seed{self.seed}"

    def config(self, **run_options) -> HAANConfig:
        return HAANConfig.for_dataset(self.dataset, variant=self.variant, seed=self.seed,
                                      **{**dict(self.base), **dict(self.overrides),
                                         **run_options})


@dataclass(frozen=True)
class Grid:
    name: str
    dataset: str
    what: str                 # what the grid measures, in words
    runs: tuple               # ((variant, ((field, value), ...)), ...)
    base: tuple = tuple(COREL.items())
    seeds: tuple = (0, 1, 2)

    def specs(self, seeds=None) -> list:
        return [Spec(self.dataset, v, tuple(o), s, tuple(self.base))
                for s in (self.seeds if seeds is None else seeds) for v, o in self.runs]


TABLE6_VARIANTS = tuple(VARIANTS)    # the seven rows of Table 5, in the paper's order
RHOS = (0.2, 0.4, 0.6, 0.8, 1.0)

GRIDS = {
    "table6": Grid("table6", "corel5k", "Table 6: the seven variants of Table 5",
                   tuple((v, ()) for v in TABLE6_VARIANTS)),
    "figure6": Grid("figure6", "corel5k", "Figure 6: HAAN with the AWL margin rho varied",
                    tuple(("HAAN", () if r == 0.6 else (("rho", r),)) for r in RHOS)),
}
# each compared method with its own paper's recipe (methods.recipe), on HAAN's features;
# one grid each (they differ a lot in cost), and all three as "methods"
COMPARED = ("liu", "shan", "tshsr", "cca", "kcca", "dcca", "scan", "sgr", "saf", "dscmr")
for _m in COMPARED:
    GRIDS[_m] = Grid(_m, "corel5k", f"Table 3: {_m} (a compared method)",
                     (("HAAN", (("method", _m),)),))
GRIDS["methods"] = Grid("methods", "corel5k", "Table 3: the compared methods",
                        tuple(("HAAN", (("method", m),)) for m in COMPARED))
# HAAN's recipe under bfloat16 autocast (ambiguity log, entry 33), beside Table 6's fp32
# HAAN runs of the same seeds: what bf16 does to the time and the test mAP on real data
GRIDS["precision"] = Grid("precision", "corel5k",
                          "HAAN's recipe with --precision bf16 (the fp32 runs are table6's)",
                          (("HAAN", (("precision", "bf16"),)),))


# The modules a HAAN run executes, and the one function of a presentation module that
# changes its numbers (cuDNN's TF32 off). A run is "the same code" when these are byte for
# byte the same, so adding another method, or editing how results are shown, keeps the
# committed runs; any edit to these makes them to be run again. The book's run cache and
# its kept runs use the same hash (haan_core.runs.run_key). tests/test_sweep.py checks that
# training a method imports no module of haan_core outside its list and
# NOT_NUMERIC_MODULES.
HAAN_MODULES = ("config.py", "corpora.py", "datasets.py", "errors.py", "features.py",
                "losses.py", "metrics.py", "models.py", "similarity.py", "train.py")
HAAN_FUNCTIONS = (("provenance.py", "exact_fp32"),)
# modules a training run imports that compute no number of it: the package's entry, the
# provenance record (its one numeric function is in HAAN_FUNCTIONS), and the modules that
# methods/__init__.py imports when it loads, to read SGR's and SAF's recipe
# (methods.sgraf.RECIPE, which imports methods.shan and methods.ranking): only an SGR or
# SAF run (or a SHAN, TSHSR or SCAN run, for shan.py and ranking.py) executes their code,
# and those methods' lists name them
NOT_NUMERIC_MODULES = ("__init__.py", "provenance.py", "methods/sgraf.py",
                       "methods/shan.py", "methods/ranking.py")


def _function_source(module_text: str, name: str) -> str:
    import ast
    tree = ast.parse(module_text)
    node = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name),
                None)
    if node is None:
        raise HAANInputError(f"function {name} not found: HAAN_FUNCTIONS is out of date")
    return ast.get_source_segment(module_text, node)


# A compared method's run executes HAAN's training loop and data code too, and these.
METHOD_MODULES = {"liu": ("methods/__init__.py", "methods/liu.py"),
                  "shan": ("methods/__init__.py", "methods/ranking.py", "methods/shan.py"),
                  "tshsr": ("methods/__init__.py", "methods/ranking.py", "methods/shan.py",
                            "methods/tshsr.py"),
                  "cca": ("methods/__init__.py", "methods/cca.py", "methods/liu.py"),
                  "kcca": ("methods/__init__.py", "methods/cca.py", "methods/liu.py"),
                  "dcca": ("methods/__init__.py", "methods/dcca.py", "methods/cca.py",
                           "methods/liu.py"),
                  "scan": ("methods/__init__.py", "methods/ranking.py", "methods/shan.py",
                           "methods/scan.py"),
                  "sgr": ("methods/__init__.py", "methods/ranking.py", "methods/shan.py",
                          "methods/sgraf.py"),
                  "saf": ("methods/__init__.py", "methods/ranking.py", "methods/shan.py",
                          "methods/sgraf.py"),
                  "dscmr": ("methods/__init__.py", "methods/dscmr.py", "methods/liu.py")}


def method_code(read=None, method: str = "haan") -> str:
    """sha256 of the code a HAAN run executes (:data:`HAAN_MODULES`, :data:`HAAN_FUNCTIONS`),
    and for another method its modules too (:data:`METHOD_MODULES`). ``read(name) -> bytes``
    reads a module of haan_core (default: this checkout's), so the hash of the code at
    another commit can be computed from git."""
    import hashlib

    from .provenance import PACKAGE_DIR
    read = read or (lambda name: (PACKAGE_DIR / name).read_bytes())
    if method != "haan" and method not in METHOD_MODULES:
        raise HAANInputError(f"no code list for method {method!r}: add it to "
                             "sweep.METHOD_MODULES")
    h = hashlib.sha256()
    for name in HAAN_MODULES + METHOD_MODULES.get(method, ()):
        h.update(name.encode())
        h.update(read(name))
    for name, fn in HAAN_FUNCTIONS:
        h.update(f"{name}:{fn}".encode())
        h.update(_function_source(read(name).decode(), fn).encode())
    return h.hexdigest()


def grid_named(names: str) -> Grid:
    """A grid by name, or the union of several: "table6,figure6" (a run in both is one run)."""
    parts = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in parts if n not in GRIDS]
    if unknown or not parts:
        raise HAANInputError(f"unknown grid {names!r}; known: {sorted(GRIDS)} "
                             "(several: comma-separated, e.g. table6,figure6)")
    grids = [GRIDS[n] for n in parts]
    if len({(g.dataset, g.base, g.seeds) for g in grids}) > 1:
        raise HAANInputError(f"grids {parts} differ in dataset, base or seeds: run them apart")
    runs = tuple(dict.fromkeys(r for g in grids for r in g.runs))
    return Grid("+".join(parts), grids[0].dataset, "; ".join(g.what for g in grids), runs,
                grids[0].base, grids[0].seeds)


def identity(cfg: HAANConfig) -> dict:
    """What a run is: its configuration without where or how it ran."""
    return {k: v for k, v in cfg.to_dict().items() if k not in NOT_IDENTITY}


def paths_of(spec: Spec, results_dir=None) -> tuple:
    folder = Path(results_dir or RUNS_DIR) / spec.dataset
    return folder / f"{spec.name}.json", folder / f"{spec.name}.npz"


def code_matches(recorded: str | None, now: str, results_dir=None) -> bool:
    """The code a run recorded is this code, or was shown to compute the same numbers: a
    chain of entries {"from", "to", "evidence"} of ``code_equivalences.json`` beside the
    runs leads from it to this code (a refactor checked bit for bit on a CPU, say)."""
    if recorded == now:
        return True
    path = Path(results_dir or RUNS_DIR) / "code_equivalences.json"
    if recorded is None or not path.exists():
        return False
    edges = json.loads(path.read_text())
    seen, frontier = {recorded}, [recorded]
    while frontier:
        c = frontier.pop()
        for e in edges:
            if e["from"] == c and e["to"] not in seen:
                if e["to"] == now:
                    return True
                seen.add(e["to"])
                frontier.append(e["to"])
    return False


def is_done(spec: Spec, code: str, results_dir=None) -> bool:
    """A committed run with this configuration and this training code."""
    js, npz = paths_of(spec, results_dir)
    if not (js.exists() and npz.exists()):
        return False
    from .measured import ADDED_FIELDS
    rec = json.loads(js.read_text())
    made = {**ADDED_FIELDS, **rec.get("identity", {})}   # fields added since it was made
    return code_matches(rec.get("code"), code, results_dir) and \
        made == identity(spec.config())


def _objective(loss_history: list) -> dict:
    """Per-iteration objectives as lists (4 significant digits: Figure 8's resolution): C
    and F of HAAN's networks, S of a compared method's one network."""
    keys = [k for k in ("C", "F", "S") if loss_history and k in loss_history[0]]
    return {k: [float(f"{r[k]:.4g}") for r in loss_history] for k in keys}


def _load_average():
    """The machine's 1-minute load average (None where the OS has none): with the run's own
    threads, it says whether something else shared the machine while the run was timed."""
    import os
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def record(spec: Spec, result, code: str, workers: int, matrices: Path,
           load: dict | None = None) -> dict:
    """The committed form of a TrainResult."""
    prov = result.provenance
    prov = {**prov, "config": {**prov["config"], **{k: None for k in MACHINE_FIELDS}}}
    per_epoch = sum(1 for r in result.loss_history if r["epoch"] == 0)
    return {"name": spec.name, "source": "measured", "dataset": spec.dataset,
            "method": spec.method, "variant": spec.variant, "seed": spec.seed, "overrides": dict(spec.overrides),
            "base": dict(spec.base),
            "identity": identity(spec.config()), "code": code,
            "i2t": result.test["i2t"], "t2i": result.test["t2i"], "avg": result.test["avg"],
            "test_by_module": result.test_by_module, "best_epoch": result.best_epoch + 1,
            "val_history": result.val_history,
            "objective": {"iterations_per_epoch": per_epoch, **_objective(result.loss_history)},
            "train_seconds": result.train_seconds, "device": result.device,
            "cpu": prov.get("cpu"),            # read once, by provenance.provenance()
            "concurrent_runs": workers,
            "machine_load_1min": load or {},   # before and after training
            "matrices": {"file": matrices.name, "bytes": matrices.stat().st_size,
                         "dtype": _stored_dtypes(matrices),
                         "keys": sorted(result.test_eval["sims"].keys() - {"fused"})},
            "regenerate": f"python -m haan_core sweep <grid> --root DIR  (run {spec.name})",
            "provenance": prov}


def _stored_dtypes(npz: Path):
    """The dtype the matrices of ``npz`` are kept in: one name, or {key: name} when they
    differ."""
    with np.load(npz) as z:
        kinds = {k: str(z[k].dtype) for k in z.files if not k.endswith("labels")}
    return kinds.popitem()[1] if len(set(kinds.values())) == 1 else kinds


def run_one(spec: Spec, root: str | None, device: str, results_dir=None,
            workers: int = 1) -> dict:
    """Train one run and write its two files (the .npz, then the .json). Runs in a worker."""
    import torch

    from .provenance import keep_freed_memory
    from .train import train
    keep_freed_memory()          # a spawned worker does not inherit the command line's
    code = method_code(method=spec.method)
    if workers > 1:   # share the CPU's cores between the workers instead of oversubscribing
        import os
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))
    load = {"before": _load_average()}
    result = train(spec.config(root=root, device=device, progress=False))
    load["after"] = _load_average()
    js, npz = paths_of(spec, results_dir)
    write_matrices(npz, result.test_eval, skip=("fused",))
    rec = record(spec, result, code, workers, npz, load)
    write_json(js, rec)
    return {"name": spec.name, "avg": rec["avg"], "train_seconds": rec["train_seconds"]}


def load_runs(dataset: str = "corel5k", results_dir=None, method: str | None = "haan") -> list:
    """The committed runs of ``dataset`` made by ``method`` (None: every method), in name
    order."""
    folder = Path(results_dir or RUNS_DIR) / dataset
    runs = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
    return [r for r in runs if method is None or r.get("method", "haan") == method]


# A test matrix is kept in float16 where its float16 copy gives the same test AVG mAP as
# the matrix itself within this; otherwise in float32, as computed. Scores squeezed into a
# narrow range (SAF's sigmoids on Corel 5K all lie in 0.77-0.81) tie in float16 and lose
# their order: that run's copy gave 0.3579 for 0.3889.
FLOAT16_MAP_TOLERANCE = 1e-4


def storage_dtype(sim, img_labels, txt_labels) -> str:
    """"float16" or "float32": how :func:`write_matrices` keeps the matrix ``sim``."""
    import torch

    from .metrics import retrieval_scores
    full = retrieval_scores(sim.float(), img_labels, txt_labels)["avg"]
    half = retrieval_scores(sim.to(torch.float16).float(), img_labels, txt_labels)["avg"]
    return "float16" if abs(half - full) <= FLOAT16_MAP_TOLERANCE else "float32"


def write_matrices(path, test_eval: dict, prefix: str = "", skip=()) -> Path:
    """A run's test matrices (``test_eval["sims"]``, each key behind ``prefix``, those in
    ``skip`` left out) and its labels (int32), as one compressed .npz written atomically.
    A matrix is kept in float16 where that keeps its test AVG mAP within
    :data:`FLOAT16_MAP_TOLERANCE`, in float32 otherwise (:func:`storage_dtype`). Read back
    by :func:`read_matrices`."""
    import torch
    il, tl = test_eval["img_labels"], test_eval["txt_labels"]
    sims = {f"{prefix}{k}": v.to(getattr(torch, storage_dtype(v, il, tl))).numpy()
            for k, v in test_eval["sims"].items() if k not in skip and v is not None}
    labels = {k: test_eval[k].numpy().astype(np.int32) for k in ("img_labels", "txt_labels")}

    def write(tmp):
        with open(tmp, "wb") as f:   # a file object: numpy would add .npz to a name
            np.savez_compressed(f, **sims, **labels)
    return atomic_write(path, write)


def read_matrices(path) -> dict:
    """{key: tensor} of a file of :func:`write_matrices`: matrices as float32, labels as
    int64."""
    import torch
    with np.load(path) as z:
        return {k: torch.from_numpy(z[k].astype(np.float32 if z[k].dtype.kind == "f"
                                                 else np.int64)) for k in z.files}


def load_matrices(rec: dict, results_dir=None) -> dict:
    """The test matrices of a committed run as float32 tensors, with its labels."""
    return read_matrices(Path(results_dir or RUNS_DIR) / rec["dataset"] / rec["matrices"]["file"])


def plan(grid: Grid, seeds=None, results_dir=None) -> tuple:
    """(runs still to do, runs done) of ``grid``."""
    codes = {}
    todo, done = [], []
    for spec in grid.specs(seeds):
        code = codes.setdefault(spec.method, method_code(method=spec.method))
        (done if is_done(spec, code, results_dir) else todo).append(spec)
    return todo, done


def sweep(grid: Grid, root=None, device: str = "auto", workers: int = 1, seeds=None,
          results_dir=None, executor: str = "processes", slurm: dict | None = None,
          log=print) -> list:
    """Run what ``grid`` still lacks; return one summary per finished run. Raises
    HAANInputError naming the runs that failed (the others are kept)."""
    from .datasets import load_dataset
    todo, done = plan(grid, seeds, results_dir)
    log(f"{grid.name}: {len(done)} of {len(done) + len(todo)} runs already done"
        + (f"; running {len(todo)}" if todo else ""))
    if not todo:
        return []
    if workers < 1:
        raise HAANInputError(f"--workers must be at least 1, got {workers}")
    # fill the feature cache once, before workers read it (and fail early on a bad root)
    load_dataset(todo[0].config(root=root, device=device, progress=True))
    root = None if root is None else str(root)
    args = [(s, root, device, results_dir, workers) for s in todo]
    finished, failed = [], []
    start = time.perf_counter()

    def report(spec, out=None, err=None):
        if err is None:
            finished.append(out)
            log(f"  done {out['name']}: AVG mAP {out['avg']:.4f} "
                f"({out['train_seconds']:.0f} s training; {time.perf_counter() - start:.0f} s "
                f"into the sweep)")
        else:
            failed.append(spec.name)
            log(f"  FAILED {spec.name}: {err.__class__.__name__}: {err}")

    if executor == "processes":
        if workers == 1:
            for a in args:
                try:
                    report(a[0], run_one(*a))
                except HAANInputError:
                    raise
                except Exception as e:   # noqa: BLE001 - reported, the sweep goes on
                    report(a[0], err=e)
        else:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor, as_completed
            with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
                futures = {pool.submit(run_one, *a): a[0] for a in args}
                for f in as_completed(futures):
                    try:
                        report(futures[f], f.result())
                    except Exception as e:   # noqa: BLE001
                        report(futures[f], err=e)
    elif executor in ("slurm", "local"):
        try:
            import submitit
        except ImportError:
            raise HAANInputError("--executor slurm/local needs submitit: "
                                 "pip install submitit") from None
        folder = Path((slurm or {}).get("folder") or "submitit_logs")   # the jobs' logs
        ex = (submitit.AutoExecutor(folder=folder, cluster="slurm") if executor == "slurm"
              else submitit.LocalExecutor(folder=folder))
        params = {k: v for k, v in (slurm or {}).items() if k != "folder"}
        if executor == "slurm":
            ex.update_parameters(**{"timeout_min": 120, "gpus_per_node": 1,
                                    "cpus_per_task": 4, **params})
        else:
            ex.update_parameters(timeout_min=params.get("timeout_min", 120))
        if executor == "local":   # submitit runs every job at once on this machine
            args = [(*a[:4], len(args)) for a in args]
        jobs = ex.map_array(run_one, *zip(*args))
        log(f"  submitted {len(jobs)} jobs to {executor} (logs in {folder})")
        for spec, job in zip(todo, jobs):
            try:
                report(spec, job.result())
            except Exception as e:   # noqa: BLE001
                report(spec, err=e)
    else:
        raise HAANInputError(f"unknown executor {executor!r}: use processes, slurm or local")
    if failed:
        raise HAANInputError(f"{len(failed)} run(s) of {grid.name} failed: {failed}; the "
                             f"{len(finished)} that finished are written; run the same "
                             "command again to retry the others")
    return finished


def status_table(grid: Grid, seeds=None, results_dir=None) -> str:
    todo, done = plan(grid, seeds, results_dir)
    lines = [f"{grid.name} ({grid.dataset}): {grid.what}"]
    for spec in grid.specs(seeds):
        state = "done" if spec in done else "to run"
        lines.append(f"  {spec.name:40s} {state}")
    lines.append(f"{len(done)} done, {len(todo)} to run; files in "
                 f"{Path(results_dir or RUNS_DIR).name}/{grid.dataset}/")
    return "\n".join(lines)


# ---- reading the committed runs for the book ------------------------------------------

def command(grids: str, root: str = "data/corel5k") -> str:
    """The one command that remakes what a page reads from ``data/measured/runs``: the
    sweep of ``grids`` (comma-separated, see :func:`grid_named`); committed runs of this
    code and configuration are skipped, so on a full checkout it trains nothing."""
    grid_named(grids)   # an unknown name or a union that cannot run together fails here
    return f"python -m haan_core sweep {grids} --root {root}"


def select(records: list, variant: str | None = None, **overrides) -> list:
    """The runs of one variant with exactly these overrides (none: the recipe's)."""
    return [r for r in records if (variant is None or r["variant"] == variant)
            and r.get("overrides", {}) == overrides]


def row_of(rec: dict) -> str:
    """A run's row in a table: HAAN's variant, or the compared method's name."""
    method = rec.get("method", "haan")
    return rec["variant"] if method == "haan" else method


# Methods whose paper forms a score from two separately trained networks: SGRAF (Diao et
# al.) averages an SGR and an SAF network's matrices (methods.sgraf.sgraf_combine)
COMBINED = {"sgraf": ("sgr", "saf")}


# The claims of Section 4.4 that runs of this package's compared methods can test, beside
# haan_core.claims' Sections 4.5-4.6 (rows named by method: "kcca", "dcca", "scan";
# "sgraf" is derived from an SGR and an SAF run by :func:`combined_runs`; ambiguity log,
# entry 64). The other rows of Table 3 (JRL, JFSSL, MAVA, SCL, CGMN, NAAF, VSRN++) have no
# implementation here, so their claims are not listed. They live here, with the compared
# methods' grids.
_T3 = "Section 4.4, Table 3"
SECTION44_CLAIMS = (
    Difference("HAAN beats KCCA", _T3, "HAAN", "kcca"),
    Difference("HAAN beats DCCA", _T3, "HAAN", "dcca"),
    Difference("HAAN beats SCAN (\"significantly outperforms\", conclusion 4)", _T3,
               "HAAN", "scan"),
    Difference("HAAN beats SGRAF", _T3, "HAAN", "sgraf"),
    Difference("the deep method DCCA beats the traditional KCCA (conclusion 1)", _T3,
               "dcca", "kcca"),
    Difference("the deep method SCAN beats the traditional KCCA (conclusion 1)", _T3,
               "scan", "kcca"),
    Difference("the attention-based SCAN beats DCCA (\"significantly better\", "
               "conclusion 2)", _T3, "scan", "dcca"),
)


def paper_claims() -> tuple:
    """Every claim of Sections 4.4-4.6 the committed Corel 5K runs can test, in the
    paper's order: :data:`SECTION44_CLAIMS`, then :data:`haan_core.claims.SECTION4_CLAIMS`
    (Sections 4.5-4.6). Pass to :func:`haan_core.claims.claims_table` as ``claims``."""
    return SECTION44_CLAIMS + SECTION4_CLAIMS


def combined_scores(name: str, a: dict, b: dict, names=("", ""), k=None) -> dict:
    """I2T, T2I and AVG of the :data:`COMBINED` method ``name`` from its two parts' test
    results ``a`` and ``b`` (each with "S", "img_labels", "txt_labels"); ``names`` name the
    parts in the error raised when they were tested on different items."""
    from .methods.sgraf import sgraf_combine
    from .metrics import retrieval_scores
    if name != "sgraf":
        raise HAANInputError(f"no combination rule for {name!r}; known: {sorted(COMBINED)}")
    if not (torch_equal(a["img_labels"], b["img_labels"])
            and torch_equal(a["txt_labels"], b["txt_labels"])):
        raise HAANInputError(f"{names[0]} and {names[1]} were tested on different items: "
                             "they cannot be combined")
    return retrieval_scores(sgraf_combine(a["S"], b["S"]), a["img_labels"], a["txt_labels"],
                            k)


def combined_runs(records: list, results_dir=None) -> list:
    """Rows of :data:`COMBINED` methods derived from committed runs: for each seed with a run
    of both parts, the test scores of their combined test matrices (recomputed from the
    float16 matrices). Each derived record names the runs it comes from; nothing is
    trained."""
    by = {(r.get("method", "haan"), r["seed"]): r for r in records}
    out = []
    for name, (a, b) in COMBINED.items():
        for seed in sorted(s for m, s in by if m == a and (b, s) in by):
            ra, rb = by[(a, seed)], by[(b, seed)]
            sc = combined_scores(name, load_matrices(ra, results_dir),
                                 load_matrices(rb, results_dir), (ra["name"], rb["name"]))
            out.append({"name": f"{name}-seed{seed}", "method": name, "variant": "HAAN",
                        "seed": seed, "dataset": ra["dataset"], "i2t": sc["i2t"],
                        "t2i": sc["t2i"], "avg": sc["avg"],
                        "derived_from": [ra["name"], rb["name"]],
                        "train_seconds": ra["train_seconds"] + rb["train_seconds"]})
    return out


def torch_equal(a, b) -> bool:
    import torch
    return a.shape == b.shape and bool(torch.equal(a, b))


def over_seeds(records: list, order=None):
    """Runs grouped by row (HAAN's variant or a compared method, :func:`row_of`): mean, sd (n - 1) and n of I2T, T2I, AVG over seeds, and
    the seeds. Variants in ``order`` first (those without runs are left out)."""
    import pandas as pd
    df = pd.DataFrame([{"variant": row_of(r), "seed": r["seed"], "i2t": r["i2t"],
                        "t2i": r["t2i"], "avg": r["avg"]} for r in records])
    if df.empty:
        return pd.DataFrame()
    g = df.groupby("variant")
    out = pd.concat({"mean": g[["i2t", "t2i", "avg"]].mean(),
                     "sd": g[["i2t", "t2i", "avg"]].std(ddof=1)}, axis=1)
    out[("n", "")] = g.size()
    out[("seeds", "")] = g["seed"].apply(lambda s: ",".join(str(x) for x in sorted(s)))
    if order is not None:
        out = out.reindex([v for v in order if v in out.index])
    return out


def claim_verdict(records: list, better: str, worse: str, metric: str = "avg",
                  min_seeds: int = 3) -> dict:
    """Does ``better`` beat ``worse``? Paired by seed (the same seed, the same data order
    and initial weights where the two share modules); rows are matched by ``variant``. A
    verdict needs ``min_seeds`` pairs and the sign on every one of them
    (:func:`haan_core.claims.verdict`, the rule of every claim the book tests)."""
    from .claims import Difference, verdict
    v = verdict(Difference(f"{better} beats {worse}", "", better, worse, metric=metric),
                records, min_seeds, key=lambda r: r["variant"])
    return {"better": better, "worse": worse, "seeds": v["seeds"],
            "differences": v["values"],
            "mean_difference": v["mean"] if v["seeds"] else None, "verdict": v["verdict"]}
