"""cocotb on the exported Verilog, golden model as scoreboard: short runs on both simulators.

The long randomised regression is tests/test_sim_regress.py (``make regress``)."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers_sim import (add_random_head, corner_weights, full_scenario, random_case,
                         random_stack_case)
from model.config import load_config
from model.golden import quantize_inputs
from model.weights import quantize_weights
from rtl.geometry import Geometry
from rtl.top import LSTMCell
from rtl_helpers import random_weights
from sim.runner import run_scenario
from sim.scenario import Scenario

ROOT = Path(__file__).resolve().parent.parent
SIMULATORS = ["icarus", "verilator"]


def _check(result, min_steps):
    r = result.results
    assert result.passed, "\n".join(r["reports"][:5]) or f"see {result.log}"
    assert r["mismatches"] == 0 and r["missing"] == 0
    assert r["steps"] >= min_steps and r["compared"] == r["steps"] * len(r["received_h"][0][2:])
    assert r["steps"] + r["dropped"] == r["sent"]


def _default_design():
    """Default formats, X=5, H=7 (built with P=3: P divides nothing)."""
    return load_config(), random_weights(np.random.default_rng(0), 5, 7)


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_default_formats_all_scenarios(simulator):
    """X=5, H=7, P=3 (P divides nothing): gaps, stalls, reset mid-step, back-to-back
    sequences, runtime weight load, initial state load."""
    cfg, weights = _default_design()
    sc = full_scenario(cfg, weights, 3, seed=1, steps=40)
    result = run_scenario(sc, simulator, lanes=3)
    _check(result, min_steps=sc.n_steps - 2)
    r = result.results
    # the step in flight at the reset (and one waiting in a stalled output) are lost, counted
    assert r["sent"] == sc.n_steps and r["steps"] + r["dropped"] == r["sent"]
    assert 1 <= r["dropped"] <= 2


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_random_formats_plan_and_saturation_corners(simulator):
    """A random config (rounding, overflow and table methods drawn per tensor) with weights and
    inputs at the rails, so accumulators, z and c saturate or wrap."""
    cfg, X, H, lanes, _ = random_case(3)
    for sign in (1, -1):
        qw = quantize_weights(corner_weights(cfg, X, H, sign), cfg)
        sc = Scenario(cfg, qw, seed=sign % 7, gap=0.2, stall=0.2)
        x = np.where(np.random.default_rng(4).random((3, 3, X)) < 0.5, 1e3, -1e3)
        sc.add_sequences(quantize_inputs(cfg, x)[0])
        result = run_scenario(sc, simulator, lanes=lanes)
        _check(result, min_steps=9)


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_loads_concurrent_with_steps(simulator):
    """Three weight packets and three state packets offered while steps run, random gaps on
    every port and random output stalls: the scoreboard loads each packet when the design
    commits it, so every output is compared with the weights and state its step used, and it
    flags any x accepted inside a packet."""
    cfg, weights = _default_design()
    sc = full_scenario(cfg, weights, 3, seed=5, steps=60, gap=0.4, stall=0.4, loads=3)
    result = run_scenario(sc, simulator, lanes=3)
    _check(result, min_steps=sc.n_steps - 2)
    r = result.results
    assert r["loads"] == {"weights": 3, "state": 3} and r["error"] == 0
    assert r["held_by_loads"] > 0          # the loads did overlap the steps


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_serial_output_with_loads_stalls_and_reset(simulator):
    """The word-serial output (python -m rtl --serial-output) on the exported Verilog: every
    word's h, c and framing compared, with gaps, stalls, a reset mid-step and loads offered
    while steps run (they may land while a result's words wait)."""
    cfg, weights = _default_design()
    sc = full_scenario(cfg, weights, 3, seed=8, steps=30, gap=0.3, stall=0.5, loads=2)
    sc.serial_output = True
    result = run_scenario(sc, simulator, lanes=3)
    _check(result, min_steps=sc.n_steps - 2)
    assert result.results["loads"] == {"weights": 2, "state": 2}


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_classifier_head_with_loads_stalls_and_reset(simulator):
    """The head on chip (rtl.head.ClassifiedLSTM): every logit code and label of every
    sequence compared, y stalls beside h stalls, a reset mid-step, loads during the steps."""
    cfg, weights = _default_design()
    sc = full_scenario(cfg, weights, 3, seed=12, steps=30, gap=0.3, stall=0.4, loads=1)
    classes = add_random_head(sc, 12, always=True)
    result = run_scenario(sc, simulator, lanes=3)
    _check(result, min_steps=sc.n_steps - 2)
    r = result.results
    assert r["labels_compared"] >= 1 and r["logits_compared"] == classes * r["labels_compared"]
    assert r["logits_mismatches"] == r["labels_mismatches"] == 0


def test_classifier_head_after_a_stack():
    """A two-layer stack with the head (C > H of the last layer): the scoreboard follows each
    layer inside the design (under `core`) and checks every logit and label."""
    cfg, weights, lanes = random_stack_case(5, 2)
    sc = full_scenario(cfg, weights, lanes, seed=5, steps=20, loads=1)
    classes = add_random_head(sc, 5, always=True)
    result = run_scenario(sc, "icarus")
    _check(result, min_steps=sc.n_steps - 4)
    r = result.results
    assert r["labels_compared"] >= 1 and r["logits_compared"] == classes * r["labels_compared"]


def _small_case(seed):
    """The default design (one build per simulator for these tests), a second model, inputs."""
    cfg, weights = _default_design()
    rng = np.random.default_rng(seed)
    qw = [quantize_weights(w, cfg) for w in (weights, random_weights(rng, 5, 7, scale=1.5))]
    x = quantize_inputs(cfg, rng.normal(0, 1, (2, 3, 5)))[0]
    return cfg, qw, x, Geometry.of(cfg, qw[0], 3)


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_inputs_offered_during_reset_wait_for_it(simulator):
    """x, a weight packet and a state packet offered while rst is high: nothing is accepted
    before reset ends (the testbench flags any transfer in reset), then all of it is."""
    cfg, (built, new), x, g = _small_case(6)
    sc = Scenario(cfg, built, seed=6, gap=0.2, stall=0.2)
    sc.add_sequences(x[:1])
    sc.add_reset(5, length=6, offer=True)
    sc.add_weight_load(g.load_packet(new), background=True)
    sc.add_state_load(g.state_packet([1000, -2000, 3000, 0, 5, -5, 32767],
                                     [-9000, 0, 7000, 20000, 1, -1, -32768]),
                      background=True)
    sc.add_sequences(x[1:], first_sequence=1)
    result = run_scenario(sc, simulator, lanes=3)
    _check(result, min_steps=3)
    assert result.results["loads"] == {"weights": 1, "state": 1}


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_malformed_packets_set_error_and_block_x(simulator):
    """Stray words, a weight packet whose `last` comes early, a state packet cut short by a
    restart: `error` rises, x waits (the testbench flags any x accepted while the weights or
    state are invalid) until good packets arrive, and the outputs use those."""
    cfg, (built, new), x, g = _small_case(7)
    packet = g.load_packet(new)
    state = g.state_packet([1, 2, 3, 4, 5, 6, 7], [8, 9, 10, 11, 12, 13, 14])
    sc = Scenario(cfg, built, seed=7, gap=0.3, stall=0.3)
    sc.add_sequences(x[:1])
    sc.add_weight_load(packet[3:6])                                     # no `first`: dropped
    sc.add_weight_load(packet[:9] + [dict(packet[9], last=1)])          # refused
    sc.add_weight_load(packet, after=300, background=True)
    sc.add_state_load(state[:2] + state, after=100, background=True)   # restarted: error
    sc.add_sequences(x[1:], first_sequence=1)                          # waits for both
    result = run_scenario(sc, simulator, lanes=3)
    _check(result, min_steps=6)
    r = result.results
    assert r["error"] == 1 and r["loads"] == {"weights": 1, "state": 1}
    assert r["held_by_loads"] >= 1          # x was offered and had to wait for them


def test_refused_weight_packet_blocks_x_for_good():
    """With no good weight packet after a refused one, x is never accepted: the testbench's
    watchdog ends the run and says so (a failed run, not a hang)."""
    cfg, (built, new), x, g = _small_case(8)
    sc = Scenario(cfg, built, seed=8)
    sc.add_sequences(x[:1])
    sc.add_weight_load(g.load_packet(new)[:-1])                    # word N-1 never comes...
    sc.add_weight_load([dict(g.load_packet(new)[0], last=1)])      # ...a restart, refused
    sc.add_sequences(x[1:], first_sequence=1)
    result = run_scenario(sc, "icarus", lanes=3)
    r = result.results
    assert not result.passed and r["sent"] == 3 and r["steps"] == 3 and r["error"] == 1
    assert any("the design stopped accepting inputs (3 of 6 steps sent)" in line
               for line in r["reports"]), r["reports"]


def test_simulators_agree_cycle_for_cycle():
    """Same scenario, same seed: both simulators deliver the same outputs on the same cycles
    (the stimulus depends on the seed alone, not on how a simulator orders coroutines)."""
    cfg, X, H, lanes, weights = random_case(4)
    sc = full_scenario(cfg, weights, lanes, seed=4, steps=60)
    icarus, verilator = (run_scenario(sc, s, lanes=lanes).results for s in SIMULATORS)
    for key in ("cycles", "steps", "dropped", "received_h", "mismatches"):
        assert icarus[key] == verilator[key], key


def test_mismatch_is_reported_with_location_and_seed():
    """The checker can fail: the design's memories hold other weights than the scoreboard's
    model."""
    cfg = load_config()
    rng = np.random.default_rng(2)
    built = quantize_weights(random_weights(rng, 3, 4), cfg)
    believed = quantize_weights(random_weights(rng, 3, 4), cfg)
    sc = Scenario(cfg, built, seed=42)
    sc.add_believed_weights(believed)
    sc.add_sequences(quantize_inputs(cfg, rng.normal(0, 1, (2, 2, 3)))[0])
    bad = run_scenario(sc, "icarus", lanes=2)
    assert not bad.passed and bad.results["mismatches"] > 0
    first = bad.results["reports"][0]
    assert first.startswith("sequence 0 step 0 unit ") and "expected" in first and "got" in first
    assert "reproduce with SEED=42" in first


# ---- command line -------------------------------------------------------------------------

def _sim_cli(*args):
    return subprocess.run([sys.executable, "-m", "sim", *args], cwd=ROOT, capture_output=True, text=True)


def test_cli_shipped_model_subset_json():
    r = _sim_cli("--limit", "3", "--json", "--gap", "0.2", "--stall", "0.2")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    for key in ("compared", "mismatches", "cycles", "cycles_per_step", "simulator"):
        assert key in out
    assert out["simulator"] == "icarus" and out["mismatches"] == 0
    assert out["compared"] == 3 * 8 * 32 and out["steps"] == 24
    assert out["accuracy_rtl"] == out["accuracy_golden"]


def test_cli_whole_heldout_set_on_verilator():
    """All 540 held-out digits through the shipped model: RTL accuracy = golden accuracy, and
    the measured cycles per step equal the closed form (no gaps, no stalls)."""
    r = _sim_cli("--sim", "verilator", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["mismatches"] == 0 and out["steps"] == 540 * 8
    assert out["compared"] == 540 * 8 * 32
    assert out["accuracy_rtl"] == out["accuracy_golden"] >= 0.95
    assert out["cycles_per_step"] == 640 + LSTMCell.overhead_for(8)    # the closed form


def test_cli_head_lanes_in_the_exported_verilog():
    """The shipped digits model with its head working on 4 classes at once (3 rounds, the last
    half empty), on Icarus in batch mode: every h, c, logit and label equals the golden model's."""
    r = _sim_cli("--limit", "4", "--fast", "--head-lanes", "4", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["simulator"] == "icarus" and out["mismatches"] == 0 and out["missing"] == 0
    assert out["compared"] == 4 * 8 * 32
    assert out["logits_compared"] == 40 and out["labels_compared"] == 4
    assert out["logits_mismatches"] == out["labels_mismatches"] == 0


def test_cli_wide_and_logic_lanes_in_the_exported_verilog():
    """The shipped digits model at P = 51 > X+H = 40 (two row ends per cycle, the last
    cycle's second end past the last row) with 9 lanes multiplying in logic, on Icarus in batch
    mode: every h, c, logit and label equals the golden model's, and the steps take the closed
    form's cycles."""
    r = _sim_cli("--limit", "3", "--fast", "--lanes", "51", "--logic-lanes", "9", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["simulator"] == "icarus" and out["mismatches"] == 0 and out["missing"] == 0
    assert out["compared"] == 3 * 8 * 32 and out["logits_mismatches"] == 0
    # ceil(5120 / 51) + 41 + ceil(log2 51) + 1 (two rows per cycle); Booth products: no wait
    assert out["cycles_per_step"] == 101 + 41 + 6 + 1


def test_cli_waves(tmp_path):
    r = _sim_cli("--limit", "1", "--waves")
    assert r.returncode == 0, r.stderr
    line = [ln for ln in r.stdout.splitlines() if ln.startswith("waves: ")]
    assert line and Path(line[0][7:]).stat().st_size > 0


@pytest.mark.parametrize("args,message", [
    (["--weights", "nope.npz"], "weights file not found: nope.npz"),
    (["--inputs", "nope.npy"], "inputs file not found: nope.npy"),
    (["--limit", "0"], "--limit must be at least 1, not 0"),
    (["--gap", "1.5"], "--gap must be a probability in [0, 1), not 1.5"),
    (["--lanes", "99"], "lanes must be at most 2(X+H) = 80"),
    (["--labels", "y.npy"], "--labels goes with --inputs"),
    (["--head-lanes", "3", "--cocotb", "--limit", "1"], "--head-lanes runs in batch mode (add --fast)"),
    (["--logic-lanes", "2", "--cocotb", "--limit", "1"], "--logic-lanes runs in batch mode (add --fast)"),
    (["--head-lanes", "11", "--fast", "--limit", "1"],
     "head lanes must be an integer from 1 to the 10 classes, not 11"),
])
def test_cli_bad_input(args, message):
    r = _sim_cli(*args)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in r.stderr
