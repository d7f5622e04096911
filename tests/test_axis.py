"""The AXI4-Stream face (rtl/axis.py, docs/axis.md): beat layouts, the wrapper's framing in
Amaranth's simulator around a small stand-in core, ``python -m rtl --axis``, and cocotbext-axi
runs of the real design against the golden model (sim/tb_axis.py). The long runs (the whole
digits held-out set on Verilator, a shorter one on Icarus, a stack on Verilator) are marked
slow (``make sim-axis``)."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import helpers_stack
from amaranth.hdl import Module, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from helpers_sim import full_scenario
from model.config import load_config
from model.golden import run_golden
from model.weights import LSTMStack, quantize_weights
from rtl.axis import AXIS_WIDTHS, AxisWrapper, BeatLayout, Field, slot_bits
from rtl.geometry import RTLError
from rtl.stack import StackedLSTM, build_design
from rtl.top import LSTMCell
from rtl_helpers import random_weights
from sim.runner import run_scenario
from sim.scenario import Scenario

ROOT = Path(__file__).resolve().parent.parent


def _cell(X=5, H=7, **kw):
    cfg = load_config()
    return LSTMCell(cfg, quantize_weights(random_weights(np.random.default_rng(0), X, H), cfg),
                    lanes=3, **kw)


def _unused(wrapper):
    """Built for its layouts only: no warning that it was never elaborated."""
    for part in (wrapper, wrapper.core, *getattr(wrapper.core, "layers", ())):
        part._MustUse__silence = True


# -- beat layouts ------------------------------------------------------------------------------
def test_slots_are_powers_of_two_of_at_least_a_byte():
    assert [slot_bits(b) for b in (1, 7, 8, 9, 12, 16, 17, 32, 33)] == [8, 8, 8, 16, 16, 16, 32, 32, 64]


@pytest.fixture(scope="module")
def default_sizes():
    cell = _cell(8, 32)
    yield cell
    cell._MustUse__silence = True


@pytest.mark.parametrize("width", AXIS_WIDTHS)
def test_default_cell_beats(default_sizes, width):
    """X = 8 codes of 16 bits, H = 32 of h and of c: 128 and 1024 record bits."""
    w = AxisWrapper(default_sizes, width=width)
    assert w.x_layout.n_beats == max(1, 128 // width)
    assert w.output_layouts["h"].n_beats == max(1, 1024 // width)
    assert w.load_layouts["weights"].n_beats == max(1, 16 // width)
    assert w.load_layouts["state"].n_beats == max(1, 32 // width)
    assert w.load_ports == ("weights", "state") and w.tdest_bits == 1
    _unused(w)


def test_pack_unpack_bit_positions():
    """Codes in slots from bit 0 up, sign-extended on the way out, record padded with zeros."""
    lay = BeatLayout([Field("h", 3, 12, True), Field("c", 2, 16, True), Field("label", 1, 4, False, False)], 32)
    assert lay.record_bits == 3 * 16 + 2 * 16 + 8 and lay.n_beats == 3
    beats = lay.pack({"h": [-1, 2, -2048], "c": [5, -32768], "label": 9})
    word = sum(b << (32 * k) for k, b in enumerate(beats))
    assert word & 0xFFFF == 0xFFFF                      # -1 sign-extended to its 16-bit slot
    assert (word >> 16) & 0xFFFF == 2 and (word >> 32) & 0xFFFF == 0xF800
    assert (word >> 48) & 0xFFFF == 5 and (word >> 64) & 0xFFFF == 0x8000
    assert (word >> 80) & 0xFF == 9 and word >> 88 == 0
    assert lay.unpack(beats) == {"h": [-1, 2, -2048], "c": [5, -32768], "label": 9}
    assert lay.padding_ok(beats)
    assert not lay.padding_ok([beats[0] & 0xFFFF0FFF, *beats[1:]])   # slot bits not the sign
    assert not lay.padding_ok([*beats[:2], beats[2] | 1 << 31])      # padding not zero


def test_codes_wider_than_a_beat():
    lay = BeatLayout([Field("x", 2, 12, True)], 8)
    beats = lay.pack({"x": [-3, 100]})
    assert beats == [0xFD, 0xFF, 100, 0] and lay.unpack(beats) == {"x": [-3, 100]}


@pytest.mark.parametrize("width", [0, 4, 12, 48, 2048])
def test_bad_width_refused(width):
    with pytest.raises(RTLError, match=f"power of two from 8 to 1024, not {width}"):
        AxisWrapper(_cell(), width=width)


def test_word_serial_output_refused():
    with pytest.raises(RTLError, match="word-serial output"):
        AxisWrapper(_cell(serial_output=True))


def test_stack_ports_and_tdest():
    cfg = load_config()
    rng = np.random.default_rng(1)
    qw = [quantize_weights(random_weights(rng, X, H), cfg) for X, H in ((5, 7), (7, 6))]
    w = AxisWrapper(StackedLSTM([cfg, cfg], qw, lanes=[3, 2]), width=16)
    assert w.load_ports == ("weights_l0", "state_l0", "weights_l1", "state_l1")
    assert w.tdest_bits == 2 and len(w.error) == 3
    assert w.output_layouts["h"].n_beats == 6 * 2 * 16 // 16
    _unused(w)


# -- the wrapper's framing, around a stand-in core ---------------------------------------------
class StandIn(wiring.Component):
    """x -> h: each code + ``first`` (so the test sees both), one step at a time; three load
    ports always ready (the test watches their transfers; tdest 3 names none); ``error`` 0."""

    def __init__(self):
        super().__init__({
            "x": In(stream.Signature(data.StructLayout({"x": data.ArrayLayout(signed(12), 3), "first": 1, "last": 1}))),
            "h": Out(stream.Signature(data.StructLayout({"h": data.ArrayLayout(signed(12), 3)}))),
            "weights": In(stream.Signature(data.StructLayout({"data": signed(16), "first": 1, "last": 1}))),
            "state": In(stream.Signature(data.StructLayout({"h": signed(16), "c": signed(24), "first": 1, "last": 1}))),
            "aux": In(stream.Signature(data.StructLayout({"data": signed(8), "first": 1, "last": 1}))),
            "error": Out(1)})

    def elaborate(self, platform):
        m = Module()
        full = Signal()
        with m.If(self.x.valid & self.x.ready):
            m.d.sync += [full.eq(1)] + [self.h.payload.h[k].eq(self.x.payload.x[k] + self.x.payload.first)
                                        for k in range(3)]
        with m.Elif(self.h.valid & self.h.ready):
            m.d.sync += full.eq(0)
        m.d.comb += [self.x.ready.eq(~full), self.h.valid.eq(full),
                     self.weights.ready.eq(1), self.state.ready.eq(1), self.aux.ready.eq(1)]
        return m


def _clock(dut):
    """A 100 MHz ``aclk`` (the wrapper makes its own clock domain from the port)."""
    async def process(ctx):
        while True:
            ctx.set(dut.aclk, 0)
            await ctx.delay(5e-9)
            ctx.set(dut.aclk, 1)
            await ctx.delay(5e-9)
    return process


def axis_sim(dut, x_frames, load_frames=(), *, watch=None, rng_seed=0, pause=0.3, until=4e-6):
    """Beats of ``x_frames`` ((tdata, tlast) each) and then ``load_frames`` ((tdata, tlast,
    tdest)) into the wrapper ``dut`` with random gaps, every output stream's beats taken with
    random stalls; ``watch(ctx)``: a process beside them. Returns {output: [(tdata, tlast)]}."""
    rng = np.random.default_rng(rng_seed)
    sim = Simulator(dut)
    outputs = {name: [] for name in dut.output_layouts}
    done = []

    async def put(ctx, prefix, beats, extra=()):
        for beat in beats:
            while rng.random() < pause:
                await ctx.tick()
            ctx.set(getattr(dut, f"{prefix}_tdata"), beat[0])
            ctx.set(getattr(dut, f"{prefix}_tlast"), beat[1])
            for name, value in zip(extra, beat[2:]):
                ctx.set(getattr(dut, f"{prefix}_{name}"), value)
            ctx.set(getattr(dut, f"{prefix}_tvalid"), 1)
            await ctx.tick().until(getattr(dut, f"{prefix}_tready"))
            ctx.set(getattr(dut, f"{prefix}_tvalid"), 0)

    async def drive(ctx):
        ctx.set(dut.aresetn, 1)
        await put(ctx, "s_axis_x", x_frames)
        await put(ctx, "s_axis_load", load_frames, ("tdest",))
        done.append(1)

    def take(name):
        async def process(ctx):
            port = [getattr(dut, f"m_axis_{name}_{s}") for s in ("tvalid", "tdata", "tlast")]
            while True:
                ready = int(rng.random() >= pause)
                ctx.set(getattr(dut, f"m_axis_{name}_tready"), ready)
                _, _, valid, tdata, tlast = await ctx.tick().sample(*port)
                if valid and ready:
                    outputs[name].append((tdata, tlast))
        return process

    sim.add_process(_clock(dut))
    for name in outputs:
        sim.add_process(take(name))
    if watch is not None:
        sim.add_process(watch)
    sim.add_testbench(drive)
    sim.run_until(until + 1e-8 * 8 * (len(x_frames) + len(load_frames)))
    assert done, "the wrapper stopped taking beats"
    dut._MustUse__silence = True
    return outputs


def _framing_run(width, x_frames, load_frames, *, rng_seed=0, pause=0.3):
    """:func:`axis_sim` around the stand-in core; returns the wrapper, the h beats and the load
    words the core took (port, payload), in order."""
    dut = AxisWrapper(StandIn(), width=width)
    core = dut.core
    got_loads = []

    async def watch_loads(ctx):
        async for _, _, wv, wp, sv, sp, av, ap in ctx.tick().sample(
                core.weights.valid, core.weights.payload, core.state.valid, core.state.payload,
                core.aux.valid, core.aux.payload):
            if av:
                got_loads.append(("aux", {"data": ap.data, "first": ap.first, "last": ap.last}))
            if wv:
                got_loads.append(("weights", {"data": wp.data, "first": wp.first, "last": wp.last}))
            if sv:
                got_loads.append(("state", {"h": sp.h, "c": sp.c, "first": sp.first, "last": sp.last}))

    out = axis_sim(dut, x_frames, load_frames, watch=watch_loads, rng_seed=rng_seed, pause=pause)
    return dut, out["h"], got_loads


def _x_beats(lay, steps):
    """(codes, tlast) per step -> beats (tdata, tlast): tlast on the step's last beat."""
    out = []
    for codes, last in steps:
        beats = lay.pack({"x": codes})
        out += [(b, int(last and k == len(beats) - 1)) for k, b in enumerate(beats)]
    return out


@pytest.mark.parametrize("width", [8, 16, 64])
def test_first_from_tlast_and_tlast_to_h(width):
    """Sequences of 1, 3 and 2 steps: ``first`` is 1 exactly on the step after a ``tlast`` (and
    the very first), and each h record's ``tlast`` is its step's."""
    lay = BeatLayout([Field("x", 3, 12, True)], width)
    rng = np.random.default_rng(width)
    lengths = [1, 3, 2]
    steps = [(list(rng.integers(-2048, 2047, 3)), k == n - 1) for n in lengths for k in range(n)]
    firsts = [k == 0 for n in lengths for k in range(n)]
    dut, got, _ = _framing_run(width, _x_beats(lay, steps), [])
    out = dut.output_layouts["h"]
    n = out.n_beats
    assert len(got) == n * len(steps)
    for s, ((codes, last), first) in enumerate(zip(steps, firsts)):
        record = got[s * n:(s + 1) * n]
        assert out.unpack([b for b, _ in record]) == {"h": [c + first for c in codes]}
        assert out.padding_ok([b for b, _ in record])
        assert [t for _, t in record] == [0] * (n - 1) + [int(last)]


def test_tlast_inside_a_step_drops_it_and_restarts():
    """A ``tlast`` on beat 1 of a 6-beat step: the partial step is dropped, ``error`` bit 1 is
    set, and the next step starts a sequence."""
    lay = BeatLayout([Field("x", 3, 12, True)], 8)
    good = _x_beats(lay, [([1, 2, 3], False)])
    broken = [(b, int(k == 1)) for k, b in enumerate(lay.pack({"x": [7, 7, 7]})[:2])]
    after = _x_beats(lay, [([4, 5, 6], True)])
    dut, got, _ = _framing_run(8, good + broken + after, [])
    out = dut.output_layouts["h"]
    records = [out.unpack([b for b, _ in got[k:k + 6]])["h"] for k in range(0, len(got), 6)]
    assert records == [[2, 3, 4], [5, 6, 7]]          # the second step has first = 1 again


def _load_beats(lay, words, tdest, *, tlast_at=None):
    """Beats of one load packet: each word's codes over its beats; tlast on the last beat (or
    on beat ``tlast_at``, ending the packet there)."""
    beats = [b for w in words for b in lay.pack(w)]
    end = len(beats) - 1 if tlast_at is None else tlast_at
    return [(b, int(k == end), tdest) for k, b in enumerate(beats[:end + 1])]


@pytest.mark.parametrize("width", [8, 32])
def test_loads_by_tdest_framed_by_tlast(width):
    """tdest 0 and 1 reach the weights and state ports with first on the packet's first word and
    last on its last; tdest 3 names no port: dropped, error; a tlast inside a word drops
    that word (error); tdest changing inside a packet sets error, the packet keeps its port."""
    dut = AxisWrapper(StandIn(), width=width)
    wl, sl = dut.load_layouts["weights"], dut.load_layouts["state"]
    _unused(dut)
    weights = [{"data": v} for v in (-1, 300, -32768, 5)]
    states = [{"h": -7, "c": 1 << 20}, {"h": 3, "c": -5}]
    frames = _load_beats(wl, weights, 0) + _load_beats(sl, states, 1)
    _, _, loads = _framing_run(width, [], frames)
    assert loads == [("weights", {**w, "first": int(k == 0), "last": int(k == 3)})
                     for k, w in enumerate(weights)] + \
                    [("state", {**s, "first": int(k == 0), "last": int(k == 1)})
                     for k, s in enumerate(states)]
    _, _, loads = _framing_run(width, [], _load_beats(wl, weights, 3) + _load_beats(wl, weights[:1], 0))
    assert loads == [("weights", {**weights[0], "first": 1, "last": 1})]
    # state words are 48 bits (16 + 24 in slots of 16 and 32), two beats or more: a tlast on
    # beat 0 ends the packet inside word 0, which is dropped
    assert sl.n_beats > 1
    cut = _load_beats(sl, states, 1, tlast_at=0)
    _, _, loads = _framing_run(width, [], cut + _load_beats(sl, states[:1], 1))
    assert loads == [("state", {**states[0], "first": 1, "last": 1})]
    changed = [(b, t, 1 if k else 0) for k, (b, t, _) in enumerate(_load_beats(wl, weights, 0))]
    _, _, loads = _framing_run(width, [], changed)
    assert [p for p, _ in loads] == ["weights"] * 4


def test_framing_errors_set_the_error_bit():
    """Error bit E (past the core's) after each framing fault, 0 after good traffic."""
    lay = BeatLayout([Field("x", 3, 12, True)], 8)
    wl = BeatLayout([Field("data", 1, 16, True, False)], 8)
    cases = {
        "good": (_x_beats(lay, [([1, 2, 3], True)]), _load_beats(wl, [{"data": 1}], 0)),
        "tlast inside a step": ([(lay.pack({"x": [1, 2, 3]})[0], 1)], []),
        "unknown tdest": ([], _load_beats(wl, [{"data": 1}], 3)),
        "tdest changed": ([], [(1, 0, 0), (0, 0, 1), (2, 0, 0), (0, 1, 0)]),
        "tlast inside a word": ([], [(1, 1, 0)]),
    }
    for name, (x, loads) in cases.items():
        dut = AxisWrapper(StandIn(), width=8)
        sim = Simulator(dut)
        seen = []

        async def drive(ctx, x=x, loads=loads, seen=seen):
            ctx.set(dut.aresetn, 1)
            ctx.set(dut.m_axis_h_tready, 1)
            for prefix, beats in (("s_axis_x", x), ("s_axis_load", loads)):
                for beat in beats:
                    ctx.set(getattr(dut, f"{prefix}_tdata"), beat[0])
                    ctx.set(getattr(dut, f"{prefix}_tlast"), beat[1])
                    if len(beat) > 2:
                        ctx.set(dut.s_axis_load_tdest, beat[2])
                    ctx.set(getattr(dut, f"{prefix}_tvalid"), 1)
                    await ctx.tick().until(getattr(dut, f"{prefix}_tready"))
                    ctx.set(getattr(dut, f"{prefix}_tvalid"), 0)
            await ctx.tick().repeat(30)
            seen.append(ctx.get(dut.error))

        sim.add_process(_clock(dut))
        sim.add_testbench(drive)
        sim.run_until(2e-6)
        dut._MustUse__silence = True
        assert seen == [0 if name == "good" else 0b10], name


@pytest.mark.parametrize("sizes, C, width, output_h", [([3, 4], 3, 16, True), ([2, 3, 2], 5, 8, False)])
def test_head_y_through_the_wrapper(sizes, C, width, output_h):
    """A cell or stack with the classifier head (rtl.head) behind the wrapper: every h and c
    record, every m_axis_y record (C logits, label) equal the golden run's; tlast on each
    sequence's last h record and on every y record; the stack without its h stream too."""
    rng = np.random.default_rng(len(sizes) + C)
    model = helpers_stack.random_stack(rng, sizes, n_classes=C)
    cfg = load_config()
    B, T = 3, 2
    golden = run_golden(cfg, model, rng.normal(0, 1.5, (B, T, sizes[0])))
    dut = AxisWrapper(build_design(cfg, model, lanes=2, output_h=output_h), width=width)
    assert set(dut.output_layouts) == ({"h", "y"} if output_h else {"y"})
    steps = [(list(x), t == T - 1) for seq in golden.layers[0].x_raw for t, x in enumerate(seq)]
    out = axis_sim(dut, _x_beats(dut.x_layout, steps), until=2e-5)
    y = dut.output_layouts["y"]
    records = [out["y"][k:k + y.n_beats] for k in range(0, len(out["y"]), y.n_beats)]
    assert [y.unpack([b for b, _ in r]) for r in records] == [
        {"logits": [int(v) for v in row], "label": int(np.argmax(np.asarray(row, dtype=object)))}
        for row in golden.logits_raw]
    assert all(y.padding_ok([b for b, _ in r]) and [t for _, t in r] == [0] * (y.n_beats - 1) + [1]
               for r in records)
    if output_h:
        h = dut.output_layouts["h"]
        records = [out["h"][k:k + h.n_beats] for k in range(0, len(out["h"]), h.n_beats)]
        last = golden.layers[-1].fixed
        assert [h.unpack([b for b, _ in r]) for r in records] == [
            {"h": [int(v) for v in hh], "c": [int(v) for v in cc]}
            for hh, cc in zip(last["h"].reshape(B * T, -1), last["c"].reshape(B * T, -1))]
        assert [t for r in records for _, t in r][h.n_beats - 1::h.n_beats] == [0, 1] * B


# -- python -m rtl --axis ----------------------------------------------------------------------
def _python_m(*args):
    return subprocess.run([sys.executable, "-m", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True)


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    """X=5, H=7 weights (a quick export)."""
    path = tmp_path_factory.mktemp("axis") / "small.npz"
    w = random_weights(np.random.default_rng(0), 5, 7)
    np.savez(path, weight_ih=w.weight_ih, weight_hh=w.weight_hh, bias=w.bias)
    return path


def test_rtl_cli_exports_axi_ports(small_model, tmp_path):
    out = tmp_path / "axis.v"
    p = _python_m("rtl", "--weights", small_model, "--lanes", "3", "--axis", "--axis-width", "64",
                  "--name", "lstm_axis", "--out", out)
    assert p.returncode == 0, p.stderr
    assert "tdata 64 bits" in p.stdout and "tdest 0 = weights, 1 = state" in p.stdout
    head = out.read_text().split("module lstm_axis(", 1)[1].split(";", 1)[0]
    ports = {name.strip() for name in head.rstrip(")").split(",")}
    assert ports == {"aclk", "aresetn", "error",
                     *(f"s_axis_x_{s}" for s in ("tdata", "tvalid", "tready", "tlast")),
                     *(f"m_axis_h_{s}" for s in ("tdata", "tvalid", "tready", "tlast")),
                     *(f"s_axis_load_{s}" for s in ("tdata", "tvalid", "tready", "tlast", "tdest"))}
    assert "input [63:0] s_axis_x_tdata;" in out.read_text()


@pytest.mark.parametrize("args, words", [
    (["--axis", "--axis-width", "48"], "--axis-width must be a power of two from 8 to 1024, not 48"),
    (["--axis-width", "64"], "--axis-width goes with --axis"),
    (["--axis", "--serial-output"], "word-serial output"),
])
def test_rtl_cli_axis_errors(small_model, tmp_path, args, words):
    p = _python_m("rtl", "--weights", small_model, *args, "--out", tmp_path / "x.v")
    assert p.returncode != 0 and "Traceback" not in p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], p.stderr


# -- cocotbext-axi runs against the golden model -----------------------------------------------
def _check(result):
    r = result.results
    assert result.passed, "\n".join(r["reports"][:5]) or f"see {result.log}"
    assert r["mismatches"] == 0 and r["missing"] == 0 and r["error"] == 0
    assert r["steps"] > 0 and r["steps"] + r["dropped"] == r["sent"]
    assert r["compared"] == r["steps"] * len(r["received_h"][0][2:])


def test_axis_icarus_gaps_stalls_loads_reset():
    """X=5, H=7, P=3 behind 32-bit AXI4-Stream ports on Icarus: cocotbext-axi sources with
    random tvalid gaps, a sink with random tready back-pressure, a reset after a sequence,
    two weight and two state packets on s_axis_load while steps run."""
    cfg = load_config()
    sc = full_scenario(cfg, random_weights(np.random.default_rng(0), 5, 7), 3, seed=5, steps=12,
                       gap=0.3, stall=0.3, loads=2)
    result = run_scenario(sc, "icarus", lanes=3, axis_width=32)
    _check(result)
    r = result.results
    assert r["loads"] == {"weights": 2, "state": 2} and r["held_by_loads"] > 0
    assert r["frames"] > 1               # one m_axis_h frame per sequence


@pytest.mark.slow
def test_axis_checker_catches_a_wrapper_without_tlast(monkeypatch):
    """Mutant: m_axis_h's tlast on every record (the step, not the sequence, ends the frame):
    the testbench reports it."""
    import rtl.axis
    original = rtl.axis.AxisWrapper._output

    def every_record(self, m, name, port, ends):
        original(self, m, name, port, 1)
    monkeypatch.setattr(rtl.axis.AxisWrapper, "_output", every_record)
    cfg = load_config()
    sc = Scenario(cfg, quantize_weights(random_weights(np.random.default_rng(0), 5, 7), cfg))
    sc.add_sequences(np.random.default_rng(1).integers(-4096, 4096, (2, 2, 5)))
    result = run_scenario(sc, "icarus", lanes=3, axis_width=32)
    assert not result.passed
    assert any("tlast inside the sequence" in line for line in result.results["reports"])


@pytest.mark.slow
@pytest.mark.parametrize("simulator, limit", [("verilator", None), ("icarus", 12)])
def test_axis_digits_heldout(simulator, limit):
    """The shipped digits model with its classifier head, loaded through s_axis_load into a
    blank design (and again halfway while steps run), on its held-out set (Verilator: all 540
    sequences), random gaps and back-pressure: every h, c, logit and label equal, and the
    accuracy of the labels on m_axis_y is the golden model's."""
    args = ["sim", "--axis", "--sim", simulator, "--gap", "0.2", "--stall", "0.2", "--json",
            "--no-progress"]
    p = _python_m(*args, *(["--limit", limit] if limit else []))
    assert p.returncode == 0, p.stderr[-2000:]
    r = json.loads(p.stdout)
    assert r["passed"] and r["mismatches"] == 0 and r["missing"] == 0
    assert r["steps"] == 8 * (limit or 540) and r["compared"] == 32 * r["steps"]
    assert r["loads"] == {"weights": 2, "state": 2}
    n = limit or 540
    assert r["labels_compared"] == n and r["logits_compared"] == 10 * n
    assert r["labels_mismatches"] == 0 and r["logits_mismatches"] == 0
    assert r["accuracy_rtl"] == r["accuracy_golden"]       # from the labels on m_axis_y


@pytest.mark.slow
@pytest.mark.parametrize("width", [8, 1024])
def test_axis_stack_verilator(width):
    """Two layers behind the wrapper (tdest 0..3), narrow and wide tdata, loads on both layers."""
    cfg = load_config()
    rng = np.random.default_rng(7)
    stack = LSTMStack([random_weights(rng, 5, 7), random_weights(rng, 7, 6)])
    sc = full_scenario(cfg, stack, [3, 2], seed=3, steps=24, gap=0.3, stall=0.3,
                       weight_layers=[0, 1], state_layers=[1, 0])
    result = run_scenario(sc, "verilator", axis_width=width)
    _check(result)
    assert set(result.results["loads"].values()) == {1}
