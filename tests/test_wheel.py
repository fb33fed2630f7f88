"""The package as a user installs it: ``python -m build``, then the wheel in a fresh venv.

One build serves every test here (a module fixture): ``python -m build`` makes the sdist and
then the wheel from the unpacked sdist, so a wheel at all means the sdist carries what the
build needs.  The wheel is installed in a new virtual environment (NumPy from the package
index, nothing compiled), and fastrnn is imported there from another directory and from a
source tree without compiled modules.  Marked slow (the build compiles every kernel, minutes):
CI runs it as a step of its own (.ci/run), ``python -m pytest -m slow tests/test_wheel.py``.
"""

import ast
import importlib.machinery
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]    # the tag this interpreter builds with


def setup_modules():
    """The compiled modules setup.py builds (its MODULES tuple)."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and node.targets[0].id == "MODULES":
            return ast.literal_eval(node.value)
    raise AssertionError("setup.py has no MODULES")


def source_files():
    """Every file of the tree the build reads: the package's sources, csrc/, the build files."""
    names = {"setup.py", "pyproject.toml", "README.md", "MANIFEST.in"}
    names |= {str(p.relative_to(ROOT)) for p in (ROOT / "csrc").glob("*.h")}
    for pattern in ("*.py", "*.pyx", "*.pxd"):
        names |= {str(p.relative_to(ROOT)) for p in (ROOT / "fastrnn").rglob(pattern)
                  if "__pycache__" not in p.parts}
    return names


def run(*args, cwd=None, timeout=900):
    proc = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, f"{args}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    """(sdist, wheel, build log) from one ``python -m build`` of this tree."""
    pytest.importorskip("build")
    out = tmp_path_factory.mktemp("dist")
    log = run(sys.executable, "-m", "build", "--outdir", out, ROOT)
    (sdist,), (wheel,) = out.glob("*.tar.gz"), out.glob("*.whl")
    return sdist, wheel, log


@pytest.fixture(scope="module")
def venv_python(dist, tmp_path_factory):
    """The python of a fresh venv with the wheel (and NumPy) installed."""
    venv = tmp_path_factory.mktemp("venv")
    run(sys.executable, "-m", "venv", venv)
    python = venv / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    run(python, "-m", "pip", "install", "-q", "--disable-pip-version-check", dist[1])
    return python


def site_packages(python):
    return Path(run(python, "-c", "import sysconfig; print(sysconfig.get_path('platlib'))")
                .strip())


def test_sdist_carries_the_sources_and_no_generated_code(dist):
    with tarfile.open(dist[0]) as sdist:
        names = {name.partition("/")[2] for name in sdist.getnames()}
    assert source_files() <= names, sorted(source_files() - names)
    generated = [n for n in names if n.endswith((".c", SUFFIX))]
    assert not generated, generated


def test_wheel_holds_every_module_compiled_and_the_data(dist):
    with zipfile.ZipFile(dist[1]) as wheel:
        names = set(wheel.namelist())
    compiled = {f"fastrnn/kernels/{m}{SUFFIX}" for m in setup_modules()}
    assert compiled <= names, sorted(compiled - names)
    python = {n for n in source_files() if n.startswith("fastrnn/") and n.endswith(".py")}
    assert python <= names, sorted(python - names)
    assert "fastrnn/apps/data/dinosaurs.txt" in names


def test_build_does_not_tune_for_the_build_machine(dist):
    # One wheel serves every x86-64 machine: the C passes carry their own AVX-512, AVX2 and
    # baseline clones (csrc/fastrnn_cells.h), chosen at load time, so no -march/-mtune flag.
    compiles = [line for line in dist[2].splitlines() if " -c " in line and ".c " in line]
    assert compiles, "the build log shows no compiler command"
    assert not [line for line in compiles if "-march" in line or "-mtune" in line]


# Imports fastrnn, runs an LSTM against the NumPy reference and prints where both came from.
PROBE = """
import numpy as np, fastrnn, fastrnn.reference as ref, fastrnn.kernels.recurrent as k
lstm = fastrnn.LSTM(3, 4, num_layers=2, seed=0, dtype=np.float64)
x = np.random.default_rng(0).standard_normal((5, 2, 3))
y_ref = ref.forward("lstm", lstm.params, x, num_layers=2)[0]
assert np.allclose(lstm(x)[0], y_ref, atol=1e-12)
print(fastrnn.__file__); print(k.__file__)
"""


@pytest.mark.parametrize("where", ["another directory", "an unbuilt source tree"])
def test_wheel_imports_in_a_fresh_venv(dist, venv_python, tmp_path, where):
    if where == "an unbuilt source tree":
        # The unpacked sdist is the repository's tree without any compiled module: run from
        # its root, `import fastrnn` finds its source folder first and must get the wheel.
        with tarfile.open(dist[0]) as sdist:
            sdist.extractall(tmp_path, **({"filter": "data"} if hasattr(tarfile, "data_filter")
                                          else {}))
        (cwd,) = tmp_path.iterdir()
        assert (cwd / "fastrnn" / "__init__.py").is_file()
    else:
        cwd = tmp_path
    init_file, kernel_file = run(venv_python, "-c", PROBE, cwd=cwd).split()
    package = site_packages(venv_python) / "fastrnn"
    assert Path(init_file).parent == package
    assert Path(kernel_file) == package / "kernels" / f"recurrent{SUFFIX}"
    info = run(venv_python, "-m", "fastrnn", "info", cwd=cwd)
    assert str(package) in info and "kernels:" in info
