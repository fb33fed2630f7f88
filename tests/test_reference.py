"""Checks of the NumPy reference against independent gold standards.

The reference is itself the gold standard for the kernels, so it is checked
two independent ways: its gradients against central finite differences of its
own forward pass (float64), and its forward and backward against torch.nn
(when torch is installed).
"""

import numpy as np
import pytest

from fastrnn import reference

# (mode, nonlinearity); the nonlinearity only matters for rnn.
CELLS = [("rnn", "tanh"), ("rnn", "relu"), ("lstm", "tanh"), ("gru", "tanh")]
CELL_IDS = ["rnn_tanh", "rnn_relu", "lstm", "gru"]


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

def make_params(mode, D, H, num_layers, num_dirs, bias, rng, dtype=np.float64):
    """Random parameters under torch's state_dict names; biases random too,
    because zero biases would hide a bias that is used in the wrong place."""
    G = reference.GATES[mode] * H
    params = {}
    for k in range(num_layers):
        in_size = D if k == 0 else num_dirs * H
        for d in range(num_dirs):
            s = f"_l{k}" + ("_reverse" if d else "")
            params["weight_ih" + s] = rng.uniform(-0.7, 0.7, (G, in_size)).astype(dtype)
            params["weight_hh" + s] = rng.uniform(-0.7, 0.7, (G, H)).astype(dtype)
            if bias:
                params["bias_ih" + s] = rng.uniform(-0.5, 0.5, G).astype(dtype)
                params["bias_hh" + s] = rng.uniform(-0.5, 0.5, G).astype(dtype)
    return params


def make_state(mode, shape, rng, dtype=np.float64):
    if mode == "lstm":
        return (rng.standard_normal(shape).astype(dtype),
                rng.standard_normal(shape).astype(dtype))
    return rng.standard_normal(shape).astype(dtype)


def state_parts(state):
    """The arrays of a state, as a tuple: (h,) or (h, c)."""
    return tuple(state) if isinstance(state, tuple) else (state,)


def weighted_sum(y, state, r_y, r_state):
    """The scalar loss L = sum(y * R1) + sum(state_n * R2)."""
    loss = np.sum(y * r_y)
    for s, r in zip(state_parts(state), state_parts(r_state)):
        loss += np.sum(s * r)
    return loss


def numeric_gradient(f, a, eps=1e-6):
    """Central differences of the scalar f() with respect to every entry of a.

    a is perturbed in place (f must read it) and restored afterwards."""
    grad = np.zeros_like(a)
    for idx in np.ndindex(a.shape):
        old = a[idx]
        a[idx] = old + eps
        f_plus = f()
        a[idx] = old - eps
        f_minus = f()
        a[idx] = old
        grad[idx] = (f_plus - f_minus) / (2 * eps)
    return grad


def assert_fd_close(analytic, numeric, name):
    # Rounding error of a central difference is about 1e-16 * |L| / eps,
    # i.e. ~1e-9 here; the relative tolerance is the meaningful one.
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8, err_msg=name)


def relu_layer_margin(x, h, w_ih, w_hh, b, reverse):
    """Run one relu RNN layer independently of the reference; return its output
    and its smallest |pre-activation|.

    Finite differences are only valid where no pre-activation is within eps
    of relu's kink at 0."""
    y = np.empty(x.shape[:2] + h.shape[1:])
    margin = np.inf
    for t in (reversed(range(len(x))) if reverse else range(len(x))):
        a = x[t] @ w_ih.T + h @ w_hh.T + b
        margin = min(margin, np.abs(a).min())
        h = y[t] = np.maximum(a, 0)
    return y, margin


def relu_margin(params, x, h0, num_layers, num_dirs):
    """Smallest |pre-activation| over a whole relu network."""
    layer_input, margin = x, np.inf
    for k in range(num_layers):
        outputs = []
        for d in range(num_dirs):
            s = f"_l{k}" + ("_reverse" if d else "")
            b = params.get("bias_ih" + s, 0) + params.get("bias_hh" + s, 0)
            y, m = relu_layer_margin(layer_input, h0[k * num_dirs + d], params["weight_ih" + s],
                                     params["weight_hh" + s], b, reverse=bool(d))
            outputs.append(y)
            margin = min(margin, m)
        layer_input = np.concatenate(outputs, axis=2)
    return margin


# ---------------------------------------------------------------------------
# 1. Finite differences
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("mode,nonlinearity", CELLS, ids=CELL_IDS)
def test_network_gradients_match_finite_differences(mode, nonlinearity, num_layers,
                                                    bidirectional):
    T, B, D, H = 4, 2, 3, 2
    num_dirs = 2 if bidirectional else 1
    state_shape = (num_layers * num_dirs, B, H)
    kw = dict(num_layers=num_layers, bidirectional=bidirectional, nonlinearity=nonlinearity)

    # Draw until a relu network keeps clear of its kink (the first seed almost always does).
    for seed in range(100):
        rng = np.random.default_rng(seed)
        params = make_params(mode, D, H, num_layers, num_dirs, True, rng)
        x = rng.standard_normal((T, B, D))
        state0 = make_state(mode, state_shape, rng)
        if nonlinearity != "relu" or relu_margin(params, x, state0, num_layers, num_dirs) > 1e-4:
            break

    y, state_n, cache = reference.forward(mode, params, x, state0, **kw)
    r_y = rng.standard_normal(y.shape)
    r_state = tuple(rng.standard_normal(s.shape) for s in state_parts(state_n))
    r_state = r_state if mode == "lstm" else r_state[0]
    dx, dstate0, grads = reference.backward(r_y, cache, r_state)

    def loss():
        y, state_n, _ = reference.forward(mode, params, x, state0, **kw)
        return weighted_sum(y, state_n, r_y, r_state)

    assert_fd_close(dx, numeric_gradient(loss, x), "x")
    for i, (ds, s) in enumerate(zip(state_parts(dstate0), state_parts(state0))):
        assert_fd_close(ds, numeric_gradient(loss, s), f"state0[{i}]")
    assert set(grads) == set(params)
    for name, p in params.items():
        assert_fd_close(grads[name], numeric_gradient(loss, p), name)


@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
@pytest.mark.parametrize("mode,nonlinearity", CELLS, ids=CELL_IDS)
def test_layer_gradients_match_finite_differences(mode, nonlinearity, reverse):
    """The layer API on its own, with only one of the two biases given."""
    T, B, D, H = 3, 2, 3, 3
    G = reference.GATES[mode] * H
    for seed in range(100):  # for relu, draw until clear of the kink
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((T, B, D))
        w_ih = rng.uniform(-0.7, 0.7, (G, D))
        w_hh = rng.uniform(-0.7, 0.7, (G, H))
        b_hh = rng.uniform(-0.5, 0.5, G)
        state0 = make_state(mode, (B, H), rng)
        if nonlinearity != "relu":
            break
        if relu_layer_margin(x, state0, w_ih, w_hh, b_hh, reverse)[1] > 1e-4:
            break

    def run():
        return reference.layer_forward(mode, x, state0, w_ih, w_hh, None, b_hh,
                                       reverse=reverse, nonlinearity=nonlinearity)

    y, state_n, cache = run()
    r_y = rng.standard_normal(y.shape)
    r_state = tuple(rng.standard_normal(s.shape) for s in state_parts(state_n))
    r_state = r_state if mode == "lstm" else r_state[0]
    dx, dstate0, grads = reference.layer_backward(r_y, r_state, cache)

    def loss():
        y, state_n, _ = run()
        return weighted_sum(y, state_n, r_y, r_state)

    assert_fd_close(dx, numeric_gradient(loss, x), "x")
    for i, (ds, s) in enumerate(zip(state_parts(dstate0), state_parts(state0))):
        assert_fd_close(ds, numeric_gradient(loss, s), f"state0[{i}]")
    assert set(grads) == {"weight_ih", "weight_hh", "bias_hh"}
    assert_fd_close(grads["weight_ih"], numeric_gradient(loss, w_ih), "weight_ih")
    assert_fd_close(grads["weight_hh"], numeric_gradient(loss, w_hh), "weight_hh")
    assert_fd_close(grads["bias_hh"], numeric_gradient(loss, b_hh), "bias_hh")


# ---------------------------------------------------------------------------
# 2. Against torch.nn
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def torch():
    # Only the torch comparisons skip when torch is absent, not the whole module.
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)  # tiny problems: threads only add noise
    return torch


def make_torch_net(torch, mode, nonlinearity, D, H, num_layers, bidirectional, bias, params):
    kw = dict(num_layers=num_layers, bias=bias, bidirectional=bidirectional,
              dtype=torch.float64)
    if mode == "rnn":
        net = torch.nn.RNN(D, H, nonlinearity=nonlinearity, **kw)
    elif mode == "lstm":
        net = torch.nn.LSTM(D, H, **kw)
    else:
        net = torch.nn.GRU(D, H, **kw)
    torch_params = dict(net.named_parameters())
    assert set(torch_params) == set(params)  # same names, so the API contract holds
    with torch.no_grad():
        for name, p in torch_params.items():
            assert tuple(p.shape) == params[name].shape, name
            p.copy_(torch.from_numpy(params[name]))
    return net


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("B", [1, 3], ids=lambda b: f"B{b}")
@pytest.mark.parametrize("T", [1, 5], ids=lambda t: f"T{t}")
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("num_layers", [1, 2, 3], ids=lambda n: f"L{n}")
@pytest.mark.parametrize("mode,nonlinearity", CELLS, ids=CELL_IDS)
def test_matches_torch(torch, mode, nonlinearity, num_layers, bidirectional, T, B, bias):
    D, H = 3, 4  # D != H, so a transposed weight cannot go unnoticed
    num_dirs = 2 if bidirectional else 1
    state_shape = (num_layers * num_dirs, B, H)
    rng = np.random.default_rng([CELLS.index((mode, nonlinearity)), num_layers,
                                 bidirectional, T, B, bias])
    params = make_params(mode, D, H, num_layers, num_dirs, bias, rng)
    x = rng.standard_normal((T, B, D))
    state0 = make_state(mode, state_shape, rng)
    r_y = rng.standard_normal((T, B, num_dirs * H))
    r_state = make_state(mode, state_shape, rng)

    # torch: forward, the same scalar loss, autograd.
    net = make_torch_net(torch, mode, nonlinearity, D, H, num_layers, bidirectional,
                         bias, params)
    x_t = torch.tensor(x, requires_grad=True)
    state0_t = tuple(torch.tensor(s, requires_grad=True) for s in state_parts(state0))
    y_t, state_n_t = net(x_t, state0_t if mode == "lstm" else state0_t[0])
    state_n_t = state_parts(state_n_t)
    loss = (y_t * torch.from_numpy(r_y)).sum()
    for s, r in zip(state_n_t, state_parts(r_state)):
        loss = loss + (s * torch.from_numpy(r)).sum()
    loss.backward()

    # reference: forward, backward with the loss's gradients dL/dy = R1, dL/dstate_n = R2.
    y, state_n, cache = reference.forward(mode, params, x, state0, num_layers=num_layers,
                                          bidirectional=bidirectional,
                                          nonlinearity=nonlinearity)
    dx, dstate0, grads = reference.backward(r_y, cache, r_state)

    def close(ours, theirs, name):
        np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=1e-10, atol=1e-10,
                                   err_msg=name)

    close(y, y_t, "y")
    for i, (s, s_t) in enumerate(zip(state_parts(state_n), state_n_t)):
        close(s, s_t, f"state_n[{i}]")
    close(dx, x_t.grad, "dx")
    for i, (ds, s_t) in enumerate(zip(state_parts(dstate0), state0_t)):
        close(ds, s_t.grad, f"dstate0[{i}]")
    assert set(grads) == set(params)
    for name, p in net.named_parameters():
        close(grads[name], p.grad, name)


# ---------------------------------------------------------------------------
# 3. Conventions of the API
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("mode,nonlinearity", CELLS, ids=CELL_IDS)
def test_missing_state_and_bias_mean_zeros(mode, nonlinearity):
    T, B, D, H, L = 3, 2, 3, 2, 2
    rng = np.random.default_rng(1)
    params = make_params(mode, D, H, L, 2, False, rng)
    x = rng.standard_normal((T, B, D))
    kw = dict(num_layers=L, bidirectional=True, nonlinearity=nonlinearity)
    zero_state = make_state(mode, (2 * L, B, H), rng)
    for s in state_parts(zero_state):
        s[...] = 0
    with_zero_bias = dict(params)
    for name in params:
        if name.startswith("weight_hh"):
            G = params[name].shape[0]
            with_zero_bias[name.replace("weight_hh", "bias_ih")] = np.zeros(G)
            with_zero_bias[name.replace("weight_hh", "bias_hh")] = np.zeros(G)

    y1, s1, cache1 = reference.forward(mode, params, x, None, **kw)
    y2, s2, cache2 = reference.forward(mode, with_zero_bias, x, zero_state, **kw)
    np.testing.assert_array_equal(y1, y2)
    for a, b in zip(state_parts(s1), state_parts(s2)):
        np.testing.assert_array_equal(a, b)

    dy = rng.standard_normal(y1.shape)
    dx1, ds1, g1 = reference.backward(dy, cache1)  # dstate_n None means zeros
    dx2, ds2, g2 = reference.backward(dy, cache2, zero_state)
    np.testing.assert_array_equal(dx1, dx2)
    assert isinstance(ds1, tuple) == (mode == "lstm")
    for a, b in zip(state_parts(ds1), state_parts(ds2)):
        np.testing.assert_array_equal(a, b)
    assert set(g1) == set(params)  # no bias grads without biases
    for name in params:
        np.testing.assert_array_equal(g1[name], g2[name])


@pytest.mark.parametrize("mode,nonlinearity", CELLS, ids=CELL_IDS)
def test_reverse_is_forward_on_flipped_time(mode, nonlinearity):
    T, B, D, H = 4, 2, 3, 2
    rng = np.random.default_rng(2)
    G = reference.GATES[mode] * H
    x = rng.standard_normal((T, B, D))
    w_ih, w_hh = rng.standard_normal((G, D)), rng.standard_normal((G, H))
    b_ih, b_hh = rng.standard_normal(G), rng.standard_normal(G)
    state0 = make_state(mode, (B, H), rng)
    kw = dict(nonlinearity=nonlinearity)
    y_rev, s_rev, _ = reference.layer_forward(mode, x, state0, w_ih, w_hh, b_ih, b_hh,
                                              reverse=True, **kw)
    y_flip, s_flip, _ = reference.layer_forward(mode, x[::-1], state0, w_ih, w_hh,
                                                b_ih, b_hh, **kw)
    np.testing.assert_allclose(y_rev, y_flip[::-1], rtol=1e-14, atol=1e-14)
    for a, b in zip(state_parts(s_rev), state_parts(s_flip)):
        np.testing.assert_allclose(a, b, rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("mode,nonlinearity", CELLS, ids=CELL_IDS)
def test_inputs_untouched_read_only_and_non_contiguous(mode, nonlinearity):
    T, B, D, H = 3, 2, 3, 2
    rng = np.random.default_rng(3)
    params = make_params(mode, D, H, 2, 2, True, rng)
    x = rng.standard_normal((B, T, D)).transpose(1, 0, 2)  # a non-contiguous view
    state0 = make_state(mode, (4, B, H), rng)
    dy = rng.standard_normal((T, B, 2 * H))
    dstate_n = make_state(mode, (4, B, H), rng)
    inputs = [x, dy, *state_parts(state0), *state_parts(dstate_n), *params.values()]
    copies = [a.copy() for a in inputs]
    for a in inputs:
        a.flags.writeable = False  # any in-place write would raise

    kw = dict(num_layers=2, bidirectional=True, nonlinearity=nonlinearity)
    y, state_n, cache = reference.forward(mode, params, x, state0, **kw)
    dx, dstate0, grads = reference.backward(dy, cache, dstate_n)
    for a, c in zip(inputs, copies):
        np.testing.assert_array_equal(a, c)

    # Same results as from contiguous, writable copies.
    y2, _, cache2 = reference.forward(mode, {k: v.copy() for k, v in params.items()},
                                      np.ascontiguousarray(x), state0, **kw)
    dx2, _, _ = reference.backward(dy.copy(), cache2, dstate_n)
    np.testing.assert_array_equal(y, y2)
    np.testing.assert_array_equal(dx, dx2)
    # Results never alias the inputs.
    for out in [y, dx, *state_parts(state_n), *state_parts(dstate0), *grads.values()]:
        assert not any(np.shares_memory(out, a) for a in inputs)


@pytest.mark.parametrize("mode,nonlinearity", CELLS, ids=CELL_IDS)
def test_float32_in_float32_out(mode, nonlinearity):
    T, B, D, H = 4, 3, 3, 4
    rng = np.random.default_rng(4)
    params = make_params(mode, D, H, 2, 2, True, rng, dtype=np.float32)
    x = rng.standard_normal((T, B, D)).astype(np.float32)
    kw = dict(num_layers=2, bidirectional=True, nonlinearity=nonlinearity)
    y, state_n, cache = reference.forward(mode, params, x, None, **kw)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx, dstate0, grads = reference.backward(dy, cache)
    outs = [y, dx, *state_parts(state_n), *state_parts(dstate0), *grads.values()]
    assert all(a.dtype == np.float32 for a in outs)

    # And it agrees with the float64 computation to float32 precision.
    params64 = {k: v.astype(np.float64) for k, v in params.items()}
    y64, _, cache64 = reference.forward(mode, params64, x.astype(np.float64), None, **kw)
    dx64, _, grads64 = reference.backward(dy, cache64)
    np.testing.assert_allclose(y, y64, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dx, dx64, rtol=1e-4, atol=1e-5)
    for name in grads:
        np.testing.assert_allclose(grads[name], grads64[name], rtol=1e-4, atol=1e-5)


def test_sigmoid_is_stable():
    a = np.array([-1000.0, -30.0, 0.0, 30.0, 1000.0])
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow is harmless
        s = reference.sigmoid(a)
    np.testing.assert_allclose(s, [0.0, 1 / (1 + np.exp(30)), 0.5, 1 / (1 + np.exp(-30)), 1.0],
                               rtol=1e-15)
    assert reference.sigmoid(a.astype(np.float32)).dtype == np.float32


def test_bad_arguments_raise():
    x = np.zeros((2, 1, 3))
    with pytest.raises(ValueError, match="mode"):
        reference.forward("lstmm", {}, x)
    with pytest.raises(ValueError, match="nonlinearity"):
        reference.forward("rnn", {}, x, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="weight_ih_l0"):
        reference.forward("gru", {}, x)
    params = make_params("gru", 3, 2, 1, 1, True, np.random.default_rng(0))
    with pytest.raises(ValueError, match="h0"):
        reference.forward("gru", params, x, np.zeros((1, 1, 5)))
    with pytest.raises(ValueError, match="w_ih"):
        reference.forward("gru", params, np.zeros((2, 1, 4)))
