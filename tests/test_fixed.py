"""Formats, cast and quantize (model/fixed.py) against exact-rational oracles (docs/numerics.md).

The oracle (helpers_model.oracle_round) works on fractions.Fraction: RND is
floor(v 2^F + 1/2), TRN floor(v 2^F), SAT clamps, WRAP reduces modulo 2^W. Every comparison
here is exact: a cast is a contract, not an approximation.
"""
from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest

from helpers_model import int_cast, oracle_cast, oracle_cast_array, oracle_round
from model.fixed import FixedPointError, Format, cast, quantize, to_float

MODES = list(itertools.product(("RND", "TRN"), ("SAT", "WRAP")))


def as_ints(a) -> list[int]:
    return [int(v) for v in np.asarray(a, dtype=object).ravel()]


# ---- Format ----------------------------------------------------------------------------------

@pytest.mark.parametrize("bits, frac, q", [
    (16, 12, "Q3.12"), (16, 15, "Q0.15"), (16, 16, "Q-1.16"), (8, 0, "Q7.0"), (48, 27, "Q20.27"),
    (2, 1, "Q0.1"), (128, 64, "Q63.64"),
])
def test_format_q_notation_excludes_sign(bits, frac, q):
    fmt = Format(bits, frac)
    assert str(fmt) == q
    assert fmt.int_bits == bits - frac - 1


@pytest.mark.parametrize("bits", [3, 4, 8, 16, 53, 64, 128])
def test_format_codes_and_range(bits):
    fmt = Format(bits, 3)
    assert fmt.min_code == -(2 ** (bits - 1))
    assert fmt.max_code == 2 ** (bits - 1) - 1
    assert fmt.lsb == 0.125
    assert fmt.min_value == fmt.min_code / 8 and fmt.max_value == fmt.max_code / 8


def test_format_codes_enumerates_every_code():
    codes = Format(5, 2).codes()
    assert codes.dtype == np.int64
    assert codes.tolist() == list(range(-16, 16))
    with pytest.raises(FixedPointError, match="refusing to enumerate"):
        Format(25, 0).codes()


def test_format_describe_names_q_and_range():
    text = Format(16, 12).describe()
    assert "Q3.12" in text and "16 bits" in text and "[-8, 7.99976]" in text


@pytest.mark.parametrize("bits, frac, message", [
    (1, 0, "bits must be from 2 to 128, not 1"),
    (0, 0, "bits must be from 2 to 128, not 0"),
    (129, 0, "bits must be from 2 to 128, not 129"),
    (8, 9, r"frac must be from 0 to bits \(8\), not 9"),
    (8, -1, r"frac must be from 0 to bits \(8\), not -1"),
    (16.0, 4, "bits must be an integer, not 16.0"),
    ("16", 4, "bits must be an integer, not '16'"),
    (True, 0, "bits must be an integer, not True"),
    (16, 4.0, "frac must be an integer, not 4.0"),
    (16, None, "frac must be an integer, not None"),
])
def test_format_refuses_bad_parameters(bits, frac, message):
    with pytest.raises(FixedPointError, match=message):
        Format(bits, frac)


def test_format_is_a_frozen_value():
    assert Format(16, 12) == Format(16, 12) and hash(Format(16, 12)) == hash(Format(16, 12))
    with pytest.raises(AttributeError):
        Format(16, 12).bits = 8


# ---- cast: worked edge cases (literal expectations, no oracle) -----------------------------

# raw codes with 2 fraction bits dropped (units of 1/4 LSB of the target): value in target LSBs
TIES = np.array([-10, -6, -2, 2, 6, 10, -9, -11, 9, 11, -1, 1, -3, 3], dtype=np.int64)
#                -2.5 -1.5 -.5 .5 1.5 2.5 -2.25 -2.75 2.25 2.75 -.25 .25 -.75 .75
RND_TIES = [-2, -1, 0, 1, 2, 3, -2, -3, 2, 3, 0, 0, -1, 1]
TRN_TIES = [-3, -2, -1, 0, 1, 2, -3, -3, 2, 2, -1, 0, -1, 0]


def test_cast_rnd_ties_go_toward_plus_infinity():
    codes, n = cast(TIES, 2, Format(8, 0), "RND", "SAT")
    assert codes.tolist() == RND_TIES and n == 0


def test_cast_trn_is_floor():
    codes, n = cast(TIES, 2, Format(8, 0), "TRN", "SAT")
    assert codes.tolist() == TRN_TIES and n == 0


def test_cast_saturates_and_wraps_at_the_rails():
    fmt = Format(4, 0)                   # [-8, 7]
    raw = np.array([7, 8, 9, 15, 16, 17, -8, -9, -10, -16, -17, 100, -100])
    sat, n_sat = cast(raw, 0, fmt, "TRN", "SAT")
    assert sat.tolist() == [7, 7, 7, 7, 7, 7, -8, -8, -8, -8, -8, 7, -8] and n_sat == 11
    wrap, n_wrap = cast(raw, 0, fmt, "TRN", "WRAP")
    assert wrap.tolist() == [7, -8, -7, -1, 0, 1, -8, 7, 6, 0, -1, 4, -4] and n_wrap == 11


def test_cast_quantizes_before_overflow():
    # 7.5 rounds (RND) to 8, which then overflows Q3.0 [-8, 7]; TRN gives 7, no overflow
    def one(raw, quant, overflow):
        codes, n = cast(np.array([raw]), 1, Format(4, 0), quant, overflow)
        return codes.tolist()[0], n

    assert one(15, "RND", "SAT") == (7, 1)
    assert one(15, "RND", "WRAP") == (-8, 1)
    assert one(15, "TRN", "SAT") == (7, 0)
    # -8.5 rounds to -8 (fits), truncates to -9 (overflows)
    assert one(-17, "RND", "SAT") == (-8, 0)
    assert one(-17, "TRN", "SAT") == (-8, 1)
    assert one(-17, "TRN", "WRAP") == (7, 1)


@pytest.mark.parametrize("quant, overflow", MODES)
def test_cast_edge_codes_match_oracle(quant, overflow):
    for bits, frac, from_frac in [(8, 4, 6), (8, 0, 1), (16, 12, 27), (16, 15, 29), (2, 0, 1),
                                  (2, 1, 3), (12, 11, 11), (32, 31, 62)]:
        fmt = Format(bits, frac)
        k = from_frac - frac
        lo, hi = fmt.min_code << k, fmt.max_code << k
        half = 1 << (k - 1) if k else 0
        raw = sorted({lo, hi, lo - 1, hi + 1, lo + half, hi + half, lo - half, hi - half,
                      -half, half, 0, -1, 1, 3 * half, -3 * half, -5 * half, 5 * half,
                      lo - half - 1, hi + half - 1, 2 * lo, 2 * hi + 2})
        codes, n = cast(np.array(raw, dtype=np.int64), from_frac, fmt, quant, overflow)
        want, want_n = oracle_cast_array(raw, from_frac, bits, frac, quant, overflow)
        assert as_ints(codes) == want, (bits, frac, from_frac)
        assert n == want_n


@pytest.mark.parametrize("quant, overflow", MODES)
def test_cast_widening_is_exact(quant, overflow):
    fmt = Format(20, 10)
    raw = np.array([-512, -511, -1, 0, 1, 511, 300, -300], dtype=np.int64)   # 4 fraction bits
    codes, n = cast(raw, 4, fmt, quant, overflow)
    assert codes.tolist() == (raw * 64).tolist() and n == 0
    # widening can still overflow the narrower integer part
    codes, n = cast(np.array([1 << 20, -(1 << 20)]), 4, fmt, quant, overflow)
    want, want_n = oracle_cast_array([1 << 20, -(1 << 20)], 4, 20, 10, quant, overflow)
    assert as_ints(codes) == want and n == want_n == 2


# ---- cast: random arrays ---------------------------------------------------------------------

@pytest.mark.parametrize("quant, overflow", MODES)
def test_cast_random_arrays_match_oracle(quant, overflow):
    rng = np.random.default_rng(hash((quant, overflow)) & 0xFFFF)
    for _ in range(40):
        bits = int(rng.integers(2, 40))
        frac = int(rng.integers(0, bits + 1))
        from_frac = frac + int(rng.integers(-6, 30))
        mag = int(rng.integers(1, 62))
        raw = rng.integers(-(1 << mag), 1 << mag, size=(3, 11), dtype=np.int64)
        codes, n = cast(raw, from_frac, Format(bits, frac), quant, overflow)
        want, want_n = oracle_cast_array(raw, from_frac, bits, frac, quant, overflow)
        assert codes.shape == raw.shape
        assert as_ints(codes) == want, (bits, frac, from_frac, mag)
        assert n == want_n


def test_cast_accepts_python_ints_and_scalars():
    codes, n = cast(5, 1, Format(8, 0))
    assert int(codes) == 3 and n == 0
    codes, n = cast([[-5, 5]], 1, Format(8, 0), "TRN")
    assert codes.tolist() == [[-3, 2]]


def test_cast_refuses_floats_and_bad_modes():
    with pytest.raises(FixedPointError, match="raw codes must be integers"):
        cast(np.array([1.5]), 0, Format(8, 0))
    with pytest.raises(FixedPointError, match="rounding mode must be one of RND, TRN, not 'RNE'"):
        cast(np.array([1]), 0, Format(8, 0), "RNE", "SAT")
    with pytest.raises(FixedPointError, match="overflow mode must be one of SAT, WRAP, not 'sat'"):
        cast(np.array([1]), 0, Format(8, 0), "RND", "sat")


# ---- cast: the wide path (object arrays of Python ints) -----------------------------------

WIDE_VALUES = [0, 1, -1, (1 << 62) - 1, -(1 << 62), 1 << 62, (1 << 63) - 1, -(1 << 63),
               1 << 63, 3 << 70, -(3 << 70) - 1, (1 << 100) + 12345, -(1 << 126) + 7,
               (1 << 127) - 1, -(1 << 127), 123456789 << 40, -(987654321 << 45) - 1]


@pytest.mark.parametrize("quant, overflow", MODES)
@pytest.mark.parametrize("bits, frac, from_frac", [
    (64, 0, 0), (64, 0, 5), (64, 32, 40), (65, 10, 70), (96, 20, 64), (100, 50, 49),
    (128, 0, 1), (128, 127, 127), (128, 60, 130), (72, 0, 64), (16, 0, 70), (8, 0, 100),
    (127, 3, 3),
])
def test_cast_wide_values_and_formats_are_exact(bits, frac, from_frac, quant, overflow):
    raw = np.array(WIDE_VALUES, dtype=object)
    codes, n = cast(raw, from_frac, Format(bits, frac), quant, overflow)
    want, want_n = oracle_cast_array(raw, from_frac, bits, frac, quant, overflow)
    assert as_ints(codes) == want
    assert n == want_n
    if any(abs(v) >= 1 << 63 for v in want):
        assert codes.dtype == object       # never a wrapped int64


@pytest.mark.parametrize("quant, overflow", MODES)
@pytest.mark.parametrize("from_frac", [61, 62, 63, 64, 65, 90, 126])
def test_cast_int64_input_with_many_dropped_bits(from_frac, quant, overflow):
    # int64 codes from an accumulator with many fraction bits: the rounding constant
    # 2^(drop-1) alone may not fit int64, the result must still be exact
    info = np.iinfo(np.int64)
    big = np.array([0, 1, -1, info.max, info.min, (1 << 61) + 3, -(1 << 61), 1 << 60,
                    -(1 << 62) + 1, (1 << 62) - 1], dtype=np.int64)
    small = np.array([0, 1, -1, 5, -5, 1 << 40, -(1 << 40), (1 << 61) + 3, -(1 << 61)],
                     dtype=np.int64)
    for raw in (big, small):
        for bits, frac in ((8, 0), (16, 4), (70, 10)):
            codes, n = cast(raw, from_frac, Format(bits, frac), quant, overflow)
            want, want_n = oracle_cast_array(raw, from_frac, bits, frac, quant, overflow)
            assert as_ints(codes) == want, (bits, frac)
            assert n == want_n


def test_cast_int64_extremes_are_not_wrapped():
    info = np.iinfo(np.int64)
    raw = np.array([info.max, info.min], dtype=np.int64)
    codes, n = cast(raw, 0, Format(66, 2))              # widening by 2 bits: exceeds int64
    assert as_ints(codes) == [info.max * 4, info.min * 4] and n == 0
    codes, n = cast(raw, 1, Format(64, 0), "RND")       # (max + 1/2) rounds to 2^62
    assert as_ints(codes) == [(info.max + 1) // 2, info.min // 2] and n == 0


def test_cast_result_narrowed_to_int64_when_it_fits():
    raw = np.array([1 << 80, -(1 << 80)], dtype=object)
    codes, n = cast(raw, 60, Format(32, 0))
    assert codes.dtype == np.int64 and codes.tolist() == [1 << 20, -(1 << 20)] and n == 0


# ---- quantize (float -> fixed) -------------------------------------------------------------

def quantize_oracle(values, bits, frac, quant, overflow):
    codes, n = [], 0
    for v in np.asarray(values, dtype=np.float64).ravel():
        q, o = oracle_round(Fraction(float(v)), bits, frac, quant, overflow)
        codes.append(q)
        n += o
    return codes, n


def tricky_floats(frac: int) -> list[float]:
    lsb = 2.0 ** -frac
    below_half = 0.49999999999999994       # largest double below 0.5
    vals = [0.0, -0.0, lsb, -lsb, 0.5 * lsb, -0.5 * lsb, 1.5 * lsb, -1.5 * lsb, 2.5 * lsb,
            -2.5 * lsb, below_half * lsb, -below_half * lsb, np.nextafter(0.5, 1) * lsb,
            -np.nextafter(0.5, 1) * lsb, 5e-324, -5e-324, 1.0, -1.0, 0.1, -0.1, 1 / 3,
            (2 ** 52 + 0.5) * lsb, -(2 ** 52 + 0.5) * lsb, (2.0 ** 53 - 1) * lsb,
            np.nextafter(1.0, 0), np.nextafter(-1.0, 0), 1e-300, 1e300, -1e300,
            1.7976931348623157e308, -1.7976931348623157e308, 2.0 ** 62, -(2.0 ** 62),
            2.0 ** 63, -(2.0 ** 63), 2.0 ** 70 + 2.0 ** 18, 12345.678, -98765.4321]
    return [float(v) for v in vals]


@pytest.mark.parametrize("quant, overflow", MODES)
@pytest.mark.parametrize("bits, frac", [(16, 12), (16, 15), (8, 0), (2, 1), (24, 24), (53, 30),
                                        (54, 10), (64, 40), (100, 90), (128, 0), (128, 127)])
def test_quantize_tricky_floats_match_fraction_oracle(bits, frac, quant, overflow):
    vals = tricky_floats(frac)
    codes, n = quantize(np.array(vals), Format(bits, frac), quant, overflow)
    want, want_n = quantize_oracle(vals, bits, frac, quant, overflow)
    assert as_ints(codes) == want
    assert n == want_n


def test_quantize_ties_and_just_below_half():
    fmt = Format(16, 12)
    lsb = 2.0 ** -12
    vals = np.array([0.5, -0.5, 1.5, -1.5, -2.5, 0.49999999999999994]) * lsb
    assert quantize(vals, fmt, "RND")[0].tolist() == [1, 0, 2, -1, -2, 0]
    assert quantize(vals, fmt, "TRN")[0].tolist() == [0, -1, 1, -2, -3, 0]


def test_quantize_negative_zero_is_zero():
    codes, n = quantize(np.array([-0.0, 0.0]), Format(8, 4))
    assert codes.tolist() == [0, 0] and n == 0 and codes.dtype == np.int64


def test_quantize_counts_saturation():
    fmt = Format(8, 4)                                  # [-8, 7.9375]
    vals = np.array([7.9375, 7.96875, 8.0, -8.0, -8.03125, -8.0625, 1e9, -1e9, 0.0])
    codes, n = quantize(vals, fmt, "RND", "SAT")
    # 7.96875 rounds to 128 (overflow); -8.03125 rounds to -128.5 + .5 = -128 (fits)
    assert codes.tolist() == [127, 127, 127, -128, -128, -128, 127, -128, 0]
    assert n == 5


@pytest.mark.parametrize("quant, overflow", MODES)
def test_quantize_random_arrays_match_oracle(quant, overflow):
    rng = np.random.default_rng(7)
    for _ in range(30):
        bits = int(rng.integers(2, 64))
        frac = int(rng.integers(0, bits + 1))
        scale = 2.0 ** int(rng.integers(-frac - 2, bits - frac + 3))
        vals = rng.standard_normal((4, 7)) * scale
        # half of them snapped to exact ties of the grid
        vals[::2] = (np.floor(vals[::2] * 2.0 ** frac) + 0.5) * 2.0 ** -frac
        codes, n = quantize(vals, Format(bits, frac), quant, overflow)
        want, want_n = quantize_oracle(vals, bits, frac, quant, overflow)
        assert codes.shape == vals.shape
        assert as_ints(codes) == want, (bits, frac)
        assert n == want_n


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_quantize_refuses_nan_and_infinity_naming_the_tensor(bad):
    vals = np.zeros((2, 3))
    vals[1, 2] = bad
    message = r"weight_hh contains NaN or infinity at index \(1, 2\)"
    with pytest.raises(FixedPointError, match=message):
        quantize(vals, Format(16, 12), name="weight_hh")
    with pytest.raises(FixedPointError, match="bias contains NaN or infinity"):
        quantize(bad, Format(16, 12), name="bias")


def test_quantize_scalar_and_modes_checked():
    codes, n = quantize(0.25, Format(8, 2))
    assert int(codes) == 1 and n == 0
    with pytest.raises(FixedPointError, match="rounding mode"):
        quantize(0.25, Format(8, 2), "ROUND")


# ---- to_float --------------------------------------------------------------------------------

def test_to_float_decodes_exactly():
    fmt = Format(16, 12)
    codes = fmt.codes()[::97]
    assert np.array_equal(to_float(codes, fmt), codes / 4096.0)
    assert to_float(np.array([3]), 1).tolist() == [1.5]
    big = np.array([1 << 80, -(1 << 80)], dtype=object)
    assert to_float(big, 70).tolist() == [1024.0, -1024.0]


def test_quantize_then_decode_round_trips_on_the_grid():
    fmt = Format(12, 7)
    codes = fmt.codes()
    back, n = quantize(to_float(codes, fmt), fmt, "TRN", "WRAP")
    assert np.array_equal(back, codes) and n == 0
    assert math.isclose(float(to_float(np.array(fmt.max_code), fmt)), fmt.max_value)


# ---- the helpers' integer cast agrees with the Fraction oracle ------------------------------

@pytest.mark.parametrize("quant, overflow", MODES)
def test_helper_int_cast_agrees_with_fraction_oracle(quant, overflow):
    rng = np.random.default_rng(11)
    for _ in range(300):
        bits, frac = int(rng.integers(2, 20)), int(rng.integers(0, 12))
        bits = max(bits, frac)
        from_frac = int(rng.integers(0, 30))
        raw = int(rng.integers(-(1 << 40), 1 << 40)) >> int(rng.integers(0, 40))
        assert int_cast(raw, from_frac, bits, frac, quant, overflow) == \
            oracle_cast(raw, from_frac, bits, frac, quant, overflow)
