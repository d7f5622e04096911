"""The quantization report's statistics (against hand-computed values) and its plots."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from model.config import load_config
from model.golden import run_golden
from model.report import (accuracy, error_stats, format_activations, format_report, growth,
                          quantization_report, step_errors, to_jsonable)
from model.weights import LSTMWeights

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def random_weights(rng, X=5, H=7, C=3, scale=1.0):
    k = scale / np.sqrt(H)
    return LSTMWeights(rng.uniform(-k, k, (4 * H, X)), rng.uniform(-k, k, (4 * H, H)),
                       rng.uniform(-k, k, 4 * H), rng.uniform(-1, 1, (C, H)), rng.uniform(-1, 1, C))


@pytest.fixture(scope="module")
def small_run():
    rng = np.random.default_rng(7)
    weights = random_weights(rng)
    x = rng.uniform(-1, 1, (6, 5, 5))
    labels = np.array([0, 1, 2, 0, 1, 2])
    return run_golden(load_config(), weights, x), labels


# ---- statistics on tiny arrays --------------------------------------------------------------

def test_error_stats_by_hand():
    # err = [-0.5, 0, 0.25, 0.25]; signal power (2.25 + 4 + 1 + 0) / 4; error power 0.375 / 4
    s = error_stats([1.0, 2.0, 1.25, 0.25], [1.5, 2.0, 1.0, 0.0])
    assert s["max_abs_err"] == 0.5
    assert s["mean_abs_err"] == 0.25
    assert s["rmse"] == pytest.approx(math.sqrt(0.375 / 4))
    assert s["sqnr_db"] == pytest.approx(10 * math.log10(7.25 / 0.375))
    assert s["count"] == 4


def test_error_stats_exact_and_zero_signal():
    assert error_stats([1.0, -2.0], [1.0, -2.0])["sqnr_db"] == math.inf
    assert error_stats([0.5], [0.0])["sqnr_db"] == -math.inf
    with pytest.raises(ValueError):
        error_stats([1.0], [1.0, 2.0])


def test_step_errors_by_hand():
    ref = np.zeros((2, 3, 1))
    fixed = np.array([[[0.0], [1.0], [-3.0]],
                      [[0.0], [-1.0], [4.0]]])
    s = step_errors(fixed, ref)
    np.testing.assert_array_equal(s["max_abs_err"], [0.0, 1.0, 4.0])
    np.testing.assert_allclose(s["rmse"], [0.0, 1.0, math.sqrt(12.5)])
    assert growth(s["rmse"]) is None                 # first step exact: no ratio
    assert growth(np.array([2.0, 3.0, 5.0])) == 2.5


def test_accuracy_by_hand():
    logits = np.array([[0.1, 0.9], [0.8, 0.2], [0.5, 0.5]])
    assert accuracy(logits, [1, 0, 1]) == pytest.approx(2 / 3)   # a tie picks the first class
    wide = np.array([[2**70, 1], [-2**70, 3]], dtype=object)      # exact integer logits
    assert accuracy(wide, [0, 1]) == 1.0


def test_to_jsonable():
    value = {"a": np.arange(3), "b": np.float64(0.5), "c": math.inf, "d": [np.int64(2), None],
             "e": np.bool_(True), 3: "x"}
    out = to_jsonable(value)
    assert out == {"a": [0, 1, 2], "b": 0.5, "c": None, "d": [2, None], "e": True, "3": "x"}
    json.dumps(out, allow_nan=False)


# ---- the report of a real run -----------------------------------------------------------------

def test_report_matches_the_run(small_run):
    run, labels = small_run
    r = quantization_report(run, labels)
    decoded, ref = run.decoded(), run.reference
    h_err = decoded["h"] - ref["h"]
    assert r["h_max_abs_err"] == np.abs(h_err).max()
    assert r["h_rmse"] == pytest.approx(np.sqrt(np.mean(h_err ** 2)))
    assert r["c_max_abs_err"] == np.abs(decoded["c"] - ref["c"]).max()
    assert r["sqnr_db"] == pytest.approx(10 * np.log10(np.sum(ref["h"] ** 2) / np.sum(h_err ** 2)))
    assert set(r["tensors"]) == {"z", "i", "f", "g", "o", "c", "tanh_c", "h"}
    assert r["tensors"]["h"]["format"] == "Q0.15"
    assert r["tensors"]["h"]["max_abs_err_lsb"] == pytest.approx(r["h_max_abs_err"] * 2**15)
    for name in ("h", "c"):
        assert r["per_step"][name]["rmse"].shape == (5,)
        assert r["per_step"][name]["max_abs_err"].max() == r[f"{name}_max_abs_err"]
    pred_float = np.argmax(run.logits_float, axis=1)
    pred_fixed = np.argmax(run.logits_fixed, axis=1)
    assert r["accuracy_float"] == np.mean(pred_float == labels)
    assert r["accuracy_fixed"] == np.mean(pred_fixed == labels)
    assert r["predictions_differ"] == np.count_nonzero(pred_float != pred_fixed)
    assert r["formats"]["accumulator"] == {"q": "Q20.27", "bits": 48, "frac": 27,
                                           "round": "RND", "overflow": "SAT"}
    assert set(r["overflow"]) >= {"x", "weight_ih", "weight_hh", "bias", "h", "c", "z"}
    for name, table in run.cell.tables.items():
        a = r["activations"][name]
        assert a["segments"] == table.segments
        assert a["max_abs_err"] == table.max_abs_err()
    json.dumps(to_jsonable(r), allow_nan=False)


def test_report_without_labels_has_no_accuracy(small_run):
    run, _ = small_run
    r = quantization_report(run)
    assert "accuracy_float" not in r and "accuracy_fixed" not in r
    assert "no labels given" in format_report(r)


def test_saturated_inputs_are_counted():
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, (2, 3, 5))
    x[0, 0, :3] = [100.0, -100.0, 8.0]      # Q3.12 holds [-8, 8 - 2^-12]: three saturate
    r = quantization_report(run_golden(load_config(), random_weights(rng), x))
    assert r["overflow"]["x"] == 3
    assert r["operands"]["x"]["overflow"] == 3
    assert r["operands"]["x"]["max_abs_err"] == 100.0 - (8.0 - 2.0**-12)   # 100 -> max code


def test_text_report_is_aligned(small_run):
    run, labels = small_run
    text = format_report(quantization_report(run, labels))
    lines = text.splitlines()
    start = lines.index("Per tensor (all sequences and steps)") + 1
    table = lines[start:start + 9]
    assert [row.split()[0] for row in table[1:]] == ["z", "i", "f", "g", "o", "c", "tanh_c", "h"]
    # numbers are right-aligned: every row of the table ends at the same column
    assert len({len(row) for row in table}) == 1
    assert "accuracy    float" in text and "Activation tables" in text
    act = format_activations(quantization_report(run)["activations"]).splitlines()
    assert [row.split()[0] for row in act[2:]] == ["sigmoid", "tanh", "tanh_c"]


# ---- plots -------------------------------------------------------------------------------------

def test_plots_are_written(small_run, tmp_path):
    pytest.importorskip("matplotlib")
    from model import plots
    run, labels = small_run
    report = quantization_report(run, labels)
    figures = plots.report_figures(run, report)
    assert set(figures) == {"activations", "error_per_step", "error_histogram_h"}
    for stem, fig in figures.items():
        plots.save_figure(fig, tmp_path / f"{stem}.png")
        data = (tmp_path / f"{stem}.png").read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 10_000


def test_plots_of_zero_error(tmp_path):
    pytest.importorskip("matplotlib")
    from model import plots
    zero = {"h": {"max_abs_err": np.zeros(4), "rmse": np.zeros(4)}}
    plots.save_figure(plots.step_error_figure(zero, {"h": 2.0**-15}), tmp_path / "s.png")
    plots.save_figure(plots.histogram_figure(np.zeros(10), 2.0**-15), tmp_path / "e.png")
    assert (tmp_path / "s.png").stat().st_size > 0 and (tmp_path / "e.png").stat().st_size > 0


def test_plot_format():
    from model.plots import PlotError, plot_format
    assert plot_format("a/b.PNG") == "png"
    with pytest.raises(PlotError, match="must end in one of"):
        plot_format("a.txt")
