"""Every public function of similarity.py, losses.py and metrics.py names the argument that is
wrong and what is wrong with it; and the functions' defaults are the paper's values.

Table-driven: each row calls a function with one bad argument and gives the start of the
message it must raise. (Mutation testing showed that nothing checked which argument an
error names, nor the defaults.)
"""
import math
import re

import pytest
import torch

from haan_core.errors import HAANInputError
from haan_core.losses import awl, awl_grad, mine_pairs, triplet
from haan_core.metrics import (average_precision, chance_map, mean_average_precision,
                               pr_curve, precision_at_k, retrieval_scores)
from haan_core.similarity import EPS, gcm, lcm, lcm_attention

from . import reference as ref

R = torch.rand
L3 = torch.zeros(3, dtype=torch.long)
L4 = torch.zeros(4, dtype=torch.long)
NAN = torch.tensor([[0.1, float("nan"), 0.2]] * 3)
P, W, LEN = R(2, 9, 4), R(3, 5, 4), torch.tensor([1, 2, 5])

CASES = {
    # GCM (eq. 10)
    "gcm img not a tensor": (lambda: gcm([[1.0]], R(2, 4)), "img must be a torch.Tensor"),
    "gcm txt not a tensor": (lambda: gcm(R(2, 4), [[1.0]]), "txt must be a torch.Tensor"),
    "gcm img 3-d": (lambda: gcm(R(2, 4, 1), R(2, 4)), "img must have 2 dimensions"),
    "gcm txt 3-d": (lambda: gcm(R(2, 4), R(2, 4, 1)), "txt must have 2 dimensions"),
    "gcm img integer": (lambda: gcm(torch.ones(2, 4, dtype=torch.long), R(2, 4)),
                        "img must be a float tensor"),
    "gcm txt NaN": (lambda: gcm(R(3, 3), NAN), "txt contains NaN"),
    "gcm img empty": (lambda: gcm(R(0, 4), R(2, 4)), "img is empty (size 0 along dimension 0)"),
    "gcm txt empty": (lambda: gcm(R(2, 4), R(0, 4)), "txt is empty (size 0 along dimension 0)"),
    "gcm widths": (lambda: gcm(R(2, 4), R(2, 5)),
                   "img and txt must share the embedding width: got 4 and 5"),
    # LCM (eqs. 11-15) and its attention (eqs. 11-13): the same checks
    **{f"{name} {what}": (lambda f=f, a=a: f(*a), msg)
       for name, f in (("lcm", lcm), ("lcm_attention", lcm_attention))
       for what, a, msg in (
           ("patches 2-d", (R(2, 4), W, LEN), "patches must have 3 dimensions"),
           ("words 2-d", (P, R(3, 4), LEN), "words must have 3 dimensions"),
           ("patches integer", (torch.ones(2, 9, 4, dtype=torch.long), W, LEN),
            "patches must be a float tensor"),
           ("words NaN", (P, torch.full((3, 5, 4), float("nan")), LEN), "words contains NaN"),
           ("patches empty", (R(0, 9, 4), W, LEN),
            "patches is empty (size 0 along dimension 0)"),
           ("words empty", (P, R(0, 5, 4), torch.tensor([], dtype=torch.long)),
            "words is empty (size 0 along dimension 0)"),
           ("widths", (P, R(3, 5, 6), LEN),
            "patches and words must share the embedding width: got 4 and 6"),
           ("lengths a list", (P, W, [1, 2, 5]),
            "lengths must be a 1-d tensor with one entry per text (3), got list"),
           ("lengths 2-d", (P, W, LEN[None]),
            "lengths must be a 1-d tensor with one entry per text (3), got torch.Size([1, 3])"),
           ("lengths too short", (P, W, LEN[:2]),
            "lengths must be a 1-d tensor with one entry per text (3), got torch.Size([2])"),
           ("float lengths", (P, W, torch.tensor([1.0, 2.5, 5.0])),
            "lengths must hold integer word counts, got dtype torch.float32"),
           ("a zero length", (P, W, torch.tensor([1, 0, 5])),
            "every length must lie in 1..5 (the padded text length); got min 0, max 5"),
           ("a length too long", (P, W, torch.tensor([1, 6, 5])),
            "every length must lie in 1..5 (the padded text length); got min 1, max 6"),
       )},
    # AWL (eqs. 16-24) and TRI: the similarity matrix and the labels
    **{f"{name} {what}": (lambda f=f, a=a: f(*a), msg)
       for name, f in (("awl", awl), ("awl_grad", awl_grad), ("triplet", triplet))
       for what, a, msg in (
           ("sim 1-d", (R(3), L3, L3), "sim must have 2 dimensions"),
           ("sim NaN", (NAN, L3, L3), "sim contains NaN"),
           ("sim without rows", (R(0, 3), L3[:0], L3), "sim is empty (size 0 along dimension 0)"),
           ("sim without columns", (R(3, 0), L3, L3[:0]),
            "sim is empty (size 0 along dimension 1)"),
           ("img_labels short", (R(3, 4), L4, L4), "img_labels has 4 entries but there are 3"),
           ("txt_labels short", (R(3, 4), L3, L3), "txt_labels has 3 entries but there are 4"),
           ("img_labels float", (R(3, 3), L3.float(), L3), "img_labels must hold integer class ids"),
           ("txt_labels 2-d", (R(3, 3), L3, L3[None]), "txt_labels must be 1-d"),
           ("txt_labels a list", (R(3, 3), L3, [0, 0, 0]), "txt_labels must be a torch.Tensor"),
       )},
    "awl directions": (lambda: awl(R(3, 3), L3, L3, directions="up"),
                       "directions must be one of ('both', 'i2t', 't2i'), got 'up'"),
    "awl_grad directions": (lambda: awl_grad(R(3, 3), L3, L3, directions="up"),
                            "directions must be one of ('both', 'i2t', 't2i'), got 'up'"),
    # mAP (eq. 25), precision@k, PR curves
    **{f"{name} {what}": (lambda f=f, a=a: f(*a), msg)
       for name, f in (("mAP", mean_average_precision), ("AP", average_precision),
                       ("pr_curve", pr_curve), ("retrieval_scores", retrieval_scores))
       for what, a, msg in (
           ("sim 3-d", (R(3, 3, 1), L3, L3), "sim must have 2 dimensions"),
           ("sim without queries", (R(0, 3), L3[:0], L3), "sim is empty (size 0 along dimension 0)"),
           ("sim without gallery", (R(3, 0), L3, L3[:0]), "sim is empty (size 0 along dimension 1)"),
       )},
    "mAP query_labels": (lambda: mean_average_precision(R(3, 4), L4, L4),
                         "query_labels has 4 entries but there are 3"),
    "mAP gallery_labels": (lambda: mean_average_precision(R(3, 4), L3, L3),
                           "gallery_labels has 3 entries but there are 4"),
    "retrieval_scores txt_labels": (lambda: retrieval_scores(R(3, 4), L3, L3),
                                    "gallery_labels has 3 entries but there are 4"),
    "AP k": (lambda: average_precision(R(3, 3), L3, L3, k=0),
             "k must be a positive integer or None, got 0"),
    "precision_at_k k": (lambda: precision_at_k(R(3, 4), L3, L4, 5),
                         "k must lie in 1..4 (the gallery size), got 5"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_names_the_argument_and_the_problem(case):
    call, message = CASES[case]
    with pytest.raises(HAANInputError, match="^" + re.escape(message)):
        call()


def test_defaults_are_the_papers_values():
    """rho = 0.6 (Section 4.5), both AWL stages, both directions; lambda = 9 (Table 2); TRI
    with margin 0.2 and the hardest negative (ambiguity log, entry 15)."""
    g = torch.Generator().manual_seed(0)
    sim = torch.rand(6, 7, generator=g, dtype=torch.float64) * 2 - 1
    il, tl = torch.randint(3, (6,), generator=g), torch.randint(3, (7,), generator=g)
    pos = il[:, None] == tl[None, :]
    assert float(awl(sim, il, tl)) == float(awl(sim, il, tl, rho=0.6, mining=True,
                                                   weighting=True, directions="both"))
    assert float(awl(sim, il, tl)) == pytest.approx(
        ref.awl(sim.tolist(), il.tolist(), tl.tolist(), 0.6, True, True, "both"), rel=1e-12)
    torch.testing.assert_close(awl_grad(sim, il, tl), awl_grad(
        sim, il, tl, rho=0.6, mining=True, weighting=True, directions="both"), rtol=0, atol=0)
    for a, b in zip(mine_pairs(sim, pos), mine_pairs(sim, pos, rho=0.6)):
        assert torch.equal(a, b)
    assert float(triplet(sim, il, tl)) == pytest.approx(
        ref.triplet(sim.tolist(), il.tolist(), tl.tolist(), 0.2, True, "both"), rel=1e-12)
    patches = torch.randn(2, 3, 4, generator=g, dtype=torch.float64)
    words = torch.randn(3, 5, 4, generator=g, dtype=torch.float64)
    lengths = torch.tensor([5, 2, 3])
    torch.testing.assert_close(lcm(patches, words, lengths),
                               lcm(patches, words, lengths, lam=9.0), rtol=0, atol=0)
    torch.testing.assert_close(lcm_attention(patches, words, lengths)[1],
                               lcm_attention(patches, words, lengths, lam=9.0)[1], rtol=0, atol=0)
    # and the defaults differ from other values, so the comparisons above can fail
    assert float(awl(sim, il, tl)) != float(awl(sim, il, tl, rho=1.6))
    assert float(triplet(sim, il, tl)) != float(triplet(sim, il, tl, margin=1.2))


def test_norms_are_clamped_at_eps():
    """Ambiguity log, entry 8: a vector shorter than EPS = 1e-8 is divided by EPS, not by its
    own norm, so a near-zero feature gives a near-zero cosine instead of a full one."""
    assert EPS == 1e-8
    tiny = torch.tensor([[1e-10, 0.0]], dtype=torch.float64)
    unit = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    assert float(gcm(tiny, unit)) == pytest.approx(1e-2, rel=1e-9)
    assert float(gcm(unit, tiny)) == pytest.approx(1e-2, rel=1e-9)


def test_eq24_at_another_margin_equals_autograd():
    g = torch.Generator().manual_seed(4)
    sim = (torch.rand(7, 7, generator=g, dtype=torch.float64) * 2 - 1).requires_grad_(True)
    il, tl = torch.randint(3, (7,), generator=g), torch.randint(3, (7,), generator=g)
    for rho in (0.1, 0.35):
        sim.grad = None
        awl(sim, il, tl, rho=rho).backward()
        torch.testing.assert_close(awl_grad(sim, il, tl, rho=rho), sim.grad,
                                   rtol=1e-12, atol=1e-14)
        assert not torch.allclose(awl_grad(sim, il, tl, rho=rho), awl_grad(sim, il, tl))


def _pr_loop(sim, ql, gl, levels):
    """The precision-recall curve of the explicit loop (tests/reference.py) as a tensor."""
    return torch.tensor(ref.pr_curve(sim.tolist(), ql.tolist(), gl.tolist(), levels),
                        dtype=torch.float64)


def test_pr_curve_edge_cases_equal_loop():
    """A query with one relevant item, the last relevant item ranked last, recall levels
    that are not dyadic (0.1 is not a float32 number), and the default 21 levels."""
    sim = torch.tensor([[0.9, 0.1, 0.5, 0.3, 0.7, 0.2, 0.8, 0.4, 0.6, 0.05, 0.95, 0.0],
                        [0.1, 0.9, 0.2, 0.8, 0.3, 0.7, 0.4, 0.6, 0.5, 0.55, 0.65, 0.75]],
                       dtype=torch.float64)
    gl = torch.tensor([0] * 10 + [1, 0])             # query 0: 11 relevant, one ranked last
    ql = torch.tensor([0, 1])                        # query 1: one relevant item
    levels = [0.1, 0.3, 0.7, 1.0]
    got_levels, prec = pr_curve(sim, ql, gl, recall_levels=levels)
    torch.testing.assert_close(prec, _pr_loop(sim, ql, gl, levels), rtol=1e-12, atol=1e-12)
    default_levels, prec = pr_curve(sim, ql, gl)
    torch.testing.assert_close(default_levels, torch.linspace(0, 1, 21, dtype=torch.float64))
    torch.testing.assert_close(prec, _pr_loop(sim, ql, gl, default_levels.tolist()),
                               rtol=1e-12, atol=1e-12)
    one = pr_curve(sim[1:], ql[1:], gl, recall_levels=levels)[1]   # a single query
    torch.testing.assert_close(one, _pr_loop(sim[1:], ql[1:], gl, levels))
    none = pr_curve(sim, torch.tensor([5, 6]), gl, recall_levels=levels)[1]
    assert none.tolist() == [0.0] * 4               # no query has a relevant item


def test_pr_curve_recall_levels_are_exact_float64():
    """Recall levels are float64: 0.05 or 0.1 in float32 lie a hair above the recall 1/20 or
    1/10 that a query reaches, which would move the interpolation one relevant item deeper."""
    levels, _ = pr_curve(torch.rand(1, 3), torch.tensor([0]), torch.tensor([0, 1, 0]))
    assert levels.dtype == torch.float64
    assert torch.equal(levels, torch.linspace(0, 1, 21, dtype=torch.float64))
    # 20 relevant of 22, the first ranked first: precision 1.0 at recall 1/20 and 1/10
    ranking = torch.tensor([[22.0, 21.0] + [20.0 - i for i in range(20)]])
    gl = torch.tensor([0, 1] + [0] * 19 + [1])
    q = torch.tensor([0])
    _, default_prec = pr_curve(ranking, q, gl)
    torch.testing.assert_close(default_prec, _pr_loop(ranking, q, gl, levels.tolist()),
                               rtol=0, atol=1e-15)
    assert float(default_prec[1]) == 1.0                      # recall 0.05
    # 10 relevant of 12, the first ranked first: precision 1.0 at recall 1/10 exactly
    ranking = torch.tensor([[12.0 - i for i in range(12)]])
    gl = torch.tensor([0, 1, 1] + [0] * 9)
    listed = [0.1, 0.3, 0.7]                                  # Python floats, not tensors
    _, prec = pr_curve(ranking, q, gl, recall_levels=listed)
    torch.testing.assert_close(prec, _pr_loop(ranking, q, gl, listed), rtol=0, atol=1e-15)
    assert float(prec[0]) == 1.0


def test_map_of_a_large_tied_gallery_equals_loop():
    """Ties in a gallery of hundreds: an unstable sort reorders them (it does from about 100
    items on this CPU); eq. 25 as pinned ranks ties in gallery order."""
    g = torch.Generator().manual_seed(9)
    sim = torch.round(torch.rand(4, 300, generator=g) * 4) / 4     # five distinct values
    ql, gl = torch.randint(5, (4,), generator=g), torch.randint(5, (300,), generator=g)
    expected = ref.mean_average_precision(sim.tolist(), ql.tolist(), gl.tolist())
    assert mean_average_precision(sim, ql, gl) == pytest.approx(expected, rel=1e-12)
    expected = ref.mean_average_precision(sim.tolist(), ql.tolist(), gl.tolist(), 40)
    assert mean_average_precision(sim, ql, gl, k=40) == pytest.approx(expected, rel=1e-12)


def test_retrieval_scores_with_a_depth_equal_loop():
    g = torch.Generator().manual_seed(2)
    sim = torch.rand(6, 8, generator=g, dtype=torch.float64)
    il, tl = torch.randint(3, (6,), generator=g), torch.randint(3, (8,), generator=g)
    got = retrieval_scores(sim, il, tl, k=3)
    i2t = ref.mean_average_precision(sim.tolist(), il.tolist(), tl.tolist(), 3)
    t2i = ref.mean_average_precision(sim.T.tolist(), tl.tolist(), il.tolist(), 3)
    assert got == pytest.approx({"i2t": i2t, "t2i": t2i, "avg": (i2t + t2i) / 2}, rel=1e-12)
    assert got["i2t"] != pytest.approx(retrieval_scores(sim, il, tl)["i2t"])


def test_chance_map_is_the_mean_of_seeded_random_rankings():
    labels = torch.arange(30) % 4
    g = torch.Generator().manual_seed(0)
    expected = sum(mean_average_precision(torch.rand(30, 30, generator=g), labels, labels)
                   for _ in range(20)) / 20
    assert chance_map(labels, labels) == pytest.approx(expected, rel=1e-15)
    assert chance_map(labels, labels, trials=3, seed=5) != chance_map(labels, labels)
    assert not math.isnan(chance_map(labels, labels))
