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

from fastrnn.layers.cell_kinds import check_layer
from fastrnn.runtime.scratch import Reused, Scratch
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
    """

    __slots__ = ("scratch", "idle", "forward_choice", "forward_way", "backward_choice",
                 "backward_way", "packs", "plan")

    def __init__(self, *, keep_packs=False, plan=None):
        self.scratch = Scratch()
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


def serving_copy(layer, runtime):
    """A private copy of a recurrent layer for an object that serves it (fastrnn.Stepper,
    fastrnn.FrozenLayer), running on `runtime`: its parameters as they are now, without
    its gradients (never read in inference)."""
    check_layer(layer)
    # the memo hands deepcopy the copy's grads and runtime instead of copying the layer's
    return copy.deepcopy(layer, {id(layer.grads): {}, id(layer._runtime): runtime})
