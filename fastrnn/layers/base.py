"""Machinery shared by fastrnn.RNN, fastrnn.LSTM and fastrnn.GRU.

A layer stack is num_layers x num_directions independent kernel calls:
layer l reads the (T, B, num_dirs*H) output of layer l-1 (the input for
l = 0), and each direction writes its H columns of its own output.  This
module validates, allocates and loops over layers and directions, and runs
each direction through the kernels (fastrnn/kernels/recurrent.pyx), which say
how large each buffer must be; the cell subclasses give only their variant
flags and any parameters of their own.
A layer is its configuration, parameters and gradients; what serves its
calls (work buffers, split timings, packed weights, a step plan) is its
Runtime (fastrnn/runtime/runtime.py).
"""

import contextlib
import warnings

import numpy as np

from fastrnn.interop import onnx_export as _onnx_export
from fastrnn.interop import keras
from fastrnn.runtime.aligned import aligned_copy, empty_aligned
from fastrnn.layers.cell_kinds import register
from fastrnn.runtime.lengths import NO_LENGTHS, SortedBatch, check_lengths
from fastrnn.runtime.paths import MAX_UNITS_ROWS, units_rows
from fastrnn.layers.module import ParamModule
from fastrnn.runtime.runtime import Runtime
from fastrnn.runtime.split_choice import TimedCall
from fastrnn._validation import (as_real_array, check_positive_int,
                                 check_probability, check_sequence, check_shape, check_state)
from fastrnn.deploy.frozen import FrozenLayer
from fastrnn.kernels.recurrent import CELLS, PACKING, SPLITS_BACKWARD, WEIGHTS, CallConfig
from fastrnn.kernels.recurrent import backward as _kernel_backward, forward as _kernel_forward
from fastrnn.kernels.threads import get_num_threads
from fastrnn.deploy.stepper import Stepper

# Bound on the gate values of one chunk of the input projection, passed to the
# kernels; 0 leaves it to them (fastrnn/kernels/layer_call.pxd CHUNK_ELEMENTS,
# docs/DECISIONS.md).  Tests set a small one to exercise the chunking.
_CHUNK_ELEMENTS = 0

# A kernel call uses fastrnn's threads only when it has at least this many
# floating-point operations: waking a worker and the barriers cost a few
# microseconds (more in a VM), which small calls would not win back.
_THREADED_MIN_FLOPS = 2_000_000
# The context of inference calls, whose work arrays the layer keeps for its
# next call (fastrnn/runtime/scratch.py Reused; a lease would cost a few
# microseconds a call), and of calls with no split to time.
_EMPTY_CONTEXT = contextlib.nullcontext()

# A single sequence is split over threads by hidden units only when its
# recurrent weights (gate rows x H) hold at least this many numbers (64 KiB of
# float32, streamed from L2 at every step): below it the hand-over of each step
# between the threads costs more than it saves (measured: docs/DECISIONS.md).
_UNIT_SPLIT_MIN_WEIGHTS = 16384

_PACK_WHEN_WORTH, _PACK_NOW, _PACKED = PACKING["when_worth"], PACKING["now"], PACKING["packed"]


class ForwardCache:
    """What a training forward keeps for backward: opaque to users.

    Holds references to each layer's input and output and to the saved
    activations, so neither x nor the returned y should be modified in place
    between forward() and backward().
    """

    __slots__ = ("owner", "unbatched", "x_shape", "inputs", "outputs", "states0", "saved",
                 "masks", "batch", "kept")

    def __init__(self, owner, unbatched, x_shape, inputs, outputs, states0, saved, masks=(),
                 batch=None, kept=None):
        self.owner = owner
        self.batch = batch     # SortedBatch of a call with lengths, else None
        self.masks = masks     # masks[l]: dropout mask on layer l's output, or None
        self.unbatched = unbatched
        self.x_shape = x_shape
        self.inputs = inputs
        self.outputs = outputs
        self.states0 = states0
        self.saved = saved
        self.kept = kept       # the buffers of saved, from the owner's pool, or None

    def __del__(self):
        # saved's buffers go back to the layer's pool for its next forward
        # (fastrnn/runtime/scratch.py), once our arrays over them are gone
        kept, self.kept = self.kept, None
        if kept is not None:
            self.saved = None
            kept.release()

    def __repr__(self):
        return f"<fastrnn ForwardCache of {type(self.owner).__name__}, input shape {self.x_shape}>"


class RecurrentLayer(ParamModule):
    """Base class of the recurrent layers; see fastrnn.RNN, LSTM and GRU."""

    _cell = None         # the CellKind (fastrnn/layers/cell_kinds.py) of a cell's layer class
    _splits_backward = False   # whose single-sequence backward loop threads may share

    def __init_subclass__(cls, cell=None, **kwargs):
        """A cell's layer class names its kind, ``class LSTM(RecurrentLayer, cell="LSTM")``,
        and registers itself as that kind's class."""
        super().__init_subclass__(**kwargs)
        if cell is not None:
            cls._cell = register(cell, cls)
            cls._cell_id = CELLS[cell]                  # the kernels' name for it
            cls._splits_backward = SPLITS_BACKWARD[cell]
            cls._gate_count = cls._cell.gate_count      # gate blocks in the weight matrices
            cls._has_cell = cls._cell.state_arity == 2  # LSTM carries (h, c); the others h

    def __init__(self, input_size, hidden_size, num_layers=1, *, bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, reverse=False,
                 dtype=np.float32, seed=None):
        self.input_size = check_positive_int(input_size, "input_size")
        self.hidden_size = check_positive_int(hidden_size, "hidden_size")
        self.num_layers = check_positive_int(num_layers, "num_layers")
        self.dropout = dropout
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.bidirectional = bool(bidirectional)
        self.reverse = bool(reverse)
        if self.reverse and self.bidirectional:
            raise ValueError("reverse: a bidirectional layer already runs both ways; "
                             "reverse=True needs bidirectional=False")
        # buffers, packs and split timings: everything that serves the calls
        self._runtime = Runtime()
        self._init_parameters(dtype, seed)

    # What a layer pickled before the runtime split (0.1.0 up to 2026-11) kept on
    # itself; a layer unpickled from such a file drops them for a fresh Runtime.
    _OLD_RUNTIME_ATTRIBUTES = ("_scratch", "_reused", "_split_choice", "_split_now",
                               "_split_choice_backward", "_split_backward", "_kept_packs")

    def __setstate__(self, state):
        for name in self._OLD_RUNTIME_ATTRIBUTES:
            state.pop(name, None)
        self.__dict__.update(state)
        if not isinstance(self.__dict__.get("_runtime"), Runtime):
            self._runtime = Runtime()

    # ------------------------------------------------------------ parameters

    @property
    def num_directions(self):
        return 2 if self.bidirectional else 1

    @property
    def dropout(self):
        """Dropout probability p on the output of every layer but the last (training only)."""
        return self._dropout

    @dropout.setter
    def dropout(self, value):
        self._dropout = check_probability(value, "dropout")
        if self._dropout > 0 and self.num_layers == 1:
            warnings.warn(f"dropout={self._dropout} has no effect with num_layers=1: dropout "
                          f"applies to the output of every layer except the last",
                          UserWarning, stacklevel=2)

    def _dropout_mask(self, shape):
        """Inverted-dropout mask: 0 with probability p, else 1/(1-p); None when p == 0."""
        if self._dropout == 0:
            return None
        keep = self._dropout_rng.random(shape) >= self._dropout
        return np.multiply(keep, 1.0 / (1.0 - self._dropout), dtype=self.dtype)

    def _param_shapes(self):
        """(name, shape) of every parameter in torch's state_dict order."""
        G = self._gate_count * self.hidden_size
        for layer in range(self.num_layers):
            in_size = self.input_size if layer == 0 else self.num_directions * self.hidden_size
            for direction in range(self.num_directions):
                sfx = self._suffix(layer, direction)
                yield "weight_ih" + sfx, (G, in_size)
                yield "weight_hh" + sfx, (G, self.hidden_size)
                if self.bias:
                    yield "bias_ih" + sfx, (G,)
                    yield "bias_hh" + sfx, (G,)
                yield from self._extra_param_shapes(sfx)

    # The parameter names of a torch cell (nn.RNNCell, LSTMCell, GRUCell).
    _CELL_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")

    def _from_source_names(self, names, what):
        """A torch cell's names (weight_ih, ...) as the _l0 ones of a one-layer,
        one-direction layer (ParamModule.load_state_dict)."""
        if not names or not set(names) <= set(self._CELL_NAMES):
            return names
        if self.num_layers != 1 or self.bidirectional:
            raise ValueError(f"{what}: torch cell names {sorted(names)} load only into a "
                             f"layer with num_layers=1 and bidirectional=False")
        return {name + "_l0": key for name, key in names.items()}

    def _extra_param_shapes(self, sfx):
        """(name, shape) of a cell variant's parameters after the torch-named four."""
        return ()

    def _backwards_in_time(self, direction):
        """Whether this direction runs from the last time step to the first (the kernels'
        reverse flag): the _reverse direction of a bidirectional layer, or every layer of a
        reverse=True one."""
        return direction == 1 or self.reverse

    @staticmethod
    def _suffix(layer, direction):
        return f"_l{layer}" + ("_reverse" if direction else "")

    def reset_parameters(self, seed=None):
        """Draw every parameter from U(-1/sqrt(H), 1/sqrt(H)) (torch's init) and zero grads.

        seed is anything numpy.random.default_rng accepts; the same seed gives
        the same parameters.
        """
        rng = np.random.default_rng(seed)
        bound = 1.0 / np.sqrt(self.hidden_size)
        self.params.clear()
        self.grads.clear()
        for name, shape in self._param_shapes():
            self.params[name] = rng.uniform(-bound, bound, size=shape).astype(self.dtype)
            self.grads[name] = np.zeros(shape, self.dtype)
        # dropout masks: a stream of their own, derived from the same seed (so it stays
        # with the parameters: a copy draws the masks the original would)
        self._dropout_rng = np.random.default_rng(rng.integers(2**63))

    def _direction_arrays(self, table, layer, direction):
        """(w_ih, w_hh, b_ih, b_hh, extra) of one layer and direction from params or grads
        (table), as the kernels take them: biases None without bias, extra the variant's
        own parameter or None."""
        sfx = self._suffix(layer, direction)
        b_ih, b_hh = (table["bias_ih" + sfx], table["bias_hh" + sfx]) if self.bias else (None, None)
        return (table["weight_ih" + sfx], table["weight_hh" + sfx], b_ih, b_hh,
                self._extra(layer, direction, table))

    def _work(self, shape, work):
        """A 64-byte aligned work array of the layer's dtype: from the call's work
        (a lease in training, the layer's Reused in inference), or newly
        allocated when work is None (a plan, which keeps its arrays)."""
        if work is None:
            return empty_aligned(shape, self.dtype)
        return work.empty(shape, self.dtype)

    def _buffers(self, sizes, work, kept=False):
        """One work array per size of a kernel call's buffer list (None for 0), from
        the call's work (kept: outliving the call, see _scratch.Lease.empty_kept)."""
        if kept:
            return tuple([work.empty_kept(n, self.dtype) if n else None for n in sizes])
        return tuple([self._work(n, work) if n else None for n in sizes])

    def _packs(self, layer, direction, cfg, work):
        """The forward kernel's packed-weight buffers.

        A layer packs its weights into the call's work at every call, as they
        may have changed since the last.  The layer copy inside a
        fastrnn.FrozenLayer keeps a set of buffers per layer and direction
        (its runtime's packs), packed by its first call and only read after.
        """
        kept = self._runtime.packs
        if kept is None:
            return self._buffers(cfg.pack_sizes, work)
        buffers = kept.get((layer, direction))
        if buffers is None:
            buffers = kept[layer, direction] = self._buffers(cfg.pack_sizes, None)
        return buffers

    def _packing(self, layer, direction, plan):
        """The forward kernel's packing mode for this call (see _packs)."""
        if plan is not None:
            return _PACK_NOW           # a plan packs once for all its steps
        kept = self._runtime.packs
        if kept is None:
            return _PACK_WHEN_WORTH
        return _PACKED if (layer, direction) in kept else _PACK_NOW

    def _call_config(self, direction, T, B, D, training, packing, nthreads, units_rows=1):
        """The kernels' configuration of one direction's call."""
        return CallConfig(self._cell_id, self.dtype.itemsize, T, B, D, self.hidden_size,
                          self._backwards_in_time(direction), training, packing, nthreads,
                          *self._variant(), chunk_elements=_CHUNK_ELEMENTS,
                          units_rows=units_rows,
                          weights=WEIGHTS["float" if training else self._runtime.weights])

    def _units_rows(self, B, nthreads):
        """The forward's units_rows: B when a batch of B rows should share each step by
        hidden units on nthreads threads (fastrnn/runtime/paths.py), else 1."""
        if B < 2 or nthreads < 2 or B > MAX_UNITS_ROWS:
            return 1
        itemsize = {"int8": 1, "bfloat16": 2}.get(self._runtime.weights, self.dtype.itemsize)
        return units_rows(self._cell.key, B, self.hidden_size, itemsize, nthreads,
                          substeps=self._step_stages())

    def _step_stages(self):
        """Stages of a step shared by hidden units (the GRU's reset-before needs two)."""
        return 1

    def _threads(self, T, B, in_size):
        """Threads for one direction's kernel call on (T, B, in_size) inputs.

        Time loops are split by batch rows; a single sequence's forward loop
        by hidden units, handed over between threads at every step, which
        pays from _UNIT_SPLIT_MIN_WEIGHTS recurrent weights when the machine
        lets it (fastrnn/runtime/split_choice.py decides per call).  An LSTM's
        single-sequence backward loop is split by hidden units the same way
        (chosen apart from the forward's); the other cells run it on one
        thread and share only the weight gradients.
        """
        G = self._gate_count * self.hidden_size
        flops = 2 * T * B * G * (in_size + self.hidden_size)
        if flops < _THREADED_MIN_FLOPS or (
                B == 1 and G * self.hidden_size < _UNIT_SPLIT_MIN_WEIGHTS):
            return 1
        if B == 1 and self._runtime.forward_way is False:
            return 1    # this forward call was chosen to run on one thread
        return get_num_threads()

    def _may_split(self, T, B, in_size):
        """Whether a forward call on (T, B, in_size) would share a single sequence's
        steps over threads (see fastrnn/runtime/split_choice.py)."""
        return B == 1 and self._threads(T, B, in_size) > 1

    # --------------------------------------------------------------- running

    def __call__(self, x, state0=None, lengths=None):
        """Inference: run the stack over x, keeping nothing for backward.

        Returns (y, state_n); see the class docstring for shapes and lengths.
        """
        return self._forward(x, state0, lengths, training=False)

    def forward(self, x, state0=None, lengths=None):
        """Training forward: like calling the layer, plus a cache for backward().

        Returns (y, state_n, cache).  The cache keeps the saved activations
        (see the class docstring for their size) and references x and y;
        backward() honours the lengths given here.
        """
        return self._forward(x, state0, lengths, training=True)

    def stepper(self, state0=None, batch_size=None, *, weights="float"):
        """A fastrnn.Stepper running this (forward) stack one time step per call,
        with the state kept inside: the cheap way to serve a stream.  See
        fastrnn.Stepper for the arguments."""
        return Stepper(self, state0, batch_size, weights=weights)

    def frozen(self, *, weights="float"):
        """A fastrnn.FrozenLayer: a copy of this stack for inference only, its
        weights packed once rather than at every call (the way to deploy it);
        ``weights="int8"`` or ``"bfloat16"`` reduces their precision (see
        fastrnn.FrozenLayer)."""
        return FrozenLayer(self, weights=weights)

    def _state_shape(self, B):
        return (self.num_layers * self.num_directions, B, self.hidden_size)

    def _to_user_state(self, states, unbatched):
        out = [s[:, 0, :] if unbatched else s for s in states]
        return tuple(out) if self._has_cell else out[0]

    def _to_user_sequence(self, seq, unbatched):
        """(T, B, F) time-major -> the caller's layout (a contiguous array)."""
        if unbatched:
            return seq[:, 0, :]
        if self.batch_first:
            return np.ascontiguousarray(seq.transpose(1, 0, 2))
        return seq

    def _forward(self, x, state0, lengths, training):
        x3, unbatched = check_sequence(x, "x", self.input_size, self.batch_first, self.dtype)
        T, B = x3.shape[:2]
        states0 = check_state(state0, "state0", self._state_shape(B), self._has_cell,
                              unbatched, self.dtype)
        batch = SortedBatch.from_lengths(check_lengths(lengths, T, B, unbatched), T)
        active = NO_LENGTHS
        if batch is not None:
            active = batch.active
            states0 = [batch.to_kernel(s) for s in states0]
            # training zeroes the padding: weight gradients sum over every step
            x3 = batch.to_kernel_zero_padded(x3) if training else batch.to_kernel(x3)
        runtime = self._runtime
        with self._timed_split(runtime.forward_choice, "forward_way", T,
                               self._may_split(T, B, x3.shape[2])):
            y_user, state_user, cache = self._forward_stack(x3, T, B, states0, batch, active,
                                                            unbatched, x, training)
        return (y_user, state_user, cache) if training else (y_user, state_user)

    def _timed_split(self, choice, way_attr, T, may_split):
        """For a call that may share a single sequence's steps over threads: choose
        whether it does (by the runtime's SplitChoice `choice`; the way, True or
        False, in the runtime's way_attr while the call runs, None otherwise) and
        record its time per step for that way (fastrnn/runtime/split_choice.py).  Other
        calls get a shared empty context."""
        if not may_split:
            return _EMPTY_CONTEXT
        return TimedCall(choice, self._runtime, way_attr, T)

    def _forward_stack(self, x3, T, B, states0, batch, active, unbatched, x, training):
        H, dirs = self.hidden_size, self.num_directions
        states_n = [np.empty(self._state_shape(B), self.dtype) for _ in states0]
        inputs, outputs, saved, masks = [], [], {}, []
        layer_in = x3
        runtime = self._runtime
        # inference borrows the work arrays of the layer's last inference call
        reused = None if training else runtime.take_reused()
        with (runtime.scratch.lease() if training else _EMPTY_CONTEXT) as lease:
            work = lease if training else reused
            for layer in range(self.num_layers):
                y = np.zeros((T, B, dirs * H), self.dtype) if B == 0 else \
                    runtime.spares.empty(f"y{layer}", (T, B, dirs * H), self.dtype)
                for direction in range(dirs if B > 0 else 0):
                    i = layer * dirs + direction
                    saved[i] = self._run_direction(
                        layer, direction, layer_in, [s[i] for s in states0], y,
                        [s[i] for s in states_n], training, active, work=work)
                if training:
                    inputs.append(layer_in)
                    outputs.append(y)
                layer_in = y
                if training and layer < self.num_layers - 1:
                    masks.append(self._dropout_mask(y.shape))
                    if masks[-1] is not None:
                        layer_in = y * masks[-1]
            kept = work.kept() if training else None
        if reused is not None:
            runtime.keep_reused(reused)
        if batch is not None:
            y_user = self._to_user_sequence(batch.to_caller(layer_in), unbatched)
            state_user = self._to_user_state([batch.to_caller(s) for s in states_n], unbatched)
        else:
            y_user = self._to_user_sequence(layer_in, unbatched)
            state_user = self._to_user_state(states_n, unbatched)
        if not training:
            return y_user, state_user, None
        cache = ForwardCache(self, unbatched, np.shape(x), inputs, outputs, states0, saved,
                             masks, batch, kept)
        return y_user, state_user, cache

    def backward(self, dy, cache, dstate_n=None):
        """Backpropagate through time from the gradients of y and state_n.

        Adds every parameter gradient into self.grads (so gradients of
        several backward calls accumulate until zero_grad()).

        Parameters
        ----------
        dy : array_like, the shape of the y returned by forward()
        cache : the cache returned by this layer's forward()
        dstate_n : None (zeros), or an array (a pair for LSTM) shaped like state_n

        Returns
        -------
        dx : ndarray shaped like x
        dstate0 : ndarray (a pair for LSTM) shaped like state0
        """
        self._owned_cache(cache, ForwardCache)
        H, dirs = self.hidden_size, self.num_directions
        y_top = cache.outputs[-1]
        T, B = y_top.shape[:2]
        if cache.unbatched:
            y_shape = (T, dirs * H)
        elif self.batch_first:
            y_shape = (B, T, dirs * H)
        else:
            y_shape = (T, B, dirs * H)
        dy_arr = as_real_array(dy, "dy")
        check_shape(dy_arr, "dy", y_shape)
        if cache.unbatched:
            dy_arr = dy_arr[:, np.newaxis, :]
        elif self.batch_first:
            dy_arr = dy_arr.transpose(1, 0, 2)
        grad_out = np.ascontiguousarray(dy_arr, dtype=self.dtype)
        dstates_n = check_state(dstate_n, "dstate_n", self._state_shape(B), self._has_cell,
                                cache.unbatched, self.dtype)
        batch, active = cache.batch, NO_LENGTHS
        if batch is not None:
            active = batch.active
            grad_out = batch.to_kernel(grad_out)
            dstates_n = [batch.to_kernel(s) for s in dstates_n]
        dstates0 = [np.zeros_like(s) for s in dstates_n]
        may_split = self._splits_backward and self._may_split(T, B, self.input_size)
        runtime = self._runtime
        with runtime.scratch.lease() as work, self._timed_split(
                runtime.backward_choice, "backward_way", T, may_split):
            for layer in reversed(range(self.num_layers)):
                layer_in, layer_out = cache.inputs[layer], cache.outputs[layer]
                dx = runtime.spares.zeros(f"dx{layer}", layer_in.shape, self.dtype)
                for direction in range(dirs if B > 0 else 0):
                    i = layer * dirs + direction
                    # in: dstate_n, out: dstate0 (aligned: threads write their units
                    # side by side)
                    carries = [aligned_copy(s[i]) for s in dstates_n]
                    self._backprop_direction(
                        layer, direction, layer_in, layer_out, grad_out, cache.saved[i],
                        [s[i] for s in cache.states0], carries, dx, direction == 1, active,
                        work)
                    for dst, carry in zip(dstates0, carries):
                        dst[i] = carry
                if layer > 0 and cache.masks and cache.masks[layer - 1] is not None:
                    dx *= cache.masks[layer - 1]     # through the dropout on layer - 1's output
                grad_out = dx
        if batch is not None:
            grad_out = batch.to_caller(grad_out)
            dstates0 = [batch.to_caller(s) for s in dstates0]
        dx_user = self._to_user_sequence(grad_out, cache.unbatched)
        return dx_user, self._to_user_state(dstates0, cache.unbatched)

    # ------------------------------------------------------- one direction

    def _run_direction(self, layer, direction, x, states0, y, states_n, training, active,
                       work=None):
        """Run one direction over x, write its columns of y and states_n; return what backward
        needs.  active: the kernels' variable-length argument (fastrnn.runtime.lengths).  When the
        runtime has a fastrnn.kernels.plan.StepPlan (a Stepper's), set the call up as the
        plan's layer `layer` instead.  work: the call's lease on work buffers (see _work) in
        training, its Reused in inference, None for a plan."""
        T, B, D = x.shape
        plan = self._runtime.plan
        packing = self._packing(layer, direction, plan)
        nthreads = self._threads(T, B, D)
        cfg = self._call_config(direction, T, B, D, training, packing, nthreads,
                                self._units_rows(B, nthreads))
        saved = self._buffers(cfg.saved_sizes, work, kept=True) if training else (None, None)
        _kernel_forward(cfg, x, y, direction * self.hidden_size,
                        self._direction_arrays(self.params, layer, direction),
                        tuple(states0), tuple(states_n), saved,
                        self._buffers(cfg.work_sizes, work),
                        self._packs(layer, direction, cfg, work), active, plan, layer)
        return saved if training else None

    def _backprop_direction(self, layer, direction, x, y, dy, saved, states0, carries, dx,
                            accumulate, active, work):
        """Backward of one direction: write (or add, if accumulate) dx, add weight grads,
        turn carries from dstate_n into dstate0 in place.  work: the call's lease."""
        T, B, D = x.shape
        nthreads = self._threads(T, B, D)
        cfg = self._call_config(direction, T, B, D, True, _PACK_WHEN_WORTH, nthreads,
                                self._units_rows(B, nthreads) if self._splits_backward else 1)
        _kernel_backward(cfg, x, y, dy, direction * self.hidden_size,
                         self._direction_arrays(self.params, layer, direction),
                         tuple(states0), saved, tuple(carries), dx, accumulate,
                         self._direction_arrays(self.grads, layer, direction),
                         self._buffers(cfg.backward_sizes, work), active,
                         self._runtime.backward_way is not False)

    # ------------------------------------------------------------ cell hooks

    def _variant(self):
        """The kernels' variant flags of this cell: (relu, reset_after, peephole)."""
        return (False, True, False)

    def _extra(self, layer, direction, table):
        """A variant's own parameter of one layer and direction from params or grads
        (table), or None."""
        return None

    # ---------------------------------------------------------------- extras

    def _config_repr(self):
        args = [f"{self.input_size}", f"{self.hidden_size}"]
        if self.num_layers != 1:
            args.append(f"num_layers={self.num_layers}")
        for flag in ("bidirectional", "reverse", "batch_first"):
            if getattr(self, flag):
                args.append(f"{flag}=True")
        if not self.bias:
            args.append("bias=False")
        if self._dropout:
            args.append(f"dropout={self._dropout}")
        args.append(f"dtype={self.dtype.name}")
        return args

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(self._config_repr())})"

    # ---------------------------------------------------- other frameworks

    @classmethod
    def from_keras(cls, weights, **config):
        """The layer equivalent to a Keras 3 layer of the same kind, from its weights.

        Parameters
        ----------
        weights : list of array_like
            What the Keras layer's ``get_weights()`` returns: ``[kernel, recurrent_kernel,
            bias]``, or ``[kernel, recurrent_kernel]`` with ``use_bias=False``.
        **config
            Other constructor arguments (``dtype``, ``nonlinearity`` for RNN, ...).  The
            default ``batch_first=True`` is Keras's layout; input_size, hidden_size and
            bias come from the weights.

        Returns
        -------
        layer : a single-layer, unidirectional layer of this class

        Raises
        ------
        ValueError, TypeError
            If weights is not such a list, or an array has the wrong shape.
        """
        return keras.from_keras(cls, weights, config)

    def to_keras_weights(self):
        """The ``get_weights()`` list of the equivalent Keras 3 layer, for ``set_weights``.

        Returns
        -------
        weights : list of ndarray
            ``[kernel, recurrent_kernel, bias]`` (no bias without bias), in this layer's
            dtype; Keras's gate order and shapes (see fastrnn.interop.keras).

        Raises
        ------
        ValueError
            If the layer has several layers, two directions or reverse=True: a Keras layer
            is one forward layer.
        """
        return keras.to_keras_weights(self)

    def to_onnx(self, path, *, initial_state=False, lengths=False):
        """Write an ONNX model that runs this layer (needs the onnx package).

        One RNN, LSTM or GRU node per stacked layer (time-major, layout 0, which ONNX
        Runtime runs), with a Transpose and a Reshape between nodes turning ONNX's
        (T, dirs, B, H) output into the next node's (T, B, dirs*H) input; a batch-first
        layer's model transposes its input and output.  Opset 17.

        Parameters
        ----------
        path : str or os.PathLike
            Where to write the .onnx file.
        initial_state : bool, default False
            Whether the model takes the initial state as inputs ``h0`` (and ``c0``),
            shaped like this layer's state0; without, it starts from zeros.
        lengths : bool, default False
            Whether the model takes an int32 input ``lengths`` (B,), each node's
            sequence_lens: the model then runs like ``layer(x, lengths=...)``.

        Notes
        -----
        The model's input is ``x`` (shaped like this layer's x, batched), its outputs
        ``y``, ``h_n`` (and ``c_n``) shaped like the layer's y and state_n.  ONNX Runtime's
        CPU kernels run float32 models only; a float64 layer writes a valid float64 model.
        """
        _onnx_export.export(self, path, initial_state=bool(initial_state), lengths=bool(lengths))
