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
#   python -m haan_core.book run figure6 -p rhos "[0.1, 0.6, 1.2]"
dataset = "synthetic"
root = None             # str or None: data folder of a real dataset (None: where `data fetch` writes)
seed = 0
device = "auto"
epochs = None           # int or None: None takes the dataset's recipe
rhos = [0.2, 0.4, 0.6, 0.8, 1.0]
cache_dir = None        # str or None: None keeps trained runs in runs/cache in the checkout

# %% [markdown]
# # Figure 6: sensitivity to the margin ρ
#
# ρ is the margin of AWL's pair mining (eqs. 16-17). A small ρ keeps only the hardest
# pairs, and a large one keeps nearly all of them. The paper trains HAAN with
# ρ ∈ {0.2, 0.4, 0.6, 0.8, 1.0} and finds the best AVG mAP at ρ = 0.6 on all three
# datasets (Section 4.5). Here HAAN is trained once per ρ with the parameters above,
# and its **measured** test mAP is drawn.

# %%
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from myst_nb import glue

from haan_core.experiments import data_label, make_config
from haan_core.reported import reported_map
from haan_core.runs import cached_train
from haan_core.datasets import load_dataset
from haan_core.tables import provenance_table

data, runs, rows = None, {}, []
for rho in rhos:
    cfg = make_config(dataset, "HAAN", root=root, seed=seed, device=device, epochs=epochs,
                      rho=rho)
    data = data or load_dataset(cfg)
    run = runs[f"HAAN, rho={rho:g}"] = cached_train(cfg, cache_dir=cache_dir, data=data)
    rows += [{"rho": rho, "metric": k.upper(), "mAP": v} for k, v in run.scores.items()]
sweep = pd.DataFrame(rows)
ax = sns.lineplot(sweep, x="rho", y="mAP", hue="metric", marker="o")
rep = reported_map(dataset)
if "HAAN" in rep.index:   # the paper states only the value at its best rho, 0.6
    ax.scatter([0.6], [rep.loc["HAAN", "avg"]], marker="*", s=200, color="black",
               label="REPORTED AVG at ρ = 0.6", zorder=5)
    ax.legend()
ax.set(title=f"MEASURED, {data_label(cfg)}", xlabel="ρ")
plt.show()

# %%
table = sweep.pivot(index="rho", columns="metric", values="mAP")[["I2T", "T2I", "AVG"]]
best = float(table["AVG"].idxmax())
glue("f6_best_rho", best, display=False)
glue("f6_best_avg", float(table["AVG"].max()), display=False)
table.style.format("{:.4f}").highlight_max(props="font-weight: bold") \
    .set_caption("MEASURED test mAP for each ρ (a sensitivity reading on the test split, "
                 "not a selection)")

# %% [markdown]
# In this run the highest measured test AVG mAP, {glue:text}`f6_best_avg:.4f`, comes at
# ρ = {glue:text}`f6_best_rho`. This is a sensitivity reading on the **test split**, the
# way the paper's Figure 6 reads it; it is not a model selection (that would use the
# validation split), and from one seed it does not say that this ρ is better by more than
# the seed-to-seed spread. The paper draws its curves only as pictures. The single
# reported value it states in the text, AVG at ρ = 0.6, appears as a star when the dataset
# is one of the paper's.

# %%
provenance_table(runs)
