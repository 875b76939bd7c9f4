"""Liu et al.'s networks (Frameworks I and II) and their options, against explicit loops."""
import json
import math

import pytest
import torch

from haan_core import HAANInputError
from haan_core.cli import main
from haan_core.config import HAANConfig
from haan_core.methods.liu import (RBM, LiuNet, bag_of_words, method_options,
                                   multi_margin_from_distances, multi_margin_triplet)


def sig(x):
    return 1 / (1 + math.exp(-x))


def loop_cd1(rbm, v0, h0):
    """CD-1 of one RBM, one sample and one weight at a time, in Python floats."""
    W, a, b = rbm.W.tolist(), rbm.a.tolist(), rbm.b.tolist()
    nv, nh = len(a), len(b)
    dW = [[0.0] * nh for _ in range(nv)]
    da, db = [0.0] * nv, [0.0] * nh
    n = len(v0)
    for v, h in zip(v0.tolist(), h0.tolist()):
        D = sum(v) if rbm.visible == "softmax" else 1.0
        scale = D                                       # hidden bias scaled by length (RS)
        ph0 = [sig(scale * b[j] + sum(v[i] * W[i][j] for i in range(nv))) for j in range(nh)]
        x = [a[i] + sum(W[i][j] * h[j] for j in range(nh)) for i in range(nv)]
        if rbm.visible == "gaussian":
            v1 = x
        elif rbm.visible == "binary":
            v1 = [sig(t) for t in x]
        else:
            z = sum(math.exp(t) for t in x)
            v1 = [D * math.exp(t) / z for t in x]
        ph1 = [sig(scale * b[j] + sum(v1[i] * W[i][j] for i in range(nv))) for j in range(nh)]
        for i in range(nv):
            da[i] += (v[i] - v1[i]) / n
            for j in range(nh):
                dW[i][j] += (v[i] * ph0[j] - v1[i] * ph1[j]) / n
        for j in range(nh):
            db[j] += (scale if rbm.visible == "softmax" else 1.0) * (ph0[j] - ph1[j]) / n
    return dW, da, db


@pytest.mark.parametrize("visible", ["gaussian", "binary", "softmax"])
def test_cd1_gradients_match_a_loop(visible):
    torch.manual_seed(0)
    rbm = RBM(5, 4, visible).double()
    with torch.no_grad():
        rbm.W.normal_(0, 0.5)
        rbm.a.normal_()
        rbm.b.normal_()
    if visible == "softmax":        # word counts of documents of different lengths
        v0 = torch.randint(0, 3, (6, 5)).double()
    elif visible == "binary":
        v0 = torch.bernoulli(torch.full((6, 5), 0.4)).double()
    else:
        v0 = torch.randn(6, 5, dtype=torch.float64)
    h0 = torch.bernoulli(torch.full((6, 4), 0.5)).double()
    got = rbm.cd1_gradients(v0, h0)
    want = loop_cd1(rbm, v0, h0)
    for g, w in zip(got, want):
        assert torch.allclose(g, torch.tensor(w, dtype=torch.float64), atol=1e-10)


def test_replicated_softmax_scales_the_hidden_bias_by_the_length():
    rbm = RBM(3, 2, "softmax").double()
    with torch.no_grad():
        rbm.b.fill_(1.0)
        rbm.W.zero_()
    v = torch.tensor([[1.0, 0, 0], [2.0, 1, 1]], dtype=torch.float64)   # lengths 1 and 4
    assert torch.allclose(rbm.hidden_prob(v)[:, 0],
                          torch.tensor([sig(1.0), sig(4.0)], dtype=torch.float64))
    # and its reconstruction keeps each document's length
    h = torch.ones(2, 2, dtype=torch.float64)
    assert torch.allclose(rbm.visible_mean(h, v.sum(1, keepdim=True)).sum(1),
                          torch.tensor([1.0, 4.0], dtype=torch.float64))


def test_rbm_training_lowers_its_reconstruction_error():
    g = torch.Generator().manual_seed(0)
    proto = torch.bernoulli(torch.full((4, 20), 0.5), generator=g)
    data = proto[torch.randint(0, 4, (400,), generator=g)]
    rbm = RBM(20, 8, "binary")
    errors = rbm.fit(data, epochs=20, lr=0.2, batch=50, generator=g)
    assert errors[-1] < 0.8 * errors[0], errors


def test_bag_of_words_matches_a_loop():
    tokens = torch.tensor([[3, 1, 3, 0], [2, 2, 0, 0], [1, 4, 4, 4]])
    lengths = torch.tensor([3, 2, 4])
    bow = bag_of_words(tokens, lengths, 5)
    for r in range(3):
        want = [0.0] * 5
        for t in tokens[r, : lengths[r]].tolist():
            if t:
                want[t] += 1
        assert bow[r].tolist() == want


def test_the_loss_on_distances_is_the_pinned_loss():
    g = torch.Generator().manual_seed(1)
    img, txt = torch.randn(8, 4, generator=g), torch.randn(8, 4, generator=g)
    li, lt = torch.randint(0, 3, (8,), generator=g), torch.randint(0, 3, (8,), generator=g)
    D = torch.cdist(img, txt).pow(2)
    assert torch.allclose(multi_margin_from_distances(D, li, lt, (0.5, 1.0), (0.4,)),
                          multi_margin_triplet(img, txt, li, lt, (0.5, 1.0), (0.4,)))


def test_liunet_scores_are_minus_squared_distances():
    net = LiuNet(6, 6, 7, 3, embed_dim=16, framework1=False)
    img, txt = torch.randn(4, 16), torch.randn(5, 16)
    sim = net.similarity(img, txt)
    for p in range(4):
        for q in range(5):
            assert math.isclose(float(sim[p, q]), -float(((img[p] - txt[q]) ** 2).sum()),
                                rel_tol=1e-4, abs_tol=1e-4)


@pytest.mark.parametrize("opts, words", [
    ({"margin": [1, 2]}, "unknown option"),
    ({"margins": [2, 1], "breaks": [0.5]}, "ascending"),
    ({"breaks": [0.2, 1.0]}, "inside (0, 1)"),
    ({"framework1": "dbm"}, "framework1"),
    ({"lambda1": 0}, "lambda1"),
])
def test_bad_options_are_clear_errors(opts, words):
    with pytest.raises(HAANInputError, match=words.replace("(", r"\(").replace(")", r"\)")):
        HAANConfig.for_dataset("synthetic", method="liu", method_options=opts)


def test_options_a_method_does_not_have_are_refused():
    with pytest.raises(HAANInputError, match=r"unknown option\(s\) \['margins'\] for "
                                             r"method 'shan'; known: \['warmup_epochs'\]"):
        HAANConfig.for_dataset("synthetic", method="shan", method_options={"margins": [1]})
    with pytest.raises(HAANInputError, match="HAAN has none"):
        HAANConfig.for_dataset("synthetic", method_options={"margins": [1]})


def test_liu_recipe_lies_over_the_dataset_and_flags_over_it():
    cfg = HAANConfig.for_dataset("corel5k", method="liu")
    assert (cfg.batch_size, cfg.lr, cfg.epochs) == (80, 1e-3, 176)   # 10,000 iterations
    assert HAANConfig.for_dataset("corel5k", method="liu", batch_size=50).batch_size == 50
    assert HAANConfig.for_dataset("corel5k", method="liu", epochs=3).epochs == 3
    assert HAANConfig.for_dataset("pascal", method="liu").epochs == 30   # Pascal's own E
    assert HAANConfig.for_dataset("corel5k").batch_size == 100   # HAAN keeps its own
    assert method_options(cfg)["margins"] == (7.0, 7.5, 8.0)


@pytest.mark.parametrize("dataset, margins", [("corel5k", (7.0, 7.5, 8.0)),
                                              ("pascal", (1.0, 3.0, 7.0)),
                                              ("wiki", (7.0, 7.5, 8.0)),
                                              ("synthetic", (7.0, 7.5, 8.0))])
def test_each_dataset_takes_liu_et_als_best_margin_set_unless_one_is_given(dataset, margins):
    cfg = HAANConfig.for_dataset(dataset, method="liu")
    assert method_options(cfg)["margins"] == margins
    given = HAANConfig.for_dataset(dataset, method="liu",
                                   method_options={"margins": [0.1, 0.5, 0.7]})
    assert method_options(given)["margins"] == [0.1, 0.5, 0.7]



@pytest.mark.parametrize("framework1", ["concat", "rbm"])
def test_liu_trains_from_the_command_line(tmp_path, framework1):
    out = tmp_path / "r.json"
    rc = main(["train", "--method", "liu", "--dataset", "synthetic", "--epochs", "1",
               "--embed-dim", "32", "--word-dim", "16", "--device", "cpu",
               "--method-option", f"framework1={framework1}",
               "--method-option", "rbm_epochs=1", "--method-option", "mlp_epochs=1",
               "--out", str(out)])
    assert rc in (0, None)
    r = json.loads(out.read_text())
    assert r["method"] == "liu"
    assert {"i2t", "t2i", "avg", "val_history", "provenance"} <= set(r)
    assert r["provenance"]["config"]["method_options"]["framework1"] == framework1


@pytest.mark.parametrize("framework1", ["concat", "rbm"])
def test_a_trained_liu_network_loads_into_a_fresh_one_and_scores_the_same(framework1):
    """Framework I's standardisations are buffers from the start, so a checkpoint holds
    them and a network built without fitting takes them back."""
    from haan_core.datasets import load_dataset
    from haan_core.methods import build_method
    from haan_core.methods.liu import LiuNet
    cfg = HAANConfig.for_dataset("synthetic", method="liu", embed_dim=32, word_dim=16,
                                 device="cpu", progress=False,
                                 extra={"n_train": 120, "n_val": 20, "n_test": 30},
                                 method_options={"framework1": framework1, "rbm_epochs": 1,
                                                 "mlp_epochs": 1})
    data = load_dataset(cfg)
    net = build_method(cfg, data).net
    fresh = LiuNet(data.feat_dim, data.patch_dim, len(data.vocab),
                   int(data.labels.max()) + 1, embed_dim=32, framework1=framework1 == "rbm")
    fresh.load_state_dict(net.state_dict())   # strict: the same keys and shapes
    b = data.batch(data.splits["test"], "cpu")

    def scores(n):
        img = n.encode_images((b["global"], b["patches"]))
        return n.similarity(img, n.encode_texts(b["tokens"], b["lengths"]))
    assert torch.equal(scores(net), scores(fresh))


def test_liu_beats_chance_on_the_synthetic_default():
    from haan_core.train import train
    r = train(HAANConfig.for_dataset("synthetic", method="liu", epochs=10, embed_dim=128,
                                     device="cpu", progress=False, seed=0))
    assert r.test["avg"] > 0.125 + 0.25, r.test   # 10 balanced classes: chance ~ 0.125
