"""The properties proven on :class:`rtl.top.LSTMCell`, each with the mutants that must break it.

A property is a function ``build(m, t)`` that adds assertions, covers and (rarely) extra
assumptions to the harness module ``m``, reading the ports through ``t``
(:class:`formal.harness.Trace`: ``t.x``, ``t.h``, ``t.weights``, ``t.state`` with ``valid``,
``ready``, ``payload``, ``fire`` and the previous cycle's ``past_*``; ``t.rst``, ``t.was_rst``;
``t.fresh_output()``; ``t.mutant``). Register it with :func:`prop`; the runner then proves it on
every configuration and shows each of its mutants failing. Adding a property::

    @prop("my_property", "one line: what it says", mode="bmc", depth=two_steps,
          mutants=("ignore_h_ready",))
    def _my_property(m, t):
        t.require(~(t.x.fire & t.h.valid), "x_never_while_output_waits")
        t.cover(t.x.fire, "x_accepted")

Modes: ``prove`` is k-induction (unbounded) with ``depth(dut)`` as k; ``bmc`` checks every trace
of ``depth(dut)`` cycles from reset. Mutant runs are always BMC, to :meth:`Property.mutant_depth`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from amaranth.hdl import Signal, signed

from .datapath import DATAPATH_MUTANTS, build_datapath_check
from .harness import MUTANTS, has_field

__all__ = ["Property", "PROPERTIES", "prop", "CAPACITY"]

#: Steps the cell can hold at once: one in the lanes, one result in the output register.
CAPACITY = 2


@dataclass(frozen=True)
class Property:
    """One registered property: how to build it, how to run it, what must break it."""
    name: str
    title: str
    build: Callable
    mode: str
    depth: Callable      # dut -> cycles
    mutants: tuple[str, ...]
    #: why the current design fails the property: when set, the runner expects FAIL (and an
    #: unexpected PASS, once the design is fixed, says to remove it)
    known_defect: str | None = None
    #: only for designs this returns True for (e.g. the packet-framed load ports)
    applies: Callable = field(default=lambda dut: True)
    #: mutant BMC depth, dut -> cycles (default: ``depth`` for bmc properties, else two_steps)
    mutant_depth_of: Callable | None = None
    #: the environment: reset free after the first cycle ("any") or not ("initial"; the full
    #: run frees it), and whether loads are offered at all
    resets: str = "any"
    loads: bool = True
    #: "protocol" (proven on formal.configs.DesignConfig designs) or "datapath" (on
    #: formal.datapath.DatapathDesign designs, multipliers not cut)
    kind: str = "protocol"
    #: designs on which a "prove" property is only BMC-checked (to two_steps): k-induction
    #: fails there from an unreachable state (measured), e.g. output_stream on a word-serial
    #: output, whose words leave from registers the cell update shifts into
    bounded_on: Callable = field(default=lambda dut: False)
    #: configurations (formal.configs names) on which ABC's PDR was measured to close this
    #: bmc property: the runner proves it there unbounded (with the property's own resets),
    #: when ABC is installed (docs/formal.md); in ``make formal-full`` only if ``pdr_slow``
    pdr_closes_on: tuple = ()
    pdr_slow: bool = False

    def mutant_depth(self, dut) -> int:
        if self.mutant_depth_of is not None:
            return self.mutant_depth_of(dut)
        return (self.depth if self.mode == "bmc" else two_steps)(dut)


PROPERTIES: dict[str, Property] = {}


def two_steps(dut) -> int:
    """BMC depth that covers two whole steps from reset and a stall: 2 cycles_per_step + 10
    (a commit that overwrites a stalled output shows only in the second step)."""
    return 2 * dut.cycles_per_step + 10


def prop(name, title, *, mode, depth, mutants, known_defect=None, applies=None,
         mutant_depth=None, resets="any", loads=True, kind="protocol", bounded_on=None,
         pdr_closes_on=(), pdr_slow=False):
    """Register the decorated ``build(m, t)`` as property ``name``."""
    if mode not in ("prove", "pdr", "bmc"):
        raise ValueError(f"mode must be 'prove', 'pdr' or 'bmc', not {mode!r}")
    for mutant in mutants:
        if mutant not in MUTANTS:
            raise ValueError(f"unknown mutant {mutant!r}")

    def register(build):
        PROPERTIES[name] = Property(name, title, build, mode, depth, tuple(mutants), known_defect,
                                    applies or (lambda dut: True), mutant_depth, resets, loads,
                                    kind, bounded_on or (lambda dut: False),
                                    tuple(pdr_closes_on), pdr_slow)
        return build
    return register


def _cell(dut) -> bool:
    """One cell with a parallel output (the step-window properties count one transfer per
    step, and read the cell's own weights and state ports)."""
    return hasattr(dut, "weights") and not getattr(dut, "serial_output", False)


def _cell_loads(dut) -> bool:
    """One cell (parallel or word-serial output): the load ports are the cell's."""
    return hasattr(dut, "weights")


def _window(t, name):
    """The step window: from the cycle x is accepted until its h_t appears (exclusive).
    Returns (in_flight register, fire of x counted outside reset)."""
    m = t.m
    accepted = t.x.fire & ~t.rst
    in_flight = Signal(name=f"{name}_in_flight")
    with m.If(accepted):
        m.d.sync += in_flight.eq(1)
    with m.Elif(t.fresh_output()):
        m.d.sync += in_flight.eq(0)
    return in_flight, accepted


# -- (a) output stream rules -------------------------------------------------------------------
@prop("output_stream", "h: valid held and payload stable until the transfer",
      mode="prove", depth=lambda dut: 4, mutants=("ignore_h_ready", "overwrite_stalled_output"),
      bounded_on=lambda dut: getattr(dut, "serial_output", False))
def _output_stream(m, t):
    h = t.h
    # (reset may drop the output at once: not a transfer, not a violation)
    stalled = ~t.rst & ~t.was_rst & h.past_valid & ~h.past_ready
    t.require(h.valid, "h_valid_held_until_taken", when=stalled)
    t.require(h.payload.as_value() == h.past_payload, "h_payload_stable_until_taken", when=stalled)
    t.cover(h.valid & ~h.ready & ~t.rst, "h_stalled")
    t.cover(stalled & h.fire & ~t.rst, "h_taken_after_stall")


# -- (b) bounded response ----------------------------------------------------------------------
@prop("response", "h_t appears exactly cycles_per_step cycles after x_t is accepted "
      "(whatever h.ready does meanwhile)",
      mode="bmc", depth=two_steps, mutants=("bound_minus_1", "bound_plus_1", "ignore_x_valid"),
      resets="initial", loads=False, applies=_cell)
def _response(m, t):
    cps = t.cycles_per_step
    bound = cps + {"bound_minus_1": -1, "bound_plus_1": 1}.get(t.mutant, 0)
    # only steps accepted while the output register will be free at commit: either empty or
    # taken on this very edge (otherwise the commit waits for the consumer, by design)
    armed, age = Signal(name="response_armed"), Signal(range(cps + 3), name="response_age")
    # (with resets free, `make formal-full`: a reset abandons the step, and drops its output
    # even on the bound's cycle)
    fresh = t.fresh_output()
    with m.If(t.rst):
        m.d.sync += armed.eq(0)
    with m.Elif(t.x.fire & (~t.h.valid | t.h.ready)):
        m.d.sync += [armed.eq(1), age.eq(1)]
    with m.Elif(armed & fresh):
        m.d.sync += armed.eq(0)
    with m.Elif(armed & (age <= bound)):
        m.d.sync += age.eq(age + 1)
    t.require(~fresh, "no_output_before_bound", when=armed & (age < bound))
    t.require(fresh, "output_at_bound", when=armed & (age == bound) & ~t.rst)
    t.require(~armed | (age <= bound), "armed_step_never_outlives_bound")
    if not t.loads:
        # one step at a time, and ready for the next whenever none runs (with loads, a load
        # may hold x off: that is load_atomic's and loads_between_steps' business)
        in_flight, _ = _window(t, "response")
        t.require(t.x.ready == ~(in_flight & ~fresh), "x_ready_iff_no_step_running",
                  when=~t.rst & ~t.was_rst)
    t.cover(armed & (age == bound) & fresh, "output_at_bound_reached")
    t.cover(armed & (age == bound) & fresh & ~t.h.past_ready, "output_at_bound_with_ready_low")


# -- (c) outstanding steps ---------------------------------------------------------------------
@prop("outstanding", f"accepted x minus delivered h stays within 0..{CAPACITY}: no output "
      "without a step, no step lost",
      mode="bmc", depth=two_steps,
      mutants=("capacity_minus_1", "ignore_h_ready", "overwrite_stalled_output",
               "ignore_x_valid"), resets="initial", applies=_cell,
      pdr_closes_on=("small", "odd"), pdr_slow=True)
def _outstanding(m, t):
    capacity = CAPACITY - (t.mutant == "capacity_minus_1")
    outstanding = Signal(signed(8), name="outstanding")
    delivered = t.h.fire & ~t.rst
    in_flight, accepted = _window(t, "outstanding")
    m.d.sync += outstanding.eq(outstanding + accepted - delivered)
    t.require(outstanding >= 0, "no_output_without_accepted_step")
    t.require(outstanding <= capacity, "no_step_lost")
    # the exact count: the step in the lanes plus the result waiting on the output; with the
    # next one, these make the property inductive (k-induction needs no internal signal)
    running = in_flight & ~t.fresh_output()
    t.require(outstanding == running + t.h.valid, "outstanding_is_step_plus_output",
              when=~t.rst & ~t.was_rst)
    t.cover(outstanding == capacity, "capacity_reached")


# -- (d) reset ---------------------------------------------------------------------------------
@prop("reset_ready", "every input ready is low while reset is high",
      mode="prove", depth=lambda dut: 4, mutants=("ready_in_reset",),
      mutant_depth=lambda dut: 4)
def _reset_ready(m, t):
    for name, port in t.ports.items():
        if name != "h":
            t.require(~port.ready, f"{name}_ready_low_in_reset", when=t.rst)
    t.cover(t.rst & ~t.initial, "reset_after_start")


# -- (e) loads ---------------------------------------------------------------------------------
@prop("loads_between_steps", "no weight or state word is accepted from the cycle x is "
      "accepted until its h_t appears",
      mode="bmc", depth=two_steps, mutants=("window_plus_1",), resets="initial",
      applies=_cell_loads, pdr_closes_on=("small", "odd"))
def _loads_between_steps(m, t):
    in_flight, accepted = _window(t, "loads")
    if t.mutant == "window_plus_1":
        running = accepted | in_flight                       # still open on the output's cycle
    else:
        running = accepted | (in_flight & ~t.fresh_output())
    for name in ("weights", "state"):
        t.require(~t.ports[name].fire, f"no_{name}_word_during_step", when=running & ~t.rst)
    t.cover(in_flight & t.weights.valid & t.state.valid, "loads_offered_during_step")
    t.cover(t.fresh_output() & t.weights.fire, "weight_word_right_after_step")


def _framed(dut) -> bool:
    return _cell_loads(dut) and all(has_field(getattr(dut, n).payload.shape(), "last") for n in ("weights", "state"))


@prop("load_atomic", "no x is accepted from the first to the last word of a weight or state "
      "packet, whatever gaps the producer leaves (packet-framed load ports only)",
      mode="bmc", depth=lambda dut: dut.geometry.n_words + 10, mutants=("x_ready_in_load_gap",),
      applies=_framed, resets="initial", pdr_closes_on=("small", "odd"))
def _load_atomic(m, t):
    for name in ("weights", "state"):
        p = t.ports[name]
        # the packet as the producer sent it: opened by `first`, closed by `last` (malformed
        # packets included: what the design does with them is its business, but no x inside)
        in_packet = Signal(name=f"{name}_in_packet")
        opens = p.fire & p.payload.first & ~p.payload.last
        with m.If(p.fire & ~t.rst):
            m.d.sync += in_packet.eq(~p.payload.last & (p.payload.first | in_packet))
        t.require(~t.x.fire, f"no_x_inside_{name}_packet", when=(in_packet | opens) & ~t.rst)
        t.cover(in_packet & t.x.valid & ~p.valid, f"x_offered_in_{name}_packet_gap")
        t.cover(in_packet & p.fire & p.payload.last, f"{name}_packet_completed")


# -- (f) datapath ------------------------------------------------------------------------------
@prop("datapath", "every h_t and c_t equals the model's step (formal.spec), computed from what "
      "the environment sent: x, loaded weights, loaded initial state, previous results",
      mode="bmc", depth=lambda dut: 0, mutants=tuple(DATAPATH_MUTANTS), resets="initial",
      kind="datapath")
def _datapath(m, t):
    # depth and mutants per design: formal.datapath.DatapathDesign.depth and .mutants
    build_datapath_check(m, t, t.design)
