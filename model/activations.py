"""Piecewise-linear sigmoid and tanh as integer tables (docs/numerics.md, "Activation tables").

One table per (function, input format, output format). For an input code q the unit computes,
in integers only::

    a = |q|                                   (|most negative code| = 2^(W-1): one more bit)
    k = index[min(a >> index_shift, len(index) - 1)]      segment of a (index ROM)
    y = intercept[k] + slope[k] * (a - base[k])           exact, F_t = F_in + slope_frac bits
    y = one - y   (sigmoid, q < 0)   or   -y   (tanh, q < 0)      symmetry, one = 1.0 = 2^F_t
    out = cast(y, F_t -> output format, output's modes)          the one and only rounding

Breakpoints are multiples of 2^index_shift codes, so the index ROM is addressed by the high
bits of |q|; the last ROM entry covers everything beyond it, which is how the unit saturates.
The RTL's ROMs hold exactly these integers.

Methods:
    pwl   segments placed greedily, each as long as its line (slope = the secant, quantized;
          intercept centred between the extreme residuals) meets the error target; the target
          is bisected to the smallest one that fits in ``max_segments``. Intercepts never step
          below the previous segment's last value, so the output is monotone.
    plan  PLAN (Amin, Curtis and Hayes-Gill, 1997): power-of-two slopes, so the RTL needs a
          shifter, not a multiplier. Sigmoid max error 0.0189; tanh(x) = 2 sigmoid(2x) - 1.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np

from .config import ConfigError, TableSpec
from .fixed import cast, overflows, to_float

__all__ = ["Table", "build_table", "reference", "evaluate", "GATHER_BITS"]

#: Input formats up to this width also get a per-code table (2^W entries) for one-gather lookups.
GATHER_BITS = 18


def reference(function: str, v):
    """The exact function (float64) that a table approximates."""
    v = np.asarray(v, dtype=np.float64)
    if function == "sigmoid":
        return 0.5 * (1.0 + np.tanh(0.5 * v))   # no overflow for large |v|
    if function == "tanh":
        return np.tanh(v)
    raise ValueError(f"function must be 'sigmoid' or 'tanh', not {function!r}")


@dataclass(frozen=True, eq=False)
class Table:
    """An integer PWL table, ready for a ROM. See the module docstring for its evaluation."""

    spec: TableSpec
    index_shift: int
    index: np.ndarray       # (n_index,) segment number for |q| >> index_shift
    base: np.ndarray        # (S,) first |q| of each segment
    slope: np.ndarray       # (S,) >= 0, fraction bits F_t per input code
    intercept: np.ndarray   # (S,) value at base, F_t fraction bits

    @property
    def function(self) -> str:
        return self.spec.function

    @property
    def frac(self) -> int:
        """F_t: fraction bits of y before the output cast."""
        return self.spec.input.fmt.frac + self.spec.slope_frac

    @property
    def one(self) -> int:
        return 1 << self.frac

    @property
    def segments(self) -> int:
        return len(self.base)

    def __call__(self, q):
        """Output codes for input codes q (any shape). Returns ``(codes, n_overflow)``."""
        return evaluate(self, q)

    @cached_property
    def per_code(self) -> tuple[np.ndarray, np.ndarray | None] | None:
        """The table evaluated on every input code, for lookups by one gather.

        Returns ``(codes, overflow)``: ``codes[q - min_code]`` is the output code of input code
        q (exactly :func:`evaluate`'s, which computes it), ``overflow`` the matching mask of
        output casts that saturated or wrapped (None when none does). None when the input
        format is wider than ``GATHER_BITS``.
        """
        fin = self.spec.input.fmt
        if fin.bits > GATHER_BITS:
            return None
        q = fin.codes()
        codes, n = evaluate(self, q)
        out = self.spec.output
        mask = overflows(_unrounded(self, q), self.frac, out.fmt, out.round) if n else None
        codes = np.ascontiguousarray(codes, dtype=np.int64)
        for a in (codes, mask):
            if a is not None:
                a.setflags(write=False)
        return codes, mask

    def errors(self) -> np.ndarray:
        """Output minus the exact function over every representable input code (ascending)."""
        codes = self.spec.input.fmt.codes()
        out, _ = self(codes)
        exact = reference(self.function, to_float(codes, self.spec.input.fmt))
        return to_float(out, self.spec.output.fmt) - exact

    def max_abs_err(self) -> float:
        return float(np.abs(self.errors()).max())

    def export(self) -> dict:
        """The ROM contents and the constants a hardware unit needs."""
        return {"index_shift": self.index_shift, "index": self.index.copy(),
                "base": self.base.copy(), "slope": self.slope.copy(),
                "intercept": self.intercept.copy(), "frac": self.frac, "one": self.one}


def _unrounded(table: Table, q: np.ndarray) -> np.ndarray:
    """y before the output cast (F_t fraction bits) for int64 input codes q."""
    a = np.abs(q)
    k = table.index[np.minimum(a >> table.index_shift, len(table.index) - 1)]
    y = table.intercept[k] + table.slope[k] * (a - table.base[k])
    if table.function == "sigmoid":
        return np.where(q < 0, table.one - y, y)
    return np.where(q < 0, -y, y)


def evaluate(table: Table, q):
    """The documented integer evaluation (module docstring). Returns ``(codes, n_overflow)``."""
    q = np.asarray(q, dtype=np.int64)
    out = table.spec.output
    return cast(_unrounded(table, q), table.frac, out.fmt, out.round, out.overflow)


# ---- pwl: greedy placement under an error target ------------------------------------------

class _Fitter:
    """Places segments on |q| in [0, 2^(W-1)] for one spec.

    Both functions are concave for |q| >= 0, so a chord lies below the curve; lines are aimed at
    the curve plus an offset ``lift`` so the error swings both ways. Each segment starts exactly
    where the previous one ended (intercept = previous line at its knot), so the table is
    continuous and, with slopes >= 0 and values <= 1.0, monotone, whatever the rounding.
    """

    def __init__(self, spec: TableSpec):
        self.spec = spec
        fin, fout = spec.input.fmt, spec.output.fmt
        self.frac = fin.frac + spec.slope_frac
        self.one = 1 << self.frac
        self.amax = 1 << (fin.bits - 1)
        self.grain = 1 << spec.index_shift
        a = np.arange(self.amax + 1, dtype=np.int64)
        self.exact = reference(spec.function, to_float(a, fin))
        self.target = np.ldexp(self.exact, self.frac)          # in F_t units
        self.out = spec.output
        self.half_lsb = 2.0 ** (-fout.frac - 1)
        self.trn = spec.output.round == "TRN"
        self.ends = [min(j * self.grain, self.amax + 1)
                     for j in range(1, -(-(self.amax + 1) // self.grain) + 1)]

    def line(self, start: int, end: int, icpt: int, lift: float):
        """Slope from ``icpt`` at ``start`` towards the lifted curve at ``end``; its max error."""
        aim = min(end, self.amax)
        slope = 0
        if aim > start:
            goal = min(self.target[aim] + lift, self.one)
            slope = max(int(np.floor((goal - icpt) / (aim - start))), 0)
        y = icpt + slope * np.arange(end - start, dtype=np.int64)
        codes, _ = cast(y, self.frac, self.out.fmt, self.out.round, self.out.overflow)
        err = float(np.abs(to_float(codes, self.out.fmt) - self.exact[start:end]).max())
        return slope, err

    def place(self, target: float, budget: int):
        """Greedy segments meeting ``target``; None when more than ``budget`` are needed."""
        # aim the chords above the curve so errors swing both ways; TRN floors, so it aims
        # half an output LSB higher still (its rounding error becomes +-half an LSB too)
        lift_real = min(max(target - 1.25 * self.half_lsb, target / 2), 0.25) + \
            (self.half_lsb if self.trn else 0)
        lift = np.ldexp(lift_real, self.frac)
        icpt = min(int(round(self.target[0] + lift)), self.one)
        segs, start_j, ends = [], 0, self.ends
        while start_j < len(ends):
            if len(segs) == budget:
                return None
            start = start_j * self.grain
            # gallop, then bisect, for the furthest end that meets the target
            best, step, j = None, 1, start_j
            while j < len(ends):
                slope, err = self.line(start, ends[j], icpt, lift)
                if err > target:
                    break
                best, j, step = (j, slope), j + step, step * 2
            if best is None:
                return None
            lo, hi = best[0], min(j, len(ends))
            while hi - lo > 1:
                mid = (lo + hi) // 2
                slope, err = self.line(start, ends[mid], icpt, lift)
                if err <= target:
                    lo, best = mid, (mid, slope)
                else:
                    hi = mid
            j, slope = best
            segs.append((start, slope, icpt))
            icpt += slope * (ends[j] - start)          # the next segment starts on this line
            start_j = j + 1
        return segs


def _pwl(spec: TableSpec):
    fitter = _Fitter(spec)
    lo, hi = 2.0 ** -24, 0.5
    best = fitter.place(hi, spec.max_segments)
    if best is None:
        raise ConfigError(f"activation {spec.function}: no table fits in {spec.max_segments} segments")
    for _ in range(16):                                   # geometric bisection on the target
        mid = (lo * hi) ** 0.5
        segs = fitter.place(mid, spec.max_segments)
        if segs is None:
            lo = mid
        else:
            hi, best = mid, segs
    return spec.index_shift, best


# ---- plan: fixed power-of-two segments ----------------------------------------------------

# (breakpoint, log2 slope or None for 0, value at breakpoint)
_PLAN = {
    "sigmoid": [(0.0, -2, 0.5), (1.0, -3, 0.75), (2.375, -5, 0.91796875), (5.0, None, 1.0)],
    # tanh(x) = 2 sigmoid(2x) - 1 on PLAN's sigmoid: breakpoints halve, slopes and offsets double
    "tanh": [(0.0, 0, 0.0), (0.5, -1, 0.5), (1.1875, -3, 0.8359375), (2.5, None, 1.0)],
}


def _plan(spec: TableSpec):
    fin = spec.input.fmt
    if fin.frac < 4:
        raise ConfigError(f"activation {spec.function}: PLAN needs an input with at least 4 "
                          f"fraction bits (breakpoints in 1/16), not {fin}")
    if spec.slope_frac < 5:
        raise ConfigError(f"activation {spec.function}: PLAN needs slope_frac >= 5 (slopes down "
                          f"to 2^-5), not {spec.slope_frac}")
    shift, frac = fin.frac - 4, fin.frac + spec.slope_frac
    segs = []
    for x0, log_slope, y0 in _PLAN[spec.function]:
        start = int(x0 * 2 ** fin.frac)
        if start > 1 << (fin.bits - 1):
            break                                  # input range ends before this breakpoint
        slope = 0 if log_slope is None else 1 << (spec.slope_frac + log_slope)
        segs.append((start, slope, int(y0 * 2 ** frac)))
    return shift, segs


# Every table must stay within this of its function over every input code, plus two LSBs of
# its output format (rounding into a narrow format is the user's choice). PLAN, the coarsest
# method here, is within 0.038; a config that cannot do this well (slope_frac = 0 gives a
# 3-segment sigmoid 0.163 off) is refused, not silently used.
TABLE_ERROR_BOUND = 2.0 ** -4


def table_error_bound(spec: TableSpec) -> float:
    """The max abs error a table for ``spec`` may have: 2^-4 + 2 output LSBs."""
    return TABLE_ERROR_BOUND + 2.0 ** (1 - spec.output.fmt.frac)


@lru_cache(maxsize=64)
def build_table(spec: TableSpec) -> Table:
    """Generate (and cache) the integer table for a spec.

    Raises
    ------
    ConfigError
        When the table's max abs error exceeds :func:`table_error_bound`.
    """
    table = _build_table(spec)
    err, bound = table.max_abs_err(), table_error_bound(spec)
    if err > bound:
        raise ConfigError(f"activation {spec.function} ({spec.method}, {spec.input.fmt} -> "
                          f"{spec.output.fmt}): table error {err:.3g} exceeds the bound "
                          f"{bound:.3g} (2^-4 + 2 output LSBs); raise slope_frac "
                          f"({spec.slope_frac}) or max_segments ({spec.max_segments})")
    return table


def _build_table(spec: TableSpec) -> Table:
    shift, segs = (_pwl if spec.method == "pwl" else _plan)(spec)
    base = np.array([s[0] for s in segs], dtype=np.int64)
    n_index = int(base[-1] >> shift) + 1
    index = np.searchsorted(base, np.arange(n_index, dtype=np.int64) << shift, side="right") - 1
    for arr in (index, base):
        arr.setflags(write=False)
    slope = np.array([s[1] for s in segs], dtype=np.int64)
    intercept = np.array([s[2] for s in segs], dtype=np.int64)
    slope.setflags(write=False)
    intercept.setflags(write=False)
    return Table(spec, shift, index.astype(np.int64), base, slope, intercept)
