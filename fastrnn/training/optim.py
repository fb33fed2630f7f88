"""Optimizers: SGD with momentum, Adam and AdamW, stepping layers' params with their grads.

An optimizer takes one layer or a list of layers: any objects with ``params``
and ``grads`` dicts of the same names and shapes (fastrnn.RNN, LSTM, GRU,
Embedding, Linear).  ``step()`` updates every parameter in place from its
gradient (the gradients are read, never modified); ``zero_grad()`` zeroes
all gradients.  The update rules are torch.optim's, so a model trained with
the same hyper-parameters follows the same path.  The parameters are looked
up at every step, so a layer's ``load_state_dict`` or ``reset_parameters``
between steps is seen; the optimizer's buffers stay.

``step()`` updates all C-contiguous float32/float64 parameters of one dtype
in one compiled pass on fastrnn's threads (fastrnn/kernels/optim_step.pyx),
element-wise, so the result does not depend on the thread count; any other
parameter is updated by the same rule in NumPy.  After a step each layer's
``params_changed()``, if it has one, is called (fastrnn.Linear's kept packs).
"""

import math

import numpy as np

from fastrnn._validation import check_real
from fastrnn.kernels import optim_step
from fastrnn.kernels.threads import get_num_threads

__all__ = ["SGD", "Adam", "AdamW"]


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
        groups = {}
        for key, p, g in self._pairs():
            if _compiled(p, g):
                groups.setdefault(p.dtype, []).append((key, p, g))
            else:
                self._update(key, p, g)
        for items in groups.values():
            self._fused(items)
        for layer in self.layers:
            changed = getattr(layer, "params_changed", None)
            if callable(changed):
                changed()

    def _update(self, key, p, g):
        """One parameter's step in NumPy."""
        raise NotImplementedError

    def _fused(self, items):
        """The step of every (key, p, g) of items (one dtype) in one compiled pass."""
        raise NotImplementedError


def _compiled(p, g):
    """Whether the compiled pass can update p from g."""
    return (isinstance(p, np.ndarray) and isinstance(g, np.ndarray)
            and p.dtype in (np.float32, np.float64) and g.dtype == p.dtype
            and p.flags.c_contiguous and g.flags.c_contiguous and p.flags.writeable
            and not np.may_share_memory(p, g))


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

    def _fused(self, items):
        bufs, first = [], np.zeros(len(items))
        for i, (key, p, _) in enumerate(items):
            buf = None
            if self.momentum:
                buf = self.state.get(key)
                if buf is None or buf.shape != p.shape or buf.dtype != p.dtype:
                    buf = self.state[key] = np.empty_like(p)    # filled by the first step
                    first[i] = 1
            bufs.append(buf)
        optim_step.sgd([p for _, p, _ in items], [g for _, _, g in items], bufs, first,
                       self.lr, self.momentum, self.dampening, self.weight_decay,
                       self.nesterov, get_num_threads())


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

    _decoupled = False       # AdamW: the decay shrinks p rather than adding to g

    def _moments(self, key, p):
        """key's state, its step count advanced: {"t", "m", "v"}."""
        st = self.state.get(key)
        if st is None or st["m"].shape != p.shape or st["m"].dtype != p.dtype:
            st = self.state[key] = {"t": 0, "m": np.zeros_like(p), "v": np.zeros_like(p)}
        st["t"] += 1
        return st

    def _fused(self, items):
        b1, b2 = self.betas
        steps, roots, ms, vs = np.empty(len(items)), np.empty(len(items)), [], []
        for i, (key, p, _) in enumerate(items):
            st = self._moments(key, p)
            steps[i] = self.lr / (1 - b1 ** st["t"])
            roots[i] = math.sqrt(1 - b2 ** st["t"])
            ms.append(st["m"])
            vs.append(st["v"])
        wd = self.weight_decay
        optim_step.adam([p for _, p, _ in items], [g for _, _, g in items], ms, vs, steps,
                        roots, b1, b2, self.eps, 0.0 if self._decoupled else wd,
                        self.lr * wd if self._decoupled else 0.0, get_num_threads())

    def _update(self, key, p, g):
        b1, b2 = self.betas
        if self.weight_decay and self._decoupled:
            p *= p.dtype.type(1 - self.lr * self.weight_decay)
        elif self.weight_decay:
            g = g + p * p.dtype.type(self.weight_decay)
        st = self._moments(key, p)
        t, m, v = st["t"], st["m"], st["v"]
        m *= p.dtype.type(b1)
        m += p.dtype.type(1 - b1) * g
        v *= p.dtype.type(b2)
        v += p.dtype.type(1 - b2) * (g * g)
        denom = np.sqrt(v)
        denom /= p.dtype.type(math.sqrt(1 - b2 ** t))
        denom += p.dtype.type(self.eps)
        p -= p.dtype.type(self.lr / (1 - b1 ** t)) * (m / denom)


class AdamW(Adam):
    r"""AdamW: Adam with decoupled weight decay (torch.optim.AdamW's rule).

    For each parameter p with gradient g, at step t = 1, 2, ...::

        p  <- p * (1 - lr * weight_decay)
        m_t = beta1 * m_{t-1} + (1 - beta1) * g
        v_t = beta2 * v_{t-1} + (1 - beta2) * g**2
        p  <- p - lr / (1 - beta1**t) * m_t / (sqrt(v_t) / sqrt(1 - beta2**t) + eps)

    with m_0 = v_0 = 0: the decay shrinks the weights directly instead of
    entering the moments as Adam's L2 term does.

    Parameters
    ----------
    layers : layer or iterable of layers
    lr : float >= 0, default 1e-3
    betas : (float, float), default (0.9, 0.999)
    eps : float >= 0, default 1e-8
    weight_decay : float >= 0, default 0.01 (torch's default)
    """

    _decoupled = True

    def __init__(self, layers, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, *, weight_decay=0.01):
        super().__init__(layers, lr, betas, eps, weight_decay=weight_decay)
