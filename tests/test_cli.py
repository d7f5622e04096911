"""``python -m model`` as a user runs it (docs/cli.md): a subprocess from the repository root.

Good runs: keys, shapes and dtypes of ``run``'s output, float parity against an independent
float64 LSTM written here, ``report`` and ``activations`` in text and JSON, plots and exports.
Bad input: non-zero exit, one line ``error: ...`` on stderr, no traceback, nothing written.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
SHIPPED_WEIGHTS = REPO / "data" / "digits_lstm.npz"
SHIPPED_DATA = REPO / "data" / "digits_heldout.npz"
X, H, C, B, T = 5, 7, 3, 4, 6
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def cli(*args, cwd=REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "model", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def ok(*args) -> subprocess.CompletedProcess:
    p = cli(*args)
    assert p.returncode == 0, p.stderr
    assert p.stderr == ""
    return p


def needs_shipped():
    if not (SHIPPED_WEIGHTS.is_file() and SHIPPED_DATA.is_file()):
        pytest.skip("the shipped model data/ is not there yet")


def float_lstm(w: dict, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The textbook cell in float64, gate order i, f, g, o; returns every h and c (B, T, H)."""
    def sigmoid(v):
        return 1.0 / (1.0 + np.exp(-v))
    n_hidden = w["weight_hh"].shape[1]
    h = np.zeros((x.shape[0], n_hidden))
    c = np.zeros_like(h)
    hs, cs = [], []
    for t in range(x.shape[1]):
        z = x[:, t] @ w["weight_ih"].T + h @ w["weight_hh"].T + w["bias"]
        i, f, g, o = np.split(z, 4, axis=1)
        c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        h = sigmoid(o) * np.tanh(c)
        hs.append(h)
        cs.append(c)
    return np.stack(hs, 1), np.stack(cs, 1)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A small random model with a head, its inputs and labels, and a collection of bad files."""
    d = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(2024)
    k = 1 / np.sqrt(H)
    w = {"weight_ih": rng.uniform(-k, k, (4 * H, X)), "weight_hh": rng.uniform(-k, k, (4 * H, H)),
         "bias": rng.uniform(-k, k, 4 * H), "head_weight": rng.uniform(-1, 1, (C, H)),
         "head_bias": rng.uniform(-1, 1, C)}
    x = np.clip(rng.standard_normal((B, T, X)), -4, 4)
    np.savez(d / "w.npz", **w)
    np.save(d / "x.npy", x)
    np.save(d / "x2d.npy", x[0])
    np.save(d / "y.npy", rng.integers(0, C, B))
    np.savez(d / "headless.npz", **{n: w[n] for n in ("weight_ih", "weight_hh", "bias")})
    # bad files
    for name, key, value in (("nan_w.npz", "weight_ih", np.nan), ("inf_w.npz", "weight_hh", np.inf)):
        bad = {n: a.copy() for n, a in w.items()}
        bad[key][1, 1] = value
        np.savez(d / name, **bad)
    np.savez(d / "short_bias.npz", **{**w, "bias": w["bias"][:5]})
    np.savez(d / "no_bias.npz", **{n: a for n, a in w.items() if n != "bias"})
    x_nan = x.copy()
    x_nan[1, 2, 3] = np.nan
    np.save(d / "x_nan.npy", x_nan)
    np.save(d / "x_wide.npy", np.zeros((B, T, X + 2)))
    np.save(d / "x_1d.npy", np.zeros(X))
    np.save(d / "y_long.npy", np.zeros(B + 1, np.int64))
    np.save(d / "y_float.npy", np.zeros(B))
    (d / "text.npz").write_text("not a zip archive\n")
    (d / "text.npy").write_text("not an array\n")
    default = (REPO / "configs" / "default.toml").read_text()
    for name, old, new in (
            ("frac.toml", "x           = { bits = 16, frac = 12 }", "x           = { bits = 16, frac = 17 }"),
            ("bits.toml", "h           = { bits = 16, frac = 15 }", "h           = { bits = 1, frac = 0 }"),
            ("acc.toml", "accumulator = { bits = 48, frac = 27 }", "accumulator = { bits = 34, frac = 27 }"),
            ("mode.toml", 'round = "RND"', 'round = "NEAREST"')):
        assert old in default
        (d / name).write_text(default.replace(old, new))
    (d / "broken.toml").write_text("[formats\n")
    return d, w, x


# ---- run ---------------------------------------------------------------------------------------

def test_run_output_keys_shapes_and_float_parity(files):
    d, w, x = files
    out = d / "run.npz"
    ok("run", "--weights", d / "w.npz", "--inputs", d / "x.npy", "--out", out)
    with np.load(out) as o:
        for key in ("h", "c", "h_float", "c_float"):
            assert o[key].shape == (B, T, H) and o[key].dtype == np.float64, key
        for key in ("h_raw", "c_raw"):
            assert o[key].shape == (B, T, H) and o[key].dtype == np.int64, key
        np.testing.assert_array_equal(o["h"], o["h_raw"] * 2.0**-15)   # h is Q0.15
        np.testing.assert_array_equal(o["c"], o["c_raw"] * 2.0**-12)   # c is Q3.12
        h_ref, c_ref = float_lstm(w, x)
        np.testing.assert_allclose(o["h_float"], h_ref, rtol=0, atol=1e-12)
        np.testing.assert_allclose(o["c_float"], c_ref, rtol=0, atol=1e-12)
        assert np.abs(o["h"] - h_ref).max() < 2.0**-9
        assert o["logits"].shape == o["logits_float"].shape == (B, C)
    assert sorted(p.name for p in d.glob(".run.npz*")) == []          # no temporary left


def test_run_single_sequence(files):
    d, w, x = files
    out = d / "one.npz"
    ok("run", "--weights", d / "w.npz", "--inputs", d / "x2d.npy", "--out", out)
    with np.load(out) as o:
        assert o["h"].shape == (1, T, H)
        np.testing.assert_allclose(o["h_float"][0], float_lstm(w, x[:1])[0][0], atol=1e-12)


def test_run_default_model(tmp_path):
    needs_shipped()
    out = tmp_path / "golden.npz"
    ok("run", "--out", out)
    with np.load(SHIPPED_DATA) as data, np.load(SHIPPED_WEIGHTS) as w, np.load(out) as o:
        n, steps, _ = data["x"].shape
        assert o["h_raw"].shape == (n, steps, w["weight_hh"].shape[1])
        np.testing.assert_allclose(o["h_float"], float_lstm(w, data["x"])[0], atol=1e-12)


def test_cli_without_plots_never_imports_matplotlib(files, tmp_path):
    d, _, _ = files
    code = ("import sys, runpy; sys.argv = ['model', 'run', '--weights', sys.argv[1], "
            "'--inputs', sys.argv[2], '--out', sys.argv[3]]\n"
            "try:\n    runpy.run_module('model', run_name='__main__')\n"
            "except SystemExit as e:\n    assert not e.code, e.code\n"
            "assert 'matplotlib' not in sys.modules")
    p = subprocess.run([sys.executable, "-c", code, d / "w.npz", d / "x.npy", tmp_path / "o.npz"],
                       cwd=REPO, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr


# ---- report --------------------------------------------------------------------------------------

CONTRACT_KEYS = ("h_max_abs_err", "h_rmse", "c_max_abs_err", "sqnr_db")


def test_report_json_with_and_without_labels(files):
    d, _, _ = files
    args = ("report", "--json", "--weights", d / "w.npz", "--inputs", d / "x.npy")
    r = json.loads(ok(*args).stdout)                       # exactly one JSON object
    assert all(isinstance(r[k], float) for k in CONTRACT_KEYS)
    assert "accuracy_float" not in r and "accuracy_fixed" not in r
    assert len(r["per_step"]["h"]["rmse"]) == T
    assert r["formats"]["h"]["q"] == "Q0.15"
    assert set(r["activations"]) == {"sigmoid", "tanh", "tanh_c"}
    labelled = json.loads(ok(*args, "--labels", d / "y.npy").stdout)
    assert 0.0 <= labelled["accuracy_float"] <= 1.0 and 0.0 <= labelled["accuracy_fixed"] <= 1.0
    assert labelled["h_max_abs_err"] == r["h_max_abs_err"]


def test_report_text_and_plots(files, tmp_path):
    pytest.importorskip("matplotlib")
    d, _, _ = files
    plots = tmp_path / "new" / "plots"
    p = ok("report", "--weights", d / "w.npz", "--inputs", d / "x.npy", "--labels", d / "y.npy",
           "--plots", plots)
    for heading in ("Summary", "Per tensor", "Error per time step", "Casts from float",
                    "Activation tables"):
        assert heading in p.stdout
    names = sorted(f.name for f in plots.iterdir())
    assert names == ["activations.png", "error_histogram_h.png", "error_per_step.png"]
    for f in plots.iterdir():
        assert f.read_bytes().startswith(PNG_MAGIC) and f.stat().st_size > 10_000


def test_report_default_model():
    needs_shipped()
    r = json.loads(ok("report", "--json").stdout)
    for key in (*CONTRACT_KEYS, "accuracy_float", "accuracy_fixed"):
        assert isinstance(r[key], float), key
    # docs/numerics.md: the default formats keep the shipped model's float accuracy
    assert r["accuracy_fixed"] == r["accuracy_float"]
    text = ok("report").stdout
    assert "accuracy    float" in text and "data/digits_lstm.npz" in text


# ---- activations -------------------------------------------------------------------------------

def test_activations_text_json_plot_export(tmp_path):
    text = ok("activations").stdout
    assert all(name in text for name in ("sigmoid", "tanh", "tanh_c"))
    plot, export = tmp_path / "act.png", tmp_path / "tables.npz"
    args = ["activations", "--json", "--export", export]
    if _has_matplotlib():
        args += ["--plot", plot]
    a = json.loads(ok(*args).stdout)
    assert set(a) == {"sigmoid", "tanh", "tanh_c"}
    for name, s in a.items():
        assert 0 < s["max_abs_err"] < 1e-3 and 1 <= s["segments"] <= 64
        assert s["method"] == "pwl" and s["index_entries"] >= 1
        assert s["input_format"] in ("Q4.11", "Q3.12") and s["output_format"] == "Q1.14"
    with np.load(export) as t:
        for name in a:
            assert t[f"{name}_base"].shape == (a[name]["segments"],)
            assert t[f"{name}_index"].shape == (a[name]["index_entries"],)
            assert t[f"{name}_slope"].dtype == t[f"{name}_intercept"].dtype == np.int64
    if _has_matplotlib():
        assert plot.read_bytes().startswith(PNG_MAGIC)


def _has_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


# ---- bad input -----------------------------------------------------------------------------------

def _run(d, weights="w.npz", inputs="x.npy", *extra):
    return ["run", "--weights", d / weights, "--inputs", d / inputs, *extra]


BAD_RUNS = {
    # name: (arguments given the files' directory, words the message must contain)
    "missing weights": (lambda d: _run(d, "none.npz"), "not found"),
    "weights not a zip": (lambda d: _run(d, "text.npz"), "text.npz"),
    "weights are one array": (lambda d: _run(d, "x.npy"), "not an .npz"),
    "NaN in weights": (lambda d: _run(d, "nan_w.npz"), "NaN"),
    "inf in weights": (lambda d: _run(d, "inf_w.npz"), "infinity"),
    "wrong bias shape": (lambda d: _run(d, "short_bias.npz"), "bias"),
    "no bias": (lambda d: _run(d, "no_bias.npz"), "bias"),
    "missing inputs": (lambda d: _run(d, "w.npz", "none.npy"), "not found"),
    "inputs not an array": (lambda d: _run(d, "w.npz", "text.npy"), "text.npy"),
    "NaN in inputs": (lambda d: _run(d, "w.npz", "x_nan.npy"), "NaN"),
    "wrong input width": (lambda d: _run(d, "w.npz", "x_wide.npy"), "shape"),
    "1-D inputs": (lambda d: _run(d, "w.npz", "x_1d.npy"), "shape"),
    "frac > bits": (lambda d: ["--config", d / "frac.toml"], "frac"),
    "bits < 2": (lambda d: ["--config", d / "bits.toml"], "bits"),
    "accumulator overflow": (lambda d: ["--config", d / "acc.toml"], "overflow"),
    "unknown rounding mode": (lambda d: ["--config", d / "mode.toml"], "NEAREST"),
    "broken TOML": (lambda d: ["--config", d / "broken.toml"], "TOML"),
    "missing config": (lambda d: ["--config", d / "none.toml"], "not found"),
    "unknown option": (lambda d: ["--frobnicate"], "--frobnicate"),
}


@pytest.mark.parametrize("case", BAD_RUNS)
def test_bad_run_input(files, case):
    d, _, _ = files
    make_args, words = BAD_RUNS[case]
    args = make_args(d)
    if args[0] != "run":                       # options on top of a good run
        args = _run(d) + args
    out = d / f"bad-{case.replace(' ', '_')}.npz"
    p = cli(*args, "--out", out)
    assert_one_line_error(p, words)
    assert not out.exists()
    assert not any(d.glob(f".{out.name}*"))


def assert_one_line_error(p: subprocess.CompletedProcess, words: str = "") -> None:
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert "Traceback" not in p.stderr
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr
    assert words in lines[0]
    assert p.stdout == ""


@pytest.mark.parametrize("args, words", [
    ([], "subcommand"),
    (["frobnicate"], "frobnicate"),
    (["run"], "--out"),
    (["activations", "--bogus"], "--bogus"),
])
def test_usage_errors(args, words):
    assert_one_line_error(cli(*args), words)


def test_run_into_missing_directory_or_onto_a_directory(files):
    d, _, _ = files
    assert_one_line_error(cli(*_run(d), "--out", d / "nowhere" / "o.npz"), "does not exist")
    assert not (d / "nowhere").exists()
    assert_one_line_error(cli(*_run(d), "--out", d), "directory")


@pytest.mark.parametrize("labels, weights, words", [
    ("y_long.npy", "w.npz", "labels"),
    ("y_float.npy", "w.npz", "integers"),
    ("y.npy", "headless.npz", "classifier head"),
    ("text.npz", "w.npz", "text.npz"),
])
def test_bad_labels(files, labels, weights, words):
    d, _, _ = files
    plots = d / f"plots-{labels}-{weights}"
    p = cli("report", "--json", "--weights", d / weights, "--inputs", d / "x.npy",
            "--labels", d / labels, "--plots", plots)
    assert_one_line_error(p, words)
    assert not plots.exists()                  # --plots DIR is not created on failure


def test_bad_activations(files, tmp_path):
    d, _, _ = files
    assert_one_line_error(cli("activations", "--config", d / "frac.toml", "--plot",
                              tmp_path / "a.png", "--export", tmp_path / "t.npz"), "frac")
    assert_one_line_error(cli("activations", "--plot", tmp_path / "a.txt"), ".png")
    assert list(tmp_path.iterdir()) == []
