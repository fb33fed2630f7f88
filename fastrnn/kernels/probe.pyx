"""Probes of the machine's limits (csrc/fastrnn_probe.h): the rate of independent
fused multiply-add chains on the widest vector unit, on one thread or on all of
fastrnn's threads at once, and the rate of reading a buffer.  These run a fixed
amount of work; fastrnn.runtime.machine times them and keeps the rates."""

from fastrnn.kernels.threads cimport fr_barrier, run_parallel

cdef extern from "fastrnn_probe.h" nogil:
    int FR_PROBE_READ_BLOCK
    int fr_probe_lanes()
    double fr_probe_fma(long rounds, float* sink)
    double fr_probe_read(const float* x, size_t n, long passes, float* sink)

cdef extern from "fastrnn_pool.h" nogil:
    int FR_MAX_THREADS


cdef struct FmaJob:
    long rounds
    double flops[64]      # FR_MAX_THREADS
    float sink[64]


cdef void fma_task(void* ctx, int tid, int nthreads) noexcept nogil:
    cdef FmaJob* job = <FmaJob*>ctx
    job.flops[tid] = fr_probe_fma(job.rounds, &job.sink[tid])


def vector_lanes():
    """Floats per vector of the unit the probes use on this CPU: 16 (AVX-512), 8 (AVX2
    with FMA) or 4 (SSE, multiply and add apart)."""
    return fr_probe_lanes()


def read_block():
    """The read probe reads whole blocks of this many floats."""
    return FR_PROBE_READ_BLOCK


def fma(long rounds, int nthreads):
    """Run `rounds` rounds of the FMA probe on each of up to nthreads of fastrnn's
    threads at once; return (floating-point operations done, threads used)."""
    if rounds < 1 or not 1 <= nthreads <= FR_MAX_THREADS:
        raise ValueError(f"rounds, nthreads: expected rounds >= 1 and 1 <= nthreads <= "
                         f"{FR_MAX_THREADS}, got {rounds}, {nthreads}")
    cdef FmaJob job
    cdef fr_barrier barrier
    cdef int used
    job.rounds = rounds
    with nogil:
        used = run_parallel(nthreads, fma_task, &job, &barrier)
    return sum([job.flops[i] for i in range(used)]), used


def read(const float[::1] x, long passes):
    """Read the whole blocks of x (read_block() floats each) `passes` times on the
    calling thread; return the bytes read."""
    cdef size_t n = x.shape[0] - x.shape[0] % FR_PROBE_READ_BLOCK
    cdef float sink
    cdef double nbytes
    if n == 0 or passes < 1:
        raise ValueError(f"x, passes: expected at least {FR_PROBE_READ_BLOCK} floats and "
                         f"passes >= 1, got {x.shape[0]} and {passes}")
    with nogil:
        nbytes = fr_probe_read(&x[0], n, passes, &sink)
    return nbytes
