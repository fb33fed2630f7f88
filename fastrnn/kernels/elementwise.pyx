"""The element-wise activations of the compiled cells, exposed on arrays.

For tests and diagnostics: sigmoid and tanh here are the very functions the
cell passes inline (a vectorised approximation for float32, libm for float64),
so their error against a float64 reference is the kernels' activation error.
"""

from cython cimport floating

cdef extern from "fastrnn_cells.h" nogil:
    const char* fr_simd_target()
    void fr_sigmoid_array_f32(int n, const float* x, float* y, int newton)
    void fr_sigmoid_array_f64(int n, const double* x, double* y, int newton)
    void fr_tanh_array_f32(int n, const float* x, float* y, int newton)
    void fr_tanh_array_f64(int n, const double* x, double* y, int newton)


def simd_target():
    """Which instruction-set clone of the C passes this CPU runs."""
    return fr_simd_target().decode()


from fastrnn.kernels.packed cimport PACK_MIN_ROWS


def pack_min_rows():
    """Fewest rows (T * B) for which the kernels pack the weights (else they use them as they are)."""
    return PACK_MIN_ROWS


def sigmoid(const floating[::1] x, floating[::1] out, bint newton=False):
    """out = 1 / (1 + exp(-x)), elementwise, as the cells compute it (newton: as
    the LSTM's forward pass does, with Newton steps for the division where the
    code has FMAs)."""
    with nogil:
        if floating is float:
            fr_sigmoid_array_f32(<int>x.shape[0], &x[0], &out[0], newton)
        else:
            fr_sigmoid_array_f64(<int>x.shape[0], &x[0], &out[0], newton)


def tanh(const floating[::1] x, floating[::1] out, bint newton=False):
    """out = tanh(x), elementwise, as the cells compute it (newton: as sigmoid's)."""
    with nogil:
        if floating is float:
            fr_tanh_array_f32(<int>x.shape[0], &x[0], &out[0], newton)
        else:
            fr_tanh_array_f64(<int>x.shape[0], &x[0], &out[0], newton)


def line_offset(unsigned char[::1] raw):
    """Bytes from raw's first byte to the first 64-byte boundary (raw non-empty);
    used by fastrnn.runtime.aligned, where NumPy's .ctypes would cost microseconds."""
    return <size_t>(-<Py_ssize_t>&raw[0]) % 64
