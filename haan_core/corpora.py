"""The paper's three datasets (Section 4.1), read from their public layouts.

A :class:`Corpus` holds what a dataset says before any image feature exists: the pairs,
their class labels, each text as tokens, the image files, the train/val/test split, and
``problems``, a list of the quirks found in the real files and how each was handled. The
quirks are reported, never crashed on: a duplicated id, an image without a label line, a
stray character in a list, zero-byte images, images left without tags.

    python -m haan_core data check corel5k --root DIR

prints a JSON summary of a corpus (pairs, classes, vocabulary, splits, problems).
"""
from __future__ import annotations

import hashlib
import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .errors import HAANInputError


@dataclass
class Corpus:
    name: str
    ids: list                 # one id per pair
    texts: list               # one token list per pair
    labels: list              # one class index per pair
    class_names: list
    splits: dict              # {"train": [pair indices], "val": [...], "test": [...]}
    image_paths: list = None  # one Path (or None) per pair
    problems: list = field(default_factory=list)
    notes: dict = field(default_factory=dict)
    files: dict = field(default_factory=dict)  # {file name: sha256}: which data was read

    def vocabulary(self, min_count: int = 1) -> list:
        """Words of the TRAINING texts only (never validation or test), sorted."""
        counts = {}
        for i in self.splits["train"]:
            for w in self.texts[i]:
                counts[w] = counts.get(w, 0) + 1
        return sorted(w for w, c in counts.items() if c >= min_count)

    def split_classes(self) -> dict:
        """Per split, how many classes it holds; and how many classes validation and test
        share (a validation split that shares no class with the test split selects the
        model on a different retrieval problem than the one it is tested on)."""
        held = {k: {self.labels[i] for i in v} for k, v in self.splits.items()}
        return {**{k: len(v) for k, v in held.items()},
                "val_and_test_share": len(held["val"] & held["test"]),
                "in_test_not_val": len(held["test"] - held["val"])}

    def summary(self) -> dict:
        return {"dataset": self.name, "pairs": len(self.ids), "classes": len(self.class_names),
                "vocabulary": len(self.vocabulary()),
                "splits": {k: len(v) for k, v in self.splits.items()},
                "split_classes": self.split_classes(),
                "problems": self.problems, **self.notes, "files_sha256": self.files}


def sha256_of(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# the datasets' public homes (Section 4.1)
SOURCES = {
    "corel5k": "the GitHub repository ParkByungYoon/corel-5k at commit "
               "29e385c13e69db7761a083efd1b6533e5b4570d3 (folders images/ and labels/)",
    "wiki": "the wikipedia_dataset archive of the SVCL cross-modal retrieval project page "
            "(Rasiwasia et al., ACM MM 2010)",
    "pascal": "the UIUC pascal-sentences page (Rashtchian et al. 2010): images and sentences",
}


# folder names under a data folder (the public copies' own names)
FOLDERS = {"corel5k": "corel5k", "wiki": "wiki", "pascal": "pascal_sentence"}


def default_root(name: str) -> Path:
    """Where dataset ``name`` lives when no --root is given: ``$HAAN_DATA/<folder>`` when
    the environment variable HAAN_DATA is set, else ``data/<folder>`` in the checkout (the
    place the README's fetch commands write to)."""
    import os
    from .provenance import PACKAGE_DIR
    if name not in FOLDERS:
        raise HAANInputError(f"unknown dataset {name!r}; known: {sorted(FOLDERS)}")
    base = Path(os.environ["HAAN_DATA"]) if os.environ.get("HAAN_DATA") else \
        PACKAGE_DIR.parent / "data"
    return base / FOLDERS[name]


def fetch_command(name: str, root) -> str:
    """The command that downloads dataset ``name`` into ``root`` (haan_core.fetch)."""
    return f"python -m haan_core data fetch {name} --root {root}"


def _missing(name: str, root: Path, what: str) -> HAANInputError:
    return HAANInputError(
        f"{name}: {what} not found under {root}. Fetch the dataset with "
        f"`{fetch_command(name, root)}` (it downloads {SOURCES[name]}), or "
        f"copy it there in that layout")


VAL_TEST_SPLITS = ("stratified", "order")


def split_in_two(items: list, labels: list, first: int, how: str = "stratified",
                 seed: int = 0) -> tuple[list, list]:
    """Cut a dataset's test list in two (Section 4.1): ``first`` items become validation,
    the rest test. The paper says only the sizes (ambiguity log, entry 31).

    - "order": the first ``first`` items in the list's order. On Corel 5K the test list is
      sorted by image id, that is by Corel CD, that is by class: validation and test then
      hold disjoint classes.
    - "stratified" (default): a seeded split stratified by class. Each class's items are
      shuffled with ``seed`` and placed at the evenly spaced positions (k + u) / n_c of
      [0, 1) (u one random offset per class); the ``first`` items at the smallest positions
      are validation. So every class gets about its share of each half, and every class
      with at least two items lands in both halves whenever ``first`` is near half.
    """
    if how not in VAL_TEST_SPLITS:
        raise HAANInputError(f"val_test_split must be one of {VAL_TEST_SPLITS}, got {how!r}")
    if not 0 <= first <= len(items):
        raise HAANInputError(f"cannot take {first} validation items from a test list of "
                             f"{len(items)}")
    if how == "order":
        return items[:first], items[first:]
    g = torch.Generator().manual_seed(seed)
    by_class = {}
    for item in items:
        by_class.setdefault(labels[item], []).append(item)
    keyed = []
    for c in sorted(by_class):
        members = by_class[c]
        order = torch.randperm(len(members), generator=g).tolist()
        offset = float(torch.rand((), generator=g))
        keyed += [((k + offset) / len(members), float(torch.rand((), generator=g)), members[j])
                  for k, j in enumerate(order)]
    keyed.sort()
    val = sorted(item for _, _, item in keyed[:first])
    chosen = set(val)
    return val, [item for item in items if item not in chosen]


# ------------------------------------------------------------------ Corel 5K

def load_corel5k(root, n_val: int = 250, val_test_split: str = "stratified",
                 split_seed: int = 0) -> Corpus:
    """Corel 5K in the Duygulu et al. layout: images/<CD>/<id>.jpeg and labels/{words,
    training_label, test_label}. The class is the CD folder; the text is the image's tags
    restricted to the words that occur in both the training and the test labels (the
    paper's 260 words; ambiguity log, entry 32); images left with no tag are dropped; the
    distinct test images are cut into ``n_val`` validation images and the rest (test) by
    :func:`split_in_two` (``val_test_split``: "stratified" by class with ``split_seed``,
    or "order", the first ``n_val`` lines of test_label, whose halves share no class)."""
    root = Path(root)
    labels_dir, images_dir = root / "labels", root / "images"
    for p in (labels_dir / "words", labels_dir / "training_label", labels_dir / "test_label"):
        if not p.exists():
            raise _missing("corel5k", root, f"labels/{p.name}")
    if not images_dir.is_dir():
        raise _missing("corel5k", root, "images/")
    problems = []
    words = [w.strip() for w in (labels_dir / "words").read_text().splitlines() if w.strip()]

    def read(name):
        rows, seen = [], {}
        for n, line in enumerate((labels_dir / name).read_text().splitlines(), start=1):
            parts = line.split()
            if not parts:
                continue
            if not parts[0].isdigit():
                cleaned = re.sub(r"\D", "", parts[0])
                problems.append({"kind": "stray character", "file": f"labels/{name}",
                                 "line": n, "detail": f"id {parts[0]!r} read as {cleaned!r}"})
                parts[0] = cleaned
            img, tags = parts[0], [int(t) for t in parts[1:] if t.isdigit()]
            if img in seen:
                problems.append({"kind": "duplicate id", "file": f"labels/{name}",
                                 "detail": f"image {img} on lines {seen[img]} and {n}; "
                                           "the first is kept"})
                continue
            seen[img] = n
            rows.append((img, [words[t - 1] for t in tags if 1 <= t <= len(words)]))
        return rows

    train_rows, test_rows = read("training_label"), read("test_label")
    dictionary = {w for _, t in train_rows for w in t} & {w for _, t in test_rows for w in t}

    cd_of, zero_byte = {}, []
    for path in sorted(images_dir.glob("*/*.jpeg")):
        if path.stat().st_size == 0:
            zero_byte.append(path.stem)
        cd_of[path.stem] = (path.parent.name, path)
    if zero_byte:
        problems.append({"kind": "zero-byte image", "detail": f"{len(zero_byte)} files "
                         f"({', '.join(zero_byte[:5])}...): dropped", "ids": zero_byte})
    labelled = {img for img, _ in train_rows + test_rows}
    unlabelled = sorted(set(cd_of) - labelled)
    if unlabelled:
        problems.append({"kind": "image without a label line",
                         "detail": f"{', '.join(unlabelled)}: not used", "ids": unlabelled})
    no_image = sorted(labelled - set(cd_of))
    if no_image:
        problems.append({"kind": "label line without an image",
                         "detail": f"{len(no_image)} ids: dropped", "ids": no_image[:20]})

    classes = sorted({cd for cd, _ in cd_of.values()}, key=lambda c: int(c) if c.isdigit() else c)
    class_index = {c: i for i, c in enumerate(classes)}
    ids, texts, labels, paths = [], [], [], []
    part = {"train": [], "test": []}
    dropped_tagless, out_of_dict = 0, 0
    for split, rows in (("train", train_rows), ("test", test_rows)):
        for img, tags in rows:
            if img not in cd_of or img in zero_byte:
                continue
            kept = [t for t in tags if t in dictionary]
            out_of_dict += len(tags) - len(kept)
            if not kept:
                dropped_tagless += 1
                continue
            part[split].append(len(ids))
            ids.append(img)
            texts.append(kept)
            labels.append(class_index[cd_of[img][0]])
            paths.append(cd_of[img][1])
    problems.append({"kind": "tags outside the dictionary",
                     "detail": f"{out_of_dict} tag occurrences outside the {len(dictionary)} "
                               "words shared by train and test: removed"})
    problems.append({"kind": "tagless image", "detail": f"{dropped_tagless} images left with "
                     "no dictionary tag: dropped (Section 4.1)"})
    val, test = split_in_two(part["test"], labels, n_val, val_test_split, split_seed)
    train_only = {w for _, t in train_rows for w in t}
    return Corpus("corel5k", ids, texts, labels, classes,
                  {"train": part["train"], "val": val, "test": test}, paths, problems,
                  notes={"dictionary": len(dictionary), "dictionary_train_only": len(train_only),
                         "val_test_split": val_test_split, "split_seed": split_seed},
                  files=_fingerprint(labels_dir, ("words", "training_label", "test_label")))


# ------------------------------------------------------------------ Wiki

def _tokenize(text: str, stopwords=frozenset()) -> list:
    return [w for w in re.findall(r"[a-z]+", text.lower()) if w not in stopwords and len(w) > 1]


def load_wiki(root, n_val: int = 231, max_words: int | None = None,
              val_test_split: str = "stratified", split_seed: int = 0) -> Corpus:
    """Wiki (Rasiwasia et al.): texts/<id>.xml, {train,test}set_txt_img_cat.list,
    categories.list; images/<category>/<imageid>.jpg when present. Texts are lower-cased
    alphabetic words without the stopwords of stopwords.txt (and cut to ``max_words``).
    The test list is cut into ``n_val`` validation and the rest test by
    :func:`split_in_two`; its order is not sorted by class, so "order" gives halves that
    share all 10 classes too."""
    root = Path(root)
    for name in ("trainset_txt_img_cat.list", "testset_txt_img_cat.list", "categories.list"):
        if not (root / name).exists():
            raise _missing("wiki", root, name)
    problems = []
    classes = [c.strip() for c in (root / "categories.list").read_text().splitlines() if c.strip()]
    stop_file = root / "stopwords.txt"
    stopwords = frozenset(stop_file.read_text().split()) if stop_file.exists() else frozenset()
    ids, texts, labels, paths, part = [], [], [], [], {"train": [], "test": []}
    seen = set()
    for split, name in (("train", "trainset_txt_img_cat.list"), ("test", "testset_txt_img_cat.list")):
        for n, line in enumerate((root / name).read_text().splitlines(), start=1):
            fields = line.strip().split("\t")
            if len(fields) != 3:
                continue
            txt_id, img_id, cat = fields
            if not re.fullmatch(r"[0-9a-f]{32}-[\d.]+", txt_id):
                fixed = re.search(r"[0-9a-f]{32}-[\d.]+", txt_id)
                problems.append({"kind": "stray character", "file": name, "line": n,
                                 "detail": f"text id {txt_id!r} read as "
                                           f"{fixed.group(0) if fixed else None!r}"})
                if not fixed:
                    continue
                txt_id = fixed.group(0)
            if txt_id in seen:
                problems.append({"kind": "duplicate id", "file": name, "line": n,
                                 "detail": f"{txt_id}: the first is kept"})
                continue
            seen.add(txt_id)
            xml = root / "texts" / f"{txt_id}.xml"
            if not xml.exists():
                problems.append({"kind": "missing text", "file": name, "line": n,
                                 "detail": f"{xml.name}: pair dropped"})
                continue
            raw = xml.read_bytes().decode("utf-8", errors="replace")
            body = re.search(r"<text>(.*)</text>", raw, re.S)
            words = _tokenize(body.group(1) if body else raw, stopwords)
            if max_words:
                words = words[:max_words]
            if not words:
                problems.append({"kind": "empty text", "detail": f"{txt_id}: pair dropped"})
                continue
            label = int(cat) - 1
            img = next((p for p in (root / "images" / classes[label]).glob(f"{img_id}.*")), None) \
                if (root / "images").is_dir() else None
            part[split].append(len(ids))
            ids.append(txt_id)
            texts.append(words)
            labels.append(label)
            paths.append(img)
    if not (root / "images").is_dir():
        problems.append({"kind": "no images", "detail": "images/ is absent: only the 128-d "
                         "SIFT features of raw_features.mat can serve as (global) image "
                         "features, with no patches, so only the global network can run"})
    val, test = split_in_two(part["test"], labels, n_val, val_test_split, split_seed)
    return Corpus("wiki", ids, texts, labels, classes,
                  {"train": part["train"], "val": val, "test": test}, paths, problems,
                  notes={"val_test_split": val_test_split, "split_seed": split_seed},
                  files=_fingerprint(root, ("trainset_txt_img_cat.list",
                                            "testset_txt_img_cat.list", "categories.list")))


# ------------------------------------------------------------------ Pascal Sentence

def load_pascal(root, seed: int = 0, n_val_per_class: int = 5, n_test_per_class: int = 5
                ) -> Corpus:
    """Pascal Sentence: pascal_sentences.json ({image: {category, captions}}), images/.
    A pair's text is its sentences joined; the split is 800/100/100, stratified by class
    (5 validation and 5 test images of each of the 20 classes), drawn with ``seed``."""
    root = Path(root)
    meta = root / "pascal_sentences.json"
    if not meta.exists():
        raise _missing("pascal", root, "pascal_sentences.json")
    entries = json.loads(meta.read_text())
    problems = []
    classes = sorted({e["category"] for e in entries.values()})
    class_index = {c: i for i, c in enumerate(classes)}
    ids, texts, labels, paths = [], [], [], []
    counts = {}
    for name in sorted(entries):
        e = entries[name]
        counts[len(e["captions"])] = counts.get(len(e["captions"]), 0) + 1
        ids.append(name)
        texts.append(_tokenize(" ".join(e["captions"])))
        labels.append(class_index[e["category"]])
        img = root / "images" / name
        paths.append(img if img.exists() else None)
    if set(counts) != {5}:
        problems.append({"kind": "caption count", "detail": ", ".join(
            f"{n} images with {k} captions" for k, n in sorted(counts.items())) +
            ": all captions are used"})
    present = sum(p is not None for p in paths)
    if present < len(paths):
        problems.append({"kind": "missing images", "detail": f"{present} of {len(paths)} "
                         "images present: a full run needs `python -m haan_core data fetch "
                         "pascal`"})
    g = torch.Generator().manual_seed(seed)
    splits = {"train": [], "val": [], "test": []}
    for c in range(len(classes)):
        members = [i for i, lab in enumerate(labels) if lab == c]
        order = [members[k] for k in torch.randperm(len(members), generator=g).tolist()]
        splits["val"] += order[:n_val_per_class]
        splits["test"] += order[n_val_per_class:n_val_per_class + n_test_per_class]
        splits["train"] += order[n_val_per_class + n_test_per_class:]
    splits = {k: sorted(v) for k, v in splits.items()}
    return Corpus("pascal", ids, texts, labels, classes, splits, paths, problems,
                  notes={"split_seed": seed}, files=_fingerprint(root, ("pascal_sentences.json",)))


def _fingerprint(folder: Path, names) -> dict:
    """sha256 of the files that define a corpus (labels, lists): provenance records these,
    not the folder they lay in."""
    return {n: sha256_of(Path(folder) / n) for n in names if (Path(folder) / n).exists()}


CORPORA = {"corel5k": load_corel5k, "wiki": load_wiki, "pascal": load_pascal}


def load_corpus(name: str, root, val_test_split: str | None = None,
                split_seed: int = 0) -> Corpus:
    """Dataset ``name`` from ``root``. ``val_test_split`` (Corel 5K and Wiki: how their
    test list is cut into validation and test) defaults to each loader's own default;
    ``split_seed`` seeds the stratified cut (Corel 5K, Wiki) or the split (Pascal)."""
    if name not in CORPORA:
        raise HAANInputError(f"unknown dataset {name!r}; known: {sorted(CORPORA)}")
    if name == "pascal":
        return load_pascal(root, seed=split_seed)
    opts = {"split_seed": split_seed}
    if val_test_split is not None:
        opts["val_test_split"] = val_test_split
    return CORPORA[name](root, **opts)
