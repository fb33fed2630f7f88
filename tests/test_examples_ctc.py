"""CTC transcription of digit strings (fastrnn.apps.ctcdigits) and ``python -m fastrnn
ctcdigits``: the strings, the quick mode's held-out label error rate, gradients against
finite differences, decoding, saving, errors."""

import contextlib
import io
import re
import sys

import numpy as np
import pytest

pytest.importorskip("sklearn")

from fastrnn.apps import cli, ctcdigits, digits, seqtools  # noqa: E402
from _app_gradcheck import check_train_step  # noqa: E402


def run_cli(*args):
    """(exit code, stdout, stderr) of python -m fastrnn ctcdigits ... run in this process."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(["ctcdigits", *map(str, args)])
        except SystemExit as exc:
            code = exc.code
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    path = tmp_path_factory.mktemp("ctc") / "ctcdigits.npz"
    code, out, err = run_cli("train", "--quick", "--out", path)
    assert code == 0, err
    return path, out


@pytest.mark.parametrize("seed", range(3))
def test_strings_are_the_images_side_by_side(seed):
    # images without an empty column (real digits have some), each told apart by its values
    images = (1 + np.arange(50)[:, None, None] + np.arange(64).reshape(8, 8)) / 200.0
    labels = np.arange(50) % 10
    rng = np.random.default_rng(seed)
    seqs, targets = ctcdigits.make_strings(images, labels, 20, rng, max_digits=5)
    for seq, target in zip(seqs, targets):
        assert 1 <= len(target) <= 5 and seq.shape[1] == 8
        k = len(target)
        assert 8 * k <= len(seq) <= 8 * k + ctcdigits.MAX_GAP * (k + 1)
        # walk the columns: skip the empty gap columns; an image's 8 columns follow
        t, found = 0, []
        while t < len(seq):
            if not seq[t].any():
                t += 1
                continue
            block = seq[t:t + 8]
            match = [i for i in range(50) if np.array_equal(block, images[i].T)]
            assert match, "an 8-column block that is no image"
            found.append(labels[match[0]])
            t += 8
        assert found == target


def test_quick_mode_is_well_below_chance_error(quick):
    path, out = quick
    greedy, beam = map(float, re.search(r"label error rate: ([\d.]+)% greedy, ([\d.]+)% beam",
                                        out).groups())
    # reading nothing scores 100%
    assert greedy <= 50.0 and beam <= 50.0, out
    model = ctcdigits.DigitReader.load(path)
    seqs, targets = ctcdigits.held_out_strings(200, max_digits=3)
    assert ctcdigits.label_error_rate(model, seqs, targets) == pytest.approx(greedy / 100,
                                                                              abs=1e-4)


def test_train_step_gradients_match_finite_differences():
    model = ctcdigits.DigitReader(hidden_size=3, dtype=np.float64, seed=3)
    images, labels = digits.load_images()
    seqs, targets = ctcdigits.make_strings(images, labels, 3, np.random.default_rng(1),
                                           max_digits=2)
    assert check_train_step(model.layers, lambda: model.train_step(seqs, targets)) > 10


def test_decoders_and_command_line_agree(quick):
    path, _ = quick
    model = ctcdigits.DigitReader.load(path)
    seqs, targets = ctcdigits.held_out_strings(8)
    greedy = model.read(seqs)
    lp, lengths = model.log_probs(seqs)
    assert all(0 <= d <= 9 for g in greedy for d in g)
    for n, seq in enumerate(seqs):     # the batch's padding changes nothing
        alone, _ = model.log_probs([seq])
        np.testing.assert_allclose(alone[:, 0], lp[:len(seq), n], atol=1e-4)
    beams = model.read(seqs, beam_width=4)
    assert len(beams) == len(seqs)
    code, out, _ = run_cli("read", path, "--count", 8)
    assert code == 0
    for line, true, got in zip(out.splitlines(), targets, greedy):
        assert f"true {''.join(map(str, true))}" in line
        assert f"read {''.join(map(str, got))}" in line
        assert line.endswith("<- wrong") == (got != true)
    code, out, _ = run_cli("read", path, "--count", 8, "--beam", 4)
    assert code == 0 and all(f"read {''.join(map(str, b))}" in line
                             for line, b in zip(out.splitlines(), beams))


def test_saved_model_reloads_with_the_same_log_probs(quick, tmp_path):
    path, _ = quick
    model = ctcdigits.DigitReader.load(path)
    again = tmp_path / "again.npz"
    model.save(again)
    seqs, _ = ctcdigits.held_out_strings(20)
    np.testing.assert_array_equal(ctcdigits.DigitReader.load(again).log_probs(seqs)[0],
                                  model.log_probs(seqs)[0])


def test_label_error_rate_counts_edits():
    class Fixed:
        def read(self, sequences, beam_width=None):
            return [[1, 2], [3]][:len(sequences)]
    assert ctcdigits.label_error_rate(Fixed(), [None, None], [[1, 2, 3], [3]]) == \
        pytest.approx(seqtools.label_error_rate([[1, 2, 3], [3]], [[1, 2], [3]]))


def test_bad_arguments(tmp_path, monkeypatch):
    for args, message in ((("train", "--steps", "0"), "--steps"),
                          (("train", "--max-digits", "0"), "--max-digits"),
                          (("train", "--beam", "0"), "--beam"),
                          (("train", "--lr", "0"), "--lr"),
                          (("read", "--count", "0"), "--count"),
                          (("read", "--beam", "-1"), "--beam")):
        code, _, err = run_cli(*args)
        assert code == 2 and message in err, (args, err)
    code, _, err = run_cli("read", tmp_path / "none.npz")
    assert code == 2 and "train one first" in err
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    code, _, err = run_cli("train", "--quick", "--out", tmp_path / "x.npz")
    assert code == 2 and "pip install scikit-learn" in err
