"""Imported models through the commands a user runs: ``python -m model run``, ``python -m rtl``,
``python -m sim`` with ``--weights`` in each format (and ``--weights-format``).

Every model runs through ``python -m model``, stacked ones and stored initial states included;
``python -m rtl`` exports stacked models too, and refuses a stored initial state (the hardware
takes it through its state ports) with one line and exit status 2.
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


@pytest.mark.parametrize("fixture, last_h", [
    ("keras_sequential.keras", "keras_sequential.hT.npy"),
    ("onnx_lstm2.onnx", "onnx_lstm2.h1.npy"),
    ("torch_lstm2.safetensors", "torch_lstm2.h1.npy"),
])
def test_model_run_on_stacked_files(tmp_path, fixture, last_h):
    """Two-layer files from each framework: the last layer's h and the logits against the
    framework's own outputs, the fixed point within the usual bound of the float path."""
    pytest.importorskip("onnx" if fixture.endswith(".onnx") else "h5py")
    pytest.importorskip("safetensors")
    r = _run(tmp_path, FIX / fixture)
    want = np.load(FIX / last_h)
    got = r["h_float"][:, -1] if want.ndim == 2 else r["h_float"]
    assert np.abs(got - want).max() < FLOAT_TOL
    stem = fixture.rsplit(".", 1)[0]
    assert np.abs(r["logits_float"] - np.load(FIX / f"{stem}.logits.npy")).max() < FLOAT_TOL
    assert np.abs(r["h"] - r["h_float"]).max() <= FIXED_TOL
    assert r["h_n"].shape[0] == 2


def test_rtl_exports_a_stacked_onnx_model(tmp_path):
    pytest.importorskip("onnx")
    out = tmp_path / "stack.v"
    p = model_cli("--weights", FIX / "onnx_lstm2.onnx", "--out", out, module="rtl")
    assert p.returncode == 0, p.stderr
    assert "2 layers" in p.stdout and " weights_l1__payload;" in out.read_text()


def test_stored_initial_state_is_used_by_model_and_refused_by_rtl(tmp_path):
    onnx = pytest.importorskip("onnx")
    sd = _single_layer_sd()
    sd["h0"], sd["c0"] = np.full((2, 1, 5), 0.25)
    model = onnx_lstm_model(sd, 1, state="const")
    onnx.save(model, tmp_path / "s.onnx")
    r = _run(tmp_path, tmp_path / "s.onnx")
    ref = onnx_reference(model, np.load(INPUTS))
    assert np.abs(r["h_float"] - ref["h_seq"]).max() < FLOAT_TOL
    zero = _run(tmp_path, tmp_path / "s.onnx", "--state", _zero_state(tmp_path))
    assert np.abs(zero["h_float"] - ref["h_seq"]).max() > 1e-3    # the stored state mattered
    out = tmp_path / "cell.v"
    p = model_cli("--weights", tmp_path / "s.onnx", "--out", out, module="rtl")
    assert_one_line_exit_2(p, "initial state stored in this model file")
    assert not out.exists()


def _zero_state(tmp_path):
    path = tmp_path / "zero.npz"
    np.savez(path, h0=np.zeros(5), c0=np.zeros(5))
    return path


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
