"""cocotb testbench for the exported LSTM cell: Driver, Monitor, Model, Checker (README.md, "Verification").

The scenario (JSON, from :mod:`sim.scenario`) comes in ``LSTM_SCENARIO``; results go to
``LSTM_RESULTS`` (JSON) and, every few hundred steps, progress to ``LSTM_PROGRESS``.
Exactness is the contract: every raw integer of every h_t and c_t is compared.
"""
import json
import os
import random
from collections import deque

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.simtime import get_sim_time
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly, RisingEdge

from model.cell import FixedLSTM
from model.fixed import to_float
from rtl.top import stream_layouts
from sim.ports import Packer
from sim.scenario import Scenario, qweights_from_dict

PERIOD_NS = 10
MAX_REPORTED = 20


def cycle_now() -> int:
    return int(get_sim_time("ns")) // PERIOD_NS


class Model:
    """The golden model, stepped in the order the driver hands steps to the design."""

    def __init__(self, scenario: Scenario):
        self.config = scenario.config
        self.cell = FixedLSTM(self.config, scenario.weights)
        self.reset()

    def reset(self):
        H = self.cell.n_hidden
        self.h0 = self.c0 = self.h = self.c = np.zeros(H, np.int64)

    def load_weights(self, weights):
        self.cell = FixedLSTM(self.config, weights)

    def load_state(self, h0, c0):
        self.h0, self.c0 = np.asarray(h0, np.int64), np.asarray(c0, np.int64)

    def step(self, x, first):
        if first:
            self.h, self.c = self.h0, self.c0
        out = self.cell.step(np.asarray(x, np.int64)[None], self.h[None], self.c[None])
        self.h, self.c = out["h"][0], out["c"][0]
        return self.h, self.c


class Checker:
    """In-order scoreboard: expected outputs queue up as steps are sent; outputs pop them."""

    def __init__(self, config, seed):
        self.config, self.seed = config, seed
        self.expected = deque()
        self.compared = self.compared_c = self.steps = self.dropped = 0
        self.errors = 0
        self.reports = []
        self.received_h = []     # (sequence, step, h codes) for accuracy downstream

    def expect(self, tag, h, c):
        self.expected.append((tag, h, c))

    def drop_pending(self):
        """A reset: outputs not yet delivered are lost (counted, so every step is accounted for)."""
        self.dropped += len(self.expected)
        self.expected.clear()

    def _mismatch(self, tag, unit, name, want, got):
        self.errors += 1
        if len(self.reports) < MAX_REPORTED:
            fmt = self.config.fmt(name)
            self.reports.append(
                f"sequence {tag[0]} step {tag[1]} unit {unit} {name}: expected {want} "
                f"({to_float(want, fmt):.6g}), got {got} ({to_float(got, fmt):.6g}); "
                f"reproduce with SEED={self.seed}")

    def observe(self, h, c):
        if not self.expected:
            self.errors += 1
            self.reports.append(f"unexpected output h={h}: no step is outstanding")
            return
        tag, want_h, want_c = self.expected.popleft()
        self.steps += 1
        for unit, (w, g) in enumerate(zip(want_h, h)):
            if int(w) != g:
                self._mismatch(tag, unit, "h", int(w), g)
        self.compared += len(h)
        if c is not None:
            for unit, (w, g) in enumerate(zip(want_c, c)):
                if int(w) != g:
                    self._mismatch(tag, unit, "c", int(w), g)
            self.compared_c += len(c)
        self.received_h.append([tag[0], tag[1], *h])


class Testbench:
    def __init__(self, dut, scenario: Scenario):
        self.dut, self.scenario = dut, scenario
        # one generator per coroutine: simulators may run the driver and the monitor in either
        # order within a time step, and a shared generator would then hand out different gaps
        self.gaps = random.Random(f"{scenario.seed}/driver")
        self.stalls = random.Random(f"{scenario.seed}/monitor")
        step, out, state = stream_layouts(scenario.config, scenario.n_inputs, scenario.n_hidden,
                                          scenario.output_c)
        self.pack_step, self.pack_out, self.pack_state = Packer(step), Packer(out), Packer(state)
        self.model = Model(scenario)
        self.checker = Checker(scenario.config, scenario.seed)
        self.accepted = []       # cycle of each accepted step
        self.outputs = []        # cycle of each delivered output
        self.in_reset = False
        self.sent = 0
        self.progress_path = os.environ.get("LSTM_PROGRESS")
        self.progress_every = max(1, min(200, scenario.n_steps // 100))

    # -- driver ---------------------------------------------------------------------------------
    async def put(self, prefix, word):
        """Offer one word on a stream until the design takes it (valid never waits on ready)."""
        dut = self.dut
        valid, ready = getattr(dut, f"{prefix}__valid"), getattr(dut, f"{prefix}__ready")
        if self.scenario.gap and self.gaps.random() < self.scenario.gap:
            await ClockCycles(dut.clk, self.gaps.randint(1, 8))
        getattr(dut, f"{prefix}__payload").value = word
        valid.value = 1
        await ReadOnly()
        if not ready.value:
            await RisingEdge(ready)
        await RisingEdge(dut.clk)             # transfer on this edge: valid and ready were high
        valid.value = 0

    async def run_steps(self, op):
        for x, first, seq, step in zip(op["x"], op["first"], op["sequence"], op["step"]):
            h, c = self.model.step(x, first)
            self.checker.expect((seq, step), h, c)
            await self.put("x", self.pack_step.pack({"x": x, "first": first}))
            self.accepted.append(cycle_now())
            self.sent += 1
            if self.progress_path and self.sent % self.progress_every == 0:
                with open(self.progress_path, "w") as f:
                    f.write(f"{self.sent} {self.scenario.n_steps}\n")

    async def run_ops(self):
        for op in self.scenario.ops:
            kind = op["op"]
            if kind == "steps":
                await self.run_steps(op)
            elif kind == "weights":
                for k, word in enumerate(op["words"]):
                    await self.put("weights", self.pack_weights(word, k == 0))
                self.model.load_weights(qweights_from_dict(op["weights"]))
            elif kind == "state":
                for h, c in zip(op["h0"], op["c0"]):
                    await self.put("state", self.pack_state.pack({"h": h, "c": c}))
                self.model.load_state(op["h0"], op["c0"])
            elif kind == "reset":
                await ClockCycles(self.dut.clk, op["after"])
                await FallingEdge(self.dut.clk)   # between edges: no transfer is half-counted
                await self.reset(op["length"])
            else:
                raise ValueError(f"unknown scenario op {kind!r}")

    def pack_weights(self, word, first):
        width = len(self.dut.weights__payload) - 1
        return (int(word) & ((1 << width) - 1)) | (int(first) << width)

    async def reset(self, length):
        self.in_reset = True
        self.dut.rst.value = 1
        self.checker.drop_pending()
        self.model.reset()
        await ClockCycles(self.dut.clk, length)
        await FallingEdge(self.dut.clk)
        self.dut.rst.value = 0
        self.in_reset = False

    # -- monitor --------------------------------------------------------------------------------
    async def monitor(self):
        dut = self.dut
        while True:
            if self.scenario.stall and self.stalls.random() < self.scenario.stall:
                dut.h__ready.value = 0
                await ClockCycles(dut.clk, self.stalls.randint(1, 12))
            dut.h__ready.value = 1
            await ReadOnly()
            if not dut.h__valid.value:
                await RisingEdge(dut.h__valid)
            await RisingEdge(dut.clk)
            # values read now are the ones the edge sampled
            if dut.rst.value or not (dut.h__valid.value and dut.h__ready.value):
                continue
            out = self.pack_out.unpack(dut.h__payload.value.to_unsigned())
            self.outputs.append(cycle_now())
            self.checker.observe(out["h"], out.get("c"))

    # -- the test -------------------------------------------------------------------------------
    async def run(self):
        dut = self.dut
        Clock(dut.clk, PERIOD_NS, unit="ns").start()
        for port in ("x", "weights", "state"):
            getattr(dut, f"{port}__valid").value = 0
        dut.h__ready.value = 0
        dut.rst.value = 1
        await ClockCycles(dut.clk, 3)
        await FallingEdge(dut.clk)
        dut.rst.value = 0
        self.start_cycle = cycle_now()
        monitor = cocotb.start_soon(self.monitor())
        await self.run_ops()
        # wait for what is still in flight: a step takes a known, bounded time
        budget = 4 * (len(self.checker.expected) + 2) * 10_000
        for _ in range(budget // 100):
            if not self.checker.expected:
                break
            await ClockCycles(dut.clk, 100)
        await ClockCycles(dut.clk, 2)
        monitor.cancel()

    def results(self) -> dict:
        ch = self.checker
        steps = len(self.accepted)
        cycles = (self.outputs[-1] - self.start_cycle) if self.outputs else 0
        span = (self.outputs[-1] - self.accepted[0]) if self.outputs and self.accepted else 0
        return {
            "compared": ch.compared, "compared_c": ch.compared_c, "steps": ch.steps,
            "sent": steps, "dropped": ch.dropped, "missing": len(ch.expected), "mismatches": ch.errors,
            "reports": ch.reports, "cycles": cycles,
            "cycles_per_step": span / ch.steps if ch.steps else None,
            "seed": self.scenario.seed, "received_h": ch.received_h,
        }


@cocotb.test()
async def lstm_scenario(dut):
    """Run the scenario; every expected output must arrive exactly once and match."""
    scenario = Scenario.load(os.environ["LSTM_SCENARIO"])
    tb = Testbench(dut, scenario)
    await tb.run()
    results = tb.results()
    with open(os.environ["LSTM_RESULTS"], "w") as f:
        json.dump(results, f)
    for line in results["reports"]:
        dut._log.error(line)
    assert results["missing"] == 0, f"{results['missing']} expected outputs never arrived"
    assert results["steps"] + results["dropped"] == results["sent"], "outputs unaccounted for"
    assert results["compared"] > 0, "nothing was compared"
    assert results["mismatches"] == 0, f"{results['mismatches']} mismatches (first: {results['reports'][:1]})"
