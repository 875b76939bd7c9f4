# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% tags=["parameters"]
# Parameters. Re-run with new values:
#   python -m haan_core.book run reproducibility
cache_dir = None     # None: runs/cache in the checkout

# %% [markdown]
# # Reproducibility
#
# Every measured number in this book comes from a run of `haan_core` at a known commit,
# with known parameters, seed and device. This page records the environment that built
# the book and every trained run it used.
#
# ## How the numbers are made
#
# - **Seeds.** A run seeds PyTorch and its own batch generator from the configuration's
#   `seed`. The synthetic data is generated from the same seed. On the CPU, the same seed
#   gives the same numbers bit for bit; the test suite checks this. On a GPU, cuDNN's
#   GRU kernels may differ in the last digits.
# - **Runs are cached.** A trained run is stored under `runs/cache/` with a key made of its
#   full configuration, the device type and a hash of the haan_core code that computes
#   results. Notebooks that need the same model share it, and any change to the method
#   trains afresh.
# - **Reported numbers** come from `haan_core/paper_tables/*.csv`, copied from the paper.
#   They are labelled REPORTED wherever they appear. Measured ones are labelled MEASURED and
#   carry the provenance below.
# - **Re-running a page** with new parameters takes one line, for example
#   `python -m haan_core.book run table3 -p seed 3 -p epochs 10`, then
#   `python -m haan_core.book build` (or `make book`, which runs only what changed).
#   The paper-scale recipes (Section 4.2) are YAML files in `notebooks/params/`:
#   `python -m haan_core.book run table3 -f notebooks/params/corel5k.yml`.
# - **Launch buttons** (the rocket icon) open a page on Binder or Colab from the
#   repository named in `_config.yml`. No public remote existed when this was written;
#   that address is the project's intended home.

# %%
import json
import platform
from importlib import metadata
from pathlib import Path

import pandas as pd
import torch

from haan_core.provenance import device_description, git_commit, resolve_device
from haan_core.runs import code_hash, default_cache_dir

packages = ["torch", "torchvision", "numpy", "pandas", "matplotlib", "seaborn",
            "jupyter-book", "papermill", "jupytext", "myst-nb"]
env = {"python": platform.python_version(), "platform": platform.platform(),
       "device used by default": device_description(resolve_device("auto")),
       "CUDA available": torch.cuda.is_available(),
       "haan_core commit": git_commit()["commit"], "uncommitted changes": git_commit()["dirty"],
       "haan_core code hash": code_hash()[:16]}
env.update({f"package {p}": metadata.version(p) for p in packages})
pd.Series(env, name="value").to_frame()

# %% [markdown]
# ## Every cached run
#
# One row per trained run in the cache: the configuration that differs from the paper's
# values, and the run's provenance.

# %%
cache = default_cache_dir() if cache_dir is None else cache_dir
rows = []
for path in sorted(Path(cache).glob("*/result.json")):
    r = json.loads(path.read_text())
    p, c = r["provenance"], r["provenance"]["config"]
    rows.append({"run": path.parent.name[-20:], "dataset": c["dataset"],
                 "variant": c["variant"], "seed": p["seed"], "epochs": c["epochs"],
                 "rho": c["rho"], "AVG mAP": round(r["avg"], 4), "device": p["device"],
                 "commit": (p["commit"] or "none")[:10] + ("+dirty" if p["dirty"] else ""),
                 "trained (UTC)": p["time_utc"], "train s": round(p["wall_seconds"], 1)})
runs = pd.DataFrame(rows)
print(f"{len(runs)} cached runs in {cache}")
runs
