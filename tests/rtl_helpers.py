"""Shared helpers for the Amaranth-simulator tests of rtl/ (stream put/get, random models)."""

import random

import numpy as np
from amaranth.sim import Simulator

from model.weights import LSTMWeights

__all__ = ["stream_put", "stream_get", "simulate", "random_weights", "run_steps", "assert_outputs"]


async def stream_put(ctx, port, payload, *, gap: float = 0.0, rng=None):
    """Offer ``payload`` on a stream port until it is taken; optionally idle first (valid low)."""
    while rng is not None and rng.random() < gap:
        await ctx.tick()
    ctx.set(port.payload, payload)
    ctx.set(port.valid, 1)
    await ctx.tick().until(port.ready)
    ctx.set(port.valid, 0)


async def stream_get(ctx, port, *, stall: float = 0.0, rng=None):
    """Take one payload from a stream port, holding ready low at random (``stall``)."""
    while True:
        ready = not (rng is not None and rng.random() < stall)
        ctx.set(port.ready, int(ready))
        _, _, valid, payload = await ctx.tick().sample(port.valid, port.payload)
        if ready and valid:
            ctx.set(port.ready, 0)
            return payload


def simulate(dut, *testbenches, background=(), vcd=None, clock=True):
    """Run testbenches on ``dut`` (a 100 MHz sync clock unless ``clock`` is False)."""
    sim = Simulator(dut)
    if clock:
        sim.add_clock(1e-8)
    for tb in background:
        sim.add_testbench(tb, background=True)
    for tb in testbenches:
        sim.add_testbench(tb)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()


def random_weights(rng: np.random.Generator, n_inputs: int, n_hidden: int, scale=None,
                   head_classes: int = 0) -> LSTMWeights:
    k = 1 / np.sqrt(n_hidden) if scale is None else scale
    H = n_hidden
    extra = {}
    if head_classes:
        extra = dict(head_weight=rng.uniform(-k, k, (head_classes, H)),
                     head_bias=rng.uniform(-k, k, head_classes))
    return LSTMWeights(rng.uniform(-k, k, (4 * H, n_inputs)), rng.uniform(-k, k, (4 * H, H)),
                       rng.uniform(-k, k, 4 * H), **extra)


def run_steps(dut, x_raw, first, *, gap=0.0, stall=0.0, seed=0, loads=(), last=None,
              background=()):
    """Send ``loads`` (``(port, words)`` pairs, in order), then one step per row of ``x_raw``
    with its ``first`` (and ``last``, default 0) bit, through a cell or a stack; take every
    output. Returns the outputs ((h codes, c codes) per step) and the cycles each step was
    accepted and delivered on. ``background``: more testbenches (e.g. monitors)."""
    last = np.zeros(len(x_raw), bool) if last is None else last
    rng = random.Random(seed)
    outputs, accepted, produced = [], [], []
    cycle = [0]

    async def clock(ctx):
        async for _ in ctx.tick():
            cycle[0] += 1

    async def driver(ctx):
        for port, words in loads:
            for word in words:
                await stream_put(ctx, port, word, gap=gap, rng=rng)
        for x, f, e in zip(x_raw, first, last):
            await stream_put(ctx, dut.x, {"x": [int(v) for v in x], "first": int(f), "last": int(e)},
                             gap=gap, rng=rng)
            accepted.append(cycle[0])

    async def monitor(ctx):
        for _ in range(len(x_raw)):
            p = await stream_get(ctx, dut.h, stall=stall, rng=rng)
            outputs.append(([int(v) for v in p.h], [int(v) for v in p.c]))
            produced.append(cycle[0])

    simulate(dut, driver, monitor, background=[clock, *background])
    return outputs, accepted, produced


def assert_outputs(outputs, h, c):
    """Every output's h and c codes equal the expected rows, in order."""
    assert len(outputs) == len(h)
    for k, (got_h, got_c) in enumerate(outputs):
        assert got_h == [int(v) for v in h[k]], f"h at step {k}"
        assert got_c == [int(v) for v in c[k]], f"c at step {k}"


def flatten_golden(golden):
    """A golden run's (B, T) sequences as one stream of steps: x codes, ``first`` (on each
    sequence's step 0), and the expected h and c codes, each (B*T, ...)."""
    B, T, H = golden.fixed["h"].shape
    first = np.zeros((B, T), bool)
    first[:, 0] = True
    return (golden.x_raw.reshape(B * T, -1), first.reshape(-1),
            golden.fixed["h"].reshape(B * T, H), golden.fixed["c"].reshape(B * T, H))
