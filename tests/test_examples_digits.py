"""The many-to-one digits classifier (fastrnn.apps.digits) and ``python -m fastrnn digits``:
the quick mode's held-out accuracy, gradients against finite differences, saving, errors."""

import contextlib
import io
import re
import sys

import numpy as np
import pytest

pytest.importorskip("sklearn")

from fastrnn.apps import cli, digits  # noqa: E402
from _app_gradcheck import check_train_step  # noqa: E402


def run_cli(*args):
    """(exit code, stdout, stderr) of python -m fastrnn digits ... run in this process."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(["digits", *map(str, args)])
        except SystemExit as exc:
            code = exc.code
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    path = tmp_path_factory.mktemp("digits") / "digits.npz"
    code, out, err = run_cli("train", "--quick", "--out", path)
    assert code == 0, err
    return path, out


def test_data_is_the_bundled_digits_read_row_by_row():
    from sklearn.datasets import load_digits
    images, labels = digits.load_images()
    raw = load_digits()
    assert images.shape == (1797, 8, 8) and np.array_equal(labels, raw.target)
    np.testing.assert_array_equal(images * 16, raw.images)
    xtr, ytr, xho, yho = digits.split(360, seed=0)
    assert len(yho) == 360 and len(ytr) == 1797 - 360
    seq = digits.DigitClassifier._sequences(xho[:5])
    np.testing.assert_array_equal(seq[2, 4], xho[4, 2])       # step t is row t


def test_quick_mode_is_well_above_chance(quick):
    path, out = quick
    held = float(re.search(r"accuracy: ([\d.]+)% held out \(360 images\)", out).group(1))
    assert held >= 80.0, out                                       # chance is 10%
    model = digits.DigitClassifier.load(path)
    *_, xho, yho = digits.split(360, seed=0)
    assert model.accuracy(xho, yho) == pytest.approx(held / 100, abs=1e-4)


def test_saved_model_reloads_with_the_same_predictions(quick, tmp_path):
    path, _ = quick
    model = digits.DigitClassifier.load(path)
    *_, xho, _ = digits.split(360, seed=0)
    again = tmp_path / "again.npz"
    model.save(again)
    np.testing.assert_array_equal(digits.DigitClassifier.load(again).logits(xho),
                                  model.logits(xho))
    code, out, _ = run_cli("evaluate", path)
    assert code == 0
    pred = " ".join(str(p) for p in model.predict(xho)[:20])
    assert f"first predictions: {pred}" in out


@pytest.mark.parametrize("pool", digits.POOLS)
def test_train_step_gradients_match_finite_differences(pool):
    model = digits.DigitClassifier(hidden_size=5, pool=pool, dtype=np.float64, seed=1)
    xtr, ytr, _, _ = digits.split(360, seed=0)
    assert check_train_step(model.layers, lambda: model.train_step(xtr[:6], ytr[:6])) > 10


def test_mean_pooling_learns_too():
    xtr, ytr, xho, yho = digits.split(360, seed=0)
    model = digits.DigitClassifier(pool="mean", seed=0)
    digits.train(model, xtr, ytr, steps=200)
    assert model.accuracy(xho, yho) >= 0.5


def test_bad_arguments(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="pool"):
        digits.DigitClassifier(pool="max")
    with pytest.raises(ValueError, match="images"):
        digits.DigitClassifier().predict(np.zeros((3, 8, 7)))
    for args, message in ((("train", "--steps", "0"), "--steps"),
                          (("train", "--lr", "-1"), "--lr"),
                          (("train", "--pool", "max"), "invalid choice"),
                          (("train", "--held-out", "1797"), "held_out")):
        code, _, err = run_cli(*args, "--out", tmp_path / "x.npz")
        assert code == 2 and message in err, (args, err)
    code, _, err = run_cli("evaluate", tmp_path / "missing.npz")
    assert code == 2 and "train one first" in err
    (tmp_path / "junk.npz").write_bytes(b"junk")
    code, _, err = run_cli("evaluate", tmp_path / "junk.npz")
    assert code == 2 and "not a readable .npz" in err
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    code, _, err = run_cli("train", "--quick", "--out", tmp_path / "x.npz")
    assert code == 2 and "pip install scikit-learn" in err
