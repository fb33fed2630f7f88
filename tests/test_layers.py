"""fastrnn layers against the loop-based NumPy reference (fastrnn.reference, run in float64).

Checked for every cell kind: outputs and final states of the inference call and of forward,
dx, the initial-state gradient and every parameter gradient.  The main grid is the full product
cell x dtype x T x B x num_layers x bidirectional; batch_first, a given state0, bias and a
random or missing dstate_n are spread over that grid so that each cell kind sees every
combination of them several times.
"""

import itertools

import numpy as np
import pytest

from conftest import (CELLS, DTYPES, assert_close, assert_dtype, assert_grads_close, make_dy,
                      make_layer, make_state, make_x, num_dirs, reference_run, rng_for,
                      seed_for, state_shape)

D, H = 5, 6

GRID = list(itertools.product(CELLS, DTYPES, [1, 5], [1, 3], [1, 2, 3], [False, True]))
# (batch_first, with_state0, bias, dstate_n given): 16 combinations; 48 grid cases per cell
# kind, so each cell sees each combination three times.  The stride 7 (coprime with 16)
# decorrelates the options from the innermost grid axes.
OPTIONS = list(itertools.product([False, True], [True, False], [True, False], [True, False]))


def _cases():
    for i, (cell, dtype, T, B, L, bidir) in enumerate(GRID):
        bf, with_state, bias, with_dsn = OPTIONS[(7 * i) % len(OPTIONS)]
        case_id = (f"{cell}-{np.dtype(dtype).name}-T{T}-B{B}-L{L}-{'bi' if bidir else 'uni'}"
                   f"-{'bf' if bf else 'tm'}-{'s0' if with_state else 'nos0'}"
                   f"-{'bias' if bias else 'nobias'}-{'dsn' if with_dsn else 'nodsn'}")
        yield pytest.param(cell, dtype, T, B, L, bidir, bf, with_state, bias, with_dsn,
                           id=case_id)


def check_against_reference(layer, T, B, with_state, with_dsn, key):
    """Forward (call and forward), backward and grads of the layer vs the reference."""
    rng = rng_for(*key)
    dtype = layer.dtype
    x = make_x(rng, layer, T, B)
    state0 = make_state(rng, layer, B) if with_state else None
    dy = make_dy(rng, layer, T, B)
    dstate_n = make_state(rng, layer, B) if with_dsn else None

    ref = reference_run(layer, x, state0, dy, dstate_n)

    # inference call
    y, state_n = layer(x, state0)
    assert_close(y, ref["y"], dtype, "call y")
    assert_close(state_n, ref["state_n"], dtype, "call state_n")
    assert_dtype(y, dtype, "call y")
    assert_dtype(state_n, dtype, "call state_n")

    # training forward + backward
    y, state_n, cache = layer.forward(x, state0)
    assert_close(y, ref["y"], dtype, "forward y")
    assert_close(state_n, ref["state_n"], dtype, "forward state_n")
    dx, dstate0 = layer.backward(dy, cache, dstate_n)
    assert_close(dx, ref["dx"], dtype, "dx")
    assert_close(dstate0, ref["dstate0"], dtype, "dstate0")
    assert_dtype(dx, dtype, "dx")
    assert_dtype(dstate0, dtype, "dstate0")
    assert_grads_close(layer.grads, ref["grads"], dtype)
    for k, g in layer.grads.items():
        assert g.dtype == np.dtype(dtype), k
    return ref


@pytest.mark.parametrize("cell, dtype, T, B, L, bidir, bf, with_state, bias, with_dsn",
                         list(_cases()))
def test_layer_matches_reference(cell, dtype, T, B, L, bidir, bf, with_state, bias, with_dsn):
    key = (cell, np.dtype(dtype).name, T, B, L, bidir, bf, with_state, bias, with_dsn)
    layer = make_layer(cell, D, H, L, bias=bias, batch_first=bf, bidirectional=bidir,
                       dtype=dtype, seed=seed_for(*key))
    check_against_reference(layer, T, B, with_state, with_dsn, key)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("L, bidir, bf, with_state, with_dsn", [
    (1, False, False, True, True),
    (2, True, False, False, True),
    (3, True, True, True, False),   # batch_first does not apply to the (T, D) form
    (2, False, True, False, False),
])
def test_unbatched_matches_reference(cell, dtype, L, bidir, bf, with_state, with_dsn):
    T = 4
    key = ("unbatched", cell, np.dtype(dtype).name, L, bidir, bf, with_state, with_dsn)
    layer = make_layer(cell, D, H, L, batch_first=bf, bidirectional=bidir, dtype=dtype,
                       seed=seed_for(*key))
    ref = check_against_reference(layer, T, None, with_state, with_dsn, key)
    assert ref["y"].shape == (T, num_dirs(layer) * H)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_unbatched_equals_batch_of_one(cell, dtype):
    """(T, D) gives the same numbers as (T, 1, D) with the batch axis dropped."""
    key = ("unbatched-b1", cell, np.dtype(dtype).name)
    rng = rng_for(*key)
    layer = make_layer(cell, D, H, 2, bidirectional=True, dtype=dtype, seed=seed_for(*key))
    x = make_x(rng, layer, 5, None)
    s0 = make_state(rng, layer, None)
    dy = make_dy(rng, layer, 5, None)
    dsn = make_state(rng, layer, None)
    squeeze = lambda s: tuple(a[:, 0] for a in s) if isinstance(s, tuple) else s[:, 0]
    unsqueeze = lambda s: tuple(a[:, None] for a in s) if isinstance(s, tuple) else s[:, None]

    y1, sn1, c1 = layer.forward(x, s0)
    dx1, ds1 = layer.backward(dy, c1, dsn)
    g1 = {k: v.copy() for k, v in layer.grads.items()}
    layer.zero_grad()
    y3, sn3, c3 = layer.forward(x[:, None], unsqueeze(s0))
    dx3, ds3 = layer.backward(dy[:, None], c3, unsqueeze(dsn))
    assert y1.shape == (5, 2 * H)
    assert_close(y1, y3[:, 0], dtype, "y")
    assert_close(sn1, squeeze(sn3), dtype, "state_n")
    assert_close(dx1, dx3[:, 0], dtype, "dx")
    assert_close(ds1, squeeze(ds3), dtype, "dstate0")
    assert_grads_close(layer.grads, g1, dtype)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("hidden", [37, 64, 520])
def test_a_single_sequence_equals_its_row_of_a_batch(cell, dtype, hidden):
    # A single sequence runs its own step kernels (a GEMV; for the vanilla RNN
    # product and activation fused), a batch the GEMM and a separate pass; both
    # sum in the same order, so the sequence's outputs agree bit for bit.  H = 520
    # takes the recurrent sums in two K blocks and ends on a partial panel.
    layer = make_layer(cell, 7, hidden, 2, bidirectional=True, dtype=dtype, seed=4)
    x = rng_for(cell, hidden).standard_normal((23, 3, 7)).astype(dtype)
    y_batch, h_batch = layer(x)[:2]
    for b in range(3):
        y_one, h_one = layer(np.ascontiguousarray(x[:, b:b + 1]))[:2]
        np.testing.assert_array_equal(y_one[:, 0], y_batch[:, b])
        for one, whole in zip(h_one if isinstance(h_one, tuple) else (h_one,),
                              h_batch if isinstance(h_batch, tuple) else (h_batch,)):
            np.testing.assert_array_equal(one[:, 0], whole[:, b])


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_first_equals_transposed_time_major(cell, dtype):
    key = ("bf-vs-tm", cell, np.dtype(dtype).name)
    rng = rng_for(*key)
    seed = seed_for(*key)
    tm = make_layer(cell, D, H, 2, bidirectional=True, dtype=dtype, seed=seed)
    bf = make_layer(cell, D, H, 2, bidirectional=True, batch_first=True, dtype=dtype, seed=seed)
    T, B = 4, 3
    x = make_x(rng, tm, T, B)
    s0 = make_state(rng, tm, B)
    dy = make_dy(rng, tm, T, B)
    dsn = make_state(rng, tm, B)
    y_t, sn_t, c_t = tm.forward(x, s0)
    dx_t, ds_t = tm.backward(dy, c_t, dsn)
    y_b, sn_b, c_b = bf.forward(np.ascontiguousarray(x.transpose(1, 0, 2)), s0)
    dx_b, ds_b = bf.backward(np.ascontiguousarray(dy.transpose(1, 0, 2)), c_b, dsn)
    assert y_b.shape == (B, T, 2 * H)
    assert_close(y_b, y_t.transpose(1, 0, 2), dtype, "y")
    assert_close(sn_b, sn_t, dtype, "state_n (never batch-first)")
    assert_close(dx_b, dx_t.transpose(1, 0, 2), dtype, "dx")
    assert_close(ds_b, ds_t, dtype, "dstate0")
    assert_grads_close(bf.grads, tm.grads, dtype)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_grads_accumulate_and_zero_grad(cell, dtype):
    """backward adds into layer.grads: two backward calls give twice the grads."""
    key = ("accumulate", cell, np.dtype(dtype).name)
    rng = rng_for(*key)
    layer = make_layer(cell, D, H, 2, bidirectional=True, dtype=dtype, seed=seed_for(*key))
    T, B = 4, 2
    x = make_x(rng, layer, T, B)
    s0 = make_state(rng, layer, B)
    dy = make_dy(rng, layer, T, B)
    dsn = make_state(rng, layer, B)
    ref = reference_run(layer, x, s0, dy, dsn)

    _, _, cache1 = layer.forward(x, s0)
    _, _, cache2 = layer.forward(x, s0)
    dx1, ds1 = layer.backward(dy, cache1, dsn)
    assert_grads_close(layer.grads, ref["grads"], dtype)
    dx2, ds2 = layer.backward(dy, cache2, dsn)
    assert_grads_close(layer.grads, ref["grads"], dtype, scale=2.0)
    # dx and dstate0 do not accumulate
    assert_close(dx2, ref["dx"], dtype, "dx second call")
    assert_close(ds2, ref["dstate0"], dtype, "dstate0 second call")

    layer.zero_grad()
    for k, g in layer.grads.items():
        assert g.shape == layer.params[k].shape
        assert not np.any(g), f"{k} not zeroed"
    _, _, cache3 = layer.forward(x, s0)
    layer.backward(dy, cache3, dsn)
    assert_grads_close(layer.grads, ref["grads"], dtype)

    # backward twice on one cache: either refused, or correct (never silently wrong)
    try:
        dx3, ds3 = layer.backward(dy, cache3, dsn)
    except (ValueError, TypeError, RuntimeError) as exc:
        assert "cache" in str(exc)
        assert_grads_close(layer.grads, ref["grads"], dtype)
    else:
        assert_close(dx3, ref["dx"], dtype, "dx, cache reused")
        assert_close(ds3, ref["dstate0"], dtype, "dstate0, cache reused")
        assert_grads_close(layer.grads, ref["grads"], dtype, scale=2.0)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_missing_state0_and_dstate_n_mean_zeros(cell, dtype):
    key = ("zeros", cell, np.dtype(dtype).name)
    rng = rng_for(*key)
    layer = make_layer(cell, D, H, 2, bidirectional=True, dtype=dtype, seed=seed_for(*key))
    T, B = 3, 2
    x = make_x(rng, layer, T, B)
    dy = make_dy(rng, layer, T, B)
    shape = state_shape(layer, B)
    zero = ((np.zeros(shape, dtype), np.zeros(shape, dtype)) if cell == "lstm"
            else np.zeros(shape, dtype))

    y_none, sn_none, c_none = layer.forward(x)
    dx_none, ds_none = layer.backward(dy, c_none)
    g_none = {k: v.copy() for k, v in layer.grads.items()}
    layer.zero_grad()
    y_zero, sn_zero, c_zero = layer.forward(x, zero)
    dx_zero, ds_zero = layer.backward(dy, c_zero, zero)

    assert_close(y_none, y_zero, dtype, "y")
    assert_close(sn_none, sn_zero, dtype, "state_n")
    assert_close(dx_none, dx_zero, dtype, "dx")
    # dstate0 is returned (with the state's shape) even when state0 was not given
    assert_close(ds_none, ds_zero, dtype, "dstate0")
    assert_grads_close(layer.grads, g_none, dtype)


@pytest.mark.parametrize("cell", CELLS)
def test_longer_sequence_float64(cell):
    """A longer sequence with a bigger batch, so errors that compound over time show."""
    key = ("long", cell)
    layer = make_layer(cell, 8, 8, 2, bidirectional=True, dtype=np.float64, seed=seed_for(*key))
    check_against_reference(layer, 20, 4, True, True, key)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell", CELLS)
def test_long_sequence_large_batch(cell, dtype):
    """T*B*G in the millions: the inference call may project the inputs in chunks of time
    steps (bounded memory) and large batches take the GEMM paths; the call, the training
    forward and (float64) backward must still match the reference, both directions."""
    T, B, Dl, Hl = 600, 64, 8, 32
    key = ("large", cell, np.dtype(dtype).name)
    rng = rng_for(*key)
    layer = make_layer(cell, Dl, Hl, 1, bidirectional=True, dtype=dtype, seed=seed_for(*key))
    x = make_x(rng, layer, T, B)
    s0 = make_state(rng, layer, B)
    with_backward = np.dtype(dtype) == np.float64
    dy = make_dy(rng, layer, T, B) if with_backward else None
    ref = reference_run(layer, x, s0, dy, None, backward=with_backward)
    y, sn = layer(x, s0)
    assert_close(y, ref["y"], dtype, "call y")
    assert_close(sn, ref["state_n"], dtype, "call state_n")
    y, sn, cache = layer.forward(x, s0)
    assert_close(y, ref["y"], dtype, "forward y")
    assert_close(sn, ref["state_n"], dtype, "forward state_n")
    if with_backward:
        dx, ds0 = layer.backward(dy, cache)
        assert_close(dx, ref["dx"], dtype, "dx")
        assert_close(ds0, ref["dstate0"], dtype, "dstate0")
        assert_grads_close(layer.grads, ref["grads"], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell", CELLS)
def test_gradients_with_whole_transpose_blocks(cell, dtype):
    """Backward transposes the layer input and the previous outputs (T*B rows) in
    blocks of 16 (float32) or 8 (float64) rows and columns, element by element at
    the edges: D = 37, H = 32 and T*B = 7*5 give whole blocks and edges in both
    dimensions, forward in time and reversed (bidirectional), through two layers."""
    key = ("transpose blocks", cell, np.dtype(dtype).name)
    layer = make_layer(cell, 37, 32, 2, bidirectional=True, dtype=dtype, seed=seed_for(*key))
    check_against_reference(layer, 7, 5, True, True, key)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell", CELLS)
def test_bias_grads_add_onto_what_is_there(cell, dtype):
    """The bias gradients are column sums of the gate gradients, taken in blocks of
    64 columns and a rest (H = 40: 4 * 40 gate columns over one or two threads) and,
    where b_ih and b_hh share them (LSTM), in one pass for both: each must add its
    own sums onto its own earlier value."""
    key = ("bias grads", cell, np.dtype(dtype).name)
    rng = rng_for(*key)
    layer = make_layer(cell, 7, 40, dtype=dtype, seed=seed_for(*key))
    T, B = 6, 9
    x, dy = make_x(rng, layer, T, B), make_dy(rng, layer, T, B)
    ref = reference_run(layer, x, None, dy)
    start = {k: rng.standard_normal(g.shape).astype(dtype) for k, g in layer.grads.items()
             if k.startswith("bias")}
    assert len(start) == 2
    for k, v in start.items():
        layer.grads[k][...] = v
    layer.backward(dy, layer.forward(x)[2])
    for k, v in start.items():
        assert_close(layer.grads[k], v + ref["grads"][k], dtype, f"grad {k}")


@pytest.mark.parametrize("H", [52, 64])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell", CELLS)
def test_weight_gradients_over_several_blocks_of_gate_gradients(cell, dtype, H):
    """The weight gradients read the gate gradients transposed, and where a row of them
    is a multiple of 256 bytes (H = 64) copy them into rows in blocks first
    (csrc/gemm_impl.h packed_gemm: 512 of the T*B terms, 24 or 48 gate rows at a
    time): T*B = 9*61 gives a second, short block of terms and 4H gate rows over
    one or two threads a short block of rows; H = 52 reads them in place."""
    key = ("weight grad blocks", cell, np.dtype(dtype).name, H)
    rng = rng_for(*key)
    layer = make_layer(cell, 20, H, dtype=dtype, seed=seed_for(*key))
    T, B = 9, 61
    x, dy = make_x(rng, layer, T, B), make_dy(rng, layer, T, B)
    ref = reference_run(layer, x, None, dy)
    layer.backward(dy, layer.forward(x)[2])
    # sums of 549 terms of either sign: float32's relative error grows where they cancel
    tol = {} if np.dtype(dtype) == np.float64 else dict(rtol=1e-4, atol=1e-4)
    for k, g in ref["grads"].items():
        assert_close(layer.grads[k], g, dtype, f"grad {k}", **tol)


@pytest.mark.parametrize("Dm, Hm", [(1, 1), (8, 1), (1, 8)])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell", CELLS)
def test_extreme_small_sizes(cell, dtype, Dm, Hm):
    key = ("tiny", cell, np.dtype(dtype).name, Dm, Hm)
    layer = make_layer(cell, Dm, Hm, 2, bidirectional=True, dtype=dtype, seed=seed_for(*key))
    check_against_reference(layer, 3, 2, True, True, key)
