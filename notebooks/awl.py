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
#   python -m haan_core.book run awl -p rho 0.2 -p batch 24
dataset = "synthetic"
root = None             # str or None: data folder of a real dataset (None: where `data fetch` writes)
seed = 0
device = "auto"
epochs = None           # int or None: None takes the dataset's recipe
rho = 0.6            # mining margin of eqs. 16-17 (the paper: 0.6)
batch = 16           # size B of the batch drawn below
cache_dir = None        # str or None: None keeps trained runs in runs/cache in the checkout

# %% [markdown]
# # The adaptive weighted loss (Section 3.4)
#
# AWL trains each of HAAN's two networks from its similarity matrix $L$ in two stages.
# **Stage 1** (pair mining) keeps only informative pairs. **Stage 2** (pair weighting)
# gives the hardest of them the most weight. This page applies both stages to one batch.
# It derives the gradient and compares the closed form of eq. 24 with autograd, then
# switches each stage off to see what it does.

# %%
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
import torch
from myst_nb import glue

from haan_core.datasets import load_dataset
from haan_core.experiments import data_label, make_config
from haan_core.losses import awl, awl_grad, mine_pairs, pair_weights, triplet
from haan_core.runs import cached_train

cfg = make_config(dataset, "HAAN", root=root, seed=seed, device=device, epochs=epochs)
data = load_dataset(cfg)
run = cached_train(cfg, cache_dir=cache_dir, data=data)
model = run.model(data).cpu()
g = torch.Generator().manual_seed(seed)
idx = data.splits["train"][torch.randperm(len(data.splits["train"]), generator=g)[:batch]]
idx = idx[torch.argsort(data.labels[idx], stable=True)]
b = data.batch(idx)
with torch.no_grad():
    L = model.similarities(b)["C"].double()     # the global matrix L^C of this batch
labels = b["img_labels"]
names = [data.class_names[int(c)] for c in labels]
print(f"{data_label(cfg)}; a training batch of B = {batch} pairs, sorted by class")

# %% [markdown]
# ## Stage 1: pair mining (eqs. 16-17)
#
# For an anchor $s_i$, a candidate of the same class forms a positive pair and one of
# another class a negative pair. A positive is kept if it is less similar than the
# anchor's most similar negative plus the margin ρ. A negative is kept if it is more
# similar than the anchor's least similar positive minus ρ:
#
# $$L^+_{ij} < \max_{h_k \ne h_i} L_{ik} + \rho \quad (16) \qquad
#   L^-_{ij} > \min_{h_k = h_i} L_{ik} - \rho \quad (17)$$
#
# Easy pairs, positives already far closer than any negative and negatives already far
# below any positive, drop out.

# %%
pos = labels[:, None] == labels[None, :]
S_pos, S_neg = mine_pairs(L, pos, rho)
fig, axes = plt.subplots(1, 3, figsize=(16, 4.6), constrained_layout=True)
sns.heatmap(L.numpy(), ax=axes[0], cmap="viridis", xticklabels=names, yticklabels=names)
axes[0].set(title="$L^C$ of the batch (rows: image anchors)")
state = torch.zeros_like(L)
state[pos] = 1            # positive, not mined
state[S_pos] = 2          # mined positive (S+)
state[S_neg] = -1         # mined negative (S-)
cmap = sns.color_palette(["#d62728", "#eeeeee", "#9ecae1", "#2ca02c"], as_cmap=True)
sns.heatmap(state.numpy(), ax=axes[1], cmap=cmap, vmin=-1.5, vmax=2.5, cbar=False,
            xticklabels=names, yticklabels=names)
axes[1].set(title=f"ρ = {rho:g}: green S+, light blue dropped positives,\n"
                  "red S-, grey dropped negatives")
W_pos, W_neg = pair_weights(L, S_pos, S_neg)
sns.heatmap((W_pos - W_neg).numpy(), ax=axes[2], cmap="RdBu", center=0,
            xticklabels=names, yticklabels=names, cbar_kws={"label": "W+ (blue), -W- (red)"})
axes[2].set(title="Stage 2 weights (eqs. 18-19)")
plt.show()
kept = float((S_pos | S_neg).sum()) / L.numel()
glue("awl_kept", 100 * kept, display=False)
glue("awl_rho", rho, display=False)

# %% [markdown]
# With ρ = {glue:text}`awl_rho`, stage 1 keeps {glue:text}`awl_kept:.1f`% of the
# B × B pairs of this batch, for the image anchors. The text anchors, the columns, are
# mined the same way.
#
# ## Stage 2: pair weighting (eqs. 18-22)
#
# Within each mined set the pairs are weighted by a softmax:
#
# $$W^+_{ij} = \frac{e^{(1-L_{ij})}}{\sum_{s_k\in S^+_i} e^{(1-L_{ik})}} \quad (18) \qquad
#   W^-_{ij} = \frac{e^{(L_{ij}-1)}}{\sum_{s_k\in S^-_i} e^{(L_{ik}-1)}} \quad (19)$$
#
# A positive weighs more the less similar it is, and a negative the more similar it is:
# the hard pairs dominate. The loss whose derivatives these weights are is eq. 23:
#
# $$\tau(L) = \frac{1}{B}\sum_{i=1}^{B}\Big\{\ln\sum_{s_k\in S_i^+} e^{(1-L_{ik})}
#   + \ln\sum_{s_k\in S_i^-} e^{(L_{ik}-1)}\Big\} \qquad (23)$$
#
# ## The gradient (eq. 24) equals autograd
#
# Differentiating eq. 23 gives the weights back: $\partial\tau/\partial L_{ij} = -W^+_{ij}/B$ on
# $S^+_i$ and $+W^-_{ij}/B$ on $S^-_i$ (eq. 24; the printed equation drops the $1/B$, see the
# ambiguity log). haan_core implements the closed form (`awl_grad`) separately from the
# loss, so it can be compared with PyTorch's automatic derivative:

# %%
Lg = L.clone().requires_grad_(True)
loss = awl(Lg, labels, labels, rho=rho)
loss.backward()
closed = awl_grad(L, labels, labels, rho=rho)
torch.set_printoptions(precision=6, sci_mode=False)
print("first anchor, eq. 24 closed form:\n", closed[0])
print("first anchor, autograd:\n", Lg.grad[0])
diff = (closed - Lg.grad).abs().max().item()
print(f"largest difference over the whole matrix: {diff:.1e}")
glue("awl_grad_diff", diff, display=False)
glue("awl_loss", loss.item(), display=False)

# %% [markdown]
# The two gradients agree to {glue:text}`awl_grad_diff:.1e` (double precision), for a loss
# of {glue:text}`awl_loss:.4f` on this batch.
#
# ## Each stage switched off
#
# Without stage 1, every pair takes part. Without stage 2, each set's log-sum-exp becomes
# a plain mean: every chosen pair counts the same. With both off we get the loss this
# book uses for HAAN-GCM-LCM, which has neither AWL nor TRI (see the ambiguity log). The
# triplet loss TRI of the ablation is shown for comparison.

# %%
rows = []
for mining in (True, False):
    for weighting in (True, False):
        value = awl(L, labels, labels, rho=rho, mining=mining, weighting=weighting)
        grad = awl_grad(L, labels, labels, rho=rho, mining=mining, weighting=weighting)
        rows.append({"stage 1 (mining)": "on" if mining else "off",
                     "stage 2 (weighting)": "on" if weighting else "off",
                     "loss": value.item(), "pairs with gradient": int((grad != 0).sum()),
                     "largest |gradient|": grad.abs().max().item()})
rows.append({"stage 1 (mining)": "TRI", "stage 2 (weighting)": "(hardest negative)",
             "loss": triplet(L, labels, labels).item(), "pairs with gradient": None,
             "largest |gradient|": None})
pd.DataFrame(rows)

# %% [markdown]
# ## How much mining keeps as ρ varies

# %%
grid = [0.0, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.5]
frac = []
for r in grid:
    sp, sn = mine_pairs(L, pos, r)
    frac.append({"rho": r, "kept positives": float(sp.sum() / pos.sum()),
                 "kept negatives": float(sn.sum() / (~pos).sum())})
frac = pd.DataFrame(frac).melt("rho", var_name="set", value_name="fraction kept")
ax = sns.lineplot(frac, x="rho", y="fraction kept", hue="set", marker="o")
ax.axvline(rho, color="grey", ls=":")
ax.set(title="Stage 1 on this batch: a larger margin keeps more pairs")
plt.show()

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
# :::{exercise} Counting the mined pairs
# :label: ex-awl-count
#
# 1. In the middle heatmap, count the pairs in S⁺ (green) and S⁻ (red) for the image
#    anchors (the rows), then confirm with `S_pos` and `S_neg`. Write |S⁺| + |S⁻| in the
#    cell below.
# 2. How does your count relate to the percentage printed under the figure?
# 3. Count again with ρ = 0, using `mine_pairs(L, pos, 0.0)`. Which pairs are still kept,
#    and what do they have in common? What does ρ > 0 add?
# :::

# %%
answer = None   # your answer: |S+| + |S-| over the image anchors of this batch, an int
check("awl-count", answer, sim=L, labels=labels, rho=rho)

# %% [markdown] tags=["solution"]
# :::{solution} ex-awl-count
# :class: dropdown
#
# ```python
# print("rho =", rho, ":", int(S_pos.sum()), "+", int(S_neg.sum()), "=", int((S_pos | S_neg).sum()))
# S0_pos, S0_neg = mine_pairs(L, pos, 0.0)
# print("rho = 0:", int(S0_pos.sum()), "+", int(S0_neg.sum()))
# ```
#
# The page's percentage is this count divided by B² = `batch ** 2`, times 100.
#
# At ρ = 0, eq. 16 keeps a positive only if it is *less* similar than the anchor's most
# similar negative, and eq. 17 keeps a negative only if it is *more* similar than the
# anchor's least similar positive. What survives are exactly the pairs in the wrong order.
# An anchor whose positives all rank above its negatives keeps nothing and gets no
# gradient. A margin ρ > 0 also keeps pairs that are in the right order but by less than
# ρ, so the loss keeps pushing until every positive leads every negative by ρ.
# :::

# %% [markdown]
# :::{exercise} Eq. 24 from eq. 23, for one anchor
# :label: ex-awl-grad
#
# 1. For one image anchor i, with the sets $S^+_i$ and $S^-_i$ fixed (mining is a selection
#    and is not differentiated, ambiguity log entry 5), differentiate eq. 23 by $L_{ij}$.
#    Show that you get $-W^+_{ij}/B$ on $S^+_i$, $+W^-_{ij}/B$ on $S^-_i$ and 0 elsewhere,
#    with W the weights of eqs. 18-19.
# 2. Check it for the first anchor: compute `mine = (W_neg[0] - W_pos[0]) / batch` and
#    compare it with `awl_grad(L, labels, labels, rho=rho, directions="i2t")[0]`.
# 3. Now compare `mine` with `closed[0]`, the page's gradient with the default
#    `directions="both"`. Why do they differ, and in which entries?
# :::

# %% [markdown] tags=["solution"]
# :::{solution} ex-awl-grad
# :class: dropdown
#
# Anchor i contributes
# $\tau_i = \ln\sum_{k\in S^+_i} e^{1-L_{ik}} + \ln\sum_{k\in S^-_i} e^{L_{ik}-1}$ to
# eq. 23, and $\tau = \frac{1}{B}\sum_i \tau_i$. For $j \in S^+_i$ only the first sum
# depends on $L_{ij}$:
#
# $$\frac{\partial}{\partial L_{ij}} \ln\sum_{k\in S^+_i} e^{1-L_{ik}}
#   = -\frac{e^{1-L_{ij}}}{\sum_{k\in S^+_i} e^{1-L_{ik}}} = -W^+_{ij} \quad \text{(eq. 18)}.$$
#
# For $j \in S^-_i$ the second sum gives $+W^-_{ij}$ (eq. 19) in the same way. Then
# multiply by 1/B. The paper prints eq. 24 without the 1/B (ambiguity log, entry 6);
# autograd agrees with the version that has it.
#
# ```python
# mine = (W_neg[0] - W_pos[0]) / batch
# one_way = awl_grad(L, labels, labels, rho=rho, directions="i2t")[0]
# print((mine - one_way).abs().max())      # 0: the image-anchor term alone
# print((mine - closed[0]).abs())          # non-zero where text anchors also use L_0j
# ```
#
# With `directions="both"`, eq. 23 also has a text-anchor term (ambiguity log, entry 3).
# Each column j is then an anchor whose candidates are the images, and L_0j belongs to
# text j's mined sets whenever image 0 does. The gradient of L_0j is the sum of the two
# contributions, so `closed[0]` differs from `mine` exactly in the entries where image 0 is
# in S⁺ or S⁻ of text anchor j.
# :::

# %% [markdown]
# :::{exercise} The margin at which mining keeps everything
# :label: ex-awl-rho
#
# The last figure shows that a larger ρ keeps more pairs.
#
# 1. From eqs. 16-17, write the condition on ρ under which anchor i keeps *all* its
#    positives, and the one under which it keeps all its negatives.
# 2. Derive the smallest ρ above which stage 1 keeps every pair of this batch (image
#    anchors), compute it from `L` and `pos`, and write it in the cell below.
# 3. Similarities here are cosines, in [−1, 1]. Above which ρ does stage 1 keep every pair
#    of *any* batch, and what does HAAN then become (Table 5)?
# :::

# %%
answer = None   # your answer: the smallest rho above which stage 1 keeps every pair, a float
check("awl-rho", answer, sim=L, labels=labels)

# %% [markdown] tags=["solution"]
# :::{solution} ex-awl-rho
# :class: dropdown
#
# Write $\max_+$ and $\min_+$ over the anchor's positives, $\max_-$ and $\min_-$ over
# its negatives. Anchor i keeps all its positives if even the most similar one satisfies
# eq. 16: $\max_+ L_{ij} < \max_- L_{ik} + \rho$, that is
# $\rho > \max_+ L_{ij} - \max_- L_{ik}$. It keeps all its negatives if even the least
# similar one satisfies eq. 17: $\min_- L_{ij} > \min_+ L_{ik} - \rho$, that is
# $\rho > \min_+ L_{ik} - \min_- L_{ij}$. So stage 1 keeps every pair of the batch when
# ρ is larger than
#
# $$\rho^* = \max_i \max\big(\max_{+} L_{ij} - \max_{-} L_{ik},\ \min_{+} L_{ij} - \min_{-} L_{ik}\big).$$
#
# ```python
# rho_star = max(max(L[i][pos[i]].max() - L[i][~pos[i]].max(),
#                    L[i][pos[i]].min() - L[i][~pos[i]].min()).item() for i in range(len(L)))
# for r in (rho_star - 1e-6, rho_star + 1e-6):
#     sp, sn = mine_pairs(L, pos, r)
#     print(r, bool((sp | sn).all()))      # False just below, True just above
# ```
#
# Both lines of the last figure reach 1 at every ρ of its grid above ρ*. For cosines
# each difference is at most 1 − (−1) = 2, so for ρ > 2 stage 1 keeps every pair of every
# batch. HAAN then trains exactly like HAAN-GCM-LCM-AWL(Stage2), stage 2 alone. The
# Figure 6 page has an exercise that checks this by training both.
# :::
