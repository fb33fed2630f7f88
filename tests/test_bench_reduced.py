"""python -m fastrnn bench --reduced: the quick mode runs and reports what it measured."""

import json
import subprocess
import sys

import numpy as np
import pytest

from fastrnn.apps import bench_reduced


def test_quick_report_has_every_point_and_positive_times():
    report = bench_reduced.run(bench_reduced.QUICK_GRID, repeats=3, budget=0.05)
    grid = bench_reduced.QUICK_GRID
    assert len(report["results"]) == len(grid["cells"]) * len(grid["hidden"]) * len(
        grid["batch"])
    for r in report["results"]:
        assert r["float32 s/step"] > 0 and r["int8 s/step"] > 0
        assert r["int8/float32"] == pytest.approx(r["int8 s/step"] / r["float32 s/step"])
        assert r["bfloat16 s/step"] > 0
    assert "int8" in bench_reduced.format_table(report)


def test_accuracy_errors_are_small_and_nonzero():
    errors = bench_reduced.accuracy(cells=("lstm", "rnn"), models=2, T=4, B=2, D=8, H=16)
    for cell, e in errors.items():
        assert 0 < e["fastrnn bfloat16"] < e["fastrnn int8"] < 0.1, (cell, e)
    assert errors["rnn"]["torch int8"] is None


def test_torch_int8_is_really_quantized():
    pytest.importorskip("torch")
    errors = bench_reduced.accuracy(cells=("gru",), models=2, T=4, B=2, D=8, H=16)
    assert errors["gru"]["torch int8"] > 1e-5     # a float module would agree to 1e-7


def test_trained_charlm_held_out_loss_within_bounds():
    result = bench_reduced.trained_charlm(steps=40, hidden_size=48)
    assert result["float32"] < 3.5        # it learned something (log V is about 4)
    assert abs(result["relative int8"]) < 0.01, result
    assert abs(result["relative bfloat16"]) < 0.002, result


def test_command_line_json():
    out = subprocess.run([sys.executable, "-m", "fastrnn", "bench", "--reduced", "--quick",
                          "--json", "--repeat", "3", "--budget", "0.05"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["results"] and set(report["errors"]) == {"lstm", "gru", "rnn"}
    assert abs(report["charlm"]["relative int8"]) < 0.01
    assert abs(report["wordlm"]["relative int8"]) < 0.01


def test_sweep_with_reduced_columns(tmp_path):
    from fastrnn.apps import peers, sweep
    grid = dict(sweep.QUICK_GRID, hidden=(32,))
    report = sweep.run(grid, cells=("lstm",), systems=["numpy"], repeats=3, budget=0.01,
                       weights=("int8", "bfloat16"))
    torch8 = "torch" in peers.available()
    assert ("torch int8" in report["machine"]["systems"]) == torch8
    for r in report["results"]:
        s = r["seconds"]
        assert set(r["ratio"]) == {"numpy"}          # reduced systems are not float peers
        if r["work"] == "training":
            assert "reduced" not in r and not set(s) & set(peers.REDUCED_SYSTEMS)
            continue
        red = r["reduced"]
        assert red["int8/float32"] == pytest.approx(s["fastrnn int8"] / s["fastrnn"])
        assert red["bfloat16/float32"] == pytest.approx(s["fastrnn bfloat16"] / s["fastrnn"])
        assert ("int8/torch int8" in red) == torch8
        if torch8:
            assert red["int8/torch int8"] == pytest.approx(s["fastrnn int8"] / s["torch int8"])
    table = sweep.format_table(report)
    assert "int8/fr" in table.splitlines()[0] and "bf16/fr" in table.splitlines()[0]
    pytest.importorskip("matplotlib")
    assert [p.rsplit("/", 1)[1] for p in sweep.plot(report, str(tmp_path))] == [
        "sweep-lstm-inference.png", "sweep-lstm-training.png"]


@pytest.mark.parametrize("kwargs, match", [(dict(weights=("int4",)), "weights"),
                                           (dict(weights=("int8",), dtype=np.float64), "dtype")])
def test_sweep_rejects_bad_weights(kwargs, match):
    from fastrnn.apps import sweep
    with pytest.raises(ValueError, match=match):
        sweep.run(sweep.QUICK_GRID, cells=("rnn",), **kwargs)
