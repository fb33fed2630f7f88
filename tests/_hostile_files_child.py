"""The hostile-files property test, run as a child process by tests/test_hostile_files.py.

For each format fastrnn writes -- fastrnn.save's .npz, to_onnx's .onnx, save_state_dict's
.safetensors -- hypothesis mutates a file that fastrnn wrote and loads the result with the
matching loader.  Byte mutations: flipped bits, truncation, inserted and overwritten bytes.
Structural mutations, re-serialized so that the container stays well formed (the zip's
CRC-32 recomputed, the protobuf re-encoded, the safetensors header re-measured): huge
declared shapes, other dtypes, NaN weights.

Each load must return layers that are a valid reading (for the .npz, whose entries carry a
CRC-32, the layers as written, NaN where NaN was written; for the others, layers that run)
or raise ValueError or TypeError.  Anything else -- another exception, a crash, a hang, an
allocation beyond the address-space limit set below -- fails.  Each load's peak of traced
(Python and NumPy) memory must stay within a small multiple of the file's size.

Usage: python _hostile_files_child.py MAX_EXAMPLES.  Prints one JSON line of counts:
{format: {"mutation: outcome": n}}, the largest traced peak of a load and the sizes of the
files written.
"""

import collections
import io
import json
import os
import resource
import struct
import sys
import tempfile
import tracemalloc
import zipfile

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastrnn

OUTCOMES = collections.defaultdict(collections.Counter)
PEAK = {"bytes": 0}
# A load may trace at most this: the layers it builds hold the file's numbers a few times
# over (file, parsed arrays, the layer's own copy, its packs) plus fixed overheads.
PEAK_PER_BYTE, PEAK_FIXED = 16, 4 << 20
HUGE = st.integers(2**31, 2**45)
WORK = tempfile.mkdtemp(prefix="fastrnn-hostile-")


# ------------------------------------------------------------------------------ originals


def npz_original():
    model = {"rnn": fastrnn.LSTM(3, 4, num_layers=2, bidirectional=True, seed=1),
             "head": fastrnn.Linear(8, 2, seed=2), "embed": fastrnn.Embedding(5, 3, seed=3)}
    path = os.path.join(WORK, "model.npz")
    fastrnn.save(path, model)
    return open(path, "rb").read(), model


def onnx_original():
    path = os.path.join(WORK, "model.onnx")
    fastrnn.GRU(3, 4, num_layers=2, bidirectional=True, seed=4).to_onnx(path)
    return open(path, "rb").read()


def safetensors_original():
    path = os.path.join(WORK, "model.safetensors")
    layer = fastrnn.LSTM(3, 4, seed=5)
    layer.save_state_dict(path)
    return open(path, "rb").read(), layer


# ------------------------------------------------------------------------- byte mutations


@st.composite
def byte_mutation(draw, raw):
    """raw with one kind of damage at positions drawn over the whole file."""
    kind = draw(st.sampled_from(["flip", "truncate", "insert", "overwrite"]))
    data = bytearray(raw)
    n = len(data)
    if kind == "flip":
        for at, bit in draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, 7)),
                                     min_size=1, max_size=4)):
            data[at] ^= 1 << bit
    elif kind == "truncate":
        del data[draw(st.integers(0, n - 1)):]
    elif kind == "insert":
        at = draw(st.integers(0, n))
        data[at:at] = draw(st.binary(min_size=1, max_size=16))
    else:
        at = draw(st.integers(0, n - 1))
        patch = draw(st.binary(min_size=1, max_size=8))
        data[at:at + len(patch)] = patch
    return kind, bytes(data)


# ------------------------------------------------------------------- structural mutations


def npz_members(raw):
    with zipfile.ZipFile(io.BytesIO(raw)) as z:
        return {name: z.read(name) for name in z.namelist()}


def npz_rebuild(members):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def npy_parts(data):
    f = io.BytesIO(data)
    version = np.lib.format.read_magic(f)
    read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
            else np.lib.format.read_array_header_2_0)
    shape, fortran, dtype = read(f)
    return {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": fortran,
            "shape": shape}, data[f.tell():]


def npy_join(header, body):
    f = io.BytesIO()
    np.lib.format.write_array_header_1_0(f, header)
    return f.getvalue() + body


DESCRS = ["<i4", "<f2", ">f4", "<f8", "<f4", "|b1", "<c8", "|O", "<U3", "|V8", "<i8"]


@st.composite
def npz_structural(draw, raw):
    members = npz_members(raw)
    name = draw(st.sampled_from(sorted(members)))
    header, body = npy_parts(members[name])
    kind = draw(st.sampled_from(["shape", "dtype", "nan"]))
    if kind == "shape":
        header["shape"] = tuple(draw(st.lists(HUGE, min_size=1, max_size=3)))
    elif kind == "dtype":
        header["descr"] = draw(st.sampled_from(DESCRS))
    elif np.dtype(header["descr"]).kind == "f":
        body = np.full(len(body) // np.dtype(header["descr"]).itemsize, np.nan,
                       header["descr"]).tobytes()
    members[name] = npy_join(header, body)
    return kind, npz_rebuild(members)


@st.composite
def onnx_structural(draw, raw):
    import onnx
    proto = onnx.ModelProto()
    proto.ParseFromString(raw)
    tensor = draw(st.sampled_from(list(proto.graph.initializer)))
    kind = draw(st.sampled_from(["shape", "dtype", "nan"]))
    if kind == "shape":
        del tensor.dims[:]
        tensor.dims.extend(draw(st.lists(HUGE | st.integers(-3, 3), min_size=1, max_size=4)))
    elif kind == "dtype":
        tensor.data_type = draw(st.integers(0, 25))
    elif tensor.data_type == onnx.TensorProto.FLOAT and tensor.raw_data:
        tensor.raw_data = np.full(len(tensor.raw_data) // 4, np.nan, np.float32).tobytes()
    return kind, proto.SerializeToString()


ST_DTYPES = ["F16", "F32", "F64", "BF16", "I32", "I64", "BOOL", "U8", "F8_E4M3", "XX"]


@st.composite
def safetensors_structural(draw, raw):
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    body = bytearray(raw[8 + n:])
    name = draw(st.sampled_from(sorted(k for k in header if k != "__metadata__")))
    kind = draw(st.sampled_from(["shape", "dtype", "nan", "offsets"]))
    entry = header[name]
    if kind == "shape":
        entry["shape"] = draw(st.lists(HUGE, min_size=1, max_size=3))
    elif kind == "dtype":
        entry["dtype"] = draw(st.sampled_from(ST_DTYPES))
    elif kind == "offsets":
        entry["data_offsets"] = draw(st.lists(st.integers(-2, 2**40) | st.integers(0, 200),
                                              min_size=2, max_size=2))
    else:
        start, stop = entry["data_offsets"]
        body[start:stop] = np.full((stop - start) // 4, np.nan, np.float32).tobytes()
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return kind, struct.pack("<Q", len(text)) + text + bytes(body)


# ------------------------------------------------------------------------------- checking


def load_file(data, suffix, loader):
    """(outcome, loaded) of loader on data written to a file; checks the traced peak."""
    path = os.path.join(WORK, "case" + suffix)
    with open(path, "wb") as f:
        f.write(data)
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    try:
        loaded = loader(path)
        outcome = "loaded"
    except (ValueError, TypeError) as exc:
        loaded, outcome = None, type(exc).__name__
        assert str(exc).startswith(path), f"the message does not start with the file: {exc}"
    peak = tracemalloc.get_traced_memory()[1] - base
    assert peak <= PEAK_PER_BYTE * max(len(data), 1) + PEAK_FIXED, (
        f"a load of a {len(data)}-byte file traced {peak} bytes")
    PEAK["bytes"] = max(PEAK["bytes"], peak)
    return outcome, loaded


def runs(layer):
    """A layer from a loader is a valid reading if it runs on an input of its size."""
    x = np.ones((2, 1, layer.input_size), layer.dtype)
    y, _ = layer(x)
    assert y.shape == (2, 1, layer.num_directions * layer.hidden_size)


def same_as_written(loaded, model, nan):
    assert list(loaded) == list(model)
    for name, layer in model.items():
        assert type(loaded[name]) is type(layer)
        for k, v in layer.params.items():
            got = loaded[name].params[k]
            keep = ~np.isnan(got) if nan else np.ones(got.shape, bool)
            np.testing.assert_array_equal(got[keep], v[keep])


SETTINGS = dict(derandomize=True, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))


def run(max_examples):
    npz_raw, npz_model = npz_original()
    onnx_raw = onnx_original()
    st_raw, st_layer = safetensors_original()
    # From here on no allocation may be huge: the address space gets a bound well below
    # what any huge declared shape would need, so that a loader trusting one fails.
    with open("/proc/self/status") as f:
        vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize"))
    resource.setrlimit(resource.RLIMIT_AS, (vm + (1 << 30), resource.RLIM_INFINITY))
    tracemalloc.start()

    @settings(max_examples=max_examples, **SETTINGS)
    @given(st.one_of(byte_mutation(npz_raw), npz_structural(npz_raw)))
    def npz_case(case):
        kind, data = case
        outcome, loaded = load_file(data, ".npz", fastrnn.load)
        OUTCOMES["npz"][f"{kind}: {outcome}"] += 1
        if loaded is not None:        # the CRC-32 lets through only what was written
            same_as_written(loaded, npz_model, nan=kind == "nan")

    @settings(max_examples=max_examples, **SETTINGS)
    @given(st.one_of(byte_mutation(onnx_raw), onnx_structural(onnx_raw)))
    def onnx_case(case):
        kind, data = case
        outcome, layers = load_file(data, ".onnx", fastrnn.onnx.load)
        OUTCOMES["onnx"][f"{kind}: {outcome}"] += 1
        for layer in layers or ():
            assert isinstance(layer, (fastrnn.RNN, fastrnn.LSTM, fastrnn.GRU))
            runs(layer)

    @settings(max_examples=max_examples, **SETTINGS)
    @given(st.one_of(byte_mutation(st_raw), safetensors_structural(st_raw)))
    def safetensors_case(case):
        kind, data = case
        layer = fastrnn.LSTM(3, 4, seed=0)
        outcome, _ = load_file(data, ".safetensors", layer.load_state_dict)
        OUTCOMES["safetensors"][f"{kind}: {outcome}"] += 1
        if outcome == "loaded":
            runs(layer)
        else:                          # nothing written on failure
            for k, v in fastrnn.LSTM(3, 4, seed=0).params.items():
                np.testing.assert_array_equal(layer.params[k], v)

    npz_case()
    onnx_case()
    safetensors_case()
    print(json.dumps({"outcomes": OUTCOMES, "peak_traced_bytes": PEAK["bytes"],
                      "file_bytes": {"npz": len(npz_raw), "onnx": len(onnx_raw),
                                     "safetensors": len(st_raw)}}))


if __name__ == "__main__":
    run(int(sys.argv[1]))
