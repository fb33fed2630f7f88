"""Reduced-precision benchmark: ``python -m fastrnn bench --reduced``.

Speed: for each cell and (B, H) point, a float32 ``FrozenLayer``, an int8 one and a
bfloat16 one (``frozen(weights=...)``) timed side by side with PyTorch's dynamically
quantized layer (``torch.ao.quantization.quantize_dynamic``, int8 weights: LSTM and
GRU; torch has none for its RNN), round-robin, medians
(fastrnn.apps.bench.time_round_robin).

Accuracy: on the same random models and inputs, the largest absolute difference of
the outputs from the float32 layer's, for fastrnn's int8 and bfloat16 and torch's
int8, as the median over `models` models per cell (torch's LSTM and GRU are given
fastrnn's weights); and a trained charlm's held-out loss in each precision.
Measurements only: nothing here passes or fails on a number.
"""

import statistics

import numpy as np

from fastrnn.apps import peers
from fastrnn.apps.bench import time_round_robin
from fastrnn.kernels import recurrent
from fastrnn.kernels import threads as _threads
from fastrnn.layers.cell_kinds import BY_KEY

__all__ = ["run", "accuracy", "trained_charlm", "trained_wordlm", "format_table", "FULL_GRID", "QUICK_GRID"]

FULL_GRID = dict(cells=("lstm", "gru", "rnn"), hidden=(64, 256, 512, 1024, 2048),
                 batch=(1, 4, 16, 64, 128), seconds=0.02, steps=(4, 64))
QUICK_GRID = dict(cells=("lstm", "gru"), hidden=(32,), batch=(1, 4), seconds=0.001,
                  steps=(2, 4))


def _layer(cell, D, H, seed):
    return BY_KEY[cell].layer_class(D, H, seed=seed)


def _steps(B, H, grid):
    """T for a point: about grid["seconds"] of int8 work at 50 GB/s or 200 GOP/s."""
    per_step = max(4 * H * H / 50e9, 2 * 4 * B * H * H / 200e9)
    return int(min(max(grid["seconds"] / per_step, grid["steps"][0]), grid["steps"][1]))


def run(grid=FULL_GRID, threads=None, repeats=5, budget=1.0, progress=None):
    """Time every point; return {"machine": ..., "results": [...]}, a result per point
    with seconds per step of each system and the ratios."""
    threads = threads or peers.default_threads()
    previous = _threads.set_num_threads(threads)
    points = [(c, H, B) for c in grid["cells"] for H in grid["hidden"] for B in grid["batch"]]
    results = []
    rng = np.random.default_rng(0)
    try:
        for i, (cell, H, B) in enumerate(points):
            T = _steps(B, H, grid)
            layer = _layer(cell, H, H, seed=i)
            x = rng.standard_normal((T, B, H)).astype(np.float32)
            f32, int8 = layer.frozen(), layer.frozen(weights="int8")
            bf16 = layer.frozen(weights="bfloat16")
            fns = {"float32": lambda: f32(x), "int8": lambda: int8(x),
                   "bfloat16": lambda: bf16(x)}
            torch8 = peers.torch_int8(cell, layer, threads)
            if torch8 is not None:
                fns["torch int8"] = lambda: torch8(x)
            times = time_round_robin(fns, repeats=repeats, budget=budget,
                                     pauses={"torch int8": peers.SPINS_AFTER["torch"]})
            row = dict(cell=cell, B=B, H=H, D=H, T=T,
                       **{f"{k} s/step": v / T for k, v in times.items()})
            row["int8/float32"] = times["int8"] / times["float32"]
            row["bfloat16/float32"] = times["bfloat16"] / times["float32"]
            if "torch int8" in times:
                row["int8/torch int8"] = times["int8"] / times["torch int8"]
            results.append(row)
            if progress:
                progress(i + 1, len(points), f"{cell} B={B} H={H}")
    finally:
        _threads.set_num_threads(previous)
    return {"machine": dict(threads=threads, int8_path=recurrent.reduced_path("int8")[1],
                            bfloat16_path=recurrent.reduced_path("bfloat16")[1]),
            "results": results}


def accuracy(cells=("lstm", "gru", "rnn"), models=20, T=20, B=4, D=64, H=128, seed=0):
    """{cell: {"fastrnn int8", "fastrnn bfloat16", "torch int8": median error (None
    where torch has no such module)}}: the largest |y - y_float32| over a call, median
    over `models` random models and inputs."""
    rng = np.random.default_rng(seed)
    out = {}
    for cell in cells:
        errs = {"fastrnn int8": [], "fastrnn bfloat16": [], "torch int8": []}
        for m in range(models):
            layer = _layer(cell, D, H, seed=int(rng.integers(1 << 30)))
            x = rng.standard_normal((T, B, D)).astype(np.float32)
            y = layer(x)[0]
            for kind in ("int8", "bfloat16"):
                errs[f"fastrnn {kind}"].append(
                    float(np.abs(layer.frozen(weights=kind)(x)[0] - y).max()))
            torch8 = peers.torch_int8(cell, layer, 1)
            if torch8 is not None:
                errs["torch int8"].append(float(np.abs(torch8(x) - y).max()))
        out[cell] = {k: (statistics.median(v) if v else None) for k, v in errs.items()}
    return out


def trained_charlm(steps=400, hidden_size=128, seed=0, progress=None):
    """A charlm trained on the bundled corpus for `steps` steps, and its mean loss per
    character on held-out lines (a tenth of the corpus, never trained on) run by the
    float32 layer and by its int8 and bfloat16 FrozenLayers: {"float32", "int8",
    "bfloat16", "relative int8", "relative bfloat16"}."""
    from fastrnn.apps import charlm
    lines = charlm.load_corpus()
    order = np.random.default_rng(seed).permutation(len(lines))
    cut = len(lines) // 10
    held, train = [lines[i] for i in order[:cut]], [lines[i] for i in order[cut:]]
    model = charlm.CharLM(sorted(set("".join(lines))), hidden_size=hidden_size, seed=seed)
    charlm.train(model, train, steps=steps, seed=seed, progress=progress)
    out = {"steps": steps, "float32": model.evaluate(held)}
    for kind in ("int8", "bfloat16"):
        out[kind] = model.evaluate(held, rnn=model.rnn.frozen(weights=kind))
        out[f"relative {kind}"] = (out[kind] - out["float32"]) / out["float32"]
    return out


class _ServedWordLM:
    """A wordlm's layers with both LSTMs frozen in `kind`, scoring as WordLM.score."""

    def __init__(self, model, kind):
        emb, lstm1, lstm2, head = model.net.layers
        self.layers = (emb, lstm1.frozen(weights=kind), lstm2.frozen(weights=kind), head)

    def score(self, inputs, targets, states=None):
        from fastrnn.training.loss import softmax_cross_entropy
        emb, lstm1, lstm2, head = self.layers
        states = states or [None, None]
        h, s1 = lstm1(emb(inputs), states[0])
        h, s2 = lstm2(h, states[1])
        return softmax_cross_entropy(head(h), targets)[0], [s1, s2]


def trained_wordlm(steps=300, max_words=200_000, seed=0, progress=None):
    """The wordlm of the lecture notes trained for `steps` steps on the standard
    library's docstrings, and its held-out perplexity with float32 LSTMs and with int8
    and bfloat16 frozen ones: {"float32", "int8", "bfloat16", "relative <kind>"}, the
    relative change of the mean loss (log perplexity)."""
    import math
    from fastrnn.apps import wordlm
    train_words, held_words = wordlm.split_corpus(wordlm.stdlib_corpus(max_words))
    vocab = wordlm.Vocabulary.build(train_words)
    train_ids, held_ids = vocab.encode(train_words), vocab.encode(held_words)
    model = wordlm.WordLM(vocab, seed=seed)
    wordlm.train(model, train_ids, held_ids, steps=steps, progress=progress)
    out = {"steps": steps, "float32": wordlm.perplexity(model, held_ids)}
    for kind in ("int8", "bfloat16"):
        out[kind] = wordlm.perplexity(_ServedWordLM(model, kind), held_ids)
        out[f"relative {kind}"] = (math.log(out[kind]) - math.log(out["float32"])) / math.log(
            out["float32"])
    return out


def format_table(report, errors=None):
    """The speed table, then the accuracy one when given."""
    lines = [f"{'cell':<5} {'B':>4} {'H':>5} {'float32 us':>11} {'int8 us':>9} "
             f"{'bf16 us':>9} {'torch8 us':>10} {'int8/f32':>9} {'bf16/f32':>9} "
             f"{'int8/torch8':>12}"]
    for r in report["results"]:
        t8 = r.get("torch int8 s/step")
        lines.append(
            f"{r['cell']:<5} {r['B']:>4} {r['H']:>5} {r['float32 s/step'] * 1e6:>11.1f} "
            f"{r['int8 s/step'] * 1e6:>9.1f} {r['bfloat16 s/step'] * 1e6:>9.1f} "
            f"{(f'{t8 * 1e6:.1f}' if t8 else '-'):>10} {r['int8/float32']:>9.2f} "
            f"{r['bfloat16/float32']:>9.2f} "
            f"{(format(r['int8/torch int8'], '.2f') if t8 else '-'):>12}")
    if errors:
        lines += ["", "largest |output - float32 output|, median over random models:",
                  f"{'cell':<5} {'fastrnn int8':>13} {'fastrnn bf16':>13} {'torch int8':>11}"]
        for cell, e in errors.items():
            t = e["torch int8"]
            lines.append(f"{cell:<5} {e['fastrnn int8']:>13.2e} "
                         f"{e['fastrnn bfloat16']:>13.2e} "
                         f"{(format(t, '.2e') if t is not None else '-'):>11}")
    return "\n".join(lines)
