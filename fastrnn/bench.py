"""Side-by-side timing of fastrnn against the NumPy reference.

Used by ``python -m fastrnn bench``.  Each workload (cell, shape, inference or
training) is timed for every system in round-robin order, so drift in the
machine's load hits all systems alike, and the median of the repeats is
reported with the ratio between systems.  Measurements only: nothing here
passes or fails on a time.
"""

import statistics
import time

import numpy as np

from fastrnn import reference
from fastrnn.gru import GRU
from fastrnn.lstm import LSTM
from fastrnn.rnn import RNN

CELLS = {"rnn": RNN, "lstm": LSTM, "gru": GRU}

# (T, B, D, H): a batch-1 latency case, a mid-size batch and a GEMM-bound batch.
DEFAULT_SHAPES = ((100, 1, 32, 64), (100, 16, 64, 128), (50, 64, 256, 256))


def _workloads(cell, shape, dtype, seed=0):
    """{system: {work: zero-argument callable}} for one cell and shape."""
    T, B, D, H = shape
    layer = CELLS[cell](D, H, dtype=dtype, seed=seed)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, B, D)).astype(dtype)
    dy = rng.standard_normal((T, B, H)).astype(dtype)
    params = layer.state_dict()

    def fastrnn_train():
        _, _, cache = layer.forward(x)
        layer.backward(dy, cache)

    def reference_train():
        _, _, cache = reference.forward(cell, params, x)
        reference.backward(dy, cache)

    return {
        "fastrnn": {"inference": lambda: layer(x), "training": fastrnn_train},
        "reference": {"inference": lambda: reference.forward(cell, params, x),
                      "training": reference_train},
    }


def time_round_robin(functions, repeats=5, budget=2.0):
    """Median seconds per call of each named function, timed in turns.

    Every function runs once to warm up; then rounds of one call each repeat
    until `repeats` rounds are done, stopping early (after at least 3
    rounds) when `budget` seconds have been spent.
    """
    for fn in functions.values():
        fn()
    samples = {name: [] for name in functions}
    start = time.perf_counter()
    for rnd in range(repeats):
        for name, fn in functions.items():
            t0 = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - t0)
        if rnd >= 2 and time.perf_counter() - start > budget:
            break
    return {name: statistics.median(s) for name, s in samples.items()}


def run(cells=("rnn", "lstm", "gru"), shapes=DEFAULT_SHAPES, dtype=np.float32,
        works=("inference", "training"), repeats=5, budget=2.0, progress=None):
    """Time every (cell, shape, work); return a list of result dicts.

    Each dict has cell, work, T, B, D, H, the median seconds of fastrnn and
    of the reference, and speedup = reference / fastrnn.  progress, if
    given, is called with (done, total, label) after each workload.
    """
    results = []
    total = len(cells) * len(shapes) * len(works)
    for cell in cells:
        for shape in shapes:
            systems = _workloads(cell, shape, dtype)
            for work in works:
                med = time_round_robin({name: fns[work] for name, fns in systems.items()},
                                       repeats=repeats, budget=budget)
                T, B, D, H = shape
                results.append(dict(cell=cell, work=work, T=T, B=B, D=D, H=H,
                                    fastrnn_s=med["fastrnn"], reference_s=med["reference"],
                                    speedup=med["reference"] / med["fastrnn"]))
                if progress is not None:
                    progress(len(results), total, f"{cell} {work} {shape}")
    return results


def format_table(results):
    """Results as a fixed-width text table (times in milliseconds)."""
    head = ("cell", "work", "T", "B", "D", "H", "fastrnn ms", "reference ms", "speed-up")
    rows = [(r["cell"], r["work"], r["T"], r["B"], r["D"], r["H"],
             f"{r['fastrnn_s'] * 1e3:.3f}", f"{r['reference_s'] * 1e3:.3f}",
             f"{r['speedup']:.1f}x") for r in results]
    widths = [max(len(str(v)) for v in col) for col in zip(head, *rows)]
    lines = ["  ".join(str(v).rjust(w) for v, w in zip(row, widths)) for row in [head, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
