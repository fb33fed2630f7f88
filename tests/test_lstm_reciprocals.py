"""The LSTM forward pass divides either by the division or by Newton steps, chosen per
CPU (csrc/fastrnn_cells.h, fr_lstm_newton).  A CPU runs only one of them unless told, so
this forces each in turn: each must agree with the float64 NumPy reference, whole layers
and frozen ones (whose cell is updated in place), on one thread and on two (which split
the hidden units of one step, so the pass runs over part of each gate block), with and
without peepholes, and the two ways must agree with each other to within a few ulps."""

import numpy as np
import pytest

import fastrnn
from fastrnn.kernels import recurrent
from conftest import assert_close, reference_run


@pytest.fixture
def restore_mode():
    threads = fastrnn.get_num_threads()
    yield
    recurrent._set_lstm_newton(-1)
    fastrnn.set_num_threads(threads)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("peephole", [False, True])
@pytest.mark.parametrize("T, B, D, H", [(4, 3, 10, 37), (3, 16, 24, 128), (5, 1, 8, 200)])
def test_both_ways_of_dividing_match_the_reference(T, B, D, H, peephole, threads,
                                                   restore_mode):
    fastrnn.set_num_threads(threads)
    layer = fastrnn.LSTM(D, H, peephole=peephole, seed=3)
    x = np.random.default_rng(4).standard_normal((T, B, D)).astype(np.float32) * 2
    ref = reference_run(layer, x, backward=False)
    outputs = []
    for mode in (0, 1):
        recurrent._set_lstm_newton(mode)
        y, (h, c) = layer(x)
        frozen_y, _ = layer.frozen()(x)
        assert_close(y, ref["y"], np.float32, "y")
        assert_close(c, ref["state_n"][1], np.float32, "c")
        np.testing.assert_array_equal(frozen_y, y)
        outputs.append(y)
    np.testing.assert_allclose(outputs[0], outputs[1], rtol=0, atol=4e-7)


def test_the_mode_is_restored_and_reported(restore_mode):
    recurrent._set_lstm_newton(0)
    assert recurrent._set_lstm_newton(1) is False
    recurrent._set_lstm_newton(-1)
    assert isinstance(recurrent._set_lstm_newton(-1), bool)
