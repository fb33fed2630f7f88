"""Concurrency: many Python threads calling one layer at once get what a sequential run gets.

The kernels run without the GIL and every call allocates its own scratch, so the inference call
and the training forward are safe on a shared layer.  backward() adds into layer.grads, which
is shared: the tests run it on one layer per thread, or on a shared layer under a lock (the
README says the same).
"""

import threading
import time

import numpy as np
import pytest

from conftest import (CELLS, assert_close, assert_grads_close, make_dy, make_layer,
                      make_state, make_x, rng_for)

THREADS, CALLS = 8, 6
D, H = 6, 8


def run_threads(work, n=THREADS):
    """Run work(i) for i in range(n), each in its own thread, all released at once."""
    barrier = threading.Barrier(n)
    results, errors = [None] * n, []

    def main(i):
        try:
            barrier.wait(timeout=30)
            results[i] = work(i)
        except BaseException as exc:   # reported in the main thread
            errors.append(exc)

    # daemon: a hung thread fails the test instead of keeping the interpreter alive
    threads = [threading.Thread(target=main, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    for t in threads:
        t.join(timeout=max(0.0, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), "a thread hung (deadlock?)"
    if errors:
        raise errors[0]
    return results


def random_calls(layer, key, n_calls):
    """n_calls (x, state0) pairs of random shapes: T in 1..40, B in 1..6, some unbatched."""
    rng = rng_for(*key)
    calls = []
    for _ in range(n_calls):
        T = int(rng.integers(1, 41))
        B = None if rng.random() < 0.2 else int(rng.integers(1, 7))
        state0 = make_state(rng, layer, B) if rng.random() < 0.7 else None
        calls.append((make_x(rng, layer, T, B), state0))
    return calls


def layer_for(cell, **kwargs):
    layer = make_layer(cell, D, H, 2, seed=11, **kwargs)
    rng = rng_for("threads", cell)
    for v in layer.params.values():
        v[...] = rng.uniform(-0.5, 0.5, v.shape)
    return layer


@pytest.mark.parametrize("frozen", [False, True], ids=["layer", "frozen"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("cell", CELLS)
def test_inference_from_many_threads_on_one_layer(cell, bidirectional, frozen):
    layer = layer_for(cell, bidirectional=bidirectional, dtype=np.float64)
    run = layer.frozen() if frozen else layer     # a FrozenLayer shares its packed weights
    work = [random_calls(layer, ("inference", cell, bidirectional, i), CALLS)
            for i in range(THREADS)]
    expected = [[layer(x, s) for x, s in calls] for calls in work]          # sequential
    got = run_threads(lambda i: [run(x, s) for x, s in work[i]])
    for i in range(THREADS):
        for j, ((y, s), (y_ref, s_ref)) in enumerate(zip(got[i], expected[i])):
            assert_close(y, y_ref, np.float64, f"thread {i} call {j} y", rtol=0, atol=1e-13)
            assert_close(s, s_ref, np.float64, f"thread {i} call {j} state", rtol=0, atol=1e-13)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_large_calls_from_many_threads_on_one_layer(cell):
    """Calls of several MFLOP each, large enough for a kernel to use threads of its own
    (BLAS's or fastrnn's), made from four Python threads at once."""
    layer = make_layer(cell, 32, 32, 1, seed=2)     # 2*T*B*G*(D+H) >= 2.2 MFLOP per call
    rng = rng_for("large", cell)
    work = [[make_x(rng, layer, int(rng.integers(30, 51)), int(rng.integers(6, 11)))
             for _ in range(3)] for _ in range(4)]
    expected = [[layer(x) for x in calls] for calls in work]
    got = run_threads(lambda i: [layer(x) for x in work[i]], n=4)
    for i in range(4):
        for j, ((y, s), (y_ref, s_ref)) in enumerate(zip(got[i], expected[i])):
            assert_close(y, y_ref, np.float32, f"thread {i} call {j} y")
            assert_close(s, s_ref, np.float32, f"thread {i} call {j} state")


@pytest.mark.parametrize("cell", CELLS)
def test_training_from_many_threads_one_layer_each(cell):
    """Forward and backward at the same time in every thread, each on its own copy."""
    layers = [layer_for(cell, batch_first=True, dtype=np.float64) for _ in range(THREADS)]
    rng = rng_for("train", cell)
    work = []
    for i, layer in enumerate(layers):
        calls = random_calls(layer, ("train", cell, i), 3)
        work.append([(x, s0, make_dy(rng, layer, x.shape[-2], x.shape[0] if x.ndim == 3
                                     else None)) for x, s0 in calls])

    def train(layer, calls):
        layer.zero_grad()
        out = []
        for x, s0, dy in calls:
            y, _, cache = layer.forward(x, s0)
            dx, ds0 = layer.backward(dy, cache)
            out.append((y, dx, ds0))
        return out, {k: g.copy() for k, g in layer.grads.items()}

    expected = [train(layer, calls) for layer, calls in zip(layers, work)]   # sequential
    got = run_threads(lambda i: train(layers[i], work[i]))
    for i in range(THREADS):
        (outs, grads), (outs_ref, grads_ref) = got[i], expected[i]
        for j, (a, b) in enumerate(zip(outs, outs_ref)):
            for name, u, v in zip(("y", "dx", "dstate0"), a, b):
                assert_close(u, v, np.float64, f"thread {i} call {j} {name}", rtol=0,
                             atol=1e-12)
        assert_grads_close(grads, grads_ref, np.float64)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_concurrent_forward_on_one_layer_then_locked_backward(cell):
    """Training forward from every thread on one layer; backward serialised by a lock.
    The accumulated grads equal those of the same calls run one after another."""
    layer = layer_for(cell, dtype=np.float64)
    rng = rng_for("shared-train", cell)
    work = []
    for i in range(THREADS):
        calls = random_calls(layer, ("shared", cell, i), 3)
        work.append([(x, s0, make_dy(rng, layer, x.shape[0], x.shape[1] if x.ndim == 3
                                     else None)) for x, s0 in calls])
    layer.zero_grad()
    expected = []
    for calls in work:
        for x, s0, dy in calls:
            y, _, cache = layer.forward(x, s0)
            expected.append((y, layer.backward(dy, cache)[0]))
    grads_ref = {k: g.copy() for k, g in layer.grads.items()}
    layer.zero_grad()
    lock = threading.Lock()

    def train(i):
        out = []
        for x, s0, dy in work[i]:
            y, _, cache = layer.forward(x, s0)
            with lock:
                dx, _ = layer.backward(dy, cache)
            out.append((y, dx))
        return out

    got = [pair for result in run_threads(train) for pair in result]
    for j, ((y, dx), (y_ref, dx_ref)) in enumerate(zip(got, expected)):
        assert_close(y, y_ref, np.float64, f"call {j} y", rtol=0, atol=1e-12)
        assert_close(dx, dx_ref, np.float64, f"call {j} dx", rtol=0, atol=1e-12)
    assert_grads_close(layer.grads, grads_ref, np.float64)   # same sum, another order
