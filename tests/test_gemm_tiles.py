"""Every register tile of the GEMM's table (csrc/fastrnn_gemm.h) gives the same sums in the
same order: forcing each machine class in turn must not change one bit of a layer's results,
forward or backward, at shapes whose rows and panels leave every kind of remainder.  The AVX2
class also runs the GEMM built on half-panel vectors (csrc/gemm_api.h), so this compares that
build with the 64-byte one on any CPU: the batch-1 GEMV paths (B = 1), the row-dot product of
calls too short to pack (T * B = 2) and every remainder of rows."""

import numpy as np
import pytest

from fastrnn.kernels import recurrent
from conftest import make_layer


@pytest.fixture
def restore_class():
    yield
    recurrent._set_gemm_class(-1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
@pytest.mark.parametrize("T, B, D, H", [(3, 13, 40, 48), (5, 7, 136, 200), (2, 24, 8, 16),
                                         (4, 8, 40, 112), (6, 1, 40, 200), (1, 2, 37, 40),
                                         (4, 3, 24, 48), (3, 5, 20, 80)])
def test_every_tile_gives_the_same_bits(cell, dtype, T, B, D, H, restore_class):
    layer = make_layer(cell, D, H, dtype=dtype, seed=1)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((T, B, D)).astype(dtype)
    dy = rng.standard_normal((T, B, H)).astype(dtype)
    runs = []
    for c in range(recurrent.gemm_classes()):
        recurrent._set_gemm_class(c)
        layer.zero_grad()
        y, _, cache = layer.forward(x)
        dx, _ = layer.backward(dy, cache)
        runs.append([y, dx] + [layer.grads[k].copy() for k in sorted(layer.grads)])
    for other in runs[1:]:
        for a, b in zip(runs[0], other):
            np.testing.assert_array_equal(a, b)


def test_the_tile_is_named():
    machine, tile = recurrent.gemm_tile()
    assert machine and "rows x" in tile
