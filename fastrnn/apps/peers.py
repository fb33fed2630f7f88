"""The systems fastrnn is benchmarked against, each behind one small adapter.

A system turns (cell, shape, dtype, layer) into zero-argument callables for
the works it supports: "inference" (the whole sequence, no gradients) and
"training" (forward plus backward through time for given output gradients).
Every system computes with the same weights (the fastrnn layer's), so the
timings compare the same mathematics.

- fastrnn:     this library: inference through layer.frozen(), whose weights
               are packed once, as ONNX Runtime packs them when its session
               is made; training through the layer itself.
- numpy:       fastrnn.reference, a loop of NumPy matmuls per time step.
- torch:       torch.nn.RNN/LSTM/GRU, inference under torch.no_grad(),
               training with autograd; when torch is importable.
- onnxruntime: the torch module exported to ONNX and run by ONNX Runtime's
               CPUExecutionProvider (inference only); when torch, onnx and
               onnxruntime are importable.

Peers are optional: `available()` lists the ones that import here.
"""

import importlib.util
import io
import os

import numpy as np

from fastrnn import reference
from fastrnn.layers.cell_kinds import BY_KEY

SYSTEMS = ("fastrnn", "numpy", "torch", "onnxruntime")
# Inference with reduced-precision weights, float32 layers only: fastrnn's FrozenLayer with
# int8 or bfloat16 weights, and torch's dynamically quantized LSTM and GRU (int8 weights;
# torch has none for its RNN).  Their times are compared with fastrnn's float32 and with
# each other, not with the float peers (fastrnn.apps.bench.reduced_ratios).
REDUCED_SYSTEMS = ("fastrnn int8", "fastrnn bfloat16", "torch int8")
TORCH_INT8_CELLS = ("lstm", "gru")

# Thread pools keep busy-waiting after a call returns, measured here (CPU
# time burnt during a sleep after an LSTM call): NumPy's OpenBLAS about
# 100 ms, ONNX Runtime about 40 ms, torch's OpenMP about 10 ms, fastrnn's own
# workers a few ms.  The benchmark pauses this long (untimed) after each
# system, so no system is timed against another's leftover spinning.
SPINS_AFTER = {"numpy": 0.15, "onnxruntime": 0.06, "torch": 0.02, "fastrnn": 0.01,
               "torch int8": 0.02, "fastrnn int8": 0.01, "fastrnn bfloat16": 0.01}


def float_peers(systems):
    """The systems fastrnn's float layer is compared with: all but fastrnn itself and the
    reduced-precision ones, in order."""
    return [s for s in systems if s != "fastrnn" and s not in REDUCED_SYSTEMS]


def _importable(name):
    return importlib.util.find_spec(name) is not None


def available():
    """The systems that can run in this environment, in SYSTEMS order."""
    out = ["fastrnn", "numpy"]
    if _importable("torch"):
        out.append("torch")
        if _importable("onnxruntime") and _importable("onnx"):
            out.append("onnxruntime")
    return out


def _torch_module(cell, layer):
    import torch
    cls = getattr(torch.nn, BY_KEY[cell].name)      # torch names its modules as we do
    kwargs = {"nonlinearity": layer.nonlinearity} if hasattr(layer, "nonlinearity") else {}
    module = cls(layer.input_size, layer.hidden_size, layer.num_layers, bias=layer.bias,
                 bidirectional=layer.bidirectional, **kwargs)
    module = module.to(torch.float32 if layer.dtype == np.float32 else torch.float64)
    module.load_state_dict({k: torch.from_numpy(v) for k, v in layer.state_dict().items()})
    return module


def build(system, cell, layer, x, dy, threads):
    """{work: callable} for one system on input x (T, B, D) and output gradient dy.

    threads is the number of threads the system may use (fastrnn's own pool,
    torch's intra-op threads, ONNX Runtime's intra-op pool).
    """
    if system == "fastrnn":
        def fastrnn_train():
            _, _, cache = layer.forward(x)
            layer.backward(dy, cache)
        frozen = layer.frozen()
        return {"inference": lambda: frozen(x), "training": fastrnn_train}

    if system in ("fastrnn int8", "fastrnn bfloat16"):
        if layer.dtype != np.float32:
            return {}
        reduced = layer.frozen(weights=system.split()[1])
        return {"inference": lambda: reduced(x)}

    if system == "torch int8":
        quantized = torch_int8(cell, layer, threads)
        return {} if quantized is None else {"inference": lambda: quantized(x)}

    if system == "numpy":
        params = layer.state_dict()
        nl = getattr(layer, "nonlinearity", "tanh")

        def numpy_train():
            _, _, cache = reference.forward(cell, params, x, nonlinearity=nl)
            reference.backward(dy, cache)
        return {"inference": lambda: reference.forward(cell, params, x, nonlinearity=nl),
                "training": numpy_train}

    import torch
    torch.set_num_threads(threads)
    module = _torch_module(cell, layer)
    xt = torch.from_numpy(x)

    if system == "torch":
        dyt = torch.from_numpy(dy)

        def torch_infer():
            with torch.no_grad():
                module(xt)

        def torch_train():
            xg = xt.detach().requires_grad_(True)
            y, _ = module(xg)
            y.backward(dyt)
        return {"inference": torch_infer, "training": torch_train}

    if system == "onnxruntime":
        import warnings

        import onnxruntime as ort
        buf = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                torch.onnx.export(module, (xt,), buf, input_names=["x"], output_names=["y"],
                                  dynamo=False)
            except TypeError:    # a torch without the dynamo switch
                torch.onnx.export(module, (xt,), buf, input_names=["x"], output_names=["y"])
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        session = ort.InferenceSession(buf.getvalue(), opts,
                                       providers=["CPUExecutionProvider"])
        feed = {"x": x}
        return {"inference": lambda: session.run(None, feed)}

    raise ValueError(f"system: expected one of {SYSTEMS + REDUCED_SYSTEMS}, got {system!r}")


def torch_int8(cell, layer, threads):
    """torch's dynamically quantized (int8 weights) module with layer's float32 weights,
    as a function of x returning y; None where torch has none (its RNN, float64) or is
    not installed."""
    if (cell not in TORCH_INT8_CELLS or layer.dtype != np.float32
            or "torch" not in available()):
        return None
    import warnings

    import torch
    warnings.filterwarnings("ignore", message=".*quantiz", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=".*quantiz", category=UserWarning)
    torch.set_num_threads(threads)
    module = _torch_module(cell, layer)
    # quantize_dynamic swaps the children of a module, never the module itself
    q = torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(module), {type(module)},
                                               dtype=torch.qint8)[0]
    assert ".quantized." in type(q).__module__, type(q)

    def run(x):
        with torch.no_grad():
            return q(torch.from_numpy(x))[0].numpy()
    return run


def default_threads():
    """Threads to give every system: the CPUs this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1
