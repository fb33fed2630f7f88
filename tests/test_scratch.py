"""Work buffers a layer keeps between calls (fastrnn/runtime/scratch.py)."""

import copy
import pickle
import threading

import numpy as np
import pytest

from fastrnn.runtime import scratch as _scratch
from fastrnn.runtime.aligned import CACHE_LINE
from fastrnn.runtime.scratch import Reused, Scratch
from conftest import CELLS, make_layer


def test_a_lease_hands_its_buffers_back_for_the_next():
    scratch = Scratch()
    with scratch.lease() as work:
        a = work.empty((3, 40), np.float32)
        b = work.empty((3, 40), np.float32)     # same size, while a is lent: another buffer
        assert a.ctypes.data != b.ctypes.data
        assert a.ctypes.data % CACHE_LINE == 0 and b.ctypes.data % CACHE_LINE == 0
        first = {a.ctypes.data, b.ctypes.data}
    assert scratch.kept_bytes() == 2 * (3 * 40 * 4 + CACHE_LINE)
    with scratch.lease() as work:
        again = {work.empty((3, 40), np.float32).ctypes.data,
                 work.empty(480 // 8, np.float64).ctypes.data}    # any shape of those bytes
    assert again == first


def test_only_small_buffers_and_few_of_a_size_are_kept(monkeypatch):
    monkeypatch.setattr(_scratch, "MAX_KEPT_BYTES", 1000)
    scratch = Scratch()
    with scratch.lease() as work:
        work.empty(1001, np.uint8)
        for _ in range(_scratch.MAX_KEPT_PER_SIZE + 2):
            work.empty(100, np.uint8)
    assert scratch.kept_bytes() == _scratch.MAX_KEPT_PER_SIZE * (100 + CACHE_LINE)


def test_concurrent_leases_never_share_a_buffer():
    scratch = Scratch()
    seen, errors = [], []

    def call():
        for _ in range(200):
            with scratch.lease() as work:
                a = work.empty(64, np.float64)
                a[:] = threading.get_ident()
                seen.append(a.ctypes.data)
                if not (a == threading.get_ident()).all():
                    errors.append("a buffer was written by another lease")

    threads = [threading.Thread(target=call) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(set(seen)) <= 4      # reused, at most one per concurrent lease


@pytest.mark.parametrize("cell", CELLS)
def test_kept_buffers_do_not_change_results(cell):
    # A layer that trained on other shapes first (its buffers hold old
    # values) gives bitwise what a fresh copy gives.
    layer = make_layer(cell, 6, 32, 2, bidirectional=True, seed=1)
    fresh = copy.deepcopy(layer)
    rng = np.random.default_rng(0)
    for T, B in ((9, 3), (20, 1), (9, 3)):
        x = rng.standard_normal((T, B, 6)).astype(np.float32)
        y, _, cache = layer.forward(x)
        layer.backward(np.ones_like(y), cache)
        layer(x)
    x = rng.standard_normal((20, 1, 6)).astype(np.float32)
    dy = rng.standard_normal((20, 1, 64)).astype(np.float32)
    results = []
    for net in (layer, fresh):
        net.zero_grad()
        y, _, cache = net.forward(x)
        dx, _ = net.backward(dy, cache)
        results.append([y, dx, net(x)[0]] + [net.grads[k].copy() for k in sorted(net.grads)])
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_layers_with_kept_buffers_copy_and_pickle_empty():
    layer = make_layer("lstm", 4, 16, seed=0)
    x = np.ones((5, 2, 4), np.float32)
    y, _, cache = layer.forward(x)
    layer.backward(y, cache)
    assert layer._runtime.scratch.kept_bytes() > 0
    for other in (copy.deepcopy(layer), pickle.loads(pickle.dumps(layer))):
        assert other._runtime.scratch.kept_bytes() == 0
        np.testing.assert_array_equal(other(x)[0], layer(x)[0])


def test_reused_lends_the_same_arrays_in_the_same_order():
    reused = Reused()
    first = [reused.empty((3, 40), np.float32), reused.empty(7, np.float64)]
    assert all(a.ctypes.data % CACHE_LINE == 0 for a in first)
    reused.rewind()
    assert reused.empty((3, 40), np.float32) is first[0]
    assert reused.empty(7, np.float64) is first[1]
    reused.rewind()
    other = reused.empty((3, 41), np.float32)      # a new shape there: new arrays from it on
    assert other.shape == (3, 41) and other is not first[0]
    assert reused.empty(7, np.float64) is not first[1]
    reused.rewind()
    assert reused.empty((3, 41), np.float32) is other
    assert reused.empty((3, 40), np.float64).dtype == np.float64


def test_reused_keeps_at_most_its_byte_limit(monkeypatch):
    monkeypatch.setattr(_scratch, "MAX_REUSED_BYTES", 1000)
    reused = Reused()
    a = reused.empty(600, np.uint8)
    b = reused.empty(600, np.uint8)      # past the limit: lent, not kept
    reused.rewind()
    assert reused.empty(600, np.uint8) is a
    assert reused.empty(600, np.uint8) is not b


@pytest.mark.parametrize("cell", CELLS)
def test_inference_calls_reuse_their_work_arrays(cell):
    layer = make_layer(cell, 5, 24, 2, bidirectional=True, seed=2)
    fresh = copy.deepcopy(layer)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((30, 2, 5)).astype(np.float32)
    layer(x[:3])                     # another shape first: its arrays get replaced
    y = layer(x)[0]
    arrays = [id(a) for a in layer._runtime.idle["reused"]._arrays]
    assert len(arrays) >= 4          # at least the packed weights of each layer and direction
    y[...] = 0                       # the output is the caller's, not a work array
    np.testing.assert_array_equal(layer(x)[0], fresh(x)[0])
    assert [id(a) for a in layer._runtime.idle["reused"]._arrays] == arrays
    np.testing.assert_array_equal(layer(x[:3])[0], fresh(x[:3])[0])
    for other in (copy.deepcopy(layer), pickle.loads(pickle.dumps(layer))):
        assert other._runtime.idle == {}


def saved_arrays(cache):
    """The arrays a training forward saved (LSTM: two per direction, GRU: one)."""
    return [a for saved in cache.saved.values() for a in saved if a is not None]


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_a_deleted_cache_hands_its_saved_activations_to_the_next_forward(cell):
    layer = make_layer(cell, 5, 6, seed=0)
    x = np.random.default_rng(0).standard_normal((7, 3, 5)).astype(np.float32)
    _, _, cache = layer.forward(x)
    kept = layer._runtime.scratch.kept_bytes()         # the call's work buffers, back in the pool
    saved = sum(a.nbytes + CACHE_LINE for a in saved_arrays(cache))
    del cache
    assert layer._runtime.scratch.kept_bytes() == kept + saved
    _, _, cache = layer.forward(x)             # takes them again
    assert layer._runtime.scratch.kept_bytes() == kept


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_saved_activations_referenced_elsewhere_are_not_reused(cell):
    # the cache is opaque, but if something still holds one of its arrays the
    # next forward must not write over it
    layer = make_layer(cell, 5, 6, seed=0)
    x = np.random.default_rng(0).standard_normal((7, 3, 5)).astype(np.float32)
    _, _, cache = layer.forward(x)
    held = saved_arrays(cache)[0]
    before = held.copy()
    del cache
    _, _, cache = layer.forward(2 * x)
    assert all(not np.shares_memory(held, a) for a in saved_arrays(cache))
    np.testing.assert_array_equal(held, before)
