"""What every layer shares: params and grads with torch-like state_dict handling
(ParamModule), and the cache of the non-recurrent layers (Embedding, Linear)."""

import numpy as np

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

    def load_state_dict(self, state_dict):
        """Copy parameters in from a mapping of name -> array-like.

        Every name of params must be present and no other; every shape must
        match torch's.  Values are converted to the layer's dtype and copied
        into the existing arrays (so references to layer.params stay valid),
        all checked before any is written.  A torch state_dict converted with
        ``{k: v.numpy() for k, v in sd.items()}`` loads directly.
        """
        missing = [k for k in self.params if k not in state_dict]
        unexpected = [k for k in state_dict if k not in self.params]
        if missing or unexpected:
            raise ValueError(f"state_dict: missing keys {missing}, unexpected keys {unexpected}")
        converted = {}
        for name, target in self.params.items():
            value = as_real_array(state_dict[name], f"state_dict[{name!r}]")
            check_shape(value, f"state_dict[{name!r}]", target.shape)
            converted[name] = value
        for name, value in converted.items():
            np.copyto(self.params[name], value, casting="unsafe")

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
