"""Importers against each framework's own arithmetic.

Fixtures (``tests/fixtures/import/``, made by ``make_fixtures.py``): Keras files made and run
by Keras 3 (jax backend); an ONNX graph shaped like torch.onnx.export's output, run by
``onnx.reference.ReferenceEvaluator``; PyTorch state_dicts written with numpy under PyTorch's
names, checked against PyTorch's documented equations (torch itself is not installed).

Bounds: the frameworks compute in float32, the float path here in float64, so imported float
h and logits must agree within FLOAT_TOL = 1e-5 (measured: about 5e-8). The fixed-point path
must stay within 2^-9 of the float path (the project's bound for h).
"""
from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from helpers_import import (fixed_stack, float_stack, keras2_h5, onnx_lstm_model, onnx_reference,
                            permute_gates, torch_reference, torch_state_dict)
from model.config import load_config
from model.golden import run_golden
from model.importers import detect_format, load_model_file
from model.importers.common import GATE_ORDERS, to_ifgo

FIX = Path(__file__).resolve().parent / "fixtures" / "import"
FLOAT_TOL = 1e-5
FIXED_TOL = 2.0 ** -9
X = np.load(FIX / "inputs.npy")

# fixture -> (format, framework's last-layer output file, "seq" (B, T, H) or "last" (B, H),
#             logits file, whether the logits are after a softmax)
FIXTURES = {
    "keras_sequential.keras": ("keras", "keras_sequential.hT.npy", "last", "keras_sequential.logits.npy", False),
    "keras_sequential.h5": ("keras", "keras_sequential.hT.npy", "last", "keras_sequential.logits.npy", False),
    "keras_functional.keras": ("keras", "keras_functional.hT.npy", "last", "keras_functional.logits.npy", True),
    "keras_single.keras": ("keras", "keras_single.hT.npy", "last", "keras_single.logits.npy", False),
    "keras_state.keras": ("keras", "keras_state.hT.npy", "last", "keras_state.logits.npy", False),
    "onnx_lstm2.onnx": ("onnx", "onnx_lstm2.h1.npy", "seq", "onnx_lstm2.logits.npy", False),
    "torch_lstm2.npz": ("pytorch", "torch_lstm2.h1.npy", "seq", "torch_lstm2.logits.npy", False),
    "torch_lstm2.safetensors": ("pytorch", "torch_lstm2.h1.npy", "seq", "torch_lstm2.logits.npy", False),
}
FIRST_LAYER = {"keras_sequential.keras": "keras_sequential.h0.npy",
               "keras_sequential.h5": "keras_sequential.h0.npy",
               "keras_functional.keras": "keras_functional.h0.npy"}


def _needs(fmt):
    if fmt == "onnx":
        pytest.importorskip("onnx")
    if fmt == "keras":
        pytest.importorskip("h5py")


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _compare(stack, fixture):
    """Max abs differences (h of the last layer, logits) between the import and the framework."""
    _, h_file, kind, logits_file, softmax = FIXTURES[fixture]
    seqs, logits = float_stack(stack, X)
    want = np.load(FIX / h_file)
    got = seqs[-1] if kind == "seq" else seqs[-1][:, -1]
    if softmax:
        logits = _softmax(logits)
    return np.abs(got - want).max(), np.abs(logits - np.load(FIX / logits_file)).max()


@pytest.mark.parametrize("fixture", FIXTURES)
def test_float_path_matches_the_framework(fixture):
    fmt = FIXTURES[fixture][0]
    _needs(fmt)
    assert detect_format(FIX / fixture) == fmt
    stack = load_model_file(FIX / fixture)
    assert stack.n_inputs == X.shape[2] and stack.has_head
    h_err, logits_err = _compare(stack, fixture)
    assert h_err < FLOAT_TOL and logits_err < FLOAT_TOL, (h_err, logits_err)
    if fixture in FIRST_LAYER:
        seqs, _ = float_stack(stack, X)
        assert np.abs(seqs[0] - np.load(FIX / FIRST_LAYER[fixture])).max() < FLOAT_TOL


@pytest.mark.parametrize("fixture", FIXTURES)
def test_a_wrong_gate_order_is_visible(fixture):
    """Every fixture has distinct gates: each of the 23 other block orders moves h far
    beyond the tolerance, so the importer's order is the only one that passes."""
    _needs(FIXTURES[fixture][0])
    stack = load_model_file(FIX / fixture)
    for order in itertools.permutations(range(4)):
        if order == (0, 1, 2, 3):
            continue
        h_err, _ = _compare(permute_gates(stack, order), fixture)
        assert h_err > 0.02, (order, h_err)


def test_gate_permutations_are_the_documented_ones():
    """Block names in each framework's documented order, mapped to ours (i, f, g, o)."""
    documented = {"pytorch": "ifgo", "keras": "ifgo", "onnx": "iofg", "tensorflow": "igfo"}
    for fmt, blocks in documented.items():
        a = np.array([[ord(c)] for c in blocks]).repeat(2, axis=0)      # H = 2
        assert "".join(chr(v) for v in to_ifgo(a, GATE_ORDERS[fmt])[::2, 0]) == "ifgo", fmt


@pytest.mark.parametrize("fixture", ["keras_single.keras", "keras_sequential.keras",
                                     "onnx_lstm2.onnx", "torch_lstm2.safetensors"])
def test_fixed_path_within_bound_of_float(fixture):
    _needs(FIXTURES[fixture][0])
    stack = load_model_file(FIX / fixture)
    config = load_config(None)
    err = np.abs(fixed_stack(config, stack, X) - float_stack(stack, X)[0][-1]).max()
    assert err <= FIXED_TOL, err
    if stack.n_layers == 1:
        run = run_golden(config, stack.single("test"), X)
        assert np.abs(run.decoded()["h"] - run.reference["h"]).max() <= FIXED_TOL


# ---- random models, written at test time -----------------------------------------------------

ONNX_VARIANTS = {
    "gemm, layout 0": {}, "layout 1": {"layout": 1}, "MatMul + Add": {"head": "matmul"},
    "head on Y_h": {"head": "yh"}, "Y_h, layout 1": {"head": "yh", "layout": 1},
    "no head": {"head": None}, "stored state": {"state": "const"}, "opset 14": {"opset": 14},
    "folded zero state": {"state": "zeros"}, "h_n, c_n outputs": {"final_states": True},
}


@pytest.mark.parametrize("variant", ONNX_VARIANTS)
@pytest.mark.parametrize("n_layers", [1, 3])
def test_onnx_variants_against_the_reference_evaluator(tmp_path, variant, n_layers):
    onnx = pytest.importorskip("onnx")
    rng = np.random.default_rng(n_layers * 100 + len(variant))
    sd = torch_state_dict(rng, 4, 6, n_layers, 3)
    sd["h0"], sd["c0"] = rng.uniform(-0.5, 0.5, (2, n_layers, 6))
    model = onnx_lstm_model(sd, n_layers, **ONNX_VARIANTS[variant])
    onnx.save(model, tmp_path / "m.onnx")
    x = rng.normal(size=(3, 9, 4))
    want = onnx_reference(model, x)
    stack = load_model_file(tmp_path / "m.onnx")
    assert stack.n_layers == n_layers
    assert (stack.h0 is not None) == (ONNX_VARIANTS[variant].get("state") == "const")
    seqs, logits = float_stack(stack, x)
    assert np.abs(seqs[-1] - want["h_seq"]).max() < FLOAT_TOL
    for k in range(n_layers if "h_n" in want else 0):
        assert np.abs(seqs[k][:, -1] - want["h_n"][k]).max() < FLOAT_TOL
    if "logits" in want:
        assert np.abs(logits - want["logits"]).max() < FLOAT_TOL
    else:
        assert not stack.has_head
    assert np.abs(fixed_stack(load_config(None), stack, x) - seqs[-1]).max() <= FIXED_TOL


@pytest.mark.parametrize("prefix, head", [("lstm.", "fc"), ("", "linear"), ("model.rnn.", "classifier"),
                                          ("encoder.lstm.", "model.head")])
@pytest.mark.parametrize("container", ["npz", "safetensors"])
def test_pytorch_names_and_containers(tmp_path, prefix, head, container):
    rng = np.random.default_rng(len(prefix) + len(head))
    sd = torch_state_dict(rng, 5, 3, 2, 4, prefix=prefix, head=head)
    path = tmp_path / f"m.{container}"
    if container == "npz":
        np.savez(path, **sd)
    else:
        pytest.importorskip("safetensors")
        from safetensors.numpy import save_file
        save_file(sd, str(path))
    x = rng.normal(size=(2, 6, 5))
    hs, logits = torch_reference(sd, x, 2, prefix=prefix, head=head)
    stack = load_model_file(path)
    seqs, got = float_stack(stack, x)
    assert np.abs(seqs[-1] - hs[-1]).max() < FLOAT_TOL
    assert np.abs(got - logits).max() < FLOAT_TOL


def test_pytorch_without_biases_and_lstmcell(tmp_path):
    rng = np.random.default_rng(5)
    sd = torch_state_dict(rng, 3, 4, 1, None, bias=False)
    np.savez(tmp_path / "nobias.npz", **sd)
    x = rng.normal(size=(2, 5, 3))
    stack = load_model_file(tmp_path / "nobias.npz")
    assert not stack.layers[0].bias.any() and not stack.has_head
    assert np.abs(float_stack(stack, x)[0][-1] - torch_reference(sd, x, 1)[0][-1]).max() < FLOAT_TOL
    # nn.LSTMCell: the same tensors without the _l0 suffix
    full = torch_state_dict(rng, 3, 4, 1, None)
    cell = {k.replace("lstm.", "cell.").replace("_l0", ""): v for k, v in full.items()}
    np.savez(tmp_path / "cell.npz", **cell)
    assert detect_format(tmp_path / "cell.npz") == "pytorch"
    got = float_stack(load_model_file(tmp_path / "cell.npz"), x)[0][-1]
    assert np.abs(got - torch_reference(full, x, 1)[0][-1]).max() < FLOAT_TOL


def test_safetensors_reader_agrees_with_the_package(tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    from model.importers.common import load_safetensors
    rng = np.random.default_rng(0)
    arrays = {"a": rng.normal(size=(3, 4)).astype(np.float32), "b": rng.normal(size=5),
              "c": rng.normal(size=(2, 2)).astype(np.float16), "d": np.arange(6, dtype=np.int64)}
    st.save_file(arrays, str(tmp_path / "t.safetensors"))
    ours, theirs = load_safetensors(tmp_path / "t.safetensors"), st.load_file(str(tmp_path / "t.safetensors"))
    assert set(ours) == set(theirs)
    for k in ours:
        assert ours[k].dtype == theirs[k].dtype and np.array_equal(ours[k], theirs[k])


def test_native_files_and_the_shipped_model_still_load():
    from model.shipped import DEFAULT_WEIGHTS
    from model.weights import load_weights
    assert detect_format(DEFAULT_WEIGHTS) == "native"
    stack, w = load_model_file(DEFAULT_WEIGHTS), load_weights(DEFAULT_WEIGHTS)
    single = stack.single("test")
    for name, a in w.arrays().items():
        assert np.array_equal(getattr(single, name), a)


def test_keras2_legacy_h5_layout(tmp_path):
    """The Keras 3 fixture's weights in a tf.keras 2.x legacy .h5 layout read back the same,
    and still match Keras's own outputs."""
    pytest.importorskip("h5py")
    stack = load_model_file(FIX / "keras_sequential.keras")
    path = keras2_h5(tmp_path / "k2.h5", stack)
    assert detect_format(path) == "keras"
    h_err, logits_err = _compare(load_model_file(path), "keras_sequential.keras")
    assert h_err < FLOAT_TOL and logits_err < FLOAT_TOL


def test_safetensors_bf16_is_widened_exactly(tmp_path):
    """BF16 (PyTorch's bfloat16, which numpy lacks) is the top half of a float32."""
    import json
    from model.importers.common import load_safetensors
    values = np.array([1.0, -2.5, 0.15625, 3.0e38], np.float32)
    raw = (values.view(np.uint32) >> 16).astype("<u2").tobytes()
    header = json.dumps({"w": {"dtype": "BF16", "shape": [2, 2], "data_offsets": [0, len(raw)]}}).encode()
    (tmp_path / "b.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + raw)
    got = load_safetensors(tmp_path / "b.safetensors")["w"]
    assert got.shape == (2, 2)
    assert np.array_equal(got.ravel(), (values.view(np.uint32) & 0xFFFF0000).view(np.float32))
