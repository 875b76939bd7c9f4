"""AWL (eqs. 16-24) and TRI against explicit loops; eq. 24 against autograd."""
import itertools

import pytest
import torch

from haan_core.losses import awl, awl_grad, mine_pairs, pair_weights, triplet

from . import reference as ref

SWITCHES = list(itertools.product([True, False], [True, False], ["both", "i2t", "t2i"]))


def _batch(seed, B=8, classes=3):
    g = torch.Generator().manual_seed(seed)
    sim = torch.rand(B, B, generator=g, dtype=torch.float64) * 2 - 1
    img = torch.randint(classes, (B,), generator=g)
    txt = torch.randint(classes, (B,), generator=g)
    return sim, img, txt


# label layouts that produce anchors with empty mined sets
EDGE_LABELS = {
    "random": None,
    "one class": ([0] * 6, [0] * 6),                   # no anchor has a negative
    "disjoint": ([0, 0, 1, 1, 2, 2], [3, 3, 4, 4, 5, 5]),  # no anchor has a positive
    "lonely anchors": ([0, 0, 0, 1, 2, 7], [0, 0, 1, 1, 1, 9]),
}


@pytest.mark.parametrize("mining,weighting,directions", SWITCHES)
@pytest.mark.parametrize("layout", list(EDGE_LABELS))
@pytest.mark.parametrize("rho", [0.6, 0.05])
def test_awl_equals_loop(mining, weighting, directions, layout, rho):
    sim, img, txt = _batch(seed=len(layout) + int(rho * 100), B=6)
    if EDGE_LABELS[layout] is not None:
        img, txt = (torch.tensor(x) for x in EDGE_LABELS[layout])
    got = awl(sim, img, txt, rho=rho, mining=mining, weighting=weighting,
              directions=directions)
    expected = ref.awl(sim.tolist(), img.tolist(), txt.tolist(), rho, mining, weighting,
                       directions)
    assert float(got) == pytest.approx(expected, rel=1e-10, abs=1e-12)


def test_mining_is_strict_on_the_boundary():
    """Eqs. 16-17 use strict inequalities. Dyadic numbers make the boundaries exact: a
    positive exactly at max-negative + rho, and a negative exactly at min-positive - rho,
    are NOT mined; a hair inside, they are."""
    rho = 0.5
    # anchor 0: positives (cols 0, 1), negatives (cols 2, 3)
    # max negative = 0.25 -> positive boundary 0.75; min positive = 0.5 -> negative boundary 0.0
    sim = torch.tensor([[0.75, 0.5, 0.25, 0.0]], dtype=torch.float64)
    pos = torch.tensor([[True, True, False, False]])
    keep_pos, keep_neg = mine_pairs(sim, pos, rho=rho)
    assert keep_pos.tolist() == [[False, True, False, False]]    # 0.75 < 0.75 is false
    assert keep_neg.tolist() == [[False, False, True, False]]    # 0.0 > 0.0 is false
    inside = sim + torch.tensor([[-2.0 ** -20, 0, 0, 2.0 ** -20]], dtype=torch.float64)
    keep_pos, keep_neg = mine_pairs(inside, pos, rho=rho)
    assert keep_pos.tolist() == [[True, True, False, False]]
    assert keep_neg.tolist() == [[False, False, True, True]]
    # and the loss agrees with the loop on the boundary, in both directions
    B = torch.tensor([[0.75, 0.5, 0.25, 0.0], [0.25, 0.75, 0.5, 0.0],
                      [0.5, 0.0, 0.75, 0.25], [0.0, 0.25, 0.5, 0.75]], dtype=torch.float64)
    labels = torch.tensor([0, 0, 1, 1])
    for weighting in (True, False):
        got = awl(B, labels, labels, rho=rho, mining=True, weighting=weighting)
        expected = ref.awl(B.tolist(), labels.tolist(), labels.tolist(), rho, True, weighting,
                           "both")
        assert float(got) == pytest.approx(expected, rel=1e-12, abs=1e-14)


@pytest.mark.parametrize("mining,weighting,directions", SWITCHES)
@pytest.mark.parametrize("shape", [(4, 9), (9, 4)])
def test_awl_and_triplet_of_a_non_square_batch_equal_loop(mining, weighting, directions,
                                                          shape):
    """B_img != B_txt: each direction averages over its own anchors (images for the
    image-anchor term, texts for the text-anchor term)."""
    g = torch.Generator().manual_seed(shape[0])
    sim = torch.rand(*shape, generator=g, dtype=torch.float64) * 2 - 1
    img = torch.randint(3, (shape[0],), generator=g)
    txt = torch.randint(3, (shape[1],), generator=g)
    got = awl(sim, img, txt, rho=0.6, mining=mining, weighting=weighting,
              directions=directions)
    expected = ref.awl(sim.tolist(), img.tolist(), txt.tolist(), 0.6, mining, weighting,
                       directions)
    assert float(got) == pytest.approx(expected, rel=1e-10, abs=1e-12)
    sim.requires_grad_(True)
    awl(sim, img, txt, mining=mining, weighting=weighting, directions=directions).backward()
    torch.testing.assert_close(awl_grad(sim, img, txt, mining=mining, weighting=weighting,
                                        directions=directions), sim.grad,
                               rtol=1e-12, atol=1e-14)
    for hardest in (True, False):
        got = triplet(sim, img, txt, margin=0.2, hardest=hardest, directions=directions)
        expected = ref.triplet(sim.tolist(), img.tolist(), txt.tolist(), 0.2, hardest,
                               directions)
        assert float(got.detach()) == pytest.approx(expected, rel=1e-10, abs=1e-12)


def test_small_margin_really_empties_mined_sets():
    """With a tiny rho on well-separated scores, some anchors keep nothing: the loop and
    the code must still agree (covered above) and the masks must show the empty sets."""
    sim = torch.tensor([[0.9, -0.5, -0.6], [0.8, 0.1, -0.9], [-0.2, 0.3, 0.95]],
                       dtype=torch.float64)
    pos = torch.eye(3, dtype=torch.bool)
    keep_pos, keep_neg = mine_pairs(sim, pos, rho=0.05)
    assert not keep_pos[0].any() and not keep_neg[0].any()  # easy anchor: nothing to learn
    assert keep_pos[1, 1] and keep_neg[1, 0]                  # hard anchor: both kept


@pytest.mark.parametrize("mining,weighting,directions", SWITCHES)
def test_eq24_closed_form_gradient_equals_autograd(mining, weighting, directions):
    sim, img, txt = _batch(seed=11, B=10)
    sim.requires_grad_(True)
    awl(sim, img, txt, mining=mining, weighting=weighting, directions=directions).backward()
    closed = awl_grad(sim, img, txt, mining=mining, weighting=weighting,
                      directions=directions)
    torch.testing.assert_close(closed, sim.grad, rtol=1e-12, atol=1e-14)


def test_gradient_is_finite_with_empty_sets():
    sim = torch.rand(4, 4, dtype=torch.float64, requires_grad=True)
    labels = torch.zeros(4, dtype=torch.long)        # no negatives anywhere
    awl(sim, labels, labels).backward()
    assert torch.isfinite(sim.grad).all() and (sim.grad == 0).all()


def test_pair_weights_favour_hard_pairs():
    """Eqs. 18-19: lower-similarity positives and higher-similarity negatives weigh more."""
    sim = torch.tensor([[0.9, 0.2, 0.5, -0.3]], dtype=torch.float64)
    keep_pos = torch.tensor([[True, True, False, False]])
    keep_neg = ~keep_pos
    w_pos, w_neg = pair_weights(sim, keep_pos, keep_neg)
    assert w_pos[0, 1] > w_pos[0, 0] and w_neg[0, 2] > w_neg[0, 3]
    assert float(w_pos.sum()) == pytest.approx(1) and float(w_neg.sum()) == pytest.approx(1)


@pytest.mark.parametrize("hardest", [True, False])
@pytest.mark.parametrize("directions", ["both", "i2t", "t2i"])
def test_triplet_equals_loop(hardest, directions):
    sim, img, txt = _batch(seed=5, B=7)
    got = triplet(sim, img, txt, margin=0.2, hardest=hardest, directions=directions)
    expected = ref.triplet(sim.tolist(), img.tolist(), txt.tolist(), 0.2, hardest, directions)
    assert float(got) == pytest.approx(expected, rel=1e-10, abs=1e-12)


def test_awl_decreases_when_positives_get_closer():
    sim, img, txt = _batch(seed=2, B=8)
    pos = img[:, None] == txt[None, :]
    better = torch.where(pos, sim + 0.3, sim - 0.3)
    assert awl(better, img, txt, mining=False) < awl(sim, img, txt, mining=False)
