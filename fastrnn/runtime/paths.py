"""Which way a forward's time loop shares its steps between threads, from a cost model.

A time loop can be split two ways (fastrnn/kernels/sequence.pxd ``time_loop_threads``):

- **by batch rows**: each thread runs its rows through every step on its own, with no
  hand-over between threads, but each streams all of the recurrent weights ``W_hh`` at
  every step;
- **by hidden units**: each thread computes its units of every row, so it streams only its
  share of ``W_hh``, but the threads hand every step over to one another (all of h_{t-1}
  is needed before step t).

Both give bitwise equal results, so the choice is only one of speed. Per step, with ``n``
threads, ``W`` the bytes of ``W_hh`` and ``F`` the step's floating-point operations::

    rows:  max(F(ceil(B / n) rows) / peak_1,  W / rate(level holding W, each thread all of it))
    units: max(F(B rows) / n / peak_1,        W / rate(level holding W / n, all threads))
           + hand-over per stage * stages per step

with the rates and the hand-over measured by ``fastrnn.runtime.machine.limits()``. Rows win
for large batches (the products are compute-bound either way and rows need no hand-over);
units win where the weights dominate: small batches and large hidden sizes, and more so
when the shares fit each core's L2 and the whole does not.
"""

import functools
import math

from fastrnn.layers.cell_kinds import BY_KEY
from fastrnn.runtime.roofline import weight_bytes, weight_level

# The units split is taken only when the model has it this much faster: the rows split
# never waits for another thread, which on a shared machine is worth a margin.
UNITS_MARGIN = 1.25
# Batches above this are always split by rows: the kernels' units path runs a step's
# product as one GEMM of B rows per gate block, which for many rows is the same work
# as the rows split with a hand-over added.
MAX_UNITS_ROWS = 16


def _step_seconds(flops, nbytes, level, peak, limits, shared):
    rate = (limits["read_gbs_all"] if shared else limits["read_gbs"])[level] * 1e9
    return max(flops / peak, nbytes / rate)


def step_costs(cell, B, H, itemsize, threads, limits, substeps=1):
    """Modelled seconds per step of the two splits of a forward of B rows of a cell (a
    key of fastrnn.layers.cell_kinds) with H hidden units on `threads` threads, each step
    in `substeps` stages when shared by units: {"rows": seconds, "units": seconds}."""
    G = BY_KEY[cell].gate_count * H
    peak = limits["fma_gflops"] * 1e9 * (4 / itemsize)
    flops_row = 2 * G * H
    w = weight_bytes(cell, H, itemsize)
    caches = limits["caches"]
    level_rows = weight_level(w, caches, 1)
    if level_rows in ("L1", "L2"):       # each core keeps its own copy
        rows_bw = w / (limits["read_gbs"][level_rows] * 1e9)
    else:                               # every thread streams all of W from one level
        rows_bw = threads * w / (limits["read_gbs_all"][level_rows] * 1e9)
    rows = max(flops_row * math.ceil(B / threads) / peak, rows_bw)
    level_units = weight_level(w, caches, threads)
    units = _step_seconds(flops_row * B / threads, w, level_units, peak, limits, True)
    units += substeps * limits["handover_us"] * 1e-6
    return {"rows": rows, "units": units}


def units_rows(cell, B, H, itemsize, threads, limits=None, substeps=1):
    """The ``units_rows`` of a forward's CallConfig: B when its B rows should share each
    step by hidden units, else 1 (a single sequence keeps its own timed choice:
    fastrnn/runtime/split_choice.py)."""
    if B < 2 or B > MAX_UNITS_ROWS or threads < 2:
        return 1
    if limits is None:     # the process's limits, measured once: the answer is kept
        return _units_rows_here(cell, B, H, itemsize, threads, substeps)
    costs = step_costs(cell, B, H, itemsize, threads, limits, substeps)
    return B if UNITS_MARGIN * costs["units"] < costs["rows"] else 1


@functools.lru_cache(maxsize=1024)
def _units_rows_here(cell, B, H, itemsize, threads, substeps):
    """units_rows on this machine's limits (a call's set-up should not re-run the model)."""
    from fastrnn.runtime.machine import limits
    return units_rows(cell, B, H, itemsize, threads, limits(), substeps)
