"""GCM (eq. 10) and LCM (eqs. 11-15) against explicit loops."""
import pytest
import torch

from haan_core.similarity import gcm, lcm, lcm_attention

from . import reference as ref


def _rand(*shape, seed=0, dtype=torch.float64):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def test_gcm_equals_loop():
    img, txt = _rand(5, 7, seed=1), _rand(4, 7, seed=2)
    expected = torch.tensor(ref.gcm(img.tolist(), txt.tolist()), dtype=torch.float64)
    torch.testing.assert_close(gcm(img, txt), expected, rtol=1e-10, atol=1e-12)


def _local_inputs(seed=0, N=4, M=5, alpha=3, beta=6, d=8, dtype=torch.float64):
    patches = _rand(N, alpha, d, seed=seed, dtype=dtype)
    words = _rand(M, beta, d, seed=seed + 1, dtype=dtype)
    lengths = torch.tensor([6, 1, 3, 4, 2][:M])
    return patches, words, lengths


@pytest.mark.parametrize("alpha", [3, 9])
@pytest.mark.parametrize("lam", [9.0, 1.0, 0.0, 20.0, 40.0, 50.0, 60.0, 200.0, -70.0])
def test_lcm_equals_loop(lam, alpha):
    """Every lam, and 9 patches, where the largest U_bar of a patch can be far below 1 (at
    lam = 50 an exponent shifted by lam instead of by its largest value left every weight
    near e^-30, and eq. 14's floor under |kappa| changed L^F from 0.43 to 0.17)."""
    patches, words, lengths = _local_inputs(alpha=alpha)
    expected = torch.tensor(ref.lcm(patches.tolist(), words.tolist(), lengths.tolist(), lam),
                            dtype=torch.float64)
    # float64 agrees with the loop to ~1e-15; 1e-10 leaves room for summation order only
    torch.testing.assert_close(lcm(patches, words, lengths, lam=lam), expected,
                               rtol=1e-10, atol=1e-12)


def test_lcm_of_a_non_square_batch_equals_loop():
    """More texts than images and the reverse: no axis of the code may stand for another."""
    for N, M in ((2, 5), (5, 2)):
        patches, words, lengths = _local_inputs(seed=7, N=N, M=M)
        expected = torch.tensor(ref.lcm(patches.tolist(), words.tolist(), lengths.tolist(),
                                        9.0), dtype=torch.float64)
        torch.testing.assert_close(lcm(patches, words, lengths), expected,
                                   rtol=1e-10, atol=1e-12)


def test_lcm_ignores_padding():
    """Words at positions >= length must not influence the result, whatever they hold."""
    patches, words, lengths = _local_inputs(seed=3)
    noisy = words.clone()
    pad = torch.arange(words.shape[1])[None, :] >= lengths[:, None]
    noisy[pad] = _rand(int(pad.sum()), words.shape[2], seed=99) * 50
    torch.testing.assert_close(lcm(patches, words, lengths), lcm(patches, noisy, lengths))
    # and it does depend on the real words
    changed = words.clone()
    changed[0, 0] += 1.0
    assert not torch.allclose(lcm(patches, words, lengths)[:, 0],
                              lcm(patches, changed, lengths)[:, 0])


@pytest.mark.parametrize("chunk", [1, 2, 3, None])
def test_lcm_chunking_does_not_change_the_result(chunk):
    patches, words, lengths = _local_inputs(seed=4, N=7)
    full = lcm(patches, words, lengths, chunk_size=100)
    torch.testing.assert_close(lcm(patches, words, lengths, chunk_size=chunk), full)


@pytest.mark.parametrize("lam", [9.0, 50.0, 200.0])
def test_lcm_float32_agrees_with_float64(lam):
    """exp(lam * 1) overflows float32 near lam = 89: the shifted exponent must not (at 50,
    an exponent shifted the wrong way, lam U_bar + lam, would overflow)."""
    patches, words, lengths = _local_inputs(seed=6)
    got = lcm(patches.float(), words.float(), lengths, lam=lam)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got.double(), lcm(patches, words, lengths, lam=lam),
                               rtol=1e-4, atol=1e-5)


def test_lcm_float32_and_gradients():
    patches, words, lengths = _local_inputs(seed=5, dtype=torch.float32)
    patches.requires_grad_(True)
    words.requires_grad_(True)
    out = lcm(patches, words, lengths)
    assert out.dtype == torch.float32 and out.shape == (4, 5)
    out.sum().backward()
    assert torch.isfinite(patches.grad).all() and patches.grad.abs().sum() > 0
    pad = torch.arange(words.shape[1])[None, :] >= lengths[:, None]
    assert (words.grad[pad] == 0).all()      # padding receives no gradient
    assert words.grad[~pad].abs().sum() > 0


@pytest.mark.parametrize("lam", [9.0, 50.0, 200.0])
def test_lcm_gradient_equals_the_gradient_of_eqs_11_15_written_directly(lam):
    """lcm shifts eq. 13's exponent outside autograd (the shift cancels in eq. 14); its
    gradient must still be that of eqs. 11-15 as written: softmax weights (eq. 13), the
    context vector kappa, the cosine (eq. 14) and the mean over patches (eq. 15)."""
    patches, words, lengths = _local_inputs(seed=7, alpha=9)
    weights = _rand(4, 5, seed=8)             # a loss that weighs every pair differently

    def grads(fn):
        p, w = patches.clone().requires_grad_(True), words.clone().requires_grad_(True)
        (fn(p, w) * weights).sum().backward()
        return p.grad, w.grad

    def direct(p, w):
        _, A = lcm_attention(p, w, lengths, lam=lam)                   # eqs. 11-13
        kappa = torch.einsum("nmxy,myd->nmxd", A, w)                   # eq. 13
        rel = torch.nn.functional.cosine_similarity(p[:, None], kappa, dim=-1)  # eq. 14
        return rel.mean(dim=2)                                         # eq. 15

    got, expected = grads(lambda p, w: lcm(p, w, lengths, lam=lam)), grads(direct)
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e, rtol=1e-8, atol=1e-10)


def test_attention_is_a_distribution_over_real_words():
    patches, words, lengths = _local_inputs(seed=6)
    U, A = lcm_attention(patches, words, lengths)
    pad = torch.arange(words.shape[1])[None, :] >= lengths[:, None]
    assert (A.transpose(1, 2)[:, :, pad] == 0).all()   # (N, alpha, M, beta)
    torch.testing.assert_close(A.sum(-1), torch.ones(A.shape[:-1], dtype=A.dtype))
    assert U.abs().max() <= 1 + 1e-9
