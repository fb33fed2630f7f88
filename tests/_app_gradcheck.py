"""Finite-difference check of an example app's train_step (tests/test_examples_*.py)."""

import numpy as np


def check_train_step(layers, loss_fn, seed=0, per_param=3, eps=1e-6, rtol=1e-6, atol=1e-9):
    """Compare the gradients loss_fn() adds into every layer's grads with central differences
    of the loss it returns, at per_param random entries of every parameter (float64 model)."""
    for layer in layers:
        layer.zero_grad()
    loss_fn()
    analytic = [{k: v.copy() for k, v in layer.grads.items()} for layer in layers]
    rng = np.random.default_rng(seed)
    checked = 0
    for layer, grads in zip(layers, analytic):
        for name, p in layer.params.items():
            for flat in rng.choice(p.size, min(per_param, p.size), replace=False):
                idx = np.unravel_index(flat, p.shape)
                old = p[idx]
                p[idx] = old + eps
                _changed(layer)
                up = loss_fn()
                p[idx] = old - eps
                _changed(layer)
                down = loss_fn()
                p[idx] = old
                _changed(layer)
                numeric = (up - down) / (2 * eps)
                assert abs(grads[name][idx] - numeric) <= atol + rtol * max(1.0, abs(numeric)), \
                    (type(layer).__name__, name, idx, grads[name][idx], numeric)
                checked += 1
    return checked


def _changed(layer):
    changed = getattr(layer, "params_changed", None)
    if callable(changed):
        changed()
