"""Your own queries: rank the test split of a trained run by a text you type or an image file.

    python -m haan_core query "sky water beach" --dataset corel5k --backbone efficientnet_lite0
    python -m haan_core query --image photo.jpeg --dataset corel5k --backbone efficientnet_lite0
    python -m haan_core query "a dog near the shore"            # the synthetic default

or, in a notebook, ``search("sky water beach", dataset="corel5k", ...)``.

The trained run comes from :func:`haan_core.runs.cached_train`: the first query of a
configuration trains the dataset's recipe once and caches it, later queries load it. The
query is scored against every test item with the trained model exactly as evaluation
scores a pair: GAN's GCM and LAN's LCM, fused with upsilon1 and upsilon2 (eq. 7), all in
one batched call. So a query that equals a test caption gets the scores of that caption's
column of the run's test similarity matrix.

A text query is lower-cased and cut into words as the datasets' texts were (runs of
letters and digits; Corel 5K's hyphenated tags such as "close-up" stay one word). Words the
run's vocabulary does not hold are reported in ``unknown_words`` and left out; a query with
no known word left is an error. An image query is read with PIL and passed through the
run's backbone with the same preprocessing as the dataset's features (a global feature and
3 x 3 crops, :func:`haan_core.features.extract`).
"""
from __future__ import annotations

import contextlib
import re
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .datasets import PAD, PairedData, load_dataset
from .errors import HAANInputError
from .experiments import make_config
from .models import fuse
from .provenance import atomic_write, resolve_device
from .runs import Run, cached_train

UNK = "<unk>"
# a word: letters and digits, with inner hyphens (Corel 5K has "close-up", "f-16")
WORD = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


# ------------------------------------------------------------------ the query text

def tokenize(text: str, vocab: list) -> tuple[list, list]:
    """(known words, unknown words) of ``text`` for the vocabulary ``vocab``.

    Lower-cased and cut into runs of letters and digits, as the datasets' texts were. A
    hyphenated word the vocabulary lacks is tried as its parts ("sea-shore" -> sea, shore),
    since Wiki and Pascal cut their texts at hyphens. Unknown words are listed once each,
    in the order typed."""
    index = set(vocab) - {PAD, UNK}
    known, unknown = [], []
    for word in WORD.findall(text.lower()):
        parts = [word] if word in index or "-" not in word else word.split("-")
        for w in parts:
            if w in index:
                known.append(w)
            elif w not in unknown:
                unknown.append(w)
    return known, unknown


def example_words(data: PairedData, n: int = 8) -> list:
    """Words worth trying: class names that are words of the vocabulary (the synthetic
    keywords), else the most frequent words of the training texts."""
    vocab = set(data.vocab)
    names = [c for c in data.class_names if c in vocab]
    if names:
        return names[:n]
    train = data.splits["train"]
    counts = torch.bincount(data.tokens[train].flatten(), minlength=len(data.vocab))
    counts[0] = 0                                   # padding
    if len(data.vocab) > 1 and data.vocab[1] == UNK:
        counts[1] = 0
    top = torch.argsort(counts, descending=True, stable=True)[:n]
    return [data.vocab[i] for i in top.tolist() if counts[i] > 0]


def encode_query(text: str, data: PairedData) -> tuple[torch.Tensor, list, list]:
    """(token ids (1, L), known words, unknown words); clear errors for an empty query or
    one with no word of the vocabulary."""
    if not isinstance(text, str):
        raise HAANInputError(f"the query text must be a string, got {type(text).__name__}")
    known, unknown = tokenize(text, data.vocab)
    if not known and not unknown:
        raise HAANInputError(f"the query text {text!r} has no words: type words such as "
                             f"{', '.join(example_words(data))}")
    if not known:
        raise HAANInputError(
            f"none of the query's words is in the vocabulary of {data.name} "
            f"({len(data.vocab) - 1} words): unknown {', '.join(unknown)}. "
            f"Try words such as {', '.join(example_words(data))}")
    index = {w: i for i, w in enumerate(data.vocab)}
    tokens = torch.tensor([[index[w] for w in known]], dtype=torch.long)
    return tokens, known, unknown


# ------------------------------------------------------------------ the query image

def image_paths(cfg, data: PairedData) -> list | None:
    """The image file of every pair of ``data`` (rows in data order), or None when the
    dataset has no image files (the synthetic data; Wiki with its SIFT features)."""
    if data.synthetic or "ids" not in data.meta or cfg.root is None:
        return None
    from .corpora import load_corpus
    corpus = load_corpus(cfg.dataset, cfg.root, cfg.val_test_split, cfg.split_seed)
    if corpus.image_paths is None:
        return None
    by_id = dict(zip(corpus.ids, corpus.image_paths))
    paths = [by_id.get(i) for i in data.meta["ids"]]
    return paths if any(p is not None for p in paths) else None


def check_image_query(cfg, data: PairedData | None = None) -> None:
    """Raise a clear error when the run's image features cannot be made from a file
    (``data``: the run's dataset, once loaded)."""
    if cfg.dataset == "synthetic" or (data is not None and data.synthetic):
        raise HAANInputError(
            "the synthetic dataset has no images (its 'images' are generated feature "
            "vectors), so an image file cannot be compared with it. Query a real dataset: "
            "--dataset corel5k --root DIR (or a text query on the synthetic data)")
    if data is not None and data.patch_feats is None:
        raise HAANInputError(
            f"the {cfg.dataset} run uses features that came with the dataset ({data.feat_dim}-d,"
            f" {data.description or 'no backbone'}), which cannot be computed from an image "
            "file: query it with a text, or use --dataset corel5k")


def image_features(path, cfg, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(global (1, D), patches (1, alpha, D)) of the image file at ``path``, made exactly as
    the dataset's cached features were: :func:`haan_core.features.extract` with the run's
    backbone and patch mode (a global feature and 3 x 3 crops in the paper's mode)."""
    from .features import extract
    path = Path(path)
    if not path.is_file():
        raise HAANInputError(f"no image file at {path}: give the path of a JPEG or PNG file")
    with warnings.catch_warnings(record=True) as caught, \
            contextlib.redirect_stdout(sys.stderr):   # the backbone's "Loaded ..." line
        warnings.simplefilter("always")
        try:
            g, p, ok = extract([path], backbone=cfg.backbone, mode=cfg.patch_mode,
                               device=cfg.device if device is None else device,
                               batch_size=1, progress=False)
        except HAANInputError as e:
            if "no image could be read" not in str(e):
                raise
            ok = torch.tensor([False])
    if not bool(ok[0]):
        why = "; ".join(str(w.message) for w in caught) or "PIL could not read it"
        raise HAANInputError(f"could not read the image {path} ({why}): give a JPEG or PNG "
                             "file that opens in an image viewer")
    return g, p


# ------------------------------------------------------------------ scoring

@torch.no_grad()
def fused_scores(model, cfg, device, images: dict, tokens: torch.Tensor,
                 lengths: torch.Tensor) -> torch.Tensor:
    """(N, M) fused similarity of N images ({"global", "patches"}) with M texts, as
    evaluation computes it: each network's GCM / LCM in one batched call (under the
    run's precision), then eq. 7 with the run's upsilon1 and upsilon2."""
    from .train import autocast
    batch = {k: v.to(device) for k, v in images.items()}
    batch["tokens"], batch["lengths"] = tokens.to(device), lengths.to(device)
    with autocast(cfg, device):
        sims = model.similarities(batch, chunk_size=cfg.lcm_chunk)
    sims = {k: v.float().cpu() for k, v in sims.items()}
    return fuse(sims.get("C"), sims.get("F"), cfg.upsilon1, cfg.upsilon2)


def _image_batch(data: PairedData, index) -> dict:
    """The image features of the pairs at ``index`` that the model reads."""
    b = data.batch(index)
    return {k: b[k] for k in ("global", "patches") if k in b}


# ------------------------------------------------------------------ the result

@dataclass
class QueryResult:
    """A ranked list of test items for one query (best first)."""
    query: str              # the text typed, or the image file
    kind: str               # "text" (ranks the test images) or "image" (ranks the texts)
    words: list             # the query words the model read (text queries)
    unknown_words: list     # query words outside the vocabulary: reported, not used
    scores: torch.Tensor    # (n_test,) fused score of every test item, in test order
    rows: list              # top rows: rank, position, score, class, text or image, match
    query_class: str | None  # the class of an image query that is one of the dataset's
    run: dict               # dataset, variant, seed, from_cache, train_seconds, path
    items: str = ""         # what the ranked items are, in words
    image_files: list = field(default_factory=list, repr=False)  # per row (or None)

    @property
    def ranked(self) -> str:
        return "images" if self.kind == "text" else "texts"

    def label(self) -> str:
        """The query as a title shows it: the text, or the image's file name."""
        return self.query if self.kind == "text" else Path(self.query).name

    def table(self):
        """The ranked list as a pandas DataFrame."""
        import pandas as pd
        return pd.DataFrame(self.rows)

    def header(self) -> str:
        """What was asked, of which run, and what the ranked items are."""
        r = self.run
        how = ("loaded from the cache" if r["from_cache"] else
               f"trained now in {r['train_seconds']:.0f} s and cached")
        lines = [f"query ({self.kind}): {self.query!r}"]
        if self.kind == "text":
            lines.append(f"words used: {' '.join(self.words)}")
            if self.unknown_words:
                lines.append("not in the vocabulary, left out: "
                             + ", ".join(self.unknown_words))
        elif self.query_class is not None:
            lines.append(f"the image is one of the dataset's, of class {self.query_class}: "
                         "match = same class")
        lines.append(f"run: {r['dataset']}, {r['variant']}, seed {r['seed']}, {how} "
                     f"({r['path']})")
        lines.append(f"ranked: {self.items}")
        return "\n".join(lines)

    def report(self) -> str:
        """The header and the table, as the command line prints them."""
        with _wide_pandas():
            return self.header() + "\n" + self.table().to_string(index=False)

    def show(self, ax=None):
        """Draw the ranked list on ``ax`` (a new figure when None) and return the figure:
        the images' thumbnails in a row, best first, when the items are image files (Corel
        5K, Pascal); else a plain table. Green / red frames: same / another class than an
        image query of the dataset."""
        if ax is None:
            import matplotlib.pyplot as plt
            _, ax = plt.subplots(figsize=self._size())
        if any(f is not None for f in self.image_files):
            draw_row(ax, self)
        else:
            draw_table(ax, self)
        return ax.figure

    def _size(self) -> tuple:
        n = len(self.rows)
        if any(f is not None for f in self.image_files):
            return (1.6 * max(n, 4), 2.2)      # a row of thumbnails
        return (12, 0.3 * n + 0.8)             # a table

    def save(self, path) -> Path:
        """Write :meth:`show`'s drawing to ``path`` (PNG, or the format its suffix names)
        atomically, without a display (no pyplot)."""
        from matplotlib.figure import Figure
        fig = Figure(figsize=self._size())
        self.show(fig.add_subplot())
        fmt = Path(path).suffix.lstrip(".").lower() or "png"
        return atomic_write(path, lambda tmp: fig.savefig(tmp, format=fmt, dpi=150,
                                                          bbox_inches="tight"))


def _wide_pandas():
    import pandas as pd
    return pd.option_context("display.width", 200, "display.max_colwidth", 60)


def draw_row(ax, result: QueryResult) -> None:
    """Thumbnails of the ranked images side by side in one axes, each in a unit cell."""
    from matplotlib.patches import Rectangle
    from PIL import Image
    for k, (row, path) in enumerate(zip(result.rows, result.image_files)):
        if path is not None:
            with Image.open(path) as im:
                im = im.convert("RGB")
                w, h = im.size
                s = 0.9 / max(w, h)                 # fit the longer side to 0.9
                x0, y0 = k + (1 - w * s) / 2, (1 - h * s) / 2
                ax.imshow(im, extent=(x0, x0 + w * s, y0, y0 + h * s))
        if "match" in row:
            ax.add_patch(Rectangle((k + 0.02, 0.02), 0.96, 0.96, fill=False, lw=3,
                                   color="#2ca02c" if row["match"] else "#d62728"))
        ax.text(k + 0.5, -0.05, f"{row['rank']}. {row['score']:.3f}\nclass {row['class']}",
                ha="center", va="top", fontsize=8)
    ax.set_xlim(0, max(len(result.rows), 1))
    ax.set_ylim(-0.35, 1)
    ax.set_aspect("equal")
    ax.set_axis_off()
    ax.set_title(f"{result.kind} query {result.label()!r}: top {len(result.rows)} "
                 f"{result.ranked} (MEASURED, {result.run['dataset']})", fontsize=9)


def draw_table(ax, result: QueryResult) -> None:
    table = result.table()
    cells = [[f"{v:.4f}" if isinstance(v, float) else str(v) for v in r]
             for r in table.itertuples(index=False)]
    t = ax.table(cellText=cells, colLabels=list(table.columns), loc="center",
                 cellLoc="left")
    t.auto_set_font_size(False)
    t.set_fontsize(8)
    t.auto_set_column_width(list(range(len(table.columns))))
    ax.set_axis_off()
    ax.set_title(f"{result.kind} query {result.label()!r}: {result.items}", fontsize=9,
                 wrap=True)


# ------------------------------------------------------------------ the query

def search(text: str | None = None, image=None, dataset: str = "synthetic", root=None,
           seed: int = 0, device: str = "auto", variant: str = "HAAN", top: int = 10,
           cache_dir=None, run: Run | None = None, data: PairedData | None = None,
           **overrides) -> QueryResult:
    """Rank the test images of a trained run by ``text``, or its test texts by the image
    file ``image`` (exactly one of the two).

    The run is :func:`haan_core.runs.cached_train` of ``make_config(dataset, variant,
    root=root, seed=seed, device=device, **overrides)`` (so ``epochs=5`` or
    ``backbone="efficientnet_lite0"`` change the configuration), or ``run`` when given
    (with ``data``, its dataset, to skip loading it again). The first query of a
    configuration trains it and caches it; later ones load it (under a second on the
    synthetic default). Training the synthetic default (30 epochs) takes 34-39 s on an
    idle 2-core CPU (data/bench/seeds_synthetic.json), minutes when other work shares the
    CPU; the paper's Corel 5K recipe (100 epochs) takes about 30 minutes there, once.

    A real dataset's folder defaults to where ``data fetch`` writes it
    (:func:`haan_core.corpora.default_root`). Returns a :class:`QueryResult`:
    ``.table()``, ``.show()``, ``.scores`` (every test item), ``.unknown_words``.
    """
    if (text is None) == (image is None):
        raise HAANInputError("give exactly one query: a text such as \"sky water beach\", "
                             "or an image file (--image PATH; image=PATH in Python)")
    if not isinstance(top, int) or isinstance(top, bool) or top < 1:
        raise HAANInputError(f"top must be a positive integer, got {top!r}")
    # every check of the input comes before training, which can take long the first time
    if run is None:
        if root is None and dataset != "synthetic":
            from .corpora import default_root
            root = str(default_root(dataset))
        cfg = make_config(dataset, variant, root=root, seed=seed, device=device, **overrides)
    else:
        cfg = run.config
    if image is not None:
        check_image_query(cfg)
        if not Path(image).is_file():
            raise HAANInputError(f"no image file at {image}: give the path of a JPEG or PNG "
                                 "file")
    if data is None:
        data = load_dataset(cfg)
    dev = resolve_device(cfg.device)
    if text is not None:
        tokens, words, unknown = encode_query(text, data)
    else:
        check_image_query(cfg, data)
        g, p = image_features(image, cfg, dev)
    if run is None:
        run = cached_train(cfg, cache_dir=cache_dir, data=data)
    model = run.model(data).to(dev)
    test = data.splits["test"]
    labels = data.labels[test]
    paths = image_paths(cfg, data)

    query_class = None
    if text is not None:
        # one text against every test image: an (n_test, 1) matrix
        lengths = torch.tensor([tokens.shape[1]])
        scores = fused_scores(model, cfg, dev, _image_batch(data, test), tokens, lengths)[:, 0]
        query = text
    else:
        # one image against every test text: a (1, n_test) matrix
        b = data.batch(test)
        scores = fused_scores(model, cfg, dev, {"global": g, "patches": p}, b["tokens"],
                              b["lengths"])[0]
        words, unknown, query = [], [], str(image)
        if paths is not None:   # is the image one of the dataset's? then it has a class
            row_of = {Path(q).resolve(): i for i, q in enumerate(paths) if q is not None}
            hit = row_of.get(Path(image).resolve())
            if hit is not None:
                query_class = data.class_names[int(data.labels[hit])]

    order = torch.sort(scores, descending=True, stable=True).indices[:top]
    rows, files = [], []
    for rank, pos in enumerate(order.tolist(), start=1):   # the top rows only, for display
        i = int(test[pos])
        cls = data.class_names[int(labels[pos])]
        row = {"rank": rank, "position": pos, "score": float(scores[pos]), "class": cls}
        file = paths[i] if paths is not None and text is not None else None
        if text is None:
            row["text"] = data.decode(i)
        elif file is not None:
            row["image"] = str(file)
        else:
            row["image"] = f"synthetic test image of class {cls} (feature vectors, no picture)"
        if query_class is not None:
            row["match"] = cls == query_class
        rows.append(row)
        files.append(file)

    if text is not None and data.synthetic:
        items = (f"the {len(test)} test images of the synthetic data (each a global feature "
                 f"and {data.alpha} patch features generated for its class, no picture); "
                 f"{data.description}")
    elif text is not None:
        items = f"the {len(test)} test images of {cfg.dataset} ({data.description})"
    else:
        items = f"the {len(test)} test texts of {cfg.dataset}"
    info = {"dataset": cfg.dataset, "variant": cfg.variant, "seed": cfg.seed,
            "from_cache": run.from_cache, "train_seconds": run.result.get("train_seconds"),
            "path": str(run.path)}
    return QueryResult(query=query, kind="text" if text is not None else "image",
                       words=words, unknown_words=unknown, scores=scores, rows=rows,
                       query_class=query_class, run=info, items=items, image_files=files)
