"""Side-by-side timing of fastrnn against NumPy, PyTorch and ONNX Runtime.

Used by ``python -m fastrnn bench``.  For each workload (cell, shape,
inference or training) every system is timed in turn, a warm block of calls
each, round after round (round-robin), so drift in the machine's load hits
all systems alike; the median of the rounds is reported, with the ratio fastrnn time / peer time
(below 1: fastrnn is faster), fastrnn's achieved GFLOP/s, and fastrnn's time as a fraction
of the call's roofline (fastrnn/runtime/roofline.py): the least time the machine's measured
FMA peak and read bandwidths allow, with what binds it (compute, or the cache level or DRAM
that holds the weights). NumPy's sgemm rate is printed beside them as a peer's figure, not a
yardstick: NumPy's BLAS may run a kernel older than the CPU.
Measurements only: nothing here passes or fails on a time.
"""

import statistics
import time

import numpy as np

from fastrnn.apps import peers
from fastrnn.layers.cell_kinds import BY_KEY, KEYS
from fastrnn.kernels import threads as _threads
from fastrnn.runtime import machine, roofline

# (T, B, D, H): batch-1 latency cases, mid-size batches, GEMM-bound batches.
FULL_SHAPES = ((100, 1, 32, 64), (100, 1, 128, 128), (100, 16, 64, 128),
               (20, 60, 200, 256), (50, 64, 256, 256), (50, 128, 512, 512))
# The first look, about a minute: a stream, a small batch of a large layer, a training batch.
DEFAULT_SHAPES = ((100, 1, 128, 128), (50, 4, 512, 512), (50, 64, 256, 256))
QUICK_SHAPES = ((100, 1, 32, 64), (50, 64, 256, 256))


def flops(cell, work, T, B, D, H):
    """Floating-point operations of one single-layer call (roofline.flops)."""
    return roofline.flops(cell, T, B, D, H, training=work == "training")


SGEMM_N = 2048    # NumPy's BLAS on n x n float32 matrices


def sgemm_call(n=SGEMM_N):
    """A function running one n x n x n float32 product with NumPy's BLAS, and
    its floating-point operations."""
    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    return (lambda: a @ a), 2 * n ** 3


def sgemm_rate(threads, n=SGEMM_N, repeats=5):
    """NumPy's BLAS float32 GEMM rate in GFLOP/s (n x n x n): a peer's figure, printed
    beside the roofline."""
    call, work = sgemm_call(n)
    call()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    time.sleep(peers.SPINS_AFTER.get("numpy", 0))
    return work / statistics.median(times) / 1e9


def time_round_robin(functions, repeats=5, budget=2.0, pauses=None, block=0.03):
    """Median seconds per call of each named function, timed in turns.

    A round gives every function, in turn, one untimed warm-up call and then
    a block of back-to-back timed calls lasting about `block` seconds (at
    least one): calls in a warm loop, as in a service or a training run,
    while the turns make drift in the machine's load hit every function
    alike.  After its block a function's thread pool may keep spinning, so
    pauses maps a name to seconds to sleep (untimed) before the next one.
    Rounds repeat until `repeats` are done, stopping early (after at least 3)
    once `budget` seconds have been spent.  A sample is a block's mean.
    """
    pauses = pauses or {}
    calls = {}
    for name, fn in functions.items():     # estimate each function's block size
        # from warm calls: a first call pays one-off costs (thread pools
        # starting, buffers first touched) that made blocks far too short
        # (docs/DECISIONS.md)
        fn()
        one = []
        for _ in range(3):
            t0 = time.perf_counter()
            fn()
            one.append(time.perf_counter() - t0)
        calls[name] = max(1, min(1000, int(block / max(statistics.median(one), 1e-7))))
        time.sleep(pauses.get(name, 0))
    samples = {name: [] for name in functions}
    start = time.perf_counter()
    for rnd in range(repeats):
        for name, fn in functions.items():
            fn()
            t0 = time.perf_counter()
            for _ in range(calls[name]):
                fn()
            samples[name].append((time.perf_counter() - t0) / calls[name])
            time.sleep(pauses.get(name, 0))
        if rnd >= 2 and time.perf_counter() - start > budget:
            break
    return {name: statistics.median(s) for name, s in samples.items()}


def run(cells=KEYS, shapes=DEFAULT_SHAPES, dtype=np.float32,
        works=("inference", "training"), systems=None, threads=None, repeats=5,
        budget=2.0, progress=None):
    """Time every (cell, shape, work) on every system; return a dict.

    systems defaults to every available one (peers.available()); threads to
    the CPUs this process may use, given to every system alike.  The result
    has "machine" (threads, the measured limits, NumPy's sgemm GFLOP/s, SIMD target) and
    "results": one dict per workload with cell, work, T, B, D, H, "seconds" {system:
    median}, "ratio" {peer: fastrnn seconds / peer seconds}, "gflops" (fastrnn),
    "roofline" (roofline.roofline's dict) and "roofline_fraction" (roofline seconds /
    fastrnn seconds).  progress, if given, is called with (done, total, label).
    """
    from fastrnn.kernels.elementwise import simd_target
    systems = list(systems or peers.available())
    if "fastrnn" not in systems:
        systems.insert(0, "fastrnn")
    threads = threads or peers.default_threads()
    previous = _threads.set_num_threads(threads)
    try:
        limits = machine.limits()
        results = []
        total = len(cells) * len(shapes) * len(works)
        for cell in cells:
            for shape in shapes:
                for r in measure_shape(cell, shape, dtype, works, systems, threads, limits,
                                       repeats, budget):
                    results.append(r)
                    if progress is not None:
                        progress(len(results), total, f"{cell} {r['work']} {shape}")
    finally:
        _threads.set_num_threads(previous)
    sgemm = sgemm_rate(threads)
    machine_info = dict(threads=threads, sgemm_gflops=sgemm, simd=simd_target(),
                        dtype=np.dtype(dtype).name, systems=systems, limits=limits)
    return {"machine": machine_info, "results": results}


def measure_shape(cell, shape, dtype, works, systems, threads, limits, repeats=5, budget=2.0):
    """Time one (cell, shape) on every system for each work; return one result dict per
    work (see run)."""
    T, B, D, H = shape
    layer = BY_KEY[cell].layer_class(D, H, dtype=dtype, seed=0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, B, D)).astype(dtype)
    dy = rng.standard_normal((T, B, H)).astype(dtype)
    built = {s: peers.build(s, cell, layer, x, dy, threads) for s in systems}
    out = []
    for work in works:
        fns = {s: w[work] for s, w in built.items() if work in w}
        med = time_round_robin(fns, repeats=repeats, budget=budget, pauses=peers.SPINS_AFTER)
        roof = roofline.roofline(cell, T, B, D, H, itemsize=np.dtype(dtype).itemsize,
                                 training=work == "training", limits=limits)
        out.append(dict(
            cell=cell, work=work, T=T, B=B, D=D, H=H, seconds=med,
            ratio={s: med["fastrnn"] / med[s] for s in peers.float_peers(med)},
            gflops=flops(cell, work, T, B, D, H) / med["fastrnn"] / 1e9,
            roofline=roof, roofline_fraction=roof["seconds"] / med["fastrnn"]))
        if any(s in med for s in peers.REDUCED_SYSTEMS):
            out[-1]["reduced"] = reduced_ratios(med)
    return out


# The ratios of the reduced-precision systems (peers.REDUCED_SYSTEMS), in the order tables
# and plots show them: name -> (system timed, system it is divided by).
REDUCED_RATIOS = {"int8/float32": ("fastrnn int8", "fastrnn"),
                  "bfloat16/float32": ("fastrnn bfloat16", "fastrnn"),
                  "int8/torch int8": ("fastrnn int8", "torch int8")}


def reduced_ratios(seconds):
    """{name: time ratio} of REDUCED_RATIOS for the systems timed in seconds, a {system:
    seconds} that holds fastrnn's float32 time too; below 1 the first is faster."""
    return {name: seconds[a] / seconds[b] for name, (a, b) in REDUCED_RATIOS.items()
            if a in seconds and b in seconds}


def bound_text(roof):
    """What binds a roofline, for a table: "FMA" or the level holding the weights."""
    return "FMA" if roof["bound"] == "compute" else roof["bound"]


def format_table(report):
    """The report as a fixed-width text table (times in milliseconds)."""
    results = report["results"]
    systems = report["machine"]["systems"]
    peers_ = [s for s in systems if s != "fastrnn"]
    short = {"onnxruntime": "ort"}
    head = (["cell", "work", "T", "B", "D", "H"] + [f"{short.get(s, s)} ms" for s in systems]
            + [f"fr/{short.get(p, p)}" for p in peers_] + ["GF/s", "roof%", "bound"])
    rows = []
    for r in results:
        times = [f"{r['seconds'][s] * 1e3:.3f}" if s in r["seconds"] else "-" for s in systems]
        ratios = [f"{r['ratio'][p]:.2f}" if p in r["ratio"] else "-" for p in peers_]
        rows.append([r["cell"], r["work"], r["T"], r["B"], r["D"], r["H"], *times, *ratios,
                     f"{r['gflops']:.1f}", f"{100 * r['roofline_fraction']:.0f}%",
                     bound_text(r["roofline"])])
    widths = [max(len(str(v)) for v in col) for col in zip(head, *rows)]
    lines = ["  ".join(str(v).rjust(w) for v, w in zip(row, widths)) for row in [head, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def plot(report, path):
    """Write a PNG: fastrnn's speed-up (peer time / fastrnn time) against each
    peer, one bar per workload.  Needs matplotlib."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = report["results"]
    peers_ = [s for s in report["machine"]["systems"] if s != "fastrnn"]
    labels = [f"{r['cell']} {r['work'][:5]}\n{r['T']},{r['B']},{r['D']},{r['H']}"
              for r in results]
    fig, ax = plt.subplots(figsize=(max(8, 0.55 * len(results)), 5))
    width = 0.8 / max(1, len(peers_))
    xs = np.arange(len(results))
    for i, p in enumerate(peers_):
        speedup = [1 / r["ratio"][p] if p in r["ratio"] else np.nan for r in results]
        ax.bar(xs + (i - (len(peers_) - 1) / 2) * width, speedup, width, label=f"vs {p}")
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_ylabel("speed-up of fastrnn (peer time / fastrnn time)")
    ax.set_xticks(xs)
    ax.set_xticklabels(labels, rotation=90, fontsize=7)
    m = report["machine"]
    ax.set_title(f"fastrnn speed-up, {m['dtype']}, {m['threads']} threads, (T, B, D, H)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
