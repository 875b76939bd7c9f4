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
#   python -m haan_core.book run figure9 -p queries "[3, 17]"
dataset = "synthetic"
root = None             # str or None: data folder of a real dataset (None: where `data fetch` writes)
seed = 0
device = "auto"
epochs = None           # int or None: None takes the dataset's recipe
queries = None          # list or None: test positions of the queries; None: one scene and one object class
top = 10
cache_dir = None        # str or None: None keeps trained runs in runs/cache in the checkout

# %% [markdown]
# # Figure 9: retrieval examples
#
# The paper's Figure 9 shows the top 10 results of two I2T and two T2I queries on Pascal
# Sentence, with a green border on the right results and a red one on the wrong ones.
# Here the same is shown for the trained HAAN of this book (**measured**). Right means the
# same class as the query (Section 4.3).

# %%
import matplotlib.pyplot as plt
import torch
from matplotlib.patches import Rectangle
from myst_nb import glue

from haan_core.datasets import load_dataset
from haan_core.experiments import data_label, make_config
from haan_core.metrics import average_precision
from haan_core.runs import cached_train

cfg = make_config(dataset, "HAAN", root=root, seed=seed, device=device, epochs=epochs)
data = load_dataset(cfg)
run = cached_train(cfg, cache_dir=cache_dir, data=data)
ev = run.test_eval
sim, labels = ev["sims"]["fused"], ev["img_labels"]
test = data.splits["test"]
if queries is None:
    groups = [data.meta.get("scene_classes", [0]), data.meta.get("object_classes", [1])]
    queries = [int(torch.nonzero(torch.isin(labels, torch.tensor(g)))[0]) for g in groups]
print(data_label(cfg))

# %%
def describe(pos, modality):
    """What a reader can see of a test item: its text, or its image's class."""
    i = int(test[pos])
    if modality == "text":
        words = data.decode(i).split()
        return "\n".join(" ".join(words[k:k + 3]) for k in range(0, len(words), 3))
    if data.synthetic:
        return f"[image of class\n{data.class_names[int(data.labels[i])]};\nfeatures only]"
    return data.class_names[int(data.labels[i])]


def draw(task, q, ax_row):
    scores = sim[q] if task == "I2T" else sim[:, q]
    order = torch.sort(scores, descending=True, stable=True).indices[:top]
    shown = "text" if task == "I2T" else "image"
    query = "image" if task == "I2T" else "text"
    ax_row[0].text(0.5, 0.5, f"{task} query:\n{describe(q, query)}", ha="center",
                   va="center", fontsize=8, wrap=True)
    for ax, j in zip(ax_row[1:], order.tolist()):
        right = bool(labels[j] == labels[q])
        ax.add_patch(Rectangle((0.02, 0.02), 0.96, 0.96, fill=False, lw=4,
                               color="#2ca02c" if right else "#d62728"))
        ax.text(0.5, 0.5, describe(j, shown), ha="center", va="center", fontsize=7)
    for ax in ax_row:
        ax.set_axis_off()
    return sum(bool(labels[j] == labels[q]) for j in order.tolist())


fig, axes = plt.subplots(2 * len(queries), top + 1, figsize=(2 * (top + 1), 2.1 * 2 * len(queries)))
right = {}
for k, q in enumerate(queries):
    right[("I2T", q)] = draw("I2T", q, axes[2 * k])
    right[("T2I", q)] = draw("T2I", q, axes[2 * k + 1])
fig.suptitle(f"MEASURED top {top}: green = same class as the query, red = another class",
             fontsize=11)
plt.show()

# %%
hits = sum(right.values())
glue("f9_hits", hits, display=False)
glue("f9_total", top * len(right), display=False)
ap = average_precision(sim, labels, labels)
glue("f9_map", float(ap.mean()), display=False)

# %% [markdown]
# {glue:text}`f9_hits` of the {glue:text}`f9_total` results shown are right. Over all
# image queries of the test split, the I2T mAP of this model is
# {glue:text}`f9_map:.4f`. On the synthetic data an "image" is a set of feature vectors
# with no picture, so its tile names its class. On a real dataset the tiles name the
# images' classes.

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
# :::{exercise} Precision at 10 is not AP
# :label: ex-figure9-precision
#
# 1. In the first row of the figure (the I2T query `queries[0]`), count the green tiles
#    and write the precision among the top `top` results as a fraction between 0 and 1.
# 2. Compute the AP (eq. 25) of the same query, `ap[queries[0]]`. Why do the two
#    numbers differ? Can a query with ten green tiles out of ten have an AP below 1?
# :::

# %%
answer = None   # your answer: the fraction of right results in the first row, a float between 0 and 1
check("figure9-precision", answer, sim=sim, labels=labels, q=queries[0], k=top)

# %% [markdown] tags=["solution"]
# :::{solution} ex-figure9-precision
# :class: dropdown
#
# ```python
# q = queries[0]
# right[("I2T", q)] / top, float(ap[q])
# ```
#
# Precision at 10 counts the right results among the first 10 and ignores their order and
# everything below rank 10. AP averages the precision at the rank of *every* relevant item,
# and there are about 20 per class in the synthetic test split. A query with ten right
# results out of ten still has AP < 1 if some of its other relevant items rank below wrong
# ones further down. Conversely, a query can show a red tile in the top 10 and still have a
# high AP. A figure of top-10 lists illustrates; it does not measure.
# :::

# %% [markdown]
# :::{exercise} Which level failed?
# :label: ex-figure9-failure
#
# 1. Find the image query with the lowest AP, `q = int(ap.argmin())`, and draw its top
#    results: `draw("I2T", q, plt.subplots(1, top + 1, figsize=(2 * (top + 1), 2.1))[1]); plt.show()`.
# 2. Is its class a scene or an object class (`data.meta["scene_classes"]` on the synthetic
#    data)?
# 3. Compute its AP under the global and the local matrix alone
#    (`average_precision(ev["sims"]["C"], labels, labels)[q]`, and the same with `"F"`).
#    Which level failed, and is that what the design of the synthetic data predicts?
# :::

# %% [markdown] tags=["solution"]
# :::{solution} ex-figure9-failure
# :class: dropdown
#
# ```python
# q = int(ap.argmin())
# draw("I2T", q, plt.subplots(1, top + 1, figsize=(2 * (top + 1), 2.1))[1]); plt.show()
# kind = "scene" if int(labels[q]) in data.meta["scene_classes"] else "object"
# ap_C = float(average_precision(ev["sims"]["C"], labels, labels)[q])
# ap_F = float(average_precision(ev["sims"]["F"], labels, labels)[q])
# kind, float(ap[q]), ap_C, ap_F
# ```
#
# What to look for: on the synthetic data a scene differs from the other scenes only in
# the global feature, so a scene query should be ranked by L^C (a high AP under "C") and
# an object query by L^F. If the level that should know has a low AP for this query, that
# level failed, for example because the query's features lie far from its class prototype.
# If that level is fine but the fused AP is low, the other level pulled the fused ranking
# away (eq. 7 adds both with equal weight).
#
# Also read the query's text, `data.decode(int(test[q]))`: about one text in ten carries a
# second keyword from another class (the `tag_noise` of the synthetic data), and a text
# that names two classes is ambiguous for any model. On a real dataset there is no such
# ground truth: look at the images and the texts themselves.
# :::
