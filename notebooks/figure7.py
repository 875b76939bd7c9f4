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
#   python -m haan_core.book run figure7 -p weights "[0.0, 0.5, 1.0]"
dataset = "synthetic"
root = None             # str or None: data folder of a real dataset (None: where `data fetch` writes)
seed = 0
device = "auto"
epochs = None           # int or None: None takes the dataset's recipe
weights = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
cache_dir = None        # str or None: None keeps trained runs in runs/cache in the checkout

# %% [markdown]
# # Figure 7: the fusion weights υ1 and υ2
#
# Retrieval ranks by the fused matrix of eq. 7:
#
# $$\tilde L = \upsilon_1 \tilde L^C + \upsilon_2 \tilde L^F \qquad (7)$$
#
# The two networks are trained separately (eqs. 1-6), so the fusion happens only at
# retrieval time. The whole υ1 × υ2 grid therefore needs **no retraining**: one trained
# HAAN gives both matrices, and each grid cell only re-ranks. The paper reports the best
# mAP near υ1 : υ2 = 1 : 1 (Section 4.5).

# %%
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from myst_nb import glue

from haan_core.experiments import data_label, make_config
from haan_core.metrics import retrieval_scores
from haan_core.models import fuse
from haan_core.runs import cached_train
from haan_core.tables import provenance_table

cfg = make_config(dataset, "HAAN", root=root, seed=seed, device=device, epochs=epochs)
run = cached_train(cfg, cache_dir=cache_dir)
ev = run.test_eval
L_C, L_F = ev["sims"]["C"], ev["sims"]["F"]
grid = pd.DataFrame(index=pd.Index(weights, name="υ1 (global)"),
                    columns=pd.Index(weights, name="υ2 (local)"), dtype=float)
for u1 in weights:
    for u2 in weights:
        if u1 + u2 > 0:
            fused = fuse(L_C, L_F, u1, u2)
            grid.loc[u1, u2] = retrieval_scores(fused, ev["img_labels"], ev["txt_labels"])["avg"]
fig, ax = plt.subplots(figsize=(7.5, 6))
sns.heatmap(grid, annot=len(weights) <= 10, fmt=".3f", cmap="viridis", ax=ax,
            cbar_kws={"label": "AVG mAP (measured)"})
ax.invert_yaxis()
ax.set(title=f"MEASURED AVG mAP over the fusion grid\n{data_label(cfg)}")
plt.show()

# %%
best = grid.stack().idxmax()
glue("f7_best_u1", best[0], display=False)
glue("f7_best_u2", best[1], display=False)
glue("f7_best", float(grid.stack().max()), display=False)
equal = [grid.loc[w, w] for w in weights if w > 0]
glue("f7_equal", float(equal[-1]) if equal else float("nan"), display=False)

# %% [markdown]
# The highest test AVG mAP of this grid, {glue:text}`f7_best:.4f`, is at υ1 =
# {glue:text}`f7_best_u1`, υ2 = {glue:text}`f7_best_u2`. Like the paper's Figure 7, this
# reads the sensitivity to the weights on the **test split**; it is not a selection of
# the weights (that would use the validation split). Every cell of the
# diagonal scores the same, {glue:text}`f7_equal:.4f`: a common scale does not change
# a ranking, so only the ratio υ1 : υ2 matters. Far from the diagonal one level
# dominates, and mAP falls towards the single-level models of Table 6.

# %%
provenance_table({"HAAN": run})

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
# :::{exercise} Only the ratio υ1 : υ2 matters
# :label: ex-figure7-ratio
#
# 1. Show that ranking by $c\tilde L$ with c > 0 gives the same ranking as $\tilde L$. Deduce
#    that mAP depends on υ1 and υ2 only through the share υ1 / (υ1 + υ2).
# 2. How many *different* rankings does the 10 × 10 grid of `weights` hold? Write the number
#    in the cell below.
# 3. Find two off-diagonal cells with the same ratio and compare their values in `grid`.
# :::

# %%
answer = None   # your answer: the number of different rankings in the grid, an int
check("figure7-ratios", answer, weights=weights)

# %% [markdown] tags=["solution"]
# :::{solution} ex-figure7-ratio
# :class: dropdown
#
# mAP (eq. 25) depends only on the order of each row (and column) of the similarity matrix.
# Multiplying by c > 0 preserves every order, ties included. Since
# υ1 L^C + υ2 L^F = (υ1 + υ2)·[s L^C + (1 − s) L^F] with s = υ1/(υ1 + υ2), only s matters.
#
# With weights i/10 for i = 1, …, 10, s takes one value per reduced fraction i/j with
# 1 ≤ i, j ≤ 10. Their number is 2·(φ(1) + … + φ(10)) − 1 = 2 · 32 − 1 = **63**, with φ
# Euler's totient. So 37 of the 100 cells repeat another cell. An example:
#
# ```python
# grid.loc[0.2, 0.4], grid.loc[0.5, 1.0]      # both have s = 1/3
# ```
#
# The two values agree. (In principle float rounding in `fuse` could swap two nearly tied
# items and change the last digits, but a real difference would point to a bug.) The grid
# is therefore really a one-dimensional curve over s, drawn twice.
# :::

# %% [markdown]
# :::{exercise} The two ends of the grid
# :label: ex-figure7-ends
#
# The grid starts at 0.1, so neither level is ever switched off.
#
# 1. Compute the AVG mAP at υ1 = 1, υ2 = 0, the global matrix alone, with `fuse` and
#    `retrieval_scores`, and write it in the cell below.
# 2. Compare it with `run.result["test_by_module"]` and with HAAN-GCM on the Table 6 page.
#    Why are the last two different models, although both rank by a global matrix alone?
# 3. Which part of the heatmap comes closest to each single level?
# :::

# %%
answer = None   # your answer: the AVG mAP of fuse(L_C, L_F, 1.0, 0.0), a float
check("figure7-gcm", answer, ev=ev)

# %% [markdown] tags=["solution"]
# :::{solution} ex-figure7-ends
# :class: dropdown
#
# ```python
# print(retrieval_scores(fuse(L_C, L_F, 1.0, 0.0), ev["img_labels"], ev["txt_labels"])["avg"])
# print(run.result["test_by_module"]["C"]["avg"], run.result["test_by_module"]["F"]["avg"])
# ```
#
# With υ2 = 0 eq. 7 is υ1 L^C, which ranks exactly like L^C. The value equals the
# `test_by_module["C"]` score that the run stored for its global network.
#
# HAAN-GCM of Table 6 is a different model. It is a global network trained on its own,
# with the base loss instead of AWL (ambiguity log, entries 1-2), and its snapshot is
# chosen by its own validation score. HAAN's global network is trained with AWL, and its
# snapshot is chosen by the fused score (entry 14). Both rank by one global matrix, but
# the matrices come from different training runs.
#
# In the heatmap, the corners far from the diagonal come closest to a single level: υ1 = 1
# with υ2 = 0.1 (mostly global) and υ1 = 0.1 with υ2 = 1 (mostly local). Along the way
# from the diagonal to a corner, mAP moves towards that level's own score.
# :::
