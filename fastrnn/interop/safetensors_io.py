"""Reading and writing .safetensors files of parameters, under torch's state_dict names.

A .safetensors file is an 8-byte header length, a JSON header giving each tensor's dtype,
shape and byte range, then the data.  It is read through the ``safetensors`` package's NumPy
API (no torch): the package checks that the header's ranges cover the data exactly, and this
module checks every tensor's dtype and shape against the layer before reading any data, so a
file can make fastrnn allocate no more than the parameters the layer already has.  The
package is imported only when a file is read or written (``pip install
"fastrnn[safetensors]"``).  The layers' ``load_state_dict(path)`` and
``save_state_dict(path)`` (fastrnn/layers/module.py) are the public entry points.
"""

import os
import uuid

import numpy as np

# safetensors' names of the floating-point dtypes that a parameter may be stored in.
_FLOAT_DTYPES = {"F16": np.float16, "F32": np.float32, "F64": np.float64}


def _safetensors():
    """The safetensors package, imported when a file is read or written."""
    try:
        import safetensors
        import safetensors.numpy  # noqa: F401  (save_file)
    except ImportError as exc:
        raise ImportError("reading or writing .safetensors files needs the safetensors "
                          "package: pip install \"fastrnn[safetensors]\" (or pip install "
                          "safetensors)") from exc
    return safetensors


def read(path, plan):
    """{parameter name: array} read from the .safetensors file at path.

    plan(keys) gets the file's tensor names and returns {parameter name: (file key, shape)}
    (or raises ValueError); each of those tensors is checked for a float dtype and that
    shape before it is read.  Errors are ValueErrors that start with the path.
    """
    st = _safetensors()
    path = os.fspath(path)
    try:
        handle = st.safe_open(path, framework="numpy")
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except Exception as exc:      # SafetensorError, or whatever the header parser raises
        raise ValueError(f"{path}: not a readable .safetensors file, it is truncated or "
                         f"corrupted ({type(exc).__name__}: {exc})") from exc
    with handle as f:
        wanted = plan(list(f.keys()), path)
        for param, (key, shape) in wanted.items():
            piece = f.get_slice(key)
            dtype, got = piece.get_dtype(), tuple(piece.get_shape())
            if dtype not in _FLOAT_DTYPES:
                raise ValueError(f"{path}: tensor {key!r} has dtype {dtype}; expected a "
                                 f"floating-point one ({', '.join(_FLOAT_DTYPES)})")
            if got != tuple(shape):
                raise ValueError(f"{path}: tensor {key!r} has shape {got}; {param} needs "
                                 f"{tuple(shape)}")
        try:
            return {param: f.get_tensor(key) for param, (key, _) in wanted.items()}
        except Exception as exc:
            raise ValueError(f"{path}: a tensor cannot be read, the file is corrupted "
                             f"({type(exc).__name__}: {exc})") from exc


def write(path, arrays):
    """Write {name: array} to a .safetensors file at path, through a temporary file in the
    same directory renamed over path (readers never see a partly written file)."""
    st = _safetensors()
    path = os.fspath(path)
    directory, base = os.path.split(os.path.abspath(path))
    tmp = os.path.join(directory, f".{base}.{uuid.uuid4().hex}.tmp")
    try:
        st.numpy.save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
