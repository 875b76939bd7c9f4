"""One configuration object: Table 2's parameters with the paper's values, and the recipe.

``HAANConfig.for_dataset(name, **overrides)`` starts from the paper's values, applies the
dataset's recipe (Section 4.2.3: E/B = 100/100 Corel 5K, 30/10 Pascal Sentence, 20/20
Wiki) and then the caller's overrides. The CLI and the notebooks build configs this way.
Fields marked "choice" are where the paper is silent; each is a line of the ambiguity log
(book/ambiguity_log.md).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from .errors import HAANInputError


@dataclass(frozen=True)
class Variant:
    """One row of Table 5: which modules run and which loss trains them."""
    gcm: bool
    lcm: bool
    loss: str          # "awl", "tri" or "base" (neither AWL nor TRI: see config.base_loss)
    mining: bool       # AWL stage 1 (eqs. 16-17)
    weighting: bool    # AWL stage 2 (eqs. 18-22)


# Table 5. HAAN-GCM / HAAN-LCM contain one module and neither AWL nor TRI, like
# HAAN-GCM-LCM; the ablation text compares them as "global-level or local-level alone".
VARIANTS = {
    "HAAN-GCM": Variant(True, False, "base", False, False),
    "HAAN-LCM": Variant(False, True, "base", False, False),
    "HAAN-GCM-LCM": Variant(True, True, "base", False, False),
    "HAAN-GCM-LCM-TRI": Variant(True, True, "tri", False, False),
    "HAAN-GCM-LCM-AWL(Stage1)": Variant(True, True, "awl", True, False),
    "HAAN-GCM-LCM-AWL(Stage2)": Variant(True, True, "awl", False, True),
    "HAAN": Variant(True, True, "awl", True, True),
}

# Section 4.2.3, and the synthetic default (our choice: small enough for a laptop CPU).
DATASET_RECIPES = {
    "corel5k": {"epochs": 100, "batch_size": 100},
    "pascal": {"epochs": 30, "batch_size": 10},
    "wiki": {"epochs": 20, "batch_size": 20},
    "synthetic": {"epochs": 30, "batch_size": 100, "embed_dim": 256, "word_dim": 64},
}


@dataclass
class HAANConfig:
    # what to run
    dataset: str = "synthetic"
    method: str = "haan"              # or a compared method (python -m haan_core methods)
    variant: str = "HAAN"
    seed: int = 0
    root: str | None = None           # data folder of a real dataset
    backbone: str = "vgg19"           # image CNN of Section 3.2 (or efficientnet_lite0)
    patch_mode: str = "crops"         # 3 x 3 crops (the paper) or "grid" (faster deviation)
    feature_cache: str | None = None  # where extracted features are cached; None = data/cache
    device: str = "auto"              # "auto": CUDA when present, else CPU
    precision: str = "fp32"           # "bf16": autocast the networks (choice; losses stay fp32)
    # Table 2 and Section 4.2
    alpha: int = 9                    # patches per image (3 x 3)
    lam: float = 9.0                  # inverse temperature of eq. 13
    rho: float = 0.6                  # mining margin of eqs. 16-17
    upsilon1: float = 1.0             # fusion weight of the global matrix (eq. 7)
    upsilon2: float = 1.0             # fusion weight of the local matrix (eq. 7)
    epochs: int = 100                 # E
    batch_size: int = 100             # B
    lr: float = 2e-4                  # Adam, first E/2 epochs
    lr_decay: float = 0.1             # multiplier for the remaining epochs
    grad_clip: float = 2.0            # max gradient norm, per network (choice)
    embed_dim: int = 1024             # common embedding width (Section 3.2)
    word_dim: int = 300               # word embedding width (Section 3.2)
    # choices where the paper is silent
    lr_decay_epoch: int | None = None  # None: E // 2
    awl_directions: str = "both"      # anchors on images and on texts
    base_loss: str = "plain"          # loss when neither AWL nor TRI: AWL with both stages off
    tri_margin: float = 0.2
    tri_hardest: bool = True          # TRI with the hardest negative (VSE++) or a sum
    eval_k: int | None = None         # mAP depth; None = the whole gallery
    lcm_chunk: int | None = None      # images per LCM chunk at evaluation; None = auto
    max_words: int | None = None      # cut each real text to its first words; None = all
    val_test_split: str = "stratified"  # how a test list is cut into val/test (Corel, Wiki)
    split_seed: int = 0               # seeds that cut (and Pascal's split), not training
    shuffle_text_labels: bool = False  # control experiment: break the text supervision
    progress: bool = True             # a progress bar (shown only on a terminal)
    extra: dict = field(default_factory=dict)  # dataset options (e.g. synthetic sizes)
    method_options: dict = field(default_factory=dict)  # a compared method's own options

    @classmethod
    def for_dataset(cls, dataset: str = "synthetic", **overrides) -> "HAANConfig":
        from .datasets import DATASETS
        if dataset not in DATASETS:
            raise HAANInputError(f"unknown dataset {dataset!r}; known: {sorted(DATASETS)}")
        values = dict(DATASET_RECIPES.get(dataset, {}))
        if overrides.get("method", "haan") != "haan":   # a compared method's own settings
            from .methods import recipe
            values.update(recipe(overrides["method"], dataset))
        values.update(overrides)
        unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise HAANInputError(f"unknown configuration field(s) {sorted(unknown)}; "
                                 f"known: {sorted(f.name for f in dataclasses.fields(cls))}")
        cfg = cls(dataset=dataset, **values)
        cfg.validate()
        return cfg

    def replace(self, **changes) -> "HAANConfig":
        cfg = dataclasses.replace(self, **changes)
        cfg.validate()
        return cfg

    @property
    def variant_spec(self) -> Variant:
        return VARIANTS[self.variant]

    @property
    def decay_epoch(self) -> int:
        return self.epochs // 2 if self.lr_decay_epoch is None else self.lr_decay_epoch

    def validate(self) -> None:
        if self.method != "haan":
            from .methods import check_method
            check_method(self.method)
            if self.variant != "HAAN":
                raise HAANInputError(f"--variant picks a row of HAAN's Table 5; method "
                                     f"{self.method!r} has none: leave --variant out")
        if not isinstance(self.method_options, dict):
            raise HAANInputError(f"method_options must be a dict, got {self.method_options!r}")
        if self.method_options:
            if self.method == "haan":
                raise HAANInputError(f"method_options are a compared method's (--method); "
                                     f"HAAN has none, got {sorted(self.method_options)}")
            from .methods import method_options
            method_options(self)   # unknown keys and bad values are clear errors
        if self.variant not in VARIANTS:
            raise HAANInputError(f"unknown variant {self.variant!r}; known: {list(VARIANTS)}")
        if self.backbone not in ("vgg19", "efficientnet_lite0"):
            raise HAANInputError(f"backbone must be 'vgg19' or 'efficientnet_lite0', "
                                 f"got {self.backbone!r}")
        if self.patch_mode not in ("crops", "grid"):
            raise HAANInputError(f"patch_mode must be 'crops' or 'grid', got {self.patch_mode!r}")
        if self.precision not in ("fp32", "bf16"):
            raise HAANInputError(f"precision must be 'fp32' or 'bf16', got {self.precision!r}")
        if self.val_test_split not in ("stratified", "order"):
            raise HAANInputError(f"val_test_split must be 'stratified' or 'order', "
                                 f"got {self.val_test_split!r}")
        if self.base_loss not in ("plain", "tri"):
            raise HAANInputError(f"base_loss must be 'plain' or 'tri', got {self.base_loss!r}")
        if self.awl_directions not in ("both", "i2t", "t2i"):
            raise HAANInputError("awl_directions must be 'both', 'i2t' or 't2i'")
        for name in ("epochs", "batch_size", "embed_dim", "word_dim", "alpha"):
            if int(getattr(self, name)) < 1:
                raise HAANInputError(f"{name} must be a positive integer, "
                                     f"got {getattr(self, name)}")
        if self.max_words is not None and self.max_words < 1:
            raise HAANInputError(f"max_words must be at least 1 (or None for whole texts), "
                                 f"got {self.max_words}")
        if self.batch_size < 2:
            raise HAANInputError("batch_size must be at least 2: AWL needs negatives")
        if self.lr <= 0 or self.grad_clip <= 0:
            raise HAANInputError("lr and grad_clip must be positive")
        if self.upsilon1 < 0 or self.upsilon2 < 0 or self.upsilon1 + self.upsilon2 == 0:
            raise HAANInputError("upsilon1 and upsilon2 must be >= 0 and not both 0")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
