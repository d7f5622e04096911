"""Weight and state loads against x in Amaranth's simulator: loads are atomic packets, and
nothing is accepted while the design is in reset (docs/protocol.md)."""
import numpy as np
import pytest
from amaranth.hdl import ClockDomain, Elaboratable, Module
from amaranth.sim import Simulator

from model.cell import FixedLSTM
from model.config import load_config
from model.weights import quantize_weights
from rtl.top import LSTMCell
from rtl_helpers import random_weights, stream_get, stream_put


class _Harness(Elaboratable):
    """The cell in a sync domain whose reset the testbench drives."""

    def __init__(self, dut):
        self.dut, self.cd = dut, ClockDomain("sync")

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = self.cd
        m.submodules.dut = self.dut
        return m


def _simulate(harness, cycle, *testbenches):
    """Run ``testbenches``; ``cycle[0]`` counts clock edges."""
    sim = Simulator(harness)
    sim.add_clock(1e-8)

    async def clock(ctx):
        async for _ in ctx.tick():
            cycle[0] += 1

    sim.add_testbench(clock, background=True)
    for tb in testbenches:
        sim.add_testbench(tb)
    sim.run()


def _golden(cfg, qw, x_raw, first, h0=None, c0=None):
    out = FixedLSTM(cfg, qw).run(np.asarray(x_raw, np.int64)[None], h0, c0,
                                 np.asarray(first, bool)[None])
    return [[int(v) for v in out["h"][0, t]] for t in range(len(x_raw))]


def _sequence(dut, x, at, got, cycle, *, wait):
    """A sequence offered ``wait`` cycles in (``at["x"]``: the cycle its first step was taken)
    and a monitor that collects every h (into ``got``)."""
    async def steps(ctx):
        for _ in range(wait):
            await ctx.tick()
        for t in range(len(x)):
            await stream_put(ctx, dut.x, {"x": [int(v) for v in x[t]], "first": int(t == 0)})
            at.setdefault("x", cycle[0])

    async def outputs(ctx):
        for _ in range(len(x)):
            got.append([int(v) for v in (await stream_get(ctx, dut.h)).h])

    return steps, outputs


def _case(X, H, seed):
    rng = np.random.default_rng(seed)
    cfg = load_config()
    old = quantize_weights(random_weights(rng, X, H, scale=1.5), cfg)
    new = quantize_weights(random_weights(rng, X, H, scale=1.5), cfg)
    x = rng.integers(-3 << 12, 3 << 12, (3, X))
    return cfg, old, new, x


def test_weight_load_with_a_gap_is_atomic():
    """A one-cycle gap in weights.valid while an x waits: the x must wait for the last word
    (defect: x.ready only looked at weights.valid, so x slipped in after 7 of 48 words)."""
    cfg, old, new, x = _case(2, 2, 0)
    dut = LSTMCell(cfg, old, lanes=2)
    words = dut.geometry.load_words(new)
    at, got, cycle = {}, [], [0]

    async def weights(ctx):
        for k, w in enumerate(words):
            if k == 7:
                await ctx.tick()                      # valid low for one cycle
            await stream_put(ctx, dut.weights,
                             dict(data=w, first=int(k == 0), last=int(k == len(words) - 1)))
        at["last_word"] = cycle[0]

    steps, outputs = _sequence(dut, x, at, got, cycle, wait=1)   # once the load has started
    _simulate(_Harness(dut), cycle, weights, steps, outputs)
    assert at["x"] > at["last_word"], "an x was accepted in the middle of a weight load"
    assert got == _golden(cfg, new, x, [1, 0, 0])


def _load_then_steps(dut, new, x) -> list:
    """One weight packet of ``new`` from reset, then the steps of ``x`` (the first after the
    load); the results the design gave."""
    words = dut.geometry.load_words(new)
    at, got, cycle = {}, [], [0]

    async def weights(ctx):
        for k, w in enumerate(words):
            await stream_put(ctx, dut.weights,
                             dict(data=w, first=int(k == 0), last=int(k == len(words) - 1)))

    steps, outputs = _sequence(dut, x, at, got, cycle, wait=1)
    _simulate(_Harness(dut), cycle, weights, steps, outputs)
    return got


@pytest.mark.parametrize("lanes", [3, 11])
def test_weight_load_into_every_bias_bank(lanes):
    """H = 9: 36 rows, so the bias memory has two banks (rtl.mac.BIAS_BANK = 32 rows); a load
    of new weights must reach both (rows 32-35 in the second) and every row's bias must be the
    one of its own row (at P = 11 = X+H rows end on every cycle)."""
    from rtl.mac import BIAS_BANK
    cfg, old, new, x = _case(2, 9, 4)
    dut = LSTMCell(cfg, old, lanes=lanes)
    assert dut.geometry.n_rows > BIAS_BANK
    assert _load_then_steps(dut, new, x) == _golden(cfg, new, x, [1, 0, 0])
    assert not np.array_equal(new.bias, old.bias)


@pytest.mark.parametrize("X,H,lanes", [(4, 16, 1), (48, 32, 9)])
def test_weight_load_into_every_block_of_a_lane_memory(X, H, lanes):
    """A lane's memory of more than 1024 words spans several blocks (rtl.lanemem.BLOCK_WORDS),
    each with its own write enable decoded from the lane within its group and the address's
    block bits: 1,280 words per lane (two blocks, one lane), and 1,138 per lane over two lane
    groups (P = 9). A load must reach every block of every lane: a block it missed would keep
    the old weights, and the steps after it would differ from the golden model's."""
    from rtl.lanemem import BLOCK_WORDS
    cfg, old, new, x = _case(X, H, 6)
    dut = LSTMCell(cfg, old, lanes=lanes)
    assert dut.geometry.issue_cycles > BLOCK_WORDS
    assert _load_then_steps(dut, new, x[:2]) == _golden(cfg, new, x[:2], [1, 0])


@pytest.mark.parametrize("lanes", [1, 2, 5])
def test_weight_load_restarted_and_repeated(lanes):
    """The load counters' restart select: a packet cut short in its biases by a new word 0
    (the restart), a whole packet, the cut again, a whole packet, all back to back with no gap;
    the last one's weights are used, its word 0 (a weight, offered where the cut packet's next
    bias would be) included (P = 1 and 2 are the lane counter's edge cases: it wraps on every
    word, or after word 0)."""
    cfg, old, new, x = _case(2, 3, 7)
    other = quantize_weights(random_weights(np.random.default_rng(8), 2, 3, scale=1.5), cfg)
    dut = LSTMCell(cfg, old, lanes=lanes)
    cut = dut.geometry.load_words(other)[:dut.geometry.n_weights + 2]   # into the biases
    packets = [cut, dut.geometry.load_words(other), cut, dut.geometry.load_words(new)]
    at, got, cycle = {}, [], [0]

    async def weights(ctx):
        for n, words in enumerate(packets):
            for k, w in enumerate(words):
                last = int(n > 0 and k == len(words) - 1)
                await stream_put(ctx, dut.weights, dict(data=w, first=int(k == 0), last=last))
        at["error"] = ctx.get(dut.error)

    steps, outputs = _sequence(dut, x, at, got, cycle, wait=1)
    _simulate(_Harness(dut), cycle, weights, steps, outputs)
    assert at["error"] == 1, "the packet cut short by a restart did not set error"
    assert got == _golden(cfg, new, x, [1, 0, 0])


def test_state_load_is_atomic():
    """State word 0, then an x with ``first``, then state words 1..H-1: the step must start
    from the whole loaded state (defect: it started from a half-shifted one)."""
    cfg, w, _, x = _case(2, 3, 1)
    rng = np.random.default_rng(5)
    h0 = rng.integers(-1 << 14, 1 << 14, 3)
    c0 = rng.integers(-2 << 12, 2 << 12, 3)
    dut = LSTMCell(cfg, w, lanes=3)
    at, got, cycle = {}, [], [0]

    async def state(ctx):
        for u in range(3):
            if u == 1:
                for _ in range(20):                   # the producer pauses after word 0
                    await ctx.tick()
            await stream_put(ctx, dut.state, dict(h=int(h0[u]), c=int(c0[u]),
                                                   first=int(u == 0), last=int(u == 2)))
        at["last_word"] = cycle[0]

    steps, outputs = _sequence(dut, x, at, got, cycle, wait=2)   # after state word 0
    _simulate(_Harness(dut), cycle, state, steps, outputs)
    assert at["x"] > at["last_word"], "an x was accepted in the middle of a state load"
    assert got == _golden(cfg, w, x, [1, 0, 0], h0, c0)


def test_x_waits_one_cycle_after_weights_and_three_after_state():
    """docs/protocol.md: x's ready is low for the cycle after a weight packet's last word and
    for the three cycles after a state packet's (the state word is shifted in on the third edge
    after it is taken); an x offered right after the packet is taken on the first cycle it may
    be, and its step starts from the whole new weights and state (defect: x taken a cycle
    after a state word read the initial state before that word's shift)."""
    cfg, old, new, x = _case(2, 3, 6)
    rng = np.random.default_rng(7)
    h0 = rng.integers(-1 << 14, 1 << 14, 3)
    c0 = rng.integers(-2 << 12, 2 << 12, 3)
    dut = LSTMCell(cfg, old, lanes=3)
    taken_in, got = {}, []

    async def x_at_once(ctx, kind, t):
        """Offer x[t] (first) right after a packet; the cycle (1 = the one after the packet's
        last word was taken) in which it is taken."""
        ctx.set(dut.x.payload, {"x": [int(v) for v in x[t]], "first": 1})
        ctx.set(dut.x.valid, 1)
        n = 0
        while True:
            _, _, ready = await ctx.tick().sample(dut.x.ready)
            n += 1
            if ready:
                break
        ctx.set(dut.x.valid, 0)
        taken_in[kind] = n

    async def bench(ctx):
        for word in dut.geometry.load_packet(new):
            await stream_put(ctx, dut.weights, word)
        await x_at_once(ctx, "weights", 0)
        got.append([int(v) for v in (await stream_get(ctx, dut.h)).h])
        for u in range(3):
            await stream_put(ctx, dut.state, dict(h=int(h0[u]), c=int(c0[u]),
                                                   first=int(u == 0), last=int(u == 2)))
        await x_at_once(ctx, "state", 1)
        got.append([int(v) for v in (await stream_get(ctx, dut.h)).h])

    _simulate(_Harness(dut), [0], bench)
    assert taken_in == {"weights": 2, "state": 4}
    assert got[0] == _golden(cfg, new, x[:1], [1])[0]
    assert got[1] == _golden(cfg, new, x[1:2], [1], h0, c0)[0]


def test_nothing_is_accepted_during_reset():
    """Every input offered while rst is high: all readies read 0, and afterwards the design
    computes with the weights and state it had (defect: readies were 1, a weight word
    overwrote word 0 and an x was lost)."""
    cfg, w, _, x = _case(3, 2, 2)
    dut = LSTMCell(cfg, w, lanes=2)
    word0 = dut.geometry.load_words(w)[0]
    readies = []
    got = []
    h = _Harness(dut)

    async def bench(ctx):
        ctx.set(h.cd.rst, 1)
        ctx.set(dut.weights.payload, dict(data=-word0 - 1, first=1, last=0))
        ctx.set(dut.state.payload, dict(h=1000, c=-1000, first=1, last=0))
        ctx.set(dut.x.payload, {"x": [int(v) for v in x[0]], "first": 1})
        for port in (dut.weights, dut.state, dut.x):
            ctx.set(port.valid, 1)
        for _ in range(4):
            await ctx.tick()
            readies.append([ctx.get(p.ready) for p in (dut.weights, dut.state, dut.x)])
        for port in (dut.weights, dut.state, dut.x):
            ctx.set(port.valid, 0)
        ctx.set(h.cd.rst, 0)
        for t in range(len(x)):
            await stream_put(ctx, dut.x, {"x": [int(v) for v in x[t]], "first": int(t == 0)})

    async def outputs(ctx):
        for _ in range(len(x)):
            got.append([int(v) for v in (await stream_get(ctx, dut.h)).h])

    _simulate(h, [0], bench, outputs)
    assert readies == [[0, 0, 0]] * 4, "a ready was high during reset"
    assert got == _golden(cfg, w, x, [1, 0, 0])


# ---- malformed packets --------------------------------------------------------------------

def _script(dut, phases):
    """Run ``phases`` one after the other in one testbench; returns the h of every step.

    ``("weights" | "state", payloads)``: offer the words (a word outside a packet is dropped,
    so every word is taken); ``("blocked", x_payload, cycles)``: offer an x that must not be
    accepted for ``cycles`` cycles; ``("steps", x_raw, first)``: steps one at a time, each
    output taken; ``("reset", cycles)``; ``("error", value)``: the sticky error bit."""
    harness = _Harness(dut)
    got = []

    async def bench(ctx):
        for phase in phases:
            kind = phase[0]
            if kind in ("weights", "state"):
                port = getattr(dut, kind)
                for word in phase[1]:
                    await stream_put(ctx, port, word)
            elif kind == "blocked":
                ctx.set(dut.x.payload, phase[1])
                ctx.set(dut.x.valid, 1)
                for _ in range(phase[2]):
                    _, _, ready = await ctx.tick().sample(dut.x.ready)
                    assert not ready, "x accepted while the weights or state are invalid"
                ctx.set(dut.x.valid, 0)
            elif kind == "steps":
                for x, first in zip(phase[1], phase[2]):
                    await stream_put(ctx, dut.x, {"x": [int(v) for v in x], "first": int(first)})
                    got.append([int(v) for v in (await stream_get(ctx, dut.h)).h])
            elif kind == "reset":
                ctx.set(harness.cd.rst, 1)
                for _ in range(phase[1]):        # (.repeat() ends at a reset)
                    await ctx.tick()
                ctx.set(harness.cd.rst, 0)
            elif kind == "error":
                assert ctx.get(dut.error) == phase[1], f"error bit before phase {phase}"

    _simulate(harness, [0], bench)
    return got


def _packet(dut, qw, **change):
    """The weight packet of ``qw`` with some words' framing changed: {index: (first, last)}."""
    words = dut.geometry.load_packet(qw)
    for k, (first, last) in change.get("framing", {}).items():
        words[k] = dict(words[k], first=first, last=last)
    return words[:change.get("length", len(words))]


def test_word_outside_a_packet_is_dropped_and_sets_error():
    cfg, old, new, x = _case(3, 2, 3)
    dut = LSTMCell(cfg, old, lanes=2)
    stray = _packet(dut, new)[5:9]                    # no `first`: not a packet
    h0 = [{"h": 7, "c": 9, "first": 0, "last": 0}]
    got = _script(dut, [("error", 0), ("weights", stray), ("error", 1), ("state", h0),
                        ("steps", x, [1, 0, 0]), ("error", 1), ("reset", 2), ("error", 0)])
    assert got == _golden(cfg, old, x, [1, 0, 0])     # nothing changed


@pytest.mark.parametrize("how", ["last early", "last missing", "too short then restart"])
def test_refused_weight_packet_blocks_x_until_a_good_one(how):
    cfg, old, new, x = _case(2, 3, 4)
    dut = LSTMCell(cfg, old, lanes=4)
    N = dut.geometry.n_words
    bad = {"last early": _packet(dut, new, framing={20: (0, 1)}, length=21),
           "last missing": _packet(dut, new, framing={N - 1: (0, 0)}),
           "too short then restart": _packet(dut, new, length=30)}[how]
    x0 = {"x": [int(v) for v in x[0]], "first": 1}
    phases = [("weights", bad)]
    if how != "too short then restart":
        phases += [("error", 1)]
    phases += [("blocked", x0, 150), ("weights", _packet(dut, new)), ("error", 1),
               ("steps", x, [1, 0, 0])]
    got = _script(dut, phases)
    assert got == _golden(cfg, new, x, [1, 0, 0])


def test_reset_in_a_weight_packet_keeps_x_blocked():
    """A reset does not restore the memory: the half-written matrix stays invalid."""
    cfg, old, new, x = _case(2, 2, 5)
    dut = LSTMCell(cfg, old, lanes=3)
    x0 = {"x": [int(v) for v in x[0]], "first": 1}
    got = _script(dut, [("weights", _packet(dut, new, length=17)), ("reset", 3), ("error", 0),
                        ("blocked", x0, 100), ("weights", _packet(dut, new)), ("error", 0),
                        ("steps", x, [1, 0, 0])])
    assert got == _golden(cfg, new, x, [1, 0, 0])


def test_refused_state_packet_blocks_x_until_a_good_one_or_reset():
    cfg, w, _, x = _case(2, 3, 6)
    dut = LSTMCell(cfg, w, lanes=2)
    h0, c0 = [100, -200, 300], [-4000, 5000, 6000]
    good = dut.geometry.state_packet(h0, c0)
    early = [dict(good[0]), dict(good[1], last=1)]
    x0 = {"x": [int(v) for v in x[0]], "first": 1}
    got = _script(dut, [("state", early), ("error", 1), ("blocked", x0, 60), ("state", good),
                        ("steps", x[:1], [1]),
                        ("state", good[:2]), ("blocked", x0, 60), ("reset", 2),
                        ("steps", x[:1], [1])])
    assert got == [_golden(cfg, w, x[:1], [1], h0, c0)[0], _golden(cfg, w, x[:1], [1])[0]]


def test_step_without_first_after_reset_starts_from_zero():
    """Reset zeroes h_{t-1} and c_{t-1} (docs/protocol.md "Reset"): a step without `first`
    after reset computes from zero state, although the steps before the reset wrote c into the
    cell's c memory and a state packet loaded a nonzero initial state."""
    cfg, w, _, x = _case(2, 3, 11)
    dut = LSTMCell(cfg, w, lanes=2)
    h0, c0 = [100, -200, 300], [-4000, 5000, 6000]
    got = _script(dut, [("state", dut.geometry.state_packet(h0, c0)),
                        ("steps", x[:2], [1, 0]), ("reset", 2),
                        ("steps", x[2:], [0]), ("steps", x[:1], [1])])
    before = _golden(cfg, w, x[:2], [1, 0], h0, c0)
    assert before[1] != _golden(cfg, w, x[1:2], [1])[0]     # the state mattered
    assert got == before + _golden(cfg, w, x[2:], [1]) + _golden(cfg, w, x[:1], [1])
