"""Returned arrays reuse the memory of earlier ones only when nothing refers to those
any more (fastrnn/runtime/spares.py): an array, a view of it or a cache the caller
keeps is never overwritten, and deep copies and pickles of a layer start without them."""

import copy
import pickle

import numpy as np
import pytest

import fastrnn
from fastrnn.runtime.spares import Spares


def address(a):
    return a.__array_interface__["data"][0]


def lstm_output(layer, x):
    return layer(x)[0]


def lstm_training_output(layer, x):
    return layer.forward(x)[0]


def lstm_input_gradient(layer, x):
    y, _, cache = layer.forward(x)
    return layer.backward(np.ones_like(y), cache)[0]


def linear_input_gradient(layer, x):
    return layer.softmax_cross_entropy(x, np.zeros(x.shape[:-1], np.int64))[1]


def linear_output(layer, x):
    return layer(x)


def linear_backward(layer, x):
    y, cache = layer.forward(x)
    return layer.backward(y, cache)        # dy = y: a dx that depends on x


def embedding_output(layer, idx):
    return layer(idx)


CASES = {
    "lstm output": (lambda: fastrnn.LSTM(8, 16, num_layers=2, seed=0),
                    lambda rng: rng.standard_normal((5, 3, 8)).astype(np.float32), lstm_output),
    "lstm training output": (lambda: fastrnn.LSTM(8, 16, seed=0),
                             lambda rng: rng.standard_normal((5, 3, 8)).astype(np.float32),
                             lstm_training_output),
    "lstm input gradient": (lambda: fastrnn.LSTM(8, 16, num_layers=2, seed=0),
                            lambda rng: rng.standard_normal((5, 3, 8)).astype(np.float32),
                            lstm_input_gradient),
    "linear input gradient": (lambda: fastrnn.Linear(8, 30, seed=0),
                              lambda rng: rng.standard_normal((7, 8)).astype(np.float32),
                              linear_input_gradient),
    "linear output": (lambda: fastrnn.Linear(8, 30, seed=0),
                      lambda rng: rng.standard_normal((7, 8)).astype(np.float32), linear_output),
    "linear backward": (lambda: fastrnn.Linear(8, 30, seed=0),
                        lambda rng: rng.standard_normal((7, 8)).astype(np.float32),
                        linear_backward),
    "embedding output": (lambda: fastrnn.Embedding(20, 8, seed=0),
                         lambda rng: rng.integers(0, 20, (5, 3)), embedding_output),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("keep", ["array", "view", "memoryview"])
def test_what_the_caller_holds_is_never_overwritten(case, keep):
    make, data, call = CASES[case]
    layer, rng = make(), np.random.default_rng(1)
    first = call(layer, data(rng))
    expected = first.copy()
    held = {"array": first, "view": first[1:], "memoryview": memoryview(first)}[keep]
    if keep != "array":
        del first
    second = call(layer, data(rng))             # other inputs: other values
    got = np.asarray(held)
    np.testing.assert_array_equal(got, expected if keep == "array" else
                                  (expected[1:] if keep == "view" else expected))
    assert not np.array_equal(second, expected)
    assert not np.shares_memory(second, got)


@pytest.mark.parametrize("case", CASES)
def test_memory_of_a_dropped_array_is_used_again(case):
    make, data, call = CASES[case]
    layer, rng = make(), np.random.default_rng(1)
    x = data(rng)
    first = call(layer, x)
    where = address(first)
    del first
    again = call(layer, x)
    assert address(again) == where
    np.testing.assert_array_equal(again, call(make(), x))    # and the values are right


def test_a_cache_kept_for_later_keeps_its_arrays():
    layer = fastrnn.LSTM(8, 16, seed=0)
    rng = np.random.default_rng(2)
    x1, x2 = rng.standard_normal((2, 5, 3, 8)).astype(np.float32)
    y1, _, cache1 = layer.forward(x1)
    dy = rng.standard_normal(y1.shape).astype(np.float32)
    del y1                                       # the cache still holds the output
    layer.forward(x2)
    layer.zero_grad()
    dx = layer.backward(dy, cache1)[0]
    fresh = fastrnn.LSTM(8, 16, seed=0)
    _, _, cache = fresh.forward(x1)
    np.testing.assert_array_equal(dx, fresh.backward(dy, cache)[0])
    for name in layer.grads:
        np.testing.assert_array_equal(layer.grads[name], fresh.grads[name])


@pytest.mark.parametrize("duplicate", [copy.deepcopy, lambda m: pickle.loads(pickle.dumps(m))])
def test_copies_start_with_no_buffers_of_their_own(duplicate):
    # (a shallow copy shares them, as it shares the params: still safe, see above)
    layer = fastrnn.Linear(8, 30, seed=0)
    x = np.random.default_rng(3).standard_normal((7, 8)).astype(np.float32)
    first = linear_input_gradient(layer, x)
    where = address(first)
    del first
    other = duplicate(layer)
    assert address(linear_input_gradient(other, x)) != where
    assert pickle.loads(pickle.dumps(Spares())).empty("a", (2, 3), np.float32).shape == (2, 3)


def test_spares_by_shape_and_dtype():
    spares = Spares()
    a = spares.empty("a", (4, 16), np.float32)
    assert a.shape == (4, 16) and a.dtype == np.float32 and address(a) % 64 == 0
    where = address(a)
    del a
    b = spares.empty("a", (2, 16), np.float32)      # another size: a new buffer
    assert b.shape == (2, 16)
    del b
    assert np.all(spares.zeros("a", (2, 16), np.float64) == 0)
