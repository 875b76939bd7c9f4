"""The seven variants of Table 5 select the right modules and loss; eq. 7 fuses; eq. 9 encodes.

The expectations are written here from the paper, not read from haan_core.config, so a
swapped or mistyped row of the code's variant table fails.
"""
import pytest
import torch

from haan_core import HAANConfig
from haan_core.datasets import make_synthetic
from haan_core.losses import awl, triplet
from haan_core.models import TextEncoder, fuse
from haan_core.train import build_model, make_loss, train

# Table 5: (GCM, LCM, loss). "plain" is the base loss of the variants with neither AWL nor
# TRI (ambiguity log: AWL with both stages off); ("awl", stage 1, stage 2).
TABLE5 = {
    "HAAN-GCM": (True, False, "plain"),
    "HAAN-LCM": (False, True, "plain"),
    "HAAN-GCM-LCM": (True, True, "plain"),
    "HAAN-GCM-LCM-TRI": (True, True, "tri"),
    "HAAN-GCM-LCM-AWL(Stage1)": (True, True, ("awl", True, False)),
    "HAAN-GCM-LCM-AWL(Stage2)": (True, True, ("awl", False, True)),
    "HAAN": (True, True, ("awl", True, True)),
}


@pytest.fixture(scope="module")
def tiny_data():
    return make_synthetic(seed=0, n_train=40, n_val=20, n_test=20)


def _batch(seed=3, shape=(7, 9)):
    g = torch.Generator().manual_seed(seed)
    sim = torch.rand(*shape, generator=g, dtype=torch.float64) * 2 - 1
    return sim, torch.randint(3, (shape[0],), generator=g), torch.randint(3, (shape[1],),
                                                                           generator=g)


def _expected_loss(kind, cfg, sim, il, tl):
    if kind == "plain":
        return awl(sim, il, tl, rho=cfg.rho, mining=False, weighting=False)
    if kind == "tri":
        return triplet(sim, il, tl, margin=cfg.tri_margin, hardest=cfg.tri_hardest)
    _, stage1, stage2 = kind
    return awl(sim, il, tl, rho=cfg.rho, mining=stage1, weighting=stage2)


@pytest.mark.parametrize("name", list(TABLE5))
def test_variant_selects_its_modules_and_loss(name, tiny_data):
    gcm, lcm, kind = TABLE5[name]
    cfg = HAANConfig.for_dataset("synthetic", variant=name, rho=0.3, tri_margin=0.35)
    model = build_model(cfg, tiny_data)
    assert (model.gan is not None, model.lan is not None) == (gcm, lcm)
    assert set(model.networks()) == {k for k, on in (("C", gcm), ("F", lcm)) if on}
    loss = make_loss(cfg)
    for seed in range(3):   # several batches: a loss that agrees by accident fails on one
        sim, il, tl = _batch(seed)
        assert float(loss(sim, il, tl)) == pytest.approx(
            float(_expected_loss(kind, cfg, sim, il, tl)), rel=1e-12, abs=1e-14)
    # and no other row's loss gives the same numbers on every batch
    for other, (_, _, other_kind) in TABLE5.items():
        if other_kind != kind:
            assert any(float(loss(*_batch(s))) != pytest.approx(
                float(_expected_loss(other_kind, cfg, *_batch(s)))) for s in range(3)), other


def test_base_loss_tri_changes_only_the_variants_without_awl_or_tri():
    sim, il, tl = _batch(5)
    for name, (_, _, kind) in TABLE5.items():
        cfg = HAANConfig.for_dataset("synthetic", variant=name, base_loss="tri")
        expected = _expected_loss("tri" if kind == "plain" else kind, cfg, sim, il, tl)
        assert float(make_loss(cfg)(sim, il, tl)) == pytest.approx(float(expected), rel=1e-12)


def test_fuse_is_eq7():
    g = torch.Generator().manual_seed(0)
    C, F = torch.rand(3, 4, generator=g), torch.rand(3, 4, generator=g)
    out = fuse(C, F, 0.25, 2.0)
    for p in range(3):
        for q in range(4):
            assert float(out[p, q]) == pytest.approx(0.25 * float(C[p, q]) + 2.0 * float(F[p, q]))
    assert torch.equal(fuse(C, None, 0.25, 2.0), 0.25 * C)
    assert torch.equal(fuse(None, F, 0.25, 2.0), 2.0 * F)
    with pytest.raises(ValueError):
        fuse(None, None)


def test_training_tests_the_eq7_fusion_with_its_weights():
    """The fused test matrix of a run is upsilon1 * L^C + upsilon2 * L^F of its two networks,
    and the reported scores are those of the fused matrix."""
    from haan_core.metrics import retrieval_scores
    cfg = HAANConfig.for_dataset("synthetic", epochs=1, embed_dim=16, word_dim=8,
                                 upsilon1=0.3, upsilon2=1.7, progress=False, device="cpu",
                                 extra={"n_train": 60, "n_val": 30, "n_test": 30})
    r = train(cfg)
    sims = r.test_eval["sims"]
    torch.testing.assert_close(sims["fused"], 0.3 * sims["C"] + 1.7 * sims["F"])
    labels = r.test_eval["img_labels"]
    assert r.test == pytest.approx(retrieval_scores(sims["fused"], labels, labels))


def _gru_by_hand(gru, x, reverse):
    """PyTorch's GRU cell, stepped one word at a time from h = 0 (float64)."""
    sfx = "_reverse" if reverse else ""
    W_i, W_h = getattr(gru, f"weight_ih_l0{sfx}"), getattr(gru, f"weight_hh_l0{sfx}")
    b_i, b_h = getattr(gru, f"bias_ih_l0{sfx}"), getattr(gru, f"bias_hh_l0{sfx}")
    H = W_h.shape[1]
    h = torch.zeros(H, dtype=torch.float64)
    out = [None] * len(x)
    steps = range(len(x) - 1, -1, -1) if reverse else range(len(x))
    for t in steps:
        gi, gh = W_i @ x[t] + b_i, W_h @ h + b_h
        r = torch.sigmoid(gi[:H] + gh[:H])
        z = torch.sigmoid(gi[H:2 * H] + gh[H:2 * H])
        n = torch.tanh(gi[2 * H:] + r * gh[2 * H:])
        h = (1 - z) * n + z * h
        out[t] = h
    return torch.stack(out)


def test_eq9_word_and_text_vectors_against_a_gru_stepped_by_hand():
    torch.manual_seed(0)
    enc = TextEncoder(vocab_size=12, word_dim=5, embed_dim=4).double()
    tokens = torch.tensor([[3, 7, 2, 0, 0], [1, 4, 9, 11, 6], [8, 0, 0, 0, 0]])
    lengths = torch.tensor([3, 5, 1])
    words = enc.words(tokens, lengths)
    text = enc.text_vector(tokens, lengths)
    with torch.no_grad():
        for q in range(3):
            x = enc.embed.weight[tokens[q, :lengths[q]]]       # real words only
            fwd = _gru_by_hand(enc.gru, x, reverse=False)
            bwd = _gru_by_hand(enc.gru, x, reverse=True)       # starts at the last real word
            m = (fwd + bwd) / 2                                # a word: mean of both states
            torch.testing.assert_close(words[q, :lengths[q]], m, rtol=1e-10, atol=1e-12)
            assert (words[q, lengths[q]:] == 0).all()
            torch.testing.assert_close(text[q], m.mean(0), rtol=1e-10, atol=1e-12)
