"""``python -m model explain`` (model/explain.py): every printed number is the golden model's,
the printed cell is the cast of the printed products' sum, and bad choices are one-line errors."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from model.config import TensorSpec, load_config
from model.explain import explain_step
from model.fixed import Format, cast
from model.golden import run_golden
from model.shipped import DEFAULT_HELDOUT, DEFAULT_WEIGHTS
from model.weights import LSTMWeights, load_dataset, load_weights

REPO = Path(__file__).resolve().parent.parent
CONFIG = load_config()
GATES = {"i": 0, "f": 1, "g": 2, "o": 3}


def explain(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "model", "explain", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def rows(unit: dict) -> dict:
    return {q["name"]: q for q in unit["quantities"]}


@pytest.fixture(scope="module")
def shipped_run():
    x, _ = load_dataset(DEFAULT_HELDOUT)
    return run_golden(CONFIG, load_weights(DEFAULT_WEIGHTS), x)


def check_against_trace(result, run, b, t):
    """Every quantity equals the trace (raw codes exactly, values as decoded)."""
    fixed, ref = run.fixed, run.reference
    H = fixed["h"].shape[2]
    for unit in result["units"]:
        u, q = unit["unit"], rows(unit)
        for g, k in GATES.items():
            assert q[f"z_{g}"]["raw"] == fixed["z"][b, t, k * H + u]
            assert q[f"z_{g}"]["float"] == ref["z"][b, t, k * H + u]
        for name in ("i", "f", "g", "o", "c", "tanh_c", "h"):
            assert q[name]["raw"] == fixed[name][b, t, u], name
            assert q[name]["float"] == ref[name][b, t, u], name
            assert q[name]["fixed"] == q[name]["raw"] * 2.0 ** -q[name]["frac"]
            lsb = 2.0 ** -q[name]["lsb_frac"]
            assert q[name]["err_lsb"] == pytest.approx((q[name]["fixed"] - q[name]["float"]) / lsb)
        c_prev = 0 if t == 0 else fixed["c"][b, t - 1, u]
        assert q["c_prev"]["raw"] == c_prev
        # the exact products, and c is their sum cast into the c format with the c modes
        assert q["f*c"]["raw"] == q["f"]["raw"] * q["c_prev"]["raw"]
        assert q["i*g"]["raw"] == q["i"]["raw"] * q["g"]["raw"]
        frac = max(q["f*c"]["frac"], q["i*g"]["frac"])
        total = (q["f*c"]["raw"] << (frac - q["f*c"]["frac"])) + \
            (q["i*g"]["raw"] << (frac - q["i*g"]["frac"]))
        spec = run.config.spec("c")
        c_raw, _ = cast(np.array([total]), frac, spec.fmt, spec.round, spec.overflow)
        assert q["c"]["raw"] == int(c_raw[0])


@pytest.mark.parametrize("b, t", [(0, 0), (2, 5), (5, 7)])
def test_quantities_are_the_golden_traces(shipped_run, b, t):
    result = explain_step(shipped_run, b, t, [0, 7, 31])
    assert [u["unit"] for u in result["units"]] == [0, 7, 31]
    check_against_trace(result, shipped_run, b, t)
    q = rows(result["units"][0])
    assert q["f"]["produced_by"].startswith("f = sigmoid(z_f) -> gate Q1.14 RND/SAT")
    assert "exact product" in q["f*c"]["produced_by"] and "format" not in q["f*c"]


def test_a_custom_config_names_its_own_formats_and_modes():
    """TRN/WRAP into c and a narrow h: the explanation follows the config, and c still equals
    the cast of f*c + i*g under those modes."""
    rng = np.random.default_rng(5)
    X, H = 3, 4
    k = 1 / np.sqrt(H)
    w = LSTMWeights(rng.uniform(-k, k, (4 * H, X)), rng.uniform(-k, k, (4 * H, H)),
                    rng.uniform(-k, k, 4 * H))
    config = CONFIG.replace(c=TensorSpec(Format(10, 7), "TRN", "WRAP"))
    run = run_golden(config, w, rng.uniform(-2, 2, (2, 4, X)))
    result = explain_step(run, 1, 3, None)
    assert [u["unit"] for u in result["units"]] == [0, 1, 2]
    check_against_trace(result, run, 1, 3)
    assert "-> c Q2.7 TRN/WRAP" in rows(result["units"][0])["c"]["produced_by"]


def test_default_units_are_clipped_to_the_hidden_size():
    rng = np.random.default_rng(6)
    w = LSTMWeights(rng.uniform(-1, 1, (8, 2)), rng.uniform(-1, 1, (8, 2)), rng.uniform(-1, 1, 8))
    run = run_golden(CONFIG, w, rng.uniform(-1, 1, (1, 2, 2)))
    assert [u["unit"] for u in explain_step(run)["units"]] == [0, 1]


def test_cli_text_and_json_agree_with_the_trace(shipped_run):
    p = explain("--sequence", 2, "--step", 5, "--units", "0,7,31", "--json")
    assert p.returncode == 0 and p.stderr == "", p.stderr
    result = json.loads(p.stdout)
    assert (result["sequence"], result["step"], result["sequences"]) == (2, 5, 540)
    check_against_trace(result, shipped_run, 2, 5)
    p = explain("--sequence", 2, "--step", 5, "--units", "7")
    assert p.returncode == 0 and p.stderr == "", p.stderr
    h = rows(result["units"][1])["h"]
    line = next(s for s in p.stdout.splitlines() if s.lstrip().startswith("h "))
    assert f" {h['raw']} " in line and "-> h Q0.15 RND/SAT" in line
    for word in ("keep (forget) gate", "write (input) gate", "read (output) gate",
                 "kept old cell", "new content"):
        assert word in p.stdout


def test_cli_on_a_users_headless_weights_and_npy_inputs(tmp_path):
    """A user's model (no classifier head) and a (T, X) .npy input: one sequence, explained."""
    rng = np.random.default_rng(8)
    X, H, T = 3, 5, 4
    k = 1 / np.sqrt(H)
    w = LSTMWeights(rng.uniform(-k, k, (4 * H, X)), rng.uniform(-k, k, (4 * H, H)),
                    rng.uniform(-k, k, 4 * H))
    np.savez(tmp_path / "w.npz", weight_ih=w.weight_ih, weight_hh=w.weight_hh, bias=w.bias)
    x = rng.uniform(-1, 1, (T, X))
    np.save(tmp_path / "x.npy", x)
    p = explain("--weights", tmp_path / "w.npz", "--inputs", tmp_path / "x.npy", "--step", 3,
                "--units", "4,0", "--json")
    assert p.returncode == 0 and p.stderr == "", p.stderr
    result = json.loads(p.stdout)
    assert (result["sequences"], result["steps"], result["hidden"]) == (1, T, H)
    check_against_trace(result, run_golden(CONFIG, w, x[None]), 0, 3)
    p = explain("--weights", tmp_path / "w.npz", "--inputs", tmp_path / "x.npy", "--sequence", 1)
    assert p.returncode == 2 and "sequence 1 is out of range: there is 1 sequence (0 to 0)" in p.stderr


@pytest.mark.parametrize("args, message", [
    (("--sequence", 540), "sequence 540 is out of range: there are 540 sequences (0 to 539)"),
    (("--sequence", -1), "sequence -1 is out of range"),
    (("--step", 8), "step 8 is out of range: there are 8 steps (0 to 7)"),
    (("--units", "0,32"), "unit 32 is out of range: there are 32 hidden units (0 to 31)"),
    (("--units", "a"), "--units must be unit numbers separated by commas"),
    (("--units", ","), "--units names no unit"),
])
def test_bad_choices_are_one_line_errors(args, message):
    p = explain(*args)
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.startswith("error: ") and p.stderr.count("\n") == 1, p.stderr
    assert message in p.stderr
