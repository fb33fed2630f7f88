"""The sweep benchmark: fastrnn against PyTorch and ONNX Runtime over every batch and hidden
size, ``python -m fastrnn bench --sweep``.

For each cell, work (inference, training) and input size (D = H, and D much smaller than H),
every (B, H) point of the grid is timed on every system side by side, round-robin, as in
``fastrnn.apps.bench``, with the number of steps T chosen per point so that a call takes long
enough for a stable time. Each point reports the systems' medians, fastrnn time / peer time,
and fastrnn's roofline fraction (fastrnn/runtime/roofline.py). ``plot`` draws one heat map
figure per cell and work: fastrnn/peer over (B, H) for each peer and input size, and the
roofline fraction beside them. Measurements only: nothing here passes or fails on a time.
"""

import math
import os

import numpy as np

from fastrnn.apps import bench, peers
from fastrnn.kernels import threads as _threads
from fastrnn.runtime import machine, roofline

FULL_GRID = dict(hidden=(32, 64, 128, 256, 512, 1024, 2048), batch=(1, 2, 4, 8, 16, 64, 128),
                 inputs=("H", "small"), steps=(8, 100), seconds=0.01)
# For the test suite: a 2 x 2 grid, one input size, short calls.
QUICK_GRID = dict(hidden=(32, 64), batch=(1, 4), inputs=("H",), steps=(4, 10), seconds=0.001)

PEERS = ("torch", "onnxruntime")


def input_size(mode, H):
    """D of an input mode: "H" is D = H; "small" is D much smaller than H (H / 16, at
    least 8), as for an embedding or a feature frame feeding a wide layer."""
    return H if mode == "H" else max(8, H // 16)


def steps_for(cell, B, D, H, itemsize, limits, steps, seconds):
    """T for one point: enough steps that an inference call's roofline time reaches
    `seconds`, within steps = (fewest, most)."""
    per_step = roofline.roofline(cell, 1, B, D, H, itemsize=itemsize, limits=limits)["seconds"]
    return int(min(max(math.ceil(seconds / max(per_step, 1e-12)), steps[0]), steps[1]))


def run(grid=FULL_GRID, cells=("lstm", "gru", "rnn"), dtype=np.float32,
        works=("inference", "training"), systems=None, threads=None, repeats=5, budget=1.0,
        progress=None, weights=()):
    """Time every point of the grid; return {"machine": ..., "grid": ..., "results": [...]}
    with results as ``fastrnn.apps.bench.run``'s plus each point's input mode.

    weights: reduced-precision kinds ("int8", "bfloat16") whose FrozenLayers are timed
    beside the float32 one at every inference point, with PyTorch's dynamic int8 LSTM and
    GRU for "int8" (float32 only); their ratios are each result's "reduced"
    (fastrnn.apps.bench.reduced_ratios)."""
    weights = tuple(weights)
    for kind in weights:
        if kind not in ("int8", "bfloat16"):
            raise ValueError(f"weights: expected 'int8' or 'bfloat16', got {kind!r}")
    if weights and np.dtype(dtype) != np.float32:
        raise ValueError(f"weights: reduced precision runs float32 layers, got dtype "
                         f"{np.dtype(dtype).name}")
    available = peers.available()
    systems = ["fastrnn"] + [s for s in (systems or PEERS) if s in available and s != "fastrnn"]
    systems += [f"fastrnn {kind}" for kind in weights]
    if "int8" in weights and "torch" in available:
        systems.append("torch int8")
    threads = threads or peers.default_threads()
    itemsize = np.dtype(dtype).itemsize
    previous = _threads.set_num_threads(threads)
    points = [(cell, mode, H, B) for cell in cells for mode in grid["inputs"]
              for H in grid["hidden"] for B in grid["batch"]]
    results = []
    try:
        limits = machine.limits()
        for i, (cell, mode, H, B) in enumerate(points):
            D = input_size(mode, H)
            T = steps_for(cell, B, D, H, itemsize, limits, grid["steps"], grid["seconds"])
            for r in bench.measure_shape(cell, (T, B, D, H), dtype, works, systems, threads,
                                         limits, repeats, budget):
                r["inputs"] = mode
                results.append(r)
            if progress is not None:
                progress(i + 1, len(points), f"{cell} D={D} B={B} H={H}")
    finally:
        _threads.set_num_threads(previous)
    info = dict(threads=threads, dtype=np.dtype(dtype).name, systems=systems, limits=limits,
                sgemm_gflops=bench.sgemm_rate(threads))
    return {"machine": info, "grid": {k: list(v) if isinstance(v, tuple) else v
                                      for k, v in grid.items()}, "results": results}


SHORT = {"onnxruntime": "ort", "fastrnn int8": "int8", "fastrnn bfloat16": "bf16",
         "torch int8": "torch8", "int8/float32": "int8/fr", "bfloat16/float32": "bf16/fr",
         "int8/torch int8": "int8/torch8"}


def format_table(report):
    """The sweep as a fixed-width text table (times in milliseconds; the reduced-precision
    columns where the sweep timed them)."""
    systems = report["machine"]["systems"]
    peers_ = peers.float_peers(systems)
    reduced = [k for k in bench.REDUCED_RATIOS
               if any(k in r.get("reduced", {}) for r in report["results"])]
    head = (["cell", "work", "T", "B", "D", "H"] + [f"{SHORT.get(s, s)} ms" for s in systems]
            + [f"fr/{SHORT.get(p, p)}" for p in peers_] + [SHORT[k] for k in reduced]
            + ["roof%", "bound"])
    rows = []
    for r in report["results"]:
        rows.append([r["cell"], r["work"], r["T"], r["B"], r["D"], r["H"]]
                    + [f"{r['seconds'][s] * 1e3:.3f}" if s in r["seconds"] else "-"
                       for s in systems]
                    + [f"{r['ratio'][p]:.2f}" if p in r["ratio"] else "-" for p in peers_]
                    + [f"{r['reduced'][k]:.2f}" if k in r.get("reduced", {}) else "-"
                       for k in reduced]
                    + [f"{100 * r['roofline_fraction']:.0f}%", bench.bound_text(r["roofline"])])
    widths = [max(len(str(v)) for v in col) for col in zip(head, *rows)]
    lines = ["  ".join(str(v).rjust(w) for v, w in zip(row, widths)) for row in [head, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _matrix(results, grid, value):
    """value(r) over the grid, rows B and columns H (nan where no point)."""
    m = np.full((len(grid["batch"]), len(grid["hidden"])), np.nan)
    for r in results:
        v = value(r)
        if v is not None:
            m[grid["batch"].index(r["B"]), grid["hidden"].index(r["H"])] = v
    return m


def plot(report, folder):
    """Write one PNG per cell and work into folder (made if missing): heat maps over (B, H)
    of fastrnn time / peer time for each peer and input size (below 1, in blue: fastrnn is
    faster), and of fastrnn's roofline fraction. Returns the paths written. Needs
    matplotlib."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.colors as colors
    import matplotlib.pyplot as plt

    os.makedirs(folder, exist_ok=True)
    grid = report["grid"]
    peers_ = peers.float_peers(report["machine"]["systems"])
    paths = []
    keys = sorted({(r["cell"], r["work"]) for r in report["results"]})
    for cell, work in keys:
        results = [r for r in report["results"] if r["cell"] == cell and r["work"] == work]
        modes = [m for m in grid["inputs"] if any(r["inputs"] == m for r in results)]
        columns = ([p for p in peers_ if any(p in r["ratio"] for r in results)] + ["roofline"]
                   + [k for k in bench.REDUCED_RATIOS
                      if any(k in r.get("reduced", {}) for r in results)])
        fig, axes = plt.subplots(len(modes), len(columns), squeeze=False,
                                 figsize=(3.2 * len(columns) + 1, 2.9 * len(modes) + 0.6))
        for i, mode in enumerate(modes):
            rows = [r for r in results if r["inputs"] == mode]
            for j, col in enumerate(columns):
                ax = axes[i][j]
                if col == "roofline":
                    m = _matrix(rows, grid, lambda r: r["roofline_fraction"])
                    image = ax.imshow(m, cmap="viridis", vmin=0, vmax=1, origin="lower")
                    text = "{:.0%}"
                    title = "fastrnn / roofline"
                else:
                    if col in bench.REDUCED_RATIOS:
                        m = _matrix(rows, grid, lambda r, k=col: r.get("reduced", {}).get(k))
                        title = f"fastrnn {col.replace('/', ' / ')} time"
                    else:
                        m = _matrix(rows, grid, lambda r, p=col: r["ratio"].get(p))
                        title = f"fastrnn / {col} time"
                    image = ax.imshow(m, cmap="RdBu_r", origin="lower",
                                      norm=colors.LogNorm(vmin=1 / 4, vmax=4))
                    text = "{:.2f}"
                for (b, h), v in np.ndenumerate(m):
                    if np.isfinite(v):
                        ax.text(h, b, text.format(v), ha="center", va="center", fontsize=6)
                ax.set_xticks(range(len(grid["hidden"])), [str(h) for h in grid["hidden"]],
                              fontsize=7)
                ax.set_yticks(range(len(grid["batch"])), [str(b) for b in grid["batch"]],
                              fontsize=7)
                ax.set_xlabel("hidden size H", fontsize=8)
                ax.set_ylabel("batch B", fontsize=8)
                ax.set_title(f"{title}\nD = {'H' if mode == 'H' else 'H/16'}", fontsize=8)
                fig.colorbar(image, ax=ax, shrink=0.8)
        m = report["machine"]
        fig.suptitle(f"{cell} {work}, {m['dtype']}, {m['threads']} threads", fontsize=10)
        fig.tight_layout()
        path = os.path.join(folder, f"sweep-{cell}-{work}.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths
