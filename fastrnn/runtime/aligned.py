"""Arrays whose data start on a cache-line boundary.

The kernels split rows between threads in whole panels of 64 bytes (16
float32 or 8 float64 columns).  When a buffer starts on a 64-byte boundary,
so does every panel of a row whose length is a whole number of panels, and
two threads never write into one cache line; NumPy only promises 16 bytes.
Used for the buffers that threads write side by side at every step: the
outputs and the kernels' work buffers (a call allocates several, so this
costs under a microsecond each).
"""

import math

import numpy as np

from fastrnn.kernels.elementwise import line_offset

CACHE_LINE = 64


def nbytes_of(shape, dtype):
    """Bytes of an array of this shape (a tuple or a length) and dtype."""
    count = math.prod(shape) if isinstance(shape, tuple) else shape
    return count * np.dtype(dtype).itemsize


def raw_buffer(nbytes):
    """A byte buffer that holds nbytes from its first 64-byte boundary on."""
    return np.empty(nbytes + CACHE_LINE, np.uint8)


def view_aligned(raw, shape, dtype):
    """The array of this shape and dtype over raw (from raw_buffer), from its first
    64-byte boundary."""
    return np.ndarray(shape, dtype, raw, line_offset(raw))


def empty_aligned(shape, dtype):
    """np.empty(shape, dtype) whose first element sits on a 64-byte boundary
    (an array over a slightly larger byte buffer)."""
    return view_aligned(raw_buffer(nbytes_of(shape, dtype)), shape, dtype)


def zeros_aligned(shape, dtype):
    """np.zeros(shape, dtype) starting on a 64-byte boundary."""
    a = empty_aligned(shape, dtype)
    a.fill(0)
    return a


def aligned_copy(a):
    """A copy of the array a starting on a 64-byte boundary (C order)."""
    out = empty_aligned(a.shape, a.dtype)
    out[...] = a
    return out
