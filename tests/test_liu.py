"""Liu et al.'s multi-margin triplet loss (eqs. 14-18) against an explicit loop."""
import pytest
import torch

from haan_core import HAANInputError
from haan_core.methods.liu import margin_of, multi_margin_triplet


def loop_loss(img, txt, li, lt, margins, breaks):
    """Eqs. 14-18 one triplet at a time, in Python floats."""
    B = len(img)
    D = [[sum((x - y) ** 2 for x, y in zip(img[p], txt[q])) for q in range(B)]
         for p in range(B)]
    lo, hi = min(map(min, D)), max(map(max, D))
    dn = [[(D[p][q] - lo) / (hi - lo) if hi > lo else 0.0 for q in range(B)] for p in range(B)]

    def a_m(x):                                   # eq. 15: [0, e1], (e1, e2], ..., (e_w-1, 1]
        for m, e in enumerate(breaks):
            if x <= e:
                return margins[m]
        return margins[-1]

    total, n = 0.0, 0
    for a in range(B):                            # eq. 17: image anchors
        for j in range(B):
            for k in range(B):
                if lt[j] == li[a] and lt[k] != li[a]:
                    total += max(0.0, a_m(dn[a][k]) + D[a][j] - D[a][k])
                    n += 1
    for a in range(B):                            # eq. 18: text anchors
        for j in range(B):
            for k in range(B):
                if li[j] == lt[a] and li[k] != lt[a]:
                    total += max(0.0, a_m(dn[k][a]) + D[j][a] - D[k][a])
    return total / n if n else 0.0                # eq. 16


def _batch(B=7, d=4, seed=0, classes=3):
    g = torch.Generator().manual_seed(seed)
    img = torch.randn(B, d, generator=g, dtype=torch.float64)
    txt = torch.randn(B, d, generator=g, dtype=torch.float64)
    return img, txt, torch.randint(classes, (B,), generator=g), torch.randint(classes, (B,),
                                                                           generator=g)


@pytest.mark.parametrize("margins,breaks", [((0.2,), ()), ((0.1, 0.5), (0.4,)),
                                            ((0.1, 0.2, 0.3), (1 / 3, 2 / 3)),
                                            ((0.5, 1.0, 2.0, 4.0), (0.1, 0.2, 0.9))])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_multi_margin_triplet_equals_loop(margins, breaks, seed):
    img, txt, li, lt = _batch(seed=seed)
    got = multi_margin_triplet(img, txt, li, lt, margins, breaks)
    expected = loop_loss(img.tolist(), txt.tolist(), li.tolist(), lt.tolist(), margins, breaks)
    assert float(got) == pytest.approx(expected, rel=1e-10, abs=1e-12)


def test_every_band_is_used_and_an_empty_band_is_harmless():
    """Margins large enough that every term is active, so each band's margin shows in the
    sum; a break pair with no distance between them (an empty band) changes nothing."""
    img, txt, li, lt = _batch(B=9, seed=5)
    D = torch.cdist(img, txt).pow(2)
    dn = (D - D.min()) / (D.max() - D.min())
    bands = margin_of(dn, (10.0, 20.0, 30.0), (0.3, 0.6))
    assert set(bands.unique().tolist()) == {10.0, 20.0, 30.0}
    # a band (0.30, 0.3000001] that no distance falls in
    assert not ((dn > 0.3) & (dn <= 0.3000001)).any()
    with_empty = multi_margin_triplet(img, txt, li, lt, (10.0, 15.0, 20.0, 30.0),
                                      (0.3, 0.3000001, 0.6))
    without = multi_margin_triplet(img, txt, li, lt, (10.0, 20.0, 30.0), (0.3, 0.6))
    assert float(with_empty) == pytest.approx(float(without), rel=1e-12)
    expected = loop_loss(img.tolist(), txt.tolist(), li.tolist(), lt.tolist(),
                         (10.0, 20.0, 30.0), (0.3, 0.6))
    assert float(without) == pytest.approx(expected, rel=1e-10)


def test_band_edges_belong_to_the_lower_band():
    x = torch.tensor([0.0, 0.25, 0.2500001, 0.5, 0.75, 1.0], dtype=torch.float64)
    got = margin_of(x, (1.0, 2.0, 3.0), (0.25, 0.75)).tolist()
    assert got == [1.0, 1.0, 2.0, 2.0, 2.0, 3.0]


def test_no_triplet_gives_zero_and_equal_distances_use_the_first_band():
    img, txt, _, _ = _batch(B=4)
    same = torch.zeros(4, dtype=torch.long)
    out = multi_margin_triplet(img, txt, same, same)       # no negative anywhere: N = 0
    assert float(out) == 0.0
    # N = 0 although a text anchor has a triplet (images 0/1 classes, texts all class 0)
    li, lt = torch.tensor([0, 1, 1, 1]), torch.zeros(4, dtype=torch.long)
    assert float(multi_margin_triplet(img, txt, li, lt)) == 0.0
    # all distances equal: dis_norm is 0, so every triplet takes a_1
    z = torch.zeros(3, 2, dtype=torch.float64)
    li = torch.tensor([0, 1, 1])
    got = multi_margin_triplet(z, z, li, li, (0.2, 0.9), (0.5,))
    expected = loop_loss(z.tolist(), z.tolist(), li.tolist(), li.tolist(), (0.2, 0.9), (0.5,))
    # 6 image-anchor triplets and 6 text-anchor ones, each 0.2 + 0 - 0: 12 x 0.2 / 6
    assert float(got) == pytest.approx(expected) and float(got) == pytest.approx(0.4)


def test_gradients_flow_to_both_modalities():
    img, txt, li, lt = _batch(seed=3)
    img.requires_grad_(True)
    txt.requires_grad_(True)
    multi_margin_triplet(img, txt, li, lt, (1.0, 2.0), (0.5,)).backward()
    assert img.grad.abs().sum() > 0 and txt.grad.abs().sum() > 0


@pytest.mark.parametrize("margins,breaks,msg", [
    ((0.3, 0.1), (0.5,), "margins must be ascending"),
    ((0.1, 0.2, 0.3), (0.6, 0.4), "breaks must be ascending"),
    ((0.1, 0.2), (1.0,), r"breaks must lie strictly inside \(0, 1\)"),
    ((0.1, 0.2), (0.0,), r"breaks must lie strictly inside \(0, 1\)"),
    ((0.1, 0.2), (), "2 margins need 1 breaks"),
    ((0.1,), (0.5,), "1 margins need 0 breaks"),
    ((), (), "margins is empty"),
    ((0.1, float("nan")), (0.5,), "must be finite"),
    (("a",), (), "sequences of numbers"),
])
def test_bad_margins_and_breaks_get_a_clear_error(margins, breaks, msg):
    img, txt, li, lt = _batch()
    with pytest.raises(HAANInputError, match=msg):
        multi_margin_triplet(img, txt, li, lt, margins, breaks)


def test_bad_tensors_get_a_clear_error():
    img, txt, li, lt = _batch()
    with pytest.raises(HAANInputError, match="same B and d"):
        multi_margin_triplet(img, txt[:5], li, lt)
    with pytest.raises(HAANInputError, match="img_labels has 3 entries"):
        multi_margin_triplet(img, txt, li[:3], lt)
    with pytest.raises(HAANInputError, match="txt must have 2 dimensions"):
        multi_margin_triplet(img, txt[None], li, lt)
