"""The method registry: --method selects a compared method, trained by HAAN's own loop."""
import subprocess
import sys

import pytest

from haan_core import HAANConfig
from haan_core.errors import HAANInputError
from haan_core.methods import METHODS
from haan_core.train import train

TINY = {"n_train": 80, "n_val": 40, "n_test": 40, "n_scene": 2, "n_object": 2}


def cli(*args):
    return subprocess.run([sys.executable, "-m", "haan_core", *args], capture_output=True,
                          text=True)


def test_methods_lists_each_method_with_its_paper():
    out = cli("methods")
    assert out.returncode == 0
    for name, m in METHODS.items():
        assert name in out.stdout and m.paper in out.stdout


@pytest.mark.parametrize("args,message", [
    (("--method", "liu", "--method-option", "framework1=dbm"), "framework1 must be"),
    (("--method", "liu", "--method-option", "margins"), "expected KEY=VALUE"),
    (("--method", "scan"), "unknown method 'scan'"),
    (("--method", "shan", "--variant", "HAAN-GCM"), "leave --variant out")])
def test_a_method_that_cannot_run_is_a_clear_error(args, message):
    out = cli("train", *args, "--epochs", "1")
    assert out.returncode == 2 and message in out.stderr


@pytest.mark.parametrize("method", ["shan", "tshsr", "liu"])
def test_a_compared_method_trains_in_the_same_loop_and_keeps_haans_result_format(method):
    """Mechanics only: whether each method learns is tested with its own loop in
    test_shan.py and test_tshsr.py (HAAN's recipe is not theirs)."""
    cfg = HAANConfig.for_dataset("synthetic", method=method, epochs=2, batch_size=40,
                                 embed_dim=8, word_dim=8, progress=False, device="cpu",
                                 extra=TINY)
    r = train(cfg)
    js = r.to_json()
    assert js["method"] == method and js["provenance"]["config"]["method"] == method
    assert set(r.test_by_module) == {"S", "fused"} and r.test_by_module["S"] == r.test
    assert {"i2t", "t2i", "avg", "val_history", "loss_history", "train_seconds",
            "provenance"} <= set(js)
    assert {"iteration", "epoch", "S"} == set(js["loss_history"][0])
    assert all(h["S"] == h["S"] and h["S"] >= 0 for h in js["loss_history"])   # finite hinge
    n = len(r.test_eval["img_labels"])
    assert r.test_eval["sims"]["S"].shape == (n, n) and len(js["val_history"]) == 2


def test_haan_is_still_the_default_and_a_method_is_part_of_the_configuration():
    cfg = HAANConfig.for_dataset("synthetic")
    assert cfg.method == "haan" and cfg.to_dict()["method"] == "haan"
    with pytest.raises(HAANInputError, match="known"):
        cfg.replace(method="nope")
