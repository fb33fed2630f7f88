"""Cost of lengths= against the padded call on the same batch (and torch's packed path).

For each cell and shape (T, B, D, H) the same padded batch runs three ways on
fastrnn, timed round-robin (fastrnn.apps.bench.time_round_robin, medians):

- padded: layer(x), every sequence run for all T steps;
- lengths, random order: layer(x, lengths=L) with L drawn uniformly from 1..T,
  the batch in no particular order (fastrnn sorts it: one copy in, one out);
- lengths, worst case: every sequence full but the first, which is T - 1 long,
  so that nothing is skipped and the sorting copies are pure overhead.

and when torch is installed, torch's padded call against its
pack_padded_sequence path on the same lengths, for scale.  Inference and
training (forward + backward) both.  The ratio lengths / padded is what issue
5 bounds by 1.1.

    python bench/lengths.py
    python bench/lengths.py --cells lstm --shapes 50,64,256,256 --work inference

A measurement, not a test: it never fails on a time.
"""

import argparse

import numpy as np

import fastrnn
from fastrnn.apps.bench import time_round_robin
from fastrnn.apps.peers import SPINS_AFTER

CELLS = {"lstm": fastrnn.LSTM, "gru": fastrnn.GRU, "rnn": fastrnn.RNN}
SHAPES = [(100, 16, 64, 128), (20, 60, 200, 256), (50, 64, 256, 256)]


def fastrnn_calls(layer, x, lengths_by_case, work):
    def make(lengths):
        if work == "inference":
            return lambda: layer(x, lengths=lengths)

        def train():
            y, _, cache = layer.forward(x, lengths=lengths)
            layer.backward(dy, cache)
        return train

    dy = np.ones((x.shape[0], x.shape[1], layer.hidden_size), x.dtype)
    return {case: make(lengths) for case, lengths in lengths_by_case.items()}


def torch_calls(cell, layer, x, lengths, work):
    try:
        import torch
        from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
    except ImportError:
        return {}
    torch.set_num_threads(fastrnn.get_num_threads())
    mod = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[cell](
        layer.input_size, layer.hidden_size)
    xt = torch.from_numpy(x)
    lt = torch.from_numpy(lengths)

    def padded():
        if work == "inference":
            with torch.no_grad():
                mod(xt)
        else:
            mod(xt.requires_grad_(True))[0].sum().backward()

    def packed():
        if work == "inference":
            with torch.no_grad():
                pad_packed_sequence(mod(pack_padded_sequence(xt, lt, enforce_sorted=False))[0])
        else:
            p = pack_padded_sequence(xt.requires_grad_(True), lt, enforce_sorted=False)
            pad_packed_sequence(mod(p)[0])[0].sum().backward()

    return {"torch padded": padded, "torch packed": packed}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", nargs="+", default=["lstm", "gru"], choices=sorted(CELLS))
    parser.add_argument("--shapes", nargs="+", default=[",".join(map(str, s)) for s in SHAPES],
                        help="T,B,D,H")
    parser.add_argument("--work", nargs="+", default=["inference", "training"],
                        choices=["inference", "training"])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--budget", type=float, default=3.0)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    print(f"{'cell':5} {'shape':>18} {'work':9} {'padded ms':>10} {'random/pad':>10} "
          f"{'worst/pad':>10} {'torch packed/padded':>20}")
    for cell in args.cells:
        for shape in args.shapes:
            T, B, D, H = map(int, shape.split(","))
            layer = CELLS[cell](D, H, seed=0)
            x = rng.standard_normal((T, B, D)).astype(np.float32)
            random_lengths = rng.integers(1, T + 1, size=B)
            worst = np.full(B, T)
            worst[0] = T - 1
            cases = {"padded": None, "random": random_lengths, "worst": worst}
            for work in args.work:
                fns = fastrnn_calls(layer, x, cases, work)
                fns.update(torch_calls(cell, layer, x, random_lengths, work))
                # torch's workers spin after its calls: let them stop before fastrnn's turn
                pauses = {name: SPINS_AFTER["torch" if name.startswith("torch") else "fastrnn"]
                          for name in fns}
                t = time_round_robin(fns, repeats=args.repeats, budget=args.budget,
                                     pauses=pauses)
                torch_ratio = (f"{t['torch packed'] / t['torch padded']:20.2f}"
                               if "torch packed" in t else f"{'-':>20}")
                print(f"{cell:5} {shape:>18} {work:9} {t['padded'] * 1e3:10.3f} "
                      f"{t['random'] / t['padded']:10.2f} {t['worst'] / t['padded']:10.2f} "
                      f"{torch_ratio}", flush=True)


if __name__ == "__main__":
    main()
