"""Linear.softmax_cross_entropy and Chain.softmax_cross_entropy: the output layer, the
loss and their backward as one compiled job (kernels/dense.pyx forward_xent_backward),
against a NumPy reference, torch, finite differences, the unfused calls it replaces,
and over thread counts and block sizes."""

import numpy as np
import pytest

import fastrnn
import fastrnn.layers.linear as linear_module
from conftest import tol

SHAPES = [  # (leading shape, D_in, V): a single row, uneven panels, rows over blocks
    ((1,), 7, 5),
    ((3, 4), 16, 33),
    ((6, 9), 40, 130),
]
MASKS = ["none", "bool", "weights"]


def make_mask(kind, shape, rng):
    if kind == "none":
        return None
    if kind == "bool":
        m = rng.random(shape) > 0.4
        m.flat[0] = True
        return m
    return rng.random(shape) * 2


def numpy_reference(x, W, b, t, mask):
    """float64 NumPy: (loss, dx, dW, db) of mean softmax cross-entropy of x W^T + b."""
    x2 = x.reshape(-1, W.shape[1]).astype(np.float64)
    z = x2 @ W.T.astype(np.float64) + (0 if b is None else b.astype(np.float64))
    lp = z - z.max(1, keepdims=True)
    lp -= np.log(np.exp(lp).sum(1, keepdims=True))
    w = np.ones(len(x2)) if mask is None else np.asarray(mask, np.float64).ravel()
    scale = w / w.sum()
    rows = np.arange(len(x2))
    loss = -(scale * lp[rows, t.ravel()]).sum()
    dz = np.exp(lp)
    dz[rows, t.ravel()] -= 1
    dz *= scale[:, None]
    return loss, (dz @ W).reshape(x.shape), dz.T @ x2, dz.sum(0)


@pytest.fixture(params=[1, 5, 48], ids=lambda r: f"block{r}")
def block_rows(request, monkeypatch):
    # the training pass's rule and the bound of the loss alone's blocks
    monkeypatch.setattr(linear_module, "_xent_block_rows", lambda *args: request.param)
    monkeypatch.setattr(linear_module, "_XENT_BLOCK_ROWS", request.param)
    return request.param


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("lead, din, V", SHAPES)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("mask_kind", MASKS)
def test_against_numpy_and_the_unfused_calls(dtype, lead, din, V, bias, mask_kind, block_rows):
    rng = np.random.default_rng(din * V)
    x = rng.standard_normal(lead + (din,)).astype(dtype)
    t = rng.integers(0, V, lead)
    mask = make_mask(mask_kind, lead, rng)
    fused = fastrnn.Linear(din, V, bias=bias, dtype=dtype, seed=1)
    plain = fastrnn.Linear(din, V, bias=bias, dtype=dtype, seed=1)
    for lin in (fused, plain):
        lin.grads["weight"] += 1.0           # both add into the gradients
    loss, dx = fused.softmax_cross_entropy(x, t, mask)
    ref = numpy_reference(x, fused.params["weight"], fused.params.get("bias"), t, mask)
    assert dx.shape == x.shape and dx.dtype == dtype
    np.testing.assert_allclose(loss, ref[0], **tol(dtype))
    np.testing.assert_allclose(dx, ref[1], **tol(dtype))
    np.testing.assert_allclose(fused.grads["weight"], ref[2] + 1.0, **tol(dtype))
    if bias:
        np.testing.assert_allclose(fused.grads["bias"], ref[3], **tol(dtype))
    # the same numbers as forward, softmax_cross_entropy in place and backward (bit for
    # bit once forward multiplies from packed weights too, from 4 rows)
    z, cache = plain.forward(x)
    loss2, dz = fastrnn.softmax_cross_entropy(z, t, mask, out=z)
    dx2 = plain.backward(dz, cache)
    same = np.testing.assert_array_equal if x.size // din >= 4 else (
        lambda a, b: np.testing.assert_allclose(a, b, **tol(dtype)))
    same(loss, loss2)
    same(dx, dx2)
    for name in plain.grads:
        same(fused.grads[name], plain.grads[name])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_against_torch(dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    lin = fastrnn.Linear(24, 70, dtype=dtype, seed=2)
    x = rng.standard_normal((5, 6, 24)).astype(dtype)
    t = rng.integers(0, 70, (5, 6))
    mask = rng.random((5, 6)) > 0.3
    loss, dx = lin.softmax_cross_entropy(x, t, mask)
    ref = torch.nn.Linear(24, 70).to(torch.float64)
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(lin.params["weight"].astype(np.float64)))
        ref.bias.copy_(torch.from_numpy(lin.params["bias"].astype(np.float64)))
    xt = torch.from_numpy(x.astype(np.float64)).requires_grad_()
    nll = torch.nn.functional.cross_entropy(ref(xt).reshape(-1, 70), torch.from_numpy(t).ravel(),
                                            reduction="none")
    m = torch.from_numpy(mask.ravel()).to(torch.float64)
    tloss = (nll * m).sum() / m.sum()
    tloss.backward()
    np.testing.assert_allclose(loss, tloss.item(), **tol(dtype))
    np.testing.assert_allclose(dx, xt.grad.numpy(), **tol(dtype))
    np.testing.assert_allclose(lin.grads["weight"], ref.weight.grad.numpy(), **tol(dtype))
    np.testing.assert_allclose(lin.grads["bias"], ref.bias.grad.numpy(), **tol(dtype))


def test_finite_differences_float64():
    rng = np.random.default_rng(4)
    lin = fastrnn.Linear(6, 9, dtype=np.float64, seed=3)
    x = rng.standard_normal((4, 6))
    t = rng.integers(0, 9, 4)
    mask = np.array([1.0, 0.0, 2.0, 0.5])
    _, dx = lin.softmax_cross_entropy(x, t, mask)
    dW = lin.grads["weight"].copy()

    def loss_at(xv, W):
        probe = fastrnn.Linear(6, 9, dtype=np.float64)
        probe.params["weight"][...] = W
        probe.params["bias"][...] = lin.params["bias"]
        return probe.softmax_cross_entropy(xv, t, mask)[0]

    eps, W = 1e-6, lin.params["weight"]
    for i, j in [(0, 0), (2, 5), (3, 1)]:
        e = np.zeros_like(x)
        e[i, j] = eps
        fd = (loss_at(x + e, W) - loss_at(x - e, W)) / (2 * eps)
        np.testing.assert_allclose(dx[i, j], fd, rtol=1e-6, atol=1e-9)
    for i, j in [(0, 0), (8, 5)]:
        e = np.zeros_like(W)
        e[i, j] = eps
        fd = (loss_at(x, W + e) - loss_at(x, W - e)) / (2 * eps)
        np.testing.assert_allclose(dW[i, j], fd, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bitwise_equal_on_one_and_two_threads(dtype):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((7, 11, 40)).astype(dtype)
    t = rng.integers(0, 300, (7, 11))
    out = []
    for n in (1, 2):
        previous = fastrnn.set_num_threads(n)
        try:
            lin = fastrnn.Linear(40, 300, dtype=dtype, seed=6)
            out.append((lin.softmax_cross_entropy(x, t), lin.grads))
        finally:
            fastrnn.set_num_threads(previous)
    (l1, dx1), g1 = out[0]
    (l2, dx2), g2 = out[1]
    assert l1 == l2
    np.testing.assert_array_equal(dx1, dx2)
    for name in g1:
        np.testing.assert_array_equal(g1[name], g2[name])


def test_bad_input_and_bad_logits_leave_grads_unchanged():
    lin = fastrnn.Linear(4, 6, seed=0)
    x = np.ones((3, 4), np.float32)
    with pytest.raises(ValueError, match="targets"):
        lin.softmax_cross_entropy(x, [0, 1, 6])
    with pytest.raises(ValueError, match="targets"):
        lin.softmax_cross_entropy(x, [0, 1])
    with pytest.raises(TypeError, match="targets"):
        lin.softmax_cross_entropy(x, [0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="mask"):
        lin.softmax_cross_entropy(x, [0, 1, 2], mask=[1, -1, 1])
    with pytest.raises(ValueError, match="x"):
        lin.softmax_cross_entropy(np.ones((3, 5)), [0, 1, 2])
    x[1, 2] = np.inf                      # +inf and -inf logits: NaN
    for backward in (True, False):        # the loss alone takes a pass of its own
        with pytest.raises(ValueError, match="logits"):
            lin.softmax_cross_entropy(x, [0, 1, 2], backward=backward)
    assert not lin.grads["weight"].any() and not lin.grads["bias"].any()
    with pytest.raises(ValueError, match="logits"):     # a masked bad row is still bad
        lin.softmax_cross_entropy(x, [0, 1, 2], mask=[1, 0, 1], backward=False)


def test_all_masked_gives_zero_loss_and_gradients():
    lin = fastrnn.Linear(5, 7, seed=1)
    loss, dx = lin.softmax_cross_entropy(np.ones((2, 3, 5)), np.zeros((2, 3), int),
                                         np.zeros((2, 3), bool))
    assert loss == 0.0 and not dx.any() and not lin.grads["weight"].any()


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_chain_matches_forward_loss_backward(cell):
    rng = np.random.default_rng(7)

    def model():
        return fastrnn.Chain(fastrnn.Embedding(50, 8, seed=1),
                             getattr(fastrnn, cell)(8, 12, seed=2), fastrnn.Linear(12, 50, seed=3))

    fused, plain = model(), model()
    x, t = rng.integers(0, 50, (2, 5, 3))
    mask = rng.random((5, 3)) > 0.2
    state0 = [rng.standard_normal((1, 3, 12)).astype(np.float32)]
    if cell == "LSTM":
        state0 = [(state0[0], rng.standard_normal((1, 3, 12)).astype(np.float32))]
    loss, states = fused.softmax_cross_entropy(x, t, state0, mask)
    z, states2, cache = plain.forward(x, state0)
    loss2, d = fastrnn.softmax_cross_entropy(z, t, mask, out=z)
    plain.backward(d, cache)
    assert loss == loss2
    assert len(states) == len(states2) == 1
    np.testing.assert_array_equal(np.asarray(states[0]), np.asarray(states2[0]))
    for name, g in plain.grads.items():
        np.testing.assert_array_equal(fused.grads[name], g)


def test_chain_needs_a_linear_last():
    chain = fastrnn.Chain(fastrnn.Embedding(5, 4), fastrnn.LSTM(4, 3))
    with pytest.raises(TypeError, match="Linear"):
        chain.softmax_cross_entropy(np.zeros((2, 1), int), np.zeros((2, 1), int))
    alone = fastrnn.Chain(fastrnn.Linear(4, 3, seed=0))
    loss, states = alone.softmax_cross_entropy(np.ones((2, 4)), [0, 2])
    assert states == [] and loss > 0 and alone.grads["0.weight"].any()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("lead, din, V", SHAPES)
@pytest.mark.parametrize("mask_kind", MASKS)
def test_loss_only(dtype, lead, din, V, mask_kind, block_rows):
    rng = np.random.default_rng(V)
    x = rng.standard_normal(lead + (din,)).astype(dtype)
    t = rng.integers(0, V, lead)
    mask = make_mask(mask_kind, lead, rng)
    lin = fastrnn.Linear(din, V, dtype=dtype, seed=2)
    loss, dx = lin.softmax_cross_entropy(x, t, mask, backward=False)
    assert dx is None and not lin.grads["weight"].any() and not lin.grads["bias"].any()
    ref = numpy_reference(x, lin.params["weight"], lin.params["bias"], t, mask)[0]
    np.testing.assert_allclose(loss, ref, **tol(dtype))
    unfused = fastrnn.softmax_cross_entropy(lin(x), t, mask)[0]
    if x.size // din >= 4:
        assert loss == unfused
    assert loss == lin.softmax_cross_entropy(x, t, mask)[0]    # as the training call's


def test_chain_loss_only_matches_inference():
    rng = np.random.default_rng(8)
    net = fastrnn.Chain(fastrnn.Embedding(40, 6, seed=1), fastrnn.LSTM(6, 10, seed=2),
                        fastrnn.Linear(10, 40, seed=3))
    x, t = rng.integers(0, 40, (2, 6, 4))
    loss, states = net.softmax_cross_entropy(x, t, backward=False)
    z, states2 = net(x)
    assert loss == fastrnn.softmax_cross_entropy(z, t)[0]
    for s, s2 in zip(states[0], states2[0]):
        np.testing.assert_array_equal(s, s2)
    assert not any(g.any() for g in net.grads.values())


@pytest.mark.parametrize("share, V, itemsize", [(600, 10_000, 4), (5000, 10_000, 8), (3, 54, 4),
                                                (100_000, 54, 4)])
def test_training_block_rows_stay_within_the_share(share, V, itemsize):
    """The training pass's rows per block: at least 256 (or the whole share), never
    more than a thread's share of the rows."""
    rows = linear_module._xent_block_rows(share, V, itemsize, 2)
    assert min(256, share) <= rows <= share
