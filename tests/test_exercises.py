"""The exercises of the book: answer checks (haan_core.exercises) and the notebook markup.

Every registered check is tested with a right answer computed here independently of the
checker (by hand from the equation, or by an explicit loop), with no answer, and with two
wrong answers whose messages must not give the right answer away. The notebook test
parses every page and checks the exercise and solution directives that the book and the
teacher's `student` command (which removes the cells tagged "solution") rely on.
"""
import math
import re
from fractions import Fraction
from math import gcd

import jupytext
import pytest
import torch

from haan_core.book import NOTEBOOK_DIR
from haan_core.exercises import CHECKS, check
from haan_core.reported import load

from . import reference as ref

# ------------------------------------------------------------------ explicit references


def _loop_mine(L, labels, rho):
    """Eqs. 16-17 for the image anchors (rows), one pair at a time: (kept positives, kept
    negatives) as sets of (i, j)."""
    S_pos, S_neg = set(), set()
    B, M = len(L), len(L[0])
    for i in range(B):
        pos = [k for k in range(M) if labels[i] == labels[k]]
        neg = [k for k in range(M) if labels[i] != labels[k]]
        for j in pos:
            if neg and L[i][j] < max(L[i][k] for k in neg) + rho:
                S_pos.add((i, j))
        for j in neg:
            if pos and L[i][j] > min(L[i][k] for k in pos) - rho:
                S_neg.add((i, j))
    return S_pos, S_neg


def _loop_awl(L, labels, rho):
    """Eq. 23 with both anchor directions, from Python floats."""
    def one_direction(L):
        B = len(L)
        total = 0.0
        S_pos, S_neg = _loop_mine(L, labels, rho)
        for i in range(B):
            p = [math.exp(1 - L[i][j]) for j in range(len(L[i])) if (i, j) in S_pos]
            n = [math.exp(L[i][j] - 1) for j in range(len(L[i])) if (i, j) in S_neg]
            total += (math.log(sum(p)) if p else 0.0) + (math.log(sum(n)) if n else 0.0)
        return total / B
    transposed = [list(col) for col in zip(*L)]
    return one_direction(L) + one_direction(transposed)


def _loop_avg_map(sim, il, tl):
    S = sim.tolist()
    i2t = sum(ref.average_precision(S[q], il[q], tl) for q in range(len(il))) / len(il)
    cols = [list(c) for c in zip(*S)]
    t2i = sum(ref.average_precision(cols[q], tl[q], il) for q in range(len(tl))) / len(tl)
    return (i2t + t2i) / 2


def _page_like_batch(seed=0, B=12, classes=4):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(B) % classes
    sim = (torch.rand(B, B, generator=g, dtype=torch.float64) * 2 - 1) * 0.9
    sim = sim + 0.5 * (labels[:, None] == labels[None, :])     # positives tend to be higher
    return sim.clamp(-1, 1), labels


def _cases():
    """{check name: (data keyword arguments, the right answer, computed here)}."""
    cases = {}

    # data_features-crop: edges at round(i * H / 3), round(j * W / 3); middle crop i = j = 1
    ys = [round(i * 100 / 3) for i in range(4)]
    xs = [round(j * 200 / 3) for j in range(4)]
    cases["data_features-crop"] = ({}, (3, ys[2] - ys[1], xs[2] - xs[1]))

    # data_features-chance: expected AP of a random ranking, N items, R relevant
    N, R = 100, 5
    H = sum(1 / n for n in range(1, N + 1))
    cases["data_features-chance"] = ({}, (H + (R - 1) / (N - 1) * (N - H)) / N)

    # gcm_lcm-shape: (images, texts, patches, padded words)
    g = torch.Generator().manual_seed(1)
    patches, words = torch.randn(3, 9, 8, generator=g), torch.randn(5, 7, 8, generator=g)
    lengths = torch.tensor([7, 3, 5, 1, 6])
    cases["gcm_lcm-shape"] = ({"patches": patches, "words": words, "lengths": lengths},
                              (3, 5, 9, 7))

    # gcm_lcm-entropy: eqs. 11-13 by loops, then the mean entropy over the patches
    n, m, lam = torch.randn(9, 8, generator=g), torch.randn(4, 8, generator=g), 1.0
    U = [[float(torch.dot(n[x], m[y]) / (n[x].norm() * m[y].norm())) for y in range(4)]
         for x in range(9)]
    col = [math.sqrt(sum(max(U[x][y], 0) ** 2 for x in range(9))) for y in range(4)]
    Ubar = [[max(U[x][y], 0) / max(col[y], 1e-8) for y in range(4)] for x in range(9)]
    entropy = 0.0
    for x in range(9):
        e = [math.exp(lam * Ubar[x][y]) for y in range(4)]
        a = [v / sum(e) for v in e]
        entropy -= sum(v * math.log(v) for v in a if v > 0)
    cases["gcm_lcm-entropy"] = ({"patches": n, "words": m, "lam": lam}, entropy / 9)

    # awl-count and awl-rho on a batch like the page's
    sim, labels = _page_like_batch()
    L, lab = sim.tolist(), labels.tolist()
    S_pos, S_neg = _loop_mine(L, lab, 0.6)
    cases["awl-count"] = ({"sim": sim, "labels": labels, "rho": 0.6}, len(S_pos) + len(S_neg))
    rho_star = max(max(max(L[i][j] for j in range(12) if lab[j] == lab[i])
                       - max(L[i][j] for j in range(12) if lab[j] != lab[i]),
                       min(L[i][j] for j in range(12) if lab[j] == lab[i])
                       - min(L[i][j] for j in range(12) if lab[j] != lab[i]))
                   for i in range(12))
    cases["awl-rho"] = ({"sim": sim, "labels": labels}, rho_star)

    # table3-gain and table4-reduction, from the reported CSV rows
    t3 = {r["method"]: r for r in load("table3").to_dict("records")}
    haan, vsrn = t3["HAAN"]["corel5k_avg"], t3["VSRN++"]["corel5k_avg"]
    cases["table3-gain"] = ({}, 100 * (haan - vsrn) / vsrn)
    t4 = {r["method"]: r for r in load("table4").to_dict("records")}
    haan, vsrn = t4["HAAN"]["corel5k_s"], t4["VSRN++"]["corel5k_s"]
    cases["table4-reduction"] = ({}, 100 * (vsrn - haan) / vsrn)

    # table4-cosines: one cosine per image, text, patch and word
    cases["table4-cosines"] = ({"batch_size": 10, "alpha": 9, "beta": 12}, 10 * 10 * 9 * 12)

    # table5_6-retrain: Table 5's rows with neither AWL nor TRI (GCM, LCM, GCM-LCM)
    cases["table5_6-retrain"] = ({}, 3)

    # figure5-interp: ranks 1..6 relevant 0,1,1,0,0,1; recall 1/3 first reached at rank 2,
    # best precision at rank 2 or deeper
    rel = [0, 1, 1, 0, 0, 1]
    hits = [sum(rel[:r]) for r in range(1, 7)]
    first = next(r for r in range(6) if hits[r] / 3 >= 0.2)
    cases["figure5-interp"] = ({}, max(hits[r] / (r + 1) for r in range(first, 6)))

    # figure7-gcm: mAP of the global matrix alone, by explicit AP loops
    g = torch.Generator().manual_seed(2)
    il = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    ev = {"sims": {"C": torch.rand(8, 8, generator=g), "F": torch.rand(8, 8, generator=g)},
          "img_labels": il, "txt_labels": il}
    cases["figure7-gcm"] = ({"ev": ev}, _loop_avg_map(ev["sims"]["C"], il.tolist(), il.tolist()))

    # figure7-ratios: reduced fractions i/j, 1 <= i, j <= 10
    cases["figure7-ratios"] = ({"weights": [k / 10 for k in range(1, 11)]},
                               sum(1 for i in range(1, 11) for j in range(1, 11)
                                   if gcd(i, j) == 1))

    # figure8-start: every pair kept, tau = 2 (ln P + ln Q) for an even batch
    cases["figure8-start"] = ({"batch_size": 100, "classes": 10},
                              2 * (math.log(10) + math.log(90)))

    # figure8-toy: eq. 23 by loops
    cases["figure8-toy"] = ({}, _loop_awl([[0.9, 0.5], [0.5, 0.9]], [0, 1], 0.6))

    # figure9-precision: right results among the top k of query q
    g = torch.Generator().manual_seed(3)
    sim = torch.rand(10, 10, generator=g)
    labels = torch.tensor([0, 1, 0, 1, 0, 1, 0, 1, 0, 1])
    q, k = 2, 4
    top = sorted(range(10), key=lambda j: -float(sim[q, j]))[:k]
    cases["figure9-precision"] = ({"sim": sim, "labels": labels, "q": q, "k": k},
                                  sum(int(labels[j] == labels[q]) for j in top) / k)
    return cases


CASES = _cases()


def test_every_check_has_a_case():
    assert set(CASES) == set(CHECKS)
    assert len(CHECKS) >= 4


def test_the_references_agree_with_hand_values():
    """A few right answers worked out on paper, to anchor the loops above."""
    assert CASES["data_features-crop"][1] == (3, 34, 66)
    assert CASES["figure5-interp"][1] == pytest.approx(2 / 3)
    assert CASES["figure8-toy"][1] == pytest.approx(-0.8)
    assert CASES["figure7-ratios"][1] == 63
    assert len({Fraction(i, j) for i in range(1, 11) for j in range(1, 11)}) == 63


def _wrong_value(kind, right):
    if kind == "shape":
        return (right[0] + 1,) + tuple(right[1:])
    if kind == "count":
        return right + 7
    return right * 1.5 + 0.5


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_check(name, capsys):
    data, right = CASES[name]
    kind = CHECKS[name].kind

    assert check(name, right, **data) is True
    assert capsys.readouterr().out.strip() == "correct"

    assert check(name, None, **data) is None
    assert capsys.readouterr().out.startswith("no answer yet: ")

    for wrong in ("not an answer", _wrong_value(kind, right)):
        assert check(name, wrong, **data) is False
        out = capsys.readouterr().out
        assert out.strip() and out.strip() != "correct"
        assert str(right) not in out, f"{name}: the message gives the answer away: {out}"


def test_a_shape_answer_may_be_a_list_or_a_torch_size(capsys):
    data, right = CASES["gcm_lcm-shape"]
    assert check("gcm_lcm-shape", list(right), **data) is True
    assert check("gcm_lcm-shape", torch.Size(right), **data) is True
    assert check("gcm_lcm-shape", right[:-1], **data) is False
    assert "wrong length" in capsys.readouterr().out


def test_a_count_may_be_a_tensor_but_not_a_fraction(capsys):
    data, right = CASES["awl-count"]
    assert check("awl-count", torch.tensor(right), **data) is True
    assert check("awl-count", right + 0.5, **data) is False
    assert "wrong type" in capsys.readouterr().out


def test_unknown_name_lists_the_registered_checks():
    with pytest.raises(KeyError) as err:
        check("no-such-exercise", 1)
    for name in CHECKS:
        assert name in str(err.value)


def test_missing_page_data_is_named():
    with pytest.raises(TypeError, match="sim"):
        check("awl-count", 3)


# ------------------------------------------------------------------ the notebooks

PAGES = ["data_features", "gcm_lcm", "awl", "table3", "table4", "table5_6", "figure5",
         "figure6", "figure7", "figure8", "figure9"]
EXERCISE = re.compile(r"^:::\{exercise\}", re.M)
LABEL = re.compile(r"^:label:\s*(\S+)", re.M)
SOLUTION = re.compile(r"\{solution\}\s*(\S+)")
CHECK_CALL = re.compile(r"""check\(\s*["']([^"']+)["']""")


def _notebooks():
    return {p.stem: jupytext.read(p) for p in sorted(NOTEBOOK_DIR.glob("*.py"))}


def test_notebook_exercises_and_solutions():
    notebooks = _notebooks()
    assert set(PAGES) <= set(notebooks)
    labels, solutions, used = {}, {}, set()
    for page, nb in notebooks.items():
        cells = nb.cells
        heading = [i for i, c in enumerate(cells) if c.cell_type == "markdown"
                   and re.search(r"^## Exercises\s*$", c.source, re.M)]
        for i, cell in enumerate(cells):
            tagged = "solution" in cell.metadata.get("tags", [])
            found = SOLUTION.findall(cell.source)
            # the teacher's `student` command removes tagged cells: every solution is in one
            assert not found or tagged, f"{page}: a solution outside a 'solution' cell: {found}"
            if cell.cell_type == "code":
                used.update(CHECK_CALL.findall(cell.source))
            if tagged:
                assert cell.cell_type == "markdown", f"{page}: a code cell tagged 'solution'"
                assert len(found) == 1, f"{page}: a 'solution' cell holds {len(found)} solutions"
                assert not EXERCISE.search(cell.source), f"{page}: exercise in a solution cell"
                assert re.search(r"^:class:\s*dropdown\s*$", cell.source, re.M), \
                    f"{page}: solution {found[0]} is not folded (:class: dropdown)"
                solutions.setdefault(found[0], []).append((page, i))
            if EXERCISE.search(cell.source):
                assert cell.cell_type == "markdown"
                assert len(EXERCISE.findall(cell.source)) == 1, f"{page}: two exercises in a cell"
                assert heading and i > heading[0], f"{page}: an exercise before '## Exercises'"
                label = LABEL.search(cell.source)
                assert label, f"{page}: an exercise without a :label:"
                label = label.group(1)
                assert label.startswith(f"ex-{page}-"), f"{page}: label {label} lacks the prefix"
                assert label not in labels, f"label {label} on {page} and {labels[label][0]}"
                labels[label] = (page, i)
        if page in PAGES:
            assert len(heading) == 1, f"{page}: expected one '## Exercises' section"
            n = sum(1 for (p, _) in labels.values() if p == page)
            assert 2 <= n <= 3, f"{page}: {n} exercises, expected 2 or 3"

    assert set(solutions) == set(labels), \
        f"exercises without a solution: {sorted(set(labels) - set(solutions))}; " \
        f"solutions without an exercise: {sorted(set(solutions) - set(labels))}"
    for label, places in solutions.items():
        assert len(places) == 1, f"{label} has {len(places)} solutions"
        (page, k), (ex_page, j) = places[0], labels[label]
        assert page == ex_page and j < k, f"{label}: the solution is not after its exercise"
        # directly after the exercise, or after its check cells
        between = notebooks[page].cells[j + 1:k]
        assert all(c.cell_type == "code" for c in between), \
            f"{label}: the solution does not follow its exercise (and check cell)"

    # every check a page calls exists, and every registered check is used by a page
    assert used == set(CHECKS), (sorted(used - set(CHECKS)), sorted(set(CHECKS) - used))
