"""fastrnn.sample: frequencies against softmax(logits / T) (chi-square), top-k, top-p, seeds."""

import numpy as np
import pytest

import fastrnn

stats = pytest.importorskip("scipy.stats")

N_DRAWS = 40_000


def _softmax(z):
    z = np.asarray(z, np.float64)
    e = np.exp(z - z.max())
    return e / e.sum()


def _counts(logits, n=N_DRAWS, seed=0, **kw):
    """Token counts of n draws from one distribution (one 2-D call with n equal rows)."""
    batch = np.tile(np.asarray(logits, np.float64), (n, 1))
    tokens = fastrnn.sample(batch, rng=seed, **kw)
    assert tokens.shape == (n,)
    return np.bincount(tokens, minlength=len(logits))


def _chi2_pvalue(counts, probs):
    keep = probs > 0
    assert counts[~keep].sum() == 0, "a token of probability zero was drawn"
    if keep.sum() == 1:
        return 1.0
    expected = probs[keep] * counts.sum()
    return stats.chisquare(counts[keep], expected).pvalue


LOGITS = np.array([1.2, -0.3, 0.0, 2.1, -1.5, 0.7])


@pytest.mark.parametrize("temperature", [1.0, 0.5, 2.5])
def test_frequencies_match_softmax_over_temperature(temperature):
    counts = _counts(LOGITS, temperature=temperature, seed=11)
    assert _chi2_pvalue(counts, _softmax(LOGITS / temperature)) > 1e-3


def test_the_chi_square_check_has_power():
    # draws at T = 0.5 are clearly not softmax(logits): the check above can fail
    counts = _counts(LOGITS, temperature=0.5, seed=11)
    assert _chi2_pvalue(counts, _softmax(LOGITS)) < 1e-12


def test_one_dimensional_calls_follow_the_same_distribution():
    gen = np.random.default_rng(5)
    draws = [fastrnn.sample(LOGITS, rng=gen) for _ in range(6000)]
    assert all(type(d) is int for d in draws)
    counts = np.bincount(draws, minlength=len(LOGITS))
    assert _chi2_pvalue(counts, _softmax(LOGITS)) > 1e-3


def test_low_temperature_approaches_argmax_and_zero_is_argmax():
    z = [1.0, 1.05, 0.2, -3.0]
    assert _counts(z, n=2000, temperature=1e-3)[1] == 2000
    assert fastrnn.sample(z, temperature=0) == 1
    assert fastrnn.sample([2.0, 5.0, 5.0], temperature=0) == 1      # ties: the lower index
    # between T = 1 and T -> 0 the argmax becomes more frequent
    fr = [_counts(z, n=4000, temperature=t)[1] / 4000 for t in (1.0, 0.3, 0.05)]
    assert fr[0] < fr[1] < fr[2]


@pytest.mark.parametrize("k", [1, 2, 4])
def test_top_k_keeps_only_the_k_largest_with_renormalised_frequencies(k):
    z = np.array([0.1, 2.0, -1.0, 1.5, 0.9, 3.0, -0.2])
    allowed = np.argsort(-z)[:k]
    counts = _counts(z, top_k=k, seed=k)
    outside = np.setdiff1d(np.arange(len(z)), allowed)
    assert counts[outside].sum() == 0
    probs = np.zeros(len(z))
    probs[allowed] = _softmax(z[allowed])
    assert _chi2_pvalue(counts, probs) > 1e-3


def test_top_k_ties_break_towards_the_lower_index_and_large_k_is_no_op():
    counts = _counts([1.0, 0.0, 1.0, 1.0], n=3000, top_k=2)     # keeps tokens 0 and 2
    assert counts[1] == counts[3] == 0 and counts[0] > 0 and counts[2] > 0
    z = [0.3, -0.1, 0.8]
    np.testing.assert_array_equal(_counts(z, top_k=10, seed=3), _counts(z, seed=3))


@pytest.mark.parametrize("p, allowed", [(0.4, [0]), (0.5, [0]), (0.75, [0, 1]),
                                        (0.76, [0, 1, 2]), (1.0, [0, 1, 2, 3])])
def test_top_p_keeps_the_smallest_set_reaching_p(p, allowed):
    # probabilities 1/2, 1/4, 1/8, 1/8 (exact in binary), given in a shuffled order
    probs = np.array([0.125, 0.5, 0.125, 0.25])
    order = [1, 3, 0, 2]                     # tokens by decreasing probability (ties: lower id)
    z = np.log(probs)
    counts = _counts(z, top_p=p, seed=17)
    kept = [order[i] for i in allowed]
    outside = np.setdiff1d(np.arange(4), kept)
    assert counts[outside].sum() == 0
    assert (counts[kept] > 0).all()
    expected = np.zeros(4)
    expected[kept] = probs[kept] / probs[kept].sum()
    assert _chi2_pvalue(counts, expected) > 1e-3


def test_top_k_then_top_p():
    z = np.log(np.array([0.4, 0.3, 0.2, 0.1]))
    # top_k=3 renormalises to 4/9, 3/9, 2/9; top_p=0.6 then keeps {0, 1} (4/9 < 0.6 <= 7/9)
    counts = _counts(z, top_k=3, top_p=0.6, seed=2)
    assert counts[2:].sum() == 0 and (counts[:2] > 0).all()


def test_neg_inf_logits_are_never_drawn():
    z = [-np.inf, 0.0, -np.inf, 1.0]
    counts = _counts(z, n=5000)
    assert counts[0] == counts[2] == 0
    assert _chi2_pvalue(counts, _softmax(z)) > 1e-3


def test_numerically_safe_for_huge_logits():
    z = np.array([1e308, 1e308 - 1e292, -1e308])
    with np.errstate(all="raise"):
        counts = _counts(z, n=2000, temperature=1e-300)
        assert counts[0] == 2000
        counts = _counts([1000.0, 1000.0 + np.log(3.0), -1000.0], n=8000, seed=4)
    assert counts[2] == 0
    assert _chi2_pvalue(counts, np.array([0.25, 0.75, 0.0])) > 1e-3


def test_batch_rows_are_independent_distributions():
    z = np.full((300, 5), -30.0)
    targets = np.arange(300) % 5
    z[np.arange(300), targets] = 30.0
    out = fastrnn.sample(z, rng=0)
    assert isinstance(out, np.ndarray) and out.shape == (300,)
    assert np.issubdtype(out.dtype, np.integer)
    np.testing.assert_array_equal(out, targets)


def test_determinism_under_a_seed_and_generators_advance():
    z = np.random.default_rng(0).standard_normal((50, 8))
    a = fastrnn.sample(z, rng=123, top_k=5, top_p=0.9, temperature=0.8)
    b = fastrnn.sample(z, rng=123, top_k=5, top_p=0.9, temperature=0.8)
    np.testing.assert_array_equal(a, b)
    c = fastrnn.sample(z, rng=np.random.default_rng(123), top_k=5, top_p=0.9, temperature=0.8)
    np.testing.assert_array_equal(a, c)
    gen = np.random.default_rng(9)
    first, second = fastrnn.sample(z, rng=gen), fastrnn.sample(z, rng=gen)
    assert (first != second).any()


def test_inputs_are_not_modified():
    z = np.array([[1.0, 2.0, 3.0]])
    z.flags.writeable = False
    fastrnn.sample(z, temperature=0.5, top_k=2, top_p=0.9, rng=0)
    np.testing.assert_array_equal(z, [[1.0, 2.0, 3.0]])


@pytest.mark.parametrize("kwargs, exc, name", [
    (dict(temperature=-1.0), ValueError, "temperature"),
    (dict(temperature=float("nan")), ValueError, "temperature"),
    (dict(temperature="hot"), TypeError, "temperature"),
    (dict(top_k=0), ValueError, "top_k"),
    (dict(top_k=1.5), TypeError, "top_k"),
    (dict(top_p=0.0), ValueError, "top_p"),
    (dict(top_p=1.5), ValueError, "top_p"),
    (dict(rng="seed"), TypeError, "rng"),
])
def test_bad_arguments(kwargs, exc, name):
    with pytest.raises(exc, match=name):
        fastrnn.sample([0.0, 1.0], **kwargs)


@pytest.mark.parametrize("logits", [np.zeros((2, 2, 2)), np.zeros(0), [0.0, np.nan],
                                    [0.0, np.inf], [-np.inf, -np.inf], ["a", "b"]])
def test_bad_logits(logits):
    with pytest.raises((ValueError, TypeError), match="logits"):
        fastrnn.sample(logits)


@pytest.mark.parametrize("V, temperature", [(1, 1.0), (6, 0.7), (54, 1.0), (300, 2.0)])
def test_single_rows_draw_by_the_inverse_cdf_of_the_same_uniforms(V, temperature):
    # the bisection path of a 1-D call against the rule in NumPy: the first token
    # whose cumulative weight exceeds u * total, u the generator's next uniform
    logits = np.random.default_rng(V).standard_normal(V) * 3
    gen, ref = np.random.default_rng(1), np.random.default_rng(1)
    w = np.exp((logits - logits.max()) / temperature)
    cum = np.cumsum(w)
    for _ in range(200):
        expected = int(np.argmax(cum > ref.random() * cum[-1]))
        assert fastrnn.sample(logits, temperature=temperature, rng=gen) == expected


def test_a_uniform_rounding_up_to_the_total_draws_the_last_possible_token():
    from fastrnn.training.sampling import _draw

    class Top:               # a generator whose uniform number rounds up to 1
        def random(self, n):
            return np.ones(n)

    weights = np.array([[1.0, 2.0, 0.0, 0.0], [0.5, 0.0, 3.0, 0.0]])
    assert _draw(weights[:1], Top()).tolist() == [1]
    assert _draw(weights, Top()).tolist() == [1, 2]
