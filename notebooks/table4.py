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
#   python -m haan_core.book run table4 -p device cpu -p epochs 10
dataset = "synthetic"
root = None             # str or None: data folder of a real dataset (None: where `data fetch` writes)
seed = 0
device = "auto"
epochs = None           # int or None: None takes the dataset's recipe
batch_size = None       # int or None: None takes the dataset's recipe
variants = ["HAAN", "HAAN-GCM", "HAAN-LCM"]
cache_dir = None        # str or None: None keeps trained runs in runs/cache in the checkout

# %% [markdown]
# # Table 4: training time
#
# The paper's Table 4 reports how long each deep method took to train on each dataset,
# "on the same machine with a single GPU" (an NVIDIA GeForce RTX 2080, Section 4.2.3).
# Below it are the training times **measured** for this book's runs: the wall time of
# the training loop, validation after each epoch included, on the device named in each
# row. A time of a cached run is the time it took when it was trained; its provenance
# says when and where.

# %%
import pandas as pd
from myst_nb import glue

from haan_core.experiments import data_label, make_config, train_variants
from haan_core.reported import DATASET_TITLES, load
from haan_core.tables import provenance_table

# %% [markdown]
# ## Reported (the paper's Table 4), seconds

# %%
rep = load("table4").set_index("method")
rep.columns = [DATASET_TITLES[c.removesuffix("_s")] for c in rep.columns]
rep.style.format("{:,.0f} s").set_caption("REPORTED in the paper: Table 4, training time "
                                          "on one RTX 2080 GPU")

# %% [markdown]
# ## Measured (this book's runs)

# %%
cfg = make_config(dataset, "HAAN", root=root, seed=seed, device=device, epochs=epochs,
                  batch_size=batch_size)
runs = train_variants(variants, dataset, cache_dir=cache_dir, root=root, seed=seed,
                      device=device, epochs=epochs, batch_size=batch_size)
rows = []
for name, run in runs.items():
    r = run.result
    iters = len(r["loss_history"])
    epochs_run = len(r["val_history"])
    reported = rep.loc[name, DATASET_TITLES[dataset]] \
        if name in rep.index and DATASET_TITLES.get(dataset) in rep.columns else None
    rows.append({"method": name, "device (measured)": r["device"],
                 "epochs": epochs_run, "iterations": iters,
                 "measured s": r["train_seconds"],
                 "measured s / epoch": r["train_seconds"] / epochs_run,
                 "measured ms / iteration": 1000 * r["train_seconds"] / iters,
                 "reported s (same dataset)": reported})
measured = pd.DataFrame(rows).set_index("method")
measured.style.format({"measured s": "{:.1f}", "measured s / epoch": "{:.2f}",
                       "measured ms / iteration": "{:.0f}",
                       "reported s (same dataset)": "{:,.0f}"}, na_rep="–") \
    .set_caption(f"MEASURED on {data_label(cfg)}")

# %%
haan = measured.loc["HAAN"] if "HAAN" in measured.index else measured.iloc[0]
glue("t4_seconds", float(haan["measured s"]), display=False)
glue("t4_device", haan["device (measured)"], display=False)
glue("t4_ms", float(haan["measured ms / iteration"]), display=False)
glue("t4_embed", int(cfg.embed_dim), display=False)
glue("t4_width_note", "the same as the paper's" if cfg.embed_dim == 1024 else
     "the paper's is 1024", display=False)

# %% [markdown]
# HAAN trained in {glue:text}`t4_seconds:.1f` s on {glue:text}`t4_device`, about
# {glue:text}`t4_ms:.0f` ms per iteration. It trains two networks, GAN and LAN, while
# HAAN-GCM and HAAN-LCM train one each. LAN costs more than GAN because LCM attends over
# every patch-word pair (eqs. 11-15).
#
# These times are not comparable with the paper's. The hardware differs, and so may the
# data, its size and the model width (a {glue:text}`t4_embed`-d common space here;
# {glue:text}`t4_width_note`), so no difference column is shown.
# On the paper's datasets the "reported s" column fills in beside the measured time. A
# benchmark that prints timings for a chosen device is `python -m haan_core train
# --dataset ... --device cuda`, whose JSON records `train_seconds`.

# %%
provenance_table(runs)
