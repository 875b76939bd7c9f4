"""The claims of Sections 4.4-4.6 and their verdicts, on hand-made runs: a clear win, a
clear loss, a tie within the noise of seeds, too few seeds, for each kind of claim."""
import math

import pytest
import torch

from haan_core import claims as C
from haan_core import sweep as S


def _rec(variant, seed, avg, objective=None, method="haan", **overrides):
    return {"variant": variant, "method": method, "seed": seed, "avg": avg,
            "i2t": avg, "t2i": avg, "overrides": overrides, "objective": objective or {}}


def _pairs(diffs, better="A", worse="B"):
    return [r for s, d in enumerate(diffs)
            for r in (_rec(better, s, 0.5 + d), _rec(worse, s, 0.5))]


BEATS = C.Difference("A beats B", "here", "A", "B")
ABOUT = C.Difference("A is about 0.02 above B", "here", "A", "B", 0.015, 0.025)
AT_LEAST = C.Difference("A beats B by at least 0.013", "here", "A", "B", 0.013)


@pytest.mark.parametrize("claim,diffs,verdict", [
    (BEATS, (0.01, 0.02, 0.03), "supported"),            # a clear win
    (BEATS, (-0.01, -0.02, -0.03), "contradicted"),       # a clear loss
    (BEATS, (0.001, -0.002, 0.0005), "not settled"),      # a tie within the noise
    (BEATS, (0.01, 0.02), "no verdict"),                  # two seeds only
    (ABOUT, (0.018, 0.021, 0.024), "supported"),
    (ABOUT, (0.001, 0.05, -0.01), "contradicted"),        # outside the band on each side
    (ABOUT, (0.018, 0.03, 0.02), "not settled"),
    (AT_LEAST, (0.014, 0.02, 0.05), "supported"),
    (AT_LEAST, (0.005, 0.01, 0.012), "contradicted"),     # A wins, but by less than asked
])
def test_a_difference_claim_holds_or_fails_on_each_paired_seed(claim, diffs, verdict):
    v = C.verdict(claim, _pairs(diffs) + [_rec("B", 9, 0.1)])   # seed 9 of B alone: unpaired
    assert v["verdict"].startswith(verdict), v
    assert v["seeds"] == list(range(len(diffs)))
    assert v["values"] == pytest.approx(diffs)
    assert v["mean"] == pytest.approx(sum(diffs) / len(diffs))
    assert v["held"] == [claim.low < d < (claim.high or math.inf) for d in diffs]


def test_about_equal_is_a_band_around_zero_in_either_direction():
    claim = C.Difference("A and B are about equal", "here", "A", "B", -0.005, 0.005)
    assert C.verdict(claim, _pairs((0.004, -0.004, 0.0)))["verdict"].startswith("supported")
    assert C.verdict(claim, _pairs((0.006, -0.02, 0.01)))["verdict"].startswith("contradicted")


def test_min_seeds_is_a_parameter_and_no_seed_gives_a_nan_mean():
    assert C.verdict(BEATS, _pairs((0.01,)), min_seeds=1)["verdict"].startswith("supported")
    v = C.verdict(BEATS, [_rec("A", 0, 0.5)])
    assert v["seeds"] == [] and math.isnan(v["mean"]) and v["verdict"].startswith("no verdict")


def test_best_needs_every_row_on_a_seed_and_a_strict_margin():
    claim = C.Best("X is best", "here", "X", ("Y", "Z"))
    win = [_rec(v, s, a) for s in range(3) for v, a in (("X", 0.6), ("Y", 0.5), ("Z", 0.55))]
    assert C.verdict(claim, win)["verdict"].startswith("supported")
    assert C.verdict(claim, win)["values"] == pytest.approx([0.05] * 3)
    loss = [_rec(v, s, a) for s in range(3) for v, a in (("X", 0.5), ("Y", 0.6), ("Z", 0.5))]
    assert C.verdict(claim, loss)["verdict"].startswith("contradicted")
    tie = [_rec("X", s, 0.6) for s in range(3)] + \
        [_rec("Y", s, a) for s, a in enumerate((0.5, 0.6, 0.59))] + \
        [_rec("Z", s, 0.5) for s in range(3)]
    v = C.verdict(claim, tie)
    assert v["held"] == [True, False, True] and v["verdict"].startswith("not settled")
    v = C.verdict(claim, win[:-1])              # seed 2 lacks Z: two seeds remain
    assert v["seeds"] == [0, 1] and v["verdict"].startswith("no verdict")


def test_monotone_counts_rises_and_lets_equal_values_pass():
    claim = C.Monotone("C falls at every iteration", "here")
    down = [_rec("HAAN", s, 0.5, {"C": [3.0, 2.0, 2.0, 1.0]}) for s in range(3)]
    assert C.verdict(claim, down)["verdict"].startswith("supported")
    up = [_rec("HAAN", s, 0.5, {"C": [3.0, 2.0, 2.5, 1.0, 1.5]}) for s in range(3)]
    v = C.verdict(claim, up)
    assert v["verdict"].startswith("contradicted") and v["values"] == [0.5] * 3
    mixed = down[:2] + up[2:]
    assert C.verdict(claim, mixed)["verdict"].startswith("not settled")


def _matrices(kind):
    """Two test matrices over 4 images and 4 texts of classes 0, 0, 1, 1: "same" (C = F, so
    every weighting ranks alike) or "opposed" (F = -C: the fusion 1 : 1 is all ties)."""
    labels = torch.tensor([0, 0, 1, 1])
    c = (labels[:, None] == labels[None, :]).float() + 0.1 * torch.arange(16.).reshape(4, 4)
    return {"C": c, "F": c.clone() if kind == "same" else -c,
            "img_labels": labels, "txt_labels": labels}


def test_fusion_near_best_re_ranks_the_grid_from_the_matrices():
    claim = C.FusionNearBest("1 : 1 is near the best", "here", weights=(0.1, 0.5, 1.0))
    runs = [_rec("HAAN", s, 0.5) for s in range(3)]
    same = C.verdict(claim, runs, matrices=lambda r: _matrices("same"))
    assert same["verdict"].startswith("supported") and same["values"] == [0.0] * 3
    opposed = C.verdict(claim, runs, matrices=lambda r: _matrices("opposed"))
    assert opposed["verdict"].startswith("contradicted")
    assert all(v > 0.1 for v in opposed["values"])
    kinds = {0: "same", 1: "opposed", 2: "same"}
    v = C.verdict(claim, runs, matrices=lambda r: _matrices(kinds[r["seed"]]))
    assert v["held"] == [True, False, True] and v["verdict"].startswith("not settled")
    with pytest.raises(ValueError, match="matrices"):
        C.verdict(claim, runs)


def test_a_grid_cell_is_eq_7_re_ranked_by_the_metric():
    from haan_core.metrics import retrieval_scores
    claim = C.FusionNearBest("t", "here", weights=(0.2, 0.7))
    m = _matrices("opposed")
    g = claim.grid(m)
    assert set(g) == {(0.2, 0.2), (0.2, 0.7), (0.7, 0.2), (0.7, 0.7)}
    assert g[(0.7, 0.2)] == retrieval_scores(0.7 * m["C"] + 0.2 * m["F"], m["img_labels"],
                                             m["txt_labels"])["avg"]


def test_labels_name_a_row_and_what_the_run_changed():
    assert C.label(_rec("HAAN", 0, 0.5)) == "HAAN"
    assert C.label(_rec("HAAN", 0, 0.5, rho=0.2)) == "HAAN rho=0.2"
    assert C.label(_rec("HAAN", 0, 0.5, rho=1.0)) == "HAAN rho=1"
    assert C.label(_rec("HAAN", 0, 0.5, method="liu")) == "liu"   # method: the row, not a change


def test_every_row_a_claim_names_is_a_run_of_the_grids():
    """A claim names its runs by label: each must be a run that table6, figure6 or a
    compared method's grid makes (or a row derived from them, SGRAF), or the claim could
    never get a verdict."""
    grid = S.grid_named(",".join(["table6", "figure6", *S.COMPARED]))
    made = {C.label({"variant": s.variant, "method": s.method,
                     "overrides": dict(s.overrides)}) for s in grid.specs()} | set(S.COMBINED)
    assert {"kcca", "dcca", "scan", "sgraf"} <= made
    for claim in S.paper_claims():
        assert set(claim.rows) <= made, (claim.text, set(claim.rows) - made)


def test_the_claims_table_has_one_row_per_claim_and_a_verdict_each():
    recs = [_rec(v, s, 0.5 + 0.01 * i, {"C": [2.0, 1.0]})
            for s in range(3) for i, v in enumerate(S.TABLE6_VARIANTS)]
    t = C.claims_table(recs, claims=S.paper_claims(), matrices=lambda r: _matrices("same"))
    assert len(t) == len(S.paper_claims()) == len(S.SECTION44_CLAIMS) + len(C.SECTION4_CLAIMS)
    assert t["verdict"].str.match("supported|contradicted|not settled|no verdict").all()
    # the rho runs and the compared methods' runs are missing: the claims of Figure 6 and
    # Table 3 have no verdict, the others do
    missing = t["where"].str.contains("Figure 6|Table 3")
    assert missing.sum() == 1 + len(S.SECTION44_CLAIMS)
    assert t[missing]["verdict"].str.startswith("no verdict").all()
    assert not t[~missing]["verdict"].str.startswith("no verdict").any()


def test_section_44_claims_pair_haan_with_compared_methods_by_seed():
    """A compared method's row is its method's name; HAAN's is the recipe's variant."""
    recs = [_rec("HAAN", s, 0.58) for s in range(3)] + \
        [_rec("HAAN", s, 0.47, method="kcca") for s in range(3)] + \
        [_rec("HAAN", s, 0.43 + 0.001 * s, method="dcca") for s in range(3)]
    t = C.claims_table(recs, claims=S.SECTION44_CLAIMS).set_index("claim")
    assert t.loc["HAAN beats KCCA", "verdict"] == "supported: holds on all 3 seeds"
    assert t.loc["HAAN beats DCCA", "per seed"] == "+0.1500, +0.1490, +0.1480"
    assert t.loc["the deep method DCCA beats the traditional KCCA (conclusion 1)",
                 "verdict"] == "contradicted: fails on all 3 seeds"
    assert t.loc["HAAN beats SGRAF", "verdict"].startswith("no verdict: 0 seed(s)")
