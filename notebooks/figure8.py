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
#   python -m haan_core.book run figure8 -p smooth 20
dataset = "synthetic"
root = None             # str or None: data folder of a real dataset (None: where `data fetch` writes)
seed = 0
device = "auto"
epochs = None           # int or None: None takes the dataset's recipe
smooth = 10          # moving-average window (iterations) for the trend line
cache_dir = None        # str or None: None keeps trained runs in runs/cache in the checkout

# %% [markdown]
# # Figure 8: convergence of the objective C
#
# The paper's Figure 8 shows the value of GAN's objective $C = \tau(L^C)$ (eq. 1) at
# each training iteration, and reports that it decreases monotonically. The paper does
# not draw LAN's objective F, "because it is just similar to GAN". Both are drawn here,
# as **measured** every iteration of the cached HAAN run.

# %%
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from myst_nb import glue

from haan_core.experiments import data_label, make_config
from haan_core.runs import cached_train
from haan_core.tables import provenance_table

cfg = make_config(dataset, "HAAN", root=root, seed=seed, device=device, epochs=epochs)
run = cached_train(cfg, cache_dir=cache_dir)
hist = pd.DataFrame(run.result["loss_history"])
long = hist.melt(["iteration", "epoch"], ["C", "F"], var_name="objective", value_name="value")
long["objective"] = long["objective"].map({"C": "C (GAN, global)", "F": "F (LAN, local)"})
fig, axes = plt.subplots(1, 2, figsize=(12, 4), constrained_layout=True)
for ax, (name, part) in zip(axes, long.groupby("objective")):
    sns.lineplot(part, x="iteration", y="value", ax=ax, alpha=0.35, label="each iteration")
    trend = part["value"].rolling(smooth, min_periods=1).mean()
    ax.plot(part["iteration"], trend, color="black", label=f"mean of {smooth}")
    decay = hist.loc[hist["epoch"] == cfg.decay_epoch, "iteration"]
    if len(decay):
        ax.axvline(decay.iloc[0], color="grey", ls=":", label="learning rate × 0.1")
    ax.set(title=name, ylabel="objective value")
    ax.legend()
fig.suptitle(f"MEASURED, {data_label(cfg)}", fontsize=10)
plt.show()

# %%
first = float(hist["C"].head(smooth).mean())
last = float(hist["C"].tail(smooth).mean())
ups = int((hist["C"].diff() > 0).sum())
glue("f8_first", first, display=False)
glue("f8_last", last, display=False)
glue("f8_ups", ups, display=False)
glue("f8_iters", len(hist), display=False)

# %% [markdown]
# Over {glue:text}`f8_iters` iterations, C falls from a mean of
# {glue:text}`f8_first:.3f` over the first iterations to {glue:text}`f8_last:.3f` over
# the last. Iteration by iteration it is not monotone, though: it rises
# {glue:text}`f8_ups` times. Each iteration sees a different random batch, whose mined
# sets and difficulty differ. The paper's "monotonically decreases" holds for the trend,
# not for every step.

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
# :::{exercise} Where C starts
# :label: ex-figure8-start
#
# At the first iterations the networks are untrained and the similarities of a batch are
# nearly all equal.
#
# 1. Take eq. 23 with every $L_{ik}$ equal to one value $L_0$. Which pairs does stage 1 keep
#    (eqs. 16-17), and what is τ? Show that $L_0$ cancels.
# 2. Take a batch of B = `cfg.batch_size` pairs spread evenly over the data's classes (10
#    on the synthetic data), where the anchor's own text is one of its positives, and sum
#    both anchor directions (ambiguity log, entry 3). Compute C and write it in the cell
#    below.
# 3. Compare with the mean over the first iterations that the page prints. What does the
#    size of C measure at the start?
# :::

# %%
answer = None   # your answer: C for a batch whose similarities are all equal, a float
check("figure8-start", answer, batch_size=cfg.batch_size,
      classes=run.result["provenance"]["data"]["classes"])

# %% [markdown] tags=["solution"]
# :::{solution} ex-figure8-start
# :class: dropdown
#
# With all similarities equal, eq. 16 reads L₀ < L₀ + ρ and eq. 17 reads L₀ > L₀ − ρ, both
# true for ρ > 0, so every pair is kept. For anchor i, with P positives and Q negatives:
#
# $$\ln\big(P\,e^{1-L_0}\big) + \ln\big(Q\,e^{L_0-1}\big) = \ln P + \ln Q,$$
#
# and L₀ cancels. An even batch of B = 100 over 10 classes gives P = 10 (the anchor's own
# text included) and Q = 90 for every anchor, so each direction contributes
# ln 10 + ln 90 ≈ 6.80, and **C = 2 (ln 10 + ln 90) ≈ 13.60**.
#
# The mean over the first iterations that the page prints should be close to this. Real
# batches are not exactly even, and the similarities are not exactly equal.
#
# **What to conclude.** At the start, C mostly counts pairs: it is the log of the sizes
# of the mined sets, not a measure of errors. Part of its later decrease comes from the
# sets shrinking as mining drops the pairs that are already well ordered, and part from
# better-ordered similarities.
# :::

# %% [markdown]
# :::{exercise} Can C be negative?
# :label: ex-figure8-floor
#
# A batch has two pairs of two different classes, with similarities
# L = [[0.9, 0.5], [0.5, 0.9]] (rows images, columns texts; pair i is image i with text i).
#
# 1. With ρ = 0.6, which pairs does stage 1 keep? What is τ (eq. 23, both directions)?
#    Write it in the cell below, then check it with
#    `awl(torch.tensor([[0.9, 0.5], [0.5, 0.9]]), torch.tensor([0, 1]), torch.tensor([0, 1]))`
#    (after `import torch` and `from haan_core.losses import awl`).
# 2. Now make the model better: L = [[0.95, 0.3], [0.3, 0.95]]. What is τ now? What does
#    this say about reading Figure 8's curve as "lower is better" from one iteration to
#    the next?
# :::

# %%
answer = None   # your answer: tau for the first 2 x 2 batch, a float
check("figure8-toy", answer)

# %% [markdown] tags=["solution"]
# :::{solution} ex-figure8-floor
# :class: dropdown
#
# Image anchor 0: the positive 0.9 < 0.5 + 0.6 is kept (eq. 16), and the negative
# 0.5 > 0.9 − 0.6 is kept (eq. 17). Its term is $\ln e^{1-0.9} + \ln e^{0.5-1} = 0.1 - 0.5 = -0.4$.
# Anchor 1 is the same, so the image-anchor term is (1/2)(−0.4 − 0.4) = −0.4. The matrix
# is symmetric, so the text-anchor term is also −0.4, and **τ = −0.8**. AWL can be
# negative.
#
# ```python
# import torch
# from haan_core.losses import awl
# lab = torch.tensor([0, 1])
# awl(torch.tensor([[0.9, 0.5], [0.5, 0.9]]), lab, lab), awl(torch.tensor([[0.95, 0.3], [0.3, 0.95]]), lab, lab)
# ```
#
# In the better batch the positive 0.95 is not below 0.3 + 0.6 = 0.9, and the negative 0.3
# is not above 0.95 − 0.6 = 0.35, so both mined sets are empty and τ = 0. The model
# improved and the loss *rose*, from −0.8 to 0. An anchor whose pairs all leave the mined
# sets stops contributing, whatever its margin.
#
# So C's value depends on which pairs are currently mined, not only on how good the
# similarities are. This is one more reason, besides the changing batches, why C is not
# monotone from one iteration to the next.
# :::

# %% [markdown]
# :::{exercise} Monotone, at which scale?
# :label: ex-figure8-trend
#
# The page counts how often C rises from one iteration to the next (`ups`).
#
# 1. Count instead how often the *smoothed* trend rises,
#    `(hist["C"].rolling(w, min_periods=1).mean().diff() > 0).sum()`, for w = 10 and w = 50.
# 2. Compare the mean of C over the last epoch before the learning-rate decay (epoch
#    `cfg.decay_epoch - 1`) and the first epoch after it (`hist.groupby("epoch")["C"].mean()`).
# 3. Which reading of the paper's "monotonically decreases" does this run support?
# :::

# %% [markdown] tags=["solution"]
# :::{solution} ex-figure8-trend
# :class: dropdown
#
# ```python
# for w in (1, 10, 50):
#     print(w, int((hist["C"].rolling(w, min_periods=1).mean().diff() > 0).sum()))
# per_epoch = hist.groupby("epoch")["C"].mean()
# per_epoch.loc[cfg.decay_epoch - 1], per_epoch.loc[cfg.decay_epoch]
# ```
#
# (w = 1 gives the page's `ups`.) What to look for: the number of rises falls as the window
# grows, because most rises are batch-to-batch differences (which pairs are mined, how hard
# the batch is). If the 50-iteration trend still rises sometimes, the decrease is not
# monotone even on average at that scale. Look at where the rises happen: early, during
# fast learning, or late, on a plateau.
#
# After the decay (learning rate × 0.1) the steps are ten times smaller. The curve
# typically becomes smoother and flatter, and any remaining decrease is slow.
#
# The run supports "C decreases on average over training". It does not support "C decreases
# at each iteration", which is what the paper's sentence says literally. A per-iteration
# plot with random batches cannot be monotone unless every batch happens to be easier than
# the last.
# :::
