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
#   python -m haan_core.book run figure5 -p seed 2
dataset = "synthetic"
root = None             # str or None: data folder of a real dataset (None: where `data fetch` writes)
seed = 0
device = "auto"
epochs = None           # int or None: None takes the dataset's recipe
variants = ["HAAN", "HAAN-GCM", "HAAN-LCM"]
recall_points = 21
cache_dir = None        # str or None: None keeps trained runs in runs/cache in the checkout

# %% [markdown]
# # Figure 5: precision-recall curves
#
# The paper's Figure 5 draws precision against recall for I2T and T2I retrieval on each
# dataset. A curve that encloses a larger area is better. Here are the **measured** curves
# of HAAN and of each of its levels alone, on the test split. The paper gives its curves
# only as pictures, with no numbers to put beside these.

# %%
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
import torch
from myst_nb import glue

from haan_core.experiments import data_label, make_config, train_variants
from haan_core.metrics import pr_curve
from haan_core.tables import provenance_table

cfg = make_config(dataset, "HAAN", root=root, seed=seed, device=device, epochs=epochs)
runs = train_variants(variants, dataset, cache_dir=cache_dir, root=root, seed=seed,
                      device=device, epochs=epochs)

# %% [markdown]
# Each curve is the mean over queries of the interpolated precision: at recall level
# $r$, a query's precision is the best it reaches at any depth whose recall is at least
# $r$ (ambiguity log, line 17).

# %%
levels = torch.linspace(0, 1, recall_points, dtype=torch.float64)
rows = []
for name, run in runs.items():
    ev = run.test_eval
    sim, il, tl = ev["sims"]["fused"], ev["img_labels"], ev["txt_labels"]
    for task, s, q, gl in (("I2T", sim, il, tl), ("T2I", sim.T, tl, il)):
        r, p = pr_curve(s, q, gl, levels)
        rows += [{"method": name, "task": task, "recall": float(a), "precision": float(b)}
                 for a, b in zip(r, p)]
curves = pd.DataFrame(rows)
grid = sns.relplot(curves, x="recall", y="precision", hue="method", col="task",
                   kind="line", marker="o", height=4, aspect=1.1)
grid.figure.suptitle(f"MEASURED precision-recall, {data_label(cfg)}", y=1.04, fontsize=10)
plt.show()

# %%
area = curves.groupby(["method", "task"])["precision"].mean().unstack()
glue("f5_haan_i2t", float(area.loc["HAAN", "I2T"]) if "HAAN" in area.index else float("nan"),
     display=False)
area.style.format("{:.4f}").set_caption("Mean interpolated precision over the recall "
                                        "levels (the area under each curve), MEASURED")

# %% [markdown]
# HAAN's I2T curve encloses a mean precision of {glue:text}`f5_haan_i2t:.4f` over the
# recall levels. On the synthetic data, each level alone finds half of the classes and
# then falls to chance. That is why its curve drops steeply at moderate recall.

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

# %%
from haan_core.exercises import check   # check(name, answer): prints whether an answer is right

# %% [markdown]
# :::{exercise} Interpolated precision by hand
# :label: ex-figure5-interp
#
# A query's ranking of six texts is, from the top: wrong, right, right, wrong, wrong, right.
#
# 1. Compute the precision and the recall after each rank.
# 2. The page's curves use *interpolated* precision: at recall level r, the best precision
#    at any depth whose recall is at least r (ambiguity log, entry 17). What is it at
#    r = 0.2? Write it in the cell below. How does it differ from the precision at the
#    first rank whose recall reaches 0.2?
# 3. Check with `pr_curve(torch.tensor([[6., 5, 4, 3, 2, 1]]), torch.tensor([1]), torch.tensor([0, 1, 1, 0, 0, 1]), levels)`.
# 4. What is the AP (eq. 25) of this query?
# :::

# %%
answer = None   # your answer: the interpolated precision at recall 0.2, a float
check("figure5-interp", answer)

# %% [markdown] tags=["solution"]
# :::{solution} ex-figure5-interp
# :class: dropdown
#
# | rank | 1 | 2 | 3 | 4 | 5 | 6 |
# |---|---|---|---|---|---|---|
# | relevant | no | yes | yes | no | no | yes |
# | precision | 0 | 1/2 | 2/3 | 1/2 | 2/5 | 1/2 |
# | recall | 0 | 1/3 | 2/3 | 2/3 | 2/3 | 1 |
#
# The first rank whose recall reaches 0.2 is rank 2, with precision 1/2. Interpolation
# takes the best precision at that depth *or deeper*, which is 2/3, at rank 3. So the
# interpolated precision at r = 0.2 is **2/3**.
#
# ```python
# r, p = pr_curve(torch.tensor([[6., 5, 4, 3, 2, 1]]), torch.tensor([1]),
#                 torch.tensor([0, 1, 1, 0, 0, 1]), levels)
# dict(zip(r.tolist(), p.tolist()))
# ```
#
# The interpolated curve never rises with recall: it removes the saw-tooth of raw
# precision, and it is never below the raw precision at the same depth. The AP of eq. 25 is the mean of the precisions
# at the relevant ranks: (1/2 + 2/3 + 1/2) / 3 = 5/9 ≈ 0.556.
# :::

# %% [markdown]
# :::{exercise} The curve of a random ranking
# :label: ex-figure5-random
#
# 1. Compute the precision-recall curve of a random ranking with the labels of HAAN's test
#    split: `pr_curve(torch.rand(sim.shape, generator=torch.Generator().manual_seed(0)), il, tl, levels)`,
#    with `ev = runs["HAAN"].test_eval`, `sim = ev["sims"]["fused"]` and `il`, `tl` its
#    labels. Draw it next to HAAN's I2T curve.
# 2. At what height does it lie, and why? Why does it rise a little at low recall?
# 3. The text says that each level alone finds half of the classes. Split HAAN-GCM's I2T
#    curve into scene queries and object queries (on the synthetic data, classes 0-4 are
#    scenes: `scene = il < 5`, then `pr_curve(sim[scene], il[scene], tl, levels)`). What
#    does each part look like, and how do they make up the average curve?
# :::

# %% [markdown] tags=["solution"]
# :::{solution} ex-figure5-random
# :class: dropdown
#
# ```python
# ev = runs["HAAN"].test_eval
# sim, il, tl = ev["sims"]["fused"], ev["img_labels"], ev["txt_labels"]
# rand = torch.rand(sim.shape, generator=torch.Generator().manual_seed(0))
# plt.plot(*pr_curve(sim, il, tl, levels), marker="o", label="HAAN, I2T")
# plt.plot(*pr_curve(rand, il, tl, levels), marker="o", label="random ranking")
# plt.xlabel("recall"); plt.ylabel("precision"); plt.legend(); plt.show()
# ```
#
# A random ranking spreads the relevant items evenly down the list, so its precision at
# every depth is about the fraction of relevant items in the gallery. With the synthetic
# data's 10 balanced classes that is about 1/10. At low recall, interpolation takes the
# best precision anywhere deeper, and some early lucky hits lift it, as the chance level of
# AP is lifted (see the exercise on the data page).
#
# ```python
# ev = runs["HAAN-GCM"].test_eval
# sim, il, tl = ev["sims"]["fused"], ev["img_labels"], ev["txt_labels"]
# scene = il < 5
# for part, rows in (("scene queries", scene), ("object queries", ~scene), ("all", il >= 0)):
#     plt.plot(*pr_curve(sim[rows], il[rows], tl, levels), marker="o", label=part)
# plt.xlabel("recall"); plt.ylabel("precision"); plt.legend(); plt.show()
# ```
#
# What to look for: HAAN-GCM ranks the texts of a scene query's class first, so for scene
# queries the precision stays high up to high recall. For object queries it only tells
# objects from scenes, so their precision stays near the share of the query's class among
# the object texts, about 1/5 with five object classes. The average curve over all queries
# lies roughly halfway between the two, well below HAAN's, which is high for both kinds of
# query. HAAN-LCM shows the same picture with scenes and objects swapped.
# :::
