"""Answer checks for the book's exercises: ``check(name, answer, **data)``.

An exercise whose answer is a number or a shape has a code cell after it:

    answer = None   # your answer: ...
    check("gcm_lcm-shape", answer, patches=N_F[:3], words=M_F[:5], lengths=lengths[:5])

``check`` looks the name up in ``CHECKS``, a registry of small functions. Each one
COMPUTES the right answer with haan_core's own code when it is called (from the page's
objects, passed as keyword arguments, where the answer depends on them), so no answer is
stored anywhere. It then compares and prints one line:

    no answer yet: ...   the answer is None (the line says what form is expected)
    correct              the answer is right
    what is wrong        otherwise, without giving the right answer away

and returns True, False, or None when there is no answer yet.
"""
from __future__ import annotations

import inspect
import math
import numbers
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable

import torch

from .config import VARIANTS, HAANConfig
from .features import crops
from .losses import awl, mine_pairs
from .metrics import chance_map, pr_curve, precision_at_k, retrieval_scores
from .models import fuse
from .reported import load
from .similarity import lcm_attention
from .train import make_loss


@dataclass(frozen=True)
class Check:
    compute: Callable      # (**data) -> the right answer
    kind: str              # "shape" (a tuple of ints), "count" (an int) or "number"
    form: str              # what an answer looks like, printed while there is none
    rtol: float = 0.01     # numbers: relative tolerance ...
    atol: float = 1e-6     # ... or absolute, whichever is larger


CHECKS: dict[str, Check] = {}


def _register(name, kind, form, **tolerance):
    def add(compute):
        CHECKS[name] = Check(compute, kind, form, **tolerance)
        return compute
    return add


# ------------------------------------------------------------------ comparing answers

def _as_number(x):
    """A plain float from a Python/numpy number or a one-element tensor; None otherwise."""
    if isinstance(x, bool):
        return None
    if isinstance(x, numbers.Real):
        return float(x)
    if isinstance(x, torch.Tensor) and x.numel() == 1 and x.dtype != torch.bool:
        return float(x)
    return None


def _compare_shape(answer, right):
    if not isinstance(answer, (tuple, list)) or not all(
            isinstance(n, numbers.Integral) and not isinstance(n, bool) for n in answer):
        return False, ("wrong type: expected a shape, a tuple of ints, "
                       f"got {type(answer).__name__}")
    answer = tuple(int(n) for n in answer)
    if len(answer) != len(right):
        return False, "wrong length: the shape has a different number of dimensions"
    if answer == tuple(right):
        return True, "correct"
    good = [str(i + 1) for i, (a, r) in enumerate(zip(answer, right)) if a == r]
    bad = [str(i + 1) for i, (a, r) in enumerate(zip(answer, right)) if a != r]
    return False, (f"not yet: dimension(s) {', '.join(good) or 'none'} right, "
                   f"dimension(s) {', '.join(bad)} not (counted from the first)")


def _compare_count(answer, right):
    value = _as_number(answer)
    if value is None or not math.isfinite(value) or value != int(value):
        got = type(answer).__name__ + (" with a fraction" if value is not None else "")
        return False, f"wrong type: expected a whole number (an int), got {got}"
    if int(value) == right:
        return True, "correct"
    return False, f"not yet: that count is too {'high' if value > right else 'low'}"


def _compare_number(answer, right, rtol, atol):
    value = _as_number(answer)
    if value is None:
        return False, f"wrong type: expected a number, got {type(answer).__name__}"
    if not math.isfinite(value):
        return False, "not yet: the answer is not a finite number"
    if abs(value - right) <= max(rtol * abs(right), atol):
        return True, "correct"
    side = "too high" if value > right else "too low"
    return False, f"not yet: off by more than {100 * rtol:g} % ({side})"


def check(name: str, answer, **data):
    """Check ``answer`` to the exercise ``name``; print one line; return True/False/None."""
    if name not in CHECKS:
        raise KeyError(f"no check named {name!r}; registered checks: {', '.join(sorted(CHECKS))}")
    c = CHECKS[name]
    if answer is None:
        print(f"no answer yet: {c.form}")
        return None
    try:   # the page's objects this check needs, by name
        inspect.signature(c.compute).bind(**data)
    except TypeError:
        needs = list(inspect.signature(c.compute).parameters)
        raise TypeError(f"check {name!r} takes the page's data as keyword arguments "
                        f"{needs or '(none)'}, got {sorted(data) or '(none)'}") from None
    right = c.compute(**data)
    if c.kind == "shape":
        ok, message = _compare_shape(answer, right)
    elif c.kind == "count":
        ok, message = _compare_count(answer, right)
    else:
        ok, message = _compare_number(answer, right, c.rtol, c.atol)
    print(message)
    return ok


# ------------------------------------------------------------------ the checks, page by page

# data_features: the shape of the middle 3 x 3 crop of a 3 x 100 x 200 image
@_register("data_features-crop", "shape",
           "the shape (C, H, W) of crops(img)[4] for a 3 x 100 x 200 image, as a tuple of ints")
def _crop():
    return tuple(crops(torch.zeros(3, 100, 200))[4].shape)


# data_features: chance mAP (eq. 25 for random rankings) of 100 items in 20 classes of 5
@_register("data_features-chance", "number",
           "the chance mAP of 100 items in 20 classes of 5, a float (4 decimals suffice)",
           rtol=0.03)
def _chance():
    lab = torch.arange(100) % 20
    return chance_map(lab, lab)


# gcm_lcm: the shape of the attention of eq. 13 that lcm_attention returns
@_register("gcm_lcm-shape", "shape",
           "the shape of the attention A that lcm_attention returns, as a tuple of ints")
def _attention_shape(patches, words, lengths):
    return tuple(lcm_attention(patches, words, lengths)[1].shape)


# gcm_lcm: mean over patches of the entropy -sum_y a_xy ln a_xy of eq. 13's attention
@_register("gcm_lcm-entropy", "number",
           "the mean attention entropy over the patches at this lambda, a float in nats",
           rtol=0.002)
def _entropy(patches, words, lam):
    lengths = torch.tensor([words.shape[0]])
    A = lcm_attention(patches[None], words[None], lengths, lam=lam)[1][0, 0].double()
    return float(-torch.special.xlogy(A, A).sum(dim=1).mean())


# awl: |S+| + |S-| that stage 1 (eqs. 16-17) keeps for the image anchors (rows)
@_register("awl-count", "count",
           "the number of pairs in S+ and S- together, for the image anchors, an int")
def _mined(sim, labels, rho):
    keep_pos, keep_neg = mine_pairs(sim, labels[:, None] == labels[None, :], rho)
    return int((keep_pos | keep_neg).sum())


# awl: the margin above which stage 1 keeps every pair of the image anchors
@_register("awl-rho", "number",
           "the value of rho above which eqs. 16-17 keep every pair, a float", atol=1e-3)
def _rho_keep_all(sim, labels):
    pos = labels[:, None] == labels[None, :]

    def keeps_all(rho):
        keep_pos, keep_neg = mine_pairs(sim, pos, rho)
        return bool((keep_pos | keep_neg).all())
    lo, hi = -3.0, 3.0     # cosines lie in [-1, 1]: nothing is kept at -3, all at 3
    if not keeps_all(hi):
        raise ValueError("some anchor has no negative: no margin keeps all its pairs")
    while hi - lo > 1e-10:  # keeps_all is monotone in rho: bisect for the threshold
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if keeps_all(mid) else (mid, hi)
    return (lo + hi) / 2


# table3: HAAN's AVG over VSRN++'s on Corel 5K (reported), as a relative gain in percent
@_register("table3-gain", "number",
           "the relative gain of HAAN over VSRN++ in percent, a float (5.0 means 5 %)")
def _gain():
    t = load("table3").set_index("method")["corel5k_avg"]
    return 100 * (t["HAAN"] - t["VSRN++"]) / t["VSRN++"]


# table4: how many cosines U_xy (eq. 11) LCM computes for one training batch
@_register("table4-cosines", "count",
           "the number of patch-word cosines U_xy of one batch, an int")
def _cosines(batch_size, alpha, beta):
    U, _ = lcm_attention(torch.ones(batch_size, alpha, 2), torch.ones(batch_size, beta, 2),
                         torch.full((batch_size,), beta))
    return U.numel()


# table4: HAAN's training time below VSRN++'s on Corel 5K (reported), in percent
@_register("table4-reduction", "number",
           "the reduction in percent, a float (5.0 means 5 %)")
def _reduction():
    t = load("table4").set_index("method")["corel5k_s"]
    return 100 * (t["VSRN++"] - t["HAAN"]) / t["VSRN++"]


# table5_6: how many configurations train with another loss when base_loss changes
@_register("table5_6-retrain", "count",
           "the number of configurations whose training changes, an int")
def _base_loss_variants():
    g = torch.Generator().manual_seed(0)
    sim = torch.rand(6, 6, generator=g) * 2 - 1
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    changed = 0
    for name in VARIANTS:   # the loss train() uses, under each base_loss
        plain = make_loss(HAANConfig(variant=name, base_loss="plain"))(sim, labels, labels)
        tri = make_loss(HAANConfig(variant=name, base_loss="tri"))(sim, labels, labels)
        changed += not torch.equal(plain, tri)
    return changed


# figure5: interpolated precision at recall 0.2 of a query whose ranking is
# irrelevant, relevant, relevant, irrelevant, irrelevant, relevant
@_register("figure5-interp", "number",
           "the interpolated precision at recall 0.2, a float between 0 and 1")
def _interpolated():
    sim = torch.tensor([[6.0, 5.0, 4.0, 3.0, 2.0, 1.0]])
    _, precision = pr_curve(sim, torch.tensor([1]), torch.tensor([0, 1, 1, 0, 0, 1]), [0.2])
    return float(precision[0])


# figure7: AVG mAP of eq. 7 with upsilon1 = 1, upsilon2 = 0 (the global level alone)
@_register("figure7-gcm", "number",
           "the AVG mAP of the fused matrix at upsilon1 = 1, upsilon2 = 0, a float", rtol=0.001)
def _global_alone(ev):
    fused = fuse(ev["sims"]["C"], ev["sims"]["F"], 1.0, 0.0)
    return retrieval_scores(fused, ev["img_labels"], ev["txt_labels"])["avg"]


# figure7: how many different rankings the upsilon grid holds. Only the share of the
# global level, u1 / (u1 + u2), matters (eq. 7 up to a positive factor), so count those.
@_register("figure7-ratios", "count",
           "the number of different fusions (rankings) in the grid, an int")
def _distinct_ratios(weights):
    w = [Fraction(x).limit_denominator(10**6) for x in weights]
    return len({a / (a + b) for a in w for b in w if a + b > 0})


# figure8: C (eq. 23, both directions) when every similarity of a batch is the same,
# for a batch of batch_size pairs spread evenly over `classes` classes
@_register("figure8-start", "number",
           "the value of C for a batch whose similarities are all equal, a float",
           rtol=0.001)
def _loss_at_start(batch_size, classes):
    labels = torch.arange(batch_size) % classes
    return float(awl(torch.full((batch_size, batch_size), 0.3, dtype=torch.float64),
                     labels, labels, rho=0.6))


# figure8: eq. 23 on a 2 x 2 batch of two classes, similarities 0.9 (same pair), 0.5
@_register("figure8-toy", "number", "the value of eq. 23 for the 2 x 2 batch, a float")
def _toy_loss():
    sim = torch.tensor([[0.9, 0.5], [0.5, 0.9]], dtype=torch.float64)
    labels = torch.tensor([0, 1])
    return float(awl(sim, labels, labels, rho=0.6))


# figure9: precision among the top k texts of image query q
@_register("figure9-precision", "number",
           "the fraction of right results among the top k, a float between 0 and 1")
def _precision(sim, labels, q, k):
    return precision_at_k(sim[q:q + 1], labels[q:q + 1], labels, k)
