"""Optimizer steps and gradient clipping as one threaded pass over all parameters
(csrc/fastrnn_optim.h; fastrnn.training.optim and fastrnn.training.clip).

The parameters of a model are seen as one concatenated vector; each task
takes a contiguous share of it, whatever arrays that spans.  The updates are
element-wise, and the sum of squares for clipping is formed over fixed
chunks of CHUNK elements of each array (partial sums, added in order), so no
result depends on the thread count.  The Python side checks every array
(dtype, contiguity, writability, matching shapes) and passes lists of
arrays of one dtype.
"""

from cython cimport floating
from libc.stdlib cimport free, malloc

cimport numpy as cnp

from fastrnn.kernels.threads cimport fr_barrier, run_parallel, split_range

cnp.import_array()

cdef extern from "fastrnn_optim.h" nogil:
    void fr_sgd_f32(long n, float* p, const float* g, float* b, float lr, float momentum,
                    float dampening, float wd, int nesterov, int first)
    void fr_sgd_f64(long n, double* p, const double* g, double* b, double lr,
                    double momentum, double dampening, double wd, int nesterov, int first)
    void fr_adam_f32(long n, float* p, const float* g, float* m, float* v, float b1, float b2,
                     float eps, float step, float sqrt_bc2, float l2, float decay)
    void fr_adam_f64(long n, double* p, const double* g, double* m, double* v, double b1,
                     double b2, double eps, double step, double sqrt_bc2, double l2,
                     double decay)
    double fr_sumsq_f32(long n, const float* g)
    double fr_sumsq_f64(long n, const double* g)
    void fr_scale_f32(long n, float* g, float coef)
    void fr_scale_f64(long n, double* g, double coef)

# Elements per partial sum of squares: large enough that the per-chunk work
# dwarfs the bookkeeping, small enough that two threads share a model evenly.
cdef enum:
    CHUNK = 16384

cdef enum Kind:
    SGD, ADAM, SUMSQ, SCALE


cdef struct Job:
    Kind kind
    bint f64
    int count
    void** p           # the parameters (or the gradients, for SUMSQ and SCALE)
    void** g
    void** m           # SGD's momentum buffers; Adam's first moments
    void** v           # Adam's second moments
    long* n            # elements of each array
    long* first        # element (or, for SUMSQ, chunk) where each array starts
    long total
    double* a1         # per array: SGD's first-step flag; Adam's step size
    double* a2         # per array: Adam's sqrt(1 - beta2^t)
    double lr, momentum, dampening, wd, b1, b2, eps, l2, decay, coef
    bint nesterov
    double* partial    # SUMSQ: one sum per chunk


cdef void span(Job* j, int a, long lo, long hi, const floating* dummy) noexcept nogil:
    """Job j's pass over elements [lo, hi) of array a."""
    cdef long n = hi - lo
    cdef floating* p = <floating*>j.p[a] + lo
    cdef const floating* g = (<const floating*>j.g[a] + lo) if j.g != NULL else NULL
    cdef floating* m = (<floating*>j.m[a] + lo) if j.m != NULL and j.m[a] != NULL else NULL
    cdef floating* v = (<floating*>j.v[a] + lo) if j.v != NULL else NULL
    if j.kind == SGD:
        if floating is float:
            fr_sgd_f32(n, p, g, m, j.lr, j.momentum, j.dampening, j.wd, j.nesterov,
                       j.a1[a] != 0)
        else:
            fr_sgd_f64(n, p, g, m, j.lr, j.momentum, j.dampening, j.wd, j.nesterov,
                       j.a1[a] != 0)
    elif j.kind == ADAM:
        if floating is float:
            fr_adam_f32(n, p, g, m, v, j.b1, j.b2, j.eps, j.a1[a], j.a2[a], j.l2, j.decay)
        else:
            fr_adam_f64(n, p, g, m, v, j.b1, j.b2, j.eps, j.a1[a], j.a2[a], j.l2, j.decay)
    elif floating is float:
        fr_scale_f32(n, p, j.coef)
    else:
        fr_scale_f64(n, p, j.coef)


cdef void elementwise_task(void* ctx, int tid, int nthreads) noexcept nogil:
    cdef Job* j = <Job*>ctx
    cdef long lo = j.total * tid // nthreads, hi = j.total * (tid + 1) // nthreads
    cdef long a0, a1
    cdef int a
    for a in range(j.count):
        a0 = lo - j.first[a] if lo > j.first[a] else 0
        a1 = hi - j.first[a] if hi - j.first[a] < j.n[a] else j.n[a]
        if a1 > a0:
            if j.f64:
                span(j, a, a0, a1, <double*>NULL)
            else:
                span(j, a, a0, a1, <float*>NULL)


cdef void sumsq_task(void* ctx, int tid, int nthreads) noexcept nogil:
    cdef Job* j = <Job*>ctx
    cdef long c0 = j.total * tid // nthreads, c1 = j.total * (tid + 1) // nthreads
    cdef long c, lo, n
    cdef int a
    for a in range(j.count):
        for c in range(j.first[a], j.first[a] + (j.n[a] + CHUNK - 1) // CHUNK):
            if c0 <= c < c1:
                lo = (c - j.first[a]) * CHUNK
                n = j.n[a] - lo if j.n[a] - lo < CHUNK else CHUNK
                if j.f64:
                    j.partial[c] = fr_sumsq_f64(n, <const double*>j.p[a] + lo)
                else:
                    j.partial[c] = fr_sumsq_f32(n, <const float*>j.p[a] + lo)


cdef int setup(Job* j, Kind kind, list p, list g, list m, list v) except -1:
    """Fill j's tables of arrays (freed by release)."""
    cdef int a, count = len(p)
    cdef cnp.ndarray arr
    j.kind, j.count = kind, count
    j.p = <void**>malloc(count * sizeof(void*))
    j.n = <long*>malloc(count * sizeof(long))
    j.first = <long*>malloc(count * sizeof(long))
    if g is not None:
        j.g = <void**>malloc(count * sizeof(void*))
    if m is not None:
        j.m = <void**>malloc(count * sizeof(void*))
    if v is not None:
        j.v = <void**>malloc(count * sizeof(void*))
    if (j.p == NULL or j.n == NULL or j.first == NULL or (g is not None and j.g == NULL)
            or (m is not None and j.m == NULL) or (v is not None and j.v == NULL)):
        raise MemoryError()
    j.total = 0
    j.f64 = count > 0 and (<cnp.ndarray>p[0]).dtype.itemsize == 8
    for a in range(count):
        arr = p[a]
        j.p[a] = cnp.PyArray_DATA(arr)
        j.n[a] = cnp.PyArray_SIZE(arr)
        j.first[a] = j.total
        j.total += j.n[a] if kind != SUMSQ else (j.n[a] + CHUNK - 1) // CHUNK
        if g is not None:
            j.g[a] = cnp.PyArray_DATA(<cnp.ndarray>g[a])
        if m is not None:
            j.m[a] = NULL if m[a] is None else cnp.PyArray_DATA(<cnp.ndarray>m[a])
        if v is not None:
            j.v[a] = cnp.PyArray_DATA(<cnp.ndarray>v[a])
    return 0


cdef void clear(Job* j) noexcept:
    j.p = j.g = j.m = j.v = NULL
    j.n = j.first = NULL
    j.partial = j.a1 = j.a2 = NULL


cdef void release(Job* j) noexcept:
    free(j.p); free(j.g); free(j.m); free(j.v); free(j.n); free(j.first)


cdef void run(Job* j, int nthreads) noexcept nogil:
    cdef fr_barrier barrier
    if j.total == 0:
        return
    run_parallel(nthreads if j.total >= 2 * CHUNK or j.kind == SUMSQ and j.total > 1 else 1,
                 sumsq_task if j.kind == SUMSQ else elementwise_task, j, &barrier)


def sgd(list params, list grads, list bufs, double[::1] first, double lr, double momentum,
        double dampening, double weight_decay, bint nesterov, int nthreads):
    """One SGD step over every array (bufs[i] None when momentum == 0); first[i] != 0:
    the buffer's first step (b = d)."""
    cdef Job j
    clear(&j)
    j.lr, j.momentum, j.dampening, j.wd, j.nesterov = lr, momentum, dampening, weight_decay, nesterov
    j.a1 = &first[0] if first.shape[0] else NULL
    try:
        setup(&j, SGD, params, grads, bufs, None)
        with nogil:
            run(&j, nthreads)
    finally:
        release(&j)


def adam(list params, list grads, list m, list v, double[::1] step, double[::1] sqrt_bc2,
         double b1, double b2, double eps, double l2, double decay, int nthreads):
    """One Adam (decay == 0) or AdamW (l2 == 0) step over every array."""
    cdef Job j
    clear(&j)
    j.b1, j.b2, j.eps, j.l2, j.decay = b1, b2, eps, l2, decay
    j.a1 = &step[0] if step.shape[0] else NULL
    j.a2 = &sqrt_bc2[0] if sqrt_bc2.shape[0] else NULL
    try:
        setup(&j, ADAM, params, grads, m, v)
        with nogil:
            run(&j, nthreads)
    finally:
        release(&j)


def chunks(long n):
    """Partial sums sumsq() forms for an array of n elements."""
    return (n + CHUNK - 1) // CHUNK


def sumsq(list grads, double[::1] partial, int nthreads):
    """partial[c] = sum of squares (in double) of chunk c of the arrays taken in order;
    partial has sum(chunks(g.size)) elements.  Returns their sum, in order."""
    cdef Job j
    cdef long c
    cdef double total = 0
    clear(&j)
    j.partial = &partial[0] if partial.shape[0] else NULL
    try:
        setup(&j, SUMSQ, grads, None, None, None)
        with nogil:
            run(&j, nthreads)
            for c in range(j.total):
                total += partial[c]
    finally:
        release(&j)
    return total


def scale(list grads, double coef, int nthreads):
    """g *= coef for every array (coef rounded to the arrays' dtype)."""
    cdef Job j
    clear(&j)
    j.coef = coef
    try:
        setup(&j, SCALE, grads, None, None, None)
        with nogil:
            run(&j, nthreads)
    finally:
        release(&j)
