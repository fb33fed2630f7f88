"""A layer's choice, by timing its own calls, between splitting a single
sequence over threads and running it on one thread."""

import numpy as np
import pytest

import fastrnn
from fastrnn.kernels import threads as _threads
from fastrnn.runtime.split_choice import EXPLORE_CALLS, EXPLORE_EVERY, SplitChoice


def run_calls(choice, seconds, calls, cold=None):
    """Make `calls` choices, each taking seconds[way], or cold[way] when the call
    before went the other way; return the ways chosen."""
    ways = []
    for _ in range(calls):
        way = choice.choose()
        switched = bool(ways) and ways[-1] != way
        choice.record(way, (cold or seconds)[way] if switched else seconds[way])
        ways.append(way)
    return ways


@pytest.mark.parametrize("faster", [True, False])
def test_keeps_to_the_faster_way_and_explores_the_other(faster):
    choice = SplitChoice()
    seconds = {faster: 1e-6, not faster: 2e-6}
    ways = run_calls(choice, seconds, 4 * EXPLORE_EVERY)
    # each way first, for as many calls as it takes to time it once after
    # the call that warms it
    assert ways[:4] == [True, True, False, False]
    slower_calls = [i for i, w in enumerate(ways[4:], 5) if w != faster]
    assert slower_calls == [i for i in range(5, 4 * EXPLORE_EVERY + 1)
                            if i % EXPLORE_EVERY < EXPLORE_CALLS]


def test_the_first_call_after_a_change_of_way_is_not_timed():
    # the split is faster once warm, but each first split call after
    # one-thread calls is ten times slower (the workers were asleep): the
    # layer must still find the split, and keep to it
    choice = SplitChoice()
    warm, cold = {True: 1e-6, False: 2e-6}, {True: 1e-5, False: 2e-6}
    ways = run_calls(choice, warm, 4 * EXPLORE_EVERY, cold=cold)
    assert choice.seconds[True] == pytest.approx(1e-6)
    assert ways[-2 * EXPLORE_EVERY:].count(False) == 2 * EXPLORE_CALLS


def test_follows_a_change_of_machine():
    # the split wins, then the machine changes and it loses: within a few
    # explorations the layer moves to one thread, and back when it wins again
    choice = SplitChoice()
    run_calls(choice, {True: 1e-6, False: 2e-6}, 2 * EXPLORE_EVERY)
    ways = run_calls(choice, {True: 5e-6, False: 2e-6}, 8 * EXPLORE_EVERY)
    assert ways[-2 * EXPLORE_EVERY:].count(True) == 2 * EXPLORE_CALLS   # explorations only
    ways = run_calls(choice, {True: 1e-6, False: 2e-6}, 12 * EXPLORE_EVERY)
    assert ways[-2 * EXPLORE_EVERY:].count(False) == 2 * EXPLORE_CALLS


@pytest.mark.parametrize("cell, H", [("LSTM", 64), ("GRU", 80)])
def test_a_layer_times_both_ways_and_both_give_the_same_result(cell, H, restore_threads):
    _threads.set_num_threads(2)
    layer = getattr(fastrnn, cell)(32, H, seed=0)
    x = np.random.default_rng(0).standard_normal((100, 1, 32)).astype(np.float32)
    first = layer(x)[0]
    for _ in range(EXPLORE_EVERY + 2):
        np.testing.assert_array_equal(layer(x)[0], first)
    assert all(s is not None and s > 0 for s in layer._runtime.forward_choice.seconds.values())


def test_batches_and_one_thread_leave_no_choice(restore_threads):
    layer = fastrnn.LSTM(32, 64, seed=0)
    _threads.set_num_threads(2)
    layer(np.ones((100, 3, 32), np.float32))         # B > 1: split by rows, no choice
    _threads.set_num_threads(1)
    layer(np.ones((100, 1, 32), np.float32))         # one thread: nothing to choose
    assert layer._runtime.forward_choice.calls == 0


def test_the_choice_sets_the_threads_of_the_call(restore_threads):
    _threads.set_num_threads(2)
    layer = fastrnn.LSTM(32, 64, seed=0)
    assert layer._threads(100, 1, 32) == 2
    layer._runtime.forward_way = False
    assert layer._threads(100, 1, 32) == 1
    assert layer._threads(100, 4, 32) == 2         # batches are split by rows regardless


def test_lstm_backward_times_both_ways_with_equal_results(restore_threads):
    _threads.set_num_threads(2)
    layer = fastrnn.LSTM(32, 64, seed=0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((100, 1, 32)).astype(np.float32)
    dy = rng.standard_normal((100, 1, 64)).astype(np.float32)
    y, _, cache = layer.forward(x)
    first = None
    for _ in range(EXPLORE_EVERY + 2):
        layer.zero_grad()
        dx, _ = layer.backward(dy, cache)
        result = [dx] + [layer.grads[k].copy() for k in sorted(layer.grads)]
        first = result if first is None else first
        for a, b in zip(result, first):
            np.testing.assert_array_equal(a, b)
    assert all(s is not None and s > 0 for s in layer._runtime.backward_choice.seconds.values())
    gru = fastrnn.GRU(32, 80, seed=0)          # its backward loop is never split: no choice
    y, _, cache = gru.forward(x)
    gru.backward(np.ones_like(y), cache)
    assert gru._runtime.backward_choice.calls == 0
