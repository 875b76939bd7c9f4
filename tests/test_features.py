"""Image features (Section 3.2) on a handful of real images, and on broken files."""
import warnings
from pathlib import Path

import pytest
import torch
from PIL import Image

from haan_core.features import cached_features, crops, extract

from .test_corpora import SHARED


def test_crops_tile_the_image_exactly():
    img = torch.arange(3 * 128 * 192, dtype=torch.float32).view(3, 128, 192)
    parts = crops(img)
    assert len(parts) == 9
    assert sum(p.shape[1] * p.shape[2] for p in parts) == 128 * 192
    top = torch.cat(parts[:3], dim=2)
    assert torch.equal(top, img[:, : parts[0].shape[1]])


def _images(tmp_path, n=3):
    paths = []
    g = torch.Generator().manual_seed(0)
    for i in range(n):
        arr = (torch.rand(96, 144, 3, generator=g) * 255).byte().numpy()
        p = tmp_path / f"img{i}.jpg"
        Image.fromarray(arr).save(p)
        paths.append(p)
    return paths


@pytest.mark.parametrize("mode", ["crops", "grid"])
def test_corrupt_and_empty_images_are_skipped_not_fatal(tmp_path, mode):
    paths = _images(tmp_path)
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg at all")
    (tmp_path / "empty.jpg").write_bytes(b"")
    paths = [paths[0], tmp_path / "broken.jpg", paths[1], tmp_path / "empty.jpg", None]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        g, p, ok = extract(paths, "efficientnet_lite0", mode, device="cpu", progress=False)
    assert ok.tolist() == [True, False, True, False, False]
    assert g.shape == (5, 1280) and p.shape == (5, 9, 1280)
    assert (g[~ok] == 0).all() and (g[ok].abs().sum(1) > 0).all()
    assert sum("skipping unreadable image" in str(w.message) for w in caught) == 3


def test_real_images_give_the_right_shapes_identically_twice(tmp_path):
    root = SHARED / "corel5k" / "images"
    if not root.is_dir():
        pytest.skip(f"no real Corel 5K images at {root}")
    paths = sorted(root.glob("*/*.jpeg"))[:3]
    ids = [p.stem for p in paths]
    g1, p1, ok1, manifest = cached_features("corel5k", ids, paths, tmp_path, "efficientnet_lite0",
                                            "crops", device="cpu", progress=False)
    assert g1.shape == (3, 1280) and p1.shape == (3, 9, 1280) and ok1.all()
    assert manifest["ids"] == ids and manifest["skipped"] == []
    assert (tmp_path / "corel5k-efficientnet_lite0-crops.json").exists()
    # a second extraction, bypassing the cache, gives the same numbers
    g2, p2, _ = extract(paths, "efficientnet_lite0", "crops", device="cpu", progress=False)
    assert torch.equal(g1, g2) and torch.equal(p1, p2)
    # and the 9 patches differ from each other and from the whole image
    assert not torch.allclose(p1[0, 0], p1[0, 8]) and not torch.allclose(g1[0], p1[0, 4])
