"""The logic lanes' radix-4 Booth product (rtl.pipeline.booth_product) against Python's
integer product: every pair of codes at small widths, random pairs at 16 x 16 bits."""
import itertools

import numpy as np
import pytest
from amaranth.hdl import Module, Signal, signed
from amaranth.sim import Simulator

from rtl.pipeline import booth_levels, booth_product


def _products(wa, wb, pairs):
    m = Module()
    a, neg_a = Signal(signed(wa)), Signal(signed(wa + 1))
    b = Signal(signed(wb))
    out = booth_product(m, a, neg_a, b, "p")
    assert out.shape() == signed(wa + wb)
    levels = booth_levels(wb)
    got = []

    async def bench(ctx):
        for k in range(len(pairs) + levels):
            if k < len(pairs):
                ctx.set(a, pairs[k][0])
                ctx.set(neg_a, -pairs[k][0])
                ctx.set(b, pairs[k][1])
            await ctx.tick()
            if k >= levels - 1 and len(got) < len(pairs):
                got.append(ctx.get(out))

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return got


@pytest.mark.parametrize("wa,wb", [(3, 1), (3, 2), (4, 3), (3, 4), (2, 5), (4, 6), (5, 8)])
def test_every_pair_small_widths(wa, wb):
    pairs = list(itertools.product(range(-2 ** (wa - 1), 2 ** (wa - 1)),
                                   range(-2 ** (wb - 1), 2 ** (wb - 1))))
    assert _products(wa, wb, pairs) == [x * y for x, y in pairs]


def test_random_and_extreme_16_bit():
    rng = np.random.default_rng(3)
    lo, hi = -2 ** 15, 2 ** 15 - 1
    pairs = [(lo, lo), (lo, hi), (hi, lo), (hi, hi), (0, lo), (lo, 0), (-1, -1)]
    pairs += [(int(x), int(y)) for x, y in rng.integers(lo, hi + 1, (400, 2))]
    assert _products(16, 16, pairs) == [x * y for x, y in pairs]
    assert booth_levels(16) == 3 and booth_levels(12) == 3 and booth_levels(18) == 4
