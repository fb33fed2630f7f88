"""fastrnn.ctc_loss against torch.nn.functional.ctc_loss (loss and gradient: both target
layouts, every reduction, blank not 0, zero_infinity, repeated labels, empty targets,
impossible alignments, unbatched), against float64 finite differences (the gradient is
exact with respect to log_probs), threads; ctc_greedy_decode on known paths and
ctc_beam_search against exhaustive search over every alignment; bad inputs."""

import itertools

import numpy as np
import pytest

import fastrnn
from conftest import DTYPES

TOL = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-10, atol=1e-12)}


def log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def problem(rng, T=12, N=5, C=6, S=4, blank=0, dtype=np.float64):
    """Random log_probs and padded targets: sequence 1 has repeated labels, 2 an empty
    target, 3 a target its input length cannot hold (impossible), 4 a full-length one."""
    logits = rng.standard_normal((T, N, C))
    labels = [c for c in range(C) if c != blank]
    targets = rng.choice(labels, size=(N, S))
    targets[1, :3] = labels[0]                      # l l l: needs blanks between
    input_lengths = np.array([T, T - 2, 5, 3, T])
    target_lengths = np.array([S, 3, 0, S, S])      # sequence 3: 4 labels in 3 steps
    return log_softmax(logits).astype(dtype), targets, input_lengths, target_lengths


def concatenated(targets, target_lengths):
    return np.concatenate([t[:n] for t, n in zip(targets, target_lengths)])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("layout", ["padded", "concatenated"])
@pytest.mark.parametrize("blank", [0, 3])
@pytest.mark.parametrize("zero_infinity", [False, True])
def test_matches_torch(dtype, reduction, layout, blank, zero_infinity):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(blank + 7 * zero_infinity)
    lp, targets, il, tl = problem(rng, blank=blank, dtype=dtype)
    tg = targets if layout == "padded" else concatenated(targets, tl)
    loss, grad = fastrnn.ctc_loss(lp, tg, il, tl, blank=blank, reduction=reduction,
                                  zero_infinity=zero_infinity)
    lt = torch.tensor(lp, requires_grad=True)
    expected = torch.nn.functional.ctc_loss(lt, torch.tensor(tg), torch.tensor(il),
                                            torch.tensor(tl), blank=blank,
                                            reduction=reduction, zero_infinity=zero_infinity)
    np.testing.assert_allclose(loss, expected.detach().numpy(), **TOL[dtype])
    assert grad.shape == lp.shape and grad.dtype == dtype
    expected.sum().backward()
    # torch's gradient is taken through log_softmax; compose ours with its backward
    dlogits = grad - np.exp(lp) * grad.sum(-1, keepdims=True)
    tgrad = lt.grad.numpy()
    possible = np.ones(lp.shape[1], bool)
    possible[3] = zero_infinity          # torch: NaN there without zero_infinity
    np.testing.assert_allclose(dlogits[:, possible], tgrad[:, possible], **TOL[dtype])
    assert not grad[:, 3].any()          # no alignment: no gradient
    if not zero_infinity:
        assert np.isinf(loss).all() if reduction != "none" else np.isinf(loss[3])
    for n, L in enumerate(il):           # nothing past a sequence's input length
        assert not grad[L:, n].any()


@pytest.mark.parametrize("dtype", DTYPES)
def test_unbatched_matches_torch(dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    lp = log_softmax(rng.standard_normal((9, 5))).astype(dtype)
    tg = np.array([1, 2, 2, 4])
    loss, grad = fastrnn.ctc_loss(lp, tg, 9, 4, reduction="sum")
    lt = torch.tensor(lp, requires_grad=True)
    expected = torch.nn.functional.ctc_loss(lt, torch.tensor(tg), torch.tensor(9),
                                            torch.tensor(4), reduction="sum")
    expected.backward()
    np.testing.assert_allclose(loss, expected.item(), **TOL[dtype])
    assert grad.shape == (9, 5)
    np.testing.assert_allclose(grad - np.exp(lp) * grad.sum(-1, keepdims=True),
                               lt.grad.numpy(), **TOL[dtype])
    losses, _ = fastrnn.ctc_loss(lp, tg, [9], [4], reduction="none")
    assert losses.shape == ()


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_gradient_by_finite_differences(reduction):
    """The gradient is exact with respect to log_probs, taken as given (not renormalised)."""
    rng = np.random.default_rng(4)
    lp, targets, il, tl = problem(rng, T=6, N=5, C=4, S=2)
    il = np.array([6, 5, 4, 2, 6])
    tl = np.array([2, 2, 0, 1, 2])
    _, grad = fastrnn.ctc_loss(lp, targets, il, tl, reduction=reduction)
    eps = 1e-6
    numeric = np.zeros_like(lp)
    for idx in np.ndindex(lp.shape):
        up, down = lp.copy(), lp.copy()
        up[idx] += eps
        down[idx] -= eps
        numeric[idx] = (fastrnn.ctc_loss(up, targets, il, tl, reduction=reduction)[0]
                        - fastrnn.ctc_loss(down, targets, il, tl, reduction=reduction)[0]) \
            / (2 * eps)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)


def test_threads_give_identical_results():
    rng = np.random.default_rng(5)
    T, N, C, S = 60, 16, 8, 12
    lp = log_softmax(rng.standard_normal((T, N, C))).astype(np.float32)
    tg = rng.integers(1, C, (N, S))
    il = rng.integers(30, T + 1, N)
    tl = rng.integers(0, S + 1, N)
    previous = fastrnn.set_num_threads(1)
    try:
        one = fastrnn.ctc_loss(lp, tg, il, tl, reduction="none")
        fastrnn.set_num_threads(2)
        two = fastrnn.ctc_loss(lp, tg, il, tl, reduction="none")
    finally:
        fastrnn.set_num_threads(previous)
    np.testing.assert_array_equal(one[0], two[0])
    np.testing.assert_array_equal(one[1], two[1])


def test_inputs_not_modified():
    rng = np.random.default_rng(6)
    lp, targets, il, tl = problem(rng)
    lp.flags.writeable = False
    copies = [a.copy() for a in (lp, targets, il, tl)]
    fastrnn.ctc_loss(lp, targets, il, tl)
    for a, b in zip((lp, targets, il, tl), copies):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------ decoding

def path_log_probs(path, C, sharp=5.0):
    """Log-probabilities whose most likely class at step t is path[t]."""
    z = np.zeros((len(path), C))
    z[np.arange(len(path)), path] = sharp
    return log_softmax(z)


def test_greedy_decode_collapses_repeats_then_drops_blanks():
    paths = [[1, 1, 0, 2, 2, 0, 2, 3], [0, 0, 0, 0, 0, 0, 0, 0], [3, 0, 3, 3, 1, 1, 0, 0]]
    lp = np.stack([path_log_probs(p, 4) for p in paths], axis=1)      # (T, N, C)
    assert fastrnn.ctc_greedy_decode(lp, [8, 8, 8]) == [[1, 2, 2, 3], [], [3, 3, 1]]
    assert fastrnn.ctc_greedy_decode(lp, [3, 8, 4]) == [[1], [], [3, 3]]
    assert fastrnn.ctc_greedy_decode(lp[:, 0], 8) == [1, 2, 2, 3]
    # another blank: class 2 is the blank, 0 a label
    assert fastrnn.ctc_greedy_decode(lp[:, 0], 8, blank=2) == [1, 0, 0, 3]


def exhaustive(y, blank):
    """log p(l | y) of every labelling l, summed over all C^T alignments."""
    T, C = y.shape
    totals = {}
    for path in itertools.product(range(C), repeat=T):
        collapsed = [c for i, c in enumerate(path) if i == 0 or c != path[i - 1]]
        labels = tuple(c for c in collapsed if c != blank)
        totals[labels] = np.logaddexp(totals.get(labels, -np.inf), y[np.arange(T), path].sum())
    return totals


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("blank", [0, 2])
def test_beam_search_with_a_wide_beam_is_exhaustive_search(seed, blank):
    rng = np.random.default_rng(seed)
    T, C = 5, 3
    y = log_softmax(2 * rng.standard_normal((T, C)))
    truth = exhaustive(y, blank)
    ranked = sorted(truth.items(), key=lambda kv: -kv[1])
    beams = fastrnn.ctc_beam_search(y, T, beam_width=len(truth), blank=blank)
    assert tuple(beams[0][0]) == ranked[0][0]
    assert len(beams) == len(truth)
    for labels, score in beams:
        np.testing.assert_allclose(score, truth[tuple(labels)], rtol=1e-10)
    assert [b[1] for b in beams] == sorted((b[1] for b in beams), reverse=True)
    # the scores are the CTC probabilities of those labellings
    labels, score = beams[0]
    loss, _ = fastrnn.ctc_loss(y, np.array(labels, np.int64), T, len(labels), blank=blank,
                               reduction="sum")
    np.testing.assert_allclose(-loss, score, rtol=1e-10)


def test_beam_search_batched_and_narrow():
    rng = np.random.default_rng(9)
    lp = log_softmax(rng.standard_normal((6, 3, 4)))
    out = fastrnn.ctc_beam_search(lp, [6, 4, 1], beam_width=3)
    assert len(out) == 3 and all(1 <= len(b) <= 3 for b in out)
    for n, L in enumerate([6, 4, 1]):
        assert out[n] == fastrnn.ctc_beam_search(lp[:L, n], L, beam_width=3)
    # a beam of one is at least as good as greedy's path probability
    greedy = fastrnn.ctc_greedy_decode(lp[:, 0], 6)
    best = fastrnn.ctc_beam_search(lp[:, 0], 6, beam_width=1)[0]
    loss, _ = fastrnn.ctc_loss(lp[:, 0], np.array(greedy, np.int64), 6, len(greedy),
                               reduction="sum")
    assert best[1] <= -loss + 1e-12


# ---------------------------------------------------------------- bad inputs

def test_bad_inputs():
    rng = np.random.default_rng(10)
    lp, targets, il, tl = problem(rng)
    f = fastrnn.ctc_loss
    with pytest.raises(ValueError, match="log_probs"):
        f(lp[0, 0], targets, il, tl)
    with pytest.raises(ValueError, match="log_probs"):
        f(np.full_like(lp, np.nan), targets, il, tl)
    with pytest.raises(TypeError, match="log_probs"):
        f(lp.astype(complex), targets, il, tl)
    with pytest.raises(TypeError, match="targets"):
        f(lp, targets.astype(float), il, tl)
    with pytest.raises(ValueError, match="targets"):
        f(lp, targets[:3], il, tl)
    with pytest.raises(ValueError, match="blank"):
        f(lp, np.where(targets == 1, 0, targets), il, tl)
    with pytest.raises(ValueError, match="targets"):
        f(lp, np.full_like(targets, 6), il, tl)
    with pytest.raises(ValueError, match="input_lengths"):
        f(lp, targets, il + 1, tl)
    with pytest.raises(ValueError, match="input_lengths"):
        f(lp, targets, il[:3], tl)
    with pytest.raises(TypeError, match="input_lengths"):
        f(lp, targets, il.astype(float), tl)
    with pytest.raises(ValueError, match="target_lengths"):
        f(lp, targets, il, tl + 1)
    with pytest.raises(ValueError, match="target_lengths"):
        f(lp, concatenated(targets, tl), il, tl + 1)
    with pytest.raises(ValueError, match="target_lengths"):
        f(lp, targets, il, -tl - 1)
    with pytest.raises(ValueError, match="reduction"):
        f(lp, targets, il, tl, reduction="avg")
    with pytest.raises(ValueError, match="blank"):
        f(lp, targets, il, tl, blank=6)
    with pytest.raises(TypeError, match="zero_infinity"):
        f(lp, targets, il, tl, zero_infinity=None)
    with pytest.raises(ValueError, match="beam_width"):
        fastrnn.ctc_beam_search(lp, il, beam_width=0)
    with pytest.raises(TypeError, match="beam_width"):
        fastrnn.ctc_beam_search(lp, il, beam_width=2.0)
    with pytest.raises(ValueError, match="input_lengths"):
        fastrnn.ctc_greedy_decode(lp, il + 1)


def test_zero_input_length_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(11)
    lp = log_softmax(rng.standard_normal((4, 3, 5)))
    tg, il, tl = np.array([[1, 2], [1, 2], [3, 3]]), np.array([0, 0, 4]), np.array([0, 2, 2])
    loss, grad = fastrnn.ctc_loss(lp, tg, il, tl, reduction="none")
    expected = torch.nn.functional.ctc_loss(torch.tensor(lp), torch.tensor(tg),
                                            torch.tensor(il), torch.tensor(tl),
                                            reduction="none")
    np.testing.assert_allclose(loss, np.abs(expected.numpy()), rtol=1e-10)   # torch: -0.0
    assert not grad[:, :2].any()
