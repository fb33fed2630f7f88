# fastrnn's worker threads (csrc/fastrnn_pool.h), shared by every kernel
# module through these cimportable functions so the process has one pool.

cdef extern from "fastrnn_pool.h" nogil:
    ctypedef void (*fr_task_fn)(void* ctx, int tid, int nthreads) noexcept nogil
    ctypedef void (*fr_part_fn)(void* ctx, long stage, int part, int nparts) noexcept nogil
    int FR_MAX_PARTS
    ctypedef struct fr_barrier:
        pass

cdef int run_parallel(int nthreads, fr_task_fn fn, void* ctx, fr_barrier* barrier) noexcept nogil
cdef void barrier_wait(fr_barrier* b) noexcept nogil
cdef int run_staged(int nthreads, fr_part_fn fn, void* ctx, long nstages,
                    int nparts) noexcept nogil


cdef inline void split_range(int n, int tid, int nthreads, int* lo, int* hi) noexcept nogil:
    """[lo, hi): task tid's share of range(n), shares differing by at most one."""
    lo[0] = <int>((<long>n * tid) // nthreads)
    hi[0] = <int>((<long>n * (tid + 1)) // nthreads)
