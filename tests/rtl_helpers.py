"""Shared helpers for the Amaranth-simulator tests of rtl/ (stream put/get, random models)."""

import numpy as np
from amaranth.sim import Simulator

from model.weights import LSTMWeights

__all__ = ["stream_put", "stream_get", "simulate", "random_weights"]


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
