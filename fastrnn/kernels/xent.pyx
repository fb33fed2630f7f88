"""Softmax cross-entropy over rows of logits, threaded by rows (csrc/fastrnn_xent.h).

The Python side (fastrnn.training.loss) validates targets and weights and
allocates; these functions trust their arguments' shapes.
"""

from cython cimport floating
from libc.stdint cimport int64_t

from fastrnn.kernels.threads cimport fr_barrier, run_parallel, split_range

cdef extern from "fastrnn_xent.h" nogil:
    double fr_xent_row_f32(int V, const float* z, int t, float scale, float* g)
    double fr_xent_row_f64(int V, const double* z, int t, double scale, double* g)
    void fr_log_softmax_row_f32(int V, const float* z, float* out)
    void fr_log_softmax_row_f64(int V, const double* z, double* out)


cdef struct XentJob:
    int N, V
    bint f64
    const void* z
    void* g
    const int64_t* targets     # NULL: log_softmax only
    const double* scale
    double* nll


cdef void rows(XentJob* j, const floating* z, floating* g, int lo, int hi) noexcept nogil:
    cdef size_t r, V = j.V
    for r in range(<size_t>lo, <size_t>hi):
        if j.targets == NULL:
            if floating is float:
                fr_log_softmax_row_f32(j.V, z + r * V, g + r * V)
            else:
                fr_log_softmax_row_f64(j.V, z + r * V, g + r * V)
        elif floating is float:
            j.nll[r] = fr_xent_row_f32(j.V, z + r * V, <int>j.targets[r], <float>j.scale[r],
                                       g + r * V)
        else:
            j.nll[r] = fr_xent_row_f64(j.V, z + r * V, <int>j.targets[r], j.scale[r],
                                       g + r * V)


cdef void xent_task(void* ctx, int tid, int nthreads) noexcept nogil:
    cdef XentJob* j = <XentJob*>ctx
    cdef int lo, hi
    split_range(j.N, tid, nthreads, &lo, &hi)
    if j.f64:
        rows(j, <const double*>j.z, <double*>j.g, lo, hi)
    else:
        rows(j, <const float*>j.z, <float*>j.g, lo, hi)


cdef void run(XentJob* j, int nthreads) noexcept nogil:
    cdef fr_barrier barrier
    run_parallel(nthreads if j.N > 1 else 1, xent_task, j, &barrier)


def cross_entropy(const floating[:, ::1] z, const int64_t[::1] targets,
                  const double[::1] scale, floating[:, ::1] g, double[::1] nll,
                  int nthreads):
    """Per row n: nll[n] = log sum exp(z_n) - z_n[t_n] and
    g_n = scale[n] * (softmax(z_n) - onehot(t_n)); g may be z's memory."""
    cdef XentJob j
    j.N, j.V = <int>z.shape[0], <int>z.shape[1]
    if j.N == 0:
        return
    j.f64 = floating is double
    j.z, j.g = &z[0, 0], &g[0, 0]
    j.targets, j.scale, j.nll = &targets[0], &scale[0], &nll[0]
    with nogil:
        run(&j, nthreads)


def log_softmax(const floating[:, ::1] z, floating[:, ::1] out, int nthreads):
    """out_n = z_n - max z_n - log sum exp(z_n - max z_n) per row; out must not be z."""
    cdef XentJob j
    j.N, j.V = <int>z.shape[0], <int>z.shape[1]
    if j.N == 0:
        return
    j.f64 = floating is double
    j.z, j.g = &z[0, 0], &out[0, 0]
    j.targets, j.scale, j.nll = NULL, NULL, NULL
    with nogil:
        run(&j, nthreads)
