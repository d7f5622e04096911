"""Stacked layers and initial state in the golden model, the config's per-layer formats, and
the command line on stacked models (``run`` outputs, ``report`` per layer, ``--state``)."""
from __future__ import annotations

import json
import re
import tomllib

import numpy as np
import pytest

from helpers_model import default_raw, int_cast
from helpers_stack import random_stack, stack_tuples, tf_cells, tf_layers, torch_layers
from model.config import ConfigError, load_config, parse_config
from model.golden import layer_states, run_golden
from model.report import format_report, quantization_report
from model.weights import InputError, LSTMStack
from test_cli import cli, ok

DEFAULT = load_config()


def _config(layers: dict, base=None) -> "Config":        # noqa: F821
    raw = default_raw() if base is None else base
    raw["layers"] = layers
    return parse_config(raw)


# ---- golden model ----------------------------------------------------------------------------

@pytest.mark.parametrize("sizes", [(3, 5, 7), (4, 9, 3, 6), (1, 1, 2)])
def test_stacked_float_reference_is_pytorchs_lstm(sizes):
    rng = np.random.default_rng(sum(sizes))
    L, B, T = len(sizes) - 1, 3, 11
    H = sizes[-1]
    stack = random_stack(rng, sizes, n_classes=4)
    x = rng.normal(0, 1, (B, T, sizes[0]))
    want = torch_layers(x, stack_tuples(stack))
    run = run_golden(DEFAULT, stack, x)
    assert len(run.layers) == L
    for layer, (h, c) in zip(run.layers, want):
        assert np.max(np.abs(layer.reference["h"] - h)) <= 1e-12
        assert np.max(np.abs(layer.reference["c"] - c)) <= 1e-12
    assert run.reference["h"] is run.layers[-1].reference["h"]    # today's keys: last layer
    logits = want[-1][0][:, -1] @ stack.head_weight.T + stack.head_bias
    assert np.max(np.abs(run.logits_float - logits)) <= 1e-12
    assert run.fixed["h"].shape == (B, T, H)


@pytest.mark.parametrize("seed", range(4))
def test_stacked_fixed_tracks_float_within_2_pow_minus_9(seed):
    rng = np.random.default_rng(100 + seed)
    L = 2 + seed % 2
    sizes = [int(rng.integers(1, 10)) | 1 for _ in range(L + 1)]     # odd sizes
    stack = random_stack(rng, sizes)
    run = run_golden(DEFAULT, stack, rng.uniform(-1, 1, (3, 40, sizes[0])))
    for layer in run.layers:
        err = np.abs(layer.decoded()["h"] - layer.reference["h"])
        assert 0 < err.max() <= 2 ** -9, (layer.index, err.max())
        assert sum(layer.overflow.values()) == 0


def test_one_layer_stack_is_the_single_layer_run():
    rng = np.random.default_rng(5)
    stack = random_stack(rng, [4, 6], n_classes=3)
    x = rng.normal(0, 1, (2, 5, 4))
    a = run_golden(DEFAULT, stack, x)
    b = run_golden(DEFAULT, stack.single("test"), x)
    for name in ("h", "c", "z"):
        np.testing.assert_array_equal(a.fixed[name], b.fixed[name])
    np.testing.assert_array_equal(a.logits_raw, b.logits_raw)


def test_first_flags_restart_every_layer():
    """A sequence that restarts at step 4 gives what two separate runs give, in every layer."""
    rng = np.random.default_rng(12)
    stack = random_stack(rng, [3, 5, 4])
    x = rng.normal(0, 1, (2, 9, 3))
    first = np.zeros((2, 9), bool)
    first[:, 4] = True
    joined = run_golden(DEFAULT, stack, x, first=first)
    for part in (slice(0, 4), slice(4, 9)):
        alone = run_golden(DEFAULT, stack, x[:, part])
        for a, b in zip(joined.layers, alone.layers):
            np.testing.assert_array_equal(a.fixed["h"][:, part], b.fixed["h"])
            np.testing.assert_array_equal(a.reference["c"][:, part], b.reference["c"])


def test_layer_input_is_the_h_below_cast_into_the_x_format():
    """Layer 1's x has fewer fraction bits and TRN: its codes are the cast of layer 0's h
    codes, checked against the test oracle's integer cast, with saturation counted."""
    cfg = _config({"1": {"formats": {"x": {"bits": 6, "frac": 6, "round": "TRN"}}}})
    assert cfg.for_layer(1).spec("x").round == "TRN" and cfg.for_layer(0).tensors == DEFAULT.tensors
    rng = np.random.default_rng(6)
    stack = random_stack(rng, [3, 5, 4], scale=1.5)
    run = run_golden(cfg, stack, rng.normal(0, 2, (2, 9, 3)))
    h0 = run.layers[0].fixed["h"]
    want = [int_cast(int(v), 15, 6, 6, "TRN", "SAT") for v in h0.ravel()]
    np.testing.assert_array_equal(run.layers[1].x_raw.ravel(), [q for q, _ in want])
    assert run.layers[1].x_overflow == sum(o for _, o in want)
    assert 0 < run.layers[1].x_overflow < h0.size          # |h| near 1/2 saturates
    np.testing.assert_array_equal(run.layers[1].x, run.layers[0].decoded()["h"])


def test_layer_input_cast_is_the_identity_when_formats_agree():
    h = dict(DEFAULT.as_dict()["formats"]["h"])
    cfg = _config({"1": {"formats": {"x": h}}})
    rng = np.random.default_rng(7)
    run = run_golden(cfg, random_stack(rng, [3, 5, 4]), rng.normal(0, 1, (2, 6, 3)))
    np.testing.assert_array_equal(run.layers[1].x_raw, run.layers[0].fixed["h"])
    assert run.layers[1].x_overflow == 0


# ---- per-layer config ------------------------------------------------------------------------

OVERRIDE = """
[layers.2.formats]
h = { frac = 14 }
c = { bits = 18, frac = 13, round = "TRN" }

[layers.1.formats]
weight = { bits = 12, frac = 9, overflow = "WRAP" }
"""


def test_per_layer_formats_round_trip():
    raw = default_raw()
    raw.update(tomllib.loads(OVERRIDE))
    cfg = parse_config(raw)
    base = cfg.for_layer(0)
    assert base.tensors == DEFAULT.tensors and cfg.for_layer(3) is cfg
    l1, l2 = cfg.for_layer(1), cfg.for_layer(2)
    assert (l1.fmt("weight").bits, l1.fmt("weight").frac, l1.spec("weight").overflow,
            l1.spec("weight").round) == (12, 9, "WRAP", "RND")
    assert (l2.fmt("h").bits, l2.fmt("h").frac) == (16, 14)          # bits kept from [formats]
    assert (l2.fmt("c").bits, l2.spec("c").round) == (18, "TRN")
    assert l2.tables["tanh_c"].input.fmt == l2.fmt("c")             # tables follow the formats
    assert {n for n in l1.tensors if l1.spec(n) != base.spec(n)} == {"weight"}
    again = parse_config(cfg.as_dict())
    assert again == cfg and again.for_layer(2) == l2 and again != DEFAULT
    assert cfg.replace(lanes=3).for_layer(1).fmt("weight") == l1.fmt("weight")


@pytest.mark.parametrize("layers, message", [
    ({"0": {"formats": {"x": {"frac": 10}}}}, "layer numbers start at 1"),
    ({"one": {"formats": {}}}, "layer numbers start at 1"),
    ({"1": {"formats": {"q": {"frac": 10}}}}, "unknown key 'q'"),
    ({"1": {"format": {}}}, "unknown key 'format'"),
    ({"1": {"formats": {"x": {"bits": 4, "frac": 20}}}}, r"\[layers.1\]"),
    ({"1": {"formats": {"gate": {"bits": 16, "frac": 15}}}}, r"\[layers.1\].*gate"),
    ({"1": {"formats": {"x": 10}}}, "must be a table"),
])
def test_bad_per_layer_formats_are_refused(layers, message):
    with pytest.raises(ConfigError, match=message):
        _config(layers)


def test_accumulator_is_checked_per_layer():
    cfg = _config({"1": {"formats": {"accumulator": {"bits": 40, "frac": 27}}}})
    rng = np.random.default_rng(8)
    x = rng.normal(0, 1, (1, 2, 3))
    run_golden(cfg, random_stack(rng, [3, 4, 4]), x)          # layer 1 needs 37 bits
    with pytest.raises(ConfigError, match=r"^layer 1: accumulator Q12.27 \(40 bits\) could "
                                          r"overflow for X=64, H=64: it needs 41 bits"):
        run_golden(cfg, random_stack(rng, [3, 64, 64]), x)    # layer 0 (48 bits) is fine
    with pytest.raises(ConfigError, match=r"sets formats for layer 2 .* has 2 layers"):
        run_golden(_config({"2": {"formats": {}}}), random_stack(rng, [3, 4, 4]), x)


# ---- initial state ---------------------------------------------------------------------------

L, B, H = 2, 3, 5


@pytest.fixture(scope="module")
def two_layers():
    rng = np.random.default_rng(9)
    stack = random_stack(rng, [4, H, H], n_classes=3)
    x = rng.normal(0, 1, (B, 7, 4))
    h0, c0 = rng.uniform(-0.9, 0.9, (L, B, H)), rng.uniform(-2, 2, (L, B, H))
    return stack, x, h0, c0


def test_state_shapes_for_l_layers(two_layers):
    stack, x, h0, c0 = two_layers
    want = torch_layers(x, stack_tuples(stack), h0, c0)
    full = run_golden(DEFAULT, stack, x, h0=h0, c0=c0)
    for layer, (h, c) in zip(full.layers, want):
        assert np.max(np.abs(layer.reference["h"] - h)) <= 1e-12
        assert np.max(np.abs(layer.decoded()["h"] - h)) <= 2 ** -9
    # (L, H): the same state for every sequence = (L, B, H) with identical rows
    per_layer = run_golden(DEFAULT, stack, x, h0=h0[:, 0], c0=c0[:, 0])
    tiled = run_golden(DEFAULT, stack, x, h0=np.repeat(h0[:, :1], B, 1),
                       c0=np.repeat(c0[:, :1], B, 1))
    np.testing.assert_array_equal(per_layer.fixed["h"], tiled.fixed["h"])
    assert not np.array_equal(per_layer.fixed["h"], full.fixed["h"])
    # the model file's own state (ONNX initial_h/initial_c) when none is given
    own = run_golden(DEFAULT, LSTMStack(stack.layers, stack.head_weight, stack.head_bias,
                                        h0=h0, c0=c0), x)
    np.testing.assert_array_equal(own.fixed["h"], full.fixed["h"])


def test_state_shapes_for_one_layer():
    rng = np.random.default_rng(10)
    stack = random_stack(rng, [4, H])
    x = rng.normal(0, 1, (B, 6, 4))
    h0, c0 = rng.uniform(-0.9, 0.9, (B, H)), rng.uniform(-2, 2, (B, H))
    runs = [run_golden(DEFAULT, stack, x, h0=a, c0=b)
            for a, b in ((h0, c0), (h0[None], c0[None]))]                # (B, H), (1, B, H)
    np.testing.assert_array_equal(runs[0].fixed["h"], runs[1].fixed["h"])
    vec = run_golden(DEFAULT, stack, x, h0=h0[0], c0=c0[0])              # (H,)
    row = run_golden(DEFAULT, stack, x, h0=h0[:1], c0=c0[:1])            # (1, H)
    np.testing.assert_array_equal(vec.fixed["h"], row.fixed["h"])
    assert np.max(np.abs(vec.reference["h"] - torch_layers(
        x, stack_tuples(stack), h0[None, :1], c0[None, :1])[0][0])) <= 1e-12


@pytest.mark.parametrize("shape, layers", [((H,), 2), ((B, H), 2), ((L, B, H + 1), 2),
                                           ((L + 1, H), 2), ((L, B + 1, H), 2), ((2, 2, B, H), 2),
                                           ((B + 1, H), 1), ((H - 1,), 1), ((), 1)])
def test_bad_state_shapes_are_refused(shape, layers):
    with pytest.raises(InputError, match=r"h0 must have shape .* not " + re.escape(str(shape))):
        layer_states(np.zeros(shape), "h0", [H] * layers, B)


def test_state_saturation_is_counted_and_reported(two_layers):
    stack, x, h0, c0 = two_layers
    h0 = h0.copy()
    h0[1, 0, :2] = 1.5                       # beyond Q0.15: two values saturate in layer 1
    run = run_golden(DEFAULT, stack, x, h0=h0, c0=c0)
    assert run.layers[0].overflow["h0"] == 0 and run.layers[1].overflow["h0"] == 2
    report = quantization_report(run)
    assert report["layers"][1]["operands"]["h0"]["overflow"] == 2
    assert report["operands"]["c0"]["count"] == B * H
    with pytest.raises(InputError, match="NaN"):
        run_golden(DEFAULT, stack, x, h0=np.full((L, H), np.nan), c0=c0)


# ---- report ----------------------------------------------------------------------------------

def test_report_per_layer(two_layers):
    stack, x, _, _ = two_layers
    labels = np.arange(B) % 3
    run = run_golden(DEFAULT, stack, x)
    report = quantization_report(run, labels)
    assert [r["layer"] for r in report["layers"]] == [0, 1]
    last = report["layers"][-1]
    for key in ("h_max_abs_err", "h_rmse", "c_max_abs_err", "sqnr_db", "tensors", "overflow"):
        assert report[key] == last[key], key
    for r, layer in zip(report["layers"], run.layers):
        err = layer.decoded()["h"] - layer.reference["h"]
        assert r["h_max_abs_err"] == np.max(np.abs(err))
        assert r["per_step"]["h"]["max_abs_err"].shape == (7,)
    assert report["shape"]["layers"] == 2 and "accuracy_fixed" in report
    text = format_report(report)
    assert "Per layer" in text and "last layer (1)" in text
    assert "Per layer" not in format_report(quantization_report(
        run_golden(DEFAULT, stack.layers[0], x)))


# ---- command line ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def files(tmp_path_factory, two_layers):
    """A 2-layer TensorFlow MultiRNNCell file (the layout the CLI reads stacks from here),
    inputs, state files good and bad."""
    d = tmp_path_factory.mktemp("stack")
    rng = np.random.default_rng(11)
    cells = tf_cells(rng, [4, H, H], scale=0.4)
    np.savez(d / "tf2.npz", **{f"{n}_{k}": a for k, c in enumerate(cells)
                               for n, a in zip(("kernel", "bias"), c)},
             out_weight=rng.normal(0, 0.5, (H, 3)), out_bias=np.zeros(3))
    _, x, h0, c0 = two_layers
    np.save(d / "x.npy", x)
    np.save(d / "y.npy", np.arange(B) % 3)
    np.savez(d / "state.npz", h0=h0, c0=c0)
    np.savez(d / "state_lh.npz", h0=h0[:, 0], c0=c0[:, 0])
    np.savez(d / "state_bad_shape.npz", h0=h0[0], c0=c0[0])
    np.savez(d / "state_no_c0.npz", h0=h0)
    np.savez(d / "state_nan.npz", h0=np.full_like(h0, np.nan), c0=c0)
    np.savez(d / "state_extra.npz", h0=h0, c0=c0, h1=h0)
    return d, cells


def test_cli_run_stacked_outputs(files):
    d, cells = files
    out = d / "run.npz"
    p = ok("run", "--weights", d / "tf2.npz", "--inputs", d / "x.npy", "--state",
           d / "state.npz", "--out", out)
    assert "2 layers" in p.stdout
    x = np.load(d / "x.npy")
    with np.load(d / "state.npz") as s:
        want = tf_layers(x, cells, 1.0, s["h0"], s["c0"])
    T = x.shape[1]
    with np.load(out) as r:
        for name in ("h", "c", "h_raw", "c_raw", "h_float", "c_float"):
            assert r[name].shape == (B, T, H), name
        for name in ("h_n", "c_n", "h_n_raw", "c_n_raw", "h_n_float", "c_n_float"):
            assert r[name].shape == (L, B, H), name
        for k in range(L):
            for name in ("h", "c"):
                for suffix in ("", "_raw", "_float"):
                    assert r[f"{name}_l{k}{suffix}"].shape == (B, T, H)
            assert np.max(np.abs(r[f"h_l{k}_float"] - want[k][0])) <= 1e-12
            np.testing.assert_array_equal(r["h_n_raw"][k], r[f"h_l{k}_raw"][:, -1])
            assert np.max(np.abs(r["c_n_float"][k] - want[k][1][:, -1])) <= 1e-12
            for suffix in ("", "_raw", "_float"):
                np.testing.assert_array_equal(r[f"h_n_l{k}{suffix}"], r[f"h_n{suffix}"][k])
                np.testing.assert_array_equal(r[f"c_n_l{k}{suffix}"], r[f"c_n{suffix}"][k])
        np.testing.assert_array_equal(r["h_l1"], r["h"])
        np.testing.assert_array_equal(r["h_n"], r["h_n_raw"] * 2.0 ** -r["h_n_frac"][:, None, None])
        assert r["logits"].shape == r["logits_float"].shape == (B, 3)


def test_cli_run_layers_of_different_h_writes_each_final_state(tmp_path):
    """H = 5 then 3: no (L, B, H) array can hold both, so each layer's final state is its own
    h_n_l<k>, c_n_l<k> (B, H_k), and the output line says so."""
    rng = np.random.default_rng(9)
    sizes = [(4, 5), (5, 3)]
    arrays = {}
    for k, (X_k, H_k) in enumerate(sizes):
        arrays[f"lstm.weight_ih_l{k}"] = rng.uniform(-0.5, 0.5, (4 * H_k, X_k))
        arrays[f"lstm.weight_hh_l{k}"] = rng.uniform(-0.5, 0.5, (4 * H_k, H_k))
    np.savez(tmp_path / "m.npz", **arrays)
    np.save(tmp_path / "x.npy", rng.uniform(-1, 1, (2, 6, 4)))
    p = ok("run", "--weights", tmp_path / "m.npz", "--inputs", tmp_path / "x.npy", "--out", tmp_path / "r.npz")
    assert "2 layers of H = 5, 3: per layer h_n_l<k>, c_n_l<k> (2, H_k)" in p.stdout
    with np.load(tmp_path / "r.npz") as r:
        assert "h_n" not in r.files and "c_n" not in r.files
        for k, (_, H_k) in enumerate(sizes):
            for name in ("h", "c"):
                for suffix in ("", "_raw", "_float"):
                    final = r[f"{name}_n_l{k}{suffix}"]
                    assert final.shape == (2, H_k)
                    np.testing.assert_array_equal(final, r[f"{name}_l{k}{suffix}"][:, -1])
        np.testing.assert_array_equal(r["h_n_l1_raw"], r["h_raw"][:, -1])


def test_cli_state_of_shape_l_h(files):
    d, _ = files
    out = d / "run_lh.npz"
    ok("run", "--weights", d / "tf2.npz", "--inputs", d / "x.npy", "--state",
       d / "state_lh.npz", "--out", out)
    with np.load(out) as r, np.load(d / "state_lh.npz") as s:
        assert r["h_n"].shape == (L, B, H)
        want = tf_layers(np.load(d / "x.npy"), files[1], 1.0,
                         np.repeat(s["h0"][:, None], B, 1), np.repeat(s["c0"][:, None], B, 1))
        assert np.max(np.abs(r["h_float"] - want[1][0])) <= 1e-12


def test_cli_report_per_layer(files, tmp_path):
    d, _ = files
    plots = tmp_path / "plots"
    p = ok("report", "--json", "--weights", d / "tf2.npz", "--inputs", d / "x.npy", "--labels",
           d / "y.npy", "--state", d / "state.npz", "--plots", plots)
    report = json.loads(p.stdout)
    assert len(report["layers"]) == 2 and report["h_max_abs_err"] == report["layers"][1]["h_max_abs_err"]
    assert report["layers"][0]["operands"]["h0"]["overflow"] == 0
    assert report["sources"]["state"].endswith("state.npz")
    assert {f.name for f in plots.iterdir()} >= {"error_per_step_l0.png", "error_per_step_l1.png",
                                                 "error_per_step.png"}
    text = ok("report", "--weights", d / "tf2.npz", "--inputs", d / "x.npy").stdout
    assert "Per layer" in text


@pytest.mark.parametrize("state, message", [
    ("state_bad_shape.npz", r"state file .*h0 must have shape .*L = 2"),
    ("state_no_c0.npz", "has no 'c0'"),
    ("state_nan.npz", "NaN"),
    ("state_extra.npz", "unknown array 'h1'"),
    ("none.npz", "not found"),
    ("x.npy", "not an .npz"),
])
def test_cli_bad_state_files(files, state, message):
    d, _ = files
    out = d / "bad.npz"
    p = cli("run", "--weights", d / "tf2.npz", "--inputs", d / "x.npy", "--state", d / state,
            "--out", out)
    assert p.returncode == 2, p.stderr
    assert p.stderr.startswith("error: ") and p.stderr.count("\n") == 1, p.stderr
    assert re.search(message, p.stderr), p.stderr
    assert not out.exists()


def test_rtl_exports_a_stacked_tensorflow_model(files):
    """A stacked model in TensorFlow's layout goes to the hardware as one cell per layer (the
    stacked hardware's own tests: test_rtl_stack.py, test_sim_stack.py, test_stack_cli.py)."""
    import subprocess
    import sys
    from test_cli import REPO
    d, _ = files
    p = subprocess.run([sys.executable, "-m", "rtl", "--weights", str(d / "tf2.npz"),
                        "--out", str(d / "x.v")], cwd=REPO, capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    assert "2 layers" in p.stdout and (d / "x.v").exists()
