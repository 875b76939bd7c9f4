"""DSCMR (Zhen et al. 2019; issue #12): eqs. 3-8 against an explicit loop over pairs, in
Python floats, the split between the score-matrix loss and the network's own terms, and a
run through the training loop."""
import math

import pytest
import torch

from haan_core import HAANConfig, HAANInputError
from haan_core.methods.dscmr import DSCMRNet, dscmr_loss
from haan_core.train import train

TINY = {"n_train": 200, "n_val": 60, "n_test": 60}


def cos(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    return dot / max(math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)), 1e-6)


def nll(A, B, la, lb):
    """eqs. 4-6: 1/n^2 sum_ij log(1 + e^G) - S G, G = cos / 2, S = same label."""
    total = 0.0
    for i, a in enumerate(A):
        for j, b in enumerate(B):
            g = cos(a, b) / 2
            total += math.log(1 + math.exp(g)) - (1.0 if la[i] == lb[j] else 0.0) * g
    return total / (len(A) * len(B))


def norm(v):
    return math.sqrt(sum(x * x for x in v))


def objective_loop(net, U, V, labels, lam, eta):
    """eq. 8 written out: J1 (eq. 3), J2 (eqs. 4-6, three terms), J3 (eq. 7), with the
    released code's per-row norms averaged over the batch."""
    P = net.classifier
    U_, V_ = U.tolist(), V.tolist()
    W, b = P.weight.tolist(), P.bias.tolist()
    C = len(b)

    def predict(u):
        return [sum(w * x for w, x in zip(W[c], u)) + b[c] for c in range(C)]

    def onehot(y):
        return [1.0 if c == y else 0.0 for c in range(C)]
    n = len(U_)
    j1 = sum(norm([p - t for p, t in zip(predict(U_[i]), onehot(labels[i]))]) for i in range(n)) / n \
        + sum(norm([p - t for p, t in zip(predict(V_[i]), onehot(labels[i]))]) for i in range(n)) / n
    j2 = nll(U_, V_, labels, labels) + nll(U_, U_, labels, labels) + nll(V_, V_, labels, labels)
    j3 = sum(norm([u - v for u, v in zip(U_[i], V_[i])]) for i in range(n)) / n
    return j1 + lam * j2 + eta * j3


def _setup(seed=0, n=7):
    torch.manual_seed(seed)
    net = DSCMRNet(5, 9, 3, hidden=6, common=4, lam=0.3, eta=0.7)
    g = torch.randn(n, 5)
    tokens = torch.randint(1, 9, (n, 4))
    lengths = torch.tensor([4, 1, 3, 2, 4, 2, 1][:n])
    labels = torch.tensor([0, 1, 0, 2, 1, 0, 2][:n])
    return net, g, tokens, lengths, labels


def test_the_objective_is_eq_8_written_out():
    net, g, tokens, lengths, labels = _setup()
    U, V = net.encode_images((g,)), net.encode_texts(tokens, lengths)
    got = dscmr_loss(net.similarity(U, V), labels, labels, lam=0.3) + \
        net.extra_loss(U, V, labels, labels)
    expected = objective_loop(net, U, V, labels.tolist(), 0.3, 0.7)
    assert float(got.detach()) == pytest.approx(expected,
                                       rel=1e-5)


def test_the_score_matrix_loss_is_the_image_text_likelihood_term():
    """dscmr_loss = lambda * J_2^{uv} (eqs. 4-6) on the cosine matrix, with N != M."""
    torch.manual_seed(0)
    U, V = torch.randn(4, 3), torch.randn(6, 3)
    il, tl = torch.tensor([0, 1, 1, 2]), torch.tensor([1, 0, 2, 2, 1, 0])
    sim = torch.nn.functional.normalize(U, dim=1) @ torch.nn.functional.normalize(V, dim=1).T
    got = dscmr_loss(sim, il, tl, lam=2.0)
    assert float(got) == pytest.approx(2.0 * nll(U.tolist(), V.tolist(), il.tolist(),
                                                 tl.tolist()), rel=1e-5)


def test_a_same_class_pair_of_different_instances_is_a_positive():
    """S_ij = 1 for every pair sharing a label, not only matched pairs: swapping two
    same-class texts changes nothing; relabelling one to another class does."""
    torch.manual_seed(0)
    sim = torch.rand(4, 4) * 2 - 1
    labels = torch.tensor([0, 0, 1, 1])
    base = dscmr_loss(sim, labels, labels)
    assert torch.allclose(dscmr_loss(sim[:, [1, 0, 2, 3]], labels, labels), base)
    assert not torch.allclose(dscmr_loss(sim, labels, torch.tensor([0, 2, 1, 1])), base)


def test_the_text_network_reads_the_bag_of_words_and_both_share_the_last_layer():
    net, g, tokens, lengths, labels = _setup()
    bow = torch.zeros(len(tokens), 9)
    for i, (row, n) in enumerate(zip(tokens.tolist(), lengths.tolist())):
        for t in row[:n]:
            bow[i, t] += 1
    assert torch.allclose(net.encode_texts(tokens, lengths), net.shared(net.txt(bow)))
    assert torch.allclose(net.encode_images((g,)), net.shared(net.img(g)))


def test_gradients_reach_every_parameter():
    net, g, tokens, lengths, labels = _setup()
    U, V = net.encode_images((g,)), net.encode_texts(tokens, lengths)
    loss = dscmr_loss(net.similarity(U, V), labels, labels) + net.extra_loss(U, V, labels,
                                                                             labels)
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def test_dscmr_trains_in_the_loop_and_beats_chance():
    cfg = HAANConfig.for_dataset("synthetic", method="dscmr", device="cpu", progress=False,
                                 extra=TINY, epochs=20, lr=3e-3, batch_size=50,
                                 method_options={"hidden": 64, "common": 32})
    r = train(cfg)
    assert r.test["avg"] > 0.125 + 0.15, r.test     # chance ~ 0.125 on the synthetic data
    assert r.loss_history[-1]["S"] < r.loss_history[0]["S"]
    assert train(cfg).test == r.test                 # same seed, same numbers


@pytest.mark.parametrize("opts,words", [
    ({"hidden": 0}, "hidden must be"),
    ({"lambda": -1}, "lambda must be"),
    ({"eta": "x"}, "eta must be"),
    ({"depth": 2}, "unknown option"),
])
def test_bad_dscmr_options_are_clear_errors(opts, words):
    with pytest.raises(HAANInputError, match=words):
        HAANConfig.for_dataset("synthetic", method="dscmr", method_options=opts)


def test_extra_loss_refuses_unpaired_batches():
    net, g, tokens, lengths, labels = _setup()
    with pytest.raises(HAANInputError, match="pairs"):
        net.extra_loss(net.encode_images((g[:3],)), net.encode_texts(tokens, lengths),
                       labels[:3], labels)
