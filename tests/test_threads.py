"""fastrnn's own worker threads: results must not depend on how work is split.

Every output element is computed by one task with the same order of
summation whatever the thread count (rows of the time loop and of dX are
split, weight gradients by whole column panels), so results with 1, 2 and 3
threads are compared bitwise, and against the reference within tolerance.
Shapes are large enough to pass the threading threshold and uneven so that
splits leave remainders (odd B, T not a multiple of the chunk).
"""

import threading

import numpy as np
import pytest

import fastrnn
from fastrnn import reference
from fastrnn.kernels import threads as _threads
from conftest import (CELLS, as_parts, make_layer, mode_of, nonlinearity_of, reference_run,
                      tol)


def run(layer, x, dy, dsn):
    layer.zero_grad()
    y, state_n = layer(x)
    y2, state2, cache = layer.forward(x)
    dx, ds0 = layer.backward(dy, cache, dsn)
    grads = {k: v.copy() for k, v in layer.grads.items()}
    return y, state_n, y2, state2, dx, ds0, grads


def flat(value):
    if isinstance(value, dict):
        return [value[k] for k in sorted(value)]
    if isinstance(value, (tuple, list)):
        return [a for v in value for a in flat(v)]
    return [value]


def same_over_thread_counts(fn):
    """fn() (a list of arrays) with 1, 2 and 3 threads, asserted bitwise equal; the
    2-thread result."""
    results = {}
    for n in (1, 2, 3):
        _threads.set_num_threads(n)
        results[n] = fn()
    for n in (2, 3):
        for a, b in zip(results[1], results[n]):
            np.testing.assert_array_equal(a, b)
    return results[2]


def equal_over_threads_and_right(layer, x, dy, dsn):
    """Everything (inference, training forward, backward, grads) bitwise equal with 1, 2 and
    3 threads, and equal to the reference within tolerance."""
    same_over_thread_counts(lambda: flat(run(layer, x, dy, dsn)))
    ref = reference_run(layer, x, None, dy, dsn)
    _threads.set_num_threads(2)
    y, state_n, _, _, dx, dstate0, grads = run(layer, x, dy, dsn)
    dtype = layer.dtype
    np.testing.assert_allclose(y, ref["y"], **tol(dtype))
    for a, e in zip(as_parts(state_n), as_parts(ref["state_n"])):
        np.testing.assert_allclose(a, e, **tol(dtype))
    np.testing.assert_allclose(dx, ref["dx"], **tol(dtype))
    for a, e in zip(as_parts(dstate0), as_parts(ref["dstate0"])):
        np.testing.assert_allclose(a, e, **tol(dtype))
    # weight gradients are sums over T*B terms: a looser relative term
    loose = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-9, atol=1e-9)
    for k in ref["grads"]:
        np.testing.assert_allclose(grads[k], ref["grads"][k], err_msg=k, **loose)


@pytest.mark.parametrize("cell", CELLS)
# B = 19: each of two threads projects its own rows (fastrnn/kernels/sequence.pxd project_chunk)
@pytest.mark.parametrize("B", [1, 5, 7, 13, 19])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_thread_count_does_not_change_results(cell, B, dtype, restore_threads):
    T, D, H = 37, 40, 36
    layer = make_layer(cell, D, H, 2, bidirectional=True, dtype=dtype, seed=3)
    rng = np.random.default_rng(B)
    x = rng.standard_normal((T, B, D))
    dy = rng.standard_normal((T, B, 2 * H))
    shape = (4, B, H)
    dsn = (rng.standard_normal(shape), rng.standard_normal(shape)) if cell == "lstm" \
        else rng.standard_normal(shape)
    equal_over_threads_and_right(layer, x, dy, dsn)


def test_long_inference_crosses_chunks(restore_threads, monkeypatch):
    # Many projection chunks, each a barrier between the projection and the loop.
    import fastrnn.layers.base as base
    monkeypatch.setattr(base, "_CHUNK_ELEMENTS", 4 * 24 * 6 * 3)
    layer = fastrnn.LSTM(10, 24, num_layers=2, bidirectional=True, dtype=np.float64, seed=0)
    x = np.random.default_rng(0).standard_normal((50, 6, 10))
    _threads.set_num_threads(1)
    y1, s1 = layer(x)
    _threads.set_num_threads(2)
    y2, s2 = layer(x)
    np.testing.assert_array_equal(y1, y2)
    y_ref, s_ref, _ = reference.forward("lstm", layer.params, x, None, num_layers=2,
                                        bidirectional=True)
    np.testing.assert_allclose(y2, y_ref, **tol(np.float64))


def test_concurrent_callers_share_the_pool_safely(restore_threads):
    # Python threads calling at once: one gets the workers, the others run
    # alone on their own thread (the pool is busy); all results stay exact.
    _threads.set_num_threads(2)
    layers = [fastrnn.GRU(16, 32, dtype=np.float64, seed=i) for i in range(4)]
    xs = [np.random.default_rng(i).standard_normal((40, 9, 16)) for i in range(4)]
    expected = [layer(x)[0] for layer, x in zip(layers, xs)]
    errors = []

    def work(i):
        for _ in range(20):
            y, _ = layers[i](xs[i])
            if not np.array_equal(y, expected[i]):
                errors.append(i)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    assert errors == []


def test_staged_and_barrier_jobs_interleave(restore_threads, monkeypatch):
    # A single sequence split by units runs as a staged job, whose caller
    # returns without waiting for workers that hold no part; short calls
    # make workers come late to jobs already done, while batch calls (jobs
    # with barriers, which wait for every worker) and callers on other
    # Python threads come in between.  Every result stays exact.
    import fastrnn.layers.base as base
    monkeypatch.setattr(base, "_THREADED_MIN_FLOPS", 0)
    single = fastrnn.LSTM(8, 64, dtype=np.float32, seed=1)
    batch = fastrnn.GRU(8, 32, dtype=np.float32, seed=2)
    xs = {T: np.random.default_rng(T).standard_normal((T, 1, 8)).astype(np.float32)
          for T in (4, 6, 9)}
    xb = np.random.default_rng(9).standard_normal((6, 5, 8)).astype(np.float32)
    _threads.set_num_threads(1)
    expected = {T: single(x)[0] for T, x in xs.items()}
    expected_b = batch(xb)[0]
    _threads.set_num_threads(2)
    errors = []

    def work(rounds):
        for i in range(rounds):
            T = (4, 6, 9)[i % 3]
            if not np.array_equal(single(xs[T])[0], expected[T]):
                errors.append(("single", T))
            if i % 4 == 0 and not np.array_equal(batch(xb)[0], expected_b):
                errors.append(("batch", i))

    others = [threading.Thread(target=work, args=(100,)) for _ in range(2)]
    for t in others:
        t.start()
    work(300)
    for t in others:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in others), "a thread hung"
    assert errors == []


@pytest.mark.parametrize("bad, exc", [(0, ValueError), (-2, ValueError), (1.5, TypeError),
                                      ("2", TypeError), (True, TypeError)])
def test_set_num_threads_rejects_bad_values(bad, exc, restore_threads):
    with pytest.raises(exc, match=r"\bn\b"):
        fastrnn.set_num_threads(bad)


def test_set_num_threads_returns_previous(restore_threads):
    before = fastrnn.get_num_threads()
    assert fastrnn.set_num_threads(1) == before
    assert fastrnn.get_num_threads() == 1


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("H", [64, 80, 128, 144, 528])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_single_sequence_split_by_hidden_units(cell, H, dtype, restore_threads, monkeypatch):
    # Batch 1 splits the hidden units over threads (whole 64-byte panels,
    # parts of each step claimed by the threads); small chunks make the
    # projection stage repeat.
    # H: threads with equal and unequal panel counts, a sum over more than
    # one K block (528 > FR_KC = 512), and sizes whose panels do not divide (no split).
    import fastrnn.layers.base as base
    monkeypatch.setattr(base, "_CHUNK_ELEMENTS", 4 * H * 9)
    layer = make_layer(cell, 12, H, 2, bidirectional=True, dtype=dtype, seed=5)
    x = np.random.default_rng(1).standard_normal((40, 1, 12))
    y = same_over_thread_counts(lambda: flat(layer(x)))[0]
    params = {k: v.astype(np.float64) for k, v in layer.params.items()}
    y_ref, _, _ = reference.forward(mode_of(cell), params, x, None, num_layers=2,
                                    bidirectional=True, nonlinearity=nonlinearity_of(cell))
    np.testing.assert_allclose(y, y_ref, **tol(dtype))


def _training_run(layer, x, dy, lengths):
    layer.zero_grad()
    y, state_n, cache = layer.forward(x, lengths=lengths)
    dx, ds0 = layer.backward(dy, cache)
    return flat((y, state_n, dx, ds0, {k: v.copy() for k, v in layer.grads.items()}))


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("H", [64, 144, 528])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_single_sequence_backward_split_by_hidden_units(cell, H, dtype, restore_threads,
                                                       monkeypatch):
    # Batch-1 backward shares each step's hidden units too (parts claimed by
    # the threads): dh_t from the whole dG of the step after, then each
    # part's units of dG_t.  H as in the forward test above; every layer
    # above the threading threshold.
    import fastrnn.layers.base as base
    monkeypatch.setattr(base, "_THREADED_MIN_FLOPS", 0)
    layer = make_layer(cell, 12, H, 2, bidirectional=True, dtype=dtype, seed=6)
    rng = np.random.default_rng(H)
    x = rng.standard_normal((23, 1, 12))
    dy = rng.standard_normal((23, 1, 2 * H))
    shape = (4, 1, H)
    dsn = (rng.standard_normal(shape), rng.standard_normal(shape)) if cell == "lstm" \
        else rng.standard_normal(shape)
    equal_over_threads_and_right(layer, x, dy, dsn)


@pytest.mark.parametrize("length", [1, 9, 23])
@pytest.mark.parametrize("peephole", [False, True])
def test_single_sequence_backward_split_with_lengths(length, peephole, restore_threads,
                                                    monkeypatch):
    # A sequence shorter than T: steps past its end have no gradient, the
    # reverse direction starts at its last step.  The one-thread run (batch
    # rows, checked against the reference in test_lengths.py) is the standard.
    import fastrnn.layers.base as base
    monkeypatch.setattr(base, "_THREADED_MIN_FLOPS", 0)
    layer = fastrnn.LSTM(12, 64, 2, bidirectional=True, peephole=peephole, seed=7)
    rng = np.random.default_rng(length)
    x = rng.standard_normal((23, 1, 12))
    dy = rng.standard_normal((23, 1, 128))
    same_over_thread_counts(lambda: _training_run(layer, x, dy, [length]))


@pytest.mark.parametrize("cell", CELLS)
def test_batch_with_lengths_same_over_thread_counts(cell, restore_threads, monkeypatch):
    # Batch rows split unevenly by work (fastrnn/kernels/sequence.pxd split_batch) over
    # sequences of many lengths, with small chunks so that the projection
    # repeats.
    import fastrnn.layers.base as base
    monkeypatch.setattr(base, "_THREADED_MIN_FLOPS", 0)
    monkeypatch.setattr(base, "_CHUNK_ELEMENTS", 4 * 24 * 13 * 5)
    layer = make_layer(cell, 10, 24, 2, bidirectional=True, seed=8)
    rng = np.random.default_rng(13)
    x = rng.standard_normal((21, 13, 10))
    dy = rng.standard_normal((21, 13, 48))
    lengths = rng.integers(1, 22, size=13)
    same_over_thread_counts(lambda: _training_run(layer, x, dy, lengths)
                            + flat(layer(x, lengths=lengths)))
