"""Variable-length batches: layer(x, lengths=...) and forward/backward with lengths.

Two independent oracles:

- fastrnn.reference run on each sequence alone, cut to its own length (always);
- torch.nn on pack_padded_sequence(x, lengths, enforce_sorted=False) (when torch
  is installed), with autograd for the gradients.

Expected semantics: y is zero past each sequence's end, each final state is taken
at the sequence's own last step, the reverse direction starts at that step, and
nothing past the end (dy there included) reaches any gradient.
"""

import numpy as np
import pytest

from fastrnn.layers import base as _base
from fastrnn.kernels import threads as _threads
from conftest import (CELLS, DTYPES, as_parts, assert_close, cell_of, make_layer, map_state,
                      reference_run, rng_for, seed_for, tol)

D, H = 5, 6

# lengths patterns: unsorted with ties, already sorted, all full but one, all 1
CONFIGS = [
    dict(T=5, lengths=[3, 5, 1, 5], L=1, bidir=False, bf=False, bias=True, s0=True),
    dict(T=5, lengths=[2, 5, 4], L=2, bidir=True, bf=True, bias=True, s0=True),
    dict(T=4, lengths=[4, 3, 3, 1], L=1, bidir=True, bf=False, bias=False, s0=False),
    dict(T=6, lengths=[6, 6, 2, 6, 6], L=3, bidir=True, bf=False, bias=True, s0=True),
    dict(T=3, lengths=[1, 1], L=2, bidir=False, bf=True, bias=True, s0=True),
    dict(T=4, lengths=[1, 4], L=1, bidir=True, bf=False, bias=True, s0=True),
    dict(T=5, lengths=[2, 5, 3], L=2, bidir=False, bf=False, bias=True, s0=True, rev=True),
]


def config_id(c):
    return (f"T{c['T']}-len{''.join(map(str, c['lengths']))}-L{c['L']}"
            f"-{'bi' if c['bidir'] else 'uni'}-{'bf' if c['bf'] else 'tm'}"
            f"-{'bias' if c['bias'] else 'nobias'}-{'s0' if c['s0'] else 'nos0'}"
            + ("-reverse" if c.get("rev") else ""))


def batch_axis(layer):
    return 0 if layer.batch_first else 1


def take(a, b, layer, T=None):
    """Sequence b of a batched (T, B, F) / (B, T, F) array, as a batch of 1, cut to T steps."""
    ax = batch_axis(layer)
    one = np.take(a, [b], axis=ax)
    if T is not None:
        one = one[:, :T] if layer.batch_first else one[:T]
    return one


def state_take(s, b):
    return map_state(lambda a: a[:, b:b + 1], s)


def per_sequence_reference(layer, x, lengths, state0, dy, dstate_n):
    """The reference run on each sequence alone, assembled into padded batch results."""
    B = len(lengths)
    ax = batch_axis(layer)
    dirs = 2 if layer.bidirectional else 1
    y = np.zeros(np.shape(dy))
    dx = np.zeros(np.shape(x))
    sn_parts = [np.zeros((layer.num_layers * dirs, B, layer.hidden_size)) for _ in as_parts(dstate_n)]
    ds0_parts = [np.zeros_like(p) for p in sn_parts]
    grads = {k: np.zeros(v.shape) for k, v in layer.params.items()}
    for b, L in enumerate(lengths):
        ref = reference_run(layer, take(x, b, layer, L), state_take(state0, b),
                            take(dy, b, layer, L), state_take(dstate_n, b))
        index = (slice(b, b + 1), slice(0, L)) if ax == 0 else (slice(0, L), slice(b, b + 1))
        y[index] = ref["y"]
        dx[index] = ref["dx"]
        for whole, part in zip(sn_parts, as_parts(ref["state_n"])):
            whole[:, b:b + 1] = part
        for whole, part in zip(ds0_parts, as_parts(ref["dstate0"])):
            whole[:, b:b + 1] = part
        for k, g in ref["grads"].items():
            grads[k] += g
    pack = (lambda parts: tuple(parts)) if cell_of(layer) == "lstm" else (lambda p: p[0])
    return dict(y=y, state_n=pack(sn_parts), dx=dx, dstate0=pack(ds0_parts), grads=grads)


def random_case(cell, dtype, cfg, key, **variant):
    rng = rng_for(*key)
    layer = make_layer(cell, D, H, cfg["L"], bias=cfg["bias"], batch_first=cfg["bf"],
                       bidirectional=cfg["bidir"], reverse=cfg.get("rev", False), dtype=dtype,
                       seed=seed_for(*key), **variant)
    T, B = cfg["T"], len(cfg["lengths"])
    dirs = 2 if cfg["bidir"] else 1
    shape = (B, T) if cfg["bf"] else (T, B)
    x = rng.standard_normal(shape + (D,)).astype(dtype)
    dy = rng.standard_normal(shape + (dirs * H,)).astype(dtype)
    sshape = (cfg["L"] * dirs, B, H)
    parts = 2 if cell == "lstm" else 1

    def state():
        s = tuple(rng.standard_normal(sshape).astype(dtype) for _ in range(parts))
        return s if parts == 2 else s[0]

    state0 = state() if cfg["s0"] else None
    return layer, x, np.array(cfg["lengths"]), state0, dy, state()


def zeros_like_state(s_like):
    return map_state(np.zeros_like, s_like)


def check_against(layer, x, lengths, state0, dy, dstate_n, expected, dtype):
    y, state_n = layer(x, state0, lengths=lengths)
    assert_close(y, expected["y"], dtype, "call y")
    assert_close(state_n, expected["state_n"], dtype, "call state_n")
    layer.zero_grad()
    y, state_n, cache = layer.forward(x, state0, lengths=lengths)
    assert_close(y, expected["y"], dtype, "forward y")
    assert_close(state_n, expected["state_n"], dtype, "forward state_n")
    dx, dstate0 = layer.backward(dy, cache, dstate_n)
    assert_close(dx, expected["dx"], dtype, "dx")
    if "dstate0" in expected:
        assert_close(dstate0, expected["dstate0"], dtype, "dstate0")
    for k, g in expected["grads"].items():
        assert_close(layer.grads[k], g, dtype, f"grad {k}")


@pytest.mark.parametrize("cfg", CONFIGS, ids=config_id)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell", CELLS)
def test_matches_reference_per_sequence(cell, dtype, cfg):
    key = ("lengths-ref", cell, np.dtype(dtype).name, config_id(cfg))
    layer, x, lengths, state0, dy, dstate_n = random_case(cell, dtype, cfg, key)
    ref_state0 = state0 if state0 is not None else zeros_like_state(dstate_n)
    expected = per_sequence_reference(layer, x, lengths, ref_state0, dy, dstate_n)
    check_against(layer, x, lengths, state0, dy, dstate_n, expected, dtype)


@pytest.mark.parametrize("cfg", CONFIGS, ids=config_id)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell, variant", [("gru", dict(reset_after=False)),
                                           ("lstm", dict(peephole=True))],
                         ids=["gru-reset-before", "lstm-peephole"])
def test_variants_match_reference_per_sequence(cell, variant, dtype, cfg):
    key = ("lengths-variant", cell, np.dtype(dtype).name, config_id(cfg))
    layer, x, lengths, state0, dy, dstate_n = random_case(cell, dtype, cfg, key, **variant)
    ref_state0 = state0 if state0 is not None else zeros_like_state(dstate_n)
    expected = per_sequence_reference(layer, x, lengths, ref_state0, dy, dstate_n)
    check_against(layer, x, lengths, state0, dy, dstate_n, expected, dtype)


@pytest.mark.parametrize("cfg", [c for c in CONFIGS if not c.get("rev")],  # torch: no reverse-only
                         ids=config_id)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell", CELLS)
def test_matches_torch_packed_sequence(cell, dtype, cfg):
    torch = pytest.importorskip("torch")
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
    from test_torch_parity import torch_module

    key = ("lengths-torch", cell, np.dtype(dtype).name, config_id(cfg))
    layer, x, lengths, state0, dy, dstate_n = random_case(cell, dtype, cfg, key)
    mod = torch_module(layer)
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    s0 = tuple(torch.from_numpy(a.copy()).requires_grad_(True)
               for a in as_parts(state0 if state0 is not None else zeros_like_state(dstate_n)))
    packed = pack_padded_sequence(xt, torch.from_numpy(lengths), batch_first=layer.batch_first,
                                  enforce_sorted=False)
    with torch.enable_grad():
        out, sn = mod(packed, s0 if cell == "lstm" else s0[0])
        yt, _ = pad_packed_sequence(out, batch_first=layer.batch_first, total_length=cfg["T"])
        sn = sn if cell == "lstm" else (sn,)
        loss = (yt * torch.from_numpy(dy)).sum()
        for a, d in zip(sn, as_parts(dstate_n)):
            loss = loss + (a * torch.from_numpy(d)).sum()
        mod.zero_grad()
        loss.backward()
    single = (lambda parts: parts) if cell == "lstm" else (lambda parts: parts[0])
    expected = dict(y=yt.detach().numpy(), state_n=single(tuple(a.detach().numpy() for a in sn)),
                    dx=xt.grad.numpy(),
                    grads={k: p.grad.numpy() for k, p in mod.named_parameters()})
    # torch gives no gradient to a zero state0 it was not asked for
    if state0 is not None:
        expected["dstate0"] = single(tuple(a.grad.numpy() for a in s0))
    check_against(layer, x, lengths, state0, dy, dstate_n, expected, dtype)


SPLIT_CASES = {
    # the batch split (B = 7, the threads sharing each chunk's projection; B = 19, each
    # projecting its own rows) and a single sequence split by hidden units
    "rows": [(7, [30, 7, 41, 41, 1, 12, 40], 36),
             (19, [3, 41, 17, 41, 1, 29, 40, 8, 41, 12, 33, 2, 41, 26, 5, 38, 19, 41, 9], 20),
             (1, [23], 128)],
    # batches shared by hidden units (forced), with rows that end, and in reverse start,
    # at every kind of step: at the last, after one step, together
    "units": [(5, [41, 41, 17, 2, 1], 32), (3, [41, 41, 41], 48), (2, [1, 1], 16)],
}


@pytest.mark.parametrize("split", sorted(SPLIT_CASES))
@pytest.mark.parametrize("cell, variant", [(c, {}) for c in CELLS]
                         + [("gru", dict(reset_after=False)), ("lstm", dict(peephole=True))])
def test_threads_and_unit_split_with_lengths(cell, variant, split, monkeypatch):
    """On 1 and 2 threads (threaded whatever the size), each way of splitting a time
    loop (SPLIT_CASES), against the reference per sequence, and bitwise equal across
    thread counts."""
    monkeypatch.setattr(_base, "_THREADED_MIN_FLOPS", 0)
    if split == "units":
        monkeypatch.setattr(_base, "units_rows", lambda cell, B, *args, **kwargs: B)
    previous = _threads.get_num_threads()
    try:
        for B, lengths, Hb in SPLIT_CASES[split]:
            T, Db = 41, 24
            layer = make_layer(cell, Db, Hb, 1, bidirectional=True, dtype=np.float64, seed=B,
                               **variant)
            rng = np.random.default_rng(B)
            x = rng.standard_normal((T, B, Db))
            dy = rng.standard_normal((T, B, 2 * Hb))
            parts = 2 if cell == "lstm" else 1
            s0 = tuple(rng.standard_normal((2, B, Hb)) for _ in range(parts))
            dsn = tuple(rng.standard_normal((2, B, Hb)) for _ in range(parts))
            s0, dsn = (s0, dsn) if parts == 2 else (s0[0], dsn[0])
            runs = []
            for n in (1, 2):
                _threads.set_num_threads(n)
                layer.zero_grad()
                y, sn, cache = layer.forward(x, s0, lengths=lengths)
                dx, ds0 = layer.backward(dy, cache, dsn)
                y_call, _ = layer(x, s0, lengths=lengths)
                runs.append([y, y_call, dx] + list(as_parts(sn)) + list(as_parts(ds0))
                            + [layer.grads[k].copy() for k in sorted(layer.grads)])
            for a, b in zip(*runs):
                np.testing.assert_array_equal(a, b)
            ref = per_sequence_reference(layer, x, np.array(lengths), s0, dy, dsn)
            np.testing.assert_allclose(runs[0][0], ref["y"], **tol(np.float64))
            np.testing.assert_allclose(runs[0][2], ref["dx"], **tol(np.float64))
            for k, g in ref["grads"].items():
                np.testing.assert_allclose(layer.grads[k], g, **tol(np.float64), err_msg=k)
    finally:
        _threads.set_num_threads(previous)


@pytest.mark.parametrize("cell", CELLS)
def test_full_lengths_equal_no_lengths_and_order_is_kept(cell):
    rng = np.random.default_rng(5)
    layer = make_layer(cell, D, H, 2, bidirectional=True, seed=1)
    x = rng.standard_normal((4, 3, D)).astype(np.float32)
    y0, s0 = layer(x)
    y1, s1 = layer(x, lengths=[4, 4, 4])
    np.testing.assert_array_equal(y0, y1)
    for a, b in zip(as_parts(s0), as_parts(s1)):
        np.testing.assert_array_equal(a, b)
    # a permuted batch gives the permuted results
    lengths = np.array([2, 4, 3])
    perm = np.array([2, 0, 1])
    y, s = layer(x, lengths=lengths)
    yp, sp = layer(x[:, perm], lengths=lengths[perm])
    np.testing.assert_allclose(yp, y[:, perm], **tol(np.float32))
    for a, b in zip(as_parts(sp), as_parts(s)):
        np.testing.assert_allclose(a, b[:, perm], **tol(np.float32))


@pytest.mark.parametrize("cell, variant", [("lstm", dict(peephole=True)), ("lstm", {}),
                                           ("gru", dict(reset_after=False)), ("rnn_relu", {})])
def test_padding_values_are_ignored(cell, variant):
    """Whatever sits past a sequence's end (even nan) changes no result."""
    rng = np.random.default_rng(6)
    layer = make_layer(cell, D, H, 2, bidirectional=True, dtype=np.float64, seed=2, **variant)
    x = rng.standard_normal((5, 3, D))
    dy = rng.standard_normal((5, 3, 2 * H))
    lengths = [5, 2, 3]
    dirty, dirty_dy = x.copy(), dy.copy()
    for b, L in enumerate(lengths):
        dirty[L:, b] = np.nan
        dirty_dy[L:, b] = 1e30
    results = []
    for xi, dyi in ((x, dy), (dirty, dirty_dy)):
        layer.zero_grad()
        y, sn, cache = layer.forward(xi, lengths=lengths)
        dx, ds0 = layer.backward(dyi, cache)
        results.append([y, dx, *as_parts(sn), *as_parts(ds0)]
                       + [layer.grads[k].copy() for k in sorted(layer.grads)])
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)
    assert np.all(results[0][0][2:, 1] == 0) and np.all(results[0][1][2:, 1] == 0)


def test_inputs_are_not_modified():
    rng = np.random.default_rng(7)
    layer = make_layer("gru", D, H, 1, bidirectional=True, seed=3)
    x = rng.standard_normal((4, 3, D)).astype(np.float32)
    h0 = rng.standard_normal((2, 3, H)).astype(np.float32)
    lengths = np.array([1, 4, 2])
    saved = [a.copy() for a in (x, h0, lengths)]
    layer(x, h0, lengths=lengths)
    y, hn, cache = layer.forward(x, h0, lengths=lengths)
    layer.backward(np.ones_like(y), cache)
    for a, b in zip((x, h0, lengths), saved):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("lengths, error, match", [
    ([3, 4], ValueError, r"lengths: expected shape \(3,\)"),
    ([[1, 2, 3]], ValueError, r"lengths: expected shape \(3,\)"),
    ([0, 2, 3], ValueError, r"lengths: each length must be in 1\.\.T = 1\.\.4"),
    ([1, 5, 3], ValueError, r"lengths: each length must be in 1\.\.T = 1\.\.4"),
    ([-1, 2, 3], ValueError, r"lengths: each length must be in"),
    ([1.0, 2.0, 3.0], TypeError, r"lengths: expected integers"),
    ([True, True, False], TypeError, r"lengths: expected integers"),
    ("abc", TypeError, r"lengths: expected integers"),
])
def test_bad_lengths(lengths, error, match):
    layer = make_layer("lstm", D, H, 1, seed=0)
    x = np.zeros((4, 3, D), np.float32)
    with pytest.raises(error, match=match):
        layer(x, lengths=lengths)
    with pytest.raises(error, match=match):
        layer.forward(x, lengths=lengths)


def test_lengths_need_a_batch():
    layer = make_layer("rnn_tanh", D, H, 1, seed=0)
    with pytest.raises(ValueError, match="lengths: needs a batched input"):
        layer(np.zeros((4, D), np.float32), lengths=[4])


def test_empty_batch_with_lengths():
    layer = make_layer("gru", D, H, 2, bidirectional=True, seed=0)
    y, h = layer(np.zeros((3, 0, D), np.float32), lengths=np.zeros(0, int))
    assert y.shape == (3, 0, 2 * H) and h.shape == (4, 0, H)


@pytest.mark.parametrize("cell, variant", [(c, {}) for c in CELLS]
                         + [("gru", dict(reset_after=False)), ("lstm", dict(peephole=True))])
def test_in_chunks_of_steps(cell, variant, monkeypatch):
    """Inference and training forward project the input a few steps at a time (bounded
    memory, gates found in cache); with lengths the chunks must still line up with each
    row's steps, both directions, and training's saved gates must all be there for
    backward."""
    monkeypatch.setattr(_base, "_CHUNK_ELEMENTS", 100)    # a chunk of 1 or 2 steps
    cfg = dict(T=7, lengths=[7, 3, 5, 1], L=2, bidir=True, bf=False, bias=True, s0=True)
    key = ("lengths-chunks", variant_id_of(cell, variant))
    layer, x, lengths, state0, dy, dstate_n = random_case(cell, np.float64, cfg, key, **variant)
    expected = per_sequence_reference(layer, x, lengths, state0, dy, dstate_n)
    check_against(layer, x, lengths, state0, dy, dstate_n, expected, np.float64)


def variant_id_of(cell, variant):
    return cell + "".join(f"-{k}={v}" for k, v in variant.items())
