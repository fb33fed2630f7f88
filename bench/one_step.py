"""One-step call overhead: fastrnn against ONNX Runtime on the same one-step model.

A service that answers one frame at a time calls the layer with T = 1, B = 1 and
carries the state.  There the cost is the call, not the maths: this script
times ``layer(x, state)`` against ``session.run`` of the same torch.nn.LSTM /
GRU exported with ``torch.onnx.export``, both on one thread, in turns
(round-robin) so that drift in the machine's load hits both alike, and prints
medians.  It also splits the fastrnn call into the time spent inside the
compiled kernel calls (including their argument unpacking) and the rest
(the Python layer: validation, allocation, bookkeeping), measured in a
separate pass.

    python bench/one_step.py
    python bench/one_step.py --cells lstm --hidden 64 256 1024 --rounds 21
    python bench/one_step.py --profile          # per-line costs (needs line_profiler)

Needs torch (for the export), onnx and onnxruntime:
``pip install torch onnx onnxruntime`` (or the project's ``bench`` extra and torch).
A measurement, not a test: it never fails on a time.
"""

import argparse
import importlib
import io
import statistics
import time
import warnings

import numpy as np

import fastrnn

CELLS = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN"}
# The layer modules call their compiled forward kernels through a table keyed by
# dtype (_FORWARD); the timing wraps its entries.
KERNELS = {"lstm": "fastrnn.layers.lstm", "gru": "fastrnn.layers.gru", "rnn": "fastrnn.layers.rnn"}


def build(cell, D, H, seed):
    """(fastrnn layer, ONNX Runtime session, fastrnn state, ORT feed) for a one-step model."""
    import onnxruntime as ort
    import torch

    torch.manual_seed(seed)
    module = getattr(torch.nn, CELLS[cell])(D, H).eval()
    layer = getattr(fastrnn, CELLS[cell])(D, H)
    layer.load_state_dict({k: v.detach().numpy() for k, v in module.state_dict().items()})

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((1, 1, D)).astype(np.float32)
    h0 = rng.standard_normal((1, 1, H)).astype(np.float32)
    c0 = rng.standard_normal((1, 1, H)).astype(np.float32)
    lstm = cell == "lstm"
    state = (h0, c0) if lstm else h0
    args = (torch.from_numpy(x), (torch.from_numpy(h0), torch.from_numpy(c0)) if lstm
            else torch.from_numpy(h0))
    names_in = ["x", "h0", "c0"] if lstm else ["x", "h0"]
    names_out = ["y", "h_n", "c_n"] if lstm else ["y", "h_n"]
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:    # the TorchScript exporter emits ONNX's own LSTM/GRU/RNN operator
            torch.onnx.export(module, args, buf, input_names=names_in, output_names=names_out,
                              dynamo=False)
        except Exception:   # a torch without it: the default (dynamo) exporter
            buf = io.BytesIO()
            torch.onnx.export(module, args, buf, input_names=names_in, output_names=names_out)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session = ort.InferenceSession(buf.getvalue(), options, providers=["CPUExecutionProvider"])
    feed = dict(zip(names_in, [x, h0, c0] if lstm else [x, h0]))

    # Same model, same answer, before anything is timed.
    y, state_n = layer(x, state)
    got = session.run(None, feed)
    np.testing.assert_allclose(got[0].reshape(y.shape), y, rtol=1e-4, atol=1e-5)
    h_n = state_n[0] if lstm else state_n
    np.testing.assert_allclose(got[1].reshape(h_n.shape), h_n, rtol=1e-4, atol=1e-5)
    ops = sorted({node.op_type for node in _onnx_graph(buf.getvalue())})
    return layer, session, (x, state), feed, ops


def _onnx_graph(model_bytes):
    try:
        import onnx
    except ImportError:
        return []
    return onnx.load_from_string(model_bytes).graph.node


def time_round_robin(systems, calls, rounds):
    """{name: median seconds per call}; each round times every system once, in turn."""
    samples = {name: [] for name in systems}
    for fn in systems.values():       # warm up
        for _ in range(calls // 4 + 1):
            fn()
    for _ in range(rounds):
        for name, fn in systems.items():
            start = time.perf_counter()
            for _ in range(calls):
                fn()
            samples[name].append((time.perf_counter() - start) / calls)
    return {name: statistics.median(v) for name, v in samples.items()}


def kernel_split(cell, call, calls, rounds):
    """(kernel, rest): median seconds per call inside the compiled kernel(s) that call
    makes, and outside them, both from the same timed loops."""
    table = importlib.import_module(KERNELS[cell])._FORWARD
    kernels = dict(table)
    spent = [0]

    def timing(kernel):
        def timed(*args, **kwargs):
            start = time.perf_counter_ns()
            try:
                return kernel(*args, **kwargs)
            finally:
                spent[0] += time.perf_counter_ns() - start
        return timed

    table.update({dtype: timing(kernel) for dtype, kernel in kernels.items()})
    try:
        inside, outside = [], []
        for _ in range(rounds):
            spent[0] = 0
            start = time.perf_counter_ns()
            for _ in range(calls):
                call()
            total = time.perf_counter_ns() - start
            inside.append(spent[0] * 1e-9 / calls)
            outside.append((total - spent[0]) * 1e-9 / calls)
    finally:
        table.update(kernels)
    return statistics.median(inside), statistics.median(outside)


def profile(cell, layer, x, state, calls):
    """Print line_profiler's per-line costs of the Python layer for the one-step call."""
    try:
        import line_profiler
    except ImportError:
        print("--profile needs line_profiler: pip install line_profiler")
        return
    import inspect

    from fastrnn import _validation
    from fastrnn.layers import base as _base

    lp = line_profiler.LineProfiler()
    lp.add_function(_base.RecurrentLayer._forward)
    lp.add_function(type(layer)._run_direction)
    for name in dir(_base.RecurrentLayer):
        fn = getattr(_base.RecurrentLayer, name)
        if name.startswith("_") and inspect.isfunction(fn) and name not in ("__init__",):
            lp.add_function(fn)
    for _, fn in inspect.getmembers(_validation, inspect.isfunction):
        if fn.__module__ == _validation.__name__:
            lp.add_function(fn)
    for _ in range(calls):
        layer(x, state)
    lp.enable()
    for _ in range(calls):
        layer(x, state)
    lp.disable()
    print(f"\nline_profiler, {cell}, {calls} one-step calls (the profiler adds its own "
          f"cost to every line; read the shares, not the absolute times):")
    lp.print_stats(output_unit=1e-6, stripzeros=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", nargs="+", choices=sorted(CELLS), default=["lstm", "gru"])
    parser.add_argument("--hidden", nargs="+", type=int, default=[64, 256])
    parser.add_argument("--input", type=int, default=32, help="input features D")
    parser.add_argument("--calls", type=int, default=2000, help="calls per timing")
    parser.add_argument("--rounds", type=int, default=15, help="timings per system")
    parser.add_argument("--profile", action="store_true",
                        help="also print per-line costs of the Python layer (line_profiler)")
    args = parser.parse_args(argv)

    import onnxruntime as ort
    import torch
    from threadpoolctl import threadpool_limits

    print(f"fastrnn {fastrnn.__version__}, onnxruntime {ort.__version__}, torch "
          f"{torch.__version__}; T=1, B=1, D={args.input}, float32, one thread each; "
          f"median of {args.rounds} x {args.calls} calls")
    header = (f"{'cell':<5} {'H':>5}  {'fastrnn us':>10}  {'onnxrt us':>9}  {'ratio':>5}  "
              f"{'in kernel us':>12}  {'python us':>9}  {'stepper us':>10}  {'ratio':>5}  "
              f"onnx ops")
    print(header)
    print("-" * len(header))
    previous = fastrnn.set_num_threads(1)
    with threadpool_limits(1):
        for cell in args.cells:
            for H in args.hidden:
                layer, session, (x, state), feed, ops = build(cell, args.input, H, seed=H)
                step = layer.stepper(state, batch_size=1)
                np.testing.assert_allclose(step(x[0]), layer(x, state)[0][0], rtol=1e-5,
                                           atol=1e-6)
                medians = time_round_robin({
                    "fastrnn": lambda: layer(x, state),
                    "onnxruntime": lambda: session.run(None, feed),
                    "stepper": lambda: step(x[0]),
                }, args.calls, args.rounds)
                inside, outside = kernel_split(cell, lambda: layer(x, state), args.calls,
                                               args.rounds)
                f, o = medians["fastrnn"] * 1e6, medians["onnxruntime"] * 1e6
                st = medians["stepper"] * 1e6
                print(f"{cell:<5} {H:>5}  {f:>10.2f}  {o:>9.2f}  {f / o:>5.2f}  "
                      f"{inside * 1e6:>12.2f}  {outside * 1e6:>9.2f}  {st:>10.2f}  "
                      f"{st / o:>5.2f}  {','.join(ops)}")
        if args.profile:
            cell = args.cells[0]
            layer, _, (x, state), _, _ = build(cell, args.input, args.hidden[0], seed=0)
            profile(cell, layer, x, state, args.calls)
    if previous is not None:
        fastrnn.set_num_threads(previous)
    print("\nratio = fastrnn / onnxruntime (below 1: fastrnn is faster).  'in kernel' and "
          "'python' split a separate timed pass of the fastrnn call: the time inside the "
          "compiled kernel calls (their argument unpacking included) and the rest.  "
          "'stepper' is layer.stepper(), which keeps the state and its buffers between "
          "steps; its ratio is to onnxruntime too.")


if __name__ == "__main__":
    main()
