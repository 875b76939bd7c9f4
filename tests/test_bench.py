"""The bench command and the precision option. Speed itself is never asserted here: the
bench command prints timings; these tests check that it runs, that its references compute
the same numbers as the code they time, and that bf16 keeps losses and mAP in fp32."""
import json
import subprocess
import sys

import pytest
import torch

from haan_core import HAANConfig, HAANInputError
from haan_core.bench import lcm_per_caption, map_per_query
from haan_core.metrics import mean_average_precision
from haan_core.similarity import lcm

from . import reference as ref


def test_per_caption_reference_equals_lcm_and_the_loop():
    g = torch.Generator().manual_seed(0)
    patches = torch.randn(4, 9, 6, generator=g, dtype=torch.float64)
    words = torch.randn(5, 5, 6, generator=g, dtype=torch.float64)
    lengths = torch.tensor([5, 1, 3, 2, 4])
    per_caption = lcm_per_caption(patches, words, lengths)
    torch.testing.assert_close(per_caption, lcm(patches, words, lengths), rtol=1e-10, atol=1e-12)
    expected = torch.tensor(ref.lcm(patches.tolist(), words.tolist(), lengths.tolist(), 9.0),
                            dtype=torch.float64)
    torch.testing.assert_close(per_caption, expected, rtol=1e-10, atol=1e-12)


def test_per_query_map_reference_equals_the_metric():
    g = torch.Generator().manual_seed(1)
    sim = torch.round(torch.rand(20, 30, generator=g) * 5) / 5          # ties
    ql, gl = torch.randint(4, (20,), generator=g), torch.randint(4, (30,), generator=g)
    assert map_per_query(sim, ql, gl) == pytest.approx(mean_average_precision(sim, ql, gl),
                                                       abs=1e-12)


def test_bench_command_runs_and_writes_json(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, "-m", "haan_core", "bench", "--quick", "--device",
                           "cpu", "--out", str(out), "--methods", "saf"], capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "QUICK sizes" in proc.stdout and "training epoch s, bf16 vs fp32" in proc.stdout
    assert "saf step s (B = 128) vs HAAN (B = 50)" in proc.stdout   # quick: HAAN batch 50
    r = json.loads(out.read_text())
    assert set(r["steps"]) == {"haan", "saf"}
    saf = r["steps"]["saf"]                  # SAF's recipe: batch 128, 30 epochs
    assert (saf["batch_size"], saf["recipe_epochs"], saf["iterations_per_epoch"]) == (128, 30, 36)
    assert saf["projected_recipe_s"] == pytest.approx(saf["step_s"] * 36 * 30)
    assert set(r["epoch"]) == {"fp32", "bf16"}
    for key in ("matmul_gflops", "lcm", "map", "machine"):
        assert key in r
    from haan_core.provenance import cpu_model
    assert r["machine"]["cpu"] == cpu_model()             # the processor is named
    if r["machine"]["cpu"]:
        assert f", {r['machine']['cpu']}, torch" in proc.stdout.splitlines()[0]
    assert r["lcm"]["max_abs_difference"] < 1e-4 and r["map"]["difference"] < 1e-9
    assert r["epoch"]["fp32"]["iterations"] == 4           # 200 pairs in batches of 50


def test_bench_refuses_a_method_that_is_not_pairwise():
    proc = subprocess.run([sys.executable, "-m", "haan_core", "bench", "--quick",
                           "--methods", "saf,liu"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "--methods takes the pairwise methods" in proc.stderr and "liu" in proc.stderr


def test_a_training_step_is_timed_at_the_batch_it_can_have():
    """bench's training step takes the recipe's batch or the pairs there are, whichever is
    smaller, and projects the recipe from Corel 5K's 4493 training pairs; a method and
    HAAN (two networks) alike."""
    from haan_core.bench import SIZES, train_step
    size = dict(SIZES["quick"], n_train=16)
    for method in ("sgr", "haan"):
        r = train_step(method, size, "cpu", repeat=1)
        assert r["batch_size"] == 16 and r["step_s"] > 0
        assert r["iterations_per_epoch"] == 281               # 4493 pairs in batches of 16


def test_precision_is_validated():
    with pytest.raises(HAANInputError, match="precision must be 'fp32' or 'bf16'"):
        HAANConfig.for_dataset("synthetic", precision="fp16")


def test_bf16_trains_with_fp32_losses_and_metrics():
    """bf16 autocasts the networks; the similarity matrices handed to the loss and to mAP
    are fp32, and the run still learns."""
    cfg = HAANConfig.for_dataset("synthetic", epochs=3, embed_dim=32, word_dim=16,
                                 precision="bf16", device="cpu", progress=False,
                                 extra={"n_train": 300, "n_val": 60, "n_test": 60})
    from haan_core.train import train
    r = train(cfg)
    assert all(s.dtype == torch.float32 for s in r.test_eval["sims"].values())
    assert all(isinstance(h["C"], float) and h["C"] == h["C"] for h in r.loss_history)
    fp32 = train(cfg.replace(precision="fp32"))
    assert r.config["precision"] == "bf16" and fp32.config["precision"] == "fp32"
    # 25 classes: chance mAP is about 0.06; both runs learn and land close together
    assert r.test["avg"] > 0.15 and fp32.test["avg"] > 0.15
    assert abs(r.test["avg"] - fp32.test["avg"]) < 0.03


def test_cpu_model_reads_the_processor_name(monkeypatch, tmp_path):
    import haan_core.provenance as P
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: X\nmodel name\t: Example CPU 9000\n")
    real = P.Path
    monkeypatch.setattr(P, "Path", lambda p: info if p == "/proc/cpuinfo" else real(p))
    assert P.cpu_model() == "Example CPU 9000"
    info.write_text("processor\t: 0\n")                   # no name: the platform's, or None
    monkeypatch.setattr(P.platform, "processor", lambda: "")
    assert P.cpu_model() is None
