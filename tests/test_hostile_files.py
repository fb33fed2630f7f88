"""Hostile files: hypothesis mutates files that fastrnn wrote and every loader must cope.

The property test itself is tests/_hostile_files_child.py (its docstring lists the mutations
and what each load must do); it runs in a child process so that a crash, a hang or a
MemoryError under its address-space limit fails this test instead of taking pytest down.
Derandomized with a fixed number of examples, it takes a few seconds;
FASTRNN_HOSTILE_EXAMPLES=2000 runs a longer search (40 examples per format by default).
"""

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("hypothesis")
pytest.importorskip("onnx")
pytest.importorskip("safetensors")

import fastrnn  # noqa: E402

CHILD = os.path.join(os.path.dirname(__file__), "_hostile_files_child.py")
MUTATIONS = {"flip", "truncate", "insert", "overwrite", "shape", "dtype", "nan"}


def test_mutated_files_load_validly_or_raise_value_or_type_errors():
    examples = int(os.environ.get("FASTRNN_HOSTILE_EXAMPLES", "40"))
    root = os.path.dirname(os.path.dirname(os.path.abspath(fastrnn.__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [root] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])))
    done = subprocess.run([sys.executable, CHILD, str(examples)], capture_output=True,
                          text=True, env=env, timeout=60 + examples)
    assert done.returncode == 0, (f"the child exited with {done.returncode}\n"
                                  f"{done.stdout[-3000:]}\n{done.stderr[-6000:]}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    print(json.dumps(report, indent=1))           # shown with pytest -s
    for fmt, counts in report["outcomes"].items():
        assert sum(counts.values()) == examples, fmt
        outcomes = {key.split(": ")[1] for key in counts}
        assert outcomes <= {"loaded", "ValueError", "TypeError"}, (fmt, counts)
        assert "ValueError" in outcomes and "loaded" in outcomes, (fmt, counts)
    kinds = {key.split(": ")[0] for counts in report["outcomes"].values() for key in counts}
    assert MUTATIONS <= kinds, kinds
