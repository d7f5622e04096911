"""Top level: the LSTM cell with stream interfaces and the packet protocol of its loads
(docs/protocol.md)."""
from amaranth.hdl import Array, Cat, Module, Mux, ResetSignal, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from model.activations import build_table
from model.config import Config
from model.weights import QuantizedWeights

from .cast import CAST_LATENCY, cast_registered
from .cell import CellUpdate
from .geometry import Geometry, RTLError, issue_cycles_for, refuse, state_layout, wide_for
from .mac import MACArray
from .pipeline import (TREE_SHARE, copies_for, delay, read_port, register_copies,
                       register_copies_tree, write_port)
from .pwl import PWLUnit

__all__ = ["LSTMCell", "STATE_SHIFT_LATENCY", "stream_layouts"]

SERIAL_BUFFER = 4
"""Words of the word-serial output's buffer (:meth:`LSTMCell._serial_output`)."""

STATE_SHIFT_LATENCY = 3
"""A state word is shifted into the initial state on this edge after it is taken (the levels of
its enable's copy tree); x is accepted from the cycle after that edge on."""


def stream_layouts(config: Config, n_inputs: int, n_hidden: int, output_c: bool = True,
                   serial_output: bool = False):
    """Payload layouts of the x, h and state streams (fields at increasing bit offsets).

    The x step carries ``first`` (the step starts a sequence) and ``last`` (it ends one; both on
    the same step for T = 1). The cell itself ignores ``last``: a stack passes it along to each
    layer, and the classifier head (:mod:`rtl.head`) classifies the h of each ``last`` step.

    With ``serial_output`` the h stream carries one unit per transfer: ``h``, ``c`` (when
    ``output_c``), ``first`` (unit 0), ``last`` (unit H-1); with c it is the state stream's
    layout, so a result can be loaded back as an initial state packet."""
    wx, wh, wc = (signed(config.fmt(n).bits) for n in ("x", "h", "c"))
    step = data.StructLayout({"x": data.ArrayLayout(wx, n_inputs), "first": 1, "last": 1})
    if serial_output:
        out = {"h": wh, **({"c": wc} if output_c else {}), "first": 1, "last": 1}
    else:
        out = {"h": data.ArrayLayout(wh, n_hidden)}
        if output_c:
            out["c"] = data.ArrayLayout(wc, n_hidden)
    return step, data.StructLayout(out), state_layout(config)


def _wrap_count(count, last, n: int):
    """Assignments that advance ``count`` (0 .. n-1, wrapping) and keep ``last`` (a register)
    equal to ``count == n - 1``, so no compare of the counter lies on the paths ``last`` feeds."""
    return [count.eq(Mux(last, 0, count + 1)), last.eq(Mux(last, n == 1, count == n - 2))]


class LSTMCell(wiring.Component):
    """A fixed-point LSTM cell that computes exactly :class:`model.cell.FixedLSTM`'s integers.

    One step: accept x_t, run the P MAC lanes over the 4H x (X+H) weights, then (overlapped with
    the lanes) requantize each row to z, apply sigmoid/tanh, update c and h unit by unit; when the
    last unit is done, commit h_t, c_t and offer them on the output stream.

    Cycles per step, with inputs waiting and the output not stalled::

        cycles_per_step = ceil(4H (X+H) / P) + overhead        (+ H - 1 with serial_output)
        overhead = 2 + MACArray.latency + CAST_LATENCY + PWLUnit.latency + CellUpdate.latency
                 = 2 + (10 + ceil(log2 P)) + 2 + 10 + 17 = 41 + ceil(log2 P)
                   (+ 1 when P > X+H, + Geometry.logic_delay with logic lanes)

    (accept and commit, lane pipeline, z cast, gate activations, cell update of the last unit;
    ceil(log2 P) is at least 1: 42 at P <= 2, 44 at P = 8). Every stage of these pipelines
    holds at most one carry chain, one multiplier or one ROM read (docs/architecture.md).
    A sequence of T steps takes T * cycles_per_step from the first accept to its last output.
    Output h_t is taken ``cycles_per_step`` cycles after x_t is accepted. With
    ``serial_output``, word k (unit k) is taken ``cycles_per_step - H + k + 1`` cycles after
    (the first on the edge the parallel result would be, the last on ``cycles_per_step``, the
    edge the next x is accepted on), so a sequence also takes T * cycles_per_step
    (:meth:`cycles_per_sequence`).

    Parameters
    ----------
    config : :class:`model.config.Config`
        Formats, cast modes, activation tables and the lane count.
    weights : :class:`model.weights.QuantizedWeights`
        Initial memory contents (sizes X and H come from them).
    lanes : int, optional
        P, overriding ``config.lanes``; 1 <= P <= 2(X+H) (above X+H two rows end per cycle:
        one cycle more per step).
    logic_lanes : int
        Of the P lanes, the last L multiply in logic instead of a multiplier block (0 to P;
        :attr:`Geometry.logic_delay` cycles more per step, 0 at weights up to 16 bits).
    output_c : bool
        Also put c_t on the output stream.
    serial_output : bool
        Word-serial h stream (off by default): one unit per transfer (``h``, ``c`` when
        ``output_c``, ``first`` on unit 0, ``last`` on unit H-1; with c, the state stream's
        layout). Saves the output's copies of h and c (2 x 16H flip-flops at the default
        formats; a 4-word buffer instead); the next step starts after the last word has
        entered the buffer, so ``cycles_per_step`` grows by H - 1. Loads are accepted while
        the words leave (the step is no longer in flight), so the h stream may be wired
        straight into ``state``.

    Members
    -------
    x : ``In(stream.Signature(step_layout))``
        ``x``: X codes in the x format; ``first``: this step starts a sequence (h and c restart
        from the initial state: zero after reset, or what the ``state`` port loaded); ``last``:
        this step ends a sequence (ignored by the cell; see :func:`stream_layouts`).
    h : ``Out(stream.Signature(output_layout))``
        ``h``: H codes in the h format; ``c``: H codes in the c format (when ``output_c``);
        with ``serial_output``, one unit per transfer (see above).
    weights : ``In(stream.Signature(load_layout))``
        Runtime weight load, one packet of N = 4H(X+H) + 4H words (``data``, ``first``,
        ``last``) in :meth:`Geometry.load_packet` order. Accepted only between steps.
    state : ``In(stream.Signature(state_layout))``
        Initial state h0, c0 for ``first`` steps: one packet of H words (``h``, ``c``,
        ``first``, ``last``), unit 0 first.
    error : ``Out(1)``
        Sticky: a malformed packet was seen (cleared by reset only).

    Loads are packets (docs/protocol.md): from the first word of a packet to its last no x is
    accepted, whatever gaps the producer leaves, so a step never sees a partly loaded matrix
    or state. A word with ``first`` (re)starts a packet; a word outside a packet is dropped; a
    packet whose ``last`` does not fall on its last word is refused. Each of these sets
    ``error``. A refused or interrupted weight packet has already overwritten part of the
    memory: no x is accepted until a complete weight packet arrives (likewise for the state,
    until a complete state packet or a reset). Every ready is low while ``rst`` is high.

    Raises
    ------
    RTLError
        For lanes outside 1..2(X+H), logic lanes outside 0..P, weights that do not fit the
        config, or an accumulator the config cannot size for these weights.
    """

    def __init__(self, config: Config, weights: QuantizedWeights, *, lanes=None, output_c=True,
                 serial_output=False, logic_lanes=0):
        try:
            self._geometry = g = Geometry.of(config, weights, lanes, logic_lanes)
        except RTLError as e:
            refuse(self, e)
        self._output_c = bool(output_c)
        self._serial = bool(serial_output)
        self._tables = {name: build_table(spec) for name, spec in config.tables.items()}
        self.step_layout, self.output_layout, self.state_layout = stream_layouts(
            config, g.n_inputs, g.n_hidden, self._output_c, self._serial)
        super().__init__({
            "x": In(stream.Signature(self.step_layout)),
            "h": Out(stream.Signature(self.output_layout)),
            "weights": In(stream.Signature(g.load_layout)),
            "state": In(stream.Signature(self.state_layout)),
            "error": Out(1),
        })

    @property
    def geometry(self) -> Geometry:
        return self._geometry

    @staticmethod
    def overhead_for(lanes: int, wide: bool = False, logic_delay: int = 0) -> int:
        """:attr:`overhead` of a cell with P = ``lanes`` (no component built); ``wide``: P >
        X+H (:attr:`Geometry.wide`, one cycle more), ``logic_delay``:
        :attr:`Geometry.logic_delay` (logic lanes)."""
        return (2 + MACArray.latency_for(lanes, logic_delay) + CAST_LATENCY + PWLUnit.latency
                + int(bool(wide)) + CellUpdate.latency)

    @staticmethod
    def cycles_per_step_for(n_inputs: int, n_hidden: int, lanes: int, logic_delay: int = 0,
                            serial_output: bool = False) -> int:
        """:attr:`cycles_per_step` of a cell with X = ``n_inputs``, H = ``n_hidden`` and P =
        ``lanes`` (no component built, no weights: a host checking a board, a cost table);
        ``logic_delay``: :attr:`Geometry.logic_delay`, 0 without logic lanes or with weights of
        up to 16 bits."""
        X, H, P = n_inputs, n_hidden, lanes
        return (issue_cycles_for(X, H, P) + LSTMCell.overhead_for(P, wide_for(X, H, P), logic_delay)
                + (H - 1 if serial_output else 0))

    @property
    def overhead(self) -> int:
        """Pipeline cycles of a step beyond the MAC bound (the docstring's closed form)."""
        g = self._geometry
        return self.overhead_for(g.lanes, g.wide, g.logic_delay)

    @property
    def serial_output(self) -> bool:
        return self._serial

    @property
    def cycles_per_step(self) -> int:
        """Cycles per step with x waiting and h always ready; a word-serial output adds H - 1
        (its first word leaves on the edge the parallel result would; the next step starts
        after the last word has entered the output buffer)."""
        g = self._geometry
        return self.cycles_per_step_for(g.n_inputs, g.n_hidden, g.lanes, g.logic_delay,
                                        self._serial)

    def cycles_per_sequence(self, steps: int) -> int:
        """Cycles from a sequence's first accept to its last output, inputs waiting and the
        output always ready: T * cycles_per_step (with ``serial_output`` too: its last word is
        taken on the edge the next x could be accepted on)."""
        return steps * self.cycles_per_step

    @property
    def mac_efficiency(self) -> float:
        g = self._geometry
        return g.n_weights / (g.lanes * self.cycles_per_step)

    def elaborate(self, platform):
        m = Module()
        g, cfg = self._geometry, self._geometry.config
        H, X = g.n_hidden, g.n_inputs
        m.submodules.mac = mac = MACArray(g)
        m.submodules.sigmoid = sigmoid = PWLUnit(self._tables["sigmoid"])
        m.submodules.tanh = tanh = PWLUnit(self._tables["tanh"])
        if g.wide:
            # two rows per cycle: the MAC's even rows (gates i and g) go to sigmoid and tanh,
            # its odd rows (f and o) to a second sigmoid unit
            m.submodules.sigmoid1 = sigmoid1 = PWLUnit(self._tables["sigmoid"])
        m.submodules.cell = cell = CellUpdate(cfg, self._tables["tanh_c"])
        rst = ResetSignal()

        # state: the initial h (loaded through `state`) and h_{t-1} (it is also the output
        # register's h: no second copy) are registers, as the lanes read all of h at once.
        # c is read one unit at a time, in unit order, by the cell update: c_{t-1} and the
        # initial c are small memories (`c_state`, `c_init`; LUT RAM), written unit by unit
        # and read through a register one unit ahead (see below), so no wide enable or
        # select spans them. The output's c is a reset-less copy of c_t.
        wh, wc = signed(cfg.fmt("h").bits), signed(cfg.fmt("c").bits)
        h_init = Signal(data.ArrayLayout(wh, H))
        # LUT RAM on ECP5 (a block RAM read without its output register would cost most of a
        # cycle); elsewhere the synthesis tool's choice (iCE40 has no LUT RAM: block RAM there)
        lut_ram = ({"ram_style": "distributed"}
                   if getattr(platform, "bram_output_register", False) else {})
        c_state = Memory(shape=wc, depth=H, init=[], attrs=lut_ram)
        c_init = Memory(shape=wc, depth=H, init=[], attrs=lut_ram)
        m.submodules.c_state = c_state
        m.submodules.c_init = c_init
        # reset zeroes c_{t-1} and the initial c: flags that stand for the memories' zeros
        # until a step writes all of c_state (cleared when a step starts: it writes every
        # unit before the next one starts) or a state word is written into c_init
        c_state_zero = Signal(init=1)
        c_init_zero = Signal(init=1)
        # results of this step, shifted in unit by unit (datapath: read only when all are in)
        h_next = Signal(data.ArrayLayout(wh, H), reset_less=not self._serial)
        c_next = Signal(data.ArrayLayout(wc, H), reset_less=True)
        if self._serial:
            # word-serial output: the words leave from h_next and c_next (rotating), and h_next
            # stays h_{t-1} until the next step's first result: no h_prev, no output copy of c
            h_prev = h_next
        else:
            h_prev = Signal(data.ArrayLayout(wh, H))
            m.d.comb += self.h.payload.h.eq(h_prev)
            if self._output_c:
                c_out = Signal(data.ArrayLayout(wc, H), reset_less=True)
                m.d.comb += self.h.payload.c.eq(c_out)
        done = Signal(range(H))               # units of this step shifted in so far
        done_last = Signal(init=1 if H == 1 else 0)   # done == H - 1, kept in a register
        done_penult = Signal(init=int(H == 2))        # done == H - 2 (read when wide)
        idle = Signal(init=1)                  # no step in flight
        output_full = Signal()                # the output register holds an untaken result
        words_left = Signal()                 # serial output: words of the result still to push

        self._load_control(m, platform, mac, h_init, c_init, c_init_zero, idle, words_left, rst)

        # accept x_t: start the lanes on [x; h_{t-1}], or [x; h0] for a `first` step
        first = self.x.payload.first
        start = self.x.valid & self.x.ready
        m.d.comb += mac.start.eq(start)
        m.d.comb += [mac.vector[n].eq(self.x.payload.x[n]) for n in range(X)]
        m.d.comb += [mac.vector[X + u].eq(Mux(first, h_init[u], h_prev[u])) for u in range(H)]
        # where this step's c_{t-1} comes from, decided on the accept: c_init for a `first`
        # step, else c_state; zero in place of either memory after reset
        c_from_zero = Signal()
        c_from_init = Signal()
        with m.If(start):
            m.d.sync += [idle.eq(0), c_state_zero.eq(0),
                         c_from_init.eq(first),
                         c_from_zero.eq(Mux(first, c_init_zero, c_state_zero))]

        # each finished row: cast to z, then both activations (the gate picks one)
        z = cast_registered(m, mac.row_acc, cfg.fmt("accumulator").frac, cfg.spec("z"), "z")
        z_valid = delay(m, mac.row_valid, CAST_LATENCY, "z_valid", reset_less=False)
        m.d.comb += [sigmoid.q.eq(z), sigmoid.q_valid.eq(z_valid), tanh.q.eq(z), tanh.q_valid.eq(z_valid)]
        gate = delay(m, mac.row[:2], CAST_LATENCY + PWLUnit.latency, "gate")

        # collect i, f, g of a unit; its o launches the cell update with c_{t-1}
        i_gate = Signal.like(sigmoid.y, reset_less=True)
        f_gate = Signal.like(sigmoid.y, reset_less=True)
        candidate = Signal.like(tanh.y, reset_less=True)
        launch = Signal()
        if g.wide:
            # the odd rows through their own cast and sigmoid unit. A unit's o and its g, or
            # o and the next unit's i, may arrive together: the launch waits a cycle for o (in
            # `o_gate`) and g (in `candidate`), and i is written a cycle late, so the next
            # unit's i (at the earliest with this o) replaces this one only after the launch.
            # Every input of the cell update is then a register.
            z1 = cast_registered(m, mac.row_acc1, cfg.fmt("accumulator").frac, cfg.spec("z"),
                                 "z1")
            z1_valid = delay(m, mac.row_valid1, CAST_LATENCY, "z1_valid", reset_less=False)
            m.d.comb += [sigmoid1.q.eq(z1), sigmoid1.q_valid.eq(z1_valid)]
            gate1 = delay(m, mac.row1[:2], CAST_LATENCY + PWLUnit.latency, "gate1")
            o_gate = Signal.like(sigmoid1.y, reset_less=True)
            i_late = delay(m, sigmoid.y, 1, "i_late")
            i_late_valid = delay(m, sigmoid.y_valid & ~gate[1], 1, "i_late_valid",
                                 reset_less=False)
            loads = {"i": (i_late, i_late_valid), "g": (tanh.y, sigmoid.y_valid & gate[1]),
                     "f": (sigmoid1.y, sigmoid1.y_valid & ~gate1[1])}
            # o arrives: into its register; `c_unit` (below) moves a cycle before the launch:
            # launches may come every other cycle here, and c_prev is ready three edges after
            # c_unit moves
            c_unit_moves = sigmoid1.y_valid & gate1[1]
            with m.If(c_unit_moves):
                m.d.sync += o_gate.eq(sigmoid1.y)
            m.d.sync += launch.eq(c_unit_moves)
        else:
            o_gate = sigmoid.y
            m.d.comb += launch.eq(sigmoid.y_valid & (gate == 3))
            c_unit_moves = launch
            loads = {"i": (sigmoid.y, sigmoid.y_valid & (gate == 0)),
                     "f": (sigmoid.y, sigmoid.y_valid & (gate == 1)),
                     "g": (tanh.y, sigmoid.y_valid & (gate == 2))}
        # i, f and g into their registers (the cell update also takes the registers' inputs,
        # for multiplier blocks that register their operands themselves)
        for name, reg in (("i", i_gate), ("f", f_gate), ("g", candidate)):
            value, load = loads[name]
            with m.If(load):
                m.d.sync += reg.eq(value)
            m.d.comb += [getattr(cell, f"{name}_next").eq(value),
                         getattr(cell, f"{name}_load").eq(load)]
        # c_{t-1} of the next unit to launch: its number (`c_unit`) moves on the edge after a
        # launch; both memories are read at it on every edge, and the word of this step's
        # source is registered into `c_prev` on the next: two edges after the launch, and the
        # next launch is at least 4 rows later. (Wide: c_unit moves on the edge before the
        # launch, so c_prev is ready two cycles after the launch, and the next launch is at
        # least 4 rows, 2 cycles, later.) A unit's c_t is written into c_state when its
        # result arrives (its c_{t-1} was read long before; later units' are at other
        # addresses), so c_state holds c_{t-1} whenever a step starts.
        c_unit = Signal(range(H))
        c_unit_last = Signal(init=1 if H == 1 else 0)
        with m.If(c_unit_moves):
            m.d.sync += _wrap_count(c_unit, c_unit_last, H)
        c_state_rd = read_port(c_state, "c_state_rd")
        c_init_rd = read_port(c_init, "c_init_rd")
        c_prev = Signal(wc, reset_less=True)
        c_prev_next = Signal(wc)
        m.d.comb += [c_state_rd.addr.eq(c_unit), c_init_rd.addr.eq(c_unit),
                     c_prev_next.eq(Mux(c_from_zero, 0,
                                        Mux(c_from_init, c_init_rd.data, c_state_rd.data))),
                     cell.c_prev_next.eq(c_prev_next)]
        m.d.sync += c_prev.eq(c_prev_next)
        m.d.comb += [cell.i.eq(i_gate), cell.f.eq(f_gate), cell.g.eq(candidate),
                     cell.o.eq(o_gate), cell.c_prev.eq(c_prev), cell.valid.eq(launch)]

        # results arrive unit by unit: shift them in; `finished` (a register, so the commit
        # below is one gate from registers) rises as the last unit's result is shifted in
        finished = Signal()
        # the shift-in's enable spans the whole of h_next and c_next: a two-level tree fed two
        # cycles ahead, one copy per TREE_SHARE bits
        shift_in, _ = register_copies_tree(
            m, platform, cell.out_valid_next2, copies_for(H, wh.width + wc.width, TREE_SHARE),
            "shift_in")
        c_state_wr = write_port(c_state, "c_state_wr")
        m.d.comb += [c_state_wr.addr.eq(done), c_state_wr.data.eq(cell.c),
                     c_state_wr.en.eq(cell.out_valid)]
        with m.If(cell.out_valid):
            m.d.sync += [h_next[H - 1].eq(cell.h), c_next[H - 1].eq(cell.c),
                         *_wrap_count(done, done_last, H)]
            if g.wide:
                m.d.sync += done_penult.eq(Mux(done_last, H == 2, done == H - 3))
            with m.If(done_last):
                m.d.sync += finished.eq(1)
        for u in range(H - 1):
            with m.If(shift_in[u * len(shift_in) // H]):
                m.d.sync += [h_next[u].eq(h_next[u + 1]), c_next[u].eq(c_next[u + 1])]

        # commit when all units are done and the output register is empty. Waiting for an
        # empty register (not for h.ready) keeps the consumer's ready off the enable of the
        # wide state registers; it costs a cycle only when a stalled output is taken on the
        # very cycle the next result is ready (or the cycle before).
        if self._serial:
            m.d.comb += words_left.eq(finished)
            self._serial_output(m, platform, h_next, c_next, done, done_last, finished,
                                cell.out_valid & done_last, idle, rst)
            return m
        m.d.comb += self.h.valid.eq(output_full & ~rst)
        taken = self.h.valid & self.h.ready
        with m.If(taken):
            m.d.sync += output_full.eq(0)
        commit = Signal()       # equals the copies below: a commit now
        # the commit's enable spans h_prev and the output's c, so it is a three-level tree of
        # registers (rtl.pipeline.register_copies_tree, one copy per TREE_SHARE bits in the
        # last level) whose input is the commit three cycles ahead. The cell says a result arrives
        # in one or two cycles (out_valid_next, out_valid_next2; done_last stays put between
        # results, 4 cycles or more apart, 2 or more when wide: see arrive_next2), and the
        # output register's state before this
        # cycle's transfer stands for the next ones (an output taken now frees the register
        # for a commit three cycles later), so neither the cell's valid nor the consumer's
        # ready is on a path into the copies. The control keeps its own registers of the
        # commit one and two cycles ahead (`commit_soon`, `commit_soon2`): the trees' copies
        # are placed beside the state they enable, across the chip.
        arrive = cell.out_valid & done_last              # the last result arrives now
        arrive_next = cell.out_valid_next & done_last    # ... in the next cycle
        arrive_next2 = cell.out_valid_next2 & done_last  # ... in two cycles
        if g.wide:
            # results may come every other cycle: the one in two cycles is the last also when
            # the one arriving now is the last but one
            arrive_next2 = cell.out_valid_next2 & (done_last | (cell.out_valid & done_penult))
        commit_soon = Signal()                           # commit in the next cycle
        commit_soon2 = Signal()                          # ... in two cycles
        # all units in within two cycles and the register empty: a commit three cycles ahead
        commit_ahead3 = Signal()
        m.d.comb += commit_ahead3.eq((finished | arrive | arrive_next | arrive_next2)
                                     & ~(commit | commit_soon | commit_soon2 | output_full))
        m.d.sync += [commit_soon2.eq(commit_ahead3), commit_soon.eq(commit_soon2)]
        commit_copies, _ = register_copies_tree(
            m, platform, commit_ahead3, copies_for(H, wh.width + wc.width, TREE_SHARE),
            "commit", levels=3)
        for u in range(H):
            with m.If(commit_copies[u * len(commit_copies) // H]):
                m.d.sync += h_prev[u].eq(h_next[u])
                if self._output_c:
                    m.d.sync += c_out[u].eq(c_next[u])
        m.d.sync += commit.eq(commit_soon)
        with m.If(commit):
            m.d.sync += [finished.eq(0), idle.eq(1), output_full.eq(1)]
        return m

    def _serial_output(self, m, platform, h_next, c_next, count, count_last, finished, arrive,
                       idle, rst):
        """Word-serial output: when all units are in (``arrive``: the last one arrives now;
        ``finished``: all are in and words are left to push), push unit 0 first into a small
        output buffer (:data:`SERIAL_BUFFER` words), rotating h_next and c_next by one unit per
        word pushed (``count`` numbers the words); the consumer takes the words from the
        buffer. After H pushes h_next is back in unit order: it is h_{t-1} for the next step.

        The rotation's enable spans all of h_next and c_next, so it is copies of a register
        (``push``), decided a cycle ahead from registers only: a word is pushed on the next
        edge if one is left and the buffer has room even if nothing is taken meanwhile
        (``level + push < SERIAL_BUFFER``). The consumer's ready moves only the buffer's read
        side. The step is no longer in flight once its first word is offered (``idle`` rises:
        loads are accepted while the words leave); the next x waits only for the last push
        (``words_left``), so with a stalled consumer a step's words may wait in the buffer
        while the next step runs."""
        H = self._geometry.n_hidden
        cfg = self._geometry.config
        depth = SERIAL_BUFFER
        words = [Signal(self.output_layout, name=f"out_word{k}", reset_less=True)
                 for k in range(depth)]
        write_at = Signal(range(depth))
        read_at = Signal(range(depth))
        level = Signal(range(depth + 1))           # words in the buffer
        nonempty = Signal()                        # level != 0, a register
        push = Signal()                            # a word enters the buffer on this edge
        taken = self.h.valid & self.h.ready
        m.d.comb += [self.h.valid.eq(nonempty & ~rst), self.h.payload.eq(Array(words)[read_at])]

        word = Signal(self.output_layout)
        m.d.comb += [word.h.eq(h_next[0]), word.first.eq(count == 0), word.last.eq(count_last)]
        if self._output_c:
            m.d.comb += word.c.eq(c_next[0])
        level_next = level + push - taken
        m.d.sync += [level.eq(level_next), nonempty.eq(level_next != 0)]
        with m.If(taken):
            m.d.sync += read_at.eq(read_at + 1)
        with m.If(push):
            m.d.sync += [Array(words)[write_at].eq(word), write_at.eq(write_at + 1),
                         *_wrap_count(count, count_last, H)]
            with m.If(count_last):
                m.d.sync += finished.eq(0)
        # the step is done (``idle``) once its first word is offered: at once if it enters an
        # empty buffer (or one emptied on the same edge), else when the words before it (the
        # last step's, with a stalled consumer) have been taken
        ahead = Signal(range(depth))              # words still before this step's first word
        queued = Signal()                         # that first word waits behind them
        older = level - taken                     # words left before a word pushed now
        with m.If(push & (count == 0)):
            with m.If(older == 0):
                m.d.sync += idle.eq(1)
            with m.Else():
                m.d.sync += [queued.eq(1), ahead.eq(older)]
        with m.If(queued & taken):
            m.d.sync += ahead.eq(ahead - 1)
            with m.If(ahead == 1):
                m.d.sync += [idle.eq(1), queued.eq(0)]
        pushing_next = Mux(push & count_last, 0, finished | arrive)
        push_next = pushing_next & (level + push < depth)
        m.d.sync += push.eq(push_next)
        rotate = register_copies(m, platform, push_next,
                                 copies_for(H, cfg.fmt("h").bits + cfg.fmt("c").bits), "rotate")
        for u in range(H):
            with m.If(rotate[u * len(rotate) // H]):
                m.d.sync += [h_next[u].eq(h_next[(u + 1) % H]), c_next[u].eq(c_next[(u + 1) % H])]

    def _load_control(self, m, platform, mac, h_init, c_init, c_init_zero, idle, words_left,
                      rst):
        """The ``weights`` and ``state`` packets and the readies of all three inputs (x also
        waits for a serial output's last word, ``words_left``)."""
        H = self._geometry.n_hidden
        w, s = self.weights, self.state
        w_fire = w.valid & w.ready
        s_fire = s.valid & s.ready
        # a complete weight packet is in memory (reset-less: a reset does not restore the
        # memory, so a packet cut short by a reset leaves it invalid); likewise the state
        weights_ok = Signal(init=1, reset_less=True)
        state_ok = Signal(init=1)
        state_count = Signal(range(H))
        state_last = Signal(init=int(H == 1))          # state_count == H - 1, a register
        state_word = Signal(range(H))
        state_write = Signal()
        # x opens on the second cycle after the last load word or reset, from registers only:
        # its ready then depends on no load handshake of the same cycle (`state_wait`: a
        # state word is shifted in on the third edge after it is accepted, so x waits for
        # that edge: the fourth cycle after a state word)
        x_open = Signal(init=1, reset_less=True)
        state_wait = Signal()
        m.d.comb += [mac.load_data.eq(w.payload.data),
                     mac.load_restart.eq(w.payload.first),
                     state_word.eq(Mux(s.payload.first, 0, state_count))]
        # the word offered now is the packet's last, H-1: a select between a constant and a
        # register (state_last is kept beside the counter, so its compare is not on the path
        # into the FSM's next state)
        state_at_end = Mux(s.payload.first, H == 1, state_last)

        def packet_word(first, last, at_end, ok, open_state, is_open):
            """A word of a packet was written: close the packet on its last word (commit on a
            good `last`, refuse otherwise), or keep it open."""
            m.d.sync += ok.eq(0)
            if is_open:
                with m.If(first):                  # restarts: the open packet is abandoned
                    m.d.sync += self.error.eq(1)
            with m.If(at_end & last):
                m.d.sync += ok.eq(1)
                m.next = "IDLE"
            with m.Elif(at_end | last):            # `last` early, or missing at word N-1
                m.d.sync += self.error.eq(1)
                m.next = "IDLE"
            with m.Else():
                m.next = open_state

        with m.FSM(name="load") as fsm:
            with m.State("IDLE"):
                # weights first, then state, then x; loads only between steps
                m.d.comb += [w.ready.eq(~rst & idle),
                             s.ready.eq(~rst & idle & ~w.valid),
                             self.x.ready.eq(~rst & idle & ~w.valid & ~s.valid
                                             & x_open & ~words_left)]
                with m.If(w_fire):
                    with m.If(w.payload.first):
                        m.d.comb += mac.load_write.eq(1)
                        packet_word(1, w.payload.last, mac.load_at_end, weights_ok,
                                    "LOAD_WEIGHTS", False)
                    with m.Else():                 # outside a packet: dropped
                        m.d.sync += self.error.eq(1)
                with m.If(s_fire):
                    with m.If(s.payload.first):
                        m.d.comb += state_write.eq(1)
                        packet_word(1, s.payload.last, state_at_end, state_ok,
                                    "LOAD_STATE", False)
                    with m.Else():
                        m.d.sync += self.error.eq(1)
            with m.State("LOAD_WEIGHTS"):
                m.d.comb += w.ready.eq(~rst)
                with m.If(w_fire):
                    m.d.comb += mac.load_write.eq(1)
                    packet_word(w.payload.first, w.payload.last, mac.load_at_end, weights_ok,
                                "LOAD_WEIGHTS", True)
            with m.State("LOAD_STATE"):
                m.d.comb += s.ready.eq(~rst)
                with m.If(s_fire):
                    m.d.comb += state_write.eq(1)
                    packet_word(s.payload.first, s.payload.last, state_at_end, state_ok,
                                "LOAD_STATE", True)

        # a state word is shifted in (unit 0 first) on the third edge after it is accepted: the
        # wide shift's enable is the last level of a three-level tree of register copies (it
        # spans the whole initial state, one copy per TREE_SHARE bits), so neither the
        # handshake nor one register fans out to it. x waits for that edge: `state_wait` is
        # the handshake or a state word accepted in one of the two cycles before (registers of
        # the control's own beside the tree)
        cfg = self._geometry.config
        copies = copies_for(H, cfg.fmt("h").bits, TREE_SHARE)
        shift, _ = register_copies_tree(m, platform, state_write, copies, "state_shift",
                                        levels=STATE_SHIFT_LATENCY)
        waits = [s_fire]
        for k in range(1, STATE_SHIFT_LATENCY):
            waits.append(delay(m, waits[-1] if k > 1 else state_write, 1, f"state_write{k}",
                               reset_less=False))
        m.d.comb += state_wait.eq(Cat(*waits).any())
        m.d.sync += x_open.eq(Mux(rst, weights_ok,
                                  fsm.ongoing("IDLE") & weights_ok & state_ok & ~w_fire
                                  & ~state_wait))

        state_h = delay(m, s.payload.h, STATE_SHIFT_LATENCY, "state_h")
        with m.If(state_write):
            m.d.sync += [state_count.eq(Mux(state_at_end, 0, state_word + 1)),
                         state_last.eq(Mux(state_at_end, H == 1,
                                           Mux(s.payload.first, H == 2,
                                               state_count == H - 2)))]
        # a state word's c is written into c_init (at its unit) on the second edge after it is
        # accepted, from registers
        c_init_wr = write_port(c_init, "c_init_wr")
        m.d.comb += [c_init_wr.addr.eq(delay(m, state_word, 1, "c_init_addr")),
                     c_init_wr.data.eq(delay(m, s.payload.c, 1, "c_init_data")),
                     c_init_wr.en.eq(delay(m, state_write, 1, "c_init_write", reset_less=False))]
        with m.If(c_init_wr.en):
            m.d.sync += c_init_zero.eq(0)
        for u in range(H):
            with m.If(shift[u * copies // H]):
                if u == H - 1:
                    m.d.sync += h_init[u].eq(state_h)
                else:
                    m.d.sync += h_init[u].eq(h_init[u + 1])
