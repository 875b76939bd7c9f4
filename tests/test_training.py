"""Training behaves as the method says it should, on the embedded synthetic data."""
import json
import subprocess
import sys

import pytest
import torch

from haan_core import HAANConfig
from haan_core.datasets import make_synthetic
from haan_core.metrics import chance_map
from haan_core.models import TextEncoder
from haan_core.train import train


def _run(variant, **over):
    return train(HAANConfig.for_dataset("synthetic", variant=variant, progress=False, **over))


@pytest.fixture(scope="module")
def default_runs():
    """The default recipe at the default seed, for the three variants of `make demo`."""
    return {v: _run(v) for v in ("HAAN", "HAAN-GCM", "HAAN-LCM")}


@pytest.fixture(scope="module")
def chance():
    data = make_synthetic(seed=0)
    labels = data.labels[data.splits["test"]]
    return chance_map(labels, labels)


@pytest.mark.slow
def test_training_beats_chance_by_a_wide_margin(default_runs, chance):
    assert default_runs["HAAN"].test["avg"] > chance + 0.4


@pytest.mark.slow
def test_shuffled_text_labels_stay_near_chance(chance):
    shuffled = _run("HAAN", shuffle_text_labels=True)
    assert abs(shuffled.test["avg"] - chance) < 0.08


@pytest.mark.slow
def test_haan_beats_each_level_alone(default_runs):
    """The paper's central claim, which the synthetic data is built to show."""
    haan = default_runs["HAAN"].test["avg"]
    assert haan > default_runs["HAAN-GCM"].test["avg"] + 0.1
    assert haan > default_runs["HAAN-LCM"].test["avg"] + 0.1


@pytest.mark.slow
def test_the_objective_decreases(default_runs):
    """Figure 8's observation: the objective C of GAN goes down over training."""
    C = [r["C"] for r in default_runs["HAAN"].loss_history]
    first, last = sum(C[:10]) / 10, sum(C[-10:]) / 10
    assert last < first


def test_same_seed_same_metrics_on_cpu():
    small = dict(epochs=2, device="cpu", extra={"n_train": 200, "n_val": 50, "n_test": 50})
    a, b = _run("HAAN", seed=3, **small), _run("HAAN", seed=3, **small)
    assert a.test == b.test and a.loss_history == b.loss_history
    c = _run("HAAN", seed=4, **small)
    assert c.loss_history != a.loss_history


def test_synthetic_data_is_deterministic_and_shaped_like_real_data():
    a, b = make_synthetic(seed=1), make_synthetic(seed=1)
    assert torch.equal(a.patch_feats, b.patch_feats) and torch.equal(a.tokens, b.tokens)
    assert not torch.equal(a.tokens, make_synthetic(seed=2).tokens)
    assert a.patch_feats.shape[1] == 9 and a.global_feats.dim() == 2
    assert a.lengths.min() >= 4 and a.lengths.max() <= 12 and len(set(a.lengths.tolist())) > 3
    pad = torch.arange(a.tokens.shape[1])[None, :] >= a.lengths[:, None]
    assert (a.tokens[pad] == 0).all() and (a.tokens[~pad] != 0).all()
    assert sum(len(s) for s in a.splits.values()) == len(a.labels)
    assert "SYNTHETIC" in a.description


def test_text_encoder_ignores_padding():
    """Eq. 9 with packed sequences: tokens after a text's end change nothing."""
    torch.manual_seed(0)
    enc = TextEncoder(vocab_size=20, word_dim=8, embed_dim=6)
    tokens = torch.tensor([[3, 4, 5, 0, 0], [6, 7, 0, 0, 0]])
    lengths = torch.tensor([3, 2])
    noisy = tokens.clone()
    noisy[0, 3:] = 9
    noisy[1, 2:] = 11
    torch.testing.assert_close(enc.text_vector(tokens, lengths),
                               enc.text_vector(noisy, lengths))


def test_cli_writes_result_with_provenance(tmp_path):
    out = tmp_path / "sub" / "result.json"
    proc = subprocess.run([sys.executable, "-m", "haan_core", "train", "--variant",
                           "HAAN-GCM", "--seed", "0", "--epochs", "2", "--rho", "0.4",
                           "--no-progress", "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "I2T" in proc.stdout and "SYNTHETIC" in proc.stdout
    result = json.loads(out.read_text())
    for key in ("i2t", "t2i", "avg"):
        assert 0 <= result[key] <= 1
    prov = result["provenance"]
    assert prov["config"]["rho"] == 0.4 and prov["config"]["epochs"] == 2
    assert prov["seed"] == 0 and prov["device"].startswith("cpu")
    assert "commit" in prov and prov["wall_seconds"] > 0 and prov["time_utc"]
    assert not list(out.parent.glob("*.tmp"))     # written atomically, nothing left over


def test_fp32_training_turns_cudnn_tf32_off_and_restores_it():
    """cuDNN's default TF32 (a 10-bit mantissa on a GPU) would make "fp32" not fp32: every
    forward pass of training and evaluation runs with it off, and the setting comes back."""
    seen = []
    hook = torch.nn.modules.module.register_module_forward_pre_hook(
        lambda module, args: seen.append(torch.backends.cudnn.allow_tf32))
    before = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = True
    try:
        train(HAANConfig.for_dataset("synthetic", epochs=1, embed_dim=16, word_dim=8,
                                     progress=False, extra={"n_train": 60, "n_val": 20,
                                                            "n_test": 20}))
        assert torch.backends.cudnn.allow_tf32 is True
    finally:
        hook.remove()
        torch.backends.cudnn.allow_tf32 = before
    assert seen and not any(seen)
