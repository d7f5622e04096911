"""Piecewise-linear activation unit: the model's integer table in ROM (docs/architecture.md)."""
from amaranth.hdl import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from model.activations import Table

from .cast import CAST_LATENCY, cast_registered
from .geometry import refuse
from .pipeline import delay, product_register, read_port

__all__ = ["PWLUnit"]


class PWLUnit(wiring.Component):
    """Sigmoid or tanh by a :class:`model.activations.Table`, bit-exact with ``table(q)``.

    Fully pipelined: one input per cycle, result :attr:`latency` = 10 cycles later. Each
    stage ends in a register and holds at most one carry chain or one ROM read (ECP5 at
    150 MHz, docs/architecture.md)::

        stage 1   a = |q|
        stage 2   index ROM address = min(a >> index_shift, entries - 1)
        stage 3   index ROM read: segment number
        stage 4   coefficient ROM read: base, slope, intercept
        stage 5   offset = a - base, coefficients registered
        stage 6   slope * offset              (PLAN: a shift instead of the multiplier)
        stage 7   y = intercept + slope * offset
        stage 8   symmetry for q < 0 (one - y, or -y)
        stage 9   output cast: rounding
        stage 10  output cast: saturation; the output register

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

    latency = 8 + CAST_LATENCY

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

        # ROMs: segment index by |q| >> index_shift, then that segment's coefficients; both
        # read through registered ports
        seg_bits = max((t.segments - 1).bit_length(), 1)
        m.submodules.index_rom = index_rom = Memory(
            shape=unsigned(seg_bits), depth=n_index, init=[int(k) for k in t.index])
        layout, init = self._coefficients()
        m.submodules.coef_rom = coef_rom = Memory(shape=layout, depth=t.segments, init=init)
        index_rd = read_port(index_rom, "index_rd")
        coef_rd = read_port(coef_rom, "coef_rd")

        # datapath registers are reset-less: only the valid bits travelling beside them reset
        valid = [self.q_valid]
        for k in range(1, self.latency + 1):
            v = Signal(name=f"valid{k}")
            m.d.sync += v.eq(valid[-1])
            valid.append(v)
        neg7 = delay(m, self.q < 0, 7, "neg")              # beside y7, read at stage 8

        # stage 1: magnitude
        a1 = Signal(unsigned(spec.input.fmt.bits), reset_less=True)  # |q| <= 2^(W-1)
        m.d.sync += a1.eq(abs(self.q))

        # stage 2: index ROM address, clamped to the last entry
        coarse = a1 >> t.index_shift
        address = Signal(range(n_index), reset_less=True)
        m.d.sync += address.eq(Mux(coarse >= n_index - 1, n_index - 1, coarse))

        # stage 3: segment number (index ROM read); stage 4: its coefficients (coef ROM read)
        m.d.comb += [index_rd.addr.eq(address), coef_rd.addr.eq(index_rd.data)]
        a4 = delay(m, a1, 3, "a")
        coef = coef_rd.data

        # stage 5: offset in the segment (a >= base there); coefficients registered
        offset = Signal.like(a4, reset_less=True)
        coef5 = Signal(layout, reset_less=True)
        m.d.sync += [offset.eq((a4 - coef.base)[:len(a4)]), coef5.eq(coef)]

        # stage 6: slope * offset (a multiplier between registers, or a shifter for PLAN)
        if self.shift_only:
            step = Mux(coef5.zero, 0, offset << coef5.slope)
            product = Signal(step.shape(), reset_less=True)
            m.d.sync += product.eq(step)
        else:
            product = product_register(m, platform, offset, coef5.slope, "product")
        intercept = Signal(unsigned(t.frac + 1), reset_less=True)
        m.d.sync += intercept.eq(coef5.intercept)

        # stage 7: y = intercept + slope * offset, exact (F_t fraction bits)
        y7 = Signal(unsigned(t.frac + 1), reset_less=True)       # never above one = 2^F_t
        m.d.sync += y7.eq(intercept + product)

        # stage 8: symmetry for q < 0
        y8 = Signal(signed(t.frac + 2), reset_less=True)
        if t.function == "sigmoid":
            m.d.sync += y8.eq(Mux(neg7, Const(t.one) - y7, y7))
        else:
            m.d.sync += y8.eq(Mux(neg7, -y7, y7))

        # stages 9-10: the output cast (the only rounding)
        y = cast_registered(m, y8, t.frac, spec.output, "y_cast")
        m.d.comb += [self.y.eq(y), self.y_valid.eq(valid[-1])]
        return m
