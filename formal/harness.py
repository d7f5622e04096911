"""The formal harness: :class:`rtl.top.LSTMCell` between a free but legal environment and the
property checkers.

Every input the environment drives (reset, each input stream's valid and payload, the output's
ready) is a free input of the harness: the solver picks any value on any cycle, limited only by
the assumptions below. What the design drives is observed at its ports. A *mutant* is a fault
injected on the wires between the two (a port the design sees differently from the
environment), or a deliberately wrong bound in a property; it must make the property fail, so a
proof that holds vacuously cannot pass unnoticed.

Environment assumptions (all a legal producer or consumer guarantees, nothing more):

- reset is high in the first cycle (and, with ``resets="any"``, free on every later cycle);
- on each input stream, once valid is high without ready, valid stays high and the payload
  stays the same on the next cycle (Amaranth's stream rules), unless reset intervenes;
- the output's ready is free on every cycle.

There is no ``$past`` in Amaranth: every "previous cycle" value is a register kept here.
"""
from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Assert, Assume, Cover, Elaboratable, Module, ResetSignal, Signal, Value
from amaranth.lib import data
from amaranth.lib.wiring import In

from rtl.geometry import refuse

from .datapath import DATAPATH_MUTANTS

__all__ = ["FormalHarness", "Port", "MUTANTS", "SLOW_MUTANTS", "has_field"]

#: Faults the harness can inject, name -> what the broken design does. Port faults are applied
#: here; bound faults are read by the property that owns the bound (``trace.mutant``).
MUTANTS = {
    "ignore_h_ready": "the design sees h.ready always high: it drops or overwrites an output "
                      "the consumer has not taken",
    "overwrite_stalled_output": "the design commits a new result over one the consumer has "
                                "not taken (h.ready seen high on the commit cycle only)",
    "ignore_x_valid": "the design sees x.valid always high: it starts steps nobody offered",
    "bound_minus_1": "the response bound is cycles_per_step - 1",
    "bound_plus_1": "the response bound is cycles_per_step + 1",
    "capacity_minus_1": "the outstanding-step capacity is one less",
    "ready_in_reset": "every input ready is forced high while reset is high",
    "window_plus_1": "the step window ends one cycle after the output appears",
    "x_ready_in_load_gap": "x.ready is high whenever no load word is offered, as in the design "
                           "before load packets (x slips into a gap of a weight packet)",
    # faults inside the datapath, applied to the design itself (formal.datapath)
    **DATAPATH_MUTANTS,
}


#: Mutants whose counterexample is deep (a second step over a stalled output, about 2 CPS
#: cycles): BMC takes 11-108 s a run, so only ``make formal-full`` runs them.
SLOW_MUTANTS = frozenset({"overwrite_stalled_output"})


def input_streams(dut) -> list[str]:
    """Names of the design's input streams: ``x``, ``weights``, ``state`` for a cell;
    ``x``, ``weights_l<k>``, ``state_l<k>`` for a stack (:class:`rtl.stack.StackedLSTM`)."""
    return [name for name, member in dut.signature.members.items()
            if member.is_signature and member.flow == In]


def has_field(layout, name: str) -> bool:
    """Whether a struct layout has a field ``name`` (the hooks for the packet protocol)."""
    return any(field_name == name for field_name, _ in layout)


@dataclass(eq=False)
class Port:
    """One stream as seen at the design's boundary, with its previous-cycle values.

    ``valid``/``ready``/``payload`` are the environment's side (for an input stream the free
    inputs; for the output the design's valid and payload and the free ready); ``fire`` is a
    transfer as the environment sees it; ``past_*`` hold the previous cycle's values.
    """

    valid: Signal
    ready: Signal
    payload: data.View
    past_valid: Signal
    past_ready: Signal
    past_payload: Signal

    @property
    def fire(self):
        return self.valid & self.ready

    @property
    def past_fire(self):
        return self.past_valid & self.past_ready


class FormalHarness(Elaboratable):
    """Wrap ``dut`` with a legal environment, inject ``mutant``, instantiate ``properties``.

    Parameters
    ----------
    dut : :class:`rtl.top.LSTMCell`
    properties : sequence of :class:`formal.properties.Property`
    mutant : str or None
        A key of :data:`MUTANTS`.
    resets : ``"any"`` or ``"initial"``
        Reset free on every cycle after the first, or only in the first.
    loads : bool
        Whether the weight and state producers may offer words at all.
    design : optional
        The configuration ``dut`` was built from (:mod:`formal.configs`), for properties that
        need more than the ports (the datapath proof's specification).

    Attributes
    ----------
    ports : list of Signal
        The free inputs (pass to ``rtlil.convert``).
    """

    def __init__(self, dut, properties, mutant=None, *, resets="any", loads=True, design=None):
        if mutant is not None and mutant not in MUTANTS:
            refuse(self, ValueError(f"unknown mutant {mutant!r}"))
        if resets not in ("any", "initial"):
            refuse(self, ValueError(f"resets must be 'any' or 'initial', not {resets!r}"))
        self.dut, self.properties, self.mutant = dut, list(properties), mutant
        self.resets, self.loads, self.design = resets, loads, design
        # the environment's free inputs
        self.env = {name: (Signal(name=f"env_{name}_valid"),
                           Signal(getattr(dut, name).payload.shape(), name=f"env_{name}_payload"))
                    for name in input_streams(dut)}
        self.env_h_ready = Signal(name="env_h_ready")
        self.ports = [s for pair in self.env.values() for s in (pair[0], pair[1].as_value())]
        self.ports.append(self.env_h_ready)

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        t = Trace(m, self)
        # the environment's input streams and the output's ready, through the injected faults
        for name, (valid, payload) in self.env.items():
            port = getattr(dut, name)
            m.d.comb += [port.valid.eq(valid), port.payload.eq(payload)]
            if self.mutant == "ignore_x_valid" and name == "x":
                m.d.comb += port.valid.eq(1)
        m.d.comb += dut.h.ready.eq(self._h_ready_seen(m, t))

        # reset: high in the first cycle; free later, or low (resets="initial")
        m.d.comb += t.assume(t.rst, when=t.initial)
        if self.resets == "initial":
            m.d.comb += t.assume(~t.rst, when=~t.initial)
        if not self.loads:
            m.d.comb += [t.assume(~t.ports[name].valid) for name in self.env if name != "x"]
        # input streams: valid held and payload stable until the transfer
        for name in self.env:
            p = t.ports[name]
            m.d.comb += t.assume(p.valid & (p.payload.as_value() == p.past_payload),
                                 when=~t.was_rst & p.past_valid & ~p.past_ready)
        for prop in self.properties:
            prop.build(m, t)
        return m


    def _h_ready_seen(self, m, t):
        """h.ready as the design sees it: the consumer's, or broken by a mutant."""
        if self.mutant == "ignore_h_ready":
            return 1
        if self.mutant == "overwrite_stalled_output":
            # ready forced high on the cycle whose edge commits the next result (the step's
            # cycles_per_step - 1'th cycle): the design overwrites a result nobody has taken
            cps = self.dut.cycles_per_step
            age = Signal(range(cps + 1), name="mutant_age")
            with m.If(t.x.fire & ~t.rst):
                m.d.sync += age.eq(1)
            with m.Elif((age != 0) & (age < cps)):
                m.d.sync += age.eq(age + 1)
            return self.env_h_ready | (age == cps - 1)
        return self.env_h_ready


class Trace:
    """What the properties see: reset, every port with its history, and the helpers to write
    named assertions. Built by :class:`FormalHarness`; properties receive it."""

    def __init__(self, m: Module, harness: FormalHarness):
        self.m, self.dut, self.mutant = m, harness.dut, harness.mutant
        self.loads, self.resets, self.design = harness.loads, harness.resets, harness.design
        self.rst = ResetSignal()
        # first cycle of the trace (a reset-less register that starts at 1)
        self.initial = Signal(init=1, reset_less=True, name="initial")
        # reset was high in the previous cycle: previous-cycle values say nothing then
        self.was_rst = Signal(init=1, reset_less=True, name="was_rst")
        m.d.sync += [self.initial.eq(0), self.was_rst.eq(self.rst)]
        self.ports = {}
        env = harness.env
        for name, (valid, payload) in env.items():
            ready = getattr(harness.dut, name).ready
            leak = None                     # a broken ready, as the environment sees it
            if harness.mutant == "ready_in_reset":
                leak = self.rst
            elif harness.mutant == "x_ready_in_load_gap" and name == "x":
                leak = ~env["weights"][0] & ~env["state"][0]
            if leak is not None:
                seen = Signal(name=f"{name}_ready_seen")
                m.d.comb += seen.eq(ready | leak)
                ready = seen
            self.ports[name] = self._port(name, valid, ready, payload)
        h = harness.dut.h
        self.ports["h"] = self._port("h", h.valid, harness.env_h_ready, h.payload)

    def _port(self, name, valid, ready, payload) -> Port:
        past_valid = Signal(reset_less=True, name=f"past_{name}_valid")
        past_ready = Signal(reset_less=True, name=f"past_{name}_ready")
        past_payload = Signal(len(payload.as_value()), reset_less=True, name=f"past_{name}_payload")
        self.m.d.sync += [past_valid.eq(valid), past_ready.eq(ready),
                          past_payload.eq(payload.as_value())]
        return Port(valid, ready, payload, past_valid, past_ready, past_payload)

    @property
    def x(self) -> Port:
        return self.ports["x"]

    @property
    def h(self) -> Port:
        return self.ports["h"]

    @property
    def weights(self) -> Port:
        return self.ports["weights"]

    @property
    def state(self) -> Port:
        return self.ports["state"]

    @property
    def cycles_per_step(self) -> int:
        return self.dut.cycles_per_step

    def fresh_output(self):
        """A new h_t on the output this cycle: valid now, and the register was empty or its
        previous content was taken on the last edge (outside reset)."""
        h = self.h
        return ~self.was_rst & h.valid & (~h.past_valid | h.past_ready)

    # named checks: the message becomes the check's name in the solver's report
    # (truth values through .bool(): `~` of a wider value is bitwise, never a logical not)
    @staticmethod
    def _check(make, test, name: str, when=None):
        test = Value.cast(test).bool()
        if when is not None:
            test = ~Value.cast(when).bool() | test
        return make(test, name, src_loc_at=2)   # the source line of the property

    def assume(self, test, when=None, name=None):
        """An assumption (on every cycle where ``when`` holds): a statement to add to a domain."""
        return self._check(Assume, test, name, when)

    def require(self, test, name: str, when=None):
        """Assert ``test``, named ``name``, on every cycle where ``when`` holds."""
        self.m.d.comb += self._check(Assert, test, name, when)

    def cover(self, test, name: str):
        """Cover ``test``: the cover run must reach a cycle where it holds."""
        self.m.d.comb += Cover(Value.cast(test).bool(), name, src_loc_at=1)

