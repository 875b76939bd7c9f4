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
kept_runs = True        # False trains here every run the page reads from the runs kept in
# data/measured/book_runs (those that take 10 s or more; same configuration and code)

# %% [markdown]
# # Figure 6: sensitivity to the margin ρ
#
# ρ is the margin of AWL's pair mining (eqs. 16-17). A small ρ keeps only the hardest
# pairs, and a large one keeps nearly all of them. The paper trains HAAN with
# ρ ∈ {0.2, 0.4, 0.6, 0.8, 1.0} and finds the best AVG mAP at ρ = 0.6 on all three
# datasets (Section 4.5). Here HAAN is trained once per ρ with the parameters above,
# and its **measured** test mAP is drawn.

# %% [markdown]
# ## Figure 6 on Corel 5K, from the committed runs
#
# The paper's recipe on Corel 5K at each ρ, seeds 0, 1, 2, is the grid `figure6` of
# `python -m haan_core sweep figure6 --root data/corel5k` (its ρ = 0.6 runs are Table 6's
# HAAN runs). The runs committed so far under `data/measured/runs/corel5k/` are read here,
# nothing is trained; a ρ with no committed run is listed as still to run.

# %%
import pandas as pd

from haan_core import sweep as grids

all_corel = grids.load_runs("corel5k")
fig6_rows = []
for spec in grids.GRIDS["figure6"].specs():
    rec = next((r for r in all_corel if r["name"] == spec.name), None)
    rho = dict(spec.overrides).get("rho", 0.6)
    fig6_rows.append({"rho": rho, "seed": spec.seed, "run": spec.name,
                      "AVG": None if rec is None else rec["avg"],
                      "I2T": None if rec is None else rec["i2t"],
                      "T2I": None if rec is None else rec["t2i"]})
fig6 = pd.DataFrame(fig6_rows)
have = fig6.dropna(subset=["AVG"])
missing = fig6[fig6["AVG"].isna()]["run"].tolist()
print(f"{len(have)} of {len(fig6)} runs of the figure6 grid are committed"
      + (f"; still to run: {', '.join(missing)}" if missing else ""))
fig6_table = have.groupby("rho")[["I2T", "T2I", "AVG"]].agg(["mean", "std", "count"])
fig6_table.style.format("{:.4f}", na_rep="–",
                        subset=[c for c in fig6_table.columns if c[1] != "count"]) \
    .set_caption("MEASURED on Corel 5K (committed runs): test mAP per rho, mean, sd and n "
                 "over seeds") if len(have) else "no committed run"

# %% [markdown]
# The same runs drawn: one line per seed through its committed runs (a comparison between
# two ρ is fair within a seed, which fixes the initialisation and batch order), and the
# paper's reported Corel 5K AVG at ρ = 0.6 (the one value its text states) as a star.

# %%
import matplotlib.pyplot as plt
import seaborn as sns

from haan_core.reported import reported_map

if len(have):
    fig, ax = plt.subplots()
    sns.lineplot(have.assign(seed=have["seed"].map("MEASURED, seed {}".format)), x="rho",
                 y="AVG", hue="seed", marker="o", palette="deep", ax=ax)
    rep_corel = reported_map("corel5k")
    ax.scatter([0.6], [rep_corel.loc["HAAN", "avg"]], marker="*", s=200, color="black",
               label="REPORTED AVG at ρ = 0.6", zorder=5)
    ax.set(title="MEASURED on Corel 5K (committed runs), test AVG mAP per ρ", xlabel="ρ",
           xticks=sorted(fig6["rho"].unique()))
    ax.legend(fontsize="small")
    plt.show()

# %% [markdown]
# The paper's finding that ρ = 0.6 is best, tested seed by seed with the rule of the claims
# table on the {doc}`table5_6` page: a verdict needs three seeds that each have every ρ,
# and the same outcome on each of them. Below it, where each run was made and the one
# command that remakes the grid (a sweep skips the runs committed with this code and
# configuration, so on a full checkout it trains nothing).

# %%
from haan_core import claims as paper_claims
from haan_core.tables import runs_provenance

rho_claim = next(c for c in paper_claims.SECTION4_CLAIMS if "Figure 6" in c.where)
rho_verdict = paper_claims.verdict(rho_claim, all_corel)
print(f"{rho_claim.text}: {rho_verdict['verdict']}" + (
    "; ρ = 0.6 minus the best other ρ, per seed: "
    + ", ".join(f"{x:+.4f}" for x in rho_verdict["values"]) if rho_verdict["values"] else ""))
if len(have):
    print("best ρ per seed: " + ", ".join(
        f"seed {s}: {g.loc[g['AVG'].astype(float).idxmax(), 'rho']:g}"
        for s, g in have.groupby("seed")))
print("REGENERATE:", grids.command("figure6"))
runs_provenance([r for r in all_corel if r["name"] in set(have["run"])])

# %% [markdown]
# ## Figure 6, re-run here
#
# HAAN trained once per ρ with the parameters above (the synthetic default trains in a
# few minutes on a laptop CPU; at the defaults the runs are read from the runs kept in the
# repository, as a printed line that starts with KEPT says, and `kept_runs = False` trains
# them here).

# %%
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from myst_nb import glue

from haan_core.experiments import book_run, data_label, kept_note, make_config, needs_training
from haan_core.reported import reported_map
from haan_core.runs import cached_train
from haan_core.datasets import load_dataset
from haan_core.tables import provenance_table

data, runs, rows = None, {}, []
for rho in rhos:
    cfg = make_config(dataset, "HAAN", root=root, seed=seed, device=device, epochs=epochs,
                      rho=rho)
    if data is None and needs_training(cfg, cache_dir, kept_runs):
        data = load_dataset(cfg)
    run = runs[f"HAAN, rho={rho:g}"] = book_run(cfg, cache_dir=cache_dir, data=data,
                                                 kept=kept_runs)
    rows += [{"rho": rho, "metric": k.upper(), "mAP": v} for k, v in run.scores.items()]
if kept_note(runs):
    print(kept_note(runs))
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

# %% [markdown]
# ## Exercises
#
# Each exercise uses this page's own variables and functions and takes a few minutes on a
# laptop CPU once the page has run. Where the answer is a number or a shape, the code cell
# after the exercise checks it: replace `None` with your answer and run the cell. `check`
# computes the right answer with haan_core's own code and tells you what is wrong without
# giving it away. The solutions are folded: open one after you have tried.

# %% [markdown]
# :::{exercise} Is the best ρ better than noise?
# :label: ex-figure6-seeds
#
# The table marks the ρ with the highest test AVG.
#
# 1. Train HAAN with ρ = 0.2 and ρ = 0.6 for seeds 1 and 2, four trainings of about a minute
#    each on a laptop CPU:
#    `cached_train(make_config(dataset, "HAAN", root=root, seed=s, device=device, epochs=epochs, rho=r), cache_dir=cache_dir).scores["avg"]`.
#    Do not pass `data=data` here: on the synthetic data the seed also draws the dataset.
# 2. Compare the change between the two ρ with the change between seeds.
# 3. What would you need before saying that one ρ is better? Why should ρ be chosen on the
#    validation split and not on the test split, as this figure reads it?
# :::

# %% [markdown] tags=["solution"]
# :::{solution} ex-figure6-seeds
# :class: dropdown
#
# ```python
# for s in (seed, 1, 2):
#     avg = {r: cached_train(make_config(dataset, "HAAN", root=root, seed=s, device=device,
#                                        epochs=epochs, rho=r),
#                            cache_dir=cache_dir).scores["avg"] for r in (0.2, 0.6)}
#     print(f"seed {s}: rho 0.2 {avg[0.2]:.4f}  rho 0.6 {avg[0.6]:.4f}  "
#           f"difference {avg[0.6] - avg[0.2]:+.4f}")
# ```
#
# (The seed of the page itself is cached already.) What to look for: if the difference
# between ρ = 0.2 and 0.6 changes sign or size from seed to seed as much as the values
# change across the sweep, then the shape of the curve from one seed is noise, and the
# "best ρ" of the table is not a finding. You would need several seeds per ρ and the
# paired differences (same seed, different ρ), with their mean and spread.
#
# Choosing ρ by the test score and then reporting that same test score is a selection on
# the test set: the best of five noisy numbers is biased upwards. A fair protocol picks ρ
# by the validation score (each run's `run.result["val_history"]`) and reports the test
# score of that one choice. The paper reads Figure 6 on its reported scores and does not
# say which split it used.
# :::

# %% [markdown]
# :::{exercise} A ρ so large that stage 1 does nothing
# :label: ex-figure6-large
#
# GCM and LCM similarities are cosines, in [−1, 1].
#
# 1. From eqs. 16-17, show that for ρ > 2 stage 1 keeps every positive and every negative
#    of every batch (the AWL page has an exercise on this margin).
# 2. HAAN should then train *exactly* like HAAN-GCM-LCM-AWL(Stage2), AWL with stage 2 only.
#    Test it by training both with this page's seed, about a minute each:
#    `cached_train(make_config(dataset, "HAAN", root=root, seed=seed, device=device, epochs=epochs, rho=2.5), cache_dir=cache_dir, data=data)`
#    and the same with `"HAAN-GCM-LCM-AWL(Stage2)"` (its ρ is not used). Compare their
#    `.scores`.
# 3. Are the scores close, or identical to the last digit? Why?
# :::

# %% [markdown] tags=["solution"]
# :::{solution} ex-figure6-large
# :class: dropdown
#
# Eq. 16 keeps positive j if $L_{ij} < \max_{k:\,h_k \ne h_i} L_{ik} + \rho$. With
# cosines, $L_{ij} \le 1$ and the maximum is at least −1, so the right-hand side is larger
# than 1 as soon as ρ > 2: every positive is kept. Eq. 17 keeps negative j if
# $L_{ij} > \min_{k:\,h_k = h_i} L_{ik} - \rho$, and with ρ > 2 the right-hand side is
# below $-1 \le L_{ij}$: every negative is kept. (Every batch of more than one class gives
# each anchor a negative; the anchor's own text is always a positive.)
#
# ```python
# common = dict(root=root, seed=seed, device=device, epochs=epochs)
# big = cached_train(make_config(dataset, "HAAN", rho=2.5, **common), cache_dir=cache_dir, data=data)
# stage2 = cached_train(make_config(dataset, "HAAN-GCM-LCM-AWL(Stage2)", **common),
#                       cache_dir=cache_dir, data=data)
# big.scores, stage2.scores, big.scores == stage2.scores
# ```
#
# On a CPU they are identical to the last digit, not merely close. Same seed, so the same
# initial weights and the same batches; the mined sets equal the full sets, so every loss
# value and every gradient is the same number. Training in fp32 on a CPU is deterministic
# (`tests/test_training.py`). On a GPU, non-deterministic kernels can make tiny
# differences. The right end of Figure 6 thus moves towards the stage-2-only ablation of
# Table 6. The paper's range, 0.2 to 1, lies between keeping only the hardest pairs and
# keeping nearly all of them.
# :::
