"""The character-level language model (fastrnn.apps.charlm) and ``python -m fastrnn charlm``."""

import math
import re
import subprocess
import sys

import numpy as np
import pytest

import fastrnn
from fastrnn.apps import charlm


@pytest.fixture(scope="module")
def lines():
    return charlm.load_corpus()


@pytest.fixture(scope="module")
def trained(lines):
    """A small LSTM model trained for a few hundred steps on the bundled corpus."""
    model = charlm.CharLM(sorted(set("".join(lines))), hidden_size=48, embedding_dim=16, seed=0)
    result = charlm.train(model, lines, steps=300, batch_size=32, lr=1e-2, seed=0)
    return model, result


def test_bundled_corpus(lines):
    assert 300 <= len(lines) <= 2000
    assert len(set(lines)) == len(lines)
    assert all(re.fullmatch(r"[A-Z][a-z]+", line) for line in lines)
    for name in ("Tyrannosaurus", "Triceratops", "Velociraptor", "Stegosaurus", "Iguanodon"):
        assert name in lines
    assert charlm.default_corpus_path().is_file()


def test_training_drops_the_loss_well_below_uniform(trained, lines):
    model, result = trained
    uniform = math.log(model.vocab_size)
    assert model.vocab_size == len(set("".join(lines))) + 1
    assert result["steps"] == 300 and result["chars"] > 300 * 32 * 5
    assert result["chars_per_s"] > 0 and result["seconds"] > 0
    assert abs(result["first_loss"] - uniform) < 0.3       # starts near uniform
    assert result["running_loss"] < 0.65 * uniform
    assert model.evaluate(lines) < 0.6 * uniform


def test_sampling_is_reproducible_by_seed(trained):
    model, _ = trained
    a = model.sample(8, rng=5)
    assert a == model.sample(8, rng=5)
    assert a != model.sample(8, rng=6)
    assert all(set(line) <= set(model.chars[1:]) for line in a)
    assert all(0 < len(line) <= 40 for line in a)
    pre = model.sample(4, prefix="Tyr", temperature=0.5, top_k=5, rng=1)
    assert all(line.startswith("Tyr") for line in pre)
    with pytest.raises(ValueError, match="prefix"):
        model.sample(1, prefix="T#x")


def test_beam_width_one_is_greedy_and_scores_are_sorted(trained):
    model, _ = trained
    greedy = fastrnn.greedy_decode(model.step, None, 0, max_len=40, end_token=0)
    text = model.decode([t for t in greedy if t != 0])
    assert model.beam(1)[0][0] == text
    results = model.beam(4, prefix="S")
    assert len(results) == 4 and all(line.startswith("S") for line, _ in results)
    scores = [s for _, s in results]
    assert scores == sorted(scores, reverse=True) and all(s < 0 for s in scores)


def test_save_and_load_round_trip(trained, lines, tmp_path):
    model, _ = trained
    path = tmp_path / "model.npz"
    model.save(path)
    with np.load(path, allow_pickle=False) as data:          # no object arrays inside
        assert all(data[k].dtype != object for k in data.files)
    loaded = charlm.CharLM.load(path)
    assert loaded.chars == model.chars
    for a, b in zip(model.layers, loaded.layers):
        assert set(a.params) == set(b.params)
        for k in a.params:
            np.testing.assert_array_equal(a.params[k], b.params[k])
    assert loaded.sample(6, rng=3) == model.sample(6, rng=3)
    assert loaded.evaluate(lines[:50]) == pytest.approx(model.evaluate(lines[:50]), rel=1e-12)
    assert not loaded.is_novel(lines[0]) and loaded.is_novel("Qwertysaurus")


def test_load_rejects_foreign_corrupt_and_newer_files(trained, tmp_path):
    model, _ = trained
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, weights=np.zeros(3))
    with pytest.raises(ValueError, match="not a fastrnn charlm"):
        charlm.CharLM.load(foreign)
    good = tmp_path / "good.npz"
    model.save(good)
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[:300])
    with pytest.raises(ValueError):
        charlm.CharLM.load(truncated)
    with np.load(good) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["format_version"] = np.array(99)
    newer = tmp_path / "newer.npz"
    np.savez(newer, **arrays)
    with pytest.raises(ValueError, match="version"):
        charlm.CharLM.load(newer)
    del arrays["rnn.weight_hh_l0"]
    arrays["format_version"] = np.array(1)
    missing = tmp_path / "missing_weight.npz"
    np.savez(missing, **arrays)
    with pytest.raises(ValueError, match="missing_weight.npz: corrupted charlm model"):
        charlm.CharLM.load(missing)
    with pytest.raises(FileNotFoundError):
        charlm.CharLM.load(tmp_path / "missing.npz")


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_reference_backend_trains_the_same_model(lines, cell):
    """The same model, seed and batches with fastrnn.reference kernels: the same path."""
    chars = sorted(set("".join(lines)))
    kw = dict(cell=cell, hidden_size=12, embedding_dim=6, num_layers=2, dropout=0.3,
              dtype=np.float64, seed=4)
    fast, slow = charlm.CharLM(chars, **kw), charlm.CharLM(chars, **kw)
    r_fast = charlm.train(fast, lines, steps=6, batch_size=8, seed=1, backend="fastrnn")
    r_slow = charlm.train(slow, lines, steps=6, batch_size=8, seed=1, backend="reference")
    assert r_fast["chars"] == r_slow["chars"]
    assert r_fast["running_loss"] == pytest.approx(r_slow["running_loss"], rel=1e-9)
    for a, b in zip(fast.layers, slow.layers):
        for k in a.params:
            np.testing.assert_allclose(a.params[k], b.params[k], rtol=1e-8, atol=1e-10)


def test_truncated_bptt_windows_count_as_steps(lines):
    model = charlm.CharLM(sorted(set("".join(lines))), hidden_size=8, embedding_dim=4, seed=0)
    long_lines = [line * 6 for line in lines[:40]]         # ~60-100 characters each
    result = charlm.train(model, long_lines, steps=12, batch_size=8, bptt=16, seed=0)
    assert result["steps"] == 12
    assert result["chars"] <= 12 * 16 * 8


def test_bad_arguments(lines):
    with pytest.raises(ValueError, match="cell"):
        charlm.CharLM("ab", cell="transformer")
    model = charlm.CharLM("ab", hidden_size=4, embedding_dim=2)
    with pytest.raises(ValueError, match="lines"):
        charlm.train(model, ["abc"], steps=1)            # "c" is not in the vocabulary
    with pytest.raises(ValueError, match="backend"):
        charlm.train(model, ["ab"], steps=1, backend="gpu")


def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "fastrnn", "charlm", *args],
                          capture_output=True, text=True, timeout=300, cwd=cwd)


def test_command_line_train_and_sample(tmp_path):
    out = tmp_path / "m.npz"
    proc = _cli("train", "--steps", "60", "--hidden", "16", "--embedding", "8",
                "--sample-every", "30", "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "chars/s" in proc.stdout and "final loss" in proc.stdout
    assert re.search(r"step 30: \S", proc.stdout)
    assert re.search(r"step 60/60\s+loss \d", proc.stderr)        # progress (not a TTY)
    assert out.is_file()
    first = _cli("sample", str(out), "--n", "5", "--seed", "3", cwd=tmp_path)
    again = _cli("sample", str(out), "--n", "5", "--seed", "3", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stdout == again.stdout and len(first.stdout.splitlines()) == 5
    beam = _cli("sample", str(out), "--beam", "3", "--prefix", "A", cwd=tmp_path)
    assert beam.returncode == 0, beam.stderr
    assert all(line.startswith("A") for line in beam.stdout.splitlines())
    ref = _cli("train", "--steps", "3", "--hidden", "8", "--backend", "reference", "--out",
               str(tmp_path / "r.npz"), cwd=tmp_path)
    assert ref.returncode == 0, ref.stderr
    assert "fastrnn.reference" in ref.stdout


def test_command_line_errors(tmp_path):
    missing = _cli("sample", cwd=tmp_path)                # default charlm.npz: not there
    assert missing.returncode == 2 and "charlm train" in missing.stderr
    bad = _cli("train", "--steps", "0", cwd=tmp_path)
    assert bad.returncode == 2 and "--steps" in bad.stderr
