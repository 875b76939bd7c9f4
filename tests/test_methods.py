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
    (("--method", "vsrn"), "unknown method 'vsrn'"),
    (("--method", "shan", "--variant", "HAAN-GCM"), "leave --variant out")])
def test_a_method_that_cannot_run_is_a_clear_error(args, message):
    out = cli("train", *args, "--epochs", "1")
    assert out.returncode == 2 and message in out.stderr


@pytest.mark.parametrize("method", ["shan", "tshsr", "liu", "scan", "sgr", "saf"])
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


def test_shan_and_tshsr_take_their_papers_recipes_over_the_dataset():
    shan = HAANConfig.for_dataset("corel5k", method="shan")
    assert (shan.epochs, shan.batch_size, shan.lr, shan.tri_margin, shan.tri_hardest) == \
        (30, 128, 2e-4, 0.2, True)
    tshsr = HAANConfig.for_dataset("corel5k", method="tshsr")
    assert (tshsr.epochs, tshsr.decay_epoch, tshsr.batch_size, tshsr.lr) == (40, 30, 128, 2e-4)
    assert HAANConfig.for_dataset("corel5k", method="tshsr", epochs=4).epochs == 4
    scan = HAANConfig.for_dataset("corel5k", method="scan")
    assert (scan.epochs, scan.batch_size, scan.lr, scan.tri_margin, scan.tri_hardest) == \
        (30, 128, 2e-4, 0.2, True)
    sgr, saf = (HAANConfig.for_dataset("corel5k", method=m) for m in ("sgr", "saf"))
    assert (sgr.epochs, sgr.decay_epoch, saf.epochs, saf.decay_epoch) == (40, 30, 30, 20)
    assert (HAANConfig.for_dataset("corel5k", method="dcca").batch_size,
            HAANConfig.for_dataset("corel5k", method="dscmr").lr) == (800, 1e-4)


@pytest.mark.parametrize("opts,words", [
    ({"formulation": "x"}, "formulation must be"),
    ({"pooling": "max"}, "pooling must be"),
    ({"lambda_lse": 0}, "lambda_lse must be"),
    ({"warmup_epochs": -1}, "warmup_epochs"),
])
def test_bad_scan_options_are_clear_errors(opts, words):
    with pytest.raises(HAANInputError, match=words):
        HAANConfig.for_dataset("synthetic", method="scan", method_options=opts)


def test_scan_takes_its_options_into_its_network():
    from haan_core.datasets import make_synthetic
    from haan_core.methods import build_method
    cfg = HAANConfig.for_dataset("synthetic", method="scan", embed_dim=8, word_dim=8,
                                 method_options={"formulation": "i2t", "pooling": "mean",
                                                 "lambda_softmax": 4.0})
    net = build_method(cfg, make_synthetic(**TINY)).networks()["S"]
    assert (net.formulation, net.pooling, net.lambda_softmax) == ("i2t", "mean", 4.0)


class _Recorder:
    def __init__(self):
        self.calls = []

    def __call__(self, sim, il, tl, margin, hardest):
        self.calls.append(hardest)
        return sim.sum() * 0


def test_the_warm_up_sums_over_negatives_for_its_epochs_then_takes_the_hardest():
    from haan_core.methods import WarmupRanking
    import torch
    rec = _Recorder()
    loss = WarmupRanking(rec, 0.2, True, warmup_epochs=2)
    s, lab = torch.zeros(2, 2), torch.tensor([0, 1])
    for epoch in range(4):
        loss.set_epoch(epoch)
        loss(s, lab, lab)
    assert rec.calls == [False, False, True, True]
    plain = WarmupRanking(rec, 0.2, False, warmup_epochs=0)   # --no-tri-hardest: never
    plain.set_epoch(5)
    plain(s, lab, lab)
    assert rec.calls[-1] is False


def test_the_training_loop_tells_a_methods_loss_each_epoch(monkeypatch):
    import haan_core.methods as M
    seen = []
    real = M.method_loss

    def spy(cfg):
        loss = real(cfg)
        orig = loss.set_epoch
        loss.set_epoch = lambda e: (seen.append(e), orig(e))
        return loss
    monkeypatch.setattr(M, "method_loss", spy)
    cfg = HAANConfig.for_dataset("synthetic", method="tshsr", epochs=3, batch_size=40,
                                 embed_dim=8, word_dim=8, progress=False, device="cpu",
                                 extra=TINY)
    train(cfg)
    assert seen == [0, 1, 2]


@pytest.mark.parametrize("opts,words", [({"warmup_epochs": -1}, "integer >= 0"),
                                        ({"warmup_epochs": 1.5}, "integer >= 0"),
                                        ({"warmup": 1}, "unknown option")])
def test_bad_warm_up_options_are_clear_errors(opts, words):
    with pytest.raises(HAANInputError, match=words):
        HAANConfig.for_dataset("synthetic", method="tshsr", method_options=opts)
