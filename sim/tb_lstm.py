"""cocotb testbench for the exported LSTM cell or stack: Driver and Monitors here, the golden
model and Checker in :mod:`sim.scoreboard` (README.md, "Verification").

The scenario (JSON, from :mod:`sim.scenario`) comes in ``LSTM_SCENARIO``; results go to
``LSTM_RESULTS`` (JSON) and, every few hundred steps, progress to ``LSTM_PROGRESS``.
Exactness is the contract: every raw integer of every h_t and c_t is compared.

A stack of L layers (:class:`rtl.stack.StackedLSTM`) is followed layer by layer: the golden
model steps layer k when the design's layer k accepts a step (its ``x`` handshake, read through
the hierarchy as ``dut.layer{k}.x__*``), with the weights and initial state layer k holds at
that moment. So loads on any layer may overlap steps anywhere in the pipeline and every output
is still compared with exactly the operands its steps used. The x codes each deeper layer takes
are compared too (the layer link's cast of the layer below's h, and ``first``).
"""
import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.queue import Queue
from cocotb.triggers import ClockCycles, Event, FallingEdge, First, ReadOnly, RisingEdge

from rtl.geometry import Geometry, load_layout
from rtl.top import stream_layouts
from sim.ports import Packer
from sim.protocol import LoadProtocol, ProtocolViolation
from sim.scenario import Scenario, qweights_from_dict
from sim.scoreboard import PERIOD_NS, Checker, StackModel, cycle_now


class Testbench:
    """Drives the scenario's ops, one coroutine per input port (ops on different ports run
    concurrently when the scenario says ``background``), and follows the design's transfers
    in the order it accepted them: the load protocol commits packets, the golden model loads
    what they carried and steps on each accepted x (a stack's layer k on each step its layer k
    accepts, watched through the hierarchy)."""

    def __init__(self, dut, scenario: Scenario):
        self.dut, self.scenario = dut, scenario
        layers = scenario.layers
        self.n_layers = L = len(layers)
        # the single cell's ports are `weights` and `state`; a stack's `weights_l{k}`, `state_l{k}`
        self.load_ports = {self.port(kind, k): (kind, k) for k in range(L)
                           for kind in ("weights", "state")}
        self.ports = ("x", *self.load_ports)
        # one generator per coroutine: simulators may run the coroutines in either order within
        # a time step, and a shared generator would then hand out different gaps
        self.gaps = {port: random.Random(f"{scenario.seed}/{port}") for port in self.ports}
        self.stalls = random.Random(f"{scenario.seed}/monitor")
        steps, states = [], []
        for cfg, w, _ in layers:
            step, _, state = stream_layouts(cfg, w.n_inputs, w.n_hidden)
            steps.append(Packer(step))
            states.append(Packer(state))
        last_cfg, last_w, _ = layers[-1]
        out = stream_layouts(last_cfg, last_w.n_inputs, last_w.n_hidden, scenario.output_c,
                             scenario.serial_output)[1]
        self.pack = {"x": steps[0]}
        for port, (kind, k) in self.load_ports.items():
            self.pack[port] = Packer(load_layout(layers[k][0])) if kind == "weights" else states[k]
        self.pack_out = Packer(out)
        self.pack_inner = steps          # layer k's x port, k >= 1 (read, not driven)
        # the load order does not depend on the lanes: any valid P names the same words
        self.geometry = [Geometry(cfg, w, 1) for cfg, w, _ in layers]
        self.protocol = [LoadProtocol(g.n_words, w.n_hidden)
                         for g, (_, w, _) in zip(self.geometry, layers)]
        self.model = StackModel(layers)
        self.checker = Checker(last_cfg, scenario.seed)
        self.accepted = []       # cycle of each accepted step
        self.outputs = []        # cycle of each delivered output
        self.loads = {port: 0 for port in self.load_ports}    # packets committed
        self.held_by_loads = 0   # packets committed while an x of their layer was waiting
        self.x_during_deeper_loads = 0   # steps taken while a deeper layer had a packet open
        self.x_waiting = False
        self.sent = 0
        self.words = []          # words of a word-serial output's step received so far
        self.queues = {port: Queue() for port in self.ports}
        self.pending = []        # completion events of the ops handed to the port coroutines
        self.progress_path = os.environ.get("LSTM_PROGRESS")
        self.progress_every = max(1, min(200, scenario.n_steps // 100))

    def port(self, kind, layer) -> str:
        """The Verilog name of a load port: ``weights``/``state``, a stack's ``weights_l{k}``..."""
        return kind if self.n_layers == 1 else f"{kind}_l{layer}"

    def layer_name(self, k) -> str:
        return "" if self.n_layers == 1 else f"layer {k}: "

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

    def x_taken(self, k):
        """Layer k took a step: its load protocol must allow it (a load on another layer does
        not block it)."""
        protocol = self.protocol[k]
        if not protocol.x_allowed():
            self.checker.violation(f"{self.layer_name(k)}an x was accepted while "
                                   f"{protocol.blocked_because()}")
        if k == 0:
            self.x_during_deeper_loads += any(p.open for p in self.protocol[1:])

    def x_waiting_at(self, k) -> bool:
        if k == 0:
            return self.x_waiting
        return bool(getattr(self.dut, f"layer{k}").x__valid.value)

    def transfer(self, port, word):
        """The design accepted ``word`` on ``port`` (at most one input transfer per cycle and
        layer: called in the order of the design's edges)."""
        if self.dut.rst.value:
            self.checker.violation(f"a {port} word was accepted during reset")
        if port == "x":
            self.x_taken(0)
            return
        kind, k = self.load_ports[port]
        try:
            packet = self.protocol[k].word(kind, word)
        except ProtocolViolation as e:
            self.checker.violation(f"{self.layer_name(k)}{e}")
            return
        if packet is None:
            return
        self.loads[port] += 1
        self.held_by_loads += self.x_waiting_at(k)
        model = self.model.layers[k]
        if kind == "weights":
            model.load_weights(self.geometry[k].weights_from_words(w["data"] for w in packet))
        else:
            model.load_state([w["h"] for w in packet], [w["c"] for w in packet])

    def stepped(self, k, tag, frame, out):
        """Layer k's model stepped (``frame``: the step's ``first``, ``last``): the last layer's
        h, c are expected at the output, a deeper layer's input waits for that layer to take
        it."""
        h, c, nxt = out
        if nxt is None:
            self.checker.expect(tag, h, c)
            return
        self.model.waiting[k + 1].append((tag, nxt, frame))
        if self.model.eager:       # the wrong scoreboard: layer k+1 steps now, not when it takes it
            self.stepped(k + 1, tag, frame, self.model.step(k + 1, nxt, frame[0]))

    async def run_steps(self, op):
        lasts = op.get("last") or [0] * len(op["x"])
        for x, first, last, seq, step in zip(op["x"], op["first"], lasts, op["sequence"],
                                             op["step"]):
            self.x_waiting = True
            await self.put("x", {"x": x, "first": first, "last": last})
            self.x_waiting = False
            self.stepped(0, (seq, step), (first, last), self.model.step(0, x, first))
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
                port = "x" if kind == "steps" else self.port(kind, op.get("layer", 0))
                self.queues[port].put_nowait((op, done))
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
                self.model.layers[op.get("layer", 0)].load_weights(qweights_from_dict(op["weights"]))
            elif kind == "believe_raw_link":
                self.model.raw_link.add(op["layer"])
            elif kind == "believe_eager":
                self.model.eager = True
            else:
                raise ValueError(f"unknown scenario op {kind!r}")
        await self.join()

    async def reset(self, length):
        self.dut.rst.value = 1
        self.words = []                       # a serial step cut short by reset is lost
        self.checker.drop_pending(self.model.in_flight())
        self.model.reset()
        for protocol in self.protocol:
            protocol.reset()
        await ClockCycles(self.dut.clk, length)
        await FallingEdge(self.dut.clk)
        self.dut.rst.value = 0

    # -- monitors -------------------------------------------------------------------------------
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
            if self.scenario.serial_output:
                out = self.serial_word(out)
                if out is None:
                    continue
            self.outputs.append(cycle_now())
            self.checker.observe(out["h"], out.get("c"))

    def serial_word(self, word):
        """One word of a word-serial output (unit u: ``first`` = u == 0, ``last`` = u == H-1):
        the step's h and c once its H words are in, else None."""
        unit = len(self.words)
        H = self.scenario.n_hidden
        if (word["first"], word["last"]) != (int(unit == 0), int(unit == H - 1)):
            self.checker.violation(f"serial word {unit} of a step has first={word['first']} "
                                   f"last={word['last']}")
        self.words.append(word)
        if len(self.words) < H:
            return None
        words, self.words = self.words, []
        return {"h": [w["h"] for w in words],
                **({"c": [w["c"] for w in words]} if "c" in words[0] else {})}

    async def layer_monitor(self, k):
        """Layer k (>= 1) of a stack: each step it takes (its x handshake, inside the design)
        steps its model, on the input the model computed for it."""
        dut = self.dut
        port = getattr(dut, f"layer{k}")
        valid, ready, payload = port.x__valid, port.x__ready, port.x__payload
        while True:
            await ReadOnly()
            if not valid.value:
                await RisingEdge(valid)
            await RisingEdge(dut.clk)
            # values read now are the ones the edge sampled
            if not (valid.value and ready.value):
                continue
            if dut.rst.value:
                self.checker.violation(f"layer {k} took a step during reset")
                continue
            got = self.pack_inner[k].unpack(payload.value.to_unsigned())
            self.x_taken(k)
            if not self.model.waiting[k]:
                self.checker.violation(f"layer {k} took a step no layer below delivered")
                continue
            tag, x, frame = self.model.waiting[k].popleft()
            self.checker.observe_inner(k, self.model.layers[k].config, tag, x, frame, got)
            if not self.model.eager:
                self.stepped(k, tag, frame, self.model.step(k, x, frame[0]))

    # -- the test -------------------------------------------------------------------------------
    def outstanding(self) -> int:
        return len(self.checker.expected) + self.model.in_flight()

    async def run(self):
        dut = self.dut
        Clock(dut.clk, PERIOD_NS, unit="ns").start()
        for port in self.ports:
            getattr(dut, f"{port}__valid").value = 0
        dut.h__ready.value = 0
        dut.rst.value = 1
        await ClockCycles(dut.clk, 3)
        await FallingEdge(dut.clk)
        dut.rst.value = 0
        self.start_cycle = cycle_now()
        monitors = [cocotb.start_soon(self.monitor())]
        monitors += [cocotb.start_soon(self.layer_monitor(k)) for k in range(1, self.n_layers)]
        workers = [cocotb.start_soon(self.port_worker(port)) for port in self.ports]
        ops = cocotb.start_soon(self.run_ops())
        await First(ops, ClockCycles(dut.clk, self.budget()))
        if not ops.done():
            ops.cancel()
            self.checker.violation(f"the design stopped accepting inputs ({self.sent} of "
                                   f"{self.scenario.n_steps} steps sent)")
        # wait for what is still in flight: a step takes a known, bounded time
        budget = 4 * (self.outstanding() + 2) * 10_000 * self.n_layers
        for _ in range(budget // 100):
            if not self.outstanding():
                break
            await ClockCycles(dut.clk, 100)
        await ClockCycles(dut.clk, 2)
        for task in monitors + workers:
            task.cancel()
        error = self.error()
        if int(dut.error.value) != error:
            self.checker.violation(f"error output is {int(dut.error.value)}, the protocol says "
                                   f"{error}")

    def error(self) -> int:
        """The expected ``error`` output: bit k is layer k's sticky error."""
        return sum(int(p.error) << k for k, p in enumerate(self.protocol))

    def budget(self) -> int:
        """Generous cycles for all ops (a stuck design ends the run instead of hanging it)."""
        step = sum(g.n_weights + 100 for g in self.geometry)
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
            "sent": steps, "dropped": ch.dropped, "missing": self.outstanding(),
            "mismatches": ch.errors, "reports": ch.reports, "cycles": cycles,
            "cycles_per_step": span / ch.steps if ch.steps else None,
            "seed": self.scenario.seed, "received_h": ch.received_h,
            "error": self.error(), "loads": dict(self.loads),
            "held_by_loads": self.held_by_loads, "layers": self.n_layers,
            "compared_inner": ch.compared_inner,
            "x_during_deeper_loads": self.x_during_deeper_loads,
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
