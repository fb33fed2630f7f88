"""params, grads, state_dict, load_state_dict, zero_grad, attributes, init and seeds."""

import numpy as np
import pytest

from conftest import (CELLS, DTYPES, make_layer, param_names, param_shapes, rng_for,
                      state_shape)

D, H = 5, 4

CONFIGS = [(1, False, True), (2, True, True), (3, False, False), (3, True, False)]


@pytest.mark.parametrize("num_layers, bidir, bias", CONFIGS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell", CELLS)
def test_params_and_grads_layout(cell, dtype, num_layers, bidir, bias):
    layer = make_layer(cell, D, H, num_layers, bias=bias, bidirectional=bidir, dtype=dtype,
                       seed=1)
    expected = param_shapes(cell, D, H, num_layers, bidir, bias)
    assert set(layer.params) == set(expected)
    assert set(layer.grads) == set(expected)
    for k, shape in expected.items():
        p, g = layer.params[k], layer.grads[k]
        assert isinstance(p, np.ndarray) and isinstance(g, np.ndarray), k
        assert p.shape == shape, k
        assert g.shape == shape, k
        assert p.dtype == np.dtype(dtype), k
        assert g.dtype == np.dtype(dtype), k
        assert not np.any(g), f"{k}: grads start at zero"
        assert not np.shares_memory(p, g), k
    if not bias:
        assert not any(k.startswith("bias") for k in layer.params)


@pytest.mark.parametrize("cell", CELLS)
def test_param_names(cell):
    """Keys follow torch's state_dict naming."""
    layer = make_layer(cell, D, H, 2, bidirectional=True, seed=0)
    assert set(layer.state_dict()) == set(param_names(2, True))


@pytest.mark.parametrize("cell", CELLS)
def test_attributes(cell):
    layer = make_layer(cell, D, H, 3, bias=False, batch_first=True, bidirectional=True,
                       dtype=np.float64, seed=0)
    assert layer.input_size == D
    assert layer.hidden_size == H
    assert layer.num_layers == 3
    assert layer.bidirectional and layer.batch_first and not layer.bias
    assert isinstance(layer.dtype, np.dtype) and layer.dtype == np.dtype(np.float64)
    if cell.startswith("rnn"):
        assert layer.nonlinearity == cell[4:]
    default = make_layer(cell, D, H, seed=0)
    assert default.num_layers == 1
    assert not default.bidirectional and not default.batch_first and default.bias
    assert isinstance(default.dtype, np.dtype) and default.dtype == np.dtype(np.float32)


def test_rnn_default_nonlinearity_is_tanh():
    import fastrnn
    assert fastrnn.RNN(D, H, seed=0).nonlinearity == "tanh"


@pytest.mark.parametrize("dtype_arg, expected", [
    (np.float32, np.float32), (np.float64, np.float64),
    (np.dtype(np.float32), np.float32), (np.dtype(np.float64), np.float64),
])
@pytest.mark.parametrize("cell", CELLS)
def test_dtype_arg_forms(cell, dtype_arg, expected):
    layer = make_layer(cell, D, H, dtype=dtype_arg, seed=0)
    assert layer.dtype == np.dtype(expected)
    for v in layer.params.values():
        assert v.dtype == np.dtype(expected)


# ------------------------------------------------------------------------------------------
# state_dict / load_state_dict


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell", CELLS)
def test_state_dict_returns_copies(cell, dtype):
    layer = make_layer(cell, D, H, 2, bidirectional=True, dtype=dtype, seed=5)
    sd = layer.state_dict()
    assert set(sd) == set(layer.params)
    for k, v in sd.items():
        assert isinstance(v, np.ndarray)
        assert v.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(v, layer.params[k])
        assert not np.shares_memory(v, layer.params[k]), k
    before = {k: v.copy() for k, v in layer.params.items()}
    for v in sd.values():
        v += 1.0
    for k in before:
        np.testing.assert_array_equal(layer.params[k], before[k], err_msg=k)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell", CELLS)
def test_load_state_dict_roundtrip_and_identity(cell, dtype):
    src = make_layer(cell, D, H, 2, bidirectional=True, dtype=dtype, seed=1)
    dst = make_layer(cell, D, H, 2, bidirectional=True, dtype=dtype, seed=2)
    ids = {k: id(v) for k, v in dst.params.items()}
    objs = dict(dst.params)
    sd = src.state_dict()
    dst.load_state_dict(sd)
    for k in sd:
        assert id(dst.params[k]) == ids[k], f"{k}: params array replaced"
        assert dst.params[k] is objs[k]
        np.testing.assert_array_equal(dst.params[k], sd[k], err_msg=k)
        assert dst.params[k].dtype == np.dtype(dtype)
    # values were copied, not referenced
    for v in sd.values():
        v[...] = 0
    for k in sd:
        np.testing.assert_array_equal(dst.params[k], src.params[k], err_msg=k)
    # the loaded layer computes what the source computes
    x = rng_for("roundtrip", cell).standard_normal((3, 2, D)).astype(dtype)
    y_src, _ = src(x)
    y_dst, _ = dst(x)
    np.testing.assert_array_equal(y_dst, y_src)


@pytest.mark.parametrize("cell", CELLS)
def test_load_state_dict_array_likes_and_conversion(cell):
    """Nested lists and arrays of another dtype load (converted to the layer's dtype)."""
    src = make_layer(cell, D, H, 1, dtype=np.float64, seed=3)
    dst32 = make_layer(cell, D, H, 1, dtype=np.float32, seed=4)
    dst32.load_state_dict({k: v.tolist() for k, v in src.state_dict().items()})
    for k, v in src.params.items():
        assert dst32.params[k].dtype == np.float32
        np.testing.assert_array_equal(dst32.params[k], v.astype(np.float32), err_msg=k)
    dst64 = make_layer(cell, D, H, 1, dtype=np.float64, seed=4)
    dst64.load_state_dict(dst32.state_dict())      # float32 arrays into a float64 layer
    for k, v in dst32.params.items():
        assert dst64.params[k].dtype == np.float64
        np.testing.assert_array_equal(dst64.params[k], v.astype(np.float64), err_msg=k)
    # non-contiguous and read-only sources
    sd = {}
    for k, v in src.state_dict().items():
        a = np.asfortranarray(v) if v.ndim == 2 else v.copy()
        a.flags.writeable = False
        sd[k] = a
    dst64.load_state_dict(sd)
    for k, v in src.params.items():
        np.testing.assert_array_equal(dst64.params[k], v, err_msg=k)


@pytest.mark.parametrize("cell", CELLS)
def test_load_state_dict_errors_name_the_key(cell):
    layer = make_layer(cell, D, H, 2, bidirectional=True, seed=0)
    good = layer.state_dict()
    before = layer.state_dict()

    missing = dict(good)
    del missing["bias_hh_l1_reverse"]
    with pytest.raises(ValueError, match="bias_hh_l1_reverse"):
        layer.load_state_dict(missing)

    extra = dict(good)
    extra["weight_ih_l2"] = good["weight_ih_l1"]
    with pytest.raises(ValueError, match="weight_ih_l2"):
        layer.load_state_dict(extra)

    wrong = dict(good)
    wrong["weight_hh_l0"] = good["weight_hh_l0"][:, :-1]
    with pytest.raises(ValueError, match="weight_hh_l0"):
        layer.load_state_dict(wrong)

    transposed = dict(good)
    transposed["weight_ih_l1"] = good["weight_ih_l1"].T
    with pytest.raises(ValueError, match="weight_ih_l1"):
        layer.load_state_dict(transposed)

    flat_bias = dict(good)
    flat_bias["bias_ih_l0"] = good["bias_ih_l0"][None, :]
    with pytest.raises(ValueError, match="bias_ih_l0"):
        layer.load_state_dict(flat_bias)

    # after the failed loads, the layer's parameters keep valid shapes and dtypes
    for k, v in before.items():
        assert layer.params[k].shape == v.shape and layer.params[k].dtype == v.dtype


@pytest.mark.parametrize("cell", CELLS)
def test_load_state_dict_bias_keys_on_bias_free_layer(cell):
    with_bias = make_layer(cell, D, H, 1, bias=True, seed=0)
    no_bias = make_layer(cell, D, H, 1, bias=False, seed=0)
    with pytest.raises(ValueError, match=r"bias_(ih|hh)_l0"):
        no_bias.load_state_dict(with_bias.state_dict())
    with pytest.raises(ValueError, match=r"bias_(ih|hh)_l0"):
        with_bias.load_state_dict(no_bias.state_dict())


@pytest.mark.parametrize("cell", CELLS)
def test_zero_grad(cell):
    layer = make_layer(cell, D, H, 2, bidirectional=True, dtype=np.float64, seed=0)
    rng = rng_for("zero_grad", cell)
    x = rng.standard_normal((4, 3, D))
    _, _, cache = layer.forward(x)
    layer.backward(rng.standard_normal((4, 3, 2 * H)), cache)
    assert all(np.any(g) for k, g in layer.grads.items()), "backward left some grad at zero"
    layer.zero_grad()
    assert set(layer.grads) == set(layer.params)
    for k, g in layer.grads.items():
        assert g.shape == layer.params[k].shape and g.dtype == layer.dtype
        assert not np.any(g), k


@pytest.mark.parametrize("cell", CELLS)
def test_inplace_param_update_takes_effect(cell):
    """layer.params are the live weights: an optimizer step done in place changes the output."""
    layer = make_layer(cell, D, H, 1, dtype=np.float64, seed=0)
    ref = make_layer(cell, D, H, 1, dtype=np.float64, seed=99)
    x = rng_for("inplace", cell).standard_normal((3, 2, D))
    layer(x)            # a first call, in case something is prepared lazily
    for k in layer.params:
        layer.params[k][...] = ref.params[k]
    np.testing.assert_array_equal(layer(x)[0], ref(x)[0])


# ------------------------------------------------------------------------------------------
# init and seeds


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell", CELLS)
def test_init_range(cell, dtype):
    Hs = 16
    layer = make_layer(cell, 8, Hs, 2, bidirectional=True, dtype=dtype, seed=123)
    bound = 1.0 / np.sqrt(Hs)
    for k, v in layer.params.items():
        assert np.all(np.isfinite(v)), k
        assert np.all(np.abs(v) <= bound * (1 + 1e-6)), f"{k}: max |p| {np.abs(v).max()} > {bound}"
        # uniform on the whole interval: spread out, both signs, not constant
        if v.size >= 64:
            assert v.min() < -0.5 * bound and v.max() > 0.5 * bound, k
        assert len(np.unique(v)) > 0.9 * v.size, k
    everything = np.concatenate([v.ravel() for v in layer.params.values()])
    # mean 0 and variance bound^2 / 3 of U(-b, b), within sampling error
    assert abs(everything.mean()) < 0.05 * bound
    assert abs(everything.var() / (bound**2 / 3) - 1) < 0.08
    # biases are not zero
    for k, v in layer.params.items():
        if k.startswith("bias"):
            assert np.all(v != 0), k


@pytest.mark.parametrize("cell", CELLS)
def test_init_range_depends_on_hidden_size(cell):
    for Hs in [1, 3, 9]:
        layer = make_layer(cell, 4, Hs, 1, seed=Hs)
        bound = 1.0 / np.sqrt(Hs)
        for k, v in layer.params.items():
            assert np.all(np.abs(v) <= bound * (1 + 1e-6)), (Hs, k)
        everything = np.concatenate([v.ravel() for v in layer.params.values()])
        assert np.abs(everything).max() > 0.3 * bound, Hs


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell", CELLS)
def test_seed_reproducibility(cell, dtype):
    kw = dict(num_layers=2, bidirectional=True, dtype=dtype)
    a = make_layer(cell, D, H, seed=42, **kw)
    b = make_layer(cell, D, H, seed=42, **kw)
    c = make_layer(cell, D, H, seed=43, **kw)
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k], err_msg=k)
        assert not np.array_equal(a.params[k], c.params[k]), k
    # distinct parameters are not copies of each other
    vals = [v.ravel()[:4] for v in a.params.values()]
    assert len({tuple(v) for v in vals}) == len(vals)


@pytest.mark.parametrize("cell", CELLS)
def test_seed_none_gives_different_layers(cell):
    a = make_layer(cell, D, H)
    b = make_layer(cell, D, H)
    assert any(not np.array_equal(a.params[k], b.params[k]) for k in a.params)


@pytest.mark.parametrize("cell", CELLS)
def test_grads_same_keys_after_backward(cell):
    layer = make_layer(cell, D, H, 1, bias=False, seed=0)
    _, _, cache = layer.forward(np.ones((2, 1, D), np.float32))
    layer.backward(np.ones((2, 1, H), np.float32), cache)
    assert set(layer.grads) == set(param_names(1, False, bias=False))
    assert state_shape(layer, 1) == (1, 1, H)
