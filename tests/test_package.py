"""The installed package: compiled kernels (never a Python fallback) and its command line."""

import importlib.machinery
import json
import subprocess
import sys

import pytest

import fastrnn
import fastrnn.kernels

COMPILED = [f"fastrnn.kernels.{name}" for name in fastrnn.kernels.COMPILED]


def test_the_compiled_list_is_what_setup_builds():
    import ast
    import pathlib
    tree = ast.parse((pathlib.Path(__file__).resolve().parent.parent / "setup.py").read_text())
    modules = next(node.value for node in ast.walk(tree) if isinstance(node, ast.Assign)
                   and any(getattr(t, "id", None) == "MODULES" for t in node.targets))
    assert tuple(ast.literal_eval(modules)) == fastrnn.kernels.COMPILED


@pytest.mark.parametrize("name", COMPILED)
def test_kernels_are_compiled_extensions(name):
    module = __import__(name, fromlist=["_"])
    assert module.__file__.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)), module.__file__


def test_public_names():
    for name in ("RNN", "LSTM", "GRU", "__version__"):
        assert hasattr(fastrnn, name)
    from fastrnn import reference
    assert callable(reference.forward) and callable(reference.backward)


def run_cli(*args):
    proc = subprocess.run([sys.executable, "-m", "fastrnn", *args], capture_output=True,
                          text=True, timeout=300, cwd="/")   # any directory works
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_info_lists_version_modules_and_blas():
    out = run_cli("info")
    assert fastrnn.__version__ in out
    for name in COMPILED:
        assert name in out
    assert "float32" in out and "float64" in out
    assert "BLAS" in out
    assert "FMA peak" in out and "read bandwidth" in out and "DRAM" in out
    assert "hand-over" in out


def test_bench_on_a_tiny_shape_reports_every_workload():
    out = run_cli("bench", "--shape", "3,2,4,5", "--repeat", "3", "--budget", "0.01", "--json",
                  "--peers", "numpy")
    results = json.loads(out)["results"]
    seen = {(r["cell"], r["work"]) for r in results}
    assert seen == {(c, w) for c in ("rnn", "lstm", "gru") for w in ("inference", "training")}
    for r in results:
        assert (r["T"], r["B"], r["D"], r["H"]) == (3, 2, 4, 5)
        assert r["seconds"]["fastrnn"] > 0 and r["seconds"]["numpy"] > 0
        assert r["ratio"]["numpy"] == pytest.approx(r["seconds"]["fastrnn"] /
                                                   r["seconds"]["numpy"])


def test_bench_table_output():
    out = run_cli("bench", "--cell", "lstm", "--work", "inference", "--shape", "2,1,3,4",
                  "--repeat", "3", "--budget", "0.01")
    assert "fr/numpy" in out and "lstm" in out


def test_bench_rejects_a_bad_shape():
    proc = subprocess.run([sys.executable, "-m", "fastrnn", "bench", "--shape", "1,2,3"],
                          capture_output=True, text=True, timeout=60, cwd="/")
    assert proc.returncode != 0 and "T,B,D,H" in proc.stderr


def test_bench_json_has_ratios_for_every_peer():
    out = run_cli("bench", "--cell", "gru", "--work", "inference", "--shape", "3,2,4,5",
                  "--repeat", "3", "--budget", "0.01", "--json")
    report = json.loads(out)
    systems = report["machine"]["systems"]
    assert systems[0] == "fastrnn" and "numpy" in systems
    assert report["machine"]["sgemm_gflops"] > 0
    (r,) = report["results"]
    for peer in systems[1:]:
        assert r["ratio"][peer] == pytest.approx(r["seconds"]["fastrnn"] / r["seconds"][peer])
    assert r["gflops"] > 0
    # the roofline fraction is the modelled least time over fastrnn's time
    assert r["roofline_fraction"] == pytest.approx(r["roofline"]["seconds"] /
                                                   r["seconds"]["fastrnn"])
    assert r["roofline"]["seconds"] == pytest.approx(max(r["roofline"]["compute_seconds"],
                                                         r["roofline"]["bandwidth_seconds"]))


def test_bench_sweep_quick_reports_every_point_and_plots(tmp_path):
    pytest.importorskip("matplotlib")
    out = run_cli("bench", "--sweep", "--quick", "--cell", "lstm", "gru", "--peers", "numpy",
                  "--repeat", "3", "--budget", "0.01", "--json", "--plot", str(tmp_path))
    report = json.loads(out)
    grid = report["grid"]
    points = {(r["cell"], r["work"], r["B"], r["H"]) for r in report["results"]}
    assert points == {(c, w, B, H) for c in ("lstm", "gru") for w in ("inference", "training")
                      for B in grid["batch"] for H in grid["hidden"]}
    for r in report["results"]:
        lo, hi = grid["steps"]
        assert lo <= r["T"] <= hi and r["D"] == r["H"]
        assert r["ratio"]["numpy"] == pytest.approx(r["seconds"]["fastrnn"] /
                                                   r["seconds"]["numpy"])
        assert 0 < r["roofline_fraction"]
    pngs = sorted(p.name for p in tmp_path.iterdir())
    assert pngs == [f"sweep-{c}-{w}.png" for c in ("gru", "lstm")
                    for w in ("inference", "training")]
    assert all((tmp_path / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)


def test_bench_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "speedup.png"
    run_cli("bench", "--cell", "rnn", "--work", "inference", "--shape", "3,2,4,5",
            "--repeat", "3", "--budget", "0.01", "--plot", str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_suite_runs_in_quick_mode():
    # The pytest-benchmark suite under bench/ on tiny shapes, each benchmark
    # run once: it must not rot.
    import os
    import pathlib
    root = pathlib.Path(__file__).resolve().parent.parent
    env = dict(os.environ, FASTRNN_BENCH_QUICK="1")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "--benchmark-disable", "-k", "f32", str(root / "bench")],
                          capture_output=True, text=True, timeout=600, cwd=str(root), env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert " passed" in proc.stdout


@pytest.mark.parametrize("old, new", sorted(fastrnn._MOVED.items()))
def test_module_paths_from_before_the_subpackages_still_import(old, new):
    # pickles name classes by module, and code imports the old paths
    import importlib
    moved = importlib.import_module(f"fastrnn.{new}")
    assert importlib.import_module(f"fastrnn.{old}") is moved
    if not old.startswith("_"):
        assert getattr(fastrnn, old) is moved


def test_info_names_the_gemm_tile():
    out = run_cli("info")
    assert "GEMM register tile:" in out
