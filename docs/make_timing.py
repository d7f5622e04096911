"""Draw docs/timing_step.png: the x and h streams of a real simulation, cycle by cycle.

    python docs/make_timing.py [--out docs/timing_step.png]

A tiny model (X=2, H=2, P=4 lanes, default formats; weights from a fixed seed) runs two steps of
one sequence in Amaranth's simulator. The testbench offers x_0 (with ``first``) and then x_1 at
once, so x_1 waits with ``valid`` high until the cell is ready again; it holds ``h.ready`` low
for a few cycles when h_0 appears, so h_0 waits too. Every sampled value is what the simulator
recorded just before each rising clock edge (a transfer is ``valid & ready`` there). The h
outputs are checked against the golden model before anything is drawn.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from amaranth.sim import Simulator  # noqa: E402

from model.config import load_config  # noqa: E402
from model.golden import run_golden  # noqa: E402
from model.weights import LSTMWeights  # noqa: E402
from rtl.top import LSTMCell  # noqa: E402

X, H, LANES, STALL = 2, 2, 4, 3
SIGNALS = ("x.valid", "x.ready", "x.first", "h.valid", "h.ready")


def simulate_two_steps():
    """Run the two steps; return the per-cycle samples, the outputs and the DUT."""
    rng = np.random.default_rng(7)
    k = 1 / np.sqrt(H)
    weights = LSTMWeights(rng.uniform(-k, k, (4 * H, X)), rng.uniform(-k, k, (4 * H, H)),
                          rng.uniform(-k, k, 4 * H))
    golden = run_golden(load_config(), weights, rng.uniform(-1, 1, (1, 2, X)))
    dut = LSTMCell(golden.config, golden.qweights, lanes=LANES)
    samples, outputs = [], []

    async def sampler(ctx):
        ports = (dut.x.valid, dut.x.ready, dut.x.payload.first, dut.h.valid, dut.h.ready)
        async for _, _, *values in ctx.tick().sample(*ports):
            samples.append([int(v) for v in values])

    async def driver(ctx):
        await ctx.tick().repeat(2)              # two idle cycles after reset
        for t in range(2):
            ctx.set(dut.x.payload, {"x": [int(v) for v in golden.x_raw[0, t]], "first": int(t == 0)})
            ctx.set(dut.x.valid, 1)
            await ctx.tick().until(dut.x.ready)
        ctx.set(dut.x.valid, 0)

    async def monitor(ctx):
        for t in range(2):
            if t == 0:                           # h_0 arrives while the sink is not ready
                await ctx.tick().until(dut.h.valid)
                await ctx.tick().repeat(STALL)
            ctx.set(dut.h.ready, 1)
            payload, = await ctx.tick().sample(dut.h.payload).until(dut.h.valid)
            outputs.append([int(v) for v in payload.h])
            ctx.set(dut.h.ready, 0)
        await ctx.tick().repeat(3)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(sampler, background=True)
    sim.add_testbench(driver)
    sim.add_testbench(monitor)
    sim.run()
    expected = [[int(v) for v in golden.fixed["h"][0, t]] for t in range(2)]
    if outputs != expected:
        raise SystemExit(f"error: RTL h {outputs} differs from the golden model's {expected}")
    return np.array(samples), dut


def draw(samples: np.ndarray, dut: LSTMCell, out: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(samples)
    rows = ["clk", *SIGNALS]
    fig, ax = plt.subplots(figsize=(14, 0.55 * len(rows) + 1.4))
    for r, name in enumerate(rows):
        y0 = (len(rows) - 1 - r) * 1.5
        if name == "clk":
            t = np.arange(-0.5, n, 0.5)          # rising edge k at k + 0.5
            v = (np.arange(len(t)) % 2 == 0).astype(float)
            ax.step(t, y0 + v, where="post", color="0.4", lw=0.8)
        else:
            v = samples[:, SIGNALS.index(name)]
            # a sample is the value before edge k: draw it over the cycle that ends at edge k
            ax.step(np.arange(n + 1) - 0.5, y0 + np.append(v, v[-1]), where="post",
                    color="tab:blue", lw=1.4)
        ax.text(-2.5, y0 + 0.4, name, ha="right", va="center", family="monospace")
    xv, xr, hv, hr = (samples[:, SIGNALS.index(s)]
                      for s in ("x.valid", "x.ready", "h.valid", "h.ready"))
    accepts, takes = np.flatnonzero(xv & xr), np.flatnonzero(hv & hr)
    top = len(rows) * 1.5
    for j, k in enumerate(accepts):           # a transfer happens on the edge after sample k
        ax.axvline(k + 0.5, color="tab:green", lw=1, ls="--")
        ax.text(k + 0.6, top + 0.5, f"x_{j} accepted", color="tab:green", fontsize=8)
    for j, k in enumerate(takes):
        ax.axvline(k + 0.5, color="tab:red", lw=1, ls="--")
        ax.text(k + 0.6, top + 0.05, f"h_{j} taken", color="tab:red", fontsize=8)
    valid_rise = np.flatnonzero(np.diff(hv) == 1) + 1
    title = (f"one step of lstm_cell, X={X} H={H} P={LANES}: cycles_per_step = "
             f"ceil(4H(X+H)/P) + {dut.overhead} = {dut.cycles_per_step}")
    if len(accepts) and len(valid_rise):
        title += f"; measured: h_0 valid {valid_rise[0] - accepts[0]} cycles after x_0 is accepted"
    ax.set_title(title + f"\n(Amaranth simulation; h_0 waits {STALL + 1} cycles for h.ready; "
                 "values sampled before each rising edge)", fontsize=10)
    ax.set_xlim(-3, n)
    ax.set_ylim(-0.5, len(rows) * 1.5 + 1.0)
    ax.set_yticks([])
    ax.set_xlabel("clock cycle")
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "timing_step.png")
    args = ap.parse_args(argv)
    samples, dut = simulate_two_steps()
    draw(samples, dut, args.out)
    print(f"wrote {args.out}: {len(samples)} cycles")
    return 0


if __name__ == "__main__":
    sys.exit(main())
