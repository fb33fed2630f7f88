"""The machine's limits, measured once per process: the rooflines of the benchmark.

Two kinds of limit bound a recurrent kernel:

- the floating-point rate of fused multiply-add chains on the widest vector unit, on one
  thread and on all of fastrnn's threads at once (compute-bound work: large batches);
- the rate at which one thread, and all of fastrnn's threads at once, read a buffer held by
  each level of the memory hierarchy, L1, L2, L3 and DRAM (bandwidth-bound work: small
  batches, whose steps stream the weights).

The CPU under a machine can change from one session to the next, so nothing here is a
constant: ``limits()`` runs the probes (fastrnn/kernels/probe.pyx) on first use, taking about
a second, and keeps the result for the process.  Each rate is the best of a few timed runs:
the probes measure what the machine can do, and interference only ever slows a run.
"""

import functools
import os
import statistics
import time

from fastrnn.kernels import probe, threads
from fastrnn.runtime.aligned import empty_aligned

# Cache sizes when the OS does not say (bytes): a common x86-64 server core.
_DEFAULT_CACHES = {"L1": 32 << 10, "L2": 1 << 20, "L3": 32 << 20}
_PROBE_SECONDS = 0.02       # aim of one timed run
_RUNS = 5


def cache_sizes(root="/sys/devices/system/cpu/cpu0/cache"):
    """{"L1", "L2", "L3": bytes} of the data caches of CPU 0, from the OS (Linux's sysfs
    folder root), or defaults for the levels it does not give."""
    sizes = dict(_DEFAULT_CACHES)
    try:
        entries = sorted(os.listdir(root))
    except OSError:
        return sizes
    for entry in entries:
        try:
            with open(os.path.join(root, entry, "level")) as f:
                level = int(f.read())
            with open(os.path.join(root, entry, "type")) as f:
                kind = f.read().strip()
            with open(os.path.join(root, entry, "size")) as f:
                text = f.read().strip()
        except (OSError, ValueError):
            continue
        if kind not in ("Data", "Unified") or not 1 <= level <= 3:
            continue
        scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
        try:
            sizes[f"L{level}"] = int(text.rstrip("KMG")) * scale
        except ValueError:
            continue
    return sizes


def probe_sizes(caches):
    """Bytes of the buffer each read probe streams: half of L1 and of L2 (room for the
    rest of the process), a quarter of the L3 (shared by every core), eight L3s for DRAM."""
    return {"L1": caches["L1"] // 2, "L2": caches["L2"] // 2, "L3": caches["L3"] // 4,
            "DRAM": max(8 * caches["L3"], 64 << 20)}


def shared_probe_sizes(caches, nthreads):
    """Bytes of the buffer the all-threads read probes split between nthreads threads: the
    private levels (L1, L2) take nthreads times the one-thread size, each thread's run in
    its own core's cache; the shared levels (L3, DRAM) the one-thread size."""
    one = probe_sizes(caches)
    return {level: one[level] * (nthreads if level in ("L1", "L2") else 1) for level in one}


def _timed_runs(run):
    """(work, seconds) of _RUNS timed runs, each sized to take about _PROBE_SECONDS;
    run(units) does `units` units of work and returns the work done."""
    units = 1
    while True:        # size a run from a first short one
        t0 = time.perf_counter()
        run(units)
        elapsed = time.perf_counter() - t0
        if elapsed > _PROBE_SECONDS / 10 or units > 1 << 30:
            break
        units *= 4
    units = max(1, int(units * _PROBE_SECONDS / max(elapsed, 1e-9)))
    out = []
    for _ in range(_RUNS):
        t0 = time.perf_counter()
        work = run(units)
        out.append((work, time.perf_counter() - t0))
    return out


def _best_rate(run):
    """Work per second of the fastest of the timed runs: a limit, which interference
    only ever lowers."""
    return max(work / seconds for work, seconds in _timed_runs(run))


# Tries of an all-threads probe of work that should scale with the threads (FMAs, reads
# of private caches) before its best is taken: on a VM the OS at times keeps a woken
# worker on its waker's core for a whole probe.
_SCALING_TRIES = 4


def _scaling_rate(run, one, nthreads):
    """The best rate of run on nthreads threads, tried again (up to _SCALING_TRIES times)
    while below three quarters of nthreads times one thread's rate `one`; never below one."""
    best = one
    for _ in range(_SCALING_TRIES):
        best = max(best, _best_rate(run))
        if best >= 0.75 * nthreads * one:
            break
    return best


def _median_seconds(run):
    """Seconds per unit of work of the median timed run: a cost that a loop pays on
    average, interference included."""
    return statistics.median(seconds / work for work, seconds in _timed_runs(run))


# Work of each part of the hand-over probe's stages (seconds at the FMA peak): long
# enough that every thread takes a part rather than the caller running them all.
_HANDOVER_PART_SECONDS = 4e-6


def _handover_seconds(nthreads, flops_per_thread):
    """Seconds a staged job's stage takes beyond its parts' own work, when each of
    nthreads threads runs one part (probe.handover), against the same parts in a row
    on one thread."""
    rounds = max(1, int(_HANDOVER_PART_SECONDS * flops_per_thread
                        / probe.fma(1, 1)[0]))
    parts = max(1, min(nthreads, probe.max_parts()))
    alone = _median_seconds(lambda units: probe.handover(units, 1, rounds))
    shared = _median_seconds(lambda units: probe.handover(units, nthreads, rounds) // parts)
    return max(0.0, shared - alone)


@functools.lru_cache(maxsize=1)
def limits():
    """The machine's limits, measured on first use and kept for the process.

    Returns
    -------
    dict
        ``fma_gflops`` (one thread) and ``fma_gflops_all`` (``threads`` threads at once):
        GFLOP/s of independent FMA chains, float32, on vectors of ``vector_lanes`` floats;
        ``read_gbs``: {level: GB/s} of one thread reading a buffer of ``probe_bytes[level]``
        bytes, for L1, L2, L3 and DRAM; ``read_gbs_all``: {level: GB/s} of ``threads``
        threads reading their shares of a buffer of ``probe_bytes_all[level]`` bytes at once;
        ``handover_us``: microseconds per stage of a staged job of empty parts on ``threads``
        threads (what a time loop shared by hidden units pays at every step; 0 on one);
        ``caches``: the cache sizes the probes were sized from.
    """
    nthreads = threads.get_num_threads()
    rounds = 1 << 12
    one = _best_rate(lambda units: probe.fma(rounds * units, 1)[0])
    # n threads do at least what one does (one of them descheduled, the probe says less)
    every = _scaling_rate(lambda units: probe.fma(rounds * units, nthreads)[0], one, nthreads)
    caches = cache_sizes()
    sizes = probe_sizes(caches)
    read = {}
    for level, nbytes in sizes.items():
        x = empty_aligned(nbytes // 4, "float32")
        x.fill(1.0)        # every page touched before it is timed
        read[level] = _best_rate(lambda units: probe.read(x, units)) / 1e9
    shared_sizes = shared_probe_sizes(caches, nthreads)
    read_all = {}
    for level, nbytes in shared_sizes.items():
        x = empty_aligned(nbytes // 4, "float32")
        x.fill(1.0)
        run = lambda units: probe.read_shared(x, units, nthreads)[0]     # noqa: E731
        read_all[level] = (_scaling_rate(run, read[level] * 1e9, nthreads) if level in
                           ("L1", "L2") else max(read[level] * 1e9, _best_rate(run))) / 1e9
    handover = _handover_seconds(nthreads, every / nthreads) if nthreads > 1 else 0.0
    return {"fma_gflops": one / 1e9, "fma_gflops_all": every / 1e9, "threads": nthreads,
            "vector_lanes": probe.vector_lanes(), "read_gbs": read, "probe_bytes": sizes,
            "read_gbs_all": read_all, "probe_bytes_all": shared_sizes,
            "handover_us": handover * 1e6, "caches": caches}


def describe(lim):
    """limits() as the lines `python -m fastrnn info` prints."""
    lines = [f"FMA peak (float32, {lim['vector_lanes']}-float vectors): "
             f"{lim['fma_gflops']:.0f} GFLOP/s on one thread, {lim['fma_gflops_all']:.0f} on "
             f"{lim['threads']}"]
    reads = ", ".join(f"{level} {gbs:.0f} GB/s ({lim['probe_bytes'][level] >> 10} KiB)"
                      for level, gbs in lim["read_gbs"].items())
    lines.append(f"read bandwidth, one thread: {reads}")
    reads = ", ".join(f"{level} {gbs:.0f} GB/s ({lim['probe_bytes_all'][level] >> 10} KiB)"
                      for level, gbs in lim["read_gbs_all"].items())
    lines.append(f"read bandwidth, {lim['threads']} threads: {reads}")
    lines.append(f"hand-over of a step between {lim['threads']} threads: "
                 f"{lim['handover_us']:.2f} us")
    return lines
