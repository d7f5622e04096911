"""Malformed and unsupported model files: ``load_model_file`` raises InputError with a one-line
message naming what is wrong; through the command line, one line ``error: ...``, exit status
2, no traceback, nothing written.

Bad files are made here from good ones: PyTorch-named state_dicts, ONNX graphs shaped like
torch.onnx.export's, and the Keras fixtures with their JSON config edited the way older or
differently configured Keras versions write it (hard_sigmoid, go_backwards, Masking, ...).
"""
from __future__ import annotations

import json
import shutil
import zipfile
import numpy as np
import pytest

from helpers_import import (FIX, assert_one_line_exit_2, keras2_h5, model_cli, onnx_lstm_model,
                            torch_state_dict)
from model.importers import load_model_file
from model.weights import InputError

X, H, L, C = 3, 4, 2, 3


def _sd():
    return torch_state_dict(np.random.default_rng(11), X, H, L, C)


def _npz(d, name, sd):
    np.savez(d / name, **sd)
    return d / name


def _changed(sd, drop=(), **new):
    out = {k: v for k, v in sd.items() if k not in drop}
    out.update({k.replace("__", "."): v for k, v in new.items()})
    return out


# ---- PyTorch -------------------------------------------------------------------------------

def _safetensors(d, name, cut=None, raw=None):
    from safetensors.numpy import save_file
    path = d / name
    if raw is not None:
        path.write_bytes(raw)
        return path
    save_file(_sd(), str(path))
    if cut:
        path.write_bytes(path.read_bytes()[:cut])
    return path


def _torch_zip(d):
    path = d / "m.pt"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
        z.writestr("archive/version", b"3\n")
    return path


PYTORCH = {
    "safetensors truncated": (lambda d: _safetensors(d, "cut.safetensors", cut=300), "truncated"),
    "safetensors header not JSON": (
        lambda d: _safetensors(d, "bad.safetensors", raw=(12).to_bytes(8, "little") + b"{not json!!}"),
        "not JSON"),
    "missing tensor": (lambda d: _npz(d, "a.npz", _changed(_sd(), drop=["lstm.weight_hh_l1"])),
                       "weight_hh_l1"),
    "one bias of two": (lambda d: _npz(d, "b.npz", _changed(_sd(), drop=["lstm.bias_hh_l0"])),
                        "bias_hh_l0"),
    "wrong bias shape": (lambda d: _npz(d, "c.npz", {**_sd(), "lstm.bias_ih_l0": np.zeros(4 * H - 1)}),
                         "bias_ih_l0"),
    "layers that do not chain": (
        lambda d: _npz(d, "e.npz", {**_sd(), "lstm.weight_ih_l1": np.zeros((4 * H, H + 1))}), "layer 1"),
    "bidirectional": (lambda d: _npz(d, "f.npz", {**_sd(), "lstm.weight_ih_l0_reverse": np.zeros((4 * H, X))}),
                      "bidirectional"),
    "proj_size": (lambda d: _npz(d, "g.npz", {**_sd(), "lstm.weight_hr_l0": np.zeros((2, H))}), "proj_size"),
    "unknown tensor": (lambda d: _npz(d, "h.npz", {**_sd(), "encoder.weight": np.zeros((X, X))}),
                       "encoder.weight"),
    "two LSTM modules": (lambda d: _npz(d, "i.npz", {**_sd(), "lstm2.weight_ih_l0": np.zeros((4 * H, X))}),
                         "several modules"),
    "head of the wrong width": (lambda d: _npz(d, "j.npz", {**_sd(), "fc.weight": np.zeros((C, H + 1))}),
                                "fc.weight"),
    "integer tensor": (lambda d: _npz(d, "k.npz", {**_sd(), "lstm.weight_hh_l0": np.ones((4 * H, H), int)}),
                       "floating point"),
    "NaN": (lambda d: _npz(d, "l.npz", {**_sd(), "fc.bias": np.array([0, np.nan, 0])}), "NaN"),
}


def test_torch_file_without_torch_says_how_to_save(tmp_path):
    try:
        import torch  # noqa: F401
        pytest.skip("torch is installed: .pt files are read with torch.load(weights_only=True)")
    except ImportError:
        pass
    message = _one_line_error(_torch_zip(tmp_path), None)
    assert "torch is not installed" in message and "safetensors.torch.save_file" in message \
        and "np.savez" in message


# ---- ONNX ----------------------------------------------------------------------------------

def _onnx(d, name, mutate=None, **kw):
    import onnx
    model = onnx_lstm_model(_sd(), L, **kw)
    if mutate:
        mutate(model)
    path = d / name
    onnx.save(model, path)
    return path


def _insert_relu(model):
    from onnx import helper
    nodes = list(model.graph.node)
    at = next(i for i, n in enumerate(nodes) if n.name == "/lstm/LSTM_1")
    nodes[at].input[0] = "relu_out"
    nodes.insert(at, helper.make_node("Relu", ["S0"], ["relu_out"], name="/act/Relu"))
    del model.graph.node[:]
    model.graph.node.extend(nodes)


def _widen_w(model):
    from onnx import numpy_helper
    for i, t in enumerate(model.graph.initializer):
        if t.name == "onnx::LSTM_W0":
            w = numpy_helper.to_array(t)
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(
                np.concatenate([w, w[:, :, :1]], axis=2), t.name))


def _gemm_on_every_step(model):
    for n in model.graph.node:
        if n.op_type == "Gemm":
            n.input[0] = "h_seq"


def _custom_domain(model):
    for n in model.graph.node:
        if n.op_type == "Squeeze" and n.name == "/lstm/Squeeze_0":
            n.domain = "com.example"


ONNX = {
    "onnx bidirectional": (lambda d: _onnx(d, "a.onnx", lstm_attrs={"direction": "bidirectional"}),
                           "direction='bidirectional'"),
    "onnx reverse": (lambda d: _onnx(d, "b.onnx", lstm_attrs={"direction": "reverse"}), "direction='reverse'"),
    "onnx clip": (lambda d: _onnx(d, "c.onnx", lstm_attrs={"clip": 2.0}), "clip"),
    "onnx input_forget": (lambda d: _onnx(d, "e.onnx", lstm_attrs={"input_forget": 1}), "input_forget"),
    "onnx activations": (lambda d: _onnx(d, "f.onnx", lstm_attrs={"activations": ["HardSigmoid", "Tanh", "Tanh"]}),
                         "HardSigmoid"),
    "onnx peepholes": (lambda d: _onnx(d, "g.onnx", extra_inputs={7: "onnx::LSTM_W0"}), "peepholes (input P)"),
    "onnx sequence_lens": (lambda d: _onnx(d, "h.onnx", extra_inputs={4: "nl"}), "sequence_lens"),
    "onnx state from a graph input": (lambda d: _onnx(d, "i.onnx", state="input"), "--state"),
    "onnx unknown node": (lambda d: _onnx(d, "j.onnx", _insert_relu), "'/act/Relu' (Relu)"),
    "onnx W of the wrong width": (lambda d: _onnx(d, "k.onnx", _widen_w), "input_size"),
    "onnx head on every step": (lambda d: _onnx(d, "l.onnx", _gemm_on_every_step), "last step"),
    "onnx custom domain": (lambda d: _onnx(d, "m.onnx", _custom_domain), "com.example"),
    "onnx truncated": (lambda d: _cut(_onnx(d, "n.onnx"), 200), "cannot be parsed"),
}


def _cut(path, n):
    path.write_bytes(path.read_bytes()[:n])
    return path


# ---- Keras ---------------------------------------------------------------------------------

def _keras(d, name, edit, source="keras_sequential.keras"):
    """A copy of a Keras fixture with its JSON config edited (``edit(config)``)."""
    path = d / name
    if source.endswith(".h5"):
        import h5py
        shutil.copy(FIX / source, path)
        with h5py.File(path, "r+") as f:
            config = json.loads(f.attrs["model_config"])
            edit(config)
            f.attrs["model_config"] = json.dumps(config)
        return path
    with zipfile.ZipFile(FIX / source) as src, zipfile.ZipFile(path, "w") as dst:
        for item in src.namelist():
            data = src.read(item)
            if item == "config.json":
                config = json.loads(data)
                edit(config)
                data = json.dumps(config).encode()
            dst.writestr(item, data)
    return path


def _layer(config, k):
    return config["config"]["layers"][k]["config"]


def _set(k, **values):
    return lambda config: _layer(config, k).update(values)


def _insert_masking(config):
    config["config"]["layers"].insert(1, {"class_name": "Masking", "config": {"name": "masking",
                                                                              "mask_value": 0.0}})


def _read_state_c(config):
    """The Dense reads the LSTM's third output (state_c) instead of its second (state_h)."""
    dense = next(L for L in config["config"]["layers"] if L["class_name"] == "Dense")
    dense["inbound_nodes"][0]["args"][0]["config"]["keras_history"][2] = 2


def _weights_only_h5(d):
    import h5py
    with h5py.File(d / "w.h5", "w") as f:
        f["layers/lstm/vars/0"] = np.zeros((3, 20))
    return d / "w.h5"


KERAS = {
    "keras hard_sigmoid": (lambda d: _keras(d, "a.keras", _set(1, recurrent_activation="hard_sigmoid")),
                           "recurrent_activation='hard_sigmoid'"),
    "keras legacy h5 hard_sigmoid": (
        lambda d: _keras(d, "a.h5", _set(1, recurrent_activation="hard_sigmoid"), "keras_sequential.h5"),
        "hard_sigmoid"),
    "keras relu cell": (lambda d: _keras(d, "b.keras", _set(2, activation="relu")), "activation='relu'"),
    "keras go_backwards": (lambda d: _keras(d, "c.keras", _set(1, go_backwards=True)), "go_backwards"),
    "keras Dense on every step": (lambda d: _keras(d, "e.keras", _set(2, return_sequences=True)), "every step"),
    "keras relu head": (lambda d: _keras(d, "f.keras", _set(3, activation="relu")), "linear or softmax"),
    "keras Masking": (lambda d: _keras(d, "g.keras", _insert_masking), "Masking"),
    "keras Bidirectional": (
        lambda d: _keras(d, "h.keras", lambda c: c["config"]["layers"][1].update(class_name="Bidirectional")),
        "one-directional"),
    "keras units disagree": (lambda d: _keras(d, "i.keras", _set(1, units=H + 3)), "units"),
    "keras truncated archive": (lambda d: _cut(_keras(d, "j.keras", lambda c: None), 2000),
                                "a damaged or truncated zip archive"),
    "keras truncated h5": (lambda d: _cut(_keras(d, "k.h5", lambda c: None, "keras_sequential.h5"), 3000),
                           "cannot be read"),
    "keras weights-only h5": (_weights_only_h5, "model_config"),
    "keras 2 hard_sigmoid": (lambda d: keras2_h5(d / "k2.h5", load_model_file(FIX / "keras_sequential.keras"),
                                                 recurrent_activation="hard_sigmoid"), "hard_sigmoid"),
    "keras head on state_c": (lambda d: _keras(d, "s.keras", _read_state_c, "keras_state.keras"), "state_c"),
    "keras config not JSON": (lambda d: _raw_config(d), "not JSON"),
}


def _raw_config(d):
    path = d / "z.keras"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("config.json", b"{broken")
        z.writestr("model.weights.h5", b"")
    return path


# ---- anything --------------------------------------------------------------------------------

GENERAL = {
    "unknown npz keys": (lambda d: _npz(d, "u.npz", {"alpha": np.zeros(3), "beta": np.ones(2)}),
                         "arrays alpha, beta"),
    "empty file": (lambda d: _cut(_npz(d, "v.npz", _sd()), 0), "empty file"),
    "text file": (lambda d: _write(d / "t.onnx", b"hello, I am not a model\n"), "not a model layout"),
}


def _write(path, data):
    path.write_bytes(data)
    return path


CASES = {**PYTORCH, **ONNX, **KERAS, **GENERAL}
NEEDS = {"onnx": "onnx", "keras": "h5py", "safetensors": "safetensors"}


@pytest.fixture(scope="module")
def bad_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("bad_models")


def _make(case, d):
    for word, module in NEEDS.items():
        if case.startswith(word) or (word == "safetensors" and "safetensors" in case):
            pytest.importorskip(module)
    make, words = CASES[case]
    sub = d / f"case{list(CASES).index(case)}"      # a name that cannot match the words
    sub.mkdir(exist_ok=True)
    return make(sub), words


def _one_line_error(path, fmt, words=""):
    with pytest.raises(InputError) as e:
        load_model_file(path, fmt)
    message = str(e.value)
    print(message)
    assert "\n" not in message and words in message, message
    return message


@pytest.mark.parametrize("case", CASES)
def test_bad_model_file(case, bad_dir):
    path, words = _make(case, bad_dir)
    _one_line_error(path, None, words)


@pytest.mark.parametrize("fmt, fixture, words", [
    ("native", "torch_lstm2.npz", "weight_ih"),
    ("onnx", "torch_lstm2.npz", "ONNX"),
    ("keras", "onnx_lstm2.onnx", "neither a legacy .h5"),
    ("pytorch", "keras_sequential.h5", "not a PyTorch state_dict"),
    ("pytorch", "onnx_lstm2.onnx", "not a PyTorch state_dict"),
])
def test_forced_format_on_the_wrong_file(fmt, fixture, words):
    if fmt in ("onnx", "keras"):
        pytest.importorskip("onnx" if fmt == "onnx" else "h5py")
    _one_line_error(FIX / fixture, fmt, words)


def test_truncated_keras_archive_forced_says_so(bad_dir):
    """--weights-format keras on a .keras cut short: damaged or truncated, not 'not a zip'."""
    pytest.importorskip("h5py")
    path, _ = _make("keras truncated archive", bad_dir)
    _one_line_error(path, "keras", "a damaged or truncated .keras archive")


def test_an_unknown_format_is_refused_by_name():
    with pytest.raises(InputError, match="unknown weights format"):
        load_model_file(FIX / "torch_lstm2.npz", "caffe")


# ---- through the command line ----------------------------------------------------------------

CLI_CASES = ["safetensors truncated", "bidirectional", "proj_size", "onnx peepholes", "onnx clip",
             "onnx unknown node", "keras hard_sigmoid", "keras go_backwards", "keras truncated h5",
             "keras truncated archive",
             "unknown npz keys"]


@pytest.mark.parametrize("case", CLI_CASES)
def test_bad_model_file_on_the_command_line(case, bad_dir, tmp_path):
    path, words = _make(case, bad_dir)
    out = tmp_path / "o.npz"
    assert_one_line_exit_2(model_cli("run", "--weights", path, "--out", out), words)
    assert list(tmp_path.iterdir()) == []


def test_bad_weights_format_name(tmp_path):
    p = model_cli("run", "--weights", FIX / "torch_lstm2.npz", "--weights-format", "caffe",
                  "--out", tmp_path / "o.npz")
    assert_one_line_exit_2(p, "--weights-format")
    assert list(tmp_path.iterdir()) == []
