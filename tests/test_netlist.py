"""The mapped ECP5 netlist, simulated (bench/netlist.py): a small design exported for ECP5
(MULT18X18D with its output register), synthesized by Yosys's synth_ecp5 into LUT4, TRELLIS_FF,
CCU2C, LUT RAM, DP16KD and MULT18X18D cells, and run under Icarus in batch mode against the
golden model: with the weights from the netlist's initial contents, and with other weights
loaded through the ports (which the initial contents alone must fail). The default design's
run is ``make sim-netlist`` (Verilator)."""
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench.netlist import (cell_library, instantiated_cells, map_netlist, primitive_modes,
                           run_netlist)
from bench.synth import SynthError
from model.config import load_config
from model.golden import run_golden
from model.vectors import vectors_of_run
from rtl.__main__ import export_verilog
from rtl.top import LSTMCell
from rtl_helpers import random_weights

pytestmark = pytest.mark.skipif(shutil.which("iverilog") is None, reason="needs iverilog")

ROOT = Path(__file__).resolve().parent.parent
X, H, LANES = 5, 7, 3          # 112 weight words per lane: block RAM, not LUT RAM


@pytest.fixture(scope="module")
def case():
    cfg = load_config()
    rng = np.random.default_rng(11)
    weights = random_weights(rng, X, H)
    other = random_weights(np.random.default_rng(12), X, H)
    x = rng.normal(0, 1.5, (2, 2, X))
    golden = run_golden(cfg, weights, x)
    dut = LSTMCell(cfg, golden.qweights, lanes=LANES)
    netlist = map_netlist(export_verilog(dut, "lstm_cell", ecp5=True),
                          ROOT / "build" / "netlist" / "test-X5-H7-P3")
    return netlist, vectors_of_run(golden, lanes=LANES), \
        vectors_of_run(run_golden(cfg, other, x), lanes=LANES)


def test_the_netlist_holds_the_ecp5_primitives(case):
    netlist, _, _ = case
    cells = netlist.cells
    for cell in ("DP16KD", "MULT18X18D", "TRELLIS_DPR16X4", "LUT4", "TRELLIS_FF", "CCU2C"):
        assert cells.get(cell, 0) > 0, (cell, cells)
    assert instantiated_cells(netlist.text) == set(cells)
    # the primitives the chip runs: block RAMs read through their output register (the RTL
    # instantiates them so), multipliers with their output register, the lanes' also with
    # their input registers
    assert primitive_modes(netlist.text) == {
        "DP16KD REGMODE_A": {"OUTREG": cells["DP16KD"]},
        "MULT18X18D REG_INPUTA_CLK": {"CLK0": LANES},          # the lanes' input registers
        "MULT18X18D REG_OUTPUT_CLK": {"CLK0": cells["MULT18X18D"]}}
    assert "MULT18X18D" not in export_verilog(
        LSTMCell(load_config(), case[1].qweights, lanes=LANES), "lstm_cell")   # plain export


def test_netlist_from_its_initial_contents_matches_the_golden_model(case):
    netlist, vectors, _ = case
    r = run_netlist(vectors, netlist, "icarus", lanes=LANES, load=False)
    assert r.passed, "\n".join(r.tb.reports[:5]) or f"see {r.tb.log}"
    assert r.tb["mismatches"] == r.mismatches_dump == 0
    assert r.tb["compared"] == r.tb["compared_c"] == vectors.h.size
    assert np.array_equal(r.h, vectors.h) and np.array_equal(r.c, vectors.c)


def test_netlist_takes_other_weights_through_its_ports(case):
    """The block RAMs' and LUT RAMs' write ports: weights other than the exported ones, loaded
    as a packet, give the other model's outputs; without the load they do not."""
    netlist, _, other = case
    loaded = run_netlist(other, netlist, "icarus", lanes=LANES, load=True)
    assert loaded.passed, "\n".join(loaded.tb.reports[:5]) or f"see {loaded.tb.log}"
    assert loaded.tb["compared"] == other.h.size
    stale = run_netlist(other, netlist, "icarus", lanes=LANES, load=False)
    assert not stale.passed and stale.tb["mismatches"] > 0


def test_a_cell_without_a_model_is_named():
    with pytest.raises(SynthError, match="instantiates EHXPLLL, which no simulation model"):
        cell_library({"LUT4", "EHXPLLL"})


def test_command_line_refuses_bad_options_in_one_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "bench.netlist", "--limit", "0",
                           "--out", str(tmp_path / "n.json")],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode != 0
    assert done.stderr.strip() == "error: --limit must be at least 1, not 0"
