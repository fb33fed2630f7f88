"""fastrnn.Chain: layers run one after another, with their params and grads under one name."""

from fastrnn.deploy.stepper import Stepper
from fastrnn.layers.base import RecurrentLayer
from fastrnn.layers.linear import Linear
from fastrnn.layers.module import LayerCache, ParamModule

__all__ = ["Chain", "ChainStepper"]


def _is_recurrent(layer):
    # a recurrent layer's forward returns (y, state_n, cache) and takes a state
    return isinstance(layer, RecurrentLayer)


class Chain(ParamModule):
    """Layers applied in order, y = f_n(... f_2(f_1(x))), as one object.

    Recurrent layers (RNN, LSTM, GRU) take and give their state; the chain
    keeps one state per recurrent layer, in order, so that truncated BPTT
    carries every layer's state to the next window::

        model = fastrnn.Chain(fastrnn.Embedding(V, 200), fastrnn.LSTM(200, 256),
                              fastrnn.LSTM(256, 128), fastrnn.Linear(128, V))
        logits, states, cache = model.forward(tokens, states)
        dx = model.backward(dlogits, cache)      # every layer's grads, in reverse order
        opt = fastrnn.Adam(model)                # one "layer" with every parameter

    Parameters
    ----------
    *layers : fastrnn layers (Embedding, Linear, RNN, LSTM, GRU, or anything with
        params, grads, forward and backward of the same conventions)

    Attributes
    ----------
    layers : list
    params, grads : dict
        Every layer's arrays (the arrays themselves, not copies) under
        "<position>.<name>", like a torch.nn.Sequential's state_dict.

    Methods
    -------
    chain(x, states=None) -> (y, states)
        Inference.
    forward(x, states=None) -> (y, states, cache)
    backward(dy, cache) -> dx
        dx is None when the first layer is an Embedding.  The recurrent states'
        gradients are not carried back (truncated BPTT).
    softmax_cross_entropy(x, targets, states=None, mask=None, backward=True) -> (loss, states)
        A whole training pass of a chain that ends in a Linear, with the
        output layer and the loss fused (see there).
    stepper(batch_size=None) -> ChainStepper
        The chain advanced one position per call (sampling a sequence).
    state_dict(), load_state_dict(mapping), zero_grad(), params_changed()
    """

    def __init__(self, *layers):
        if not layers:
            raise ValueError("layers: expected at least one layer")
        for i, layer in enumerate(layers):
            for attr in ("params", "grads", "forward", "backward"):
                if not hasattr(layer, attr):
                    raise TypeError(f"layers: the layer at position {i} "
                                    f"({type(layer).__name__}) has no {attr}")
        self.layers = list(layers)

    def _named(self, attr):
        return {f"{i}.{name}": value for i, layer in enumerate(self.layers)
                for name, value in getattr(layer, attr).items()}

    @property
    def params(self):
        return self._named("params")

    @property
    def grads(self):
        return self._named("grads")

    @property
    def dtype(self):
        return self.layers[0].dtype

    def load_state_dict(self, state_dict):
        """Copy parameters in from a mapping "<position>.<name>" -> array (every name, checked
        before any is written)."""
        ParamModule.load_state_dict(self, state_dict)
        self.params_changed()

    def params_changed(self):
        """Tell every layer that can keep derived copies of its weights that they changed."""
        for layer in self.layers:
            changed = getattr(layer, "params_changed", None)
            if callable(changed):
                changed()

    def _states(self, states):
        count = sum(map(_is_recurrent, self.layers))
        if states is None:
            return [None] * count
        states = list(states)
        if len(states) != count:
            raise ValueError(f"states: expected {count} states (one per recurrent layer), "
                             f"got {len(states)}")
        return states

    def __call__(self, x, states=None):
        """Inference: (y, states), the states of the recurrent layers in order."""
        states, out, r = self._states(states), [], 0
        for layer in self.layers:
            if _is_recurrent(layer):
                x, s = layer(x, states[r])
                out.append(s)
                r += 1
            else:
                x = layer(x)
        return x, out

    def forward(self, x, states=None):
        """Training forward: (y, states, cache)."""
        states, out, caches, r = self._states(states), [], [], 0
        for layer in self.layers:
            if _is_recurrent(layer):
                x, s, cache = layer.forward(x, states[r])
                out.append(s)
                r += 1
            else:
                x, cache = layer.forward(x)
            caches.append(cache)
        return x, out, LayerCache(self, caches)

    def backward(self, dy, cache):
        """Backward through every layer in reverse order; adds into each layer's grads."""
        caches = self._check_cache(cache)
        d = dy
        for layer, c in zip(reversed(self.layers), reversed(caches)):
            d = layer.backward(d, c)
            if _is_recurrent(layer):
                d = d[0]             # (dx, dstate0): the state's gradient stops here
        return d

    def softmax_cross_entropy(self, x, targets, states=None, mask=None, *, backward=True):
        """Forward, softmax cross-entropy of the output and backward, adding every
        layer's grads; the last layer must be a fastrnn.Linear.

        The same numbers as::

            logits, states, cache = chain.forward(x, states)
            loss, d = fastrnn.softmax_cross_entropy(logits, targets, mask, out=logits)
            chain.backward(d, cache)

        with the last layer's forward, the loss and its backward done by
        Linear.softmax_cross_entropy: the logits are never returned, which
        saves passes over them (T * B * V elements for a language model).

        Parameters
        ----------
        x, states : as for forward()
        targets : array_like of int
            The class of every output position (the output's shape without
            its last axis).
        mask : None or array_like of bool or non-negative numbers, like targets
        backward : bool, default True
            False: inference (each layer's call, no caches) and the loss only,
            as ``softmax_cross_entropy(chain(x, states)[0], targets, mask)``;
            no grads are touched.

        Returns
        -------
        loss : float
            The mean cross-entropy (over the unmasked positions).
        states : list
            The recurrent layers' final states, as forward() gives them.
        """
        head = self.layers[-1]
        if not isinstance(head, Linear):
            raise TypeError(f"softmax_cross_entropy: the chain's last layer must be a "
                            f"Linear, got {type(head).__name__}")
        if len(self.layers) == 1:
            self._states(states)
            return head.softmax_cross_entropy(x, targets, mask, backward=backward)[0], []
        body = Chain(*self.layers[:-1])
        if not backward:
            h, states = body(x, states)
            return head.softmax_cross_entropy(h, targets, mask, backward=False)[0], states
        h, states, cache = body.forward(x, states)
        loss, dh = head.softmax_cross_entropy(h, targets, mask)
        body.backward(dh, cache)
        return loss, states

    def stepper(self, batch_size=None):
        """A ChainStepper: this chain run one position per call, from zero states."""
        return ChainStepper(self, batch_size)

    def __repr__(self):
        return "Chain(" + ", ".join(map(repr, self.layers)) + ")"


class ChainStepper:
    """A Chain advanced one position per call, its recurrent states kept inside.

    Each recurrent layer becomes a fastrnn.Stepper (set up once: validation,
    buffers and packed weights), the other layers are called as they are, so
    a step of a language model is a lookup, one compiled step per recurrent
    layer and the output product::

        step = model.stepper()               # from zero states
        logits = step(token)                 # (V,) for an int token
        token = fastrnn.sample(logits, rng=gen)

    The outputs equal those of ``model(x)`` on the whole sequence, position by
    position.  Like a Stepper it works on a copy of the recurrent layers'
    parameters taken when it is made (make a new one after training further)
    and serves one stream (or one batch of streams) in one thread at a time.

    Parameters
    ----------
    chain : fastrnn.Chain
        Its recurrent layers must run forwards (not bidirectional, not reverse).
    batch_size : None or int
        None: each call takes one position's input (a token, or a (D,)
        vector); an int B: B streams at once, (B,) tokens or (B, D) inputs.

    Methods
    -------
    step(x) -> y
        One position: y is the chain's output for it, (V,) or (B, V).
    reset()
        Back to zero states.
    """

    def __init__(self, chain, batch_size=None):
        if not isinstance(chain, Chain):
            raise TypeError(f"chain: expected a fastrnn.Chain, got {type(chain).__name__}")
        self._steps = [layer.stepper(batch_size=batch_size) if _is_recurrent(layer) else layer
                       for layer in chain.layers]

    def __call__(self, x):
        """Advance every layer by one position of x and return the chain's output."""
        for step in self._steps:
            x = step(x)
        return x

    def reset(self):
        """Start again from zero states."""
        for step in self._steps:
            if isinstance(step, Stepper):
                step.reset()

    def __repr__(self):
        return f"ChainStepper({self._steps!r})"
