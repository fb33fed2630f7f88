"""Buffers that threads write side by side start on a cache line."""

import numpy as np
import pytest

import fastrnn
from fastrnn.runtime.aligned import CACHE_LINE, aligned_copy, empty_aligned, zeros_aligned


@pytest.mark.parametrize("shape", [(0,), (1,), (7,), (3, 5), (4, 1, 33)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_shape_dtype_and_alignment(shape, dtype):
    for make in (empty_aligned, zeros_aligned):
        a = make(shape, dtype)
        assert a.shape == shape and a.dtype == dtype and a.flags.c_contiguous
        assert a.flags.writeable
        if a.size:
            assert a.ctypes.data % CACHE_LINE == 0
    assert not zeros_aligned(shape, dtype).any()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_aligned_copy_is_an_equal_aligned_copy(dtype):
    src = np.arange(2 * 3 * 5, dtype=dtype).reshape(2, 3, 5)[:, ::2]   # not contiguous
    out = aligned_copy(src)
    assert out.ctypes.data % CACHE_LINE == 0 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, src)
    out[0, 0, 0] = -1
    assert src[0, 0, 0] == 0


def test_layer_outputs_are_aligned():
    layer = fastrnn.LSTM(5, 16, seed=0)
    y, _ = layer(np.ones((3, 2, 5), np.float32))
    assert y.ctypes.data % CACHE_LINE == 0
