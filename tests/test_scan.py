"""SCAN (Lee et al., ECCV 2018): Sec. 3.1 (eqs. 1-8: s, s_bar, the attention, R and the
pooling in both formulations) and the Sec. 3.2 loss (eq. 12) against explicit loops, one
image-text pair (or one anchor) at a time, in Python floats."""
import math

import pytest
import torch

from haan_core import HAANInputError
from haan_core.methods.scan import SCANNet, clipped_l2norm, scan_loss
from haan_core.methods.shan import shan_loss

from .reference import cosine as cos
from .reference import dot, norm
from .short_training import short_training_map


# ----------------------------------------------------------------- the reference loops

def softmax(xs):
    top = max(xs)
    e = [math.exp(x - top) for x in xs]
    return [v / sum(e) for v in e]


def combine(weights, vectors):
    return [sum(w * v[d] for w, v in zip(weights, vectors)) for d in range(len(vectors[0]))]


def unit_or_zero(xs):
    """A vector divided by its l2 norm (a vector that clipped to all zeros stays 0)."""
    n = norm(xs)
    return [x / n for x in xs] if n > 0 else [0.0] * len(xs)


def ref_pair(p, V, T):
    """Sec. 3.1 for one image (k regions V) and one text (its n real words T), written
    from the paper's displays and the reference code's clipped_l2norm."""
    k, n = len(V), len(T)
    slope, lam1, lam2 = p["slope"], p["lam1"], p["lam2"]
    s = [[cos(V[i], T[j]) for j in range(n)] for i in range(k)]                 # eq. 1
    c = [[x if x > 0 else slope * x for x in row] for row in s]                # LeakyReLU
    if p["formulation"] == "t2i":
        # s_bar: each region's row normalised over the words j
        s_bar = [unit_or_zero(c[i]) for i in range(k)]
        # t-i attention (inline in Sec. 3.1): each word j attends over the regions i
        cols = [softmax([lam1 * s_bar[i][j] for i in range(k)]) for j in range(n)]
        alpha = [[cols[j][i] for j in range(n)] for i in range(k)]
        attended = [combine(cols[j], V) for j in range(n)]                     # a^v_j
        R = [cos(T[j], attended[j]) for j in range(n)]                         # R' (t-i)
    else:
        # s_bar: each word's column normalised over the regions i
        cols = [unit_or_zero([c[i][j] for i in range(k)]) for j in range(n)]
        s_bar = [[cols[j][i] for j in range(n)] for i in range(k)]
        # eq. 3 (i-t): each region i attends over the words j
        alpha = [softmax([lam1 * s_bar[i][j] for j in range(n)]) for i in range(k)]
        attended = [combine(alpha[i], T) for i in range(k)]                    # eq. 2
        R = [cos(V[i], attended[i]) for i in range(k)]                         # eq. 4
    if p["pooling"] == "lse":                                                  # eqs. 5, 7
        score = math.log(sum(math.exp(lam2 * r) for r in R)) / lam2
    else:                                                                      # eqs. 6, 8
        score = sum(R) / len(R)
    return {"s": s, "s_bar": s_bar, "alpha": alpha, "attended": attended, "R": R,
            "score": score}


def loop_loss(S, li, lt, margin, hardest, directions, reduction):
    """Sec. 3.2 one anchor at a time: for each positive (same-class) pair, the hinge with
    the hardest (or every) other-class candidate of each anchor."""
    N, M = len(S), len(S[0])
    total, n_pos = 0.0, 0
    for i in range(N):                       # image anchors
        for j in range(M):
            if lt[j] != li[i]:
                continue
            n_pos += 1
            if directions in ("both", "i2t"):
                hinges = [max(0.0, margin - S[i][j] + S[i][t]) for t in range(M)
                          if lt[t] != li[i]]
                total += (max(hinges) if hinges else 0.0) if hardest else sum(hinges)
    for j in range(M):                       # text anchors
        for i in range(N):
            if li[i] != lt[j] or directions not in ("both", "t2i"):
                continue
            hinges = [max(0.0, margin - S[i][j] + S[a][j]) for a in range(N)
                      if li[a] != lt[j]]
            total += (max(hinges) if hinges else 0.0) if hardest else sum(hinges)
    return total / max(n_pos, 1) if reduction == "mean" else total


def vsepp_loss(S, margin, hardest):
    """SCAN's ContrastiveLoss as its code reads, for a square batch of matched pairs
    (i, i): per image the captions' violations, per caption the images', the diagonal
    cleared; the largest per anchor (max_violation) or all; summed."""
    B = len(S)
    total = 0.0
    for i in range(B):
        cost_s = [max(0.0, margin + S[i][j] - S[i][i]) for j in range(B) if j != i]
        cost_im = [max(0.0, margin + S[j][i] - S[i][i]) for j in range(B) if j != i]
        total += (max(cost_s) + max(cost_im)) if hardest else (sum(cost_s) + sum(cost_im))
    return total


# ----------------------------------------------------------------- fixtures

@pytest.fixture(autouse=True)
def one_thread():
    """Every tensor here is tiny: one thread is faster than two on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _rand(*shape, seed=0, dtype=torch.float64):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


D = 6
CONFIGS = {   # the four published configurations, and the paper's [.]_+ clip
    "t2i-lse": dict(formulation="t2i", pooling="lse", lambda_softmax=9.0, lambda_lse=6.0),
    "t2i-mean": dict(formulation="t2i", pooling="mean", lambda_softmax=9.0),
    "i2t-lse": dict(formulation="i2t", pooling="lse", lambda_softmax=4.0, lambda_lse=5.0),
    "i2t-mean": dict(formulation="i2t", pooling="mean", lambda_softmax=4.0),
    "t2i-relu": dict(formulation="t2i", pooling="lse", negative_slope=0.0, lambda_lse=20.0),
    "i2t-relu": dict(formulation="i2t", pooling="mean", negative_slope=0.0,
                     lambda_softmax=2.5),
}


def params_of(net):
    return {"formulation": net.formulation, "pooling": net.pooling,
            "slope": net.negative_slope, "lam1": net.lambda_softmax, "lam2": net.lambda_lse}


def _net(seed=0, **kw):
    torch.manual_seed(seed)
    return SCANNet(img_dim=5, vocab_size=12, word_dim=4, embed_dim=D, **kw).double()


def _emb(seed=1, N=3, k=9, M=4, n=5, lengths=(5, 1, 3, 2)):
    """Random (not unit) region and word embeddings, captions of different lengths, zero
    at padding as encode_texts gives."""
    regions = _rand(N, k, D, seed=seed)
    words = _rand(M, n, D, seed=seed + 1)
    lengths = torch.tensor(lengths[:M])
    words[torch.arange(n)[None, :] >= lengths[:, None]] = 0.0
    return regions, (words, lengths)


# ----------------------------------------------------------------- the equations

@pytest.mark.parametrize("cfg", list(CONFIGS))
def test_every_step_equals_the_loop(cfg):
    """s_ij, s_bar (LeakyReLU then l2 over the query fragments), the attention (eq. 3),
    the attended vectors (eq. 2), R (eq. 4, computed through the Gram matrix) and the
    pooled score (eqs. 5-8), pair by pair, against the Python-float loop; ``similarity``
    (the chunked path) gives the same scores."""
    net = _net(**CONFIGS[cfg])
    regions, (words, lengths) = _emb()
    with torch.no_grad():
        got = net.explain(regions, (words, lengths))
        sim = net.similarity(regions, (words, lengths), chunk_size=3)
    p = params_of(net)
    t2i = net.formulation == "t2i"
    expected = torch.zeros(3, 4, dtype=torch.float64)
    for a in range(3):
        for b in range(4):
            n = int(lengths[b])
            ref = ref_pair(p, regions[a].tolist(), words[b, :n].tolist())
            expected[a, b] = ref["score"]
            for key in ("s", "s_bar", "alpha", "attended", "R", "score"):
                g = got[key][a, b]
                if key in ("s", "s_bar", "alpha"):
                    g = g[:, :n]
                elif t2i and key in ("attended", "R"):
                    g = g[:n]
                torch.testing.assert_close(g, torch.tensor(ref[key], dtype=torch.float64),
                                           rtol=1e-10, atol=1e-12, msg=f"{key} {a},{b}")
            # padded words are neither attended nor pooled
            assert (got["alpha"][a, b, :, n:] == 0).all()
            if t2i:
                assert (got["R"][a, b, n:] == 0).all()
                assert (got["attended"][a, b, n:] == 0).all()
    torch.testing.assert_close(sim, expected, rtol=1e-10, atol=1e-12)


def test_the_attention_is_normalised_over_the_attended_modality():
    """t2i: each word's weights over the regions sum to 1; i2t: each region's weights over
    the real words sum to 1. s_bar rows (t2i, over words) or columns (i2t, over regions)
    have unit norm: the two formulations normalise along different axes."""
    regions, txt = _emb()
    real = torch.arange(5)[None, :] < txt[1][:, None]                  # (M, n)
    for form, att_dim, norm_dim in (("t2i", 2, 3), ("i2t", 3, 2)):
        with torch.no_grad():
            got = _net(formulation=form).explain(regions, txt)
        sums = got["alpha"].sum(att_dim)           # t2i: (N, M, n); i2t: (N, M, k)
        norms = got["s_bar"].norm(dim=norm_dim)    # t2i: (N, M, k); i2t: (N, M, n)
        if form == "t2i":
            sums = sums[:, real]
        else:
            norms = norms[:, real]
        torch.testing.assert_close(sums, torch.ones_like(sums))
        torch.testing.assert_close(norms, torch.ones_like(norms))


def test_lse_pooling_is_a_soft_maximum():
    """Eq. 3: max R <= S_LSE <= max R + log(count) / lambda_2, and S_LSE -> max R."""
    regions, txt = _emb()
    with torch.no_grad():
        R = _net().explain(regions, txt)["R"]
        lengths = txt[1]
        real = torch.arange(5)[None, None, :] < lengths[None, :, None]
        top = R.masked_fill(~real, -2).amax(-1)
        for lam in (1.0, 6.0, 200.0):
            s = _net(lambda_lse=lam).similarity(regions, txt)
            assert (s >= top - 1e-12).all()
            assert (s <= top + torch.log(lengths.double())[None] / lam + 1e-12).all()
        torch.testing.assert_close(s, top, atol=0.02, rtol=0)


def test_the_published_t2i_lse_configuration_is_the_default():
    net = SCANNet(img_dim=4, vocab_size=5)
    assert (net.formulation, net.pooling, net.lambda_softmax, net.lambda_lse) == \
        ("t2i", "lse", 9.0, 6.0)
    assert net.negative_slope == 0.1 and net.embed_dim == 1024
    assert net.txt.embed.embedding_dim == 300 and net.max_chunk_elements == 1 << 24
    assert (net.img.bias == 0).all()


def test_the_image_layer_has_scans_xavier_initialisation():
    """EncoderImagePrecomp: weight uniform in +-sqrt(6 / (in + out)), bias 0 (PyTorch's own
    default would stay within +-1 / sqrt(in) = 0.1 here, and have a bias)."""
    torch.manual_seed(0)
    w = SCANNet(img_dim=100, vocab_size=5, word_dim=4, embed_dim=300).img.weight
    bound = math.sqrt(6 / 400)
    assert w.abs().max() <= bound and w.abs().max() > 0.12


def test_encode_images_is_one_linear_layer_per_patch_then_l2():
    net = _net()
    patches = _rand(2, 9, 5, seed=3)
    with torch.no_grad():
        got = net.encode_images(patches)
    W, b = net.img.weight.tolist(), net.img.bias.tolist()
    for a in range(2):
        rows = [[dot(w, x) + bb for w, bb in zip(W, b)] for x in patches[a].tolist()]
        torch.testing.assert_close(got[a], torch.tensor([[v / norm(r) for v in r]
                                                         for r in rows], dtype=torch.float64),
                                   rtol=1e-10, atol=1e-12)


def test_encode_texts_gives_unit_words_zero_at_padding():
    net = _net()
    tokens = torch.tensor([[3, 4, 5], [6, 0, 0]])
    words, lengths = net.encode_texts(tokens, torch.tensor([3, 1]))
    assert words.shape == (2, 3, D) and lengths.tolist() == [3, 1]
    torch.testing.assert_close(words[0].norm(dim=-1), torch.ones(3, dtype=torch.float64))
    assert (words[1, 1:] == 0).all()


# ----------------------------------------------------------------- chunks and padding

@pytest.mark.parametrize("form", ["t2i", "i2t"])
@pytest.mark.parametrize("chunk", [1, 2, 3, 7, None])
def test_chunking_does_not_change_the_result(form, chunk):
    net = _net(formulation=form, pooling="lse" if chunk != 2 else "mean")
    regions, txt = _emb(N=4, M=7, lengths=(5, 1, 3, 2, 4, 5, 1))
    with torch.no_grad():
        full = net.similarity(regions, txt, chunk_size=100)
        got = net.similarity(regions, txt, chunk_size=chunk)
        net.max_chunk_elements = 1                         # forces one text per chunk
        one = net.similarity(regions, txt)
    assert got.shape == (4, 7)
    torch.testing.assert_close(got, full, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(one, full, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("cfg", ["t2i-lse", "t2i-mean", "i2t-lse", "i2t-mean"])
def test_padded_words_do_not_change_scores(cfg):
    """Whatever padded positions hold, and however many are appended, the scores stay; a
    change to a real word does change its text's scores (and no other's)."""
    net = _net(**CONFIGS[cfg])
    regions, (words, lengths) = _emb()
    with torch.no_grad():
        base = net.similarity(regions, (words, lengths))
        noisy = torch.cat([words, torch.zeros(4, 3, D, dtype=words.dtype)], dim=1)
        pad = torch.arange(noisy.shape[1])[None, :] >= lengths[:, None]
        noisy[pad] = _rand(int(pad.sum()), D, seed=9) * 50
        torch.testing.assert_close(net.similarity(regions, (noisy, lengths)), base,
                                   rtol=1e-12, atol=1e-14)
        changed = words.clone()
        changed[2, 0] += 1.0
        moved = net.similarity(regions, (changed, lengths))
    assert not torch.allclose(moved[:, 2], base[:, 2])
    torch.testing.assert_close(moved[:, [0, 1, 3]], base[:, [0, 1, 3]])


def test_padding_tokens_appended_to_a_text_change_nothing_end_to_end():
    net = _net()
    g = torch.Generator().manual_seed(5)
    tokens = torch.randint(1, 12, (4, 5), generator=g)
    lengths = torch.tensor([5, 2, 4, 1])
    tokens[torch.arange(5)[None, :] >= lengths[:, None]] = 0
    longer = torch.cat([tokens, torch.zeros(4, 4, dtype=tokens.dtype)], dim=1)
    patches = _rand(3, 9, 5, seed=6)
    with torch.no_grad():
        img = net.encode_images(patches)
        a = net.similarity(img, net.encode_texts(tokens, lengths))
        b = net.similarity(img, net.encode_texts(longer, lengths))
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("cfg", ["t2i-lse", "t2i-mean", "i2t-lse", "i2t-relu"])
def test_padded_words_receive_no_gradient(cfg):
    net = _net(**CONFIGS[cfg])
    regions, (words, lengths) = _emb()
    words = words + _rand(*words.shape, seed=4)          # padding holds garbage
    words.requires_grad_(True)
    regions.requires_grad_(True)
    net.similarity(regions, (words, lengths)).sum().backward()
    pad = torch.arange(words.shape[1])[None, :] >= lengths[:, None]
    assert torch.isfinite(words.grad).all() and torch.isfinite(regions.grad).all()
    assert (words.grad[pad] == 0).all() and (words.grad[~pad].abs().sum(-1) > 0).all()


@pytest.mark.parametrize("form", ["t2i", "i2t"])
def test_the_normalisation_ignores_whatever_padded_positions_hold(form):
    """clipped_l2norm on its own: padded words enter no norm and come out 0."""
    s = _rand(2, 3, 4, 5, seed=7)
    mask = torch.tensor([[True] * 5, [True, True, False, False, False],
                         [True] + [False] * 4])
    cleaned = torch.where(mask[None, :, None, :], s, torch.zeros_like(s))
    got = clipped_l2norm(s, mask, form)
    torch.testing.assert_close(got, clipped_l2norm(cleaned, mask, form))
    assert (got.permute(1, 3, 0, 2)[~mask] == 0).all()          # (M, n, N, k) at padding
    assert (got.permute(1, 3, 0, 2)[mask] != 0).any()


@pytest.mark.parametrize("form", ["t2i", "i2t"])
def test_zero_vectors_give_finite_scores_and_gradients(form):
    """A degenerate all-zero image (or word) has attended vectors of norm 0: scores and
    gradients stay finite (norms are floored at EPS)."""
    net = _net(formulation=form)
    regions, (words, lengths) = _emb()
    regions[0] = 0.0
    words[0, 1] = 0.0
    regions.requires_grad_(True)
    words.requires_grad_(True)
    sim = net.similarity(regions, (words, lengths))
    sim.sum().backward()
    assert torch.isfinite(sim).all()
    assert torch.isfinite(regions.grad).all() and torch.isfinite(words.grad).all()


# ----------------------------------------------------------------- the loss

def _scores(N=6, M=7, seed=0, classes=3):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(N, M, generator=g, dtype=torch.float64),
            torch.randint(classes, (N,), generator=g),
            torch.randint(classes, (M,), generator=g))


@pytest.mark.parametrize("hardest", [True, False])
@pytest.mark.parametrize("directions", ["both", "i2t", "t2i"])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_loss_equals_loop(hardest, directions, reduction):
    for seed, shape in ((0, (6, 7)), (1, (7, 4)), (2, (5, 5))):
        S, li, lt = _scores(*shape, seed=seed)
        got = scan_loss(S, li, lt, margin=0.5, hardest=hardest, directions=directions,
                        reduction=reduction)
        expected = loop_loss(S.tolist(), li.tolist(), lt.tolist(), 0.5, hardest,
                             directions, reduction)
        assert float(got) == pytest.approx(expected, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("hardest", [True, False])
def test_with_one_positive_per_anchor_the_loss_is_scans_contrastive_loss(hardest):
    """Labels 0..B-1 make (i, i) the only positives: the loss is then SCAN's own sum."""
    for seed in range(3):
        S = _rand(5, 5, seed=seed)
        labels = torch.arange(5)
        got = scan_loss(S, labels, labels, hardest=hardest)          # defaults: 0.2, sum
        assert float(got) == pytest.approx(vsepp_loss(S.tolist(), 0.2, hardest), rel=1e-12)
        assert float(got) == pytest.approx(float(shan_loss(S, labels, labels,
                                                           hardest=hardest)) * 5, rel=1e-12)


def test_a_same_class_pair_is_never_a_negative():
    """Image 0 scores highest with text 1, which shares its class but is not its own
    text. Read at the instance level (text 1 a negative of the pair (0, 0)) the loss would
    be 0.2 - 0.5 + 0.9 = 0.6; at the class level nothing violates."""
    li, lt = torch.tensor([0, 1]), torch.tensor([0, 0, 1])
    S = torch.tensor([[0.5, 0.9, 0.1], [0.0, 0.2, 0.6]], dtype=torch.float64,
                     requires_grad=True)
    loss = scan_loss(S, li, lt)
    assert loss.item() == 0.0
    loss.backward()
    assert (S.grad == 0).all()
    inst = scan_loss(S.detach()[:, :2], torch.tensor([0, 1]), torch.tensor([0, 1]),
                     directions="i2t")
    assert float(inst) == pytest.approx(0.6)
    for v in (0.99, 5.0):                      # raising the same-class pair changes nothing
        S2 = S.detach().clone()
        S2[0, 1] = v
        assert float(scan_loss(S2, li, lt)) == 0.0
    S3 = S.detach().clone()                    # an other-class text above the positives
    S3[0, 2] = 0.8
    assert float(scan_loss(S3, li, lt)) == pytest.approx(
        loop_loss(S3.tolist(), [0, 1], [0, 0, 1], 0.2, True, "both", "sum"))
    assert float(scan_loss(S3, li, lt)) > 0


# ----------------------------------------------------------------- bad input

@pytest.mark.parametrize("call,msg", [
    (lambda S, li, lt: scan_loss(S[0], li, lt), "sim must have 2 dimensions"),
    (lambda S, li, lt: scan_loss(S, li[:2], lt), "img_labels has 2 entries"),
    (lambda S, li, lt: scan_loss(S, li, lt.double()), "integer class ids"),
    (lambda S, li, lt: scan_loss(S * float("nan"), li, lt), "NaN"),
    (lambda S, li, lt: scan_loss(S, li, lt, margin=-0.1), "margin must be"),
    (lambda S, li, lt: scan_loss(S, li, lt, directions="up"), "directions must be"),
    (lambda S, li, lt: scan_loss(S, li, lt, reduction="max"), "reduction must be"),
    (lambda S, li, lt: scan_loss(S, li, lt, hardest=1), "hardest must be"),
])
def test_bad_loss_input_gets_a_clear_error(call, msg):
    S, li, lt = _scores()
    with pytest.raises(HAANInputError, match=msg):
        call(S, li, lt)


@pytest.mark.parametrize("kw,msg", [
    (dict(formulation="x2y"), "formulation must be one of"),
    (dict(pooling="max"), "pooling must be one of"),
    (dict(lambda_softmax=float("nan")), "lambda_softmax must be a finite number > 0"),
    (dict(lambda_lse=0), "lambda_lse must be a finite number > 0"),
    (dict(lambda_lse=True), "lambda_lse must be"),
    (dict(negative_slope=-0.1), "negative_slope must be a finite number >= 0"),
    (dict(embed_dim=0), "embed_dim must be a positive integer"),
    (dict(max_chunk_elements=1.5), "max_chunk_elements must be a positive integer"),
])
def test_bad_construction_gets_a_clear_error(kw, msg):
    with pytest.raises(HAANInputError, match=msg):
        SCANNet(4, 5, **kw)


def test_bad_network_input_gets_a_clear_error():
    net = _net()
    regions, (words, lengths) = _emb()
    with pytest.raises(HAANInputError, match="width embed_dim"):
        net.similarity(regions[..., :4], (words, lengths))
    with pytest.raises(HAANInputError, match="every length"):
        net.similarity(regions, (words, torch.tensor([5, 0, 3, 2])))
    with pytest.raises(HAANInputError, match="every length"):
        net.similarity(regions, (words, torch.tensor([6, 1, 3, 2])))
    with pytest.raises(HAANInputError, match="one entry per text"):
        net.similarity(regions, (words, lengths[:3]))
    with pytest.raises(HAANInputError, match="integer word counts"):
        net.similarity(regions, (words, lengths.double()))
    with pytest.raises(HAANInputError, match="the \\(words, lengths\\) pair"):
        net.similarity(regions, words)
    with pytest.raises(HAANInputError, match="chunk_size"):
        net.similarity(regions, (words, lengths), chunk_size=0)
    with pytest.raises(HAANInputError, match="img_emb must have 3 dimensions"):
        net.similarity(regions[0], (words, lengths))
    with pytest.raises(HAANInputError, match="share dtype"):
        net.similarity(regions.float(), (words, lengths))
    with pytest.raises(HAANInputError, match="NaN"):
        net.similarity(regions * float("nan"), (words, lengths))
    with pytest.raises(HAANInputError, match="img_dim=5"):
        net.encode_images(_rand(2, 9, 4))
    with pytest.raises(HAANInputError, match="integer ids"):
        net.encode_texts(torch.ones(2, 3), torch.tensor([3, 3]))
    with pytest.raises(HAANInputError, match="empty"):
        net.encode_images(_rand(0, 9, 5))


# ----------------------------------------------------------------- learning

@pytest.mark.parametrize("cfg", ["t2i-lse", "i2t-mean"])
def test_gradients_reach_every_parameter(cfg):
    torch.manual_seed(0)
    net = SCANNet(img_dim=5, vocab_size=12, word_dim=4, embed_dim=D, **CONFIGS[cfg])
    g = torch.Generator().manual_seed(1)
    tokens = torch.randint(1, 12, (6, 5), generator=g)
    lengths = torch.tensor([5, 2, 4, 1, 3, 5])
    tokens[torch.arange(5)[None, :] >= lengths[:, None]] = 0
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    sim = net.similarity(net.encode_images(torch.randn(6, 9, 5, generator=g)),
                         net.encode_texts(tokens, lengths))
    scan_loss(sim, labels, labels, margin=10.0).backward()   # every hinge active
    names = [name for name, _ in net.named_parameters()]
    assert len(names) == len(set(names)) == 2 + 1 + 8        # img, embed, 2-way GRU
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_same_seed_same_scores():
    def run(seed):
        torch.manual_seed(seed)
        net = SCANNet(img_dim=5, vocab_size=12, word_dim=4, embed_dim=D)
        tokens = torch.randint(1, 12, (4, 5))
        return net.similarity(net.encode_images(torch.randn(3, 9, 5)),
                              net.encode_texts(tokens, torch.tensor([5, 3, 1, 4])))
    assert torch.equal(run(3), run(3))
    assert not torch.equal(run(3), run(4))


def test_short_training_beats_chance():
    """15 epochs of Adam on the Sec. 3.2 loss (summed, hardest negative) with the
    synthetic data (240 training pairs, 6 classes), SCAN t-i LSE with the published
    lambdas: the test texts (and images) of the query's class rank far above a random
    ranking. Measured test mAP, torch seeds 0-3: 0.41-0.62 both ways; chance 0.20."""
    i2t, t2i, chance = short_training_map(
        lambda data: SCANNet(img_dim=16, vocab_size=len(data.vocab), word_dim=16,
                             embed_dim=16),
        lambda net, b: net.similarity(net.encode_images(b["patches"]),
                                      net.encode_texts(b["tokens"], b["lengths"])),
        scan_loss, epochs=15)
    assert i2t > chance + 0.2 and t2i > chance + 0.2, (i2t, t2i, chance)