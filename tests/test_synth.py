"""python -m bench.synth: Yosys synthesis of a tiny design (fast), the report parsers, one-line
errors; ECP5 place and route of the tiny design is marked slow."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench import synth
from rtl.top import LSTMCell
from model.weights import LSTMWeights, save_weights

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    rng = np.random.default_rng(7)
    X, H = 2, 2
    path = tmp_path_factory.mktemp("synth") / "tiny.npz"
    save_weights(path, LSTMWeights(rng.uniform(-0.5, 0.5, (4 * H, X)), rng.uniform(-0.5, 0.5, (4 * H, H)),
                                   rng.uniform(-0.5, 0.5, 4 * H)))
    return path


def _synth(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "bench.synth", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def tiny_run(tiny_weights, tmp_path_factory):
    """One Yosys run of the tiny design (X=2, H=2, P=2): its stdout, results file, build dir."""
    tmp = tmp_path_factory.mktemp("tiny-run")
    out = tmp / "synth.json"
    r = _synth("--weights", str(tiny_weights), "--lanes", "2", "--no-pnr", "--json",
               "--build-dir", str(tmp / "build"), "--out", str(out))
    return r, out, tmp / "build"


def test_tiny_design_synthesizes(tiny_run):
    r, out, build = tiny_run
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert json.loads(out.read_text()) == result
    d, res = result["design"], result["resources"]
    assert (d["n_inputs"], d["n_hidden"], d["lanes"]) == (2, 2, 2)
    assert res["lut4"] > 0 and res["ff"] > 0 and res["dsp"] > 0
    assert result["cycles_per_step"] == -(-4 * 2 * 4 // 2) + LSTMCell.overhead_for(2)   # closed form
    # every memory is accounted for: 2 weight lanes, the biases, c_{t-1} and the initial c (the
    # activation units' ROMs are LUT4 / PFUMX / L6MUX21 mapped by hand for ECP5:
    # rtl.pipeline.lut_rom)
    assert set(result["memories"]) == {"mac.weights0", "mac.weights1", "mac.biases", "c_state",
                                       "c_init"}
    assert result["fits_device"] and result["device"] == "LFE5U-25F"
    assert result["pnr"] is None and result["fmax_mhz"] is None
    assert (build / "ecp5-X2-H2-P2" / "lstm_cell.v").exists()


def test_tiny_design_synthesizes_for_ice40(tiny_weights, tmp_path):
    """iCE40 has no LUT RAM: the bias memory (asynchronous read) goes to logic, not a failure.
    Without --out the results go under the build directory, never over bench/results/."""
    recorded = ROOT / "bench" / "results" / "synth-ice40.json"
    before = recorded.read_bytes()
    r = _synth("--weights", str(tiny_weights), "--lanes", "2", "--family", "ice40", "--json",
               "--build-dir", str(tmp_path / "build"))
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert json.loads((tmp_path / "build" / "synth-ice40.json").read_text()) == result
    assert recorded.read_bytes() == before
    assert result["resources"]["lut4"] > 0 and result["memories"]["mac.biases"] == "logic"


def test_table(tiny_run, capsys):
    r, out, _ = tiny_run
    assert r.returncode == 0, r.stderr
    synth.print_table(json.loads(out.read_text()))
    text = capsys.readouterr().out
    for word in ("X=2 H=2 P=2", "LUT4", "flip-flops", "MULT18X18D", "DP16KD", "memories:",
                 "mac.weights0..1", "cycles per step"):
        assert word in text, word


def test_parsers():
    log = ("mapping memory lstm_cell.mac.weights1 via $__DP16KD_\n"
           "mapping memory lstm_cell.mac.weights0 via $__DP16KD_\n"
           "using FF mapping for memory lstm_cell.sigmoid.index_rom\n"
           "mapping memory lstm_cell.mac.biases via $__TRELLIS_DPR16X4_\n")
    mems = synth.parse_memories(log)
    assert mems == {"mac.biases": "TRELLIS_DPR16X4", "mac.weights0": "DP16KD",
                    "mac.weights1": "DP16KD", "sigmoid.index_rom": "logic"}
    assert synth._weight_memories(mems) == ["block RAM"]
    assert synth.group_names(["mac.weights0", "mac.weights1", "mac.weights7", "x"]) == \
        ["mac.weights0..7", "x"]
    stat = {"modules": {"\\lstm_cell": {"num_cells_by_type": {"LUT4": 10, "TRELLIS_FF": 5, "CCU2C": 2,
                                                              "$scopeinfo": 3}}}}
    cells = synth.cell_counts(stat)
    assert cells == {"LUT4": 10, "TRELLIS_FF": 5, "CCU2C": 2}
    res = synth.resources("ecp5", cells)
    assert (res["lut4"], res["ff"], res["carry"], res["dsp"], res["bram"]) == (10, 5, 2, 0, 0)
    assert synth.pick_device("ecp5", res, None) == "25k"
    big = dict(res, dsp=100)
    assert synth.pick_device("ecp5", big, None) == "85k"

    def step(kind, cell, port, delay):
        return {"type": kind, "delay": delay, "from": {"cell": cell, "port": port},
                "to": {"cell": cell, "port": port}}
    report = {"critical_paths": [{"from": "posedge clk", "to": "posedge clk", "path": [
        step("clk-to-q", "mac.weights1.0.0", "DOB15", 5.0), step("routing", "n", "x", 1.0),
        step("logic", "mac.$106_MULT18X18D_P9", "P21", 4.0), step("routing", "n", "x", 0.5),
        step("setup", "mac.product1_TRELLIS_FF_Q_3", "DI", 0.0)]}]}
    cp = synth.critical_path(report)
    assert cp["delay_ns"] == pytest.approx(10.5) and cp["routing_ns"] == pytest.approx(1.5)
    assert cp["from"] == "mac.weights1.0.0.DOB15" and cp["to"] == "mac.product1_TRELLIS_FF_Q_3.DI"
    assert synth.path_through(cp) == "DP16KD -> MULT18X18D -> TRELLIS_FF"


@pytest.mark.parametrize("args,message", [
    (["--weights", "nope.npz"], "weights file not found: nope.npz"),
    (["--lanes", "0"], "lanes must be from 1 to 2(X+H) = 80, not 0"),
    (["--lanes", "81"], "lanes must be at most 2(X+H) = 80"),
    (["--lanes", "8", "--logic-lanes", "9"], "logic lanes must be from 0 to the 8 lanes, not 9"),
    (["--device", "99k"], "--device for ecp5 must be one of 25k, 45k, 85k, not 99k"),
    (["--freq", "0"], "--freq must be positive, not 0"),
    (["--family", "xc7"], "argument --family: invalid choice"),
    (["--router", "router3"], "argument --router: invalid choice"),
])
def test_bad_input(args, message, tmp_path):
    out = tmp_path / "s.json"
    r = _synth(*args, "--no-pnr", "--build-dir", str(tmp_path / "build"), "--out", str(out))
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], r.stderr
    assert not out.exists() and not (tmp_path / "build").exists()


def test_bad_out_directory(tmp_path):
    r = _synth("--no-pnr", "--out", str(tmp_path / "missing" / "s.json"))
    assert r.returncode == 2 and r.stderr.startswith("error: --out") and "does not exist" in r.stderr


@pytest.mark.slow
@pytest.mark.parametrize("router", ["router1", "router2"])
def test_tiny_design_place_and_route(tiny_weights, tmp_path, router):
    r = _synth("--weights", str(tiny_weights), "--lanes", "2", "--json", "--router", router,
               "--build-dir", str(tmp_path / "build"), "--out", str(tmp_path / "s.json"))
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    pnr = result["pnr"]
    assert result["fmax_mhz"] > 1 and pnr["device"].startswith("LFE5U-25F")
    log, = (tmp_path / "build").rglob("nextpnr.log")
    assert pnr["router"] == router and ("Running router2" in log.read_text()) == (router == "router2")
    assert pnr["utilization"]["TRELLIS_FF"]["used"] > 0
    assert pnr["utilization"]["MULT18X18D"]["used"] == result["resources"]["dsp"]
    assert result["step_time_us"] == pytest.approx(result["cycles_per_step"] / result["fmax_mhz"])
    assert pnr["critical_path"]["delay_ns"] == pytest.approx(1e3 / result["fmax_mhz"], rel=0.05)
