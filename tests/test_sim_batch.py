"""Batch mode on Verilator (sim/batch.py, `python -m sim` without gaps or stalls): one build of
a small odd-size design serves every test here (vectors and plusargs change at run time)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers_sim import random_case
from model.config import load_config
from model.golden import run_golden
from model.vectors import vectors_of_run
from model.weights import save_weights
from rtl.top import LSTMCell
from rtl_helpers import random_weights
from sim.__main__ import _batch_mode, build_parser
from sim.batch import run_vectors

ROOT = Path(__file__).resolve().parent.parent
X, H, LANES = 5, 7, 3          # P divides nothing


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """Default formats (so the command line can take it), random weights, 6 sequences of 5."""
    cfg = load_config()
    rng = np.random.default_rng(11)
    weights = random_weights(rng, X, H, head_classes=3)
    x = rng.normal(0, 1.5, (6, 5, X))
    labels = rng.integers(0, 3, 6)
    d = tmp_path_factory.mktemp("batch")
    save_weights(d / "w.npz", weights)
    np.save(d / "x.npy", x)
    np.save(d / "y.npy", labels)
    return cfg, weights, x, labels, d


def _corrupt_last_c(run_dir):
    """Flip the top bit of the last unit's c in the last expected output."""
    path = run_dir / "expected.hex"
    lines = path.read_text().split()
    lines[-1] = f"{int(lines[-1], 16) ^ (1 << (4 * len(lines[-1]) - 1)):0{len(lines[-1])}x}"
    path.write_text("\n".join(lines) + "\n")


def test_command_line_uses_batch_on_verilator(case):
    cfg, weights, x, labels, d = case
    done = subprocess.run([sys.executable, "-m", "sim", "--sim", "verilator", "--json",
                           "--weights", str(d / "w.npz"), "--inputs", str(d / "x.npy"),
                           "--labels", str(d / "y.npy"), "--lanes", str(LANES)],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    r = json.loads(done.stdout)
    B, T = x.shape[:2]
    assert r["mode"] == "batch" and r["simulator"] == "verilator" and r["passed"]
    assert r["compared"] == r["compared_c"] == B * T * H
    assert r["mismatches"] == r["mismatches_dump"] == r["missing"] == 0
    dut = LSTMCell(cfg, run_golden(cfg, weights, x).qweights, lanes=LANES)
    dut._MustUse__silence = True        # asked for its closed form only, never elaborated
    assert r["cycles_per_step"] == dut.cycles_per_step
    # the RTL's accuracy comes from the h the design produced: equal here because it is exact
    assert r["accuracy_rtl"] == r["accuracy_golden"]


def test_gaps_stalls_and_a_wrong_expectation(case):
    cfg, weights, x, _, _ = case
    vectors = vectors_of_run(run_golden(cfg, weights, x), lanes=LANES)
    stalled = run_vectors(vectors, "verilator", lanes=LANES, gap=25, stall=35, seed=9)
    assert stalled.passed and stalled.tb["compared"] == vectors.h.size
    assert np.array_equal(stalled.h, vectors.h) and np.array_equal(stalled.c, vectors.c)
    wrong = run_vectors(vectors, "verilator", lanes=LANES, corrupt=_corrupt_last_c)
    assert not wrong.passed
    assert wrong.tb["mismatches"] == 1 and wrong.mismatches_dump == 0
    assert f"unit {H - 1} c" in wrong.tb.reports[0]


def test_serial_output_in_batch_mode(case):
    """The word-serial output through sim/verilog/tb_vectors.v: H words a step assembled and
    compared, framing checked, gaps and stalls; a wrong expectation is still one mismatch."""
    cfg, weights, x, _, _ = case
    vectors = vectors_of_run(run_golden(cfg, weights, x), lanes=LANES, serial_output=True)
    dut = LSTMCell(cfg, vectors.qweights, lanes=LANES, serial_output=True)
    dut._MustUse__silence = True
    plain = run_vectors(vectors, "verilator", lanes=LANES)
    assert plain.passed and plain.tb["compared"] == vectors.h.size
    B, T = x.shape[:2]
    # sequences back to back: from the first accept to the last word, T * B steps' worth
    assert plain.tb["step_cycles"] == dut.cycles_per_sequence(B * T)
    stalled = run_vectors(vectors, "verilator", lanes=LANES, gap=25, stall=35, seed=4)
    assert stalled.passed and np.array_equal(stalled.h, vectors.h)
    wrong = run_vectors(vectors, "verilator", lanes=LANES, corrupt=_corrupt_last_c)
    assert not wrong.passed and wrong.tb["mismatches"] == 1


@pytest.mark.parametrize("argv, batch", [
    (["--sim", "verilator"], True),
    (["--sim", "verilator", "--gap", "0.1"], False),
    (["--sim", "verilator", "--waves"], False),
    (["--sim", "verilator", "--cocotb"], False),
    (["--sim", "icarus"], False),
    (["--sim", "icarus", "--fast"], True),
])
def test_mode_choice(argv, batch):
    assert _batch_mode(build_parser().parse_args(argv)) is batch


def test_bench_sim_runs_and_reports(tmp_path):
    """`python -m bench sim` end to end, on Icarus and one held-out digit (the Verilator build
    of the shipped design is left to the benchmark itself)."""
    out = tmp_path / "sim.json"
    done = subprocess.run([sys.executable, "-m", "bench", "sim", "--sim", "icarus", "--limit", "1",
                           "--repeat", "1", "--json", "--out", str(out)],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    r = json.loads(done.stdout)
    assert r == json.loads(out.read_text())
    assert r["passed"] and r["simulator"] == "icarus" and r["mode"] == "batch"
    assert r["compared"] == r["compared_c"] == 8 * 32 and r["mismatches"] == 0
    assert r["checked_cycles_per_second"] > 0 and r["cycles"] >= 8 * r["cycles_per_step"]


# ---- the long regression's configurations in batch mode (slow: make regress-batch) ---------

COUNT = int(os.environ.get("COUNT", 20))
STEPS = int(os.environ.get("STEPS", 5000))
SEED = int(os.environ.get("SEED", 0))
BATCH_SIM = os.environ.get("SIM", "verilator")


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(SEED, SEED + COUNT))
def test_regression_configuration_in_batch_mode(seed):
    """The configurations of tests/test_sim_regress.py (random odd sizes, lanes, formats,
    modes, PWL and PLAN tables) through the batch testbench with random gaps and stalls; every
    h and c code compared in the HDL and again from the dump. (Resets and loads are the
    cocotb regression's part.)"""
    cfg, X, H, lanes, weights = random_case(seed, default_formats=(seed % 5 == 0))
    rng = np.random.default_rng(seed)
    T = int(rng.integers(1, 9))
    x = rng.normal(0, 2, (-(-STEPS // T), T, X)) * rng.choice([1, 4], (-(-STEPS // T), T, X))
    vectors = vectors_of_run(run_golden(cfg, weights, x), lanes=lanes)
    gap, stall = (int(v) for v in rng.integers(0, 40, 2))
    result = run_vectors(vectors, BATCH_SIM, lanes=lanes, gap=gap, stall=stall, seed=seed + 1)
    tb = result.tb
    log = ROOT / "build" / f"regress-batch-{BATCH_SIM}.jsonl"
    log.parent.mkdir(exist_ok=True)
    with log.open("a") as f:
        f.write(json.dumps({"seed": seed, "simulator": BATCH_SIM, "X": X, "H": H, "lanes": lanes,
                            "steps": tb["steps"], "compared": tb["compared"],
                            "compared_c": tb["compared_c"], "mismatches": tb["mismatches"],
                            "mismatches_dump": result.mismatches_dump, "cycles": tb["cycles"],
                            "gap": gap, "stall": stall, "cpu_seconds": round(tb.cpu_seconds, 3),
                            "build_seconds": round(result.build_seconds, 1)}) + "\n")
    assert result.passed, "\n".join(tb.reports[:5]) or f"see {tb.log}"
    assert tb["compared"] == tb["compared_c"] == vectors.h.size and vectors.n_steps >= STEPS
