"""Time the cell variants against their default cells, side by side in one run.

    python bench/variants.py [--threads N] [--dtype float32|float64] [--repeats R]

(prefix PYTHONPATH=. when the fastrnn installed in the environment is another
checkout's: a script's own folder, not the working directory, heads sys.path.)

For each (T, B, D, H) and work (inference: the call; training: forward plus
backward), GRU(reset_after=False) is timed in turns with GRU() and
LSTM(peephole=True) with LSTM(), by fastrnn.apps.bench.time_round_robin (medians
of warm blocks, round-robin so machine load drifts hit both alike).  Prints
the medians in milliseconds and the ratio variant / default (1.00: as fast).
A measurement, not a test.
"""

import argparse

import numpy as np

import fastrnn
from fastrnn.kernels import threads as _threads
from fastrnn.apps.bench import time_round_robin

SHAPES = ((100, 1, 32, 64), (100, 1, 128, 128), (100, 16, 64, 128), (50, 64, 256, 256))
PAIRS = (("gru", fastrnn.GRU, {}, dict(reset_after=False)),
         ("lstm", fastrnn.LSTM, {}, dict(peephole=True)))


def works(layer, x, dy):
    def inference():
        layer(x)

    def training():
        _, _, cache = layer.forward(x)
        layer.backward(dy, cache)

    return {"inference": inference, "training": training}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    if args.threads:
        _threads.set_num_threads(args.threads)
    dtype = np.dtype(args.dtype)
    print(f"threads {_threads.get_num_threads()}, {dtype.name}; medians in ms")
    print(f"{'cell':5} {'work':9} {'T,B,D,H':>16} {'default':>9} {'variant':>9} {'ratio':>6}")
    for cell, cls, base_kw, variant_kw in PAIRS:
        for T, B, D, H in SHAPES:
            rng = np.random.default_rng(0)
            x = rng.standard_normal((T, B, D)).astype(dtype)
            dy = rng.standard_normal((T, B, H)).astype(dtype)
            base = works(cls(D, H, dtype=dtype, seed=0, **base_kw), x, dy)
            variant = works(cls(D, H, dtype=dtype, seed=0, **variant_kw), x, dy)
            for work in ("inference", "training"):
                med = time_round_robin({"default": base[work], "variant": variant[work]},
                                       repeats=args.repeats, budget=4.0)
                print(f"{cell:5} {work:9} {f'{T},{B},{D},{H}':>16} "
                      f"{med['default'] * 1e3:9.3f} {med['variant'] * 1e3:9.3f} "
                      f"{med['variant'] / med['default']:6.2f}")


if __name__ == "__main__":
    main()
