"""model.importers.tensorflow: TensorFlow 1 BasicLSTMCell weights against TensorFlow's own
equations (written out in helpers_stack.tf_layers), gate order, forget_bias, layouts, errors."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from helpers_stack import tf_cells, tf_layers
from model.cell import float_head, float_run
from model.config import load_config
from model.golden import run_golden
from model.importers import tensorflow
from model.weights import InputError
from test_cli import cli, ok

X, H, C, B, T = 5, 7, 3, 4, 9


def _arrays(rng, sizes=(X, H), forget_bias=None, scale=0.5):
    cells = tf_cells(rng, list(sizes), scale)
    if len(cells) == 1:
        arrays = {"kernel": cells[0][0], "bias": cells[0][1]}
    else:
        arrays = {f"{name}_{k}": a for k, cell in enumerate(cells)
                  for name, a in zip(("kernel", "bias"), cell)}
    if forget_bias is not None:
        arrays["forget_bias"] = np.float64(forget_bias)
    return cells, arrays


@pytest.mark.parametrize("forget_bias", [None, 0.0, 1.0, 2.5])
def test_float_path_is_tensorflows_cell(forget_bias):
    rng = np.random.default_rng(1)
    cells, arrays = _arrays(rng, forget_bias=forget_bias)
    x = rng.normal(0, 1, (B, T, X))
    h0, c0 = rng.uniform(-0.5, 0.5, (2, 1, B, H))
    want_h, want_c = tf_layers(x, cells, 1.0 if forget_bias is None else forget_bias, h0, c0)[0]
    layer = tensorflow.from_arrays(arrays).single("test")
    got = float_run(layer, x, h0[0], c0[0])
    assert np.max(np.abs(got["h"] - want_h)) <= 1e-12
    assert np.max(np.abs(got["c"] - want_c)) <= 1e-12


def test_forget_bias_is_folded_exactly_into_the_f_block():
    rng = np.random.default_rng(2)
    _, arrays = _arrays(rng, forget_bias=0.75)
    b = tensorflow.from_arrays(arrays).layers[0].bias
    tf_b = arrays["bias"]
    np.testing.assert_array_equal(b[:H], tf_b[:H])                  # i
    np.testing.assert_array_equal(b[H:2 * H], tf_b[2 * H:3 * H] + 0.75)   # f (+ forget_bias)
    np.testing.assert_array_equal(b[2 * H:3 * H], tf_b[H:2 * H])     # g = TF's j
    np.testing.assert_array_equal(b[3 * H:], tf_b[3 * H:])           # o
    # absent means TensorFlow's default, 1.0
    del arrays["forget_bias"]
    b1 = tensorflow.from_arrays(arrays).layers[0].bias
    np.testing.assert_array_equal(b1[H:2 * H], tf_b[2 * H:3 * H] + 1.0)


def test_a_swapped_gate_order_gives_a_visibly_wrong_h(monkeypatch):
    """Distinct gates: i half open, a strongly negative candidate j, a keeping forget gate, an
    open output. Every other reading of TF's i, j, f, o blocks (e.g. PyTorch's i, f, g, o)
    must move h by more than 0.2."""
    rng = np.random.default_rng(3)
    kernel = rng.uniform(-0.1, 0.1, (X + H, 4 * H))
    bias = np.repeat([0.0, -3.0, 1.5, 3.0], H)            # i, j, f, o
    arrays = {"kernel": kernel, "bias": bias}
    x = rng.normal(0, 1, (2, 12, X))
    want = tf_layers(x, [(kernel, bias)], 1.0)[0][0]
    right = float_run(tensorflow.from_arrays(arrays).layers[0], x)["h"]
    assert np.max(np.abs(right - want)) <= 1e-12
    for order in itertools.permutations(range(4)):
        if order == tensorflow.TF_GATES:
            continue
        with monkeypatch.context() as m:
            m.setattr(tensorflow, "TF_GATES", order)
            wrong = float_run(tensorflow.from_arrays(arrays).layers[0], x)["h"]
        assert np.max(np.abs(wrong - want)) > 0.2, order


def test_fixed_point_tracks_float_within_2_pow_minus_9():
    rng = np.random.default_rng(4)
    _, arrays = _arrays(rng, (X, 6, H), scale=1 / np.sqrt(H))
    stack = tensorflow.from_arrays(arrays)
    run = run_golden(load_config(), stack, rng.uniform(-1, 1, (B, T, X)))
    for layer in run.layers:
        assert np.max(np.abs(layer.decoded()["h"] - layer.reference["h"])) <= 2 ** -9


@pytest.mark.parametrize("style", ["numbered", "tf_names"])
def test_multi_rnn_cell_layers(style):
    rng = np.random.default_rng(5)
    cells = tf_cells(rng, [X, 6, H])
    if style == "numbered":
        arrays = {f"{n}_{k}": a for k, c in enumerate(cells) for n, a in zip(("kernel", "bias"), c)}
    else:
        arrays = {f"rnn/multi_rnn_cell/cell_{k}/basic_lstm_cell/{n}": a
                  for k, c in enumerate(cells) for n, a in zip(("kernel", "bias"), c)}
    stack = tensorflow.from_arrays(arrays)
    assert stack.n_layers == 2 and stack.layers[0].n_hidden == 6 and stack.n_hidden == H
    x = rng.normal(0, 1, (B, T, X))
    want = tf_layers(x, cells, 1.0)
    run = run_golden(load_config(), stack, x)
    for layer, (h, c) in zip(run.layers, want):
        assert np.max(np.abs(layer.reference["h"] - h)) <= 1e-12
        assert np.max(np.abs(layer.reference["c"] - c)) <= 1e-12


def test_single_cell_under_tensorflows_variable_name():
    rng = np.random.default_rng(6)
    (kernel, bias), = tf_cells(rng, [X, H])
    arrays = {"rnn/basic_lstm_cell/kernel": kernel, "rnn/basic_lstm_cell/bias": bias}
    assert tensorflow.sniff("w.npz", b"", set(arrays))
    x = rng.normal(0, 1, (1, T, X))
    got = float_run(tensorflow.from_arrays(arrays).layers[0], x)["h"]
    assert np.max(np.abs(got - tf_layers(x, [(kernel, bias)])[0][0])) <= 1e-12


def test_both_head_layouts():
    rng = np.random.default_rng(7)
    _, arrays = _arrays(rng)
    w = rng.normal(0, 1, (H, C))          # TensorFlow: logits = h @ W + b
    b = rng.normal(0, 1, C)
    h = rng.uniform(-1, 1, (B, H))
    want = h @ w + b
    out = tensorflow.from_arrays({**arrays, "out_weight": w, "out_bias": b})
    ours = tensorflow.from_arrays({**arrays, "head_weight": w.T, "head_bias": b})
    for stack in (out, ours):
        np.testing.assert_allclose(float_head(stack.single("test"), h), want, rtol=0, atol=1e-12)
    with pytest.raises(InputError, match="one classifier head"):
        tensorflow.from_arrays({**arrays, "out_weight": w, "out_bias": b, "head_weight": w.T,
                                "head_bias": b})
    with pytest.raises(InputError, match=r"out_weight must have shape \(H, C\)"):
        tensorflow.from_arrays({**arrays, "out_weight": w.T, "out_bias": b})


def test_to_arrays_round_trip():
    rng = np.random.default_rng(8)
    _, arrays = _arrays(rng, forget_bias=1.0)
    arrays.update(out_weight=rng.normal(0, 1, (H, C)), out_bias=rng.normal(0, 1, C))
    layer = tensorflow.from_arrays(arrays).single("test")
    back = tensorflow.to_arrays(layer, forget_bias=1.0)
    for k in ("kernel", "out_weight", "out_bias"):
        np.testing.assert_array_equal(back[k], arrays[k])
    np.testing.assert_allclose(back["bias"], arrays["bias"], rtol=0, atol=1e-15)


def test_sniff():
    assert tensorflow.sniff("w.npz", b"", {"kernel", "bias", "forget_bias", "out_weight"})
    assert tensorflow.sniff("w.npz", b"", {"kernel_0", "bias_0", "kernel_1", "bias_1"})
    assert not tensorflow.sniff("w.npz", b"", {"weight_ih", "weight_hh", "bias"})
    assert not tensorflow.sniff("w.npz", b"", {"kernel"})
    assert not tensorflow.sniff("w.onnx", b"\x08\x07", None)


BAD = {
    "kernel rows": (lambda a: {**a, "kernel": a["kernel"][:H]}, r"kernel must have shape \(X\+H, 4H\)"),
    "kernel columns": (lambda a: {**a, "kernel": a["kernel"][:, :-1]}, "kernel must have shape"),
    "bias not 4H": (lambda a: {**a, "bias": a["bias"][:-1]}, r"bias must have shape \(4H,\)"),
    "no bias": (lambda a: {"kernel": a["kernel"]}, "no bias"),
    "NaN": (lambda a: {**a, "kernel": np.where(np.eye(X + H, 4 * H) > 0, np.nan, a["kernel"])},
            "NaN"),
    "forget_bias array": (lambda a: {**a, "forget_bias": np.ones(2)}, "forget_bias must be one"),
    "peepholes": (lambda a: {**a, "rnn/lstm_cell/w_f_diag": np.ones(H)}, "peephole"),
    "projection": (lambda a: {**a, "projection/kernel": np.ones((H, 3))}, "projection"),
    "layer gap": (lambda a: {"kernel_0": a["kernel"], "bias_0": a["bias"], "kernel_2": a["kernel"],
                             "bias_2": a["bias"]}, "layer 1 has no kernel"),
    "layer sizes": (lambda a: {"kernel_0": a["kernel"], "bias_0": a["bias"],
                               "kernel_1": a["kernel"], "bias_1": a["bias"]}, "layer 1: kernel has"),
    "head half": (lambda a: {**a, "out_weight": np.ones((H, C))}, "go together"),
}


@pytest.mark.parametrize("case", BAD)
def test_malformed_arrays_are_refused(case):
    make, message = BAD[case]
    _, arrays = _arrays(np.random.default_rng(9))
    with pytest.raises(InputError, match=message):
        tensorflow.from_arrays(make(arrays))


@pytest.fixture(scope="module")
def tf_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("tf")
    rng = np.random.default_rng(10)
    cells, arrays = _arrays(rng, forget_bias=1.0)
    np.savez(d / "tf.npz", **arrays, out_weight=rng.normal(0, 0.3, (H, C)),
             out_bias=rng.normal(0, 0.3, C))
    np.savez(d / "tf_bad.npz", kernel=arrays["kernel"][:, :-4], bias=arrays["bias"])
    np.save(d / "x.npy", rng.normal(0, 1, (B, T, X)))
    return d, cells


def test_cli_runs_a_tensorflow_file(tf_files):
    d, cells = tf_files
    out = d / "run.npz"
    ok("run", "--weights", d / "tf.npz", "--inputs", d / "x.npy", "--out", out)
    with np.load(out) as r:
        want = tf_layers(np.load(d / "x.npy"), cells, 1.0)[0][0]
        assert np.max(np.abs(r["h_float"] - want)) <= 1e-12
        assert r["logits"].shape == (B, C)


def test_cli_refuses_a_malformed_tensorflow_file(tf_files):
    d, _ = tf_files
    out = d / "bad_run.npz"
    p = cli("run", "--weights", d / "tf_bad.npz", "--inputs", d / "x.npy", "--out", out)
    assert p.returncode == 2
    assert p.stderr.startswith("error: ") and p.stderr.count("\n") == 1, p.stderr
    assert "TensorFlow BasicLSTMCell" in p.stderr and "kernel must have shape" in p.stderr
    assert not out.exists()
