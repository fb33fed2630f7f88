"""Embedding lookup and its gradient, threaded (fastrnn.layers.embedding).

    gather:       y[n, :] = W[idx[n], :]
    scatter_add:  dW[idx[n], :] += dy[n, :]   for n = 0, 1, ... in order

The scatter-add is split by rows of the table, not by positions: each task
walks every index and adds only those of its own rows, so no two tasks ever
write one row, and each row adds its gradients in the order of the
positions, whatever the thread count (bitwise as numpy.add.at).  The Python
side checks every index is in [0, V) first.
"""

from cython cimport floating
from libc.stdint cimport int64_t
from libc.string cimport memcpy

from fastrnn.kernels.threads cimport fr_barrier, run_parallel, split_range


# Fewest elements moved for which a call uses threads: below, waking a worker
# costs more than the copy (a step's 1200 x 200 gather is tens of microseconds).
cdef enum:
    PARALLEL_MIN = 1 << 20


cdef struct Job:
    int N, E, V
    bint f64
    const int64_t* idx
    const void* src
    void* dst


cdef void gather_rows(Job* j, const floating* w, floating* y, int lo, int hi) noexcept nogil:
    cdef size_t n, E = j.E
    for n in range(<size_t>lo, <size_t>hi):
        memcpy(y + n * E, w + <size_t>j.idx[n] * E, E * sizeof(floating))


cdef void gather_task(void* ctx, int tid, int nthreads) noexcept nogil:
    cdef Job* j = <Job*>ctx
    cdef int lo, hi
    split_range(j.N, tid, nthreads, &lo, &hi)
    if j.f64:
        gather_rows(j, <const double*>j.src, <double*>j.dst, lo, hi)
    else:
        gather_rows(j, <const float*>j.src, <float*>j.dst, lo, hi)


cdef void scatter_rows(Job* j, const floating* dy, floating* dw, int v0, int v1) noexcept nogil:
    cdef size_t n, e, E = j.E
    cdef int64_t v
    cdef floating* row
    cdef const floating* d
    for n in range(<size_t>j.N):
        v = j.idx[n]
        if v0 <= v < v1:
            row = dw + <size_t>v * E
            d = dy + n * E
            for e in range(E):
                row[e] += d[e]


cdef void scatter_task(void* ctx, int tid, int nthreads) noexcept nogil:
    cdef Job* j = <Job*>ctx
    cdef int v0, v1
    split_range(j.V, tid, nthreads, &v0, &v1)
    if j.f64:
        scatter_rows(j, <const double*>j.src, <double*>j.dst, v0, v1)
    else:
        scatter_rows(j, <const float*>j.src, <float*>j.dst, v0, v1)


def gather(const floating[:, ::1] w, const int64_t[::1] idx, floating[:, ::1] y,
           int nthreads):
    """y[n] = w[idx[n]] for every n (indices trusted to be in range)."""
    cdef Job j
    cdef fr_barrier barrier
    j.N, j.E, j.V = <int>idx.shape[0], <int>w.shape[1], <int>w.shape[0]
    if j.N == 0:
        return
    j.f64 = floating is double
    j.idx, j.src, j.dst = &idx[0], &w[0, 0], &y[0, 0]
    with nogil:
        run_parallel(nthreads if j.N * j.E >= PARALLEL_MIN else 1, gather_task, &j, &barrier)


def scatter_add(floating[:, ::1] dw, const int64_t[::1] idx, const floating[:, ::1] dy,
                int nthreads):
    """dw[idx[n]] += dy[n] for n in order (indices trusted to be in range)."""
    cdef Job j
    cdef fr_barrier barrier
    j.N, j.E, j.V = <int>idx.shape[0], <int>dw.shape[1], <int>dw.shape[0]
    if j.N == 0:
        return
    j.f64 = floating is double
    j.idx, j.src, j.dst = &idx[0], &dy[0, 0], &dw[0, 0]
    with nogil:
        run_parallel(nthreads if j.N * j.E >= PARALLEL_MIN else 1, scatter_task, &j, &barrier)
