"""Piecewise-linear activation unit: the model's integer table in ROM (docs/architecture.md)."""
from amaranth.hdl import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from model.activations import Table

from .cast import cast
from .geometry import refuse
from .pipeline import read_port

__all__ = ["PWLUnit"]


class PWLUnit(wiring.Component):
    """Sigmoid or tanh by a :class:`model.activations.Table`, bit-exact with ``table(q)``.

    Fully pipelined: one input per cycle, result :attr:`latency` = 5 cycles later::

        cycle 0  a = |q|; index ROM address = min(a >> index_shift, entries - 1)
        cycle 1  coefficient ROM address = segment number
        cycle 2  offset = a - base, coefficients registered
        cycle 3  y = intercept + slope * offset              (PLAN: shift instead of multiply)
        cycle 4  symmetry for q < 0 (one - y, or -y); cast to the output format
        cycle 5  output registered

    Parameters
    ----------
    table : :class:`model.activations.Table`
        The integer table; its spec gives the input and output formats and the output cast.

    Members
    -------
    q : ``In(signed(W_in))``
        Input code in the table's input format (z or c).
    q_valid : ``In(1)``
    y : ``Out(signed(W_out))``
        Output code in the table's output format (gate, candidate or tanh_c).
    y_valid : ``Out(1)``
        ``q_valid`` delayed by :attr:`latency`.
    """

    latency = 5

    def __init__(self, table: Table):
        if not isinstance(table, Table):
            refuse(self, TypeError(f"table must be a model.activations.Table, not {table!r}"))
        self._table = table
        spec = table.spec
        super().__init__({
            "q": In(signed(spec.input.fmt.bits)),
            "q_valid": In(1),
            "y": Out(signed(spec.output.fmt.bits)),
            "y_valid": Out(1),
        })

    @property
    def table(self) -> Table:
        return self._table

    @property
    def shift_only(self) -> bool:
        """PLAN tables have power-of-two slopes: a shifter replaces the multiplier."""
        return self._table.spec.method == "plan"

    def _coefficients(self):
        t = self._table
        a_bits = t.spec.input.fmt.bits          # |q| <= 2^(W-1) fits W unsigned bits
        if self.shift_only:
            shifts = [int(s).bit_length() - 1 if s else 0 for s in t.slope]
            slope_field = unsigned(max(max(shifts), 1).bit_length())
            slopes = shifts
        else:
            slope_field = unsigned(max(int(t.slope.max()).bit_length(), 1))
            slopes = [int(s) for s in t.slope]
        layout = data.StructLayout({
            "base": unsigned(a_bits),
            "slope": slope_field,
            "zero": unsigned(1),                 # slope is 0 (PLAN's saturation segment)
            "intercept": unsigned(t.frac + 1),   # 0 <= intercept <= one = 2^F_t
        })
        init = [{"base": int(b), "slope": s, "zero": int(sl == 0), "intercept": int(i)}
                for b, s, sl, i in zip(t.base, slopes, t.slope, t.intercept)]
        return layout, init

    def elaborate(self, platform):
        m = Module()
        t = self._table
        spec = t.spec
        n_index = len(t.index)

        # ROMs: segment index by |q| >> index_shift, then that segment's coefficients
        seg_bits = max((t.segments - 1).bit_length(), 1)
        m.submodules.index_rom = index_rom = Memory(
            shape=unsigned(seg_bits), depth=n_index, init=[int(k) for k in t.index])
        layout, init = self._coefficients()
        m.submodules.coef_rom = coef_rom = Memory(shape=layout, depth=t.segments, init=init)
        index_rd = read_port(index_rom, "index_rd")
        coef_rd = read_port(coef_rom, "coef_rd")

        # cycle 0: magnitude and index address
        a0 = Signal(unsigned(spec.input.fmt.bits))
        m.d.comb += a0.eq(abs(self.q))
        coarse = a0 >> t.index_shift
        m.d.comb += index_rd.addr.eq(Mux(coarse >= n_index - 1, n_index - 1, coarse))

        # cycle 1: coefficient address; carry |q| and the sign along
        # datapath registers are reset-less: only the valid bits travelling beside them reset
        a1 = Signal.like(a0, reset_less=True)
        a2 = Signal.like(a0, reset_less=True)
        neg1 = Signal(reset_less=True)
        neg2 = Signal(reset_less=True)
        neg3 = Signal(reset_less=True)
        valid = [Signal(name=f"valid{k}") for k in range(1, 6)]
        m.d.sync += [a1.eq(a0), neg1.eq(self.q < 0), valid[0].eq(self.q_valid)]
        m.d.comb += coef_rd.addr.eq(index_rd.data)
        m.d.sync += [a2.eq(a1), neg2.eq(neg1), valid[1].eq(valid[0])]

        # cycle 2: offset in the segment (a >= base there) and the coefficients, registered
        coef = coef_rd.data
        offset = Signal.like(a2)
        coef3 = Signal(layout, reset_less=True)
        m.d.sync += [offset.eq((a2 - coef.base)[:len(a2)]), coef3.eq(coef),
                     neg3.eq(neg2), valid[2].eq(valid[1])]

        # cycle 3: y = intercept + slope * offset, exact (F_t fraction bits)
        if self.shift_only:
            step = Mux(coef3.zero, 0, offset << coef3.slope)
        else:
            step = offset * coef3.slope
        y4 = Signal(unsigned(t.frac + 1), reset_less=True)       # never above one = 2^F_t
        neg4 = Signal(reset_less=True)
        m.d.sync += [y4.eq(coef3.intercept + step), neg4.eq(neg3), valid[3].eq(valid[2])]

        # cycle 4: symmetry, then the output cast (the only rounding)
        y_signed = Signal(signed(t.frac + 2))
        if t.function == "sigmoid":
            m.d.comb += y_signed.eq(Mux(neg4, Const(t.one) - y4, y4))
        else:
            m.d.comb += y_signed.eq(Mux(neg4, -y4, y4))
        y = Signal.like(self.y, reset_less=True)
        m.d.sync += [y.eq(cast(y_signed, t.frac, spec.output)), valid[4].eq(valid[3])]
        m.d.comb += [self.y.eq(y), self.y_valid.eq(valid[4])]
        return m
