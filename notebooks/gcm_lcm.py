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
#   python -m haan_core.book run gcm_lcm -p pair 5 -p lam 4
dataset = "synthetic"
root = None             # str or None: data folder of a real dataset (None: where `data fetch` writes)
seed = 0
device = "auto"
epochs = None           # int or None: None takes the dataset's recipe
lam = 9.0            # inverse temperature of eq. 13 (the paper: 9)
n_show = 20          # test items drawn in the similarity heatmaps
pair = None             # int or None: test pair whose attention is drawn; None: the first object-class pair
cache_dir = None        # str or None: None keeps trained runs in runs/cache in the checkout
corel_root = None       # str or None: None looks in $HAAN_DATA/corel5k, else data/corel5k
corel_epochs = 5        # epochs of the short Corel 5K run drawn at the end (needs the data)

# %% [markdown]
# # GCM and LCM: image-text similarity at two levels (Section 3.3)
#
# HAAN compares an image with a text twice. The **global-level** module (GCM) compares one
# vector for the whole image with one vector for the whole text. The **local-level**
# module (LCM) compares the image's α = 9 patches with the text's words through
# cross-attention. This page computes both, equation by equation, with the networks of a
# trained HAAN (trained once and cached; see the reproducibility page).

# %%
import matplotlib.pyplot as plt
import seaborn as sns
import torch
import torch.nn.functional as F
from pathlib import Path
from myst_nb import glue

from haan_core.datasets import load_dataset
from haan_core.experiments import data_label, make_config
from haan_core.runs import cached_train
from haan_core.similarity import gcm, lcm, lcm_attention

cfg = make_config(dataset, "HAAN", root=root, seed=seed, device=device, epochs=epochs)
data = load_dataset(cfg)
run = cached_train(cfg, cache_dir=cache_dir, data=data)
model = run.model(data).cpu()
print(f"data: {data_label(cfg)}")
print(f"trained HAAN: test AVG mAP {run.scores['avg']:.4f} (measured)")

# %% [markdown]
# ## The features (Section 3.2)
#
# Each image comes with a global CNN feature $u^C_p$ and α patch features $u^F_{p,x}$.
# Each text is a sequence of word ids. The global network (GAN) projects the image feature
# with a fully connected layer (eq. 8) and encodes the text with a Bi-GRU, each word
# vector being the mean of the two directions (eq. 9). The local network (LAN) does the
# same with its own weights, keeping every patch and every word.
#
# $$n^C_p = K^C u^C_p + b^C \qquad (8)$$
#
# $$m_{q,y} = \tfrac12\left(\overrightarrow{h}_{q,y} + \overleftarrow{h}_{q,y}\right), \qquad
#   m^C_q = \frac{1}{\beta}\sum_{y=1}^{\beta} m_{q,y} \qquad (9)$$

# %%
test = data.splits["test"]
order = test[torch.argsort(data.labels[test], stable=True)]
show = order[torch.linspace(0, len(order) - 1, n_show).long()]   # spread over the classes
b = data.batch(show)
with torch.no_grad():
    n_C = model.gan.encode_images(b["global"])                 # eq. 8
    m_C = model.gan.encode_texts(b["tokens"], b["lengths"])    # eq. 9, mean over words
    N_F = model.lan.encode_images(b["patches"])                # eq. 8 on every patch
    M_F, lengths = model.lan.encode_texts(b["tokens"], b["lengths"])  # eq. 9 per word
print("global image n^C:", tuple(n_C.shape), "  global text m^C:", tuple(m_C.shape))
print("patches N^F:", tuple(N_F.shape), "  words M^F:", tuple(M_F.shape),
      "(padded to the longest text)")

# %% [markdown]
# ## GCM (eq. 10)
#
# $$L^C(p,q) = \frac{{n^C_p}^{\top} m^C_q}{\lVert n^C_p\rVert\,\lVert m^C_q\rVert} \qquad (10)$$

# %%
with torch.no_grad():
    L_C = gcm(n_C, m_C)
    L_F = lcm(N_F, M_F, lengths, lam=lam)
names = [data.class_names[int(c)] for c in b["img_labels"]]
fig, axes = plt.subplots(1, 2, figsize=(12, 5), constrained_layout=True)
for ax, L, title in zip(axes, (L_C, L_F), ("GCM: $L^C$ (eq. 10)", "LCM: $L^F$ (eqs. 11-15)")):
    sns.heatmap(L.numpy(), ax=ax, cmap="viridis", xticklabels=names, yticklabels=names,
                cbar_kws={"label": "similarity"})
    ax.set(title=title, xlabel="texts", ylabel="images")
plt.show()

# %% [markdown]
# Rows are images and columns texts of the test split, sorted by class. On the synthetic
# data the first half of the classes are *scenes*, which differ only in the global
# feature, and the second half *objects*, which differ only in a few patches. GCM shows
# a clear block for each scene class but blurs the object classes together. LCM does the
# opposite. This is the complementarity that HAAN's fusion (eq. 7) exploits.
#
# ## LCM step by step (eqs. 11-15)
#
# For image $p$ with patches $n_{p,x}$ and text $q$ with words $m_{q,y}$:
#
# $$U_{xy} = \frac{n_{p,x}^{\top} m_{q,y}}{\lVert n_{p,x}\rVert\,\lVert m_{q,y}\rVert} \quad (11)
# \qquad
# \bar U_{xy} = \frac{\mathrm{relu}(U_{xy})}{\sqrt{\sum_{x=1}^{\alpha}\mathrm{relu}(U_{xy})^2}} \quad (12)$$
#
# $$\kappa_{p,x} = \sum_{y=1}^{\beta}\frac{\exp(\lambda \bar U_{xy})}{\sum_{y'}\exp(\lambda\bar U_{xy'})}\, m_{q,y} \quad (13)
# \qquad
# \varrho(n_{p,x},\kappa_{p,x}) = \frac{n_{p,x}^{\top}\kappa_{p,x}}{\lVert n_{p,x}\rVert\,\lVert\kappa_{p,x}\rVert} \quad (14)$$
#
# $$L^F(p,q) = \frac{1}{\alpha}\sum_{x=1}^{\alpha}\varrho(n_{p,x},\kappa_{p,x}) \qquad (15)$$
#
# The code below computes these for one image-text pair, one equation per line, and checks
# the result against `haan_core.similarity.lcm`. That function computes all pairs at once
# without building any κ (see its docstring).

# %%
objects = set(data.meta.get("object_classes", []))
if pair is None:
    pair = next((i for i in range(n_show) if int(b["img_labels"][i]) in objects), 0)
n = N_F[pair]                                   # (alpha, d) patches of image `pair`
beta = int(lengths[pair])
m = M_F[pair, :beta]                            # (beta, d) real words of text `pair`
U = F.normalize(n, dim=1) @ F.normalize(m, dim=1).T                  # eq. 11
U_bar = U.relu() / U.relu().norm(dim=0, keepdim=True).clamp_min(1e-8)  # eq. 12
attn = torch.softmax(lam * U_bar, dim=1)                             # eq. 13, weights
kappa = attn @ m                                                     # eq. 13
rel = F.cosine_similarity(n, kappa, dim=1)                           # eq. 14
L_pq = rel.mean()                                                    # eq. 15
print(f"step by step: L^F = {L_pq:.6f}")
print(f"lcm():        L^F = {L_F[pair, pair]:.6f}")
glue("lcm_step", float(L_pq), display=False)
glue("lcm_fn", float(L_F[pair, pair]), display=False)

# %% [markdown]
# Step by step, $L^F$ = {glue:text}`lcm_step:.6f`, and the vectorised `lcm` gives
# {glue:text}`lcm_fn:.6f` for the same pair. The test suite checks the same agreement for
# random inputs, padded words included, against a loop written from the equations.
#
# ## Which words each patch attends to (eq. 13)

# %%
words = data.decode(int(show[pair])).split()
_, A = lcm_attention(N_F[pair:pair + 1], M_F[pair:pair + 1], lengths[pair:pair + 1], lam=lam)
A = A[0, 0, :, :beta].numpy()
marks = data.meta.get("object_patch")
rows = [f"patch {x + 1}" + (" (object)" if marks is not None and bool(marks[show[pair], x])
                            else "") for x in range(A.shape[0])]
fig, ax = plt.subplots(figsize=(1 + 0.7 * beta, 4.5), constrained_layout=True)
sns.heatmap(A, ax=ax, cmap="magma", xticklabels=words, yticklabels=rows, vmin=0, vmax=1,
            annot=True, fmt=".2f", cbar_kws={"label": "attention weight"})
ax.set(title=f"Attention of eq. 13 (λ = {lam:g}); image and text of class "
             f"'{data.class_names[int(b['img_labels'][pair])]}'", xlabel="words")
plt.show()

# %% [markdown]
# Each row is a distribution over the text's real words: padding gets no weight. On the
# synthetic data, the patches marked "(object)" carry the object and the text names it.
# After training, these patches put most of their weight on the object's word. The other
# patches are background and attend more diffusely. λ sharpens or flattens these
# distributions: re-run this page with `-p lam 1` or `-p lam 20` to see it.
#
# ## The same on a real image (Corel 5K)
#
# Below, each of the image's 3 × 3 patches carries the word it attends to most under
# eq. 13 and that word's weight: on the left the synthetic pair above (orange: the object
# patches), on the right a Corel 5K test image and its tags {cite}`duygulu2002corel`, when
# the dataset is on this machine. The Corel 5K model is a **short** run
# (`corel_epochs` epochs of the dataset's recipe, EfficientNet-Lite0 crops
# {cite}`tan2019efficientnet`), trained once and cached: its attention shows what the
# method learns early, not the paper's 100-epoch model.

# %%
from PIL import Image

from haan_core.book import REPO
from haan_core.corpora import default_root
from haan_core.datasets import feature_cache_dir
from haan_core.experiments import draw_patch_attention, patch_attention
from haan_core.query import image_paths

corel_dir = Path(corel_root) if corel_root else default_root("corel5k")
shown_dir = corel_dir.resolve().relative_to(REPO) \
    if corel_dir.resolve().is_relative_to(REPO) else corel_dir   # the checkout's data/...
panels = [("synthetic", run, data, int(show[pair]), None)]
corel_cfg = make_config("corel5k", "HAAN", root=str(corel_dir), seed=seed, device=device,
                        epochs=corel_epochs, backbone="efficientnet_lite0")
# the image features of all 5000 images, extracted once (about 1.5 h on a 2-core CPU,
# minutes on a GPU): this page uses them when they are cached and never extracts them
features = feature_cache_dir(corel_cfg) / f"corel5k-{corel_cfg.backbone}-{corel_cfg.patch_mode}.pt"
if not (corel_dir / "labels").is_dir():
    print(f"Corel 5K is not at {shown_dir}: only the synthetic drawing is shown. Fetch it "
          f"with `python -m haan_core data fetch corel5k --root {shown_dir}` (or set "
          "HAAN_DATA, or pass -p corel_root DIR) and re-run this page.")
elif not features.exists():
    print(f"Corel 5K is at {shown_dir}, but its image features are not extracted yet (once, "
          "about 1.5 h on a 2-core CPU): only the synthetic drawing is shown. `python -m "
          f"haan_core train --dataset corel5k --root {shown_dir} --backbone efficientnet_lite0 "
          f"--epochs {corel_epochs}` extracts and caches them; then re-run this page.")
else:
    corel_data = load_dataset(corel_cfg)
    corel_run = cached_train(corel_cfg, cache_dir=cache_dir, data=corel_data)
    paths = image_paths(corel_cfg, corel_data)
    corel_index = int(corel_data.splits["test"][0])
    panels.append(("Corel 5K", corel_run, corel_data, corel_index,
                   Image.open(paths[corel_index])))
    prov = corel_run.result["provenance"]
    print(f"Corel 5K: {corel_epochs}-epoch HAAN, test AVG mAP "
          f"{corel_run.scores['avg']:.4f} (measured, short run; seed {prov['seed']}, "
          f"{prov['device']}, commit {str(prov['commit'])[:10]})")

fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 5.2),
                         constrained_layout=True, squeeze=False)
for ax, (name, r, d, index, image) in zip(axes[0], panels):
    top_words, weights = patch_attention(r, d, index, lam=lam)
    marks = d.meta["object_patch"][index] if "object_patch" in d.meta else None
    draw_patch_attention(ax, top_words, weights, image=image, marks=marks)
    ax.set_title(f"{name}: '{d.decode(index)}'\n(class {d.class_names[int(d.labels[index])]}, "
                 f"λ = {lam:g})", fontsize=10)
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
# :::{exercise} Shapes through eqs. 10-15
# :label: ex-gcm_lcm-shapes
#
# The page printed the shapes of `n_C`, `m_C`, `N_F` and `M_F`. Take the first 3 images
# and the first 5 texts.
#
# 1. Without running anything, give the shapes of `gcm(n_C[:3], m_C[:5])`,
#    `lcm(N_F[:3], M_F[:5], lengths[:5])` and of the attention `A` in
#    `U, A = lcm_attention(N_F[:3], M_F[:5], lengths[:5])`. Write the shape of `A` in the
#    cell below.
# 2. Over which axis of `A` does the softmax of eq. 13 normalise? What is `A.sum(dim=-1)`?
# 3. Which entries of `A` belong to padded words, and what are they? Check your answers by
#    running the three calls.
# :::

# %%
answer = None   # your answer: the shape of A for 3 images and 5 texts, a tuple such as (1, 2)
check("gcm_lcm-shape", answer, patches=N_F[:3], words=M_F[:5], lengths=lengths[:5])

# %% [markdown] tags=["solution"]
# :::{solution} ex-gcm_lcm-shapes
# :class: dropdown
#
# GCM (eq. 10) and LCM (eqs. 11-15) both give one similarity per image-text pair, with
# images on the rows and texts on the columns: **(3, 5)** for both. The attention has one
# weight per image p, text q, patch x and word y: **(3, 5, α, β)**, where α = 9 and β is
# the padded text length, the middle entry of the shape of `M_F` that the page prints
# (slicing the texts does not remove their padding).
#
# ```python
# U, A = lcm_attention(N_F[:3], M_F[:5], lengths[:5])
# print(gcm(n_C[:3], m_C[:5]).shape, lcm(N_F[:3], M_F[:5], lengths[:5]).shape, A.shape)
# print((A.sum(dim=-1) - 1).abs().max())     # softmax over the words y: every row sums to 1
# q = 0
# print(A[:, q, :, int(lengths[q]):].abs().max())  # padded words of text q: weight exactly 0
# ```
#
# The softmax of eq. 13 runs over the words y (the last axis), so `A.sum(dim=-1)` is 1 for
# every (image, text, patch), up to rounding. At a padded word y ≥ `lengths[q]` the weight
# is exactly 0: `lcm_attention` masks the padding with −∞ before the softmax. This is how
# texts of different lengths share one tensor without padding changing any similarity.
# :::

# %% [markdown]
# :::{exercise} $\lambda$, the inverse temperature of eq. 13
# :label: ex-gcm_lcm-lambda
#
# λ multiplies Ū before the softmax of eq. 13. The entropy of each patch's attention,
# $H_x = -\sum_y a_{xy}\ln a_{xy}$, measures how spread out it is: 0 when one word takes all
# the weight, $\ln\beta$ when all words weigh the same.
#
# 1. In a new cell, for λ in (0, 1, 9, 20, 50), compute `a = torch.softmax(lam_ * U_bar, dim=1)`,
#    the entropy of each row (`-torch.special.xlogy(a, a).sum(dim=1)`), its mean over the
#    patches, and the similarity of the pair as the page does it
#    (`F.cosine_similarity(n, a @ m, dim=1).mean()`). Compare the entropies with
#    `math.log(beta)` (after `import math`).
# 2. Write the mean entropy at λ = 1 in the cell below.
# 3. Which patches stay spread out even at λ = 50? Look at their rows of `U_bar`. What can
#    λ do, and what can it not do?
# :::

# %%
answer = None   # your answer: the mean over the patches of H_x at lambda = 1, a float
check("gcm_lcm-entropy", answer, patches=n, words=m, lam=1.0)

# %% [markdown] tags=["solution"]
# :::{solution} ex-gcm_lcm-lambda
# :class: dropdown
#
# ```python
# import math
# for lam_ in (0, 1, 9, 20, 50):
#     a = torch.softmax(lam_ * U_bar, dim=1)                 # eq. 13, weights
#     H = -torch.special.xlogy(a, a).sum(dim=1)              # entropy of each patch's row
#     L = F.cosine_similarity(n, a @ m, dim=1).mean()        # eqs. 14-15
#     print(f"lambda {lam_:>2}: mean H {H.mean():.3f} (min {H.min():.3f}, max {H.max():.3f},"
#           f" ln beta {math.log(beta):.3f}), L^F {L:.4f}")
# ```
#
# - At λ = 0 every weight is 1/β: H = ln β for every patch, and κ is the mean of the words
#   (a keyword is diluted among the filler words).
# - Ū lies in [0, 1] (a ReLU, then a division by the norm over the patches, eq. 12), so at
#   λ = 1 the weights of one patch differ by a factor of e at most. The attention is nearly
#   uniform, and the mean entropy lies just below ln β.
# - As λ grows, each patch concentrates on the word with its largest Ū. A patch whose row
#   has one clearly largest Ū becomes nearly one-hot (H close to 0). A patch whose Ū is
#   nearly the same for several words stays spread out even at λ = 50: λ only stretches
#   the differences that Ū already has. A patch whose Ū row is all zero (the ReLU removed
#   every cosine) stays uniform for every λ.
#
# **What to conclude.** λ does not create an alignment; it decides how strictly the
# existing one is followed. The networks were trained with the paper's λ = 9 (Section 4.2.2),
# so changing λ after training evaluates them in a regime they were not trained for. Note
# that this page's parameter `lam` changes only the computations on this page, not the
# trained networks. To compare values of λ fairly, train with each one, about a minute on a
# laptop CPU:
# `cached_train(make_config(dataset, "HAAN", root=root, seed=seed, device=device, epochs=epochs, lam=20), cache_dir=cache_dir, data=data)`.
# :::

# %% [markdown]
# :::{exercise} Why eq. 13's denominator can be skipped
# :label: ex-gcm_lcm-scale
#
# 1. Show on paper that eq. 14 does not change when $\kappa_{p,x}$ is multiplied by a
#    positive number c.
# 2. Check it in a new cell: replace the softmax of the step-by-step cell by the
#    unnormalised weights `w = torch.exp(lam * U_bar)`, recompute κ, eq. 14 and eq. 15,
#    and compare the result with `L_pq`. Do the same with `torch.exp(lam * (U_bar - 1))`.
# 3. Read the docstring of `haan_core.similarity` (`import haan_core.similarity as s; help(s)`).
#    Which work does this invariance save when `lcm` computes all N × M pairs?
# :::

# %% [markdown] tags=["solution"]
# :::{solution} ex-gcm_lcm-scale
# :class: dropdown
#
# $\varrho(n, c\kappa) = \frac{n^\top c\kappa}{\lVert n\rVert\,\lVert c\kappa\rVert} =
# \frac{c\, n^\top \kappa}{c\,\lVert n\rVert\,\lVert\kappa\rVert} = \varrho(n,\kappa)$ for
# c > 0. The softmax of eq. 13 divides all the weights of patch x by one positive number,
# $Z_x = \sum_{y'} \exp(\lambda \bar U_{xy'})$, so $\kappa_{p,x}$ is $1/Z_x$ times the
# unnormalised sum, and eq. 14 does not see $Z_x$.
#
# ```python
# for w in (torch.exp(lam * U_bar), torch.exp(lam * (U_bar - 1))):
#     kappa_u = w @ m                                          # kappa times 1/Z_x
#     L_u = F.cosine_similarity(n, kappa_u, dim=1).mean()      # eqs. 14-15
#     print(float(L_u - L_pq))                                 # zero up to float rounding
# ```
#
# Both differences are at the level of float32 rounding. Multiplying by exp(−λ) is another
# positive factor per patch. `lcm` uses exactly this: it never divides by $Z_x$ and, more
# importantly, it never builds κ at all. It needs only $n^\top\kappa$ and $\lVert\kappa\rVert^2$,
# two scalars per (image, text, patch) that follow from the weights and the word cosines,
# instead of an (N, M, α, d) tensor of κ vectors.
# :::
