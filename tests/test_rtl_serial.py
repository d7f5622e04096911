"""The word-serial output option (LSTMCell(serial_output=True)) against the golden model in
Amaranth's simulator: one unit per transfer, raw integers equal, first/last on units 0 and H-1,
steps back to back at cycles_per_step (= the parallel design's + H - 1)."""
import random

import numpy as np
import pytest
from amaranth.hdl import Elaboratable

import helpers_model
from model.config import load_config
from model.golden import run_golden
from rtl.top import LSTMCell
from rtl_helpers import random_weights, simulate, stream_get, stream_put


def _run_serial(dut, x_raw, first, *, gap=0.0, stall=0.0, seed=0):
    """Drive the steps; returns the words of each step and the accept cycles."""
    rng = random.Random(seed)
    H = dut.geometry.n_hidden
    words, accepted = [], []
    cycle = [0]

    async def clock(ctx):
        async for _ in ctx.tick():
            cycle[0] += 1

    async def driver(ctx):
        for x, f in zip(x_raw, first):
            await stream_put(ctx, dut.x, {"x": [int(v) for v in x], "first": int(f)}, gap=gap, rng=rng)
            accepted.append(cycle[0])

    async def monitor(ctx):
        for _ in range(len(x_raw) * H):
            p = await stream_get(ctx, dut.h, stall=stall, rng=rng)
            words.append({name: int(getattr(p, name)) for name in ("h", "c", "first", "last")})

    simulate(dut, driver, monitor, background=[clock])
    return [words[k:k + H] for k in range(0, len(words), H)], accepted


def _golden_steps(cfg, X, H, seed, B=2, T=3):
    rng = np.random.default_rng(seed)
    golden = run_golden(cfg, random_weights(rng, X, H, scale=1.5), rng.normal(0, 2, (B, T, X)))
    first = np.zeros((B, T), bool)
    first[:, 0] = True
    return (golden, golden.x_raw.reshape(B * T, -1), first.reshape(-1),
            golden.fixed["h"].reshape(B * T, H), golden.fixed["c"].reshape(B * T, H))


@pytest.mark.parametrize("X,H,lanes,seed,gap,stall", [
    (5, 7, 3, 0, 0.3, 0.4), (3, 4, 4, 1, 0.2, 0.6), (2, 3, 1, 2, 0.0, 0.0),
    (2, 3, 9, 3, 0.0, 0.0), (3, 4, 13, 4, 0.3, 0.4)])     # the last two: P > X+H
def test_serial_words_equal_golden(X, H, lanes, seed, gap, stall):
    cfg = helpers_model.random_config(np.random.default_rng(seed), X, H) if seed else load_config()
    golden, x_raw, first, h, c = _golden_steps(cfg, X, H, seed)
    dut = LSTMCell(cfg, golden.qweights, lanes=lanes, serial_output=True)
    steps, accepted = _run_serial(dut, x_raw, first, gap=gap, stall=stall, seed=seed)
    assert len(steps) == len(h)
    for k, step in enumerate(steps):
        assert [w["h"] for w in step] == [int(v) for v in h[k]], f"h at step {k}"
        assert [w["c"] for w in step] == [int(v) for v in c[k]], f"c at step {k}"
        assert [(w["first"], w["last"]) for w in step] == \
            [(1, int(H == 1))] + [(0, 0)] * (H - 2) + [(0, 1)] * (H > 1)
    if gap == stall == 0:
        parallel = dut.geometry.issue_cycles + LSTMCell.overhead_for(lanes, lanes > X + H)
        assert dut.cycles_per_step == parallel + H - 1
        assert LSTMCell.cycles_per_step_for(X, H, lanes, serial_output=True) == dut.cycles_per_step
        assert np.diff(accepted).tolist() == [dut.cycles_per_step] * (len(h) - 1)


def test_serial_layout_is_the_state_layout_and_no_c_drops_it():
    cfg = load_config()
    golden, *_ = _golden_steps(cfg, 2, 3, 0, B=1, T=1)
    dut = LSTMCell(cfg, golden.qweights, lanes=2, serial_output=True)
    assert dut.output_layout == dut.state_layout
    bare = LSTMCell(cfg, golden.qweights, lanes=2, serial_output=True, output_c=False)
    assert [name for name, _ in bare.output_layout] == ["h", "first", "last"]
    from amaranth.hdl import Fragment
    for d in (dut, bare):
        Fragment.get(d, None)


# -- the serial output's defects (issue 16, item 5): each test failed before the fix ----------

def _serial_cell(X=3, H=4, lanes=2, seed=3, B=1, T=2):
    cfg = load_config()
    golden, x_raw, first, h, c = _golden_steps(cfg, X, H, seed, B=B, T=T)
    return cfg, golden, x_raw, LSTMCell(cfg, golden.qweights, lanes=lanes, serial_output=True)


class _Loopback(Elaboratable):
    """The serial h stream wired straight into the ``state`` port (same layout), as
    docs/protocol.md says a result can be sent back as an initial-state packet."""

    def __init__(self, dut):
        self.dut = dut

    def elaborate(self, platform):
        from amaranth.hdl import Module
        from amaranth.lib import wiring
        m = Module()
        m.submodules.dut = self.dut
        wiring.connect(m, self.dut.h, self.dut.state)
        return m


async def _put_within(ctx, port, payload, cycles):
    """Offer ``payload``; True if it was taken within ``cycles`` edges."""
    ctx.set(port.payload, payload)
    ctx.set(port.valid, 1)
    for _ in range(cycles):
        _, _, ready = await ctx.tick().sample(port.ready)
        if ready:
            ctx.set(port.valid, 0)
            return True
    ctx.set(port.valid, 0)
    return False


def test_serial_output_wired_into_state_runs():
    """(a) h -> state: each step's result becomes the next `first` step's initial state."""
    from amaranth.sim import Simulator
    from model.cell import FixedLSTM
    cfg, golden, x_raw, dut = _serial_cell(T=3)
    H = dut.geometry.n_hidden
    words, taken = [], []

    async def watch(ctx):
        async for _, _, valid, ready, payload in ctx.tick().sample(dut.h.valid, dut.h.ready,
                                                                     dut.h.payload):
            if valid and ready:
                words.append((int(payload.h), int(payload.c)))

    async def driver(ctx):
        for x in x_raw:
            ok = await _put_within(ctx, dut.x, {"x": [int(v) for v in x], "first": 1},
                                   4 * dut.cycles_per_step)
            taken.append(ok)
            if not ok:
                return
        await ctx.tick().repeat(2 * dut.cycles_per_step)

    sim = Simulator(_Loopback(dut))
    sim.add_clock(1e-8)
    sim.add_testbench(watch, background=True)
    sim.add_testbench(driver)
    sim.run()
    assert all(taken), f"x not accepted (deadlock) after step {taken.index(False)}"
    cell = FixedLSTM(cfg, golden.qweights)
    h0 = c0 = np.zeros((1, H), np.int64)
    for k, x in enumerate(x_raw):
        out = cell.step(np.asarray(x, np.int64)[None], h0, c0)
        h0, c0 = out["h"], out["c"]
        got = words[k * H:(k + 1) * H]
        assert [w[0] for w in got] == h0[0].tolist(), f"h at step {k}"
        assert [w[1] for w in got] == c0[0].tolist(), f"c at step {k}"


def test_serial_result_waiting_does_not_block_loads():
    """(b) docs/protocol.md, IDLE: a result waiting for the consumer does not hold off loads."""
    from amaranth.sim import Simulator
    cfg, golden, x_raw, dut = _serial_cell(T=1)
    seen = {}

    async def tb(ctx):
        ctx.set(dut.h.ready, 0)
        await stream_put(ctx, dut.x, {"x": [int(v) for v in x_raw[0]], "first": 1})
        await ctx.tick().until(dut.h.valid)        # all units are in: no step in flight
        await ctx.tick().repeat(3)
        seen["weights_ready"] = ctx.get(dut.weights.ready)
        H = dut.geometry.n_hidden
        packet = dut.geometry.state_packet(np.arange(H), -np.arange(H))
        seen["state_taken"] = 0
        for word in packet:
            seen["state_taken"] += await _put_within(ctx, dut.state, word, 5)
        seen["h_still_waiting"] = ctx.get(dut.h.valid)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    assert seen["h_still_waiting"], "the result should still be waiting"
    assert seen["weights_ready"], "weights not ready while a result waits"
    assert seen["state_taken"] == 4, "state packet refused while a result waits"


def test_serial_word_cycles_match_the_closed_forms():
    """(c) word k of a step is taken CPS - H + k + 1 cycles after its x (the last on CPS,
    the edge the next x is accepted on), and a sequence of T steps takes
    cycles_per_sequence(T) = T * CPS cycles from its first accept to its last word, with the
    consumer always ready."""
    cfg, golden, x_raw, dut = _serial_cell(T=3)
    H, cps = dut.geometry.n_hidden, dut.cycles_per_step
    cycle, taken, accepted = [0], [], []

    async def clock(ctx):
        async for _ in ctx.tick():
            cycle[0] += 1

    async def driver(ctx):
        for k, x in enumerate(x_raw):
            await stream_put(ctx, dut.x, {"x": [int(v) for v in x], "first": int(k == 0)})
            accepted.append(cycle[0])

    async def monitor(ctx):
        for _ in range(len(x_raw) * H):
            await stream_get(ctx, dut.h)
            taken.append(cycle[0])

    simulate(dut, driver, monitor, background=[clock])
    for k, start in enumerate(accepted):
        assert taken[k * H:(k + 1) * H] == [start + cps - H + u + 1 for u in range(H)], f"step {k}"
    assert taken[-1] - accepted[0] == dut.cycles_per_sequence(len(x_raw))


def test_serial_loads_wait_for_the_first_word_behind_a_stalled_result():
    """The next step may run while the last step's words wait in the output buffer (the
    consumer stalled); its own first word then waits behind them, and the step counts as in
    flight (no load taken) until that word is offered (docs/protocol.md). Found by the formal
    `loads_between_steps` on `words`: loads were taken as soon as the word entered the buffer."""
    from amaranth.sim import Simulator
    cfg, golden, x_raw, dut = _serial_cell(H=3, T=2)
    H, cps = dut.geometry.n_hidden, dut.cycles_per_step
    seen = {"ready_while_queued": [], "after": None, "words": []}

    async def tb(ctx):
        ctx.set(dut.h.ready, 0)
        ctx.set(dut.weights.valid, 0)
        for k, x in enumerate(x_raw):
            await stream_put(ctx, dut.x, {"x": [int(v) for v in x], "first": int(k == 0)})
        for _ in range(cps + 20):              # step 2 done, its first word queued behind
            _, _, ready = await ctx.tick().sample(dut.weights.ready)
            seen["ready_while_queued"].append(ready)
        ctx.set(dut.h.ready, 1)
        for _ in range(H):                       # take step 1's words
            _, _, payload = await ctx.tick().sample(dut.h.payload)
            seen["words"].append(int(payload.h))
        ctx.set(dut.h.ready, 0)
        seen["after"] = ctx.get(dut.weights.ready)
        seen["first"] = (ctx.get(dut.h.valid), ctx.get(dut.h.payload.first))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    *_, h, _ = _golden_steps(cfg, 3, H, 3, B=1, T=2)
    assert seen["words"] == [int(v) for v in h[0]]
    assert not any(seen["ready_while_queued"]), "a load was taken while step 2 was in flight"
    assert seen["first"] == (1, 1), "step 2's first word should be offered now"
    assert seen["after"], "loads should be taken once step 2's first word is offered"
