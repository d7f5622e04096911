"""The model's casts as Amaranth expressions (docs/numerics.md): same modes, same integers.

Quantize first (``RND`` adds half an LSB then shifts right arithmetically, ``TRN`` shifts right),
then handle overflow (``SAT`` clamps, ``WRAP`` keeps the low W bits). Mirrors
:func:`model.fixed.cast`, which the tests use as the oracle.
"""
from amaranth.hdl import Cat, Const, Mux, signed

from model.config import TensorSpec

__all__ = ["cast", "spec_shape"]


def spec_shape(spec: TensorSpec):
    return signed(spec.fmt.bits)


def cast(value, from_frac: int, spec: TensorSpec):
    """``value`` (an Amaranth value with ``from_frac`` fraction bits) cast into ``spec``.

    Returns a signed expression of at most ``spec.fmt.bits`` bits: assign it to a
    ``signed(spec.fmt.bits)`` signal (narrower results are sign-extended on assignment).
    """
    fmt = spec.fmt
    if not value.shape().signed:
        value = Cat(value, Const(0, 1)).as_signed()   # zero-extend, then signed
    drop = from_frac - fmt.frac
    if drop > 0:
        if spec.round == "RND":
            value = value + Const(1 << (drop - 1))
        value = value >> drop                      # arithmetic: value is signed
    elif drop < 0:
        value = value << -drop
    if value.shape().width <= fmt.bits:            # cannot overflow
        return value
    low = value[:fmt.bits].as_signed()
    if spec.overflow == "WRAP":
        return low
    hi = Const(fmt.max_code, signed(fmt.bits))
    lo = Const(fmt.min_code, signed(fmt.bits))
    return Mux(value > hi, hi, Mux(value < lo, lo, low))
