"""A/B timing of two fastrnn source trees: is a change faster or slower?

    python bench/ab.py OLD_TREE NEW_TREE [--rounds 8] [--quick] [--out FILE]

Each tree must hold a built fastrnn (``python setup.py build_ext --inplace``).
The benchmark's default workloads (fastrnn.apps.bench.DEFAULT_SHAPES; every cell,
inference through a FrozenLayer and training) are timed in child processes
that import one tree or the other, alternating, the order swapped every
round, so drift in the machine's load meets both alike.  Every child times
every row (the median of a few warm blocks of calls); the report gives, per
row, the median over rounds of new time / old time and its range.
Measurements only: nothing passes or fails on a time.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

_CHILD = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
import numpy as np
import fastrnn
from fastrnn.apps import bench
from fastrnn.apps import peers
assert fastrnn.__file__.startswith(sys.argv[1]), fastrnn.__file__
shapes, cells, budget = json.loads(sys.argv[2]), json.loads(sys.argv[3]), float(sys.argv[4])
out = {}
for cell in cells:     # public names: both trees have them
    for T, B, D, H in shapes:
        layer = getattr(fastrnn, cell)(D, H, seed=0)
        rng = np.random.default_rng(0)
        x = rng.standard_normal((T, B, D)).astype(np.float32)
        dy = rng.standard_normal((T, B, H)).astype(np.float32)
        fns = peers.build("fastrnn", cell.lower(), layer, x, dy, peers.default_threads())
        for work, fn in fns.items():
            med = bench.time_round_robin({"f": fn}, repeats=5, budget=budget, block=0.03)
            out[f"{cell} {work} {T},{B},{D},{H}"] = med["f"]
print(json.dumps(out))
"""


def time_tree(tree, shapes, cells, budget):
    """Seconds per call of every row, timed in a fresh process importing tree."""
    env = dict(os.environ, PYTHONPATH=tree)
    proc = subprocess.run([sys.executable, "-c", _CHILD, os.path.abspath(tree),
                           json.dumps(shapes), json.dumps(cells), str(budget)],
                          capture_output=True, text=True, env=env, cwd=tree, check=True)
    return json.loads(proc.stdout)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--quick", action="store_true", help="two shapes, for a smoke run")
    parser.add_argument("--shapes", help="T,B,D,H;T,B,D,H;... instead of the default shapes")
    parser.add_argument("--cells", default="RNN,LSTM,GRU")
    parser.add_argument("--budget", type=float, default=0.6,
                        help="seconds of timed blocks per row and child")
    parser.add_argument("--out", help="write the per-round times as JSON")
    args = parser.parse_args(argv)
    sys.path.insert(0, os.path.abspath(args.new))
    from fastrnn.apps import bench
    shapes = bench.QUICK_SHAPES if args.quick else bench.DEFAULT_SHAPES
    if args.shapes:
        shapes = [tuple(int(v) for v in s.split(",")) for s in args.shapes.split(";")]
    runs = {"old": [], "new": []}
    for rnd in range(args.rounds):
        order = ("old", "new") if rnd % 2 == 0 else ("new", "old")
        for which in order:
            runs[which].append(time_tree(getattr(args, which), [list(s) for s in shapes],
                                         args.cells.split(","), args.budget))
        print(f"round {rnd + 1}/{args.rounds} done", file=sys.stderr)
    print(f"{'row':38s} {'old ms':>9s} {'new ms':>9s} {'new/old':>8s} {'range':>13s}")
    for row in runs["old"][0]:
        ratios = [n[row] / o[row] for o, n in zip(runs["old"], runs["new"])]
        old_ms = statistics.median(o[row] for o in runs["old"]) * 1e3
        new_ms = statistics.median(n[row] for n in runs["new"]) * 1e3
        print(f"{row:38s} {old_ms:9.3f} {new_ms:9.3f} {statistics.median(ratios):8.3f} "
              f"{min(ratios):6.3f}-{max(ratios):.3f}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(runs, f)


if __name__ == "__main__":
    main()
