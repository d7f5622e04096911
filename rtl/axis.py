"""AXI4-Stream face of the exported design (docs/axis.md): ``aclk``, ``aresetn`` and one AXI4-Stream
per stream of the inner design, for integrators (Vivado IP integrator, LiteX, a DMA engine).

The wrapper is generic over the inner design (an :class:`rtl.top.LSTMCell`, an
:class:`rtl.stack.StackedLSTM`, or anything with the same kind of signature): its ``x`` stream
becomes ``s_axis_x``, every output stream ``o`` becomes ``m_axis_o``, and every other input
stream (the weight and state loads) is reached through one ``s_axis_load`` stream whose
``tdest`` names the port. Each record (a step's x, a step's h and c, a load word, ...) is the
payload's codes, each in a slot of a power-of-two number of bits, packed from bit 0 up and padded
to whole beats (:class:`BeatLayout`); ``tlast`` marks the end of a sequence on ``x`` and on the
outputs, the end of a packet on ``s_axis_load``.
"""
from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Cat, ClockDomain, Const, Module, Mux, Shape, Signal, Value
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .geometry import RTLError, refuse
from .stack import StepTags

__all__ = ["AXIS_WIDTHS", "AxisWrapper", "BeatLayout", "Field", "slot_bits"]

#: ``tdata`` widths the wrapper accepts (``--axis-width``).
AXIS_WIDTHS = tuple(2 ** k for k in range(3, 11))
#: Payload fields that frame a stream rather than carry codes (``first``/``last`` of a step or
#: of a load packet): the wrapper derives them from ``tlast``.
FRAMING = ("first", "last")


def slot_bits(bits: int) -> int:
    """The slot of a code of ``bits`` bits: the next power of two, at least 8 (a byte)."""
    return max(8, 1 << (bits - 1).bit_length())


@dataclass(frozen=True)
class Field:
    """``count`` codes of ``bits`` bits (``signed`` two's complement or unsigned) named ``name``;
    ``array``: the payload field is an array (even of one code), else one code."""
    name: str
    count: int
    bits: int
    signed: bool
    array: bool = True

    @property
    def slot(self) -> int:
        return slot_bits(self.bits)


class BeatLayout:
    """Where each code of a record sits in the beats of an AXI4-Stream of ``width`` bits.

    The fields' codes follow each other in field order, code k of a field in slot k, each slot
    ``Field.slot`` bits wide (the code in its low bits; on the way out sign-extended, or
    zero-extended when unsigned, to the slot; on the way in the slot's upper bits are ignored).
    The record's bits are cut into beats from bit 0: beat b carries record bits
    [b·width, (b+1)·width), and the last beat is padded with zeros. Slots and ``width`` are
    powers of two, so a code never straddles two beats unless it is wider than a beat.
    """

    def __init__(self, fields, width: int):
        self.fields = tuple(fields)
        self.width = width
        offsets, bit = {}, 0
        for f in self.fields:
            offsets[f.name] = bit
            bit += f.count * f.slot
        self.offsets = offsets
        self.record_bits = bit
        self.n_beats = max(1, -(-bit // width))

    @classmethod
    def of(cls, layout: data.StructLayout, width: int) -> "BeatLayout":
        """The codes of a stream payload (its framing fields left out)."""
        fields = []
        for name, member in layout:
            if name in FRAMING:
                continue
            shape = member.shape
            count, array = 1, isinstance(shape, data.ArrayLayout)
            if array:
                count, shape = shape.length, shape.elem_shape
            if isinstance(shape, data.Layout):
                raise RTLError(f"the AXI4-Stream wrapper takes fields of codes, not {name!r}: "
                               f"{shape!r}")
            s = Shape.cast(shape)
            fields.append(Field(name, count, s.width, s.signed, array))
        return cls(fields, width)

    def code_offset(self, name: str, k: int = 0) -> int:
        field = self._field(name)
        return self.offsets[name] + k * field.slot

    def _field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    # -- host side: records to beats and back (tests, drivers) ---------------------------------
    def pack(self, record: dict) -> list[int]:
        """The beats (ints of ``width`` bits) of one record ``{field: code or codes}``."""
        word = 0
        for f in self.fields:
            codes = record[f.name]
            codes = list(codes) if f.array else [codes]
            if len(codes) != f.count:
                raise ValueError(f"{f.name} has {f.count} codes, not {len(codes)}")
            for k, code in enumerate(codes):
                word |= (int(code) & ((1 << f.slot) - 1)) << self.code_offset(f.name, k)
        mask = (1 << self.width) - 1
        return [(word >> (b * self.width)) & mask for b in range(self.n_beats)]

    def unpack(self, beats) -> dict:
        """The record of ``n_beats`` beats: codes read from their slots' low bits (an array
        field as a list, a one-code field as an int)."""
        beats = list(beats)
        if len(beats) != self.n_beats:
            raise ValueError(f"a record has {self.n_beats} beats, not {len(beats)}")
        word = sum(int(b) << (k * self.width) for k, b in enumerate(beats))
        out = {}
        for f in self.fields:
            codes = []
            for k in range(f.count):
                v = (word >> self.code_offset(f.name, k)) & ((1 << f.bits) - 1)
                if f.signed and v >> (f.bits - 1):
                    v -= 1 << f.bits
                codes.append(v)
            out[f.name] = codes if f.array else codes[0]
        return out

    def padding_ok(self, beats) -> bool:
        """Every slot's upper bits are the code's sign (or zero) and the padding is zero: what
        the wrapper's outputs promise."""
        return self.pack(self.unpack(beats)) == [int(b) for b in beats]

    # -- hardware side ---------------------------------------------------------------------------
    def payload_from(self, m, record, payload):
        """Drive ``payload``'s code fields from the record's bits (slot low bits)."""
        for f in self.fields:
            target = getattr(payload, f.name)
            for k in range(f.count):
                at = self.code_offset(f.name, k)
                code = target[k] if f.array else target
                m.d.comb += code.eq(record[at:at + f.bits])

    def record_of(self, payload) -> Signal:
        """The record bits (``n_beats`` · width) of ``payload``'s codes, each extended to its slot."""
        parts = []
        for f in self.fields:
            value = getattr(payload, f.name)
            for k in range(f.count):
                code = value[k] if f.array else value
                parts.append(_extend(Value.cast(code), f))
        pad = self.n_beats * self.width - self.record_bits
        return Cat(*parts, Const(0, pad)) if pad else Cat(*parts)


def _extend(code, field: Field):
    """``code`` sign- or zero-extended to its slot."""
    if field.slot == field.bits:
        return code[:field.bits]
    top = code[field.bits - 1] if field.signed else Const(0, 1)
    return Cat(code[:field.bits], top.replicate(field.slot - field.bits))


def _streams(core):
    """The inner design's stream ports: (name, flow, payload layout), in signature order."""
    found = []
    for name, member in core.signature.members.items():
        if member.is_signature and hasattr(getattr(core, name), "payload"):
            found.append((name, member.flow, getattr(core, name).payload.shape()))
    return found


class AxisWrapper(wiring.Component):
    """The inner design behind AXI4-Stream ports (docs/axis.md has the beat layouts bit by bit).

    Latency and throughput: a step reaches the core the cycle after its last beat; a result's
    first beat leaves on the cycle the core offers it (no cycle added), one beat per cycle.
    Steps run at the core's ``cycles_per_step`` as long as a step's and a result's beats are no
    more than that.

    Parameters
    ----------
    core : wiring.Component
        The design to wrap (:func:`rtl.stack.build_design`'s): an ``x`` input stream (codes,
        ``first``, ``last``), output streams (``h`` and/or the head's ``y``), load input streams
        (``weights``, ``state``, or ``weights_l{k}``, ``state_l{k}``) with ``first``/``last``
        packets, and an ``error`` output.
    width : int
        ``tdata`` bits of every stream: a power of two from 8 to 1024.

    Members
    -------
    aclk, aresetn : ``In(1)``
        The clock, and the reset (synchronous, active low) of every register inside.
    s_axis_x_{tdata,tvalid,tready,tlast}
        Steps: each step's x codes over :attr:`x_layout`'s beats; ``tlast`` on the last beat of
        a sequence's last step (the step's ``last``). A step's ``first`` is 1 after reset and
        after a ``tlast``.
    m_axis_{o}_{tdata,tvalid,tready,tlast}
        One per output stream ``o`` of the inner design: each record over its beats, ``tlast``
        on the last beat of a sequence's last record (``h``), of every record (``y``).
    s_axis_load_{tdata,tvalid,tready,tlast,tdest}
        Load packets, one per AXI4-Stream packet (``tlast`` on its last beat); ``tdest`` picks
        the inner load port (:attr:`load_ports`, in order) and must not change inside a packet.
    error : ``Out(E + 1)``
        Bits [0, E): the inner design's ``error``; bit E: sticky AXI framing error (a ``tlast``
        inside a record, a ``tdest`` that names no port or changes inside a packet).

    Raises
    ------
    RTLError
        For a width that is not a power of two from 8 to 1024, or an inner design whose streams
        the wrapper cannot map (an x without ``first`` and ``last``; an output stream with
        ``first``/``last`` fields: the word-serial output).
    """

    def __init__(self, core, *, width: int = 32):
        try:
            if width not in AXIS_WIDTHS:
                raise RTLError(f"the AXI4-Stream width must be a power of two from 8 to 1024, "
                               f"not {width!r}")
            streams = _streams(core)
            names = [n for n, _, _ in streams]
            if "x" not in names:
                raise RTLError("the AXI4-Stream wrapper needs a design with an x stream")
            self._core, self._width = core, width
            self._x = dict((n, lay) for n, _, lay in streams)["x"]
            self._outputs = [(n, lay) for n, flow, lay in streams if flow == Out]
            self._loads = [(n, lay) for n, flow, lay in streams if flow == In and n != "x"]
            if any(name not in dict(iter(self._x)) for name in FRAMING):
                raise RTLError("the AXI4-Stream wrapper needs a design whose x step carries "
                               "first and last")
            for n, lay in self._outputs:
                if any(name in FRAMING for name, _ in lay):
                    raise RTLError(f"the AXI4-Stream wrapper serialises whole records: build the "
                                   f"design without the word-serial output (stream {n!r})")
            self.x_layout = BeatLayout.of(self._x, width)
            self.output_layouts = {n: BeatLayout.of(lay, width) for n, lay in self._outputs}
            self.load_layouts = {n: BeatLayout.of(lay, width) for n, lay in self._loads}
        except RTLError as e:
            core._MustUse__silence = True
            refuse(self, e)
        self._error_bits = len(core.error)
        ports = {"aclk": In(1), "aresetn": In(1)}
        ports.update(_axis_ports("s_axis_x", In, width))
        for n, _ in self._outputs:
            ports.update(_axis_ports(f"m_axis_{n}", Out, width))
        if self._loads:
            ports.update(_axis_ports("s_axis_load", In, width))
            ports["s_axis_load_tdest"] = In(self.tdest_bits)
        ports["error"] = Out(self._error_bits + 1)
        super().__init__(ports)

    @property
    def core(self):
        return self._core

    @property
    def width(self) -> int:
        return self._width

    @property
    def load_ports(self) -> tuple:
        """The inner load ports in ``tdest`` order (``tdest`` = index)."""
        return tuple(n for n, _ in self._loads)

    @property
    def tdest_bits(self) -> int:
        return max(1, (len(self._loads) - 1).bit_length())

    @property
    def in_flight(self) -> int:
        """Depth of the FIFO of step framing between the x and h streams: more than the steps
        the design can hold (2 per layer: one computing, one waiting to be taken)."""
        cells = getattr(self._core, "core", self._core)       # a design with a head: its core
        return 2 * len(getattr(cells, "layers", (cells,))) + 2

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = cd = ClockDomain("sync")
        m.d.comb += [cd.clk.eq(self.aclk), cd.rst.eq(~self.aresetn)]
        m.submodules.core = core = self._core
        framing_error = Signal()
        m.d.comb += self.error.eq(Cat(core.error, framing_error))

        # the h stream carries no framing: each step's `last` travels beside the design in a
        # FIFO from its x transfer to its h record (its readies hold x while it is full)
        x_port, outputs = core.x, {name: getattr(core, name) for name, _ in self._outputs}
        ends = {name: Const(1) for name in outputs}     # one record per sequence (y)
        if "h" in outputs:
            m.submodules.tags = tags = StepTags(self.in_flight, self._x, dict(self._outputs)["h"])
            wiring.connect(m, tags.downstream_x, core.x)
            wiring.connect(m, core.h, tags.upstream_h)
            x_port, outputs["h"], ends["h"] = tags.upstream_x, tags.h, tags.last
        self._x_input(m, x_port, framing_error)
        for name, port in outputs.items():
            self._output(m, name, port, ends[name])
        if self._loads:
            self._load_input(m, core, framing_error)
        return m

    # -- s_axis_x -> x ---------------------------------------------------------------------------
    def _x_input(self, m, x, framing_error):
        """Beats into a record register; the record is the payload of ``x``. ``first`` is 1
        after reset and after a ``tlast`` step, ``last`` is the step's ``tlast``; a ``tlast``
        inside a step drops the partial step."""
        lay, W = self.x_layout, self._width
        n = lay.n_beats
        record = Signal(n * W)
        beat = Signal(range(n))
        full = Signal()
        record_last = Signal()
        starts_sequence = Signal(init=1)
        take = x.valid & x.ready
        m.d.comb += [self.s_axis_x_tready.eq((~full | take) & self.aresetn),
                     x.valid.eq(full),
                     x.payload.first.eq(starts_sequence),
                     x.payload.last.eq(record_last)]
        lay.payload_from(m, record, x.payload)
        fire = self.s_axis_x_tvalid & self.s_axis_x_tready
        with m.If(take):
            m.d.sync += [full.eq(0), starts_sequence.eq(record_last)]
        with m.If(fire):
            m.d.sync += record.eq(Cat(record[W:], self.s_axis_x_tdata) if n > 1 else self.s_axis_x_tdata)
            with m.If(beat == n - 1):
                m.d.sync += [beat.eq(0), full.eq(1), record_last.eq(self.s_axis_x_tlast)]
            with m.Elif(self.s_axis_x_tlast):        # the sequence ended inside a step
                m.d.sync += [beat.eq(0), framing_error.eq(1), starts_sequence.eq(1)]
            with m.Else():
                m.d.sync += beat.eq(beat + 1)

    # -- o -> m_axis_o ---------------------------------------------------------------------------
    def _output(self, m, name, port, ends):
        """The output record (held stable by the design until taken) cut into beats by a beat
        counter; the design's record is taken with its last beat, which carries ``tlast`` when
        ``ends`` (the record ends a sequence)."""
        lay, W = self.output_layouts[name], self._width
        n = lay.n_beats
        record = Signal(n * W)
        m.d.comb += record.eq(lay.record_of(port.payload))
        beat = Signal(range(n))
        final = beat == n - 1
        tdata, tvalid, tready, tlast = (getattr(self, f"m_axis_{name}_{s}")
                                        for s in ("tdata", "tvalid", "tready", "tlast"))
        m.d.comb += [tdata.eq(record.word_select(beat, W) if n > 1 else record),
                     tvalid.eq(port.valid),
                     tlast.eq(final & ends),
                     port.ready.eq(tready & final)]
        with m.If(tvalid & tready):
            m.d.sync += beat.eq(Mux(final, 0, beat + 1))

    # -- s_axis_load -> the load ports -----------------------------------------------------------
    def _load_input(self, m, core, framing_error):
        """Beats into one record register shared by all load ports; the packet's ``tdest``
        (from its first beat) picks the port and so the record size; ``first`` and ``last`` of
        each word come from the packet's framing."""
        W = self._width
        ports = [(getattr(core, n), self.load_layouts[n]) for n in self.load_ports]
        most = max(lay.n_beats for _, lay in ports)
        record = Signal(most * W)
        beat = Signal(range(most))
        full = Signal()
        word_first = Signal()
        word_last = Signal()
        packet_open = Signal()
        next_first = Signal(init=1)
        dest = Signal(self.tdest_bits)
        tdata, tvalid, tready, tlast, tdest = (getattr(self, f"s_axis_load_{s}") for s in
                                               ("tdata", "tvalid", "tready", "tlast", "tdest"))
        beat_dest = Mux(packet_open, dest, tdest)

        take = Signal()
        for k, (port, lay) in enumerate(ports):
            here = full & (dest == k)
            base = (most - lay.n_beats) * W    # the newest beats are at the top
            lay.payload_from(m, record[base:], port.payload)
            m.d.comb += [port.valid.eq(here), port.payload.first.eq(word_first),
                         port.payload.last.eq(word_last)]
            with m.If(here & port.ready):
                m.d.comb += take.eq(1)
        m.d.comb += tready.eq((~full | take) & self.aresetn)

        fire = tvalid & tready
        with m.If(take):
            m.d.sync += full.eq(0)
        with m.If(fire):
            m.d.sync += [record.eq(Cat(record[W:], tdata) if most > 1 else tdata),
                         packet_open.eq(~tlast)]
            with m.If(~packet_open):
                m.d.sync += dest.eq(tdest)
            with m.Elif(tdest != dest):                # tdest changed inside a packet
                m.d.sync += framing_error.eq(1)
            with m.If(tlast):
                m.d.sync += next_first.eq(1)
            at_end = Signal()
            known = Signal()
            for k, (_, lay) in enumerate(ports):
                with m.If(beat_dest == k):
                    m.d.comb += [at_end.eq(beat == lay.n_beats - 1), known.eq(1)]
            with m.If(~known):                          # no such port: the beat is dropped
                m.d.sync += [framing_error.eq(1), beat.eq(0)]
            with m.Elif(at_end):
                m.d.sync += [beat.eq(0), full.eq(1), word_first.eq(next_first),
                             word_last.eq(tlast)]
                with m.If(~tlast):
                    m.d.sync += next_first.eq(0)
            with m.Elif(tlast):                         # the packet ended inside a word
                m.d.sync += [beat.eq(0), framing_error.eq(1)]
            with m.Else():
                m.d.sync += beat.eq(beat + 1)


def _axis_ports(prefix: str, flow, width: int) -> dict:
    """The ports of one AXI4-Stream: ``prefix_tdata`` etc., ``flow`` In for a slave input."""
    back = Out if flow == In else In
    return {f"{prefix}_tdata": flow(width), f"{prefix}_tvalid": flow(1),
            f"{prefix}_tready": back(1), f"{prefix}_tlast": flow(1)}

