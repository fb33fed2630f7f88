"""fastrnn.greedy_decode and beam_search against exhaustive search, by hand, and with an LSTM."""

import itertools

import numpy as np
import pytest

import fastrnn

END = 0


class SecondOrderChain:
    """A Markov chain whose next token depends on the last two tokens.

    The token before the last one lives in the decoder's state (a tuple of arrays with the
    hypotheses on axis 1), so a decoder that reorders the state wrongly gets wrong scores.
    """

    def __init__(self, V, seed):
        rng = np.random.default_rng(seed)
        self.V = V
        # log p(next | previous-previous, previous); index V means "no token yet"
        self.table = np.log(rng.dirichlet(np.full(V, 0.7), size=(V + 1, V)))
        self.calls = []

    def initial_state(self):
        # (token before last (1, K, 1), a passenger array (2, K, 3) that must follow it)
        return (np.full((1, 1, 1), self.V), np.full((2, 1, 3), float(self.V)))

    def step(self, tokens, state):
        prev2, passenger = state
        K = len(tokens)
        assert tokens.dtype == np.int64 and tokens.shape == (K,)
        assert prev2.shape == (1, K, 1) and passenger.shape == (2, K, 3)
        np.testing.assert_array_equal(passenger[0, :, 0], prev2[0, :, 0])   # moved together
        self.calls.append(K)
        log_probs = self.table[prev2[0, :, 0], tokens]
        new_prev2 = tokens.reshape(1, K, 1).copy()
        new_passenger = np.broadcast_to(tokens[None, :, None], (2, K, 3)).astype(float)
        return log_probs, (new_prev2, new_passenger)

    def log_prob(self, start, seq):
        prev2, prev, total = self.V, start, 0.0
        for tok in seq:
            total += self.table[prev2, prev, tok]
            prev2, prev = prev, tok
        return total


def exhaustive(chain, start, max_len, end_token, length_penalty):
    """Every sequence the decoders can produce, with its score, best first."""
    out = []
    body = [t for t in range(chain.V) if t != end_token]
    for n in range(1, max_len + 1):
        for prefix in itertools.product(body, repeat=n - 1):
            lasts = range(chain.V) if n == max_len else [end_token]
            for last in lasts:
                seq = list(prefix) + [last]
                out.append((seq, chain.log_prob(start, seq) / n ** length_penalty))
    out.sort(key=lambda item: -item[1])
    return out


@pytest.mark.parametrize("length_penalty", [0.0, 0.7, 1.0])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_wide_beam_equals_exhaustive_search(seed, length_penalty):
    chain = SecondOrderChain(4, seed)
    max_len = 4
    truth = exhaustive(chain, 2, max_len, END, length_penalty)
    assert len(truth) == 1 + 3 + 9 + 4 * 27
    got = fastrnn.beam_search(chain.step, chain.initial_state(), 2, beam_width=len(truth),
                              max_len=max_len, end_token=END, length_penalty=length_penalty)
    assert got[0][0] == truth[0][0]
    assert got[0][1] == pytest.approx(truth[0][1], rel=1e-12)
    assert len(got) == len(truth)
    np.testing.assert_allclose([s for _, s in got], [s for _, s in truth], rtol=1e-12)
    assert sorted(map(tuple, (q for q, _ in got))) == sorted(map(tuple, (q for q, _ in truth)))
    assert max(chain.calls) <= len(truth)


def test_narrow_beam_scores_are_true_scores_in_order():
    chain = SecondOrderChain(5, 7)
    got = fastrnn.beam_search(chain.step, chain.initial_state(), 1, beam_width=3, max_len=6,
                              end_token=END, length_penalty=0.5)
    assert 1 <= len(got) <= 3
    scores = [s for _, s in got]
    assert scores == sorted(scores, reverse=True)
    for seq, score in got:
        assert score == pytest.approx(chain.log_prob(1, seq) / len(seq) ** 0.5, rel=1e-12)
        assert END not in seq[:-1] and 1 <= len(seq) <= 6
    assert max(chain.calls) <= 3


def _fixed_chain():
    """From start token 3: "end" at once has log-prob -1.0; token 1 (-0.25), then token 2
    (-0.25), then end (-1.0) makes a 3-token sequence of total -1.5; everything else is
    impossible (-inf) or much worse."""
    V = 4
    table = np.full((V, V), -50.0)
    table[3, END] = -1.0
    table[3, 1] = -0.25
    table[1, 2] = -0.25
    table[2, END] = -1.0

    def step(tokens, state):
        return table[tokens], state
    return step


def test_length_penalty_changes_the_ranking_as_the_formula_says():
    step = _fixed_chain()
    plain = fastrnn.beam_search(step, None, 3, beam_width=2, max_len=3, end_token=END)
    assert [seq for seq, _ in plain] == [[END], [1, 2, END]]
    assert [s for _, s in plain] == pytest.approx([-1.0, -1.5])
    normalised = fastrnn.beam_search(step, None, 3, beam_width=2, max_len=3, end_token=END,
                                     length_penalty=1.0)
    # -1.0 / 1**1 = -1.0 against -1.5 / 3**1 = -0.5: the long one wins now
    assert [seq for seq, _ in normalised] == [[1, 2, END], [END]]
    assert [s for _, s in normalised] == pytest.approx([-0.5, -1.0])
    half = fastrnn.beam_search(step, None, 3, beam_width=2, max_len=3, end_token=END,
                               length_penalty=0.5)
    assert [s for _, s in half] == pytest.approx([-1.5 / np.sqrt(3), -1.0])


def test_greedy_by_hand():
    step = _fixed_chain()
    assert fastrnn.greedy_decode(step, None, 3, max_len=10, end_token=END) == [1, 2, END]
    assert fastrnn.greedy_decode(step, None, 3, max_len=2, end_token=END) == [1, 2]
    # without an end token it runs to max_len: after END (row 0, all -50) comes token 0 again
    assert fastrnn.greedy_decode(step, None, 3, max_len=5) == [1, 2, END, 0, 0]


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("length_penalty", [0.0, 1.0])
def test_beam_width_one_equals_greedy(seed, length_penalty):
    chain = SecondOrderChain(6, 100 + seed)
    greedy = fastrnn.greedy_decode(chain.step, chain.initial_state(), 1, max_len=8,
                                   end_token=END)
    beam = fastrnn.beam_search(chain.step, chain.initial_state(), 1, beam_width=1, max_len=8,
                               end_token=END, length_penalty=length_penalty)
    assert len(beam) == 1
    assert beam[0][0] == greedy
    assert beam[0][1] == pytest.approx(chain.log_prob(1, greedy) / len(greedy) ** length_penalty)


class LSTMModel:
    """Embedding -> 2-layer LSTM -> Linear -> log_softmax, float64."""

    def __init__(self, V=3, seed=0):
        self.emb = fastrnn.Embedding(V, 4, dtype=np.float64, seed=seed)
        self.lstm = fastrnn.LSTM(4, 5, num_layers=2, dtype=np.float64, seed=seed + 1)
        self.head = fastrnn.Linear(5, V, dtype=np.float64, seed=seed + 2)
        self.head.params["weight"] *= 6        # peakier distributions
        self.V = V

    def step(self, tokens, state):
        y, state = self.lstm(self.emb(tokens)[None], state)
        return fastrnn.log_softmax(self.head(y[0])), state

    def log_prob(self, start, seq):
        """Score a whole sequence with one call over it (teacher forcing): an independent path."""
        inputs = np.array([start] + seq[:-1])
        y, _ = self.lstm(self.emb(inputs)[:, None, :])
        lp = fastrnn.log_softmax(self.head(y[:, 0, :]))
        return float(lp[np.arange(len(seq)), seq].sum())


def test_beam_search_with_an_lstm_step_function():
    model = LSTMModel(V=3, seed=4)
    max_len = 4
    # exhaustive truth scored by teacher forcing
    truth = []
    for n in range(1, max_len + 1):
        for prefix in itertools.product([1, 2], repeat=n - 1):
            for last in (range(3) if n == max_len else [END]):
                seq = list(prefix) + [last]
                truth.append((seq, model.log_prob(1, seq)))
    truth.sort(key=lambda item: -item[1])
    got = fastrnn.beam_search(model.step, None, 1, beam_width=len(truth), max_len=max_len,
                              end_token=END)
    assert got[0][0] == truth[0][0]
    np.testing.assert_allclose([s for _, s in got], [s for _, s in truth], rtol=1e-10)
    narrow = fastrnn.beam_search(model.step, None, 1, beam_width=3, max_len=max_len,
                                 end_token=END)
    for seq, score in narrow:
        assert score == pytest.approx(model.log_prob(1, seq), rel=1e-10)
    greedy = fastrnn.greedy_decode(model.step, None, 1, max_len=max_len, end_token=END)
    one = fastrnn.beam_search(model.step, None, 1, beam_width=1, max_len=max_len,
                              end_token=END)
    assert one[0][0] == greedy


def test_state_given_as_an_lstm_state_with_one_hypothesis():
    model = LSTMModel(V=3, seed=9)
    rng = np.random.default_rng(0)
    state = (rng.standard_normal((2, 1, 5)), rng.standard_normal((2, 1, 5)))
    before = (state[0].copy(), state[1].copy())
    got = fastrnn.beam_search(model.step, state, 2, beam_width=4, max_len=3, end_token=END)
    assert 1 <= len(got) <= 4
    np.testing.assert_array_equal(state[0], before[0])        # not modified
    np.testing.assert_array_equal(state[1], before[1])


def test_bad_arguments():
    step = _fixed_chain()
    with pytest.raises(TypeError, match="step"):
        fastrnn.greedy_decode("not callable", None, 0, max_len=3)
    with pytest.raises(ValueError, match="beam_width"):
        fastrnn.beam_search(step, None, 3, beam_width=0, max_len=3)
    with pytest.raises(ValueError, match="max_len"):
        fastrnn.greedy_decode(step, None, 3, max_len=0)
    with pytest.raises(TypeError, match="start_token"):
        fastrnn.beam_search(step, None, 1.5, beam_width=2, max_len=3)
    with pytest.raises(ValueError, match="length_penalty"):
        fastrnn.beam_search(step, None, 3, beam_width=2, max_len=3, length_penalty=np.nan)
    with pytest.raises(ValueError, match="step"):
        fastrnn.greedy_decode(lambda t, s: (np.zeros(4), s), None, 0, max_len=3)
    with pytest.raises(TypeError, match="step"):
        fastrnn.beam_search(lambda t, s: np.zeros((1, 4)), None, 0, beam_width=2, max_len=3)
    with pytest.raises(ValueError, match="NaN"):
        fastrnn.beam_search(lambda t, s: (np.full((len(t), 2), np.nan), s), None, 0,
                            beam_width=2, max_len=3)
