"""Top level: the LSTM cell with stream interfaces (docs/architecture.md)."""
from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from model.activations import build_table
from model.config import Config
from model.weights import QuantizedWeights

from .cast import cast
from .cell import CellUpdate
from .geometry import Geometry, RTLError, refuse
from .mac import MACArray
from .pipeline import delay
from .pwl import PWLUnit

__all__ = ["LSTMCell", "stream_layouts"]


def stream_layouts(config: Config, n_inputs: int, n_hidden: int, output_c: bool = True):
    """Payload layouts of the x, h and state streams (fields at increasing bit offsets)."""
    wx, wh, wc = (signed(config.fmt(n).bits) for n in ("x", "h", "c"))
    step = data.StructLayout({"x": data.ArrayLayout(wx, n_inputs), "first": 1})
    out = {"h": data.ArrayLayout(wh, n_hidden)}
    if output_c:
        out["c"] = data.ArrayLayout(wc, n_hidden)
    return step, data.StructLayout(out), data.StructLayout({"h": wh, "c": wc})


class LSTMCell(wiring.Component):
    """A fixed-point LSTM cell that computes exactly :class:`model.cell.FixedLSTM`'s integers.

    One step: accept x_t, run the P MAC lanes over the 4H x (X+H) weights, then (overlapped with
    the lanes) requantize each row to z, apply sigmoid/tanh, update c and h unit by unit; when the
    last unit is done, commit h_t, c_t and offer them on the output stream.

    Cycles per step, with inputs waiting and the output not stalled::

        cycles_per_step = ceil(4H (X+H) / P) + overhead
        overhead = 2 + MACArray.latency + 1 + PWLUnit.latency + CellUpdate.latency = 22

    (accept and commit, lane pipeline, z cast, gate activations, cell update of the last unit).
    A sequence of T steps takes T * cycles_per_step from the first accept to its last output.
    Output h_t is valid ``cycles_per_step`` cycles after x_t is accepted.

    Parameters
    ----------
    config : :class:`model.config.Config`
        Formats, cast modes, activation tables and the lane count.
    weights : :class:`model.weights.QuantizedWeights`
        Initial memory contents (sizes X and H come from them).
    lanes : int, optional
        P, overriding ``config.lanes``; 1 <= P <= X+H.
    output_c : bool
        Also put c_t on the output stream.

    Members
    -------
    x : ``In(stream.Signature(step_layout))``
        ``x``: X codes in the x format; ``first``: this step starts a sequence (h and c restart
        from the initial state: zero after reset, or what the ``state`` port loaded).
    h : ``Out(stream.Signature(output_layout))``
        ``h``: H codes in the h format; ``c``: H codes in the c format (when ``output_c``).
    weights : ``In(stream.Signature(load_layout))``
        Runtime weight load (``data``, ``first``): :meth:`Geometry.load_words` order. Accepted
        only between steps.
    state : ``In(stream.Signature(state_layout))``
        Initial state h0, c0 for ``first`` steps: H words (``h``, ``c``), unit 0 first.

    Raises
    ------
    RTLError
        For lanes outside 1..X+H, weights that do not fit the config, or an accumulator the
        config cannot size for these weights.
    """

    def __init__(self, config: Config, weights: QuantizedWeights, *, lanes=None, output_c=True):
        try:
            self._geometry = g = Geometry.of(config, weights, lanes)
        except RTLError as e:
            refuse(self, e)
        self._output_c = bool(output_c)
        self._tables = {name: build_table(spec) for name, spec in config.tables.items()}
        self.step_layout, self.output_layout, self.state_layout = stream_layouts(
            config, g.n_inputs, g.n_hidden, self._output_c)
        super().__init__({
            "x": In(stream.Signature(self.step_layout)),
            "h": Out(stream.Signature(self.output_layout)),
            "weights": In(stream.Signature(g.load_layout)),
            "state": In(stream.Signature(self.state_layout)),
        })

    @property
    def geometry(self) -> Geometry:
        return self._geometry

    @property
    def overhead(self) -> int:
        return 2 + MACArray.latency + 1 + PWLUnit.latency + CellUpdate.latency

    @property
    def cycles_per_step(self) -> int:
        return self._geometry.issue_cycles + self.overhead

    def cycles_per_sequence(self, steps: int) -> int:
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
        m.submodules.cell = cell = CellUpdate(cfg, self._tables["tanh_c"])

        wh, wc = signed(cfg.fmt("h").bits), signed(cfg.fmt("c").bits)
        h_state, h_init, h_next = (Signal(data.ArrayLayout(wh, H), name=n)
                                   for n in ("h_state", "h_init", "h_next"))
        c_state, c_init, c_next = (Signal(data.ArrayLayout(wc, H), name=n)
                                   for n in ("c_state", "c_init", "c_next"))
        done = Signal(range(H + 1))
        idle = Signal(init=1)

        # ports: loads only between steps, weights first, then state, then x
        wiring.connect(m, wiring.flipped(self.weights), mac.load)
        m.d.comb += [mac.load_enable.eq(idle),
                     self.state.ready.eq(idle & ~self.weights.valid),
                     self.x.ready.eq(idle & ~self.weights.valid & ~self.state.valid)]
        with m.If(self.state.valid & self.state.ready):      # shift in, unit 0 first
            m.d.sync += [h_init[H - 1].eq(self.state.payload.h), c_init[H - 1].eq(self.state.payload.c)]
            m.d.sync += [h_init[u].eq(h_init[u + 1]) for u in range(H - 1)]
            m.d.sync += [c_init[u].eq(c_init[u + 1]) for u in range(H - 1)]

        # accept x_t: start the lanes on [x; h]
        first = self.x.payload.first
        h_prev = Mux(first, h_init.as_value(), h_state.as_value())
        h_prev = data.View(data.ArrayLayout(wh, H), h_prev)
        start = self.x.valid & self.x.ready
        m.d.comb += mac.start.eq(start)
        m.d.comb += [mac.vector[n].eq(self.x.payload.x[n]) for n in range(X)]
        m.d.comb += [mac.vector[X + u].eq(h_prev[u]) for u in range(H)]
        with m.If(start):
            m.d.sync += idle.eq(0)
            with m.If(first):
                m.d.sync += c_state.eq(c_init)

        # each finished row: cast to z, then both activations (the gate picks one)
        z, z_valid, z_gate = Signal(signed(cfg.fmt("z").bits)), Signal(), Signal(2)
        m.d.sync += [z.eq(cast(mac.row_acc, cfg.fmt("accumulator").frac, cfg.spec("z"))),
                     z_valid.eq(mac.row_valid), z_gate.eq(mac.row[:2])]
        m.d.comb += [sigmoid.q.eq(z), sigmoid.q_valid.eq(z_valid), tanh.q.eq(z), tanh.q_valid.eq(z_valid)]
        gate = delay(m, z_gate, PWLUnit.latency, "gate")

        # collect i, f, g of a unit; its o launches the cell update with c_{t-1}
        i_gate, f_gate = Signal.like(sigmoid.y), Signal.like(sigmoid.y)
        candidate = Signal.like(tanh.y)
        launch = sigmoid.y_valid & (gate == 3)
        with m.If(sigmoid.y_valid):
            with m.Switch(gate):
                with m.Case(0):
                    m.d.sync += i_gate.eq(sigmoid.y)
                with m.Case(1):
                    m.d.sync += f_gate.eq(sigmoid.y)
                with m.Case(2):
                    m.d.sync += candidate.eq(tanh.y)
        m.d.comb += [cell.i.eq(i_gate), cell.f.eq(f_gate), cell.g.eq(candidate),
                     cell.o.eq(sigmoid.y), cell.c_prev.eq(c_state[0]), cell.valid.eq(launch)]
        with m.If(launch):                                    # c_state shifts unit by unit
            m.d.sync += [c_state[u].eq(c_state[u + 1]) for u in range(H - 1)]

        # results arrive unit by unit: shift them in
        with m.If(cell.out_valid):
            m.d.sync += [h_next[H - 1].eq(cell.h), c_next[H - 1].eq(cell.c), done.eq(done + 1)]
            m.d.sync += [h_next[u].eq(h_next[u + 1]) for u in range(H - 1)]
            m.d.sync += [c_next[u].eq(c_next[u + 1]) for u in range(H - 1)]

        # commit when all units are done and the output register is free
        with m.If(self.h.valid & self.h.ready):
            m.d.sync += self.h.valid.eq(0)
        with m.If((done == H) & (~self.h.valid | self.h.ready)):
            m.d.sync += [h_state.eq(h_next), c_state.eq(c_next), done.eq(0), idle.eq(1),
                         self.h.payload.h.eq(h_next), self.h.valid.eq(1)]
            if self._output_c:
                m.d.sync += self.h.payload.c.eq(c_next)
        return m
