"""Stacked models through the hardware commands: ``python -m rtl`` exports one module with a
cell per layer (lanes per layer), ``python -m sim`` runs it in batch mode with every output of
the last layer compared with the golden model's stacked run (batch mode, or cocotb with gaps
and stalls)."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent


def _python_m(*args):
    return subprocess.run([sys.executable, "-m", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True)


@pytest.fixture(scope="module")
def stacked(tmp_path_factory):
    """A two-layer PyTorch-style state_dict (X=5, H=7, 4 classes) and a labelled data set."""
    d = tmp_path_factory.mktemp("stacked")
    rng = np.random.default_rng(3)
    X, H, C = 5, 7, 4
    k = 1 / np.sqrt(H)
    sd = {}
    for layer in range(2):
        sd[f"lstm.weight_ih_l{layer}"] = rng.uniform(-k, k, (4 * H, X if layer == 0 else H))
        sd[f"lstm.weight_hh_l{layer}"] = rng.uniform(-k, k, (4 * H, H))
        sd[f"lstm.bias_ih_l{layer}"] = rng.uniform(-k, k, 4 * H)
        sd[f"lstm.bias_hh_l{layer}"] = rng.uniform(-k, k, 4 * H)
    sd["fc.weight"], sd["fc.bias"] = rng.uniform(-k, k, (C, H)), rng.uniform(-k, k, C)
    np.savez(d / "torch2.npz", **sd)
    np.savez(d / "data.npz", x=rng.normal(0, 1.5, (6, 5, X)), labels=rng.integers(0, C, 6))
    return d


def test_rtl_exports_a_stack(stacked, tmp_path):
    out = tmp_path / "stack.v"
    p = _python_m("rtl", "--weights", stacked / "torch2.npz", "--lanes", "4,3", "--out", out)
    assert p.returncode == 0, p.stderr
    assert "2 layers" in p.stdout and "layer 1: X=7 H=7 P=3" in p.stdout
    text = out.read_text()
    for port in ("x__payload", "h__payload", "weights_l0__payload", "weights_l1__payload",
                 "state_l0__payload", "state_l1__payload", "error"):
        assert f" {port};" in text, port
    r = subprocess.run(["iverilog", "-g2005", "-o", str(tmp_path / "a.out"), str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("args, message", [
    (["--lanes", "4,3,2"], "lanes must give one P per layer (2), not 3"),
    (["--lanes", "4,x"], "lanes must be P or P0,P1,... (one per layer), not '4,x'"),
    (["--lanes", "4,29"], "layer 1: lanes must be at most 2(X+H) = 28"),
    (["--logic-lanes", "2"], "logic lanes are for a one-layer model; this one has 2 layers"),
])
def test_rtl_bad_lanes_for_a_stack(stacked, tmp_path, args, message):
    out = tmp_path / "stack.v"
    p = _python_m("rtl", "--weights", stacked / "torch2.npz", *args, "--out", out)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and message in p.stderr, p.stderr
    assert not out.exists()


def test_sim_runs_a_stack_in_batch_mode(stacked):
    """Icarus (a quick build): every h and c of the last layer, 0 mismatches, and the RTL's
    accuracy from the h it produced."""
    p = _python_m("sim", "--weights", stacked / "torch2.npz", "--inputs", stacked / "data.npz",
                  "--lanes", "3,2", "--sim", "icarus", "--fast", "--json")
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    assert r["mode"] == "batch" and r["mismatches"] == 0 and r["missing"] == 0
    assert r["compared"] == r["compared_c"] == 6 * 5 * 7
    assert r["accuracy_rtl"] == r["accuracy_golden"]


def test_sim_stack_catches_a_wrong_expectation(stacked):
    """The stacked batch path compares for real: one expected word changed, one mismatch."""
    from model.cli import load_model
    from model.config import load_config
    from model.golden import run_golden
    from model.vectors import vectors_of_run
    from rtl.stack import build_design
    from sim.batch import run_vectors

    class Args:
        config, weights, weights_format = None, str(stacked / "torch2.npz"), None
    config, stack = load_model(Args)
    x = np.load(stacked / "data.npz")["x"][:2]
    golden = run_golden(load_config(), stack, x)

    def corrupt(run_dir):
        path = run_dir / "expected.hex"
        lines = path.read_text().splitlines()
        lines[3] = f"{int(lines[3], 16) ^ 1:0{len(lines[3])}x}"
        path.write_text("\n".join(lines) + "\n")

    result = run_vectors(vectors_of_run(golden), "icarus", corrupt=corrupt,
                         design=build_design(config, stack, lanes=(3, 2), head=False))
    assert not result.passed and result.tb["mismatches"] == 1


def test_sim_runs_a_stack_under_cocotb_with_gaps_and_stalls(stacked):
    """Gaps and stalls ask for the cocotb testbench: the scoreboard steps each layer on its own
    handshake; every output compared, and the RTL's accuracy."""
    p = _python_m("sim", "--weights", stacked / "torch2.npz", "--inputs", stacked / "data.npz",
                  "--lanes", "4,3", "--gap", "0.2", "--stall", "0.3", "--sim", "icarus",
                  "--limit", "3", "--json", "--no-progress")
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    assert r["mode"] == "cocotb" and r["mismatches"] == 0 and r["missing"] == 0
    assert r["compared"] == r["compared_c"] == 3 * 5 * 7
    assert "accuracy_rtl" in r
