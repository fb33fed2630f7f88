"""The Python examples of README.md and of the guide pages (docs/guide/*.md) run, and print
what their comments say.

The ```python blocks are read from each file in order.  A block that starts with an import
begins an example; a block that does not continues the one before it (it uses its names).  The
interop snippets, indented in a list, use objects the reader already has (Keras layers, an ONNX
file): each gets them from a setup below, chosen by what the snippet calls.  Each example runs
in a child process (they set threads, start Dask workers), in a temporary directory.

A line ``print(...)  # text`` must print ``text``: the README's comments are the expected
output.
"""

import importlib.util
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# README.md and the guide pages its long sections moved to, by their path from the root
PAGES = ["README.md"] + sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs" / "guide").glob("*.md"))

BLOCK = re.compile(r"^( *)```python\n(.*?)^\1```", re.S | re.M)
EXPECTED = re.compile(r"^\s*print\(.*\)\s+#\s*(.+?)\s*$")

# What an interop snippet assumes the reader has, keyed by a call it makes.
SETUPS = {
    "from_keras": """
import os
os.environ["KERAS_BACKEND"] = "torch"
import keras
import fastrnn
simple_rnn, keras_lstm, keras_gru = (keras.layers.SimpleRNN(6, activation="relu"),
                                     keras.layers.LSTM(6), keras.layers.GRU(6))
for layer in (simple_rnn, keras_lstm, keras_gru):
    layer.build((None, 5, 4))
""",
    "fastrnn.onnx.load": """
import numpy as np
import fastrnn
fastrnn.LSTM(4, 6, num_layers=2, seed=0).to_onnx("model.onnx")     # two LSTM nodes
x = np.random.default_rng(0).standard_normal((5, 3, 4), dtype=np.float32)
lstm = fastrnn.LSTM(4, 6, seed=1)
""",
    "model.safetensors": """
import numpy as np
import fastrnn
from safetensors.numpy import save_file
encoder = {"encoder.rnn." + k: v for k, v in
           fastrnn.LSTM(128, 256, num_layers=2, seed=0).state_dict().items()}
decoder = {"decoder.cell." + k[:-len("_l0")]: v for k, v in
           fastrnn.GRU(32, 64, seed=1).state_dict().items()}   # an nn.GRUCell's names
save_file({**encoder, **decoder}, "model.safetensors")
""",
    "fastrnn.keras.load": """
import os
os.environ["KERAS_BACKEND"] = "torch"
import keras
import numpy as np
import fastrnn
model = keras.Sequential([keras.Input((5, 4)), keras.layers.LSTM(6, return_sequences=True),
                          keras.layers.GRU(3)])
model.save("model.keras")
x = np.random.default_rng(0).standard_normal((2, 5, 4), dtype=np.float32)
""",
}
NEEDS = {"fastrnn.onnx.load": ["onnx"], "model.safetensors": ["safetensors"],
         "fastrnn.keras.load": ["keras", "h5py"]}

# Runs the blocks of one example (argv[1], JSON) in one namespace, compiled so that line
# numbers are its page's (argv[3]); writes what each of the page's lines printed to argv[2].
RUNNER = r"""
import builtins, io, json, sys
blocks, out, page = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
printed, real_print = {}, builtins.print
def recording_print(*args, **kwargs):
    frame = sys._getframe(1)
    if frame.f_code.co_filename == page and "file" not in kwargs:
        text = io.StringIO()
        real_print(*args, **kwargs, file=text)
        printed[frame.f_lineno] = text.getvalue().rstrip("\n")
    real_print(*args, **kwargs)
builtins.print = recording_print
namespace = {"__name__": "__main__"}
for line, code in blocks:
    exec(compile("\n" * (line - 1) + code, page if line else "<setup>", "exec"), namespace)
json.dump(printed, open(out, "w"))
"""


def examples(page):
    """[(first line, [(line, code), ...], [module it needs, ...]), ...] of one page."""
    text = (ROOT / page).read_text()
    found = []
    for match in BLOCK.finditer(text):
        line = text.count("\n", 0, match.start(2)) + 1
        code = textwrap.dedent(match.group(2))
        setup = next((key for key in SETUPS if key in code), None)
        first = code.lstrip().split(None, 1)[0] if code.strip() else ""
        if setup:
            found.append((line, [(0, SETUPS[setup]), (line, code)], NEEDS.get(setup, [])))
        elif first in ("import", "from") or not found:
            found.append((line, [(line, code)], []))
        else:
            found[-1][1].append((line, code))
    for _, blocks, needs in found:
        code = "\n".join(c for _, c in blocks)
        needs += [m for m in ("torch", "dask", "keras") if re.search(rf"^\s*(import|from) {m}\b",
                                                                     code, re.M)]
    return found


def expected_prints(blocks):
    """{README line: text} for every ``print(...)  # text`` line of the blocks."""
    expected = {}
    for start, code in blocks:
        if start:
            for offset, source in enumerate(code.splitlines()):
                match = EXPECTED.match(source)
                if match:
                    expected[start + offset] = match.group(1)
    return expected


def all_examples():
    """[(page, first line, blocks, needs), ...] of every page."""
    return [(page, *e) for page in PAGES for e in examples(page)]


def test_the_pages_have_examples():
    found = [e[1:] for e in all_examples()]
    assert len(found) >= 8
    assert sum(len(expected_prints(blocks)) for _, blocks, _ in found) >= 3


# The examples run with this Keras backend, so a Keras example needs its module too.
KERAS_BACKEND = "torch"


def missing(needs):
    wanted = list(needs) + ([KERAS_BACKEND] if "keras" in needs else [])
    return [m for m in dict.fromkeys(wanted) if importlib.util.find_spec(m) is None]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """{first line: (process, its folder)}: every runnable example, started at once.

    The children mostly wait (on imports, on Dask's workers), so side by side they take about
    as long as the slowest of them.
    """
    env = dict(os.environ, KERAS_BACKEND=KERAS_BACKEND)
    started = {}
    for page, line, blocks, needs in all_examples():
        if missing(needs):
            continue
        folder = tmp_path_factory.mktemp(f"{Path(page).stem}{line}")
        (folder / "blocks.json").write_text(json.dumps(blocks))
        started[page, line] = (subprocess.Popen(
            [sys.executable, "-c", RUNNER, "blocks.json", "printed.json", page], cwd=folder, env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True), folder)
    yield started
    for process, _ in started.values():
        process.kill()
        process.communicate()


@pytest.mark.parametrize("page, line, blocks, needs", [pytest.param(*e, id=f"{e[0]}:{e[1]}")
                                                       for e in all_examples()])
def test_readme_example(page, line, blocks, needs, runs):
    if missing(needs):
        pytest.skip(f"needs {', '.join(missing(needs))}, not installed")
    process, folder = runs[page, line]
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr[-3000:]
    printed = {int(k): v for k, v in json.loads((folder / "printed.json").read_text()).items()}
    for at, text in expected_prints(blocks).items():
        assert printed.get(at) == text, f"{page}:{at} printed {printed.get(at)!r}, not {text!r}"
