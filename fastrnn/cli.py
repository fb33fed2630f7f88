"""Command line of fastrnn: ``python -m fastrnn {info,bench}``."""

import argparse
import json
import os
import platform
import sys

import numpy as np


def _blas_report():
    """Lines describing the BLAS libraries loaded and their threads."""
    try:
        import threadpoolctl
    except ImportError:
        import scipy
        blas = scipy.show_config(mode="dicts").get("Build Dependencies", {}).get("blas", {})
        env = {k: os.environ[k] for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")
               if k in os.environ}
        return [f"scipy BLAS: {blas.get('name', '?')} {blas.get('version', '')}",
                f"threads: not known without threadpoolctl; environment {env or 'unset'}, "
                f"{os.cpu_count()} CPUs"]
    import scipy.linalg  # noqa: F401  (loads the BLAS fastrnn calls)
    lines = []
    for pool in threadpoolctl.threadpool_info():
        lines.append(f"{pool['user_api']}: {pool['internal_api']} {pool.get('version')} "
                     f"({pool.get('architecture', '?')}), {pool['num_threads']} threads, "
                     f"{os.path.basename(pool['filepath'])}")
    return lines


def cmd_info(args):
    import fastrnn
    from fastrnn import _elementwise, _gru, _lstm, _rnn
    print(f"fastrnn {fastrnn.__version__}  ({os.path.dirname(fastrnn.__file__)})")
    print(f"python {platform.python_version()}, numpy {np.__version__}, "
          f"scipy {__import__('scipy').__version__}, {platform.machine()}, "
          f"{os.cpu_count()} CPUs")
    print("compiled modules:")
    for mod in (_rnn, _lstm, _gru, _elementwise):
        print(f"  {mod.__name__}: {os.path.basename(mod.__file__)}")
    print("dtypes: float32, float64")
    print(f"element-wise kernels: {_elementwise.simd_target()}")
    print("BLAS (through scipy.linalg.cython_blas):")
    for line in _blas_report():
        print(f"  {line}")
    return 0


def _parse_shape(text):
    parts = text.split(",")
    if len(parts) != 4 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(f"expected T,B,D,H as four positive integers, got {text!r}")
    return tuple(int(p) for p in parts)


def cmd_bench(args):
    from fastrnn import bench
    shapes = tuple(args.shape) if args.shape else bench.DEFAULT_SHAPES
    works = ("inference", "training") if args.work == "both" else (args.work,)
    show = sys.stderr.isatty() and not args.json

    def progress(done, total, label):
        if show:
            bar = "#" * (30 * done // total)
            print(f"\r[{bar:<30}] {done}/{total} {label:<40}", end="", file=sys.stderr,
                  flush=True)

    results = bench.run(cells=args.cell, shapes=shapes, dtype=np.dtype(args.dtype),
                        works=works, repeats=args.repeat, budget=args.budget,
                        progress=progress)
    if show:
        print(file=sys.stderr)
    if args.json:
        json.dump({"dtype": args.dtype, "results": results}, sys.stdout, indent=1)
        print()
    else:
        print(f"fastrnn vs fastrnn.reference (NumPy), {args.dtype}, median of up to "
              f"{args.repeat} round-robin repeats")
        print(bench.format_table(results))
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m fastrnn",
                                     description="fastrnn: fast CPU recurrent-network kernels")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="version, compiled modules, SIMD target, BLAS and threads")
    b = sub.add_parser("bench", help="time fastrnn against the NumPy reference")
    b.add_argument("--cell", nargs="+", choices=("rnn", "lstm", "gru"),
                   default=["rnn", "lstm", "gru"])
    b.add_argument("--shape", action="append", type=_parse_shape, metavar="T,B,D,H",
                   help="a shape to time (repeatable); default: a few representative ones")
    b.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    b.add_argument("--work", choices=("inference", "training", "both"), default="both")
    b.add_argument("--repeat", type=int, default=7, help="maximum round-robin repeats")
    b.add_argument("--budget", type=float, default=2.0,
                   help="seconds per workload after which repeats stop (at least 3 are made)")
    b.add_argument("--json", action="store_true", help="print results as JSON")
    args = parser.parse_args(argv)
    if args.command == "info":
        return cmd_info(args)
    return cmd_bench(args)
