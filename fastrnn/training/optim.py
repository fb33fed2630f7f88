"""Optimizers: SGD with momentum, and Adam, stepping layers' params with their grads.

An optimizer takes one layer or a list of layers: any objects with ``params``
and ``grads`` dicts of the same names and shapes (fastrnn.RNN, LSTM, GRU,
Embedding, Linear).  ``step()`` updates every parameter in place from its
gradient (the gradients are read, never modified); ``zero_grad()`` zeroes
all gradients.  The update rules are torch.optim's, so a model trained with
the same hyper-parameters follows the same path.  The parameters are looked
up at every step, so a layer's ``load_state_dict`` or ``reset_parameters``
between steps is seen; the optimizer's buffers stay.
"""

import math

import numpy as np

from fastrnn._validation import check_real

__all__ = ["SGD", "Adam"]


def _check_number(value, name, *, minimum=0.0, below=None):
    bound = f"in [{minimum}, {below})" if below is not None else f">= {minimum}"
    return check_real(value, name, f"a finite number {bound}",
                      lambda x: math.isfinite(x) and x >= minimum
                      and (below is None or x < below))


def _layer_list(layers):
    if hasattr(layers, "params") and hasattr(layers, "grads"):
        layers = [layers]
    else:
        try:
            layers = list(layers)
        except TypeError:
            raise TypeError(f"layers: expected a layer (with params and grads) or an iterable "
                            f"of layers, got {type(layers).__name__}") from None
    unique, seen = [], set()
    for i, layer in enumerate(layers):
        params, grads = getattr(layer, "params", None), getattr(layer, "grads", None)
        if not isinstance(params, dict) or not isinstance(grads, dict):
            raise TypeError(f"layers: the item at position {i} ({type(layer).__name__}) has no "
                            f"params and grads dicts")
        if set(params) != set(grads):
            raise ValueError(f"layers: the item at position {i} has params {sorted(params)} but "
                             f"grads {sorted(grads)}")
        if id(layer) not in seen:       # a layer listed twice is stepped once
            seen.add(id(layer))
            unique.append(layer)
    if not unique:
        raise ValueError("layers: expected at least one layer")
    return unique


class _Optimizer:
    def __init__(self, layers, lr):
        self.layers = _layer_list(layers)
        self.lr = _check_number(lr, "lr")
        self.state = {}       # (layer position, parameter name) -> buffers
        self.steps = 0

    def _pairs(self):
        """(key, param, grad) for every parameter, checked."""
        for i, layer in enumerate(self.layers):
            for name, p in layer.params.items():
                g = layer.grads[name]
                if g.shape != p.shape:
                    raise ValueError(f"grads[{name!r}] of {type(layer).__name__}: shape "
                                     f"{g.shape} differs from its parameter's {p.shape}")
                yield (i, name), p, g

    def zero_grad(self):
        """Set every gradient of every layer to zero."""
        for layer in self.layers:
            for g in layer.grads.values():
                g.fill(0)

    def step(self):
        """Update every parameter in place from its current gradient."""
        self.steps += 1
        for key, p, g in self._pairs():
            self._update(key, p, g)

    def _update(self, key, p, g):
        raise NotImplementedError


class SGD(_Optimizer):
    r"""Stochastic gradient descent with momentum (torch.optim.SGD's rule).

    For each parameter p with gradient g, at step t::

        d   = g + weight_decay * p
        b_t = d                                        (t = 1)
        b_t = momentum * b_{t-1} + (1 - dampening) * d (t > 1)
        d   = d + momentum * b_t     if nesterov, else  d = b_t   (when momentum > 0)
        p  <- p - lr * d

    Parameters
    ----------
    layers : layer or iterable of layers
        Objects with params and grads dicts (fastrnn.LSTM, Embedding, ...).
    lr : float >= 0
        Learning rate; may be changed between steps (``opt.lr = ...``).
    momentum : float >= 0, default 0
    dampening : float >= 0, default 0
    weight_decay : float >= 0, default 0
        L2 penalty added to the gradient.
    nesterov : bool, default False
        Nesterov momentum (needs momentum > 0 and dampening = 0).


    ``step()`` updates the parameters in place from their gradients;
    ``zero_grad()`` zeroes every gradient.
    """

    def __init__(self, layers, lr, momentum=0.0, *, dampening=0.0, weight_decay=0.0,
                 nesterov=False):
        super().__init__(layers, lr)
        self.momentum = _check_number(momentum, "momentum")
        self.dampening = _check_number(dampening, "dampening")
        self.weight_decay = _check_number(weight_decay, "weight_decay")
        self.nesterov = bool(nesterov)
        if self.nesterov and (self.momentum == 0 or self.dampening != 0):
            raise ValueError("nesterov: Nesterov momentum needs momentum > 0 and dampening = 0")

    def _update(self, key, p, g):
        d = g + p * p.dtype.type(self.weight_decay) if self.weight_decay else g.copy()
        if self.momentum:
            buf = self.state.get(key)
            if buf is None or buf.shape != p.shape:
                buf = self.state[key] = d.copy()
            else:
                buf *= p.dtype.type(self.momentum)
                buf += p.dtype.type(1 - self.dampening) * d
            if self.nesterov:
                d += p.dtype.type(self.momentum) * buf
            else:
                d = buf
        p -= p.dtype.type(self.lr) * d


class Adam(_Optimizer):
    r"""Adam (torch.optim.Adam's rule, with L2 weight decay added to the gradient).

    For each parameter p with gradient g, at step t = 1, 2, ...::

        g   = g + weight_decay * p
        m_t = beta1 * m_{t-1} + (1 - beta1) * g
        v_t = beta2 * v_{t-1} + (1 - beta2) * g**2
        p  <- p - lr / (1 - beta1**t) * m_t / (sqrt(v_t) / sqrt(1 - beta2**t) + eps)

    with m_0 = v_0 = 0.

    Parameters
    ----------
    layers : layer or iterable of layers
        Objects with params and grads dicts (fastrnn.LSTM, Embedding, ...).
    lr : float >= 0, default 1e-3
        Learning rate; may be changed between steps (``opt.lr = ...``).
    betas : (float, float), default (0.9, 0.999)
        Decay rates of the moment estimates, each in [0, 1).
    eps : float >= 0, default 1e-8
    weight_decay : float >= 0, default 0


    ``step()`` updates the parameters in place from their gradients;
    ``zero_grad()`` zeroes every gradient.
    """

    def __init__(self, layers, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, *, weight_decay=0.0):
        super().__init__(layers, lr)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"betas: expected a pair (beta1, beta2), got {betas!r}")
        self.betas = (_check_number(betas[0], "betas[0]", below=1.0),
                      _check_number(betas[1], "betas[1]", below=1.0))
        self.eps = _check_number(eps, "eps")
        self.weight_decay = _check_number(weight_decay, "weight_decay")

    def _update(self, key, p, g):
        b1, b2 = self.betas
        if self.weight_decay:
            g = g + p * p.dtype.type(self.weight_decay)
        st = self.state.get(key)
        if st is None or st["m"].shape != p.shape:
            st = self.state[key] = {"t": 0, "m": np.zeros_like(p), "v": np.zeros_like(p)}
        st["t"] += 1
        t, m, v = st["t"], st["m"], st["v"]
        m *= p.dtype.type(b1)
        m += p.dtype.type(1 - b1) * g
        v *= p.dtype.type(b2)
        v += p.dtype.type(1 - b2) * (g * g)
        denom = np.sqrt(v)
        denom /= p.dtype.type(math.sqrt(1 - b2 ** t))
        denom += p.dtype.type(self.eps)
        p -= p.dtype.type(self.lr / (1 - b1 ** t)) * (m / denom)
