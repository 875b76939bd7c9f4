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
cache_dir = None        # str or None: None keeps trained runs in runs/cache in the checkout

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
#   full configuration, the device type and a hash of the haan_core code that a run of its
#   method executes (`sweep.method_code`). Notebooks that need the same model share it, and
#   any change to that code trains afresh.
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

# %% [markdown]
# ## Speed, measured
#
# `python -m haan_core bench` measures speed on the machine it runs on and prints every
# number beside a reference measured in the same run; `--out FILE` writes them as JSON.
# The files below were measured on the machine each one names (not on the machine that
# built this page) and are committed under `data/bench/`. Timings are never asserted in
# the tests. Reproduce them with:
#
# ```
# python -m haan_core bench --out data/bench/cpu.json
# python -m haan_core bench --seeds 0,1,2 --device cpu --out data/bench/seeds_synthetic.json
# ```
#
# The files named `*_before.json` were measured with the code before the speed-up (issue
# #9), at the commit each names, by the snippet its `command` field describes (that code
# has no `bench` command). Why the recipe cannot reach the paper's GPU times on a 2-core
# CPU, in floating-point operations, is in the README ("Speed on your machine").

# %%
from haan_core.bench import report
from haan_core.provenance import PACKAGE_DIR

bench_dir = PACKAGE_DIR.parent / "data" / "bench"
for path in sorted(bench_dir.glob("cpu*.json")):
    r = json.loads(path.read_text())
    print(f"--- {path.name} (MEASURED)")
    print(report(r))
    if r.get("provenance_note"):
        print("note:", r["provenance_note"])
before_path = bench_dir / "epoch_before.json"
if before_path.exists():   # the same epoch timed with the code before issue #9's speed-up
    before = json.loads(before_path.read_text())
    print(f"\n--- {before_path.name} (MEASURED, {before['machine']['device']}, commit "
          f"{before['machine']['commit'][:10]}): one fp32 epoch at Corel shapes "
          f"{min(before['epoch_fp32_s']):.2f} s, the recipe projected "
          f"{before['projected_recipe_s']:.0f} s")

# %% [markdown]
# ### On a GPU
#
# One NVIDIA H200 was lent to this project for one session (through its device tool, not
# in CI). There `tests/test_cuda.py` passed (CPU and GPU give the same similarity matrices,
# losses, mAP and image features within float tolerance, and a short training lands where
# the CPU's does), the bench command ran, and the Corel 5K runs of the Tables 5-6 page were
# trained. The bench file below says how its commit reads; the recipe's time is that of
# the one run made alone on the GPU, features already extracted (the extraction of all
# 4,992 images took another 46-51 s there).

# %%
for path in sorted(bench_dir.glob("gpu*.json")):
    r = json.loads(path.read_text())
    print(f"--- {path.name} (MEASURED)")
    print(report(r))
    if r.get("provenance_note"):
        print("note:", r["provenance_note"])
from haan_core import sweep   # noqa: E402
alone = [r for r in sweep.load_runs("corel5k") if r["concurrent_runs"] == 1
         and r["device"].startswith("cuda")]
for r in alone:
    print(f"\n{r['name']} on Corel 5K, the paper's recipe (E = 100, B = 100), alone on "
          f"{r['device']}: {r['train_seconds']:.1f} s of training (validation each epoch "
          f"included), test AVG mAP {r['avg']:.4f}, commit "
          f"{(r['provenance']['commit'] or 'none')[:10]}, torch {r['provenance']['torch']}")

# %% [markdown]
# On the GPU the recipe is bound by launching small kernels, not by arithmetic: at about
# 42 GFLOP an iteration (README, "Speed on your machine"), the bench's fp32 epoch runs at
# about 1.8 TFLOP/s, some 4 % of the fp32 matrix-product peak measured in the same run,
# and bf16 autocast is slower than fp32 there because its casts are more kernels to
# launch. Several runs at once share the one GPU: four full two-level runs at once took
# about 165 s each; twelve at once, the one-level runs took 245-290 s; sixteen at once,
# 320-400 s (the runs' own records on the Tables 5-6 page).

# %% [markdown]
# ### What bf16 and the faster code do to the numbers
#
# Test mAP (AVG) of the synthetic default (HAAN, 30 epochs) on the same seeds: the code
# before the speed-up of issue #9 (fp32, its commit named), the current code in fp32, and
# the current code with `--precision bf16`. A change smaller than the seed-to-seed spread
# (sd over seeds) is not a change this measurement can see.

# %%
spread_rows = []
for path in sorted(bench_dir.glob("seeds_*.json")):
    r = json.loads(path.read_text())
    code = r.get("label", "current code")
    for x in r["runs"]:
        spread_rows.append({"code": f"{code} @ {(r['machine']['commit'] or 'none')[:10]}",
                            "precision": x["precision"], "seed": x["seed"],
                            "AVG mAP": x["avg"]})
spread = pd.DataFrame(spread_rows)
by_seed = spread.pivot_table(index="seed", columns=["code", "precision"], values="AVG mAP")
summary = spread.groupby(["code", "precision"])["AVG mAP"].agg(["mean", "std", "count"])
display(by_seed.round(4))
summary.round(4)

# %% [markdown]
# ### bf16 on real data: HAAN's Corel 5K recipe over seeds
#
# The same comparison on Corel 5K at the paper's recipe (E = 100, B = 100): each seed's
# run of the `precision` sweep grid (`python -m haan_core sweep precision --root
# data/corel5k`, HAAN with `--precision bf16`) beside Table 6's fp32 HAAN run of the same
# seed. Both are MEASURED and committed under `data/measured/runs/corel5k/`. Their
# training times come from different machines and days (the device column names each), so
# the time of one recipe in each precision on one machine is best read from the bench
# files above, which time an epoch in both precisions in the same run.

# %%
from haan_core.tables import precision_pairs, runs_provenance  # noqa: E402

corel_all = sweep.load_runs("corel5k")
pairs = precision_pairs(corel_all)
if pairs.empty:
    print("No seed has both an fp32 and a bf16 committed run yet: "
          + sweep.command("precision"))
else:
    display(pairs.style.format({"fp32 AVG": "{:.4f}", "bf16 AVG": "{:.4f}",
                                "bf16 - fp32": "{:+.4f}"})
            .set_caption("MEASURED on Corel 5K: test AVG mAP of HAAN in bf16 and fp32, "
                         "same seeds"))
    fp32_sd = pairs["fp32 AVG"].std(ddof=1) if len(pairs) > 1 else float("nan")
    lo, hi = pairs["bf16 train s"].min(), pairs["bf16 train s"].max()
    print(f"bf16 moves test AVG mAP by {pairs['bf16 - fp32'].min():+.4f} to "
          f"{pairs['bf16 - fp32'].max():+.4f} (mean {pairs['bf16 - fp32'].mean():+.4f}) over "
          f"{len(pairs)} seed(s); the sd of the fp32 runs over the same seeds is "
          f"{fp32_sd:.4f}. bf16 trained the recipe in {lo if lo == hi else f'{lo}-{hi}'} s "
          "(validation each epoch included; each run's file says what else ran beside it).")
    display(runs_provenance([r for r in corel_all if r["seed"] in set(pairs.index)
                             and r["variant"] == "HAAN"
                             and r.get("overrides") in ({}, {"precision": "bf16"})]))
