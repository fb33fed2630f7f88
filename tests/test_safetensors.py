"""layer.load_state_dict(path or mapping, prefix=) and layer.save_state_dict(path) against torch.

torch is the oracle: its modules' state dicts, written by safetensors.torch.save_file, load
into fastrnn layers that then give the torch module's outputs (whole modules, submodules
picked by prefix, and torch's cells); fastrnn's files load back into torch modules through
safetensors.torch.load_file and give the fastrnn layer's outputs.  Damaged or mismatched
files are ValueErrors naming the file.
"""

import numpy as np
import pytest

safetensors = pytest.importorskip("safetensors")
torch = pytest.importorskip("torch")
from safetensors.numpy import save_file as np_save_file  # noqa: E402
from safetensors.torch import load_file as torch_load_file  # noqa: E402
from safetensors.torch import save_file as torch_save_file  # noqa: E402

import fastrnn  # noqa: E402
from conftest import assert_close, rng_for  # noqa: E402

F32 = np.float32
D, H, T, B = 3, 5, 4, 2
KINDS = ["RNN", "LSTM", "GRU"]
CONFIGS = [dict(num_layers=1, bidirectional=False), dict(num_layers=2, bidirectional=True),
           dict(num_layers=1, bidirectional=False, bias=False)]


def torch_module(kind, seed, **config):
    torch.manual_seed(seed)
    module = getattr(torch.nn, kind)(D, H, **config)
    with torch.no_grad():
        for p in module.parameters():         # biases far from zero too
            p.uniform_(-0.7, 0.7)
    return module


def torch_outputs(module, x):
    with torch.no_grad():
        y, state = module(torch.from_numpy(x))
    return y.numpy(), (tuple(s.numpy() for s in state) if isinstance(state, tuple)
                       else state.numpy())


@pytest.mark.parametrize("config", CONFIGS, ids=str)
@pytest.mark.parametrize("kind", KINDS)
def test_torch_file_loads_and_fastrnn_file_goes_back_to_torch(kind, config, tmp_path):
    rng = rng_for("st", kind, str(config))
    module = torch_module(kind, int(rng.integers(1000)), **config)
    path = tmp_path / "torch.safetensors"
    torch_save_file(module.state_dict(), str(path))
    layer = getattr(fastrnn, kind)(D, H, seed=0, **config)
    layer.load_state_dict(path)
    x = rng.standard_normal((T, B, D)).astype(F32)
    y, state = layer(x)
    want_y, want_state = torch_outputs(module, x)
    assert_close(y, want_y, F32, "y")
    assert_close(state, want_state, F32, "state")

    # and back: a fresh layer's file loads into a fresh torch module, strictly
    other = getattr(fastrnn, kind)(D, H, seed=7, **config)
    out = tmp_path / "fastrnn.safetensors"
    other.save_state_dict(out)
    twin = torch_module(kind, 999, **config)
    twin.load_state_dict(torch_load_file(str(out)))      # strict: the same names, no other
    assert_close(torch_outputs(twin, x)[0], other(x)[0], F32, "y from the written file")


class Model(torch.nn.Module):
    """A torch model whose recurrent part is one submodule among others."""

    def __init__(self, kind):
        super().__init__()
        self.embed = torch.nn.Embedding(11, D)
        self.encoder = torch.nn.Module()
        self.encoder.rnn = getattr(torch.nn, kind)(D, H, num_layers=2)
        self.head = torch.nn.Linear(H, 6)


@pytest.mark.parametrize("source", ["file", "mapping"])
@pytest.mark.parametrize("kind", KINDS)
def test_prefix_picks_a_submodule(kind, source, tmp_path):
    rng = rng_for("prefix", kind, source)
    torch.manual_seed(int(rng.integers(1000)))
    model = Model(kind)
    path = tmp_path / "model.safetensors"
    torch_save_file(model.state_dict(), str(path))
    src = path if source == "file" else {k: v.numpy() for k, v in model.state_dict().items()}
    embed, rnn = fastrnn.Embedding(11, D), getattr(fastrnn, kind)(D, H, num_layers=2)
    head = fastrnn.Linear(H, 6)
    embed.load_state_dict(src, prefix="embed.")
    rnn.load_state_dict(src, prefix="encoder.rnn.")
    head.load_state_dict(src, prefix="head.")
    tokens = rng.integers(0, 11, (T, B))
    with torch.no_grad():
        want = model.head(model.encoder.rnn(model.embed(torch.from_numpy(tokens)))[0]).numpy()
    assert_close(head(rnn(embed(tokens))[0]), want, F32, "model output")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("reverse", [False, True])
def test_torch_cell_names_load_into_a_one_layer_layer(kind, reverse, tmp_path):
    rng = rng_for("cell", kind, reverse)
    torch.manual_seed(int(rng.integers(1000)))
    cell = getattr(torch.nn, kind + "Cell")(D, H)
    path = tmp_path / "cell.safetensors"
    torch_save_file({"cell." + k: v for k, v in cell.state_dict().items()}, str(path))
    layer = getattr(fastrnn, kind)(D, H, reverse=reverse)
    layer.load_state_dict(path, prefix="cell.")
    x = rng.standard_normal((T, B, D)).astype(F32)
    state, ys = None, [None] * T      # the cell stepped over the sequence, by hand
    with torch.no_grad():
        for t in (reversed(range(T)) if reverse else range(T)):
            state = cell(torch.from_numpy(x[t]), state)
            ys[t] = (state[0] if kind == "LSTM" else state).numpy()
    assert_close(layer(x)[0], np.stack(ys), F32, "y")


@pytest.mark.parametrize("make", [lambda: fastrnn.Linear(4, 3, seed=1),
                                  lambda: fastrnn.Linear(4, 3, bias=False, seed=2),
                                  lambda: fastrnn.Embedding(9, 4, seed=3)],
                         ids=["linear", "linear-nobias", "embedding"])
def test_linear_and_embedding_files_go_to_torch_and_back(make, tmp_path):
    layer = make()
    path = tmp_path / "layer.safetensors"
    layer.save_state_dict(path)
    if isinstance(layer, fastrnn.Linear):
        module = torch.nn.Linear(4, 3, bias=layer.bias)
        x = rng_for("lin").standard_normal((2, 4)).astype(F32)
    else:
        module = torch.nn.Embedding(9, 4)
        x = np.array([[0, 8, 3]])
    module.load_state_dict(torch_load_file(str(path)))
    with torch.no_grad():
        assert_close(layer(x), module(torch.from_numpy(x)).numpy(), F32, "output")
    again = make()
    again.reset_parameters(seed=99)
    again.load_state_dict(path)
    for k, v in layer.params.items():
        np.testing.assert_array_equal(again.params[k], v)


def test_save_with_prefix_loads_with_that_prefix(tmp_path):
    layer = fastrnn.GRU(D, H, num_layers=2, seed=4)
    path = tmp_path / "sub.safetensors"
    layer.save_state_dict(path, prefix="decoder.gru.")
    assert set(torch_load_file(str(path))) == {"decoder.gru." + k for k in layer.params}
    other = fastrnn.GRU(D, H, num_layers=2, seed=5)
    other.load_state_dict(path, prefix="decoder.gru.")
    for k, v in layer.params.items():
        np.testing.assert_array_equal(other.params[k], v)


# ----------------------------------------------------------------------------- refusals


def write_lstm_file(path, **change):
    arrays = {k: v.copy() for k, v in fastrnn.LSTM(D, H, seed=1).params.items()}
    arrays.update(change)
    np_save_file(arrays, str(path))


@pytest.mark.parametrize("change, reason", [
    (dict(weight_hh_l0=np.zeros((4 * H, H + 1), F32)), r"'weight_hh_l0' has shape \(20, 6\)"),
    (dict(weight_ih_l0=np.zeros((4 * H, D), np.int32)), "'weight_ih_l0' has dtype I32"),
    (dict(extra=np.zeros(2, F32)), r"unexpected keys \['extra'\]"),
], ids=["shape", "dtype", "unexpected"])
def test_mismatched_file_is_a_value_error_naming_it(change, reason, tmp_path):
    path = tmp_path / "bad.safetensors"
    write_lstm_file(path, **change)
    layer = fastrnn.LSTM(D, H, seed=2)
    before = {k: v.copy() for k, v in layer.params.items()}
    with pytest.raises(ValueError, match=rf"bad\.safetensors: .*{reason}"):
        layer.load_state_dict(path)
    for k, v in before.items():                       # nothing written on failure
        np.testing.assert_array_equal(layer.params[k], v)


@pytest.mark.parametrize("cut", [0, 5, 9, -3])
def test_truncated_file_is_a_value_error(cut, tmp_path):
    good = tmp_path / "good.safetensors"
    write_lstm_file(good)
    raw = good.read_bytes()
    bad = tmp_path / "cut.safetensors"
    bad.write_bytes(raw[:cut] if cut >= 0 else raw[:cut])
    with pytest.raises(ValueError, match=r"cut\.safetensors: not a readable"):
        fastrnn.LSTM(D, H).load_state_dict(bad)


def test_other_refusals(tmp_path):
    path = tmp_path / "l.safetensors"
    write_lstm_file(path)
    with pytest.raises(ValueError, match="no name starts with prefix 'enc.'"):
        fastrnn.LSTM(D, H).load_state_dict(path, prefix="enc.")
    cell = {k: np.zeros(v.shape, F32) for k, v in torch.nn.GRUCell(D, H).state_dict().items()}
    with pytest.raises(ValueError, match="num_layers=1 and bidirectional=False"):
        fastrnn.GRU(D, H, bidirectional=True).load_state_dict(cell)
    with pytest.raises(TypeError, match="prefix"):
        fastrnn.LSTM(D, H).load_state_dict(path, prefix=1)
    with pytest.raises(TypeError, match="state_dict"):
        fastrnn.LSTM(D, H).load_state_dict(12)
    with pytest.raises(FileNotFoundError):
        fastrnn.LSTM(D, H).load_state_dict(tmp_path / "missing.safetensors")


def test_missing_package_is_a_clear_import_error(monkeypatch, tmp_path):
    import sys
    monkeypatch.setitem(sys.modules, "safetensors", None)
    with pytest.raises(ImportError, match=r"fastrnn\[safetensors\]"):
        fastrnn.Linear(2, 2).save_state_dict(tmp_path / "x.safetensors")
