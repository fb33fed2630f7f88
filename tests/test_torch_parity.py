"""fastrnn layers against torch.nn.RNN/LSTM/GRU and torch autograd, same weights.

The torch module is built with the layer's configuration and dtype and loaded with
torch.from_numpy of layer.state_dict(); outputs, final states and the gradients of
loss = sum(y * dy) + sum(state_n * dstate_n) w.r.t. x, h0 (and c0) and every parameter are
compared.  Also: torch's own weights load into a layer (the "trained elsewhere" path).
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest import (CELLS, DTYPES, as_parts, assert_close, cell_of, make_dy,  # noqa: E402
                      make_layer, make_state, make_x, nonlinearity_of, rng_for, seed_for,
                      zeros_state)

D, H = 5, 6

TORCH_DTYPE = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}


def torch_module(layer):
    """A torch.nn module configured like the layer, holding the layer's weights."""
    cell = cell_of(layer)
    kw = dict(num_layers=layer.num_layers, bias=layer.bias, batch_first=layer.batch_first,
              bidirectional=layer.bidirectional, dtype=TORCH_DTYPE[np.dtype(layer.dtype)])
    if cell == "lstm":
        mod = torch.nn.LSTM(layer.input_size, layer.hidden_size, **kw)
    elif cell == "gru":
        mod = torch.nn.GRU(layer.input_size, layer.hidden_size, **kw)
    else:
        mod = torch.nn.RNN(layer.input_size, layer.hidden_size,
                           nonlinearity=nonlinearity_of(cell), **kw)
    sd = {k: torch.from_numpy(v) for k, v in layer.state_dict().items()}
    mod.load_state_dict(sd, strict=True)
    return mod


def _t(a, grad=False):
    return torch.from_numpy(np.array(a, copy=True)).requires_grad_(grad)


def torch_run(mod, x, state0, dy, dstate_n, cell):
    """Forward and autograd backward in torch.  state0=None is given to torch as zeros."""
    xt = _t(x, True)
    s0 = tuple(_t(a, True) for a in as_parts(state0))
    with torch.enable_grad():
        if cell == "lstm":
            y, (hn, cn) = mod(xt, s0)
            sn = (hn, cn)
        else:
            y, hn = mod(xt, s0[0])
            sn = (hn,)
        loss = (y * _t(dy)).sum()
        if dstate_n is not None:
            for a, d in zip(sn, as_parts(dstate_n)):
                loss = loss + (a * _t(d)).sum()
        mod.zero_grad()
        loss.backward()
    out = dict(
        y=y.detach().numpy(),
        state_n=tuple(a.detach().numpy() for a in sn),
        dx=xt.grad.numpy(),
        dstate0=tuple(a.grad.numpy() for a in s0),
        grads={k: p.grad.numpy().copy() for k, p in mod.named_parameters()},
    )
    if cell != "lstm":
        out["state_n"] = out["state_n"][0]
        out["dstate0"] = out["dstate0"][0]
    return out


CONFIGS = [
    # T, B (None = unbatched), num_layers, bidirectional, batch_first, bias, state0, dstate_n
    dict(T=1, B=1, L=1, bidir=False, bf=False, bias=True, s0=False, dsn=True),
    dict(T=5, B=3, L=2, bidir=True, bf=True, bias=True, s0=True, dsn=True),
    dict(T=4, B=2, L=3, bidir=False, bf=False, bias=False, s0=True, dsn=False),
    dict(T=6, B=1, L=1, bidir=True, bf=True, bias=False, s0=False, dsn=True),
    dict(T=3, B=4, L=3, bidir=True, bf=False, bias=True, s0=True, dsn=True),
    dict(T=5, B=None, L=2, bidir=True, bf=False, bias=True, s0=True, dsn=True),
    dict(T=4, B=None, L=1, bidir=False, bf=True, bias=False, s0=False, dsn=False),
]


def _config_id(c):
    return (f"T{c['T']}-B{c['B'] if c['B'] is not None else 'none'}-L{c['L']}"
            f"-{'bi' if c['bidir'] else 'uni'}-{'bf' if c['bf'] else 'tm'}"
            f"-{'bias' if c['bias'] else 'nobias'}-{'s0' if c['s0'] else 'nos0'}"
            f"-{'dsn' if c['dsn'] else 'nodsn'}")


@pytest.mark.parametrize("cfg", CONFIGS, ids=_config_id)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell", CELLS)
def test_matches_torch(cell, dtype, cfg):
    key = ("torch", cell, np.dtype(dtype).name, _config_id(cfg))
    rng = rng_for(*key)
    layer = make_layer(cell, D, H, cfg["L"], bias=cfg["bias"], batch_first=cfg["bf"],
                       bidirectional=cfg["bidir"], dtype=dtype, seed=seed_for(*key))
    T, B = cfg["T"], cfg["B"]
    x = make_x(rng, layer, T, B)
    state0 = make_state(rng, layer, B) if cfg["s0"] else None
    dy = make_dy(rng, layer, T, B)
    dstate_n = make_state(rng, layer, B) if cfg["dsn"] else None

    mod = torch_module(layer)
    torch_state0 = state0 if state0 is not None else zeros_state(layer, B, dtype)
    ref = torch_run(mod, x, torch_state0, dy, dstate_n, cell)

    y, state_n = layer(x, state0)
    assert_close(y, ref["y"], dtype, "call y")
    assert_close(state_n, ref["state_n"], dtype, "call state_n")
    y, state_n, cache = layer.forward(x, state0)
    assert_close(y, ref["y"], dtype, "forward y")
    assert_close(state_n, ref["state_n"], dtype, "forward state_n")
    dx, dstate0 = layer.backward(dy, cache, dstate_n)
    assert_close(dx, ref["dx"], dtype, "dx")
    assert_close(dstate0, ref["dstate0"], dtype, "dstate0")
    assert set(layer.grads) == set(ref["grads"])
    for k, g in ref["grads"].items():
        assert_close(layer.grads[k], g, dtype, f"grad {k}")


@pytest.mark.parametrize("bidir", [False, True])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("cell", CELLS)
def test_param_names_and_shapes_match_torch(cell, bias, bidir):
    layer = make_layer(cell, D, H, 3, bias=bias, bidirectional=bidir, seed=0)
    mod = torch_module(layer)  # strict load: same names, same shapes
    tsd = mod.state_dict()
    assert set(layer.params) == set(tsd)
    assert set(layer.grads) == set(tsd)
    for k, v in tsd.items():
        assert layer.params[k].shape == tuple(v.shape), k
        assert layer.grads[k].shape == tuple(v.shape), k


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell", CELLS)
def test_load_torch_state_dict(cell, dtype):
    """A torch module's state_dict, converted with .numpy(), loads into a layer and runs alike."""
    torch.manual_seed(1234)
    tdt = TORCH_DTYPE[np.dtype(dtype)]
    kw = dict(num_layers=2, bidirectional=True, batch_first=True, dtype=tdt)
    if cell == "lstm":
        mod = torch.nn.LSTM(D, H, **kw)
    elif cell == "gru":
        mod = torch.nn.GRU(D, H, **kw)
    else:
        mod = torch.nn.RNN(D, H, nonlinearity=nonlinearity_of(cell), **kw)
    layer = make_layer(cell, D, H, 2, bidirectional=True, batch_first=True, dtype=dtype, seed=7)
    layer.load_state_dict({k: v.numpy() for k, v in mod.state_dict().items()})
    for k, v in mod.state_dict().items():
        np.testing.assert_array_equal(layer.params[k], v.numpy(), err_msg=k)

    rng = rng_for("torch-load", cell, np.dtype(dtype).name)
    x = make_x(rng, layer, 4, 3)
    state0 = make_state(rng, layer, 3)
    with torch.no_grad():
        if cell == "lstm":
            ty, (th, tc) = mod(torch.from_numpy(x), tuple(torch.from_numpy(a) for a in state0))
            tsn = (th.numpy(), tc.numpy())
        else:
            ty, th = mod(torch.from_numpy(x), torch.from_numpy(state0))
            tsn = th.numpy()
    y, state_n = layer(x, state0)
    assert_close(y, ty.numpy(), dtype, "y")
    assert_close(state_n, tsn, dtype, "state_n")
