"""CCA and kernel CCA (issue #12): the canonical correlations against an independent
computation, the kernel map against the kernel, the score against a loop, and the
closed-form path through the training loop."""
import numpy as np
import pytest
import torch

from haan_core import HAANConfig, HAANInputError
from haan_core.methods.cca import CCANet, Nystroem, canonical, median_distance, rbf
from haan_core.train import train

TINY = {"n_train": 200, "n_val": 60, "n_test": 60}


def _views(n=400, p=6, q=5, seed=0):
    g = np.random.default_rng(seed)
    z = g.normal(size=(n, 3))                       # shared latent signal
    X = z @ g.normal(size=(3, p)) + 0.5 * g.normal(size=(n, p))
    Y = z @ g.normal(size=(3, q)) + 0.5 * g.normal(size=(n, q))
    return X, Y


def test_canonical_correlations_match_an_independent_eigen_computation():
    X, Y = _views()
    reg = 1e-3
    fit = canonical(torch.tensor(X), torch.tensor(Y), reg)
    # independent: eigenvalues of Cxx^-1 Cxy Cyy^-1 Cyx (numpy, with the same ridges)
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    n = len(X)
    Cxx, Cyy, Cxy = Xc.T @ Xc / (n - 1), Yc.T @ Yc / (n - 1), Xc.T @ Yc / (n - 1)
    Cxx += reg * np.trace(Cxx) / Cxx.shape[0] * np.eye(Cxx.shape[0])
    Cyy += reg * np.trace(Cyy) / Cyy.shape[0] * np.eye(Cyy.shape[0])
    M = np.linalg.solve(Cxx, Cxy) @ np.linalg.solve(Cyy, Cxy.T)
    rho = np.sqrt(np.sort(np.linalg.eigvals(M).real)[::-1][:min(X.shape[1], Y.shape[1])])
    assert np.allclose(fit["corr"].numpy(), rho, atol=1e-9)
    assert fit["corr"][0] > 0.8 and (fit["corr"][:-1] >= fit["corr"][1:]).all()


def test_the_canonical_variates_have_those_correlations_and_are_uncorrelated():
    X, Y = _views(seed=1)
    fit = canonical(torch.tensor(X), torch.tensor(Y), 1e-12)
    u = (torch.tensor(X) - fit["mx"]) @ fit["Wx"]
    v = (torch.tensor(Y) - fit["my"]) @ fit["Wy"]
    c = np.corrcoef(u.numpy().T, v.numpy().T)          # (2k, 2k)
    k = u.shape[1]
    cross = c[:k, k:]
    assert np.allclose(np.diag(cross), fit["corr"].numpy(), atol=1e-8)
    assert np.allclose(cross - np.diag(np.diag(cross)), 0, atol=1e-8)
    assert np.allclose(c[:k, :k], np.eye(k), atol=1e-8)   # whitened within a view


def test_rbf_is_the_kernel_and_nystroem_on_every_point_reproduces_it():
    g = torch.Generator().manual_seed(0)
    A, B = torch.randn(7, 4, generator=g).double(), torch.randn(5, 4, generator=g).double()
    K = rbf(A, B, 1.3)
    for i in range(7):
        for j in range(5):
            assert K[i, j].item() == pytest.approx(
                float(torch.exp(-((A[i] - B[j]) ** 2).sum() / (2 * 1.3 ** 2))), abs=1e-12)
    phi = Nystroem(A, 1.3)(A)
    assert torch.allclose(phi @ phi.T, rbf(A, A, 1.3), atol=1e-8)
    assert median_distance(torch.zeros(3, 2)) == 1.0      # no distinct rows: the fallback


def test_a_cca_network_scores_a_pair_by_the_cosine_of_its_projections():
    X, Y = _views(n=50)
    fit = canonical(torch.tensor(X), torch.tensor(Y > 0, dtype=torch.float64), 1e-2)
    net = CCANet(fit, 3, vocab=5)
    img = net.encode_images((torch.tensor(X[:4]).float(),))
    tok = torch.tensor([[1, 2, 0], [3, 0, 0], [4, 1, 2]])
    txt = net.encode_texts(tok, torch.tensor([2, 1, 3]))
    s = net.similarity(img, txt)
    for i in range(4):
        for j in range(3):
            a, b = img[i], txt[j]
            assert s[i, j].item() == pytest.approx(float(a @ b / (a.norm() * b.norm())),
                                                   abs=1e-6)


@pytest.mark.parametrize("method,opts", [
    ("cca", {}),
    ("kcca", {"landmarks": 100, "widths": [1.0], "regs": [0.01]})])
def test_a_closed_form_method_beats_chance_and_the_loop_trains_nothing(method, opts):
    cfg = HAANConfig.for_dataset("synthetic", method=method, device="cpu", progress=False,
                                 extra=TINY, method_options=opts)
    assert cfg.epochs == 1
    r = train(cfg)
    assert r.test["avg"] > 0.125 + 0.15, r.test     # chance ~ 0.125 on the synthetic data
    assert all(set(h) == {"iteration", "epoch"} for h in r.loss_history)   # no loss
    net = r.model.networks()["S"]
    assert not list(net.parameters())
    chosen = net.chosen
    assert chosen["components"] <= 256 and chosen["val_avg"] == pytest.approx(
        r.val_history[0]["avg"])


@pytest.mark.parametrize("method,opts,words", [
    ("cca", {"regs": [0]}, "positive numbers"),
    ("cca", {"regs": "x"}, "list of numbers"),
    ("cca", {"components": [2.5]}, "whole numbers"),
    ("cca", {"widths": [1.0]}, "unknown option"),
    ("kcca", {"landmarks": 1}, "landmarks must be"),
])
def test_bad_cca_options_are_clear_errors(method, opts, words):
    with pytest.raises(HAANInputError, match=words):
        HAANConfig.for_dataset("synthetic", method=method, method_options=opts)


def test_canonical_refuses_mismatched_views():
    with pytest.raises(HAANInputError, match="same n"):
        canonical(torch.zeros(4, 2), torch.zeros(3, 2))
