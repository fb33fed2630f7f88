"""The cell kinds fastrnn runs (RNN, LSTM, GRU): one entry each, read by every module that
lists or converts cells.

An entry says what the other modules need to know of a cell without importing its layer:
its gate count, how many arrays its state has, its gate orders in Keras and ONNX, its ONNX
node's activations and extra attributes, and its lowercase key (the command line, the
benchmarks, the character model).  The layer class registers itself here when its module is
imported (RecurrentLayer.__init_subclass__), and the package imports every layer module, so
``layer_class`` is set once ``fastrnn`` is imported; this module imports no layer.

Adding a cell: an entry here, its layer module (``class X(RecurrentLayer, cell="X")``,
imported by fastrnn/__init__.py), its kernels, its reference and its tests.
"""

import dataclasses


@dataclasses.dataclass(eq=False)
class CellKind:
    """One cell kind.

    Gate orders give, for every fastrnn (torch) gate in turn, the index of that gate's
    block in the other framework (see fastrnn/interop/gates.py reorder).
    """

    name: str                    # the layer class's, torch.nn's and the ONNX operator's name
    key: str                     # lowercase, for the command line and the benchmarks
    gate_count: int              # gate blocks in the weight matrices
    state_arity: int             # arrays in a state: 1 (h) or 2 (h, c)
    keras_order: tuple
    onnx_order: tuple
    onnx_activations: tuple      # ONNX's default activations, None: chosen per layer
    onnx_extra_attributes: frozenset   # the operator's attributes beyond the shared ones
    layer_class: type = None     # set by the layer's module (register)


KINDS = (
    CellKind("RNN", "rnn", 1, 1, keras_order=(0,), onnx_order=(0,),
             onnx_activations=None, onnx_extra_attributes=frozenset()),
    CellKind("LSTM", "lstm", 4, 2, keras_order=(0, 1, 2, 3), onnx_order=(0, 2, 3, 1),
             onnx_activations=("sigmoid", "tanh", "tanh"),
             onnx_extra_attributes=frozenset({"input_forget"})),
    CellKind("GRU", "gru", 3, 1, keras_order=(1, 0, 2), onnx_order=(1, 0, 2),
             onnx_activations=("sigmoid", "tanh"),
             onnx_extra_attributes=frozenset({"linear_before_reset"})),
)
BY_NAME = {kind.name: kind for kind in KINDS}
BY_KEY = {kind.key: kind for kind in KINDS}
KEYS = tuple(BY_KEY)


def register(name, cls):
    """Make cls the layer class of cell kind `name`; returns the kind."""
    kind = BY_NAME[name]
    kind.layer_class = cls
    return kind


def kind_of(obj):
    """The CellKind of a layer or layer class (subclasses too), or None."""
    cls = obj if isinstance(obj, type) else type(obj)
    for kind in KINDS:
        if kind.layer_class is not None and issubclass(cls, kind.layer_class):
            return kind
    return None


def layer_names(*more):
    """The recurrent layers, then the classes named in more, as the error messages name
    them: "fastrnn.RNN, LSTM or GRU"."""
    names = [kind.name for kind in KINDS] + list(more)
    return "fastrnn." + ", ".join(names[:-1]) + " or " + names[-1]


def check_layer(layer, what="layer"):
    """The CellKind of layer; a TypeError naming `what` if it is not a recurrent layer."""
    kind = kind_of(layer)
    if kind is None:
        raise TypeError(f"{what}: expected a {layer_names()} layer, got "
                        f"{type(layer).__name__}")
    return kind
