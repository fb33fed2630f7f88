"""Probes of the machine's limits (csrc/fastrnn_probe.h): the rate of independent
fused multiply-add chains on the widest vector unit, on one thread or on all of
fastrnn's threads at once, the rate of reading a buffer, and the cost of handing a
staged job's stage over between threads.  These run a fixed
amount of work; fastrnn.runtime.machine times them and keeps the rates."""

from fastrnn.kernels.threads cimport FR_MAX_PARTS, fr_barrier, run_parallel, run_staged

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


def max_parts():
    """Parts a stage of a staged job may have (fastrnn/kernels/threads.pxd)."""
    return FR_MAX_PARTS


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


cdef struct ReadJob:
    const float* x
    size_t part           # floats each thread reads, whole blocks
    long passes
    double nbytes[64]     # FR_MAX_THREADS
    float sink[64]


cdef void read_task(void* ctx, int tid, int nthreads) noexcept nogil:
    cdef ReadJob* job = <ReadJob*>ctx
    job.nbytes[tid] = fr_probe_read(job.x + tid * job.part, job.part, job.passes,
                                    &job.sink[tid])


def read_shared(const float[::1] x, long passes, int nthreads):
    """Split x into up to nthreads equal runs of whole blocks and have each of
    fastrnn's threads read its own run `passes` times, all at once; return (bytes read,
    threads used).  With x twice a private cache each thread streams from its own;
    with x larger, the threads share the level that holds it."""
    if passes < 1 or not 1 <= nthreads <= FR_MAX_THREADS:
        raise ValueError(f"passes, nthreads: expected passes >= 1 and 1 <= nthreads <= "
                         f"{FR_MAX_THREADS}, got {passes}, {nthreads}")
    cdef ReadJob job
    cdef fr_barrier barrier
    cdef int used
    job.x = &x[0] if x.shape[0] > 0 else NULL
    job.part = x.shape[0] // nthreads // FR_PROBE_READ_BLOCK * FR_PROBE_READ_BLOCK
    job.passes = passes
    if job.part == 0:
        raise ValueError(f"x: expected at least {FR_PROBE_READ_BLOCK} floats a thread, "
                         f"got {x.shape[0]} for {nthreads} threads")
    with nogil:
        used = run_parallel(nthreads, read_task, &job, &barrier)
    return sum([job.nbytes[i] for i in range(used)]), used


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


cdef struct StagedJob:
    long rounds           # FMA probe rounds each part runs
    int counts[64]        # FR_MAX_THREADS
    float sink[64]


cdef void fma_part(void* ctx, long stage, int part, int nparts) noexcept nogil:
    cdef StagedJob* job = <StagedJob*>ctx
    fr_probe_fma(job.rounds, &job.sink[part])
    job.counts[part] += 1


def handover(long nstages, int nthreads, long rounds=0):
    """Run a staged job of nstages stages, of one part a thread (at most FR_MAX_PARTS),
    each part `rounds` rounds of the FMA probe, on up to nthreads of fastrnn's threads,
    as a time loop shared by hidden units runs its steps
    (fastrnn.kernels.threads.run_staged); return the parts run.  Timed against the same
    job on one thread, this is the cost of the hand-over between threads that such a
    loop pays at every step."""
    if nstages < 1 or rounds < 0 or not 1 <= nthreads <= FR_MAX_THREADS:
        raise ValueError(f"nstages, nthreads, rounds: expected nstages >= 1, 1 <= nthreads "
                         f"<= {FR_MAX_THREADS} and rounds >= 0, got {nstages}, {nthreads}, "
                         f"{rounds}")
    cdef StagedJob job
    cdef int i, nparts = nthreads if nthreads < FR_MAX_PARTS else FR_MAX_PARTS
    job.rounds = rounds
    for i in range(nparts):
        job.counts[i] = 0
    with nogil:
        run_staged(nthreads, fma_part, &job, nstages, nparts)
    return sum([job.counts[i] for i in range(nparts)])
