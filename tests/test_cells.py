"""fastrnn.RNNCell, LSTMCell and GRUCell: against torch.nn's cells (forward, backward and
parameter gradients, same weights), a loop of steps against the one-layer layer on the
whole sequence (forward and backward), state_dicts both ways, and bad inputs."""

import numpy as np
import pytest

import fastrnn
from conftest import DTYPES, assert_close

torch = pytest.importorskip("torch")

D, H, T = 5, 6, 4
KINDS = ["rnn_tanh", "rnn_relu", "lstm", "gru"]
TORCH_DTYPE = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}


def make_cell(kind, dtype=np.float64, bias=True, seed=0):
    if kind.startswith("rnn"):
        return fastrnn.RNNCell(D, H, bias, kind[4:], dtype=dtype, seed=seed)
    cls = fastrnn.LSTMCell if kind == "lstm" else fastrnn.GRUCell
    return cls(D, H, bias, dtype=dtype, seed=seed)


def torch_cell(kind, cell):
    kw = dict(bias=cell.bias, dtype=TORCH_DTYPE[cell.dtype])
    if kind.startswith("rnn"):
        mod = torch.nn.RNNCell(D, H, nonlinearity=kind[4:], **kw)
    else:
        mod = (torch.nn.LSTMCell if kind == "lstm" else torch.nn.GRUCell)(D, H, **kw)
    mod.load_state_dict({k: torch.from_numpy(v) for k, v in cell.state_dict().items()},
                        strict=True)
    return mod


def parts(kind, state):
    """A state as a list of its arrays."""
    return list(state) if kind == "lstm" else [state]


def whole(kind, arrays):
    return tuple(arrays) if kind == "lstm" else arrays[0]


def random_state(kind, rng, shape, dtype):
    return whole(kind, [rng.standard_normal(shape).astype(dtype)
                        for _ in range(2 if kind == "lstm" else 1)])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch", [None, 1, 3])     # None: unbatched (D,)
@pytest.mark.parametrize("bias", [True, False])
def test_step_matches_torch(kind, dtype, batch, bias):
    rng = np.random.default_rng(1)
    cell = make_cell(kind, dtype, bias)
    mod = torch_cell(kind, cell)
    shape = (H,) if batch is None else (batch, H)
    x = rng.standard_normal((D,) if batch is None else (batch, D)).astype(dtype)
    state = random_state(kind, rng, shape, dtype)
    dout = random_state(kind, rng, shape, dtype)

    out, cache = cell.forward(x, state)
    assert_close(cell(x, state), out, dtype)          # inference step = training step
    xt = torch.tensor(x, requires_grad=True)
    st = [torch.tensor(s, requires_grad=True) for s in parts(kind, state)]
    ot = mod(xt, whole(kind, st))
    for a, b in zip(parts(kind, out), parts(kind, ot)):
        assert a.shape == shape and a.dtype == dtype
        assert_close(a, b.detach().numpy(), dtype)
    loss = sum((o * torch.from_numpy(d)).sum() for o, d in zip(parts(kind, ot),
                                                               parts(kind, dout)))
    loss.backward()
    dx, dstate = cell.backward(dout, cache)
    assert dx.shape == x.shape
    assert_close(dx, xt.grad.numpy(), dtype)
    for a, b in zip(parts(kind, dstate), st):
        assert_close(a, b.grad.numpy(), dtype)
    for name, p in mod.named_parameters():
        assert_close(cell.grads[name], p.grad.numpy(), dtype)


@pytest.mark.parametrize("kind", KINDS)
def test_missing_state_is_zeros_and_grads_accumulate(kind):
    rng = np.random.default_rng(2)
    cell = make_cell(kind)
    x = rng.standard_normal((2, D))
    zeros = whole(kind, [np.zeros((2, H))] * (2 if kind == "lstm" else 1))
    out, cache = cell.forward(x)
    for a, b in zip(parts(kind, out), parts(kind, cell(x, zeros))):
        np.testing.assert_array_equal(a, b)
    dout = random_state(kind, rng, (2, H), np.float64)
    _, dstate = cell.backward(dout, cache)
    assert all(d.shape == (2, H) for d in parts(kind, dstate))
    once = {k: v.copy() for k, v in cell.grads.items()}
    cell.backward(dout, cache)
    for k, v in cell.grads.items():
        np.testing.assert_allclose(v, 2 * once[k], rtol=1e-12)
    cell.zero_grad()
    assert all(not v.any() for v in cell.grads.values())


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_loop_of_steps_equals_layer(kind, dtype):
    """Steps over x[0..T-1], then backward step by step, give the layer's y, state_n,
    dx, dstate0 and parameter gradients on the whole sequence."""
    rng = np.random.default_rng(3)
    B = 3
    cell = make_cell(kind, dtype)
    layer_cls = {"lstm": fastrnn.LSTM, "gru": fastrnn.GRU}.get(kind, fastrnn.RNN)
    kw = {"nonlinearity": kind[4:]} if kind.startswith("rnn") else {}
    layer = layer_cls(D, H, dtype=dtype, seed=0, **kw)
    for name, value in cell.params.items():          # the same seed, the same weights
        np.testing.assert_array_equal(layer.params[name + "_l0"], value)
    x = rng.standard_normal((T, B, D)).astype(dtype)
    state0 = random_state(kind, rng, (B, H), dtype)
    dy = rng.standard_normal((T, B, H)).astype(dtype)
    dstate_n = random_state(kind, rng, (B, H), dtype)

    y, state_n, lcache = layer.forward(x, whole(kind, [s[None] for s in parts(kind, state0)]))
    state, caches, hs = state0, [], []
    for t in range(T):
        state, c = cell.forward(x[t], state)
        caches.append(c)
        hs.append(parts(kind, state)[0])
    assert_close(np.stack(hs), y, dtype)
    for a, b in zip(parts(kind, state), parts(kind, state_n)):
        assert_close(a, b[0], dtype)

    dx_layer, dstate0_layer = layer.backward(
        dy, lcache, whole(kind, [s[None] for s in parts(kind, dstate_n)]))
    carry = parts(kind, dstate_n)
    dxs = [None] * T
    for t in reversed(range(T)):
        carry = [carry[0] + dy[t]] + carry[1:]
        dxs[t], dstate = cell.backward(whole(kind, carry), caches[t])
        carry = parts(kind, dstate)
    assert_close(np.stack(dxs), dx_layer, dtype)
    for a, b in zip(carry, parts(kind, dstate0_layer)):
        assert_close(a, b[0], dtype)
    for name, g in cell.grads.items():
        assert_close(g, layer.grads[name + "_l0"], dtype)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("bias", [True, False])
def test_state_dicts_load_both_ways(kind, bias):
    rng = np.random.default_rng(4)
    cell = make_cell(kind, np.float32, bias, seed=5)
    mod = torch_cell(kind, make_cell(kind, np.float32, bias, seed=6))
    # torch -> fastrnn: a torch cell's state_dict, converted with .numpy(), loads as is
    params_before = cell.params["weight_hh"]
    cell.load_state_dict({k: v.numpy() for k, v in mod.state_dict().items()})
    assert cell.params["weight_hh"] is params_before      # copied into the existing arrays
    x = rng.standard_normal((2, D)).astype(np.float32)
    with torch.no_grad():
        expected = mod(torch.from_numpy(x))
    for a, b in zip(parts(kind, cell(x)), parts(kind, expected)):
        assert_close(a, b.numpy(), np.float32)
    # fastrnn -> torch: strict load of the cell's names and shapes
    other = make_cell(kind, np.float32, bias, seed=7)
    mod.load_state_dict({k: torch.from_numpy(v) for k, v in other.state_dict().items()},
                        strict=True)
    with torch.no_grad():
        expected = mod(torch.from_numpy(x))
    for a, b in zip(parts(kind, other(x)), parts(kind, expected)):
        assert_close(a, b.numpy(), np.float32)


@pytest.mark.parametrize("kind", KINDS)
def test_inputs_not_modified_and_any_layout(kind):
    rng = np.random.default_rng(8)
    cell = make_cell(kind)
    x = np.asfortranarray(rng.standard_normal((3, D)))
    x.flags.writeable = False
    state = random_state(kind, rng, (3, H), np.float32)     # another dtype: converted
    copies = [x.copy()] + [s.copy() for s in parts(kind, state)]
    out, cache = cell.forward(x, state)
    expected = cell(np.ascontiguousarray(x), whole(kind, [s.astype(np.float64)
                                                          for s in parts(kind, state)]))
    for a, b in zip(parts(kind, out), parts(kind, expected)):
        assert a.dtype == np.float64
        np.testing.assert_array_equal(a, b)
    cell.backward(out, cache)
    for a, b in zip([x] + parts(kind, state), copies):
        np.testing.assert_array_equal(a, b)


def test_relu_and_repr():
    cell = fastrnn.RNNCell(3, 4, nonlinearity="relu", dtype=np.float64, seed=0)
    assert repr(cell) == "RNNCell(3, 4, nonlinearity='relu', dtype=float64)"
    assert repr(fastrnn.LSTMCell(3, 4, bias=False)) == "LSTMCell(3, 4, bias=False, dtype=float32)"
    x = np.random.default_rng(0).standard_normal((5, 3))
    assert (cell(x) >= 0).all()


@pytest.mark.parametrize("kind", KINDS)
def test_bad_inputs(kind):
    cell = make_cell(kind)
    good = np.zeros((2, D))
    with pytest.raises(ValueError, match="x"):
        cell(np.zeros((2, D + 1)))
    with pytest.raises(ValueError, match="x"):
        cell(np.zeros((1, 2, D)))
    with pytest.raises(ValueError, match="x"):
        cell(np.zeros((0, D)))
    with pytest.raises(TypeError, match="x"):
        cell(good.astype(complex))
    bad_state = np.zeros((3, H))
    with pytest.raises((ValueError, TypeError), match="state"):
        cell(good, (bad_state, bad_state) if kind == "lstm" else bad_state)
    if kind == "lstm":
        with pytest.raises(TypeError, match="state"):
            cell(good, np.zeros((2, H)))
        with pytest.raises(ValueError, match=r"state\[1\]"):
            cell(good, (np.zeros((2, H)), np.zeros((2, H + 1))))
    out, cache = cell.forward(good)
    with pytest.raises(ValueError, match="dstate_out"):
        cell.backward(whole(kind, [np.zeros((2, H + 1))] * (2 if kind == "lstm" else 1)),
                      cache)
    with pytest.raises(TypeError, match="cache"):
        cell.backward(out, None)
    with pytest.raises(ValueError, match="cache"):
        make_cell(kind).backward(out, cache)
    with pytest.raises(ValueError, match="state_dict"):
        cell.load_state_dict({"weight_ih": np.zeros((1, D))})


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="nonlinearity"):
        fastrnn.RNNCell(3, 4, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="hidden_size"):
        fastrnn.GRUCell(3, 0)
    with pytest.raises(ValueError, match="dtype"):
        fastrnn.LSTMCell(3, 4, dtype=np.float16)
