"""What a recurrent layer keeps to run, apart from what it is.

A layer (fastrnn/layers/base.py) holds its configuration, parameters and gradients.  What serves
its calls lives in one Runtime that the layer owns: the pool of work buffers of training
calls (Scratch), the work arrays an inference call leaves to the next (Reused), the timed
choices of whether a single sequence's steps are split over threads, forward and backward,
with the way the running call took, and -- for the objects that serve a copy of the layer
-- the weights packed once (fastrnn.FrozenLayer) or the step plan (fastrnn.Stepper).

A copy or a pickle of a layer gets a new, empty Runtime: buffers, packs and timings belong
to the object that made them (a timing copied mid-call could keep a single sequence on one
thread for good).  Several threads may call one layer at once: Scratch leases are per call,
a Reused is taken by one call at a time, and packs are only read once made.
"""

import copy

import numpy as np

from fastrnn.kernels.recurrent import MAX_K

from fastrnn.layers.cell_kinds import check_layer
from fastrnn.runtime.scratch import Reused, Scratch
from fastrnn.runtime.spares import Spares
from fastrnn.runtime.split_choice import SplitChoice


class Runtime:
    """A layer's execution state (see the module docstring).

    Parameters
    ----------
    keep_packs : bool
        Keep each layer and direction's packed weights from the first call on
        (``packs``, filled by RecurrentLayer._packs), as a FrozenLayer does;
        otherwise every call packs into its own work buffers.
    plan : fastrnn.kernels.plan.StepPlan or None
        A Stepper's plan: the layer's forward hooks then set up the plan's layers
        instead of running.
    weights : {"float", "int8", "bfloat16"}
        What the inference calls multiply by: the weights as they are, quantized
        to int8 or rounded to bfloat16 (fastrnn.FrozenLayer, fastrnn.Stepper);
        training calls always use the float weights.
    """

    __slots__ = ("scratch", "spares", "idle", "forward_choice", "forward_way",
                 "backward_choice", "backward_way", "packs", "plan", "weights")

    def __init__(self, *, keep_packs=False, plan=None, weights="float"):
        self.scratch = Scratch()
        self.spares = Spares()       # the buffers of the outputs and input gradients returned
        # "reused": the Reused of the last inference call, for the next one to take
        # (dict.pop is atomic, so two concurrent calls never share it)
        self.idle = {}
        self.forward_choice = SplitChoice()
        self.backward_choice = SplitChoice()
        # the way (True: split, False: one thread) of the call being timed, else None
        self.forward_way = None
        self.backward_way = None
        self.packs = {} if keep_packs else None
        self.plan = plan
        self.weights = weights

    def __reduce__(self):
        # copies and pickles start afresh (see the module docstring)
        return (Runtime, ())

    def take_reused(self):
        """The work arrays of the last inference call, or new ones if another call has them."""
        return self.idle.pop("reused", None) or Reused()

    def keep_reused(self, reused):
        """Leave an inference call's work arrays to the next call."""
        reused.rewind()
        self.idle["reused"] = reused


WEIGHT_KINDS = ("float", "int8", "bfloat16")


def check_weights(weights, layer):
    """weights, checked for serving layer with it (FrozenLayer, Stepper)."""
    if not isinstance(weights, str) or weights not in WEIGHT_KINDS:
        raise ValueError(f"weights: expected one of {WEIGHT_KINDS}, got {weights!r}")
    if weights != "float":
        if layer.dtype != np.float32:
            raise TypeError(f"weights: {weights!r} serves float32 layers, got a "
                            f"{layer.dtype} layer")
        if max(layer.input_size, layer.hidden_size) > MAX_K[weights]:
            raise ValueError(f"weights: {weights!r} serves layers of at most "
                             f"{MAX_K[weights]} input and hidden features")
        for name, p in layer.params.items():
            if name.startswith("weight") and not np.isfinite(p).all():
                raise ValueError(f"weights: {weights!r} needs finite weights, {name} has "
                                 f"inf or NaN")
    return weights


def serving_copy(layer, runtime):
    """A private copy of a recurrent layer for an object that serves it (fastrnn.Stepper,
    fastrnn.FrozenLayer), running on `runtime`: its parameters as they are now, without
    its gradients (never read in inference)."""
    check_layer(layer)
    # the memo hands deepcopy the copy's grads and runtime instead of copying the layer's
    return copy.deepcopy(layer, {id(layer.grads): {}, id(layer._runtime): runtime})
