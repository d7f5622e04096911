"""The shipped notebook network (data/notebook_lstm.npz): the classic "LSTM on MNIST"
notebook's shape, in TensorFlow's BasicLSTMCell layout, read through the importer."""
from __future__ import annotations

import json

import numpy as np
import pytest

from helpers_stack import tf_layers
from model.config import load_config
from model.golden import run_golden
from model.importers import tensorflow
from model.train import PARAM_NAMES, weights_digest
from test_cli import ok
from test_train import DATA

WEIGHTS, HELDOUT, META = (DATA / n for n in ("notebook_lstm.npz", "notebook_heldout.npz",
                                            "notebook_lstm.json"))
SHAPES = {"kernel": (28 + 128, 4 * 128), "bias": (4 * 128,), "forget_bias": (),
          "out_weight": (128, 10), "out_bias": (10,)}


@pytest.fixture(scope="module")
def shipped():
    with np.load(WEIGHTS, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    with np.load(HELDOUT, allow_pickle=False) as npz:
        heldout = {k: npz[k] for k in npz.files}
    return arrays, heldout, json.loads(META.read_text())


def test_files_layout_and_size(shipped):
    arrays, heldout, meta = shipped
    assert {k: a.shape for k, a in arrays.items()} == SHAPES
    assert float(arrays["forget_bias"]) == 1.0
    assert tensorflow.sniff(WEIGHTS, b"", set(arrays))
    assert heldout["x"].shape == (540, 28, 28) and heldout["x"].dtype == np.float32
    assert heldout["labels"].shape == (540,) and heldout["labels"].dtype == np.int64
    assert 0 <= heldout["x"].min() and heldout["x"].max() <= 1
    assert WEIGHTS.stat().st_size + HELDOUT.stat().st_size < 3_000_000
    # the JSON's digest is of the trained parameters: the import gives them back bit for bit
    layer = tensorflow.from_arrays(arrays).single("test")
    params = {"weight_ih": layer.weight_ih, "weight_hh": layer.weight_hh, "bias": layer.bias,
              "head_weight": layer.head_weight, "head_bias": layer.head_bias}
    assert max(np.abs(params[k]).max() for k in PARAM_NAMES) == meta["max_abs_weight"]
    assert (meta["n_inputs"], meta["n_hidden"], meta["n_steps"], meta["layout"]) == \
        (28, 128, 28, "tensorflow")
    assert weights_digest(params) == meta["weights_sha256"]


def test_heldout_set_is_the_digits_split_upsampled(shipped):
    pytest.importorskip("sklearn")
    pytest.importorskip("scipy")
    from model.train import load_notebook_split
    _, _, x_te, y_te = load_notebook_split()
    _, heldout, _ = shipped
    np.testing.assert_array_equal(heldout["x"], x_te)
    np.testing.assert_array_equal(heldout["labels"], y_te)


def test_accuracy_float_fixed_and_tensorflows_equations(shipped):
    arrays, heldout, meta = shipped
    x, y = heldout["x"], heldout["labels"]
    run = run_golden(load_config(), tensorflow.load(WEIGHTS), x)
    want_h = tf_layers(x[:50], [(arrays["kernel"], arrays["bias"])], 1.0)[0][0]
    assert np.max(np.abs(run.reference["h"][:50] - want_h)) <= 1e-12
    acc_float = float((run.logits_float.argmax(1) == y).mean())
    acc_fixed = float((np.asarray(run.logits_raw, dtype=object).argmax(1) == y).mean())
    assert acc_float >= 0.95 and abs(acc_fixed - acc_float) <= 0.005
    assert (meta["heldout_accuracy_float"], meta["heldout_accuracy_fixed"]) == \
        pytest.approx((acc_float, acc_fixed))
    assert run.overflow == meta["saturated"]
    assert np.max(np.abs(run.decoded()["h"] - run.reference["h"])) <= 2 ** -7


def test_report_command_reads_labels_from_the_inputs_file():
    p = ok("report", "--json", "--weights", WEIGHTS, "--inputs", HELDOUT)
    report = json.loads(p.stdout)
    meta = json.loads(META.read_text())
    assert report["accuracy_fixed"] == pytest.approx(meta["heldout_accuracy_fixed"])
    assert report["sources"]["labels"] == report["sources"]["inputs"]
    assert report["shape"] == {"sequences": 540, "steps": 28, "inputs": 28, "hidden": 128,
                               "classes": 10, "layers": 1}
