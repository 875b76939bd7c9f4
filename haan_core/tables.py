"""Tables for the book: measured numbers beside reported ones, never mixed up.

A measured table comes from runs of this code and carries their provenance; a reported
table comes from the paper (:mod:`haan_core.reported`). :func:`compare` puts them side by
side, under column labels that say which is which, with the difference
(measured - reported) where the paper reports the same method on the same dataset.
"""
from __future__ import annotations

import pandas as pd

from .reported import DATASET_TITLES, reported_map

METRICS = {"i2t": "I2T", "t2i": "T2I", "avg": "AVG"}


def measured_map(runs: dict) -> pd.DataFrame:
    """{method: Run} -> measured I2T/T2I/AVG indexed by method."""
    df = pd.DataFrame({m: r.scores for m, r in runs.items()}).T.rename_axis("method")
    df.attrs["source"] = "measured"
    return df[list(METRICS)]


def compare(measured: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """Measured mAP next to the paper's mAP for the same method and dataset.

    Columns are (metric, "measured" | "reported" | "difference"); reported and difference
    are empty where the paper has no such number (e.g. on the synthetic dataset)."""
    reported = reported_map(dataset)
    cols = {}
    for key, title in METRICS.items():
        rep = reported[key].reindex(measured.index) if len(reported) else \
            pd.Series(float("nan"), index=measured.index)
        cols[(title, "measured")] = measured[key]
        cols[(title, "reported")] = rep
        cols[(title, "difference")] = measured[key] - rep
    out = pd.DataFrame(cols)
    out.columns = pd.MultiIndex.from_tuples(out.columns, names=["", "source"])
    out.attrs["dataset"] = dataset
    return out


def style_best(df: pd.DataFrame, caption: str | None = None, fmt: str = "{:.4f}"):
    """Bold the best value of each measured/reported column, as the paper does."""
    plain = ("difference", "sd", "seeds")   # not a score: nothing to bold

    def bold(col):
        if (isinstance(col.name, tuple) and col.name[-1] in plain) or \
                not pd.api.types.is_numeric_dtype(col):
            return [""] * len(col)
        best = col.max()
        return ["font-weight: bold" if pd.notna(v) and v == best else "" for v in col]
    numeric = [c for c in df.columns if pd.api.types.is_numeric_dtype(df[c])]
    styler = df.style.apply(bold, axis=0).format(fmt, na_rep="–", subset=numeric)
    if caption:
        styler = styler.set_caption(caption)
    return styler


def reported_table3() -> pd.DataFrame:
    """The paper's Table 3 with a (dataset, metric) column header, as printed."""
    from .reported import load
    df = load("table3").set_index("method")
    cols = {}
    for ds in ("corel5k", "pascal", "wiki"):
        for key, title in METRICS.items():
            cols[(DATASET_TITLES[ds], title)] = df[f"{ds}_{key}"]
    out = pd.DataFrame(cols)
    out.columns = pd.MultiIndex.from_tuples(out.columns)
    out.index = [f"{'∘' if k == 'traditional' else '•'} {m} ({y})"
                 for m, k, y in zip(df.index, df["kind"], df["year"])]
    out.attrs["source"] = "reported"
    return out


def provenance_table(runs: dict) -> pd.DataFrame:
    """Where each measured number comes from: one row per run. "run" says whether it was
    trained on this machine (now or earlier, into the run cache) or read from the runs kept
    in the repository (:func:`haan_core.experiments.book_run`)."""
    from .experiments import KeptRun
    rows = []
    for method, run in runs.items():
        p = run.result["provenance"]
        c = p["config"]
        rows.append({"method": method, "dataset": c["dataset"], "seed": p["seed"],
                     "epochs": c["epochs"], "batch": c["batch_size"], "rho": c["rho"],
                     "upsilon1:upsilon2": f"{c['upsilon1']:g}:{c['upsilon2']:g}",
                     "device": p["device"],
                     "commit": (p["commit"] or "none")[:10] + ("+dirty" if p["dirty"] else ""),
                     "trained (UTC)": p["time_utc"], "train s": round(p["wall_seconds"], 1),
                     "best epoch": run.result["best_epoch"] + 1,
                     "run": ("kept (data/measured/book_runs)" if isinstance(run, KeptRun)
                             else "trained here")})
    return pd.DataFrame(rows).set_index("method")


def runs_provenance(records: list) -> pd.DataFrame:
    """Where each committed sweep run (:func:`haan_core.sweep.load_runs`) was made: one row
    per run, with its device, how many runs shared that device ("runs at once": only a run
    made alone is a timing of one run), its training time, the commit it started from and
    when it was trained."""
    rows = [{"run": r["name"], "seed": r["seed"], "device": r["device"],
             "runs at once": r.get("concurrent_runs", 1),
             "train s": round(r["train_seconds"]),
             "commit": (r["provenance"]["commit"] or "none")[:10]
             + ("+dirty" if r["provenance"].get("dirty") else ""),
             "trained (UTC)": r["provenance"]["time_utc"]}
            for r in records if "provenance" in r]   # a derived row (SGRAF) has its parts'
    return pd.DataFrame(rows, columns=["run", "seed", "device", "runs at once", "train s",
                                       "commit", "trained (UTC)"]).set_index("run")


def _beside_seeds(summary: pd.DataFrame, reported: pd.DataFrame, dataset: str,
                  sources: pd.Series | None = None) -> pd.DataFrame:
    """Per metric the measured mean over seeds, its sd, the reported value (``reported``:
    i2t/t2i/avg by row, NaN where none) and the difference (mean - reported); then where
    each reported row is from (when ``sources``) and the seeds."""
    cols = {}
    for key, title in METRICS.items():
        rep = reported[key].reindex(summary.index)
        cols[(title, "measured mean")] = summary[("mean", key)]
        cols[(title, "sd")] = summary[("sd", key)]
        cols[(title, "reported")] = rep
        cols[(title, "difference")] = summary[("mean", key)] - rep
    if sources is not None:
        cols[("", "reported in")] = sources
    cols[("", "seeds")] = summary[("seeds", "")]
    out = pd.DataFrame(cols)
    out.columns = pd.MultiIndex.from_tuples(out.columns, names=["", "source"])
    out.attrs["dataset"] = dataset
    return out


def compare_over_seeds(summary: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """:func:`haan_core.sweep.over_seeds` beside the paper: per metric the measured mean, its
    sd over seeds, the reported value and the difference (mean - reported); then n."""
    return _beside_seeds(summary, reported_map(dataset), dataset)


# The REPORTED row that a measured row over seeds is laid beside: (reported table, its row,
# where it is from). HAAN's variants and the methods of HAAN's Table 3 are found there by
# name; a compared method that reports itself elsewhere is named here.
REPORTED_ROWS = {"liu": ("liu2023_table4", "Liu et al. (their method)", "Liu et al.'s Table 4"),
                 "kcca": ("table3", "KCCA", "HAAN's Table 3"),
                 "dcca": ("table3", "DCCA", "HAAN's Table 3"),
                 "scan": ("table3", "SCAN", "HAAN's Table 3"),
                 "sgraf": ("table3", "SGRAF", "HAAN's Table 3"),
                 "cca": ("liu2023_table4", "CCA", "Liu et al.'s Table 4")}   # HAAN's has none


def compare_methods_over_seeds(summary: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """Like :func:`compare_over_seeds`, for rows that are methods: each measured row beside
    its own paper's reported row where that paper reports it (HAAN's Table 3 for HAAN and
    the methods it lists, :data:`REPORTED_ROWS` for the others), with a column naming the
    source; empty where no paper reports the method on ``dataset``."""
    from .reported import COLUMN_PREFIX, load
    haan = reported_map(dataset)
    prefix = COLUMN_PREFIX.get(dataset)
    rows, sources = [], []
    for row in summary.index:
        vals, source = {k: float("nan") for k in METRICS}, ""
        if row in REPORTED_ROWS and prefix:
            table, name, source = REPORTED_ROWS[row]
            t = load(table).set_index("method")
            if name in t.index and f"{prefix}_avg" in t.columns \
                    and pd.notna(t.loc[name, f"{prefix}_avg"]):
                vals = {k: float(t.loc[name, f"{prefix}_{k}"]) for k in METRICS}
            else:
                source = ""
        elif row in haan.index:
            vals = {k: float(haan.loc[row, k]) for k in METRICS}
            source = f"HAAN's {haan.loc[row, 'table']}"
        rows.append(vals)
        sources.append(source or "not reported")
    return _beside_seeds(summary, pd.DataFrame(rows, index=summary.index), dataset,
                         pd.Series(sources, index=summary.index))


def precision_pairs(records: list, variant: str = "HAAN") -> pd.DataFrame:
    """bf16 beside fp32 on the same seeds: for each seed with a committed run of ``variant``
    in both precisions (the recipe's run, and the run whose one changed field is
    ``precision: bf16``), both test AVGs, their difference (bf16 - fp32) and both training
    times with the device each ran on. Seeds with only one of the two are left out."""
    from .sweep import select
    haan = [r for r in records if r.get("method", "haan") == "haan"]
    fp32 = {r["seed"]: r for r in select(haan, variant)}
    bf16 = {r["seed"]: r for r in select(haan, variant, precision="bf16")}
    rows = []
    for seed in sorted(fp32.keys() & bf16.keys()):
        a, b = fp32[seed], bf16[seed]
        rows.append({"seed": seed, "fp32 AVG": a["avg"], "bf16 AVG": b["avg"],
                     "bf16 - fp32": b["avg"] - a["avg"],
                     "fp32 train s": round(a["train_seconds"]), "fp32 device": a["device"],
                     "bf16 train s": round(b["train_seconds"]), "bf16 device": b["device"]
                     + (f", {b['cpu']}" if b.get("cpu") else "")})
    return pd.DataFrame(rows, columns=["seed", "fp32 AVG", "bf16 AVG", "bf16 - fp32",
                                       "fp32 train s", "fp32 device", "bf16 train s",
                                       "bf16 device"]).set_index("seed")
