"""Date translation with attention (fastrnn.apps.dates) and ``python -m fastrnn dates``:
the generated data, the quick mode's held-out accuracy, gradients against finite
differences, greedy against beam search, the attention map, saving, errors."""

import contextlib
import datetime
import io
import re
import sys

import numpy as np
import pytest

from fastrnn.apps import cli, dates
from _app_gradcheck import check_train_step


def run_cli(*args):
    """(exit code, stdout, stderr) of python -m fastrnn dates ... run in this process."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(["dates", *map(str, args)])
        except SystemExit as exc:
            code = exc.code
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    path = tmp_path_factory.mktemp("dates") / "dates.npz"
    code, out, err = run_cli("train", "--quick", "--out", path)
    assert code == 0, err
    return path, out


@pytest.mark.parametrize("day", [datetime.date(1979, 5, 3), datetime.date(2000, 2, 29),
                                 datetime.date(1900, 1, 1), datetime.date(2037, 9, 23)])
def test_every_format_holds_the_date(day):
    for style in range(dates.NUM_FORMATS):
        for case in ("lower", "title", "upper"):
            text = dates.format_date(day, style, case)
            x, lengths = dates.DateTranslator.encode([text])      # in the vocabulary
            assert lengths[0] == len(text) <= dates.MAX_IN_LEN
            assert str(day.year) in text
            numbers = [int(n) for n in re.findall(r"\d+", text)]
            assert day.day in numbers or day.month in numbers or \
                day.strftime("%B").lower() in text.lower()
    iso = "/".join(f"{v:02d}" for v in (day.year, day.month, day.day))
    assert dates.format_date(day, 17) == iso
    assert dates.format_date(datetime.date(1979, 5, 3), 2, "title") == "3rd of May 1979"
    assert dates.format_date(datetime.date(1979, 5, 11), 2) == "11th of may 1979"


def test_held_out_dates_are_never_trained_on():
    train_days, held_days = dates._day_split(300, seed=4)
    assert not set(train_days) & set(held_days)
    assert len(train_days) + len(held_days) == (dates.LAST - dates.FIRST).days + 1
    texts, iso = dates.held_out_dates(300, seed=4)
    assert (texts, iso) == dates.held_out_dates(300, seed=4)
    held = {(dates.FIRST + datetime.timedelta(days=int(d))).isoformat() for d in held_days}
    assert set(iso) == held


def test_quick_mode_is_well_above_chance(quick):
    path, out = quick
    exact, chars = map(float, re.search(r"exact match \(greedy\): ([\d.]+)% of 200 dates; "
                                        r"([\d.]+)% of the characters", out).groups())
    # chance: 1 in 73,000 dates, about 1 in 10 characters
    assert exact >= 30.0 and chars >= 85.0, out
    model = dates.DateTranslator.load(path)
    texts, iso = dates.held_out_dates(200, seed=0)
    assert dates.accuracy(model, texts, iso)[0] == pytest.approx(exact / 100, abs=1e-4)


def test_train_step_gradients_match_finite_differences():
    model = dates.DateTranslator(embedding_dim=4, encoder_size=3, decoder_size=5,
                                 attention_dim=4, dtype=np.float64, seed=2)
    texts, iso = dates.make_dataset([10, 4000, 70000], np.random.default_rng(0))
    assert check_train_step(model.layers, lambda: model.train_step(texts, iso)) > 20


def test_greedy_beam_and_command_line_agree(quick):
    path, _ = quick
    model = dates.DateTranslator.load(path)
    texts = ["3rd of May 1979", "December 25, 2001", "01.02.1999"]
    greedy = model.translate(texts)
    code, out, _ = run_cli("translate", *texts, "--model", path)
    assert code == 0 and out.splitlines() == [f"{t}\t{g}" for t, g in zip(texts, greedy)]
    for text, g in zip(texts, greedy):
        assert model.beam(text, 1)[0][0] == g
        best = model.beam(text, 4)
        scores = [s for _, s in best]
        assert len(best) == 4 and scores == sorted(scores, reverse=True)
        assert len({b for b, _ in best}) == 4 and all(s <= 0 for s in scores)
        # the greedy path's own log-probability can only be matched or beaten by the beam
        assert best[0][1] >= model.beam(text, 1)[0][1] - 1e-5
    code, out, _ = run_cli("translate", texts[0], "--model", path, "--beam", "3")
    assert code == 0 and len(out.splitlines()) == 3
    assert out.splitlines()[0].split("\t")[1] == model.beam(texts[0], 3)[0][0]


def test_saved_model_reloads_with_the_same_translations(quick, tmp_path):
    path, _ = quick
    model = dates.DateTranslator.load(path)
    again = tmp_path / "again.npz"
    model.save(again)
    with np.load(again, allow_pickle=False) as data:
        assert all(data[k].dtype != object for k in data.files)
    texts, _ = dates.held_out_dates(50, seed=1)
    a, wa = model.translate(texts, return_attention=True)
    b, wb = dates.DateTranslator.load(again).translate(texts, return_attention=True)
    assert a == b
    np.testing.assert_array_equal(wa, wb)
    assert wa.shape[:2] == (50, dates.OUT_LEN)
    np.testing.assert_allclose(wa.sum(axis=2), 1, rtol=1e-5)


def test_attention_map_plot(quick, tmp_path, monkeypatch):
    path, _ = quick
    png = tmp_path / "map.png"
    code, _, err = run_cli("translate", "3rd of May 1979", "--model", path, "--plot", png)
    assert code == 0 and "attention map" in err
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    code, _, err = run_cli("translate", "3rd of May 1979", "--model", path, "--plot", png)
    assert code == 2 and "--plot needs matplotlib" in err


def test_bad_arguments(quick, tmp_path):
    path, _ = quick
    for text, message in (("3rd of May 1979!", "character '!'"), ("", "1 to 40 characters"),
                          ("x" * 41, "1 to 40 characters")):
        code, _, err = run_cli("translate", text, "--model", path)
        assert code == 2 and message in err, (text, err)
    with pytest.raises(TypeError, match="text"):
        dates.DateTranslator.encode([1979])
    for args, message in ((("train", "--steps", "0"), "--steps"),
                          (("train", "--batch", "-3"), "--batch"),
                          (("train", "--clip", "0"), "--clip"),
                          (("train", "--threads", "0"), "--threads"),
                          (("translate", "x", "--beam", "0"), "--beam"),
                          (("frobnicate",), "invalid choice")):
        code, _, err = run_cli(*args)
        assert code == 2 and message in err, (args, err)
    code, _, err = run_cli("translate", "3 May 1979", "--model", tmp_path / "none.npz")
    assert code == 2 and "train one first" in err
    from fastrnn.apps import digits
    other = tmp_path / "other.npz"
    digits.DigitClassifier(seed=0).save(other)
    code, _, err = run_cli("translate", "3 May 1979", "--model", other)
    assert code == 2 and "not a fastrnn dates model" in err


def test_a_tiny_command_line_run_saves_a_model(tmp_path):
    out_path = tmp_path / "tiny.npz"
    code, out, _ = run_cli("train", "--steps", "3", "--held-out", "20", "--hidden", "16",
                           "--out", out_path)
    assert code == 0 and f"saved {out_path}" in out
    assert "3 steps" in out and "of 20 dates" in out
    assert dates.DateTranslator.load(out_path).config["decoder_size"] == 16
