"""The compiled one-pass optimizer steps and clipping (fastrnn/kernels/optim_step.pyx):
SGD (momentum, Nesterov), Adam and AdamW over several steps against torch.optim and the
NumPy rule they replace, clip_grad_norm against torch, bitwise over thread counts, and
several Python threads training separate models at once."""

import threading

import numpy as np
import pytest

import fastrnn
from fastrnn.training import optim


def threads(n):
    return fastrnn.set_num_threads(n)


def layers_of(dtype, seed=0):
    # a big enough parameter (40 000 elements) that the pass is split between threads
    return [fastrnn.Linear(200, 200, dtype=dtype, seed=seed),
            fastrnn.LSTM(6, 5, dtype=dtype, seed=seed + 1)]


def gradients(layers, rng):
    for layer in layers:
        for g in layer.grads.values():
            g[...] = rng.standard_normal(g.shape)


CONFIGS = {
    "sgd": (fastrnn.SGD, dict(lr=0.1)),
    "sgd-momentum": (fastrnn.SGD, dict(lr=0.05, momentum=0.9, dampening=0.1,
                                       weight_decay=0.01)),
    "sgd-nesterov": (fastrnn.SGD, dict(lr=0.05, momentum=0.8, nesterov=True)),
    "adam": (fastrnn.Adam, dict(lr=0.01, betas=(0.8, 0.95), weight_decay=0.02)),
    "adamw": (fastrnn.AdamW, dict(lr=0.01, weight_decay=0.1)),
}

TORCH = {"sgd": "SGD", "sgd-momentum": "SGD", "sgd-nesterov": "SGD", "adam": "Adam",
         "adamw": "AdamW"}


def run(name, dtype, steps=4, compiled=True):
    cls, kw = CONFIGS[name]
    layers = layers_of(dtype)
    opt = cls(layers, **kw)
    if not compiled:                  # the NumPy rule the compiled pass replaces
        opt._fused = lambda items: [opt._update(*item) for item in items]
    rng = np.random.default_rng(7)
    for _ in range(steps):
        gradients(layers, rng)
        opt.step()
    return [p.copy() for layer in layers for p in layer.params.values()]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_against_the_numpy_rule(name, dtype):
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    for a, b in zip(run(name, dtype), run(name, dtype, compiled=False)):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_against_torch(name, dtype):
    torch = pytest.importorskip("torch")
    cls, kw = CONFIGS[name]
    layers = layers_of(dtype)
    params = [p for layer in layers for p in layer.params.values()]
    tparams = [torch.nn.Parameter(torch.from_numpy(p.copy())) for p in params]
    tkw = dict(kw)
    if "betas" in tkw:
        tkw["betas"] = tuple(tkw["betas"])
    topt = getattr(torch.optim, TORCH[name])(tparams, **tkw)
    opt = cls(layers, **kw)
    rng = np.random.default_rng(8)
    for _ in range(5):
        gradients(layers, rng)
        grads = [g for layer in layers for g in layer.grads.values()]
        for tp, g in zip(tparams, grads):
            tp.grad = torch.from_numpy(g.copy())
        opt.step()
        topt.step()
    rtol = 2e-5 if dtype == np.float32 else 1e-11
    for p, tp in zip(params, tparams):
        np.testing.assert_allclose(p, tp.detach().numpy(), rtol=rtol, atol=rtol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_bitwise_over_thread_counts(name, dtype):
    results = []
    for n in (1, 2):
        previous = threads(n)
        try:
            results.append(run(name, dtype, steps=3))
        finally:
            threads(previous)
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("max_norm", [0.5, 1e6])
def test_clip_grad_norm_against_torch_and_over_threads(dtype, max_norm):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(9)
    arrays = [rng.standard_normal(s).astype(dtype) for s in ((300, 200), (7,), (40, 3))]
    tgrads = [torch.nn.Parameter(torch.zeros(a.shape, dtype=torch.from_numpy(a).dtype))
              for a in arrays]
    for t, a in zip(tgrads, arrays):
        t.grad = torch.from_numpy(a.copy())
    ref = float(torch.nn.utils.clip_grad_norm_(tgrads, max_norm))
    out = []
    for n in (1, 2):
        previous = threads(n)
        try:
            copies = [a.copy() for a in arrays]
            out.append((fastrnn.clip_grad_norm(copies, max_norm), copies))
        finally:
            threads(previous)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    assert out[0][0] == out[1][0]
    assert out[0][0] == pytest.approx(ref, rel=rtol)
    for a, b, t in zip(out[0][1], out[1][1], tgrads):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(a, t.grad.numpy(), rtol=rtol, atol=rtol * 1e-3)


def test_non_contiguous_parameters_take_the_numpy_path():
    lin = fastrnn.Linear(4, 3, dtype=np.float64, seed=0)
    lin.params["weight"] = np.asfortranarray(lin.params["weight"])
    w0 = lin.params["weight"].copy()
    lin.grads["weight"][...] = 1.0
    fastrnn.SGD(lin, lr=0.5).step()
    np.testing.assert_allclose(lin.params["weight"], w0 - 0.5)
    assert not optim._compiled(lin.params["weight"], lin.grads["weight"])


def test_python_threads_training_separate_models():
    """Each thread trains its own model; the shared pool serves one job at a time and the
    others run alone, so every model ends exactly where it ends trained by itself."""
    V, E, H, T, B = 300, 16, 24, 10, 8

    def train(seed, out):
        rng = np.random.default_rng(seed)
        net = fastrnn.Chain(fastrnn.Embedding(V, E, seed=seed), fastrnn.LSTM(E, H, seed=seed),
                            fastrnn.Linear(H, V, seed=seed))
        opt = fastrnn.AdamW(net, lr=1e-2)
        x, y = rng.integers(0, V, size=(T, B)), rng.integers(0, V, size=(T, B))
        for _ in range(8):
            net.zero_grad()
            logits, _, cache = net.forward(x)
            loss, d = fastrnn.softmax_cross_entropy(logits, y, out=logits)
            net.backward(d, cache)
            fastrnn.clip_grad_norm(net.grads, 1.0)
            opt.step()
        out[seed] = (loss, {k: v.copy() for k, v in net.params.items()})

    alone, together = {}, {}
    for seed in range(3):
        train(seed, alone)
    workers = [threading.Thread(target=train, args=(seed, together)) for seed in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    for seed in range(3):
        assert together[seed][0] == alone[seed][0]
        for k, v in alone[seed][1].items():
            np.testing.assert_array_equal(together[seed][1][k], v)
