"""DCCA (Andrew et al. 2013; issue #12): the nonlinearity against its defining equation,
the objective (eq. 10) against an independent computation of the sum of canonical
correlations, its gradient, the CCA fitted on the outputs, and a run through the loop."""
import numpy as np
import pytest
import torch

from haan_core import HAANConfig, HAANInputError
from haan_core.methods.cca import canonical
from haan_core.methods.dcca import DCCANet, cube_root_activation, total_correlation
from haan_core.train import train

TINY = {"n_train": 200, "n_val": 60, "n_test": 60}


def test_the_nonlinearity_inverts_g_and_has_its_derivative():
    """Section 4.1: s = g^{-1}, g(y) = y^3 / 3 + y; so g(s(x)) = x and s'(x) = 1 / (s^2 + 1)."""
    x = torch.tensor([-1e4, -30.0, -2.0, -0.3, 0.0, 1e-6, 0.7, 5.0, 1e4],
                     dtype=torch.float64, requires_grad=True)
    y = cube_root_activation(x)
    assert torch.allclose(y ** 3 / 3 + y, x, rtol=1e-10, atol=1e-10)
    (grad,) = torch.autograd.grad(y.sum(), x)
    assert torch.allclose(grad, 1 / (y.detach() ** 2 + 1), rtol=1e-8)
    assert torch.equal(cube_root_activation(-x.detach()), -y.detach())   # odd


def _pairs(m=300, o1=5, o2=4, seed=0):
    g = np.random.default_rng(seed)
    z = g.normal(size=(m, 3))
    H1 = z @ g.normal(size=(3, o1)) + 0.7 * g.normal(size=(m, o1))
    H2 = z @ g.normal(size=(3, o2)) + 0.7 * g.normal(size=(m, o2))
    return H1, H2


@pytest.mark.parametrize("r", [1e-4, 0.5])
def test_the_objective_is_the_sum_of_canonical_correlations(r):
    """eq. 10 against numpy: the canonical correlations are the square roots of the
    eigenvalues of S11^-1 S12 S22^-1 S21 (a non-symmetric eigenproblem, solved
    independently of the code's Cholesky route), with the same ridges."""
    H1, H2 = _pairs()
    m = len(H1)
    A, B = H1 - H1.mean(0), H2 - H2.mean(0)
    S11 = A.T @ A / (m - 1) + r * np.eye(A.shape[1])
    S22 = B.T @ B / (m - 1) + r * np.eye(B.shape[1])
    S12 = A.T @ B / (m - 1)
    M = np.linalg.solve(S11, S12) @ np.linalg.solve(S22, S12.T)
    # M is o1 x o1 of rank min(o1, o2): there are min(o1, o2) canonical correlations. The
    # other eigenvalues are 0 up to rounding (+-1e-16, BLAS-dependent), whose square root
    # (1e-8) would decide the last digits, so they are left out
    eig = np.sort(np.linalg.eigvals(M).real)[::-1][:min(H1.shape[1], H2.shape[1])]
    expected = np.sqrt(np.clip(eig, 0, None)).sum()
    got = total_correlation(torch.tensor(H1), torch.tensor(H2), r, r)
    assert got.dtype == torch.float64
    assert float(got) == pytest.approx(expected, rel=1e-9)


def test_perfectly_related_views_reach_the_number_of_components():
    """H2 = H1 A with A invertible: every canonical correlation is 1 (up to the ridge)."""
    H1, _ = _pairs(o1=4)
    A = np.random.default_rng(1).normal(size=(4, 4))
    got = total_correlation(torch.tensor(H1), torch.tensor(H1 @ A), 1e-9, 1e-9)
    assert float(got) == pytest.approx(4.0, abs=1e-5)


def test_the_gradient_of_the_objective_is_exact():
    H1, H2 = _pairs(m=30, o1=3, o2=3)
    a = torch.tensor(H1, requires_grad=True)
    b = torch.tensor(H2, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, y: total_correlation(x, y, 1e-3, 1e-3), (a, b))


@pytest.mark.parametrize("args,words", [
    ((torch.zeros(4, 2), torch.zeros(3, 2)), "same number"),
    ((torch.zeros(1, 2), torch.zeros(1, 2)), "at least 2"),
    ((torch.zeros(4, 2), torch.zeros(4, 2), 0.0), "r1 must be"),
])
def test_bad_objective_input_is_a_clear_error(args, words):
    with pytest.raises(HAANInputError, match=words):
        total_correlation(*args)


def _net(seed=0):
    torch.manual_seed(seed)
    g, bow = torch.randn(50, 6), torch.randint(0, 3, (50, 7)).float()
    return DCCANet(6, 7, (g, bow), hidden=(8,), out_dim=4, components=3), g, bow


def test_evaluation_mode_scores_by_the_cca_of_the_train_outputs():
    """Switching to evaluation fits linear CCA on the train split's outputs; an image is
    then its first ``components`` canonical projections, and a pair's score their cosine."""
    net, g, bow = _net()
    net.eval()
    with torch.no_grad():
        fit = canonical(net.f1(g), net.f2(bow), net.cca_reg)
        img = net.encode_images((g[:5],))
        tokens = torch.tensor([[1, 2, 0], [3, 3, 6]])
        txt = net.encode_texts(tokens, torch.tensor([2, 3]))
    expected_img = ((net.f1(g[:5]).double() - fit["mx"]) @ fit["Wx"][:, :3]).float()
    assert torch.allclose(img, expected_img, atol=1e-6)
    bow2 = torch.zeros(2, 7)
    bow2[0, 1] = bow2[0, 2] = 1
    bow2[1, 3], bow2[1, 6] = 2, 1
    expected_txt = ((net.f2(bow2).double() - fit["my"]) @ fit["Wy"][:, :3]).float()
    assert torch.allclose(txt, expected_txt, atol=1e-6)
    sim = net.similarity(img, txt)
    i, j = 2, 1
    cos = torch.dot(img[i], txt[j]) / (img[i].norm() * txt[j].norm())
    assert float(sim[i, j]) == pytest.approx(float(cos), abs=1e-6)


def test_a_snapshot_carries_the_cca_of_its_own_weights():
    net, g, bow = _net()
    net.eval()
    state = {k: v.clone() for k, v in net.state_dict().items()}
    torch.manual_seed(1)   # other weights, the same train split
    other = DCCANet(6, 7, (g, bow), hidden=(8,), out_dim=4, components=3)
    other.load_state_dict(state)
    with torch.no_grad():
        other.training = False   # evaluation without a refit: the loaded buffers
        assert torch.allclose(other.encode_images((g,)), net.encode_images((g,)))
        other.eval()             # a refit on the same weights and data: the same CCA
        assert torch.allclose(other.encode_images((g,)), net.encode_images((g,)), atol=1e-5)


def test_training_mode_gives_the_raw_outputs_to_the_objective():
    net, g, bow = _net()
    net.train()
    H = net.encode_images((g,))
    assert H.shape == (50, 4) and H.requires_grad
    loss = net.extra_loss(H, net.f2(bow), None, None)
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def test_dcca_trains_in_the_loop_and_beats_chance():
    cfg = HAANConfig.for_dataset("synthetic", method="dcca", device="cpu", progress=False,
                                 extra=TINY, epochs=15, batch_size=100,
                                 method_options={"hidden": [64], "out_dim": 16})
    r = train(cfg)
    assert r.test["avg"] > 0.125 + 0.1, r.test     # chance ~ 0.125 on the synthetic data
    S = [h["S"] for h in r.loss_history]
    assert S[-1] < S[0] < 0        # -corr falls: the correlation grows
    r2 = train(cfg)
    assert r2.test == r.test       # same seed, same numbers


@pytest.mark.parametrize("opts,words", [
    ({"hidden": [0]}, "hidden must be"),
    ({"activation": "tanh"}, "activation must be"),
    ({"r": 0}, "r must be"),
    ({"components": 100}, "components must be"),
    ({"depth": 2}, "unknown option"),
])
def test_bad_dcca_options_are_clear_errors(opts, words):
    with pytest.raises(HAANInputError, match=words):
        HAANConfig.for_dataset("synthetic", method="dcca", method_options=opts)
