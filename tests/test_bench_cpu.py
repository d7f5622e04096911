"""``python -m bench cpu``: it runs on one thread, times the right network (the float32 numpy
implementation agrees with the float64 reference; a wrong gate order does not), reports its
keys, and refuses torch where torch is not importable. No timing is asserted."""
import json

import numpy as np
import pytest

from bench.cpu import LOGIT_TOLERANCE, NumpyLSTM, load_network, reference_logits, torch_available
from test_bench import bench, one_line_error


def test_numpy_network_is_the_notebook_network_and_a_wrong_one_is_not():
    weights, x = load_network()
    x = x[:16]
    reference = reference_logits(weights, x.astype(np.float64))
    net = NumpyLSTM(weights)
    assert np.abs(net(x) - reference).max() < LOGIT_TOLERANCE
    H = weights.n_hidden
    swapped = NumpyLSTM(weights)        # forget and input gates exchanged: a different network
    swapped.w_hh_t = np.concatenate([net.w_hh_t[:, H:2 * H], net.w_hh_t[:, :H],
                                     net.w_hh_t[:, 2 * H:]], axis=1)
    assert np.abs(swapped(x) - reference).max() > LOGIT_TOLERANCE


def test_cpu_command_runs_on_one_thread_and_reports(tmp_path):
    out = tmp_path / "cpu.json"
    r = bench("cpu", "--backend", "numpy", "--images", "2", "--batch", "4", "--repeat", "1",
              "--json", "--out", out)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result == json.loads(out.read_text())
    assert set(result["threads"].values()) == {"1"}
    assert result["network"] == {"n_inputs": 28, "n_hidden": 128, "n_classes": 10, "steps": 28,
                                 "weights": "data/notebook_lstm.npz",
                                 "inputs": "data/notebook_heldout.npz"}
    (numpy,) = result["backends"]
    assert numpy["backend"].startswith("numpy float32") and numpy["batch"] == 4
    assert numpy["logits_max_abs_err_vs_float64"] < LOGIT_TOLERANCE
    for key in ("batch1_us_per_image", "batch1_images_per_s", "batched_us_per_image",
                "batched_images_per_s"):
        assert numpy[key] > 0
    assert result["command"] == "python -m bench cpu --backend numpy --images 2 --batch 4 " \
                                "--repeat 1 --json --out " + str(out)


@pytest.mark.parametrize("args, message", [
    (["--images", "0"], "--images must be at least 1"),
    (["--batch", "100000"], "at most 540"),
])
def test_bad_input_is_one_line(args, message):
    one_line_error(bench("cpu", *args), message)


@pytest.mark.skipif(torch_available(), reason="torch is importable here")
def test_torch_backend_without_torch_says_so():
    one_line_error(bench("cpu", "--backend", "torch"), "--backend torch needs torch")
