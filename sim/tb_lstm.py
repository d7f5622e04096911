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
from cocotb.queue import Queue
from cocotb.triggers import ClockCycles, Event, FallingEdge, First, ReadOnly, RisingEdge

from model.cell import FixedLSTM
from model.fixed import to_float
from rtl.geometry import Geometry, load_layout
from rtl.top import stream_layouts
from sim.ports import Packer
from sim.protocol import LoadProtocol, ProtocolViolation
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

    def violation(self, message):
        """The design broke the stream or load protocol (counted as a mismatch)."""
        self.errors += 1
        if len(self.reports) < MAX_REPORTED:
            self.reports.append(f"cycle {cycle_now()}: {message}; reproduce with SEED={self.seed}")

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
    """Drives the scenario's ops, one coroutine per input port (ops on different ports run
    concurrently when the scenario says ``background``), and follows the design's transfers
    in the order it accepted them: the load protocol commits packets, the golden model loads
    what they carried and steps on each accepted x."""

    PORTS = ("x", "weights", "state")

    def __init__(self, dut, scenario: Scenario):
        self.dut, self.scenario = dut, scenario
        # one generator per coroutine: simulators may run the coroutines in either order within
        # a time step, and a shared generator would then hand out different gaps
        self.gaps = {port: random.Random(f"{scenario.seed}/{port}") for port in self.PORTS}
        self.stalls = random.Random(f"{scenario.seed}/monitor")
        cfg = scenario.config
        step, out, state = stream_layouts(cfg, scenario.n_inputs, scenario.n_hidden,
                                          scenario.output_c)
        self.pack = {"x": Packer(step), "weights": Packer(load_layout(cfg)), "state": Packer(state)}
        self.pack_out = Packer(out)
        # the load order does not depend on the lanes: any valid P names the same words
        self.geometry = Geometry(cfg, scenario.weights, 1)
        self.protocol = LoadProtocol(self.geometry.n_words, scenario.n_hidden)
        self.model = Model(scenario)
        self.checker = Checker(cfg, scenario.seed)
        self.accepted = []       # cycle of each accepted step
        self.outputs = []        # cycle of each delivered output
        self.loads = {"weights": 0, "state": 0}    # packets committed
        self.held_by_loads = 0   # packets committed while an x was waiting (the x had to wait)
        self.x_waiting = False
        self.sent = 0
        self.queues = {port: Queue() for port in self.PORTS}
        self.pending = []        # completion events of the ops handed to the port coroutines
        self.progress_path = os.environ.get("LSTM_PROGRESS")
        self.progress_every = max(1, min(200, scenario.n_steps // 100))

    # -- driver ---------------------------------------------------------------------------------
    async def put(self, port, word):
        """Offer one word on a stream until the design takes it (valid never waits on ready).

        Ready is combinational (it depends on the other ports' valids and on ``rst``), so it is
        judged in the read-only phase, once every write of the time step has settled."""
        dut = self.dut
        valid, ready = getattr(dut, f"{port}__valid"), getattr(dut, f"{port}__ready")
        gaps = self.gaps[port]
        if self.scenario.gap and gaps.random() < self.scenario.gap:
            await ClockCycles(dut.clk, gaps.randint(1, 8))
        getattr(dut, f"{port}__payload").value = self.pack[port].pack(word)
        valid.value = 1
        while True:
            await ReadOnly()
            if ready.value:
                break
            await RisingEdge(ready)
        await RisingEdge(dut.clk)             # transfer on this edge: valid and ready were high
        valid.value = 0
        self.transfer(port, word)

    def transfer(self, port, word):
        """The design accepted ``word`` on ``port`` (at most one input transfer per cycle:
        called in the order of the design's edges)."""
        if self.dut.rst.value:
            self.checker.violation(f"a {port} word was accepted during reset")
        if port == "x":
            if not self.protocol.x_allowed():
                self.checker.violation(f"an x was accepted while {self.protocol.blocked_because()}")
            return
        try:
            packet = self.protocol.word(port, word)
        except ProtocolViolation as e:
            self.checker.violation(str(e))
            return
        if packet is None:
            return
        self.loads[port] += 1
        self.held_by_loads += self.x_waiting
        if port == "weights":
            self.model.load_weights(self.geometry.weights_from_words(w["data"] for w in packet))
        else:
            self.model.load_state([w["h"] for w in packet], [w["c"] for w in packet])

    async def run_steps(self, op):
        for x, first, seq, step in zip(op["x"], op["first"], op["sequence"], op["step"]):
            self.x_waiting = True
            await self.put("x", {"x": x, "first": first})
            self.x_waiting = False
            h, c = self.model.step(x, first)
            self.checker.expect((seq, step), h, c)
            self.accepted.append(cycle_now())
            self.sent += 1
            if self.progress_path and self.sent % self.progress_every == 0:
                with open(self.progress_path, "w") as f:
                    f.write(f"{self.sent} {self.scenario.n_steps}\n")

    async def run_packet(self, port, op):
        if op.get("after"):
            await ClockCycles(self.dut.clk, op["after"])
        for word in op["packet"]:
            await self.put(port, word)

    async def port_worker(self, port):
        """Runs the ops of one port in order."""
        while True:
            op, done = await self.queues[port].get()
            if port == "x":
                await self.run_steps(op)
            else:
                await self.run_packet(port, op)
            done.set()

    async def join(self):
        for done in self.pending:
            await done.wait()
        self.pending.clear()

    async def run_ops(self):
        for op in self.scenario.ops:
            kind = op["op"]
            if kind in ("steps", "weights", "state"):
                done = Event()
                self.pending.append(done)
                self.queues["x" if kind == "steps" else kind].put_nowait((op, done))
                if not op.get("background"):
                    await done.wait()
            elif kind == "reset":
                await self.join()
                await ClockCycles(self.dut.clk, op["after"])
                await FallingEdge(self.dut.clk)   # between edges: no transfer is half-counted
                release = cocotb.start_soon(self.reset(op["length"]))
                if not op.get("offer"):           # else: what follows is offered during reset
                    await release
            elif kind == "believe":
                self.model.load_weights(qweights_from_dict(op["weights"]))
            else:
                raise ValueError(f"unknown scenario op {kind!r}")
        await self.join()

    async def reset(self, length):
        self.dut.rst.value = 1
        self.checker.drop_pending()
        self.model.reset()
        self.protocol.reset()
        await ClockCycles(self.dut.clk, length)
        await FallingEdge(self.dut.clk)
        self.dut.rst.value = 0

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
        for port in self.PORTS:
            getattr(dut, f"{port}__valid").value = 0
        dut.h__ready.value = 0
        dut.rst.value = 1
        await ClockCycles(dut.clk, 3)
        await FallingEdge(dut.clk)
        dut.rst.value = 0
        self.start_cycle = cycle_now()
        monitor = cocotb.start_soon(self.monitor())
        workers = [cocotb.start_soon(self.port_worker(port)) for port in self.PORTS]
        ops = cocotb.start_soon(self.run_ops())
        await First(ops, ClockCycles(dut.clk, self.budget()))
        if not ops.done():
            ops.cancel()
            self.checker.violation(f"the design stopped accepting inputs ({self.sent} of "
                                   f"{self.scenario.n_steps} steps sent)")
        # wait for what is still in flight: a step takes a known, bounded time
        budget = 4 * (len(self.checker.expected) + 2) * 10_000
        for _ in range(budget // 100):
            if not self.checker.expected:
                break
            await ClockCycles(dut.clk, 100)
        await ClockCycles(dut.clk, 2)
        monitor.cancel()
        for w in workers:
            w.cancel()
        if int(dut.error.value) != self.protocol.error:
            self.checker.violation(f"error output is {int(dut.error.value)}, the protocol says "
                                   f"{int(self.protocol.error)}")

    def budget(self) -> int:
        """Generous cycles for all ops (a stuck design ends the run instead of hanging it)."""
        step = self.geometry.n_weights + 100
        words = sum(len(op.get("packet", ())) for op in self.scenario.ops)
        waits = sum(op.get("after", 0) + op.get("length", 0) for op in self.scenario.ops)
        return 5 * (self.scenario.n_steps * step + 20 * words + waits) + 10_000

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
            "error": int(self.protocol.error), "loads": dict(self.loads),
            "held_by_loads": self.held_by_loads,
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
