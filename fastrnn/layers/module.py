"""What every layer shares: params and grads with torch-like state_dict handling
(ParamModule), and the cache of the non-recurrent layers (Embedding, Linear)."""

import os
from collections.abc import Mapping

import numpy as np

from fastrnn.interop import safetensors_io as _safetensors_io
from fastrnn.runtime.spares import Spares
from fastrnn._validation import as_real_array, check_float_dtype, check_shape


class LayerCache:
    """What a layer's forward keeps for its backward: opaque to users."""

    __slots__ = ("owner", "data")

    def __init__(self, owner, data):
        self.owner = owner
        self.data = data

    def __repr__(self):
        return f"<fastrnn LayerCache of {type(self.owner).__name__}>"


class ParamModule:
    """params and grads dicts of name -> ndarray, with torch-like state_dict handling."""

    def _init_parameters(self, dtype, seed):
        """Set the layer's dtype (checked) and draw its parameters (reset_parameters)."""
        self.dtype = check_float_dtype(dtype)
        self.params = {}
        self.grads = {}
        self.reset_parameters(seed)

    def state_dict(self):
        """Copies of the parameters, keyed by torch's state_dict names."""
        return {name: value.copy() for name, value in self.params.items()}

    def load_state_dict(self, source, prefix=""):
        """Copy parameters in from a mapping of name -> array-like, or a .safetensors file.

        Every name of params must be present and no other; every shape must
        match torch's.  Values are converted to the layer's dtype and copied
        into the existing arrays (so references to layer.params stay valid),
        all checked before any is written.  A torch state_dict converted with
        ``{k: v.numpy() for k, v in sd.items()}`` loads directly.

        Parameters
        ----------
        source : mapping of str to array-like, or str or os.PathLike
            The parameters, or the path of a .safetensors file holding them (read with the
            safetensors package's NumPy API; each tensor's dtype and shape are checked
            before its data is read).
        prefix : str, default ""
            Take only the names that start with prefix, without it: ``prefix="encoder.rnn."``
            loads ``encoder.rnn.weight_ih_l0`` as ``weight_ih_l0`` from a whole model's
            state dict and ignores the other names.  A recurrent layer with one layer and
            one direction also takes the names of a torch cell (``nn.LSTMCell``'s
            ``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh``) for its ``_l0`` ones.

        Raises
        ------
        ValueError
            If a name is missing or unexpected, a shape does not match, no name has the
            prefix, or the file is not a readable .safetensors file (the message names it).
        TypeError
            If prefix is not a str, or source neither a mapping nor a path.
        """
        if not isinstance(prefix, str):
            raise TypeError(f"prefix: expected a str, got {type(prefix).__name__}")
        expected = {name: value.shape for name, value in self.params.items()}
        if isinstance(source, (str, os.PathLike)):
            def plan(keys, path):
                names = self._select(keys, prefix, path)
                return {name: (names[name], expected[name]) for name in expected}
            state, what = _safetensors_io.read(source, plan), os.fspath(source)
        elif isinstance(source, Mapping) or hasattr(source, "keys"):
            names = self._select(list(source), prefix, "state_dict")
            state, what = {name: source[key] for name, key in names.items()}, "state_dict"
        else:
            raise TypeError(f"state_dict: expected a mapping of names to arrays or the path "
                            f"of a .safetensors file, got {type(source).__name__}")
        converted = {}
        for name, target in self.params.items():
            label = f"{what}[{prefix + name!r}]"
            value = as_real_array(state[name], label)
            check_shape(value, label, target.shape)
            converted[name] = value
        for name, value in converted.items():
            np.copyto(self.params[name], value, casting="unsafe")

    def save_state_dict(self, path, prefix=""):
        """Write the parameters to a .safetensors file, under torch's state_dict names.

        The file is what ``safetensors.torch.save_file(module.state_dict(), path)`` writes
        for the torch module of the same configuration, so torch takes it back with
        ``module.load_state_dict(safetensors.torch.load_file(path))``.  It is written to a
        temporary file and renamed over path.

        Parameters
        ----------
        path : str or os.PathLike
            Where to write.
        prefix : str, default ""
            Put before every name (``"encoder.rnn."``), as a submodule's names are.
        """
        if not isinstance(prefix, str):
            raise TypeError(f"prefix: expected a str, got {type(prefix).__name__}")
        _safetensors_io.write(path, {prefix + k: v for k, v in self.params.items()})

    def _select(self, keys, prefix, what):
        """{parameter name: key of the source} for the keys with prefix, checked to name
        every parameter and no other."""
        names = {k[len(prefix):]: k for k in keys if isinstance(k, str) and k.startswith(prefix)}
        if prefix and not names:
            shown = keys[:6]
            raise ValueError(f"{what}: no name starts with prefix {prefix!r} (names: {shown}"
                             f"{' ...' if len(keys) > 6 else ''})")
        names = self._from_source_names(names, what)
        missing = [k for k in self.params if k not in names]
        unexpected = [names[k] for k in names if k not in self.params] + \
            ([k for k in keys if not isinstance(k, str) or not k.startswith(prefix)]
             if not prefix else [])
        if missing or unexpected:
            raise ValueError(f"{what}: missing keys {[prefix + k for k in missing]}, "
                             f"unexpected keys {unexpected}")
        return names

    def _from_source_names(self, names, what):
        """names with a source's other naming turned into the layer's (a hook: torch cells'
        names for the recurrent layers)."""
        return names

    def _spares(self):
        """The buffers of the arrays this layer returns (fastrnn/runtime/spares.py)."""
        spares = self.__dict__.get("_spare_buffers")
        if spares is None:
            spares = self.__dict__.setdefault("_spare_buffers", Spares())
        return spares

    def zero_grad(self):
        """Set every gradient in grads to zero."""
        for g in self.grads.values():
            g.fill(0)

    def _owned_cache(self, cache, cache_type):
        """cache, after checking it is a cache_type made by this layer's forward()."""
        if not isinstance(cache, cache_type):
            raise TypeError(f"cache: expected the cache returned by this layer's forward(), "
                            f"got {type(cache).__name__}")
        if cache.owner is not self:
            raise ValueError("cache: this cache was returned by another layer's forward(); "
                             "pass the cache of this layer")
        return cache

    def _check_cache(self, cache):
        return self._owned_cache(cache, LayerCache).data
