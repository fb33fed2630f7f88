"""fastrnn's worker threads: the one pool of the process, and its size.

Kernels split their work across these threads themselves (batch rows, or
rows of a GEMM); BLAS is never asked for threads by fastrnn, so two pools
never compete for the same cores.  See csrc/fastrnn_pool.h.
"""

import os

cdef extern from "fastrnn_pool.h" nogil:
    int FR_MAX_THREADS
    int FR_HAVE_THREADS
    int fr_pool_run(int n, fr_task_fn fn, void* ctx, fr_barrier* barrier)
    void fr_barrier_wait(fr_barrier* b)
    int fr_pool_run_staged(int n, fr_part_fn fn, void* ctx, long nstages, int nparts)


cdef int run_parallel(int nthreads, fr_task_fn fn, void* ctx, fr_barrier* barrier) noexcept nogil:
    """Run fn(ctx, tid, m) on m <= nthreads threads (barrier set up for m); return m."""
    return fr_pool_run(nthreads, fn, ctx, barrier)


cdef void barrier_wait(fr_barrier* b) noexcept nogil:
    fr_barrier_wait(b)


cdef int run_staged(int nthreads, fr_part_fn fn, void* ctx, long nstages,
                    int nparts) noexcept nogil:
    """Run fn(ctx, stage, part, nparts) for every stage in order and every part of
    it, parts claimed by up to nthreads threads (at most nparts <= FR_MAX_PARTS);
    return the threads used."""
    return fr_pool_run_staged(nthreads, fn, ctx, nstages, nparts)


def _default_threads():
    env = os.environ.get("FASTRNN_NUM_THREADS", "").strip()
    if env:
        try:
            n = int(env)
        except ValueError:
            raise ValueError(f"FASTRNN_NUM_THREADS: expected a positive integer, got {env!r}")
        if n < 1:
            raise ValueError(f"FASTRNN_NUM_THREADS: expected a positive integer, got {env!r}")
        return min(n, FR_MAX_THREADS)
    try:
        n = len(os.sched_getaffinity(0))   # respects taskset and cgroup CPU sets
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    return max(1, min(n, FR_MAX_THREADS)) if FR_HAVE_THREADS else 1


_num_threads = _default_threads()


def get_num_threads():
    """Threads fastrnn's kernels may use (default: the CPUs this process may run on,
    or the FASTRNN_NUM_THREADS environment variable)."""
    return _num_threads


def set_num_threads(n):
    """Set how many threads fastrnn's kernels may use (1 disables threading).

    Affects fastrnn only, not NumPy's or SciPy's BLAS.  Returns the previous value.
    """
    global _num_threads
    import numbers
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"n: expected an integer, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"n: expected an integer >= 1, got {n}")
    previous = _num_threads
    _num_threads = min(int(n), FR_MAX_THREADS) if FR_HAVE_THREADS else 1
    return previous
