"""Imported models through the commands a user runs: ``python -m model run``, ``python -m rtl``,
``python -m sim`` with ``--weights`` in each format (and ``--weights-format``).

Single-layer models run everywhere; stacked models and stored initial states are refused by
the commands that take one layer, with one line and exit status 2.
"""
from __future__ import annotations

import numpy as np
import pytest

from helpers_import import (FIX, assert_one_line_exit_2, model_cli, onnx_lstm_model, onnx_reference,
                            torch_reference, torch_state_dict)

FLOAT_TOL = 1e-5
FIXED_TOL = 2.0 ** -9
INPUTS = FIX / "inputs.npy"


def _run(tmp_path, weights, *extra):
    out = tmp_path / "o.npz"
    p = model_cli("run", "--weights", weights, "--inputs", INPUTS, "--out", out, *extra)
    assert p.returncode == 0 and p.stderr == "", p.stderr
    with np.load(out) as f:
        return {k: f[k] for k in f.files}


@pytest.mark.parametrize("forced", [False, True])
def test_model_run_on_a_keras_file(tmp_path, forced):
    pytest.importorskip("h5py")
    r = _run(tmp_path, FIX / "keras_single.keras", *(["--weights-format", "keras"] if forced else []))
    assert np.abs(r["h_float"][:, -1] - np.load(FIX / "keras_single.hT.npy")).max() < FLOAT_TOL
    assert np.abs(r["logits_float"] - np.load(FIX / "keras_single.logits.npy")).max() < FLOAT_TOL
    assert np.abs(r["h"] - r["h_float"]).max() <= FIXED_TOL


def _single_layer_sd():
    return torch_state_dict(np.random.default_rng(21), 3, 5, 1, 4)


def test_model_run_on_pytorch_and_onnx_files(tmp_path):
    onnx = pytest.importorskip("onnx")
    st = pytest.importorskip("safetensors.numpy")
    sd = _single_layer_sd()
    x = np.load(INPUTS)
    hs, logits = torch_reference(sd, x, 1)
    st.save_file(sd, str(tmp_path / "m.safetensors"))
    model = onnx_lstm_model(sd, 1)
    onnx.save(model, tmp_path / "m.onnx")
    ref = onnx_reference(model, x)
    for name, want_h, want_logits in (("m.safetensors", hs[-1], logits),
                                      ("m.onnx", ref["h_seq"], ref["logits"])):
        r = _run(tmp_path, tmp_path / name)
        assert np.abs(r["h_float"] - want_h).max() < FLOAT_TOL, name
        assert np.abs(r["logits_float"] - want_logits).max() < FLOAT_TOL, name
        assert np.abs(r["h"] - r["h_float"]).max() <= FIXED_TOL, name


@pytest.mark.parametrize("module, fixture, extra", [
    ("model", "keras_sequential.keras", ["run", "--out", "{tmp}/o.npz"]),
    ("model", "onnx_lstm2.onnx", ["report"]),
    ("rtl", "torch_lstm2.safetensors", ["--out", "{tmp}/f.v"]),
    ("sim", "onnx_lstm2.onnx", []),
])
def test_stacked_models_are_refused_by_single_layer_commands(tmp_path, module, fixture, extra):
    pytest.importorskip("onnx" if fixture.endswith(".onnx") else "h5py")
    args = [a.replace("{tmp}", str(tmp_path)) for a in extra]
    command = args[:1] if module == "model" else []
    p = model_cli(*command, "--weights", FIX / fixture, *args[len(command):], module=module)
    assert_one_line_exit_2(p, "takes a single LSTM layer; this model has 2 stacked layers")
    assert list(tmp_path.iterdir()) == []


def test_stored_initial_state_is_not_dropped(tmp_path):
    onnx = pytest.importorskip("onnx")
    sd = _single_layer_sd()
    sd["h0"], sd["c0"] = np.full((2, 1, 5), 0.25)
    onnx.save(onnx_lstm_model(sd, 1, state="const"), tmp_path / "s.onnx")
    out = tmp_path / "o.npz"
    p = model_cli("run", "--weights", tmp_path / "s.onnx", "--inputs", INPUTS, "--out", out)
    assert_one_line_exit_2(p, "initial state stored in this model file")
    assert not out.exists()


def test_rtl_exports_an_onnx_model(tmp_path):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("amaranth")
    onnx.save(onnx_lstm_model(_single_layer_sd(), 1), tmp_path / "m.onnx")
    out = tmp_path / "cell.v"
    p = model_cli("--weights", tmp_path / "m.onnx", "--weights-format", "onnx", "--lanes", "2",
                  "--out", out, module="rtl")
    assert p.returncode == 0, p.stderr
    assert "X=3 H=5 P=2" in p.stdout and "module lstm_cell" in out.read_text()


def test_frameworks_are_imported_only_when_their_format_is_read():
    """``import model`` and reading a native or PyTorch file need numpy alone."""
    import subprocess
    import sys
    code = ("import sys, model, model.cli, model.shipped\n"
            "from model.importers import load_model_file\n"
            f"load_model_file({str(FIX / 'torch_lstm2.npz')!r})\n"
            "load_model_file(model.shipped.DEFAULT_WEIGHTS)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('onnx', 'h5py', 'safetensors', 'torch', 'keras', 'tensorflow', 'jax')))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "[]"
