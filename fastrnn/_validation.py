"""Input checks and conversions for the public API.

Every public entry point passes its arguments through here before any
compiled kernel runs: the kernels trust their inputs, so a bad shape must
stop here as a ValueError or TypeError that names the argument, says what
was expected and what came.  Nothing here modifies what the caller passed;
conversions copy only when the dtype or memory layout requires it.
"""

import numbers

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def check_positive_int(value, name, minimum=1):
    """Return value as an int >= minimum, or raise naming the argument."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an integer, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value}")
    return int(value)


def check_bool(value, name):
    """Return value as a bool, or raise naming the argument (only True or False are taken)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected True or False, got {type(value).__name__} {value!r}")
    return bool(value)


def check_float_dtype(dtype, name="dtype"):
    """Return the np.dtype for float32 or float64, or raise naming the argument."""
    if dtype is None:   # np.dtype(None) would quietly mean float64
        raise TypeError(f"{name}: expected float32 or float64, got None")
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"{name}: expected float32 or float64, got {dtype!r}") from exc
    if dt not in FLOAT_DTYPES:
        raise ValueError(f"{name}: expected float32 or float64, got {dt}")
    return dt


def as_real_array(value, name):
    """np.asarray(value), accepting only real numbers (bool, integer or float dtypes)."""
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: could not be converted to an array ({exc})") from exc
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected real numbers, got an array of dtype {arr.dtype}")
    return arr


def check_shape(arr, name, expected):
    """Raise a ValueError naming the argument when arr.shape != expected."""
    if arr.shape != tuple(expected):
        raise ValueError(f"{name}: expected shape {tuple(expected)}, got shape {arr.shape}")


def check_sequence(x, name, feature_size, batch_first, dtype):
    """Validate a sequence batch and return it time-major and contiguous.

    Accepts (T, B, D), or (B, T, D) when batch_first, or an unbatched (T, D).
    Returns (array of shape (T, B, D) in dtype, C-contiguous; unbatched flag).
    """
    arr = as_real_array(x, name)
    layout = "(B, T, D)" if batch_first else "(T, B, D)"
    if arr.ndim not in (2, 3):
        raise ValueError(f"{name}: expected a 3-D array {layout} or a 2-D unbatched (T, D) "
                         f"array, got a {arr.ndim}-D array of shape {arr.shape}")
    if arr.shape[-1] != feature_size:
        raise ValueError(f"{name}: expected the last axis to be the feature size "
                         f"D = {feature_size}, got shape {arr.shape}")
    unbatched = arr.ndim == 2
    if unbatched:
        arr = arr[:, np.newaxis, :]
    elif batch_first:
        arr = arr.transpose(1, 0, 2)
    if arr.shape[0] == 0:
        raise ValueError(f"{name}: expected a sequence length T >= 1, got shape "
                         f"{np.shape(x)}")
    if arr.shape[0] * arr.shape[1] >= 2**31:
        raise ValueError(f"{name}: T * B must be below 2**31 (BLAS indexes with 32-bit "
                         f"integers), got shape {np.shape(x)}")
    return np.ascontiguousarray(arr, dtype=dtype), unbatched


def check_state(state, name, shape, has_cell, unbatched, dtype):
    """Validate a recurrent state and return a list of (L*dirs, B, H) arrays.

    shape is the batched (L*dirs, B, H); an unbatched state drops the B axis.
    The state is one array h, or for LSTM (has_cell) a pair (h, c).
    None means zeros.  The returned arrays are C-contiguous in dtype.
    """
    count = 2 if has_cell else 1
    if state is None:
        return [np.zeros(shape, dtype) for _ in range(count)]
    user_shape = (shape[0], shape[2]) if unbatched else tuple(shape)
    if has_cell:
        if not isinstance(state, (tuple, list)) or len(state) != 2:
            got = (f"a {type(state).__name__} of length {len(state)}"
                   if isinstance(state, (tuple, list)) else type(state).__name__)
            raise TypeError(f"{name}: expected a pair (h, c) of arrays of shape {user_shape}, "
                            f"got {got}")
        parts = [(state[0], f"{name}[0] (h)"), (state[1], f"{name}[1] (c)")]
    else:
        if isinstance(state, tuple):
            raise TypeError(f"{name}: expected one array h of shape {user_shape}, got a tuple "
                            f"of length {len(state)} (only LSTM takes a pair (h, c))")
        parts = [(state, name)]
    out = []
    for value, label in parts:
        arr = as_real_array(value, label)
        check_shape(arr, label, user_shape)
        if unbatched:
            arr = arr[:, np.newaxis, :]
        out.append(np.ascontiguousarray(arr, dtype=dtype))
    return out


def check_real(value, name, expected, valid):
    """Return value as a float x with valid(x), or raise naming the argument.

    A bool or a non-number is a TypeError; a number outside the range
    (valid(x) false, NaN included) a ValueError.  expected describes the
    range in the message, e.g. "a number in [0, 1)".
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected {expected}, got {type(value).__name__} {value!r}")
    x = float(value)
    if not valid(x):
        raise ValueError(f"{name}: expected {expected}, got {value!r}")
    return x


def check_probability(value, name):
    """Return value as a float p with 0 <= p < 1, or raise naming the argument."""
    return check_real(value, name, "a number in [0, 1)", lambda p: 0.0 <= p < 1.0)
