"""Piecewise-linear activation unit: the model's integer table in ROM (docs/architecture.md)."""
from amaranth.hdl import Const, Module, Mux, Signal, signed, unsigned
from amaranth.utils import ceil_log2
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from model.activations import Table

from .cast import CAST_LATENCY, cast_registered
from .geometry import refuse
from .pipeline import (LUT_ROM_BITS, delay, lut_pick, lut_rom, product_register, read_port,
                       register_word_copies)

__all__ = ["PWLUnit"]

#: The index ROM is read in parts of 2^INDEX_PART_BITS entries (stage 2), then one part picked
#: (stage 3).
INDEX_PART_BITS = 6

#: The coefficient ROMs of a unit and the fields each holds.
COEFFICIENT_ROMS = {"base": ("base",), "slope": ("slope", "zero"), "intercept": ("intercept",)}


class PWLUnit(wiring.Component):
    """Sigmoid or tanh by a :class:`model.activations.Table`, bit-exact with ``table(q)``.

    Fully pipelined: one input per cycle, result :attr:`latency` = 10 cycles later. Each
    stage ends in a register and holds at most one carry chain or one ROM read (ECP5 at
    150 MHz, docs/architecture.md)::

        stage 1   a = |q|
        stage 2   index ROM entry min(a >> index_shift, entries - 1), first half: each
                  part of 64 entries read at the address's low bits
        stage 3   index ROM, second half: the part picked by the high bits (segment number)
        stage 4   coefficient ROM reads: base, slope, intercept (three ROMs, each from its
                  own copy of the segment register)
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
    y_next : ``Out(signed(W_out))``
        What ``y`` will hold after the next edge (its register's input), for a multiplier
        block that registers it itself (its input register).
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
            "y_next": Out(signed(spec.output.fmt.bits)),
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

        # ROMs: segment index by |q| >> index_shift, then that segment's coefficients (three
        # ROMs: base, slope, intercept, each addressed by its own copy of the segment register,
        # so no segment bit fans out to every coefficient bit); all read through registers
        seg_bits = max((t.segments - 1).bit_length(), 1)
        layout, init = self._coefficients()
        hand_mapped = getattr(platform, "hand_mapped_roms", False) and seg_bits <= LUT_ROM_BITS
        coef_roms = {}                  # field -> (sub-layout, its rows)
        coef_rds = {}
        for field, names in COEFFICIENT_ROMS.items():
            shape = data.StructLayout({n: layout.members[n] for n in names})
            rows = [{n: row[n] for n in names} for row in init]
            coef_roms[field] = (shape, rows)
            if not hand_mapped:
                rom = Memory(shape=shape, depth=t.segments, init=rows)
                m.submodules[f"{field}_rom"] = rom
                coef_rds[field] = read_port(rom, f"{field}_rd")

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

        # stages 2-3: the index ROM, entry min(a >> index_shift, entries - 1), read in two
        # halves. Stage 2: every part of 2^INDEX_PART_BITS entries read at the low address
        # bits (a part's entries past the table's end repeat its last entry, which the clamp
        # would give), the high bits and the clamp flag (an address past the parts) registered
        # beside them; stage 3: the part picked by the high bits, the segment number into one
        # register per coefficient ROM.
        coarse = a1 >> t.index_shift
        a_bits = max(ceil_log2(n_index), 1)
        low_bits = min(a_bits, INDEX_PART_BITS)
        entries = [int(k) for k in t.index] + [int(t.index[-1])] * ((1 << a_bits) - n_index)
        parts = []
        for k in range(1 << (a_bits - low_bits)):
            part = Signal(unsigned(seg_bits), name=f"index_part{k}", reset_less=True)
            rows = entries[k << low_bits:(k + 1) << low_bits]
            m.d.sync += part.eq(lut_rom(m, platform, rows, coarse[:low_bits], seg_bits,
                                        f"index_part{k}_rom"))
            parts.append(part)
        high = Signal(max(a_bits - low_bits, 1), name="index_high", reset_less=True)
        clamp = Signal(name="index_clamp", reset_less=True)
        m.d.sync += [high.eq(coarse[low_bits:a_bits]),
                     clamp.eq(coarse[a_bits:] != 0 if len(coarse) > a_bits else 0)]
        if len(parts) > 1:
            index = lut_pick(m, platform, parts, high, clamp, int(t.index[-1]), "index_pick")
        else:
            index = Mux(clamp, int(t.index[-1]), parts[0])

        # stage 4: the segment's coefficients (the coefficient ROMs' reads)
        segment = register_word_copies(m, platform, index, len(coef_roms), "segment")
        coef = Signal(layout)
        for (field, (shape, rows)), seg in zip(coef_roms.items(), segment):
            if hand_mapped:     # the ROM by hand (rtl.pipeline.lut_rom), then its register
                words = [shape.const(row).as_value().value for row in rows]
                word = Signal(shape, name=f"{field}_word", reset_less=True)
                m.d.sync += word.eq(lut_rom(m, platform, words, seg, shape.size, f"{field}_rom"))
            else:
                rd = coef_rds[field]
                m.d.comb += rd.addr.eq(seg)
                word = rd.data
            for n in COEFFICIENT_ROMS[field]:
                m.d.comb += coef[n].eq(word[n])
        a4 = delay(m, a1, 3, "a")

        # stage 5: offset in the segment (a >= base there); coefficients registered
        offset = Signal.like(a4, reset_less=True)
        coef5 = Signal(layout, reset_less=True)
        m.d.sync += [offset.eq((a4 - coef.base)[:len(a4)]), coef5.eq(coef)]

        # stage 6: slope * offset (a multiplier between registers, or a shifter for PLAN)
        if self.shift_only:
            step = Mux(coef5.zero, 0, offset << coef5.slope)
            product = Signal(step.shape(), reset_less=True)
            m.d.sync += product.eq(step)
        elif getattr(platform, "dsp_input_registers", False):
            # the multiplier block's input registers are stage 5's offset and slope registers
            product = product_register(m, platform, (a4 - coef.base)[:len(a4)], coef.slope,
                                       "product", input_registers=True)
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
        y, y_next = cast_registered(m, y8, t.frac, spec.output, "y_cast", ahead=True)
        m.d.comb += [self.y.eq(y), self.y_next.eq(y_next), self.y_valid.eq(valid[-1])]
        return m
