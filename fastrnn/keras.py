"""Keras 3 model files (.keras, and legacy .h5) into fastrnn layers.

A ``.keras`` file is a zip of ``config.json`` (the model's architecture), ``metadata.json``
and ``model.weights.h5`` (the variables, in HDF5).  ``load`` reads the configuration of
every SimpleRNN, LSTM and GRU layer, Bidirectional wrappers included, in model order
(depth first through nested models), finds its variables where Keras 3's saver puts them
(``layers/<name>/cell/vars/0..2``, ``<name>`` the snake-case class name with ``_1``, ``_2``,
... for repeats; a Bidirectional's under ``forward_layer`` and ``backward_layer``) and
builds each with ``from_keras`` (fastrnn/interop/keras.py): ``batch_first=True``, Keras's
layout.  A legacy .h5 model file holds the configuration as its ``model_config``
attribute and each layer's variables under ``model_weights/<layer name>``, in the order of
its ``weight_names`` (a Bidirectional's forward half first).

How a Keras layer's configuration maps:

- ``units`` and the weights give the sizes, ``use_bias`` the bias, the weights' dtype the
  layer's (float32 or float64).
- SimpleRNN ``activation`` "tanh" or "relu" is ``nonlinearity``; LSTM and GRU must use
  ``activation="tanh"`` and ``recurrent_activation="sigmoid"``, what fastrnn runs.
- GRU ``reset_after`` is fastrnn's ``reset_after``.
- ``go_backwards=True`` is ``reverse=True``.  Keras then returns the sequence reversed in
  time, fastrnn in input order: Keras's sequence is ``y[:, ::-1]``.
- Bidirectional with ``merge_mode="concat"`` is one ``bidirectional=True`` layer; other
  merge modes are a ValueError.
- ``dropout`` and ``recurrent_dropout`` act only in training and are ignored.
- ``return_sequences``, ``return_state`` and ``stateful`` change what Keras returns, not the
  maths: each layer's ``keras_source`` records them with the layer's name and path.

Reading needs h5py (which Keras itself installs).  The zip members' sizes and each
variable's shape and dtype are checked before anything is read; every failure is a
ValueError naming the file and, for a layer, the layer.  The HDF5 library underneath is not
hardened against damaged files: a .keras file's zip CRC-32 stops accidental damage before
HDF5 sees it, but a damaged legacy .h5 file (or a crafted one) can hang HDF5 -- a byte
inserted into an .h5 model file made it loop while reading the model_config attribute.
Load .h5 files from sources you trust.
"""

import io
import json
import os
import re
import zipfile
import zlib
from dataclasses import dataclass

import numpy as np

from fastrnn.layers.gru import GRU
from fastrnn.layers.lstm import LSTM
from fastrnn.layers.rnn import RNN

__all__ = ["load", "KerasSource"]

_CLASSES = {"SimpleRNN": RNN, "LSTM": LSTM, "GRU": GRU}
_MODELS = ("Sequential", "Functional", "Model")
# Recurrent Keras layers whose cells fastrnn does not run.
_UNSUPPORTED = ("RNN", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D")
# config.json is text describing layers: far smaller than this in any real model.
_CONFIG_LIMIT = 64 << 20
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError,
               RuntimeError, KeyError, ValueError)


@dataclass(frozen=True)
class KerasSource:
    """The Keras layer a fastrnn layer came from (``layer.keras_source``).

    Attributes
    ----------
    name : str
        The Keras layer's name.
    class_name : str
        "SimpleRNN", "LSTM", "GRU" or "Bidirectional".
    path : tuple of str
        The names of the nested models holding it, outermost first (empty at the top).
    return_sequences, return_state, go_backwards, stateful : bool
        As configured in Keras.
    """

    name: str
    class_name: str
    path: tuple = ()
    return_sequences: bool = False
    return_state: bool = False
    go_backwards: bool = False
    stateful: bool = False


def _snake(name):
    """Keras's snake case of a class name (SimpleRNN -> simple_rnn), as its saver names
    the groups of the weights file."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def _read_member(archive, name, limit, path):
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise ValueError(f"{path}: not a Keras 3 .keras file: no {name}") from None
    if info.file_size > limit:
        raise ValueError(f"{path}: {name} declares {info.file_size} bytes, more than the "
                         f"file's {limit}: corrupted file")
    try:
        return archive.read(name)
    except _ZIP_ERRORS as exc:
        raise ValueError(f"{path}: {name} cannot be read, the file is truncated or corrupted "
                         f"({type(exc).__name__}: {exc})") from exc


class _Weights:
    """The variables of a weights file, read with checks: model.weights.h5 of a .keras file
    (``legacy=False``) or the ``model_weights`` group of a legacy .h5 model file."""

    def __init__(self, file, path, limit, h5py, legacy):
        self.file, self.path, self.limit, self.h5py = file, path, limit, h5py
        self.legacy = legacy

    @classmethod
    def open(cls, data_or_path, path, limit, h5py, legacy=False):
        try:
            source = io.BytesIO(data_or_path) if isinstance(data_or_path, bytes) \
                else data_or_path
            file = h5py.File(source, "r")
        except Exception as exc:       # h5py's OSError, or what HDF5 raises on damage
            raise ValueError(f"{path}: the weights are not a readable HDF5 file "
                             f"({type(exc).__name__}: {exc})") from exc
        return cls(file, path, limit, h5py, legacy)

    def _array(self, ds, label, where):
        if not isinstance(ds, self.h5py.Dataset) or ds.dtype.kind != "f" \
                or ds.dtype.itemsize not in (4, 8) or ds.ndim not in (1, 2):
            raise ValueError(f"{self.path}: {where}: variable {label} is not a 1-d or 2-d "
                             f"float32 or float64 array")
        nbytes = int(np.prod(ds.shape, dtype=object)) * ds.dtype.itemsize
        if nbytes > self.limit:
            raise ValueError(f"{self.path}: {where}: variable {label} declares {nbytes} "
                             f"bytes in a {self.limit}-byte file: corrupted")
        try:
            return np.asarray(ds[()])
        except Exception as exc:
            raise ValueError(f"{self.path}: {where}: variable {label} cannot be read "
                             f"({type(exc).__name__}: {exc})") from exc

    def arrays(self, group_path, where):
        """[kernel, recurrent_kernel(, bias)] stored under group_path/cell/vars (.keras)."""
        full = f"{group_path}/cell/vars"
        try:
            group = self.file[full]
            keys = sorted(group.keys(), key=lambda k: int(k) if k.isdigit() else -1)
        except Exception as exc:
            raise ValueError(f"{self.path}: {where}: no variables at {full} in "
                             f"model.weights.h5 ({type(exc).__name__}: {exc})") from exc
        if keys != [str(i) for i in range(len(keys))] or len(keys) not in (2, 3):
            raise ValueError(f"{self.path}: {where}: expected variables 0, 1 (and 2) at "
                             f"{full}, found {keys}")
        return [self._array(group[k], f"{full}/{k}", where) for k in keys]

    def legacy_arrays(self, layer_name, part, where):
        """The variables of a legacy .h5 file's layer, in its weight_names order; part
        "forward_layer" or "backward_layer" takes the first or second half (Bidirectional)."""
        try:
            group = self.file["model_weights"][layer_name]
            names = [n.decode() if isinstance(n, bytes) else str(n)
                     for n in group.attrs["weight_names"]]
        except Exception as exc:
            raise ValueError(f"{self.path}: {where}: no weights for layer {layer_name!r} "
                             f"({type(exc).__name__}: {exc})") from exc
        if part is not None:
            half = len(names) // 2
            names = names[:half] if part == "forward_layer" else names[half:]
        if len(names) not in (2, 3):
            raise ValueError(f"{self.path}: {where}: expected 2 or 3 variables, found "
                             f"{len(names)}")
        try:
            datasets = [group[n] for n in names]
        except Exception as exc:
            raise ValueError(f"{self.path}: {where}: a variable is missing "
                             f"({type(exc).__name__}: {exc})") from exc
        return [self._array(ds, n, where) for ds, n in zip(datasets, names)]


def _options(class_name, config, where):
    """fastrnn constructor arguments that a Keras recurrent layer's config implies."""
    activation = config.get("activation", "tanh")
    if class_name == "SimpleRNN":
        if activation not in ("tanh", "relu"):
            raise ValueError(f"{where}: activation={activation!r}; fastrnn runs 'tanh' or "
                             f"'relu'")
        return {"nonlinearity": activation}
    recurrent = config.get("recurrent_activation", "sigmoid")
    if activation != "tanh" or recurrent != "sigmoid":
        raise ValueError(f"{where}: activation={activation!r}, recurrent_activation="
                         f"{recurrent!r}; fastrnn's {class_name} runs 'tanh' and 'sigmoid'")
    return {}


def _one_direction(class_name, config, weights, where):
    """The fastrnn layer of one Keras recurrent layer (its direction aside)."""
    cls = _CLASSES[class_name]
    options = _options(class_name, config, where)
    if weights[0].dtype == np.float64:
        options["dtype"] = np.float64
    try:
        if class_name == "GRU":
            reset_after = config.get("reset_after", True)
            return cls.from_keras(weights, reset_after=bool(reset_after), **options)
        return cls.from_keras(weights, **options)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: {exc}") from exc


def _like(layer, **changes):
    """A layer of layer's class and configuration with changes, holding its parameters."""
    options = dict(bias=layer.bias, batch_first=True, dtype=layer.dtype)
    for key in ("nonlinearity", "reset_after"):
        if hasattr(layer, key):
            options[key] = getattr(layer, key)
    options.update(changes)
    return type(layer)(layer.input_size, layer.hidden_size, **options)


def _units_check(layer, config, where):
    units = config.get("units")
    if units != layer.hidden_size:
        raise ValueError(f"{where}: units={units!r} but the weights have {layer.hidden_size}")


def _recurrent(entry, fetch, where):
    """The fastrnn layer of a recurrent Keras layer entry; fetch(part, where) gives its
    variables (part None, or a Bidirectional's "forward_layer" or "backward_layer")."""
    class_name, config = entry["class_name"], entry["config"]
    if class_name in _CLASSES:
        layer = _one_direction(class_name, config, fetch(None, where), where)
        _units_check(layer, config, where)
        if config.get("go_backwards", False):
            backwards = _like(layer, reverse=True)
            backwards.load_state_dict(layer.params)
            layer = backwards
        return layer, config
    # Bidirectional: one fastrnn layer with both directions
    merge = config.get("merge_mode", "concat")
    if merge != "concat":
        raise ValueError(f"{where}: merge_mode={merge!r}; fastrnn concatenates the two "
                         f"directions (merge_mode='concat')")
    inner = [config.get("layer"), config.get("backward_layer")]
    if not isinstance(inner[0], dict):
        raise ValueError(f"{where}: the Bidirectional wrapper has no layer")
    if not isinstance(inner[1], dict):          # Keras builds the backward from the layer
        inner[1] = dict(inner[0], config=dict(inner[0].get("config", {}), go_backwards=True))
    halves = []
    for spec, sub in zip(inner, ("forward_layer", "backward_layer")):
        name, cfg = spec.get("class_name"), spec.get("config")
        if name not in _CLASSES or not isinstance(cfg, dict):
            raise ValueError(f"{where}: {sub} is a {name!r}; fastrnn runs SimpleRNN, LSTM "
                             f"or GRU")
        if bool(cfg.get("go_backwards", False)) != (sub == "backward_layer"):
            raise ValueError(f"{where}: {sub} has go_backwards={cfg.get('go_backwards')}; "
                             f"fastrnn runs a forward and a backward direction")
        part = _one_direction(name, cfg, fetch(sub, f"{where} {sub}"), f"{where} {sub}")
        _units_check(part, cfg, f"{where} {sub}")
        halves.append((name, cfg, part))
    (fname, fcfg, fwd), (bname, _, bwd) = halves
    same = ("input_size", "hidden_size", "bias", "dtype")
    if fname != bname or any(getattr(fwd, k) != getattr(bwd, k) for k in same) \
            or getattr(fwd, "nonlinearity", None) != getattr(bwd, "nonlinearity", None) \
            or getattr(fwd, "reset_after", None) != getattr(bwd, "reset_after", None):
        raise ValueError(f"{where}: the forward and backward layers differ; fastrnn runs "
                         f"both directions of one configuration")
    layer = _like(fwd, bidirectional=True)
    params = dict(fwd.params)
    params.update({k + "_reverse": v for k, v in bwd.params.items()})
    layer.load_state_dict(params)
    return layer, dict(fcfg, return_sequences=fcfg.get("return_sequences", False))


def _walk(model, weights, group, path, source, out):
    """Append the fastrnn layers of a model config (depth first) to out."""
    config = model.get("config")
    layers = config.get("layers") if isinstance(config, dict) else None
    if not isinstance(layers, list):
        raise ValueError(f"{source}: model {'/'.join(path) or 'at the top'} has no layer list")
    counts = {}
    for entry in layers:
        if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict) \
                or not isinstance(entry.get("class_name"), str):
            raise ValueError(f"{source}: a layer entry of config.json is not a Keras layer")
        class_name = entry["class_name"]
        key = _snake(class_name)
        n = counts.get(key, 0)
        counts[key] = n + 1
        key = key if n == 0 else f"{key}_{n}"
        name = entry["config"].get("name", key)
        child = f"{group}/layers/{key}" if group else f"layers/{key}"
        where = f"{source}: layer {'/'.join(path + (str(name),))!r} ({class_name})"
        if class_name in _MODELS:
            if weights.legacy:
                raise ValueError(f"{where}: fastrnn reads the layers of nested models from "
                                 f".keras files, not from legacy .h5 files")
            _walk(entry, weights, child, path + (str(name),), source, out)
        elif class_name in _UNSUPPORTED:
            raise ValueError(f"{where}: fastrnn runs SimpleRNN, LSTM, GRU and Bidirectional "
                             f"layers, not {class_name}")
        elif class_name in _CLASSES or class_name == "Bidirectional":
            if weights.legacy:
                def fetch(part, at, name=str(name)):
                    return weights.legacy_arrays(name, part, at)
            else:
                def fetch(part, at, child=child):
                    return weights.arrays(child if part is None else f"{child}/{part}", at)
            layer, cfg = _recurrent(entry, fetch, where)
            layer.keras_source = KerasSource(
                str(name), class_name, path, bool(cfg.get("return_sequences", False)),
                bool(entry["config"].get("return_state", False)),
                bool(cfg.get("go_backwards", False)), bool(cfg.get("stateful", False)))
            out.append(layer)


_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def _model_config(text, source, what):
    try:
        model = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"{source}: {what} is not valid JSON ({exc})") from exc
    if not isinstance(model, dict) or model.get("class_name") not in _MODELS:
        raise ValueError(f"{source}: {what} describes no Sequential or Functional model")
    return model


def _open(source, size, h5py):
    """(model config, _Weights) of a .keras file or a legacy .h5 model file."""
    with open(source, "rb") as f:
        magic = f.read(len(_HDF5_MAGIC))
    if magic == _HDF5_MAGIC:               # legacy .h5: the config is an attribute
        weights = _Weights.open(source, source, size, h5py, legacy=True)
        try:
            text = weights.file.attrs["model_config"]
        except Exception as exc:
            weights.file.close()
            raise ValueError(f"{source}: an HDF5 file without a Keras model_config "
                             f"(weights only?)") from exc
        try:
            return _model_config(text, source, "model_config"), weights
        except ValueError:
            weights.file.close()
            raise
    try:
        archive = zipfile.ZipFile(source)
    except _ZIP_ERRORS as exc:
        raise ValueError(f"{source}: neither a Keras 3 .keras file (a zip archive) nor a "
                         f"legacy .h5 model file: {type(exc).__name__}: {exc}") from exc
    with archive:
        text = _read_member(archive, "config.json", min(size, _CONFIG_LIMIT), source)
        model = _model_config(text, source, "config.json")
        data = _read_member(archive, "model.weights.h5", size, source)
    return model, _Weights.open(data, source, size, h5py)


def load(path):
    """The fastrnn layers of a Keras 3 ``.keras`` model file (or a legacy ``.h5`` one).

    Parameters
    ----------
    path : str or os.PathLike
        A file written by Keras 3's ``model.save("model.keras")``, or a legacy HDF5 model
        file (``model.save("model.h5")``; nested models are not read from these).

    Returns
    -------
    layers : list of fastrnn.RNN, fastrnn.LSTM or fastrnn.GRU
        One layer per SimpleRNN, LSTM, GRU or Bidirectional layer, in model order (nested
        models depth first), each ``batch_first=True`` with ``layer.keras_source`` set (a
        `KerasSource`).  Run on the same (B, T, D) input, a layer's y is Keras's sequence
        output (reversed in time for ``go_backwards``) and its final state Keras's state.

    Raises
    ------
    ImportError
        If h5py is not installed.
    FileNotFoundError
        If there is no file at path.
    ValueError
        If the file is not a readable .keras or .h5 model file, has no recurrent layer, or
        a layer uses what fastrnn cannot run (an activation, a merge mode, a generic RNN
        cell); the message names the file and the layer.
    """
    try:
        import h5py
    except ImportError as exc:
        raise ImportError("fastrnn.keras.load needs h5py: pip install \"fastrnn[keras]\" "
                          "(or pip install h5py)") from exc
    source = os.fspath(path)
    model, weights = _open(source, os.path.getsize(source), h5py)
    layers = []
    with weights.file:
        _walk(model, weights, "", (), source, layers)
    if not layers:
        raise ValueError(f"{source}: no SimpleRNN, LSTM, GRU or Bidirectional layer in the "
                         f"model: nothing for fastrnn to load")
    return layers
