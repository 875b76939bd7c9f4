"""Trained runs cached on disk, keyed by their full configuration.

Notebooks that need the same trained model share it: ``cached_train(cfg)`` trains once
and stores the result, the test similarity matrices and the weights under a key made of
every configuration field, the device type and a hash of the haan_core code that a run of
its method executes (:func:`haan_core.sweep.method_code`, the same hash the committed
real-data runs carry). A later call with the same key loads them instead of training
again. Any change to that code gives new keys, so a cached number always comes from the
method as it is now; changes to other modules (tables, the book runner, the claims, another
method) keep the cache.

Entries are written to a temporary folder and renamed into place: an interrupted run
leaves nothing half-written.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from .config import HAANConfig
from .provenance import PACKAGE_DIR, resolve_device

# fields that do not change what is computed
_NOT_IN_KEY = {"progress"}


def code_hash() -> str:
    """sha256 over all of haan_core's sources and the reported tables (what a book page
    can show depends on all of them; a run's key uses :func:`haan_core.sweep.method_code`)."""
    h = hashlib.sha256()
    for path in sorted(PACKAGE_DIR.rglob("*")):
        if path.suffix not in (".py", ".csv") or "__pycache__" in path.parts:
            continue
        h.update(str(path.relative_to(PACKAGE_DIR)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def default_cache_dir() -> Path:
    """$HAAN_CACHE_DIR, else runs/cache in the checkout, else ~/.cache/haan/runs."""
    if os.environ.get("HAAN_CACHE_DIR"):
        return Path(os.environ["HAAN_CACHE_DIR"])
    checkout = PACKAGE_DIR.parent
    if (checkout / "pyproject.toml").exists():
        return checkout / "runs" / "cache"
    return Path.home() / ".cache" / "haan" / "runs"


def run_key(cfg: HAANConfig) -> str:
    fields = {k: v for k, v in cfg.to_dict().items() if k not in _NOT_IN_KEY}
    from .sweep import method_code
    payload = {"config": fields, "device": resolve_device(cfg.device).type,
               "code": method_code(method=cfg.method)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()
                          ).hexdigest()[:20]


@dataclass
class Run:
    """A trained run as the notebooks use it."""
    config: HAANConfig
    result: dict          # the JSON of TrainResult.to_json(): scores, histories, provenance
    test_eval: dict       # {"sims": {"C", "F", "fused"}, "img_labels", "txt_labels"}
    state_dict: dict
    path: Path
    from_cache: bool

    @property
    def scores(self) -> dict:
        return {k: self.result[k] for k in ("i2t", "t2i", "avg")}

    def model(self, data):
        """The trained HAAN (best validation snapshot), rebuilt for ``data``."""
        from .train import build_model
        model = build_model(self.config, data)
        model.load_state_dict(self.state_dict)
        return model.eval()


def _load(path: Path, cfg: HAANConfig) -> Run:
    result = json.loads((path / "result.json").read_text())
    test_eval = torch.load(path / "test_eval.pt", weights_only=True)
    state = torch.load(path / "model.pt", weights_only=True)
    return Run(cfg, result, test_eval, state, path, from_cache=True)


def cached_train(cfg: HAANConfig, cache_dir=None, data=None, retrain: bool = False) -> Run:
    """Train ``cfg`` unless a run with the same key is cached; return the run."""
    from .train import train
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = cache_dir / f"{cfg.dataset}-{cfg.variant}-{run_key(cfg)}"
    if path.is_dir() and not retrain:
        return _load(path, cfg)
    result = train(cfg, data=data)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=cache_dir, prefix=".tmp-"))
    try:
        (tmp / "result.json").write_text(json.dumps(result.to_json(), indent=1))
        torch.save(result.test_eval, tmp / "test_eval.pt")
        torch.save(result.model.state_dict(), tmp / "model.pt")
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Run(cfg, result.to_json(), result.test_eval, result.model.state_dict(), path,
               from_cache=False)
