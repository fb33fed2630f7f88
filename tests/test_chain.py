"""fastrnn.Chain: the same numbers as the layers run by hand, names and arrays shared."""

import numpy as np
import pytest

import fastrnn


def layers(seed=0):
    return [fastrnn.Embedding(20, 6, dtype=np.float64, seed=seed),
            fastrnn.LSTM(6, 7, dtype=np.float64, seed=seed + 1),
            fastrnn.GRU(7, 5, dtype=np.float64, seed=seed + 2),
            fastrnn.Linear(5, 20, dtype=np.float64, seed=seed + 3)]


def test_forward_backward_match_the_layers_by_hand():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 20, size=(4, 3))
    dy = rng.standard_normal((4, 3, 20))
    emb, lstm, gru, lin = layers()
    e, ce = emb.forward(x)
    h1, s1, c1 = lstm.forward(e)
    h2, s2, c2 = gru.forward(h1)
    y, cl = lin.forward(h2)
    d = lin.backward(dy, cl)
    d = gru.backward(d, c2)[0]
    d = lstm.backward(d, c1)[0]
    emb.backward(d, ce)
    net = fastrnn.Chain(*layers())
    y2, states, cache = net.forward(x)
    assert net.backward(dy, cache) is None           # an Embedding has no input gradient
    np.testing.assert_array_equal(y2, y)
    np.testing.assert_array_equal(states[0][0], s1[0])
    np.testing.assert_array_equal(states[1], s2)
    for i, layer in enumerate((emb, lstm, gru, lin)):
        for k, g in layer.grads.items():
            np.testing.assert_array_equal(net.grads[f"{i}.{k}"], g)
    y3, states3 = net(x)
    np.testing.assert_allclose(y3, y, rtol=1e-12)
    # the states carry over: a second window from the first one's states
    y4, _ = net(x, states3)
    y5, _, _ = lstm.forward(e, s1)
    assert not np.allclose(y4, y3)


def test_params_are_the_layers_arrays_and_optimizers_take_a_chain():
    net = fastrnn.Chain(*layers())
    assert net.params["3.weight"] is net.layers[3].params["weight"]
    for g in net.grads.values():
        g[...] = 1.0
    before = {k: v.copy() for k, v in net.params.items()}
    fastrnn.SGD(net, lr=0.5).step()
    for k, v in net.params.items():
        np.testing.assert_allclose(v, before[k] - 0.5)
    net.zero_grad()
    assert not any(g.any() for g in net.grads.values())
    other = fastrnn.Chain(*layers(seed=9))
    other.load_state_dict(net.state_dict())
    for k, v in net.params.items():
        np.testing.assert_array_equal(other.params[k], v)


def test_bad_arguments():
    with pytest.raises(ValueError, match="layers"):
        fastrnn.Chain()
    with pytest.raises(TypeError, match="layers"):
        fastrnn.Chain(fastrnn.Linear(2, 2), object())
    net = fastrnn.Chain(*layers())
    with pytest.raises(ValueError, match="states"):
        net(np.zeros((2, 2), np.int64), [None])
