"""Datasets in the one shape HAAN reads, and the embedded synthetic default.

Every dataset is a :class:`PairedData`: per image-text pair, a global image feature
(N, D), alpha patch features (N, alpha, D), a padded token sequence with its length, a
class label, and train/val/test index splits. Real datasets are turned into this shape
by their loaders; the synthetic default is generated here, deterministically from a seed.

The synthetic data is SYNTHETIC: no image or sentence stands behind it. It is built to
show the paper's central claim on a laptop in seconds. Half of the classes ("scenes")
differ only in the global image feature (their patches are generic background), the
other half ("objects") differ only in a few object patches (their global feature is
shared). Every text names its class with a keyword among filler words. So the global
network alone can separate only the scenes, the local network alone only the objects,
and their fusion (eq. 7) both.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .errors import HAANInputError

PAD = "<pad>"


@dataclass
class PairedData:
    name: str
    global_feats: torch.Tensor | None   # (N, D) float
    patch_feats: torch.Tensor | None    # (N, alpha, D) float
    tokens: torch.Tensor                # (N, L) long, 0 = padding
    lengths: torch.Tensor               # (N,) long, >= 1
    labels: torch.Tensor                # (N,) long class ids
    splits: dict                        # {"train": idx, "val": idx, "test": idx}
    vocab: list                         # vocab[0] == "<pad>"
    class_names: list
    synthetic: bool = False
    description: str = ""
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        n = self.labels.shape[0]
        for name, t in (("global_feats", self.global_feats), ("patch_feats", self.patch_feats),
                        ("tokens", self.tokens), ("lengths", self.lengths)):
            if t is not None and t.shape[0] != n:
                raise HAANInputError(f"{self.name}: {name} has {t.shape[0]} rows, labels {n}")
        for split in ("train", "val", "test"):
            if split not in self.splits:
                raise HAANInputError(f"{self.name}: missing the {split!r} split")

    @property
    def alpha(self) -> int | None:
        return None if self.patch_feats is None else self.patch_feats.shape[1]

    @property
    def feat_dim(self) -> int:
        feats = self.global_feats if self.global_feats is not None else self.patch_feats
        return feats.shape[-1]

    @property
    def patch_dim(self) -> int | None:
        return None if self.patch_feats is None else self.patch_feats.shape[-1]

    def batch(self, index: torch.Tensor, device="cpu", txt_labels=None) -> dict:
        """The pairs at ``index`` as tensors on ``device``; texts trimmed to their longest."""
        index = torch.as_tensor(index, dtype=torch.long)
        lengths = self.lengths[index]
        out = {"tokens": self.tokens[index, : int(lengths.max())].to(device),
               "lengths": lengths.to(device),
               "img_labels": self.labels[index].to(device),
               "txt_labels": (self.labels if txt_labels is None else txt_labels)[index]
               .to(device)}
        if self.global_feats is not None:
            out["global"] = self.global_feats[index].to(device)
        if self.patch_feats is not None:
            out["patches"] = self.patch_feats[index].to(device)
        return out

    def summary(self) -> dict:
        return {"name": self.name, "synthetic": self.synthetic, "pairs": int(len(self.labels)),
                "classes": len(self.class_names), "vocabulary": len(self.vocab) - 1,
                "splits": {k: int(len(v)) for k, v in self.splits.items()},
                "alpha": self.alpha, "feature_dim": self.feat_dim,
                "has_global": self.global_feats is not None,
                "has_patches": self.patch_feats is not None,
                **{k: self.meta[k] for k in ("files_sha256", "split_classes") if k in self.meta}}

    def decode(self, i: int) -> str:
        """The text of pair i as words."""
        return " ".join(self.vocab[t] for t in self.tokens[i, : int(self.lengths[i])].tolist())


SCENES = [("beach", "sand shore coast"), ("forest", "trees woods pine"),
          ("city", "street buildings downtown"), ("snow", "ice winter glacier"),
          ("desert", "dunes arid cactus"), ("harbour", "pier dock quay"),
          ("field", "meadow grass farm"), ("mountain", "peak summit ridge")]
OBJECTS = [("dog", "puppy hound"), ("car", "vehicle sedan"), ("boat", "sailboat yacht"),
           ("bird", "sparrow gull"), ("horse", "pony stallion"), ("plane", "jet aircraft"),
           ("cat", "kitten tabby"), ("train", "locomotive railcar")]
FILLER = ("a the photo picture of in with and on near some this view image shot small "
          "large old new day light scene there is one two").split()


def make_synthetic(seed: int = 0, n_scene: int = 5, n_object: int = 5, n_train: int = 1000,
                   n_val: int = 200, n_test: int = 200, feat_dim: int = 64, alpha: int = 9,
                   object_patches: int = 2, global_noise: float = 1.0,
                   patch_noise: float = 1.0, min_len: int = 4, max_len: int = 12,
                   tag_noise: float = 0.1) -> PairedData:
    """Generate the synthetic default (see the module docstring). Same seed, same data.

    ``object_patches`` of the alpha patches carry the object cue; ``tag_noise`` is the
    chance that a text carries a second keyword from another class (a noisy tag).
    """
    if not (1 <= n_scene <= len(SCENES) and 1 <= n_object <= len(OBJECTS)):
        raise HAANInputError(f"n_scene and n_object must lie in 1..{len(SCENES)}")
    if min_len < 2 or max_len < min_len:
        raise HAANInputError("need 2 <= min_len <= max_len")
    if not 0 < object_patches <= alpha:
        raise HAANInputError("object_patches must lie in 1..alpha")
    g = torch.Generator().manual_seed(seed)
    C = n_scene + n_object
    N = n_train + n_val + n_test
    is_scene = torch.arange(C) < n_scene

    # class of every pair, balanced, in random order
    labels = torch.arange(N) % C
    labels = labels[torch.randperm(N, generator=g)]

    # global feature: a scene prototype for scenes, one shared prototype for all objects
    g_proto = torch.randn(n_scene + 1, feat_dim, generator=g) * 2.0
    g_idx = torch.where(is_scene[labels], labels, torch.full_like(labels, n_scene))
    global_feats = g_proto[g_idx] + global_noise * torch.randn(N, feat_dim, generator=g)

    # patches: generic background everywhere, object prototypes on a few patches of objects
    n_bg = 6
    bg_proto = torch.randn(n_bg, feat_dim, generator=g) * 2.0
    bg_pick = torch.randint(n_bg, (N, alpha), generator=g)
    patch_feats = bg_proto[bg_pick] + patch_noise * torch.randn(N, alpha, feat_dim, generator=g)
    o_proto = torch.randn(n_object, feat_dim, generator=g) * 2.0
    obj_rows = torch.nonzero(~is_scene[labels]).squeeze(1)
    where = torch.rand(len(obj_rows), alpha, generator=g).argsort(dim=1)[:, :object_patches]
    obj_class = labels[obj_rows] - n_scene
    object_patch = torch.zeros(N, alpha, dtype=torch.bool)
    object_patch[obj_rows[:, None], where] = True
    patch_feats[obj_rows[:, None], where] = (
        o_proto[obj_class][:, None, :]
        + patch_noise * torch.randn(len(obj_rows), object_patches, feat_dim, generator=g))

    # texts: one keyword of the class (a synonym) among filler words
    class_names = [s for s, _ in SCENES[:n_scene]] + [o for o, _ in OBJECTS[:n_object]]
    keywords = [[name] + syn.split() for name, syn in SCENES[:n_scene] + OBJECTS[:n_object]]
    vocab = [PAD] + FILLER + [w for kws in keywords for w in kws]
    index = {w: i for i, w in enumerate(vocab)}
    lengths = torch.randint(min_len, max_len + 1, (N,), generator=g)
    filler_ids = torch.tensor([index[w] for w in FILLER])
    tokens = filler_ids[torch.randint(len(FILLER), (N, max_len), generator=g)]
    kw_pos = (torch.rand(N, generator=g) * lengths).long()          # keyword slot
    kw_choice = torch.randint(1 << 30, (N,), generator=g)
    for c in range(C):  # loop over classes (10), not captions: each step fills all rows
        rows = torch.nonzero(labels == c).squeeze(1)
        kw_ids = torch.tensor([index[w] for w in keywords[c]])
        tokens[rows, kw_pos[rows]] = kw_ids[kw_choice[rows] % len(kw_ids)]
    # noisy tags: another class's keyword in a different slot of the same text
    noisy = torch.rand(N, generator=g) < tag_noise
    other = (labels + torch.randint(1, C, (N,), generator=g)) % C
    first_kw = torch.tensor([index[kws[0]] for kws in keywords])
    shift = 1 + (torch.rand(N, generator=g) * (lengths - 1)).long()
    slot = (kw_pos + shift) % lengths
    tokens[noisy, slot[noisy]] = first_kw[other[noisy]]
    tokens[torch.arange(max_len)[None, :] >= lengths[:, None]] = 0

    perm = torch.randperm(N, generator=g)
    splits = {"train": perm[:n_train], "val": perm[n_train:n_train + n_val],
              "test": perm[n_train + n_val:]}
    return PairedData(
        name="synthetic", global_feats=global_feats, patch_feats=patch_feats, tokens=tokens,
        lengths=lengths, labels=labels, splits=splits, vocab=vocab, class_names=class_names,
        synthetic=True,
        description=(f"SYNTHETIC data generated by haan_core (seed {seed}): {n_scene} scene "
                     f"classes told apart only by the global feature, {n_object} object "
                     "classes told apart only by object patches; no real images or texts."),
        meta={"seed": seed, "scene_classes": list(range(n_scene)),
              "object_classes": list(range(n_scene, C)),
              "object_patch": object_patch})           # (N, alpha): which patches hold the object


def load_synthetic(cfg) -> PairedData:
    opts = dict(cfg.extra)
    opts.setdefault("alpha", cfg.alpha)
    return make_synthetic(seed=opts.pop("data_seed", cfg.seed), **opts)


def paired_from_corpus(corpus, global_feats, patch_feats, ok=None, description="") -> PairedData:
    """A :class:`PairedData` from a corpus and its image features (rows in corpus order).
    Pairs whose image could not be read (``ok`` False) are dropped; words of validation and
    test texts that the training texts never use become <unk>."""
    n = len(corpus.ids)
    ok = torch.ones(n, dtype=torch.bool) if ok is None else ok
    keep = torch.nonzero(ok).squeeze(1)
    new_index = torch.full((n,), -1, dtype=torch.long)
    new_index[keep] = torch.arange(len(keep))
    vocab = [PAD, "<unk>"] + corpus.vocabulary()
    index = {w: i for i, w in enumerate(vocab)}
    texts = [[index.get(w, 1) for w in corpus.texts[i]] for i in keep.tolist()]
    lengths = torch.tensor([len(t) for t in texts])
    tokens = torch.zeros(len(texts), int(lengths.max()), dtype=torch.long)
    for row, t in enumerate(texts):  # one row per pair, done once at load time
        tokens[row, :len(t)] = torch.tensor(t)
    splits = {k: new_index[torch.tensor(v, dtype=torch.long)] for k, v in corpus.splits.items()}
    splits = {k: v[v >= 0] for k, v in splits.items()}
    return PairedData(
        name=corpus.name,
        global_feats=None if global_feats is None else global_feats[keep].float(),
        patch_feats=None if patch_feats is None else patch_feats[keep].float(),
        tokens=tokens, lengths=lengths, labels=torch.tensor(corpus.labels)[keep],
        splits=splits, vocab=vocab, class_names=corpus.class_names, synthetic=False,
        description=description,
        meta={"ids": [corpus.ids[i] for i in keep.tolist()], "problems": corpus.problems,
              "dropped_unreadable": int(n - len(keep)), "files_sha256": corpus.files,
              "split_classes": corpus.split_classes()})


def feature_cache_dir(cfg):
    from pathlib import Path
    if cfg.feature_cache:
        return Path(cfg.feature_cache)
    from .provenance import PACKAGE_DIR
    checkout = PACKAGE_DIR.parent
    if (checkout / "pyproject.toml").exists():
        return checkout / "data" / "cache" / "features"
    return Path.home() / ".cache" / "haan" / "features"


def load_real(cfg) -> PairedData:
    """Corel 5K, Wiki or Pascal Sentence from ``cfg.root``, with image features."""
    from .corpora import fetch_command, load_corpus
    from .features import cached_features
    if cfg.root is None:
        raise HAANInputError(f"dataset {cfg.dataset!r} needs --root, the folder that holds it "
                             f"(see `python -m haan_core data check {cfg.dataset} --root DIR`)")
    corpus = load_corpus(cfg.dataset, cfg.root, cfg.val_test_split, cfg.split_seed)
    if cfg.max_words is not None:
        corpus.texts = [t[:cfg.max_words] for t in corpus.texts]  # before the vocabulary
    paths = corpus.image_paths
    if cfg.dataset == "wiki" and all(p is None for p in paths):
        import scipy.io
        from pathlib import Path
        from .corpora import sha256_of
        mat = scipy.io.loadmat(Path(cfg.root) / "raw_features.mat")
        corpus.files["raw_features.mat"] = sha256_of(Path(cfg.root) / "raw_features.mat")
        sift = torch.from_numpy(np.concatenate([mat["I_tr"], mat["I_te"]])).float()
        if len(sift) != len(corpus.ids):
            raise HAANInputError(f"wiki: raw_features.mat has {len(sift)} rows for "
                                 f"{len(corpus.ids)} pairs")
        return paired_from_corpus(
            corpus, sift, None, description="Wiki with its 128-d SIFT bag-of-words image "
            "features (no images were available): global network only, a DEVIATION from "
            "the paper's CNN features")
    missing = sum(p is None for p in paths)
    if missing > 0.05 * len(paths):
        raise HAANInputError(
            f"{cfg.dataset}: {len(paths) - missing} of {len(paths)} images are present under "
            f"{cfg.root}; a run needs (nearly) all of them. Fetch them with "
            f"`{fetch_command(cfg.dataset, cfg.root)}`")
    g, p, ok, manifest = cached_features(cfg.dataset, corpus.ids, paths, feature_cache_dir(cfg),
                                         cfg.backbone, cfg.patch_mode, device=cfg.device,
                                         progress=cfg.progress)
    if cfg.patch_mode == "grid":
        note = "3 x 3 cells of the last feature map (grid mode, a DEVIATION from crops)"
    else:
        note = "3 x 3 crops (as in the paper)"
    return paired_from_corpus(corpus, g, p, ok, description=(
        f"{cfg.dataset} with {cfg.backbone} features; patches: {note}"))


# name -> loader(cfg). Real datasets (Section 4.1) come from haan_core.corpora.
DATASETS = {"synthetic": load_synthetic, "corel5k": load_real, "wiki": load_real,
            "pascal": load_real}


def load_dataset(cfg) -> PairedData:
    cfg.validate()
    if cfg.dataset not in DATASETS:
        raise HAANInputError(f"unknown dataset {cfg.dataset!r}; known: {sorted(DATASETS)}")
    return DATASETS[cfg.dataset](cfg)
