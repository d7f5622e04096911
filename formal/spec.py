"""The specification of one step for the datapath proofs: :meth:`model.cell.FixedLSTM.step` as
combinational Amaranth logic, written from the model's definitions alone (it imports nothing
from ``rtl/``, whose cast and tables it would otherwise share and so never check).

Every line follows docs/numerics.md and the model's code:

- casts (:func:`model.fixed.cast`): drop fraction bits first (``RND``: add half an LSB, then an
  arithmetic shift right; ``TRN``: the shift alone; adding fraction bits is a left shift), then
  overflow (``SAT``: clamp to the format; ``WRAP``: the low W bits, two's complement);
- tables (:mod:`model.activations`): ROMs holding exactly :func:`model.activations.build_table`'s
  integers, evaluated as its ``_unrounded``: ``a = |q|``, ``k = index[min(a >> shift, n-1)]``,
  ``y = intercept[k] + slope[k] (a - base[k])``, mirrored for q < 0, then the output cast;
- the step (:meth:`model.cell.FixedLSTM.step`): exact ``W_ih x + W_hh h + b`` aligned to the
  accumulator's fraction bits (every product exact: Amaranth widens ``*`` and ``+``), cast to
  z; i, f, o by the sigmoid table, g by the tanh table; ``c = f c + i g`` exact, one cast;
  ``h = o tanh_c(c)`` exact, one cast.

Arithmetic in Amaranth grows the result's width so nothing wraps except where a cast says so:
the specification is exact by construction, not by a width the RTL chose.
"""
from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Elaboratable, Module, Mux, Signal, signed
from amaranth.lib import data

from model.activations import build_table
from model.config import Config, TensorSpec

__all__ = ["StepSpec", "spec_cast", "spec_table"]

GATES = ("i", "f", "g", "o")


def _wire(m, value, name):
    """``value`` through a named signal: every later use reads the wire, so the RTLIL holds
    each expression once (an Amaranth expression used twice is emitted twice)."""
    wire = Signal(value.shape(), name=name)
    m.d.comb += wire.eq(value)
    return wire


def spec_cast(m, value, from_frac: int, spec: TensorSpec, name: str):
    """:func:`model.fixed.cast` of a signed value with ``from_frac`` fraction bits into
    ``spec`` (its format and modes): quantize, then handle overflow."""
    fmt = spec.fmt
    drop = from_frac - fmt.frac
    value = value.as_signed() if not value.shape().signed else value
    if drop > 0:
        if spec.round == "RND":
            value = value + (1 << (drop - 1))
        q = value >> drop                      # arithmetic: value is signed
    else:
        q = value << -drop
    q = _wire(m, q, f"{name}_quantized")
    if spec.overflow == "SAT":
        lo, hi = fmt.min_code, fmt.max_code
        out = Mux(q > hi, Const(hi, signed(fmt.bits)),
                  Mux(q < lo, Const(lo, signed(fmt.bits)), q[:fmt.bits].as_signed()))
    else:
        out = q[:fmt.bits].as_signed()         # WRAP: the low W bits
    return _wire(m, out, name)


def _rom(m, values, address, name):
    """A ROM read: ``values[address]``."""
    lo, hi = min(int(v) for v in values), max(int(v) for v in values)
    shape = signed(max(hi.bit_length(), (-lo - 1).bit_length() if lo < 0 else 0) + 1)
    return _wire(m, Array(Const(int(v), shape) for v in values)[address], name)


def spec_table(m, table, q, name):
    """The activation ``table`` (a :class:`model.activations.Table`) on the signed code ``q``."""
    a = _wire(m, abs(q), f"{name}_abs")        # unsigned, W bits: holds 2^(W-1) too
    n_index = len(table.index)
    top = a >> table.index_shift
    k = _rom(m, table.index, Mux(top > n_index - 1, n_index - 1, top), f"{name}_segment")
    offset = Cat(a, 0).as_signed() - _rom(m, table.base, k, f"{name}_base")
    y = _rom(m, table.intercept, k, f"{name}_intercept") + \
        _rom(m, table.slope, k, f"{name}_slope") * offset
    y = _wire(m, y, f"{name}_line")
    if table.function == "sigmoid":
        y = Mux(q < 0, table.one - y, y)
    else:
        y = Mux(q < 0, -y, y)
    return spec_cast(m, y, table.frac, table.spec.output, name)


class StepSpec(Elaboratable):
    """One step of the fixed-point cell, combinational: (x, h, c, weights) -> (h_t, c_t).

    Parameters
    ----------
    config : :class:`model.config.Config`
    n_inputs, n_hidden : int
        X and H.

    Attributes
    ----------
    x : Signal(ArrayLayout(signed(W_x), X))
    h, c : Signal(ArrayLayout(signed(W_h or W_c), H))
        h_{t-1}, c_{t-1}.
    weight_ih, weight_hh, bias : Signal(ArrayLayout(...))
        Row-major (4H, X), (4H, H) and (4H,) codes, gate order i, f, g, o (the model's layout).
    h_next, c_next : Signal(ArrayLayout(...))
        h_t, c_t (driven).
    """

    def __init__(self, config: Config, n_inputs: int, n_hidden: int):
        self.config, self.n_inputs, self.n_hidden = config, n_inputs, n_hidden
        X, H = n_inputs, n_hidden

        def codes(name, n, tensor=None):
            return Signal(data.ArrayLayout(signed(config.fmt(tensor or name).bits), n),
                          name=f"spec_{name}")
        self.x = codes("x", X)
        self.h, self.c = codes("h", H), codes("c", H)
        self.weight_ih = codes("weight_ih", 4 * H * X, "weight")
        self.weight_hh = codes("weight_hh", 4 * H * H, "weight")
        self.bias = codes("bias", 4 * H)
        self.h_next, self.c_next = codes("h_next", H, "h"), codes("c_next", H, "c")
        self.tables = {name: build_table(spec) for name, spec in config.tables.items()}

    def elaborate(self, platform):
        m = Module()
        cfg, X, H = self.config, self.n_inputs, self.n_hidden
        acc_frac, w_frac = cfg.fmt("accumulator").frac, cfg.fmt("weight").frac
        shift_x = acc_frac - cfg.fmt("x").frac - w_frac
        shift_h = acc_frac - cfg.fmt("h").frac - w_frac
        shift_b = acc_frac - cfg.fmt("bias").frac
        for name, s in (("x", shift_x), ("h", shift_h), ("bias", shift_b)):
            if s < 0:
                raise ValueError(f"the accumulator has fewer fraction bits than {name} products")

        # z = cast(W_ih x + W_hh h + b), exact sums in accumulator LSBs (model.cell.accumulate)
        z = []
        for row in range(4 * H):
            total = self.bias[row] << shift_b
            for k in range(X):
                total = total + ((self.weight_ih[row * X + k] * self.x[k]) << shift_x)
            for k in range(H):
                total = total + ((self.weight_hh[row * H + k] * self.h[k]) << shift_h)
            z.append(spec_cast(m, total, acc_frac, cfg.spec("z"), f"spec_z{row}"))

        # the cell update, unit by unit (model.cell.FixedLSTM.step)
        f_gate, f_cand, f_c = cfg.fmt("gate").frac, cfg.fmt("candidate").frac, cfg.fmt("c").frac
        f_fc, f_ig = f_gate + f_c, f_gate + f_cand
        f_sum = max(f_fc, f_ig)
        f_h = f_gate + cfg.fmt("tanh_c").frac
        for u in range(H):
            zi, zf, zg, zo = (z[g * H + u] for g in range(4))
            i, f, o = (spec_table(m, self.tables["sigmoid"], q, f"spec_{n}{u}")
                       for n, q in (("i", zi), ("f", zf), ("o", zo)))
            g = spec_table(m, self.tables["tanh"], zg, f"spec_g{u}")
            c_sum = ((f * self.c[u]) << (f_sum - f_fc)) + ((i * g) << (f_sum - f_ig))
            c_new = spec_cast(m, c_sum, f_sum, cfg.spec("c"), f"spec_c{u}")
            tanh_c = spec_table(m, self.tables["tanh_c"], c_new, f"spec_tanh_c{u}")
            m.d.comb += [self.c_next[u].eq(c_new),
                         self.h_next[u].eq(spec_cast(m, o * tanh_c, f_h, cfg.spec("h"),
                                                     f"spec_h{u}"))]
        return m
