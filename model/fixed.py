"""Fixed-point formats and the casts between them (docs/numerics.md).

A format is signed two's complement with ``bits`` total bits W and ``frac`` fraction bits F.
A raw integer r stands for r * 2**-F. Q notation excludes the sign: W=16, F=12 is Q3.12::

     bit 15  14 13 12  11 10  9  8  7  6  5  4  3  2  1  0
        [ s | 2^2 2^1 2^0 . 2^-1 ....................... 2^-12 ]
        raw 0x1800 = 6144 -> 6144 * 2^-12 = 1.5

Result sizes of exact operations (no cast involved):

    ==========  ====================  =========================
    operation   fraction bits         total bits (worst case)
    ==========  ====================  =========================
    a + b       max(Fa, Fb)           max(Ia, Ib) + F + 2
    a * b       Fa + Fb               Wa + Wb
    ==========  ====================  =========================

Narrowing happens only in :func:`cast` (integer to integer) and :func:`quantize` (float to
integer), each with a quantization mode applied first and an overflow mode applied second:

    RND   round half toward +infinity: add half an LSB, then shift right (-2.5 LSB -> -2)
    TRN   truncate toward -infinity: arithmetic shift right (floor)
    SAT   clamp to [-2^(W-1), 2^(W-1) - 1]
    WRAP  keep the low W bits, two's complement

Arrays are numpy int64 while values provably fit; larger values use object arrays of Python
integers, so every result here is exact whatever the widths.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "FixedPointError", "Format", "QUANT_MODES", "OVERFLOW_MODES",
    "cast", "overflows", "cast_int64_", "quantize", "to_float", "check_modes",
]

QUANT_MODES = ("RND", "TRN")
OVERFLOW_MODES = ("SAT", "WRAP")

#: Largest format width this package accepts (accumulators may be wide; all math stays exact).
MAX_BITS = 128
#: Magnitudes below this stay in int64 through one shift or add.
_INT64_SAFE = 1 << 62


class FixedPointError(ValueError):
    """A value or format that the numerics contract refuses (NaN, impossible format, ...)."""


@dataclass(frozen=True)
class Format:
    """Signed two's complement fixed-point format: ``bits`` total, ``frac`` fraction bits."""

    bits: int
    frac: int

    def __post_init__(self):
        if not isinstance(self.bits, int) or isinstance(self.bits, bool):
            raise FixedPointError(f"format bits must be an integer, not {self.bits!r}")
        if not isinstance(self.frac, int) or isinstance(self.frac, bool):
            raise FixedPointError(f"format frac must be an integer, not {self.frac!r}")
        if not 2 <= self.bits <= MAX_BITS:
            raise FixedPointError(f"format bits must be from 2 to {MAX_BITS}, not {self.bits}")
        if not 0 <= self.frac <= self.bits:
            raise FixedPointError(
                f"format frac must be from 0 to bits ({self.bits}), not {self.frac}")

    @property
    def int_bits(self) -> int:
        """Integer bits, sign excluded (may be -1 when frac == bits)."""
        return self.bits - self.frac - 1

    @property
    def min_code(self) -> int:
        return -(1 << (self.bits - 1))

    @property
    def max_code(self) -> int:
        return (1 << (self.bits - 1)) - 1

    @property
    def lsb(self) -> float:
        return 2.0 ** -self.frac

    @property
    def min_value(self) -> float:
        return self.min_code * self.lsb

    @property
    def max_value(self) -> float:
        return self.max_code * self.lsb

    def __str__(self) -> str:
        return f"Q{self.int_bits}.{self.frac}"

    def describe(self) -> str:
        return f"{self} ({self.bits} bits, range [{self.min_value:g}, {self.max_value:g}], lsb 2^-{self.frac})"

    def codes(self) -> np.ndarray:
        """Every representable raw code, ascending (for exhaustive checks)."""
        if self.bits > 24:
            raise FixedPointError(f"refusing to enumerate {self} ({self.bits} bits)")
        return np.arange(self.min_code, self.max_code + 1, dtype=np.int64)


def check_modes(quant: str, overflow: str) -> None:
    if quant not in QUANT_MODES:
        raise FixedPointError(f"rounding mode must be one of {', '.join(QUANT_MODES)}, not {quant!r}")
    if overflow not in OVERFLOW_MODES:
        raise FixedPointError(
            f"overflow mode must be one of {', '.join(OVERFLOW_MODES)}, not {overflow!r}")


def _max_abs(a: np.ndarray) -> int:
    if a.size == 0:
        return 0
    return max(abs(int(a.max())), abs(int(a.min())))


def _exact(a) -> np.ndarray:
    """``a`` as an integer array that can take a shift or add without wrapping."""
    a = np.asarray(a)
    if a.dtype == object:
        return a
    if not np.issubdtype(a.dtype, np.integer):
        raise FixedPointError(f"raw codes must be integers, not {a.dtype}")
    a = a.astype(np.int64, copy=False)
    return a if _max_abs(a) < _INT64_SAFE else a.astype(object)


def _narrow(a: np.ndarray) -> np.ndarray:
    """Back to int64 where every value fits."""
    if a.dtype == object and _max_abs(a) < _INT64_SAFE:
        return a.astype(np.int64)
    return a


def shift(raw, left: int) -> np.ndarray:
    """Exact ``raw * 2**left`` for left >= 0 (a change of fraction bits that loses nothing)."""
    if left < 0:
        raise ValueError("shift() only widens; narrowing is a cast()")
    a = _exact(raw)
    if a.dtype != object and left and _max_abs(a) >= _INT64_SAFE >> left:
        a = a.astype(object)
    return a << left if left else a


def _overflow(q: np.ndarray, fmt: Format, overflow: str) -> tuple[np.ndarray, int]:
    lo, hi = fmt.min_code, fmt.max_code
    out_of_range = (q < lo) | (q > hi)
    n = int(np.count_nonzero(out_of_range))
    if n == 0:
        return _narrow(q), 0
    if overflow == "SAT":
        q = np.where(q > hi, hi, np.where(q < lo, lo, q))
    else:  # WRAP: low W bits, reinterpreted as two's complement
        q = ((q - lo) & ((1 << fmt.bits) - 1)) + lo
    return _narrow(np.asarray(q)), n


def _requantize(raw, drop: int, quant: str) -> np.ndarray:
    """The quantization step of a cast: drop ``drop`` fraction bits (or add ``-drop``)."""
    a = _exact(raw)
    if drop > 0:
        if drop > 63 and a.dtype != object:
            a = a.astype(object)          # 2^(drop-1) does not fit int64
        if quant == "RND":
            a = a + (1 << (drop - 1))
        return np.asarray(a >> drop)
    return np.asarray(shift(a, -drop))


def cast(raw, from_frac: int, fmt: Format, quant: str = "RND", overflow: str = "SAT"):
    """Narrow raw codes with ``from_frac`` fraction bits into ``fmt``.

    Quantize first (``RND`` or ``TRN`` when fraction bits are dropped; exact when they are
    added), then handle overflow (``SAT`` or ``WRAP``). Returns ``(codes, n_overflow)`` where
    ``n_overflow`` counts the values that saturated or wrapped.
    """
    check_modes(quant, overflow)
    return _overflow(_requantize(raw, from_frac - fmt.frac, quant), fmt, overflow)


def overflows(raw, from_frac: int, fmt: Format, quant: str = "RND") -> np.ndarray:
    """Boolean mask: which values :func:`cast` would saturate or wrap (those it counts)."""
    check_modes(quant, "SAT")
    q = _requantize(raw, from_frac - fmt.frac, quant)
    return np.asarray((q < fmt.min_code) | (q > fmt.max_code), dtype=bool)


def cast_int64_(a: np.ndarray, drop: int, fmt: Format, quant: str, overflow: str) -> int:
    """:func:`cast` in place on an int64 array, for hot loops; returns the overflow count.

    The caller must have proven that ``a`` (plus half an LSB, or shifted left by ``-drop``)
    fits int64: nothing here widens. Same integers as :func:`cast` (tested).
    """
    if drop > 0:
        if quant == "RND":
            a += 1 << (drop - 1)
        a >>= drop
    elif drop < 0:
        a <<= -drop
    lo, hi = fmt.min_code, fmt.max_code
    if a.size == 0 or (a.min() >= lo and a.max() <= hi):
        return 0
    n = int(np.count_nonzero(a < lo) + np.count_nonzero(a > hi))
    if overflow == "SAT":
        np.clip(a, lo, hi, out=a)
    else:
        a -= lo
        a &= (1 << fmt.bits) - 1
        a += lo
    return n


def quantize(values, fmt: Format, quant: str = "RND", overflow: str = "SAT", *, name: str = "value"):
    """Float to fixed: the same cast applied to real numbers. Returns ``(codes, n_overflow)``.

    NaN or infinity is an error, never a silent code.
    """
    check_modes(quant, overflow)
    v = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(v)):
        bad = np.argwhere(~np.isfinite(v))[0]
        where = f" at index {tuple(int(i) for i in bad)}" if v.ndim else ""
        raise FixedPointError(f"{name} contains NaN or infinity{where}")
    with np.errstate(over="ignore", invalid="ignore"):
        scaled = np.ldexp(v, fmt.frac)        # exact: a power-of-two scaling (or +-inf)
        floor = np.floor(scaled)
        if quant == "RND":
            # floor + (fraction >= 1/2); scaled - floor is exact, unlike floor(scaled + 0.5)
            q = floor + (scaled - floor >= 0.5)
        else:
            q = floor
    lo, hi = fmt.min_code, fmt.max_code
    big = np.abs(q) >= 2.0 ** 62
    if overflow == "SAT" or not big.any():
        n = int(np.count_nonzero((q < lo) | (q > hi)))
        # clip in float first (lo, hi are exact in float64 up to 53 bits; wider formats are
        # only reached through the object path below)
        if fmt.bits <= 53:
            # WRAP needs the unclipped code (|q| < 2^62 here, so int64 is exact)
            clipped = np.clip(q, lo - 1, hi + 1) if overflow == "SAT" else q
            codes, _ = _overflow(clipped.astype(np.int64), fmt, overflow)
            return codes, n
    # a scaled value that overflowed float64 came from an integer |value| >= 2^53
    qi = np.array([int(t) if np.isfinite(t) else int(x) << fmt.frac
                   for t, x in zip(q.ravel(), v.ravel())], dtype=object).reshape(q.shape)
    return _overflow(qi, fmt, overflow)


def to_float(codes, fmt_or_frac) -> np.ndarray:
    """Decode raw codes to float64 (exact while codes fit in 53 bits)."""
    frac = fmt_or_frac.frac if isinstance(fmt_or_frac, Format) else int(fmt_or_frac)
    a = np.asarray(codes)
    if a.dtype == object:
        return np.array([np.ldexp(float(t), -frac) for t in a.ravel()]).reshape(a.shape)
    return np.ldexp(a.astype(np.float64), -frac)
