"""Memory: inference keeps nothing per time step beyond its output, and a
training forward keeps the documented saved state.  NumPy reports its
allocations to tracemalloc, which measures both."""

import tracemalloc

import numpy as np
import pytest

import fastrnn


def peak_extra_bytes(fn, *args):
    """Peak bytes allocated during fn(*args) beyond what it returns."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    out = fn(*args)
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    y = out[0]
    return peak - y.nbytes, out


@pytest.mark.parametrize("cls", [fastrnn.RNN, fastrnn.LSTM, fastrnn.GRU])
def test_inference_extra_memory_does_not_grow_with_T(cls):
    # The shape (B=64, D=H=256) at T = 250 and T = 1000: apart from
    # the output itself, inference allocates the same bounded work space.
    layer = cls(256, 256, seed=0)
    extra = {}
    for T in (250, 1000):
        x = np.zeros((T, 64, 256), np.float32)
        extra[T], _ = peak_extra_bytes(layer, x)
    out_1000 = 1000 * 64 * 256 * 4
    assert extra[1000] < 1.25 * extra[250] + (1 << 20)
    assert extra[1000] < out_1000 / 2     # far below even one more output's worth


@pytest.mark.parametrize("cls, saved_per_step", [(fastrnn.LSTM, 5), (fastrnn.GRU, 4),
                                                 (fastrnn.RNN, 0)])
def test_training_saved_state_is_as_documented(cls, saved_per_step):
    # Per layer and direction: LSTM keeps 5*T*B*H numbers (4 gates and the
    # cell), GRU 4*T*B*H (r, z, n and W_hn h + b_hn), RNN nothing beyond
    # the layer's output, as the class docstrings say.
    T, B, D, H = 30, 8, 16, 32
    layer = cls(D, H, num_layers=2, bidirectional=True, dtype=np.float64, seed=0)
    x = np.zeros((T, B, D))
    _, _, cache = layer.forward(x)
    saved = 0
    for entry in cache.saved.values():      # a tuple of buffers per direction
        saved += sum(a.size for a in entry if a is not None)
    assert saved == saved_per_step * T * B * H * 2 * 2   # 2 layers x 2 directions
    assert f"{saved_per_step} * T * B * H" in cls.__doc__ or saved_per_step == 0
