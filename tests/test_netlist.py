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


def _design(lanes: int, seed: int, steps: int):
    """An X, H cell on ``lanes`` lanes with random weights (``seed``), its golden run on random
    inputs, and the golden run of other weights (``seed + 1``) on the same inputs."""
    cfg = load_config()
    rng = np.random.default_rng(seed)
    weights = random_weights(rng, X, H)
    other = random_weights(np.random.default_rng(seed + 1), X, H)
    x = rng.normal(0, 1.5, (2, steps, X))
    golden = run_golden(cfg, weights, x)
    return LSTMCell(cfg, golden.qweights, lanes=lanes), golden, run_golden(cfg, other, x)


@pytest.fixture(scope="module", params=[False, True], ids=["plain", "dsp-input-registers"])
def case(request):
    """The design's ECP5 export, without and with ``--dsp-input-registers`` (the activation
    units' and the cell update's multipliers registering their operands themselves)."""
    dut, golden, other = _design(LANES, 11, 2)
    flag = request.param
    netlist = map_netlist(export_verilog(dut, "lstm_cell", ecp5=True, dsp_input_registers=flag),
                          ROOT / "build" / "netlist" / ("test-X5-H7-P3" + ("-dspin" if flag else "")))
    return netlist, vectors_of_run(golden, lanes=LANES), vectors_of_run(other, lanes=LANES), flag


def test_the_netlist_holds_the_ecp5_primitives(case):
    netlist, _, _, flag = case
    cells = netlist.cells
    for cell in ("DP16KD", "MULT18X18D", "TRELLIS_DPR16X4", "LUT4", "TRELLIS_FF", "CCU2C"):
        assert cells.get(cell, 0) > 0, (cell, cells)
    assert instantiated_cells(netlist.text) == set(cells)
    # the primitives the chip runs: block RAMs read through their output register (the RTL
    # instantiates them so), multipliers with their output register, the lanes' also with
    # their input registers; with the flag also the two activation units' and tanh_c's
    # products (every edge) and the cell update's: f*c (f loads with its gate, c every edge),
    # i*g (each with its gate) and o*tanh(c) (every edge)
    every = LANES + (6 if flag else 0)
    modes = {"DP16KD REGMODE_A": {"OUTREG": cells["DP16KD"]},
             "MULT18X18D REG_INPUTA_CLK": {"CLK0": every},
             "MULT18X18D REG_INPUTB_CLK": {"CLK0": every},
             "MULT18X18D REG_INPUTA_CE": {"CE0": every - 2, "CE1": 2} if flag else {"CE0": every},
             "MULT18X18D REG_INPUTB_CE": {"CE0": every - 1, "CE2": 1} if flag else {"CE0": every},
             "MULT18X18D REG_OUTPUT_CLK": {"CLK0": cells["MULT18X18D"]}}
    assert primitive_modes(netlist.text) == modes
    assert cells["MULT18X18D"] == LANES + 6   # lanes, sigmoid, tanh, tanh_c, f*c, i*g, o*tanh(c)
    assert "MULT18X18D" not in export_verilog(
        LSTMCell(load_config(), case[1].qweights, lanes=LANES), "lstm_cell")   # plain export


def test_netlist_from_its_initial_contents_matches_the_golden_model(case):
    netlist, vectors, _, _ = case
    r = run_netlist(vectors, netlist, "icarus", lanes=LANES, load=False)
    assert r.passed, "\n".join(r.tb.reports[:5]) or f"see {r.tb.log}"
    assert r.tb["mismatches"] == r.mismatches_dump == 0
    assert r.tb["compared"] == r.tb["compared_c"] == vectors.h.size
    assert np.array_equal(r.h, vectors.h) and np.array_equal(r.c, vectors.c)


def test_netlist_takes_other_weights_through_its_ports(case):
    """The block RAMs' and LUT RAMs' write ports: weights other than the exported ones, loaded
    as a packet, give the other model's outputs; without the load they do not."""
    netlist, _, other, _ = case
    loaded = run_netlist(other, netlist, "icarus", lanes=LANES, load=True)
    assert loaded.passed, "\n".join(loaded.tb.reports[:5]) or f"see {loaded.tb.log}"
    assert loaded.tb["compared"] == other.h.size
    stale = run_netlist(other, netlist, "icarus", lanes=LANES, load=False)
    assert not stale.passed and stale.tb["mismatches"] > 0


def test_wide_netlist_with_dsp_input_registers_matches_the_golden_model():
    """P > X+H (two rows per cycle, a second sigmoid unit, i written a cycle late) exported
    with ``--dsp-input-registers``: the gates' loads reach the multipliers' input-register
    enables from the wide design's own sources; 0 mismatches, from the initial contents and
    after a load of other weights."""
    lanes = X + H + 3
    dut, golden, other = _design(lanes, 13, 3)
    assert dut.geometry.wide
    netlist = map_netlist(export_verilog(dut, "lstm_cell", ecp5=True, dsp_input_registers=True),
                          ROOT / "build" / "netlist" / f"test-X5-H7-P{lanes}-dspin")
    every = lanes + 4 + 3           # lanes, sigmoid (two), tanh, tanh_c, f*c, i*g, o*tanh(c)
    modes = primitive_modes(netlist.text)
    assert modes["MULT18X18D REG_INPUTA_CLK"] == {"CLK0": every}
    assert modes["MULT18X18D REG_INPUTA_CE"] == {"CE0": every - 2, "CE1": 2}
    assert modes["MULT18X18D REG_INPUTB_CE"] == {"CE0": every - 1, "CE2": 1}
    for vectors, load in ((vectors_of_run(golden, lanes=lanes), False),
                          (vectors_of_run(other, lanes=lanes), True)):
        r = run_netlist(vectors, netlist, "icarus", lanes=lanes, load=load)
        assert r.passed, "\n".join(r.tb.reports[:5]) or f"see {r.tb.log}"
        assert r.tb["mismatches"] == r.mismatches_dump == 0
        assert r.tb["compared"] == vectors.h.size
        assert np.array_equal(r.h, vectors.h) and np.array_equal(r.c, vectors.c)


def test_a_cell_without_a_model_is_named():
    with pytest.raises(SynthError, match="instantiates EHXPLLL, which no simulation model"):
        cell_library({"LUT4", "EHXPLLL"})


def test_command_line_refuses_bad_options_in_one_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "bench.netlist", "--limit", "0",
                           "--out", str(tmp_path / "n.json")],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode != 0
    assert done.stderr.strip() == "error: --limit must be at least 1, not 0"
