"""An unbuilt source folder hands ``import fastrnn`` to the installed copy (fastrnn/_source_tree.py).

Each case copies the package's Python files, without compiled modules, into a temporary folder
(what a fresh clone of the repository holds) and imports fastrnn with that folder as the current
directory, in a child process.
"""

import importlib.machinery
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import fastrnn

INSTALLED_PARENT = Path(fastrnn.__file__).resolve().parent.parent

# Imports fastrnn, runs an LSTM against the NumPy reference, says where the package came from.
PROBE = """
import numpy as np, fastrnn, fastrnn.reference as ref
lstm = fastrnn.LSTM(3, 4, seed=0, dtype=np.float64)
x = np.random.default_rng(0).standard_normal((5, 2, 3))
y, _ = lstm(x)
y_ref = ref.forward("lstm", lstm.params, x)[0]
assert np.allclose(y, y_ref, atol=1e-12), abs(y - y_ref).max()
import fastrnn.kernels.recurrent as k
print(fastrnn.__file__); print(k.__file__)
"""


@pytest.fixture
def unbuilt_tree(tmp_path):
    """A copy of the package's sources with no compiled module, as in a fresh clone."""
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    shutil.copytree(Path(fastrnn.__file__).parent, tmp_path / "fastrnn",
                    ignore=lambda _, names: [n for n in names
                                             if n.endswith(suffixes) or n == "__pycache__"])
    return tmp_path


def run_in(cwd, *args, pythonpath=None):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if pythonpath:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


def test_unbuilt_folder_defers_to_the_built_copy(unbuilt_tree):
    # The current directory comes first on sys.path; the built copy is further down it.
    proc = run_in(unbuilt_tree, "-c", PROBE, pythonpath=INSTALLED_PARENT)
    assert proc.returncode == 0, proc.stderr
    init_file, kernel_file = proc.stdout.split()
    assert Path(init_file).resolve() == INSTALLED_PARENT / "fastrnn" / "__init__.py"
    assert Path(kernel_file).resolve().parent == INSTALLED_PARENT / "fastrnn" / "kernels"


def test_command_line_from_an_unbuilt_folder(unbuilt_tree):
    proc = run_in(unbuilt_tree, "-m", "fastrnn", "info", pythonpath=INSTALLED_PARENT)
    assert proc.returncode == 0, proc.stderr
    assert str(INSTALLED_PARENT / "fastrnn") in proc.stdout


def test_unbuilt_folder_with_nothing_installed_says_how_to_build(unbuilt_tree):
    # -S: no site-packages, so no installed fastrnn (nor numpy) to defer to.
    proc = run_in(unbuilt_tree, "-S", "-c", "import fastrnn")
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError") and "not built" in last and "pip install ." in last


def test_built_folder_is_used_as_it_is(unbuilt_tree):
    # A folder with its own compiled modules (a developer's in-place build) is never replaced.
    for so in (INSTALLED_PARENT / "fastrnn" / "kernels").iterdir():
        if so.name.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)):
            shutil.copy(so, unbuilt_tree / "fastrnn" / "kernels")
    proc = run_in(unbuilt_tree, "-c", PROBE, pythonpath=INSTALLED_PARENT)
    assert proc.returncode == 0, proc.stderr
    assert Path(proc.stdout.split()[0]).resolve() == unbuilt_tree / "fastrnn" / "__init__.py"
