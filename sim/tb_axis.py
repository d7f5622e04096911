"""cocotb testbench of the AXI4-Stream face (:class:`rtl.axis.AxisWrapper`, docs/axis.md), driven
by cocotbext-axi: ``AxiStreamSource`` on ``s_axis_x`` and ``s_axis_load``, ``AxiStreamSink`` on
``m_axis_h``, pause generators for ``tvalid`` gaps and ``tready`` back-pressure.

The scoreboard is the cell testbench's (:class:`sim.tb_lstm.Testbench`: golden model, load
protocol, in-order checker). Steps and load words go in as AXI beats (one frame per sequence,
``tlast`` on its last beat; one frame per load packet, ``tdest`` naming the port); the golden
model steps and loads when the wrapped design takes each step and word (its inner handshakes,
read through the hierarchy as ``dut.core.*``), and the inner payloads are compared with what was
sent (the beats' decoding and the ``first`` bit derived from ``tlast``). Every record of
``m_axis_h`` is compared with the golden model, with ``tlast`` exactly on the last record of
each sequence and every slot's upper bits and padding as docs/axis.md promises; with the
classifier head, every ``m_axis_y`` record (C logits, label) with the golden head on the h of
the sequence's last step.
"""
import itertools
import os
import random
from collections import deque

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly, RisingEdge
from cocotbext.axi import AxiStreamBus, AxiStreamFrame, AxiStreamSink, AxiStreamSource

from sim.runner import axis_design_of
from sim.scenario import Scenario
from sim.scoreboard import PERIOD_NS, cycle_now
from sim.tb_lstm import Testbench, run_and_report


def _never_built(wrapper):
    """The wrapper is built here for its layouts only: no warning that it was not elaborated."""
    part = wrapper
    while part is not None:
        part._MustUse__silence = True
        for cell in getattr(part, "layers", ()):
            cell._MustUse__silence = True
        if getattr(part, "head", None) is not None:
            part.head._MustUse__silence = True
        part = getattr(part, "core", None)


def pauses(rng: random.Random, probability: float):
    """A pause generator: each cycle paused with ``probability``."""
    return (rng.random() < probability for _ in itertools.count())


class AxisTestbench(Testbench):
    """:class:`Testbench` with AXI4-Stream drivers and monitors instead of the inner ports'."""

    def __init__(self, dut, scenario: Scenario, width: int):
        super().__init__(dut, scenario)
        # the layouts do not depend on the lanes (P = 1 is valid for any size)
        wrapper = axis_design_of(scenario, 1 if scenario.n_layers == 1 else None, width)
        _never_built(wrapper)
        self.width = width
        # the cells (and their handshakes) are the wrapper's core's, or a ClassifiedLSTM's core's
        self.inner = dut.core.core if scenario.head is not None else dut.core
        self.x_beats = wrapper.x_layout
        self.out_beats = wrapper.output_layouts
        self.load_beats = wrapper.load_layouts
        self.tdest = {port: k for k, port in enumerate(wrapper.load_ports)}
        self.to_accept = deque()       # steps sent, not yet taken by the design
        self.load_sent = {port: deque() for port in self.load_ports}
        self.ends = set()              # (sequence, step) of the steps with last (and tlast)
        self.frames = 0
        self.lost_in_wrapper = 0       # beats the wrapper held when a reset came

    @property
    def clock(self):
        return self.dut.aclk

    def in_reset(self) -> bool:
        return not self.dut.aresetn.value

    # -- drivers -------------------------------------------------------------------------------
    async def run_steps(self, op):
        """One frame per sequence: its steps' beats, ``tlast`` on the last (the step with
        ``last``); ``first`` is not sent, the wrapper derives it."""
        frames, beats, ended = [], [], True
        for x, first, last, seq, step in zip(op["x"], op["first"], op["last"], op["sequence"],
                                             op["step"]):
            if first != ended:
                raise ValueError("over AXI4-Stream a sequence starts exactly after the step with "
                                 "last: first must follow last")
            beats += self.x_beats.pack({"x": x})
            self.to_accept.append((x, first, last, seq, step))
            ended = bool(last)
            if last:
                frames.append(beats)
                beats = []
        if beats:
            frames.append(beats)
        self.x_waiting = True
        for beats in frames:
            await self.x_source.send(AxiStreamFrame(beats))
        await self.x_source.wait()
        self.x_waiting = False

    async def run_packet(self, port, op):
        """One frame per packet on ``s_axis_load``, ``tdest`` naming ``port``."""
        packet = op["packet"]
        if [(w["first"], w["last"]) for w in packet] != \
                [(int(k == 0), int(k == len(packet) - 1)) for k in range(len(packet))]:
            raise ValueError("an AXI4-Stream load packet frames itself: first and last must be "
                             "on its first and last word")
        if op.get("after"):
            await ClockCycles(self.clock, op["after"])
        beats = [b for word in packet for b in self.load_beats[port].pack(word)]
        self.load_sent[port].extend(packet)
        await self.load_source.send(AxiStreamFrame(beats, tdest=self.tdest[port]))
        await self.load_source.wait()

    async def reset(self, length):
        """``aresetn`` low for ``length`` cycles: what the design and the wrapper held is lost."""
        self.dut.aresetn.value = 0
        self.checker.drop_pending(self.model.in_flight())
        self.model.reset()
        for protocol in self.protocol:
            protocol.reset()
        self.lost_in_wrapper += len(self.to_accept) + sum(map(len, self.load_sent.values()))
        self.to_accept.clear()
        for sent in self.load_sent.values():
            sent.clear()
        await ClockCycles(self.clock, length)
        await FallingEdge(self.clock)
        self.dut.aresetn.value = 1

    # -- monitors ------------------------------------------------------------------------------
    async def watch(self, port, handler):
        """Each transfer on the design's stream ``port`` (inside the wrapper): ``handler(payload)``."""
        valid, ready, payload = (getattr(self.inner, f"{port}__{s}") for s in ("valid", "ready", "payload"))
        while True:
            await ReadOnly()
            if not valid.value:
                await RisingEdge(valid)
            await RisingEdge(self.clock)
            # values read now are the ones the edge sampled
            if valid.value and ready.value:
                handler(payload.value.to_unsigned())

    def x_accepted(self, payload):
        got = self.pack["x"].unpack(payload)
        if self.in_reset():
            self.checker.violation("a step was accepted during reset")
        self.x_taken(0)
        if not self.to_accept:
            self.checker.violation("the design took a step nobody sent")
            return
        x, first, last, seq, step = self.to_accept.popleft()
        for unit, (want, code) in enumerate(zip(x, got["x"])):
            if want != code:
                self.checker._mismatch((seq, step), unit, "x", want, code, where="input ")
        if (got["first"], got["last"]) != (first, last):
            self.checker.violation(f"sequence {seq} step {step} reached the design with first="
                                   f"{got['first']} last={got['last']}, expected {first}, {last}")
        if last:
            self.ends.add((seq, step))
        self.first_layer_took(x, first, last, seq, step)

    def load_accepted(self, port, payload):
        got = self.pack[port].unpack(payload)
        if not self.load_sent[port]:
            self.checker.violation(f"the design took a {port} word nobody sent")
            return
        want = self.load_sent[port].popleft()
        if got != want:
            self.checker.violation(f"a {port} word reached the design as {got}, sent {want}")
        self.transfer(port, got)

    async def consume_y(self):
        """Each ``m_axis_y`` frame: one record, the C logits and the label of a sequence."""
        lay = self.out_beats["y"]
        while True:
            frame = await self.sinks["y"].recv()
            beats = list(frame.tdata)
            if len(beats) != lay.n_beats or not lay.padding_ok(beats):
                self.checker.violation(f"an m_axis_y frame of {len(beats)} beats is not one "
                                       f"record of {lay.n_beats} with sign-extended slots")
                continue
            got = lay.unpack(beats)
            self.checker.observe_y(got["logits"], got["label"])

    async def consume(self):
        """Each ``m_axis_h`` frame: its records in order, ``tlast`` on a sequence's last step."""
        lay = self.out_beats["h"]
        n = lay.n_beats
        while True:
            frame = await self.sinks["h"].recv()
            beats = list(frame.tdata)
            self.frames += 1
            if len(beats) % n:
                self.checker.violation(f"an m_axis_h frame of {len(beats)} beats is not whole "
                                       f"records of {n} beats")
            records = [beats[k:k + n] for k in range(0, len(beats) - n + 1, n)]
            for k, record in enumerate(records):
                if not lay.padding_ok(record):
                    self.checker.violation(f"an m_axis_h record's slot or padding bits are not "
                                           f"the sign or zero: {[hex(b) for b in record]}")
                ends = None
                if self.checker.expected:
                    seq, step = self.checker.expected[0][0]
                    ends = (seq, step) in self.ends
                out = lay.unpack(record)
                self.outputs.append(cycle_now())
                self.checker.observe(out["h"], out.get("c"))
                if ends is not None and ends != (k == len(records) - 1):
                    self.checker.violation(f"sequence {seq} step {step}: tlast "
                                           f"{'missing' if ends else 'inside the sequence'}")

    # -- the test ------------------------------------------------------------------------------
    async def run(self):
        dut, clock = self.dut, self.clock
        Clock(clock, PERIOD_NS, unit="ns").start()
        dut.aresetn.value = 0

        def bus(prefix, kind):
            return kind(AxiStreamBus.from_prefix(dut, prefix), clock, dut.aresetn,
                        reset_active_level=False, byte_lanes=1)
        self.x_source = bus("s_axis_x", AxiStreamSource)
        self.load_source = bus("s_axis_load", AxiStreamSource)
        self.sinks = {name: bus(f"m_axis_{name}", AxiStreamSink) for name in self.out_beats}
        seed = self.scenario.seed
        if self.scenario.gap:
            for name, source in (("x", self.x_source), ("load", self.load_source)):
                source.set_pause_generator(pauses(random.Random(f"{seed}/{name}"), self.scenario.gap))
        if self.scenario.stall:
            for name, sink in self.sinks.items():
                sink.set_pause_generator(pauses(random.Random(f"{seed}/{name}"), self.scenario.stall))
        await ClockCycles(clock, 3)
        await FallingEdge(clock)
        dut.aresetn.value = 1
        self.start_cycle = cycle_now()
        monitors = [cocotb.start_soon(self.watch("x", self.x_accepted))]
        if "h" in self.sinks:
            monitors.append(cocotb.start_soon(self.consume()))
        if "y" in self.sinks:
            monitors.append(cocotb.start_soon(self.consume_y()))
        monitors += [cocotb.start_soon(self.watch(port, lambda p, port=port: self.load_accepted(port, p)))
                     for port in self.load_ports]
        monitors += [cocotb.start_soon(self.layer_monitor(k)) for k in range(1, self.n_layers)]
        workers = [cocotb.start_soon(self.port_worker(port)) for port in self.ports]
        await self.finish(monitors + workers)

    def results(self) -> dict:
        return {**super().results(), "axis_width": self.width, "frames": self.frames,
                "lost_in_wrapper": self.lost_in_wrapper}


@cocotb.test()
async def axis_scenario(dut):
    """Run the scenario through the AXI4-Stream ports; every output must arrive once and match."""
    scenario = Scenario.load(os.environ["LSTM_SCENARIO"])
    await run_and_report(dut, AxisTestbench(dut, scenario, int(os.environ["LSTM_AXIS_WIDTH"])))
