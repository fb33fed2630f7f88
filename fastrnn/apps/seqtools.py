"""What the sequence-to-sequence examples share (fastrnn.apps.dates, digits, ctcdigits):
edit distance and label error rate, a seeded held-out split, and saving a model's
named layers to an .npz file without pickle.

A saved model is one .npz archive holding ``format`` (the app's name),
``format_version``, ``config`` (JSON text: the constructor's keywords) and every
parameter of every layer as ``<layer>.<name>``; it is read back with
``allow_pickle=False``.
"""

import collections
import json
import time
import zipfile

import numpy as np

from fastrnn.runtime.blas_threads import single_threaded_blas
from fastrnn.training.clip import clip_grad_norm
from fastrnn.training.optim import Adam

__all__ = ["edit_distance", "label_error_rate", "held_out_split", "save_layers", "read_archive",
           "load_layers"]


def edit_distance(a, b):
    """Levenshtein distance: the fewest insertions, deletions and substitutions turning
    sequence a into sequence b.

    ::

        d[i, j] = min(d[i-1, j] + 1, d[i, j-1] + 1, d[i-1, j-1] + (a_i != b_j))
    """
    a, b = list(a), list(b)
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def label_error_rate(references, hypotheses):
    """sum of edit distances / sum of reference lengths (the usual label or character error
    rate over a data set)."""
    references, hypotheses = list(references), list(hypotheses)
    if len(references) != len(hypotheses):
        raise ValueError(f"hypotheses: expected {len(references)} (one per reference), got "
                         f"{len(hypotheses)}")
    total = sum(len(r) for r in references)
    if total == 0:
        raise ValueError("references: expected at least one label in all")
    return sum(edit_distance(r, h) for r, h in zip(references, hypotheses)) / total


def held_out_split(count, held_out, seed):
    """(train indices, held-out indices) of range(count): a seeded permutation's first
    count - held_out and last held_out items, each sorted."""
    if not 0 < held_out < count:
        raise ValueError(f"held_out: expected an integer in [1, {count - 1}], got {held_out}")
    order = np.random.default_rng(seed).permutation(count)
    return np.sort(order[:count - held_out]), np.sort(order[count - held_out:])


def save_layers(path, fmt, version, config, layers):
    """Write config (a JSON-able dict) and the params of layers (a dict name -> layer) to
    an .npz file at path."""
    arrays = {"format": np.array(fmt), "format_version": np.array(version),
              "config": np.array(json.dumps(config))}
    for prefix, layer in layers.items():
        for name, value in layer.params.items():
            arrays[f"{prefix}.{name}"] = value
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def read_archive(path, fmt, version, name=None):
    """(config dict, arrays) of a file written by save_layers with this format and version.

    Raises FileNotFoundError for a missing file and ValueError (starting with the path)
    for anything else that is not such a model; the messages call it a `name` model
    (fmt unless given).
    """
    name = fmt if name is None else name
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path}: not a readable .npz file ({exc})") from None
    found = arrays.get("format")
    if found is None or found.dtype.kind != "U" or found.item() != fmt:
        raise ValueError(f"{path}: not a fastrnn {name} model (no format={fmt!r})")
    try:
        found_version = int(arrays["format_version"])
        config = json.loads(str(arrays["config"].item()))
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: corrupted {name} model ({exc})") from None
    if found_version != version:
        raise ValueError(f"{path}: {name} format version {found_version}, this fastrnn reads "
                         f"version {version}")
    if not isinstance(config, dict):
        raise ValueError(f"{path}: corrupted {name} model (config is not a mapping)")
    return config, arrays


def load_layers(path, fmt, arrays, layers):
    """Copy the arrays saved by save_layers into layers (a dict name -> layer)."""
    try:
        for prefix, layer in layers.items():
            layer.load_state_dict({k[len(prefix) + 1:]: v for k, v in arrays.items()
                                   if k.startswith(prefix + ".")})
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: corrupted {fmt} model ({exc})") from None


class SavedModel:
    """save() and load() for an app's model made of fastrnn layers: a subclass sets
    FORMAT and FORMAT_VERSION and has ``config`` (the keyword arguments that make it)
    and ``named_layers`` (see save_layers)."""

    FORMAT = None
    FORMAT_VERSION = None

    def save(self, path):
        """Write the model to an .npz file (configuration and weights, no pickle)."""
        save_layers(path, self.FORMAT, self.FORMAT_VERSION, self.config, self.named_layers)

    @classmethod
    def load(cls, path):
        """Read a model written by save() (allow_pickle=False)."""
        config, arrays = read_archive(path, cls.FORMAT, cls.FORMAT_VERSION)
        try:
            model = cls(**config)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{path}: corrupted {cls.FORMAT} model ({exc})") from None
        load_layers(path, cls.FORMAT, arrays, model.named_layers)
        return model


def train_loop(model, next_batch, *, steps, batch_size, lr, clip, progress=None):
    """The example apps' training: for each step, next_batch() gives the arguments of
    model.train_step (the loss of a batch, gradients added into its layers' grads),
    then clipping to clip and one Adam step over model.layers; the learning rate
    decays linearly from lr to a tenth of it.  progress(step, steps, running loss,
    examples per second), if given, after each step.

    Returns dict with steps, seconds, examples_per_s, first_loss, running_loss (mean of
    the last 50 steps).
    """
    opt = Adam(model.layers, lr=lr)
    recent = collections.deque(maxlen=50)
    first, seconds = None, 0.0
    with single_threaded_blas():    # small products: BLAS threads only get in the way
        for step in range(1, steps + 1):
            t0 = time.perf_counter()
            batch = next_batch()
            opt.lr = lr * (1 - 0.9 * (step - 1) / max(1, steps - 1))
            opt.zero_grad()
            loss = model.train_step(*batch)
            clip_grad_norm([layer.grads for layer in model.layers], clip)
            opt.step()
            seconds += time.perf_counter() - t0
            recent.append(loss)
            first = loss if first is None else first
            if progress is not None:
                progress(step, steps, float(np.mean(recent)), step * batch_size / seconds)
    return dict(steps=steps, seconds=seconds, examples_per_s=steps * batch_size / seconds,
                first_loss=first, running_loss=float(np.mean(recent)))
