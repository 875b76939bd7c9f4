"""mAP (eq. 25), precision@k, PR curves and instance-level Recall@K against explicit loops."""
import pytest
import torch

from haan_core.metrics import (average_precision, chance_map, mean_average_precision,
                               pr_curve, precision_at_k, retrieval_scores)

from haan_core.errors import HAANInputError

from . import reference as ref


def _case(seed, Q=9, G=13, classes=4, decimals=1):
    g = torch.Generator().manual_seed(seed)
    sim = torch.round(torch.rand(Q, G, generator=g) * 10 ** decimals) / 10 ** decimals  # ties
    ql = torch.randint(classes, (Q,), generator=g)
    gl = torch.randint(classes, (G,), generator=g)
    return sim, ql, gl


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("k", [None, 1, 3, 13])
def test_map_equals_loop_with_ties(seed, k):
    sim, ql, gl = _case(seed)
    expected = ref.mean_average_precision(sim.tolist(), ql.tolist(), gl.tolist(), k)
    assert mean_average_precision(sim, ql, gl, k) == pytest.approx(expected, abs=1e-12)


def test_ties_keep_gallery_order():
    sim = torch.zeros(1, 4)                      # everything tied
    gl = torch.tensor([1, 0, 0, 0])
    # stable order: the relevant item (label 0) first appears at rank 2
    assert mean_average_precision(sim, torch.tensor([0]), gl, k=2) == pytest.approx(0.5)
    assert mean_average_precision(sim, torch.tensor([1]), gl, k=2) == pytest.approx(1.0)


def test_ties_rank_in_gallery_order_not_reversed():
    """Tied scores rank in gallery order (a stable sort). The gallery [r, r, n, n, n] is
    not a palindrome, so the two orders differ: in gallery order the relevant items are at
    ranks 1 and 2 (AP 1); reversed they would be at ranks 4 and 5 (AP (1/4 + 2/5) / 2)."""
    q = torch.tensor([0])
    tied = torch.zeros(1, 5)
    gl = torch.tensor([0, 0, 1, 1, 1])
    assert mean_average_precision(tied, q, gl) == pytest.approx(1.0)
    assert mean_average_precision(tied, q, gl.flip(0)) == pytest.approx((1 / 4 + 2 / 5) / 2)
    sim = torch.tensor([[0.0, 0.0, 0.9, 0.0, 0.0]])          # item 2 first, then 0, 1, 3, 4
    gl = torch.tensor([1, 0, 1, 0, 1])
    # ranking: 2 (n), 0 (n), 1 (r), 3 (r), 4 (n): AP = (1/3 + 2/4) / 2
    assert mean_average_precision(sim, q, gl) == pytest.approx((1 / 3 + 2 / 4) / 2)
    # precision@k and the PR curve break ties the same way
    assert precision_at_k(tied, q, torch.tensor([0, 0, 1, 1, 1]), 2) == pytest.approx(1.0)


def test_query_without_relevant_items_scores_zero():
    sim = torch.rand(2, 5)
    aps = average_precision(sim, torch.tensor([7, 0]), torch.tensor([0, 1, 0, 1, 2]))
    assert float(aps[0]) == 0.0 and float(aps[1]) > 0


def test_perfect_and_worst_rankings():
    labels = torch.tensor([0, 0, 1, 1])
    perfect = (labels[:, None] == labels[None, :]).float()
    assert retrieval_scores(perfect, labels, labels)["avg"] == pytest.approx(1.0)
    # relevant items last: AP = mean of 1/3, 2/4
    assert mean_average_precision(1 - perfect, labels, labels) == pytest.approx((1/3 + 2/4) / 2)


def test_precision_at_k_equals_loop():
    sim, ql, gl = _case(7, decimals=3)
    for k in (1, 4, 13):
        expected = 0.0
        for row, q in zip(sim.tolist(), ql.tolist()):
            order = sorted(range(len(row)), key=lambda j: -row[j])[:k]
            expected += sum(gl[j] == q for j in order) / k
        assert precision_at_k(sim, ql, gl, k) == pytest.approx(expected / len(ql))


def test_pr_curve_equals_loop():
    sim, ql, gl = _case(3, decimals=3)
    levels, prec = pr_curve(sim, ql, gl, recall_levels=[0.0, 0.25, 0.5, 0.75, 1.0])
    expected = torch.tensor(ref.pr_curve(sim.tolist(), ql.tolist(), gl.tolist(),
                                         levels.tolist()), dtype=torch.float64)
    torch.testing.assert_close(prec, expected)
    assert float(prec[-1]) <= float(prec[0])


def test_chance_level_matches_class_balance():
    labels = torch.arange(200) % 10
    assert 0.08 < chance_map(labels, labels) < 0.16


# ---------------------------------------------------------------- Recall@K (instance level)


def test_recall_at_k_equals_counting_loop_with_ties():
    from haan_core.metrics import recall_at_k, recall_scores
    g = torch.Generator().manual_seed(3)
    for trial in range(5):
        # few distinct values: many ties, broken by gallery order as in the mAP
        sim = torch.randint(0, 4, (12, 12), generator=g).double()
        got = recall_at_k(sim, ks=(1, 2, 5, 12))
        for k in (1, 2, 5, 12):
            assert got[k] == ref.recall_at_k(sim.tolist(), k), (trial, k)
        both = recall_scores(sim, ks=(1, 5))
        assert both["t2i"][5] == ref.recall_at_k(sim.T.tolist(), 5)
        assert both["i2t"] == recall_at_k(sim, ks=(1, 5))


def test_recall_at_k_of_known_rankings():
    from haan_core.metrics import recall_at_k
    eye = torch.eye(6)
    assert recall_at_k(eye) == {1: 1.0, 5: 1.0, 10: 1.0}          # own item first
    worst = 1 - torch.eye(6)                                     # own item last of 6
    assert recall_at_k(worst, ks=(1, 5, 6)) == {1: 0.0, 5: 0.0, 6: 1.0}
    # a same-class item ranked above the own item is a miss at k = 1: classes play no part
    sim = torch.tensor([[0.5, 0.9], [0.1, 0.2]])
    assert recall_at_k(sim, ks=(1, 2)) == {1: 0.5, 2: 1.0}


def test_recall_at_k_bad_input_is_a_clear_error():
    from haan_core.metrics import recall_at_k
    with pytest.raises(HAANInputError, match="square"):
        recall_at_k(torch.rand(3, 4))
    with pytest.raises(HAANInputError, match="k >= 1"):
        recall_at_k(torch.rand(3, 3), ks=(0,))
