"""Save and load layers: one .npz file holding a JSON header and the weights.

A fastrnn file is an ordinary NumPy .npz archive (a zip of .npy arrays):

- ``__fastrnn__``: a 0-d array of str holding a JSON object::

      {"format": "fastrnn", "format_version": 1, "fastrnn_version": "0.1.0",
       "kind": "layer" | "dict",
       "layers": [{"name": null | "encoder", "class": "LSTM",
                   "config": {"input_size": 32, "hidden_size": 64, "num_layers": 2,
                              "bias": true, "batch_first": false,
                              "bidirectional": false, "dtype": "float32"}}, ...]}

- ``<i>.<parameter>``: the parameter arrays of the i-th layer, under torch's
  state_dict names (``0.weight_ih_l0``, ``0.bias_hh_l1_reverse``, ...; a
  peephole LSTM adds ``0.weight_peephole_l0``, ...), in the layer's dtype.

The configuration holds every constructor argument except ``seed`` (the
weights are stored instead).  Loading reads with ``allow_pickle=False``, takes
classes only from the fixed set {RNN, LSTM, GRU, Linear, Embedding}, and passes only JSON
scalars to their constructors: nothing in a file is executed.  Every check
that can fail raises a ValueError naming the path and the problem.
"""

import inspect
import json
import lzma
import math
import os
import struct
import uuid
import zipfile
import zlib

import numpy as np

from fastrnn.layers import cell_kinds as _cell_kinds
from fastrnn._version import __version__
from fastrnn.layers.embedding import Embedding
from fastrnn.layers.linear import Linear

FORMAT_NAME = "fastrnn"
FORMAT_VERSION = 1

_HEADER_KEY = "__fastrnn__"
# The layers other than the recurrent ones (fastrnn/layers/cell_kinds.py) that a file may hold.
_OTHER_CLASSES = {"Linear": Linear, "Embedding": Embedding}
# Constructor arguments that every file entry of a class must give (sizes, integers >= 1).
_SIZES = {Linear: ("in_features", "out_features"),
          Embedding: ("num_embeddings", "embedding_dim")}
_RECURRENT_SIZES = ("input_size", "hidden_size")
_ZIP_MAGIC = b"PK\x03\x04"
# An .npy entry is its data plus a header (64 to a few hundred bytes).
_NPY_HEADER_ALLOWANCE = 4096
# Errors that the zip, zlib and .npy readers raise on a damaged archive.
# NotImplementedError: a compression method zipfile lacks; RuntimeError: the encrypted flag;
# LZMAError and struct.error: damaged compressed data and headers; RecursionError: deep JSON.
_READ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, KeyError,
                UnicodeDecodeError, NotImplementedError, RuntimeError, lzma.LZMAError,
                struct.error, OverflowError, RecursionError)


def _classes():
    """{name: class} of every class a file may hold, the recurrent layers first (looked up
    when needed: the layer modules register themselves as the package is imported)."""
    classes = {kind.name: kind.layer_class for kind in _cell_kinds.KINDS}
    classes.update(_OTHER_CLASSES)
    return classes


def _config_keys(cls):
    """Names of cls's constructor arguments that describe the architecture (all but seed)."""
    sig = inspect.signature(cls.__init__)
    return [name for name, p in sig.parameters.items()
            if name not in ("self", "seed")
            and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def _layer_config(layer):
    """The constructor arguments that rebuild layer, as JSON values."""
    cls = type(layer)
    config = {}
    for key in _config_keys(cls):
        if key == "dropout":
            value = getattr(layer, "dropout", 0.0)
        elif not hasattr(layer, key):
            raise TypeError(f"obj: cannot save {cls.__name__}: its constructor argument "
                            f"{key!r} is not kept as an attribute of the layer")
        else:
            value = getattr(layer, key)
        if key == "dtype":
            value = np.dtype(value).name
        elif isinstance(value, (bool, np.bool_)):
            value = bool(value)
        elif isinstance(value, (int, np.integer)):
            value = int(value)
        elif isinstance(value, (float, np.floating)):
            value = float(value)
        elif not isinstance(value, str) and value is not None:
            raise TypeError(f"obj: cannot save {cls.__name__}: argument {key!r} is a "
                            f"{type(value).__name__}, not a number, bool or str")
        config[key] = value
    return config


def _entries(obj):
    """[(name or None, layer)] of what save() was given, checked."""
    if isinstance(obj, dict):
        kind, items = "dict", list(obj.items())
    else:
        kind, items = "layer", [(None, obj)]
    for name, layer in items:
        where = "obj" if kind == "layer" else f"obj[{name!r}]"
        if kind == "dict" and not isinstance(name, str):
            raise TypeError(f"obj: dict keys must be str (layer names), got "
                            f"{type(name).__name__} {name!r}")
        if type(layer) not in _classes().values():
            names = _cell_kinds.layer_names(*_OTHER_CLASSES)
            raise TypeError(f"{where}: expected a {names} layer (or a dict of them), got "
                            f"{type(layer).__name__}")
    return kind, items


def save(path, obj):
    """Save a layer, or a dict of named layers, to one .npz file.

    The file holds each layer's configuration (every constructor argument
    except ``seed``) as JSON text and its parameters as arrays; see the module
    docstring for the format.  It is written to a temporary file in the same
    directory and then renamed over ``path``, so readers never see a partly
    written file.  Gradients are not saved.

    Parameters
    ----------
    path : str or os.PathLike
        Where to write; used exactly as given (no ``.npz`` is appended).
    obj : fastrnn.RNN, LSTM, GRU, Linear or Embedding, or dict of str to those
        What to save: a dict holds a whole model, e.g. an embedding, a
        recurrent stack and an output layer.  ``fastrnn.load`` returns the same kind of object.

    Raises
    ------
    TypeError
        If obj is not a layer or a dict of str to layers.

    Examples
    --------
    >>> import numpy as np, fastrnn, tempfile, os
    >>> lstm = fastrnn.LSTM(8, 16, seed=0)
    >>> path = os.path.join(tempfile.mkdtemp(), "model.npz")
    >>> fastrnn.save(path, lstm)
    >>> same = fastrnn.load(path)
    >>> all(np.array_equal(same.params[k], v) for k, v in lstm.params.items())
    True
    """
    path = os.fspath(path)
    kind, items = _entries(obj)
    header = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION,
              "fastrnn_version": __version__, "kind": kind, "layers": []}
    arrays = {}
    for i, (name, layer) in enumerate(items):
        header["layers"].append({"name": name, "class": type(layer).__name__,
                                 "config": _layer_config(layer)})
        for pname, value in layer.params.items():
            arrays[f"{i}.{pname}"] = np.ascontiguousarray(value)
    arrays[_HEADER_KEY] = np.array(json.dumps(header))
    # A new file beside path (so the rename stays on one file system), created with
    # open() rather than mkstemp so that it gets the usual permissions (umask).
    directory, base = os.path.split(os.path.abspath(path))
    tmp = os.path.join(directory, f".{base}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "xb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# ------------------------------------------------------------------------------- loading


def _expected_shapes(cls, config):
    """{parameter name: shape} of a layer of class cls with this config (torch's names),
    computed without building the layer (so a file cannot make load allocate)."""
    if cls is Linear:
        shapes = {"weight": (config["out_features"], config["in_features"])}
        if config.get("bias", True):
            shapes["bias"] = (config["out_features"],)
        return shapes
    if cls is Embedding:
        return {"weight": (config["num_embeddings"], config["embedding_dim"])}
    G = cls._gate_count * config["hidden_size"]
    H = config["hidden_size"]
    dirs = 2 if config.get("bidirectional", False) else 1
    shapes = {}
    for layer in range(config.get("num_layers", 1)):
        in_size = config["input_size"] if layer == 0 else dirs * H
        for direction in range(dirs):
            sfx = f"_l{layer}" + ("_reverse" if direction else "")
            shapes["weight_ih" + sfx] = (G, in_size)
            shapes["weight_hh" + sfx] = (G, H)
            if config.get("bias", True):
                shapes["bias_ih" + sfx] = (G,)
                shapes["bias_hh" + sfx] = (G,)
            if config.get("peephole", False):      # LSTM only
                shapes["weight_peephole" + sfx] = (3, H)
    return shapes


def _check_config(entry, where, path, file_version):
    """(class, constructor kwargs) of one header entry, or a ValueError."""
    cls_name = entry.get("class")
    classes = _classes()
    if cls_name not in classes:
        raise ValueError(f"{path}: {where} has class {cls_name!r}; expected one of "
                         f"{sorted(classes)}")
    cls = classes[cls_name]
    config = entry.get("config")
    if not isinstance(config, dict):
        raise ValueError(f"{path}: {where} has no configuration object")
    known = _config_keys(cls)
    kwargs = {}
    for key, value in config.items():
        if not (value is None or isinstance(value, (bool, int, float, str))):
            raise ValueError(f"{path}: {where} configuration {key!r} is a "
                             f"{type(value).__name__}; expected a number, bool or str")
        if key in known:
            kwargs[key] = value
        else:
            raise ValueError(f"{path}: {where} configuration has {key}={value!r}, which this "
                             f"fastrnn's {cls_name} does not take (the file was written by "
                             f"fastrnn {file_version})")
    sizes = _SIZES.get(cls, _RECURRENT_SIZES)
    for key in sizes:
        if key not in kwargs:
            raise ValueError(f"{path}: {where} configuration lacks {key!r}")
    for key in sizes + ("num_layers",):
        value = kwargs.get(key, 1)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{path}: {where} configuration {key}={value!r}; expected an "
                             f"integer >= 1")
    for key in ("bias", "bidirectional", "reverse", "batch_first", "peephole", "reset_after"):
        if not isinstance(kwargs.get(key, False), bool):
            raise ValueError(f"{path}: {where} configuration {key}={kwargs[key]!r}; "
                             f"expected true or false")
    if kwargs.get("dtype", "float32") not in ("float32", "float64"):
        raise ValueError(f"{path}: {where} configuration dtype={kwargs['dtype']!r}; expected "
                         f"'float32' or 'float64'")
    return cls, kwargs


def _read_array(npz, key, path, limit, shape=None, dtype=None):
    """The array of entry key, read from its .npy member after checking its header: no
    Python objects, the shape and dtype expected (when given), and data that fit in the
    member and in limit bytes (the archive's size), so that a damaged header cannot make
    the reader allocate what the file does not hold.  Reading to the member's end makes
    zipfile check its CRC-32."""
    member = key + ".npy" if key + ".npy" in npz.zip.namelist() else key
    try:
        size = npz.zip.getinfo(member).file_size
        with npz.zip.open(member) as f:
            version = np.lib.format.read_magic(f)
            if version not in ((1, 0), (2, 0), (3, 0)):
                raise ValueError(f"unknown .npy format version {version}")
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            got_shape, fortran, got_dtype = read_header(f)
            if got_dtype.hasobject:
                raise ValueError("it holds Python objects, which fastrnn never writes")
            if shape is not None and (got_shape != tuple(shape) or got_dtype != dtype):
                raise _Mismatch(f"{path}: entry {key!r} has shape {got_shape} and dtype "
                                f"{got_dtype}")
            nbytes = got_dtype.itemsize
            for n in got_shape:
                nbytes *= n
            if nbytes > min(size, limit):
                raise ValueError(f"its header declares {nbytes} bytes of data in a member of "
                                 f"{size} bytes, in a file of {limit} bytes")
            data = f.read(nbytes + 1)
            if len(data) != nbytes:
                raise ValueError(f"it holds {len(data)} bytes of data, its header declares "
                                 f"{nbytes}")
    except _Mismatch:
        raise
    except _READ_ERRORS as exc:
        raise ValueError(f"{path}: entry {key!r} cannot be read, the file is truncated or "
                         f"corrupted ({type(exc).__name__}: {exc})") from exc
    order = "F" if fortran and len(got_shape) > 1 else "C"
    return np.frombuffer(data, got_dtype).reshape(got_shape, order=order)


class _Mismatch(ValueError):
    """An entry of another shape or dtype than its layer needs (the caller says which)."""


def _declared_size(npz, key):
    """Uncompressed size of an entry as the zip directory declares it."""
    for member in (key + ".npy", key):
        try:
            return npz.zip.getinfo(member).file_size
        except KeyError:
            continue
    return 0


def _read_header(npz, path, limit):
    if _HEADER_KEY not in npz.files:
        raise ValueError(f"{path}: not a fastrnn file: the .npz has no {_HEADER_KEY!r} entry "
                         f"(written by something other than fastrnn.save?)")
    raw = _read_array(npz, _HEADER_KEY, path, limit)
    if raw.ndim != 0 or raw.dtype.kind not in "US":
        raise ValueError(f"{path}: not a fastrnn file: {_HEADER_KEY!r} is not a string")
    text = raw.item()
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        header = json.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ValueError(f"{path}: corrupted fastrnn header, not valid JSON ({exc})") from exc
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        raise ValueError(f"{path}: not a fastrnn file: its header does not say "
                         f"format={FORMAT_NAME!r}")
    version = header.get("format_version")
    if version != FORMAT_VERSION:
        hint = ("; upgrade fastrnn to read it" if isinstance(version, int)
                and not isinstance(version, bool) and version > FORMAT_VERSION else "")
        raise ValueError(f"{path}: fastrnn file format version {version!r}, but this fastrnn "
                         f"({__version__}) reads version {FORMAT_VERSION}{hint}")
    kind, layers = header.get("kind"), header.get("layers")
    if kind not in ("layer", "dict") or not isinstance(layers, list) \
            or not all(isinstance(e, dict) for e in layers) \
            or (kind == "layer" and len(layers) != 1):
        raise ValueError(f"{path}: corrupted fastrnn header: expected kind 'layer' with one "
                         f"layer or kind 'dict', got kind={kind!r} with "
                         f"{len(layers) if isinstance(layers, list) else 'no'} layer entries")
    return header


def _read(npz, path, limit):
    header = _read_header(npz, path, limit)
    file_version = header.get("fastrnn_version", "unknown")
    plans, expected_keys = [], {_HEADER_KEY}
    for i, entry in enumerate(header["layers"]):
        name = entry.get("name")
        if header["kind"] == "dict" and not isinstance(name, str):
            raise ValueError(f"{path}: corrupted fastrnn header: layer {i} has no name")
        where = f"layer {name!r}" if header["kind"] == "dict" else "the layer"
        cls, kwargs = _check_config(entry, where, path, file_version)
        dtype = np.dtype(kwargs.get("dtype", "float32"))
        if kwargs.get("num_layers", 1) > len(npz.files):    # bounds the loop below
            raise ValueError(f"{path}: {where} configuration num_layers="
                             f"{kwargs['num_layers']}, but the file holds only "
                             f"{len(npz.files)} arrays: corrupted file")
        shapes = {f"{i}.{k}": v for k, v in _expected_shapes(cls, kwargs).items()}
        expected_keys.update(shapes)
        plans.append((name, where, cls, kwargs, dtype, shapes))
    missing = sorted(expected_keys - set(npz.files))
    unexpected = sorted(set(npz.files) - expected_keys)
    if missing or unexpected:
        raise ValueError(f"{path}: the arrays do not match the fastrnn header: missing "
                         f"{missing[:6]}{' ...' if len(missing) > 6 else ''}, unexpected "
                         f"{unexpected[:6]}{' ...' if len(unexpected) > 6 else ''}")
    # Sizes declared in the zip directory, checked before anything is read or allocated.
    for _, where, _, _, dtype, shapes in plans:
        for key, shape in shapes.items():
            size = _declared_size(npz, key)
            if size > math.prod(shape) * dtype.itemsize + _NPY_HEADER_ALLOWANCE:
                raise ValueError(f"{path}: entry {key!r} is {size} bytes, too large for "
                                 f"shape {shape} of {dtype.name}: corrupted file")
    out = {}
    for name, where, cls, kwargs, dtype, shapes in plans:
        params = {}
        for key, shape in shapes.items():
            try:
                value = _read_array(npz, key, path, limit, shape, dtype)
            except _Mismatch as exc:
                raise ValueError(f"{exc}; {where} needs shape {shape} and dtype "
                                 f"{dtype.name}") from None
            params[key.split(".", 1)[1]] = value
        kwargs = dict(kwargs, dtype=dtype)
        try:
            layer = cls(**kwargs)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{path}: {where} has an invalid configuration: {exc}") from exc
        layer.load_state_dict(params)
        out[name] = layer
    return out if header["kind"] == "dict" else out[None]


def load(path):
    """Load what fastrnn.save wrote: a layer, or a dict of named layers.

    The file is read with ``allow_pickle=False``: it can hold only arrays and
    JSON text, and loading runs no code from it.  Layers come back with the
    saved configuration and parameters and zeroed gradients.

    Parameters
    ----------
    path : str or os.PathLike
        A file written by ``fastrnn.save``.

    Returns
    -------
    layer : fastrnn.RNN, LSTM, GRU, Linear or Embedding, or dict of str to layers
        The same kind of object that was saved, dicts in the saved order.

    Raises
    ------
    FileNotFoundError
        If there is no file at path.
    ValueError
        If the file is empty, truncated or corrupted, is not an .npz, is an
        .npz not written by fastrnn, or has another format version.  The
        message names the path and the problem.

    Examples
    --------
    >>> import fastrnn, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "models.npz")
    >>> fastrnn.save(path, {"enc": fastrnn.GRU(4, 8), "dec": fastrnn.LSTM(8, 4)})
    >>> {k: type(v).__name__ for k, v in fastrnn.load(path).items()}
    {'enc': 'GRU', 'dec': 'LSTM'}
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        magic = f.read(len(_ZIP_MAGIC))
        if magic != _ZIP_MAGIC:
            what = "an empty file" if not magic else "not an .npz (zip) file"
            raise ValueError(f"{path}: not a fastrnn file: {what}")
        f.seek(0)
        try:
            npz = np.load(f, allow_pickle=False)
        except _READ_ERRORS as exc:
            raise ValueError(f"{path}: not a readable .npz file, it is truncated or corrupted "
                             f"({type(exc).__name__}: {exc})") from exc
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise ValueError(f"{path}: not a fastrnn file: not an .npz archive")
        with npz:
            return _read(npz, path, os.fstat(f.fileno()).st_size)
