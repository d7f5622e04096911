"""The model's casts as Amaranth expressions (docs/numerics.md): same modes, same integers.

Quantize first (``RND`` adds half an LSB then shifts right arithmetically, ``TRN`` shifts right),
then handle overflow (``SAT`` clamps, ``WRAP`` keeps the low W bits). Mirrors
:func:`model.fixed.cast`, which the tests use as the oracle.

Both steps are written for a short critical path, with the same integers:

- ``RND`` as ``(v >> d) + v[d-1]`` (floor of the shifted value plus the dropped half bit): the
  carry chain spans the kept bits only, not the whole input.
- ``SAT`` by the bits above the kept sign: the value fits W bits exactly when bits W-1 and up
  are all equal (an AND/OR reduction, no magnitude compare); otherwise the sign picks the rail.

:func:`cast_registered` splits the two steps over :data:`CAST_LATENCY` registers.
"""
from amaranth.hdl import Cat, Const, Mux, Signal, signed

from model.config import TensorSpec

__all__ = ["CAST_LATENCY", "cast", "cast_registered", "spec_shape"]

CAST_LATENCY = 2
"""Registers of :func:`cast_registered`: rounding, then the overflow handling."""


def spec_shape(spec: TensorSpec):
    return signed(spec.fmt.bits)


def _signed(value):
    if not value.shape().signed:
        value = Cat(value, Const(0, 1)).as_signed()   # zero-extend, then signed
    return value


def _quantize(value, from_frac: int, spec: TensorSpec):
    """Drop (or add) fraction bits: the rounding half of the cast (never overflows)."""
    value = _signed(value)
    drop = from_frac - spec.fmt.frac
    if drop > 0:
        shifted = value >> drop                    # arithmetic: value is signed
        if spec.round == "RND":                    # floor(v / 2^d + 1/2) = (v >> d) + v[d-1]
            return shifted + value[drop - 1]
        return shifted
    if drop < 0:
        return value << -drop
    return value


def _overflow(value, spec: TensorSpec):
    """Clamp (``SAT``) or wrap (``WRAP``) a signed value into ``spec``'s W bits."""
    bits = spec.fmt.bits
    if value.shape().width <= bits:                # cannot overflow
        return value
    low = value[:bits].as_signed()
    if spec.overflow == "WRAP":
        return low
    top = value[bits - 1:]                         # the kept sign and every bit above it
    fits = top.all() | ~top.any()
    hi = Const(spec.fmt.max_code, signed(bits))
    lo = Const(spec.fmt.min_code, signed(bits))
    return Mux(fits, low, Mux(value[-1], lo, hi))


def cast(value, from_frac: int, spec: TensorSpec):
    """``value`` (an Amaranth value with ``from_frac`` fraction bits) cast into ``spec``.

    Returns a signed expression of at most ``spec.fmt.bits`` bits: assign it to a
    ``signed(spec.fmt.bits)`` signal (narrower results are sign-extended on assignment).
    """
    return _overflow(_quantize(value, from_frac, spec), spec)


def cast_registered(m, value, from_frac: int, spec: TensorSpec, name: str, *,
                    ahead: bool = False):
    """:func:`cast` over :data:`CAST_LATENCY` reset-less sync registers: the rounded value,
    then the clamped (or wrapped) code. Returns the second register (``signed(W)``); with
    ``ahead``, also its input (what it holds after the next edge), as ``(out, next)``."""
    quantized = _quantize(value, from_frac, spec)
    rounded = Signal(quantized.shape(), name=f"{name}_rounded", reset_less=True)
    out = Signal(spec_shape(spec), name=name, reset_less=True)
    nxt = Signal(spec_shape(spec), name=f"{name}_next")
    m.d.comb += nxt.eq(_overflow(rounded, spec))
    m.d.sync += [rounded.eq(quantized), out.eq(nxt)]
    return (out, nxt) if ahead else out
