"""Independent oracles and random-config factories for the golden-model tests.

Nothing here calls the casts, table evaluation or cell of :mod:`model` (tables are taken
from ``build_table(...).export()``, the ROM contents, and evaluated here): the oracles work on
exact rationals (:class:`fractions.Fraction`) and plain Python integers, so a test that
compares them with the model can fail when the model is wrong. Other test modules import this file
(``import helpers_model``); pytest puts ``tests/`` on ``sys.path``.
"""
from __future__ import annotations

import copy
import math
import tomllib
from fractions import Fraction

import numpy as np

from model.activations import build_table
from model.config import DEFAULT_CONFIG, accumulator_bits_needed, parse_config
from model.fixed import Format
from model.weights import QuantizedWeights

HALF = Fraction(1, 2)


# ---- casts ---------------------------------------------------------------------------------

def oracle_round(real: Fraction, bits: int, frac: int, quant: str, overflow: str):
    """The contract's cast of an exact real number into a (bits, frac) format.

    Returns ``(code, overflowed)``. RND = floor(v * 2^F + 1/2) (ties toward +infinity),
    TRN = floor(v * 2^F); then SAT clamps and WRAP keeps the low ``bits`` bits.
    """
    scaled = Fraction(real) * (Fraction(2) ** frac)
    if quant == "RND":
        q = math.floor(scaled + HALF)
    elif quant == "TRN":
        q = math.floor(scaled)
    else:
        raise ValueError(quant)
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    if lo <= q <= hi:
        return q, False
    if overflow == "SAT":
        return (hi if q > hi else lo), True
    if overflow == "WRAP":
        return (q - lo) % (2 ** bits) + lo, True
    raise ValueError(overflow)


def oracle_cast(raw: int, from_frac: int, bits: int, frac: int, quant: str, overflow: str):
    """Integer-to-integer cast of raw code ``raw`` (``from_frac`` fraction bits)."""
    return oracle_round(Fraction(int(raw), 2 ** from_frac) if from_frac >= 0
                        else Fraction(int(raw) * 2 ** -from_frac), bits, frac, quant, overflow)


def int_cast(raw: int, from_frac: int, bits: int, frac: int, quant: str, overflow: str):
    """:func:`oracle_cast` in plain integer arithmetic (floor division, modulo): fast enough
    for exhaustive loops; test_fixed checks it against the Fraction oracle."""
    drop = from_frac - frac
    if drop > 0:
        q = (raw + (1 << (drop - 1) if quant == "RND" else 0)) // (1 << drop)
    else:
        q = raw * (1 << -drop)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if lo <= q <= hi:
        return q, False
    if overflow == "SAT":
        return (hi if q > hi else lo), True
    return (q - lo) % (1 << bits) + lo, True


def oracle_cast_array(raw, from_frac, bits, frac, quant, overflow):
    """Elementwise :func:`oracle_cast` over any iterable; returns (list of codes, count)."""
    codes, n = [], 0
    for r in np.asarray(raw, dtype=object).ravel():
        q, o = oracle_cast(int(r), from_frac, bits, frac, quant, overflow)
        codes.append(q)
        n += o
    return codes, n


# ---- activation tables ---------------------------------------------------------------------

class TableOracle:
    """Per-code table evaluation with the export() unpacked once (faster in loops)."""

    def __init__(self, table):
        e = table.export()
        self.function = table.function
        self.shift = e["index_shift"]
        self.index = [int(v) for v in e["index"]]
        self.base = [int(v) for v in e["base"]]
        self.slope = [int(v) for v in e["slope"]]
        self.intercept = [int(v) for v in e["intercept"]]
        self.one, self.frac = e["one"], e["frac"]
        out = table.spec.output
        self.out = (out.fmt.bits, out.fmt.frac, out.round, out.overflow)

    def pre_cast(self, q: int) -> int:
        a = abs(q)
        k = self.index[min(a >> self.shift, len(self.index) - 1)]
        y = self.intercept[k] + self.slope[k] * (a - self.base[k])
        if q < 0:
            y = self.one - y if self.function == "sigmoid" else -y
        return y

    def __call__(self, q: int):
        return int_cast(self.pre_cast(int(q)), self.frac, *self.out)


def table_by_search(table, codes: np.ndarray):
    """Vectorised evaluation of every code without the index ROM: the segment of |q| is the
    last base <= |q| (what the ROM must encode), the output cast is floor division.
    Returns (codes, overflowed mask)."""
    e = table.export()
    q = np.asarray(codes, dtype=np.int64)
    a = np.abs(q)
    k = np.searchsorted(e["base"], a, side="right") - 1
    y = e["intercept"][k] + e["slope"][k] * (a - e["base"][k])
    if table.function == "sigmoid":
        y = np.where(q < 0, e["one"] - y, y)
    else:
        y = np.where(q < 0, -y, y)
    out = table.spec.output
    drop = e["frac"] - out.fmt.frac
    if drop > 0:
        r = np.floor_divide(y + ((1 << (drop - 1)) if out.round == "RND" else 0), 1 << drop)
    else:
        r = y * (1 << -drop)
    lo, hi = out.fmt.min_code, out.fmt.max_code
    over = (r < lo) | (r > hi)
    if out.overflow == "SAT":
        r = np.clip(r, lo, hi)
    else:
        r = np.mod(r - lo, 1 << out.fmt.bits) + lo
    return r, over


# ---- configs -------------------------------------------------------------------------------

def default_raw() -> dict:
    """configs/default.toml as nested dicts (a fresh copy each call, safe to mutate)."""
    return tomllib.loads(DEFAULT_CONFIG.read_text())


def fit_accumulator(raw: dict, n_inputs: int, n_hidden: int, extra_frac: int = 0) -> dict:
    """Set raw's accumulator to the exact fraction bits and the derived width for X, H."""
    f = raw["formats"]
    need_frac = max(f["x"]["frac"] + f["weight"]["frac"], f["h"]["frac"] + f["weight"]["frac"],
                    f["bias"]["frac"]) + extra_frac
    acc = f["accumulator"]
    acc.update(bits=128, frac=need_frac)
    bits = accumulator_bits_needed(parse_config(copy.deepcopy(raw)), n_inputs, n_hidden)
    acc["bits"] = bits
    return raw


def _fmt(rng, lo_bits, hi_bits, min_int=None, min_frac=0):
    bits = int(rng.integers(lo_bits, hi_bits + 1))
    if min_int is None:
        frac = int(rng.integers(min_frac, bits + 1))
    else:
        frac = int(rng.integers(min_frac, bits - 1 - min_int + 1))
    return {"bits": bits, "frac": frac}


def random_raw(rng, n_inputs: int, n_hidden: int, *, method: str | None = None,
               operand_bits=(4, 18), act_bits=(8, 16), out_bits=(6, 18)) -> dict:
    """A random valid raw config: formats, per-tensor modes, table parameters.

    Activation inputs z and c get ``act_bits``; table outputs hold 1.0; the accumulator is
    exactly as wide as :func:`model.config.accumulator_bits_needed` derives.
    """
    modes = lambda: {"round": str(rng.choice(["RND", "TRN"])),        # noqa: E731
                     "overflow": str(rng.choice(["SAT", "WRAP"]))}
    formats = {}
    for name in ("x", "weight", "bias", "h"):
        formats[name] = {**_fmt(rng, *operand_bits), **modes()}
    for name in ("z", "c"):
        bits = int(rng.integers(act_bits[0], act_bits[1] + 1))
        # PLAN needs >= 4 fraction bits; keep a few integer bits so the curve is visible
        frac = int(rng.integers(4, bits - 1))
        formats[name] = {"bits": bits, "frac": frac, **modes()}
    for name in ("gate", "candidate", "tanh_c"):
        # outputs of 4+ fraction bits: coarser ones cannot meet any target the fitter tries
        formats[name] = {**_fmt(rng, *out_bits, min_int=1, min_frac=4), **modes()}
    formats["accumulator"] = {"bits": 64, "frac": 0}
    acts = {"method": method or str(rng.choice(["pwl", "plan"])),
            "max_segments": int(rng.integers(4, 65)),
            "slope_frac": int(rng.integers(5, 21)),
            "index_shift": 0}
    for name, src in (("sigmoid", "z"), ("tanh", "z"), ("tanh_c", "c")):
        # segment grain 2^index_shift codes of at most 1/8: coarser grains leave the greedy
        # fitter no table at any target (a ConfigError, tested on its own)
        grain = min(6, formats[src]["frac"] - 3, formats[src]["bits"] - 2)
        own = {"index_shift": int(rng.integers(0, max(grain, 0) + 1)),
               "slope_frac": int(rng.integers(5, 21))}
        if method is None:
            own["method"] = str(rng.choice(["pwl", "plan"]))
        acts[name] = own
    raw = {"modes": modes(), "formats": formats, "activations": acts,
           "rtl": {"lanes": int(rng.integers(1, 9))}}
    return fit_accumulator(raw, n_inputs, n_hidden)


def random_config(rng, n_inputs: int, n_hidden: int, **kw):
    return parse_config(random_raw(rng, n_inputs, n_hidden, **kw), source="<random>")


# ---- the LSTM cell ---------------------------------------------------------------------------

STATE_TENSORS = ("z", "i", "f", "g", "o", "c", "tanh_c", "h")
GATES = ("i", "f", "g", "o")
FORMAT_OF = {"z": "z", "i": "gate", "f": "gate", "g": "candidate", "o": "gate", "c": "c",
             "tanh_c": "tanh_c", "h": "h"}

def value(code, fmt: Format) -> Fraction:
    """The exact real number a raw code stands for."""
    return Fraction(int(code), 2 ** fmt.frac)


class OracleCell:
    """One LSTM step per the contract, written from docs/numerics.md with exact rationals:
    every tensor is the named cast of the exact real result of its equation."""

    def __init__(self, cfg, qw: QuantizedWeights):
        self.cfg = cfg
        f = {n: cfg.fmt(n) for n in ("x", "weight", "bias", "h")}
        self.w_ih = [[value(v, f["weight"]) for v in row] for row in qw.weight_ih]
        self.w_hh = [[value(v, f["weight"]) for v in row] for row in qw.weight_hh]
        self.bias = [value(v, f["bias"]) for v in qw.bias]
        self.tables = {n: TableOracle(build_table(s)) for n, s in cfg.tables.items()}
        self.H = len(qw.weight_hh[0])

    def cast(self, name: str, real: Fraction, counts: dict) -> int:
        spec = self.cfg.spec(FORMAT_OF[name])
        code, over = oracle_round(real, spec.fmt.bits, spec.fmt.frac, spec.round, spec.overflow)
        counts[name] = counts.get(name, 0) + over
        return code

    def table(self, name: str, table: str, q: int, counts: dict) -> int:
        code, over = self.tables[table](q)
        counts[name] = counts.get(name, 0) + over
        return code

    def step(self, x: list[int], h: list[int], c: list[int], counts: dict) -> dict:
        cfg, H = self.cfg, self.H
        xv = [value(v, cfg.fmt("x")) for v in x]
        hv = [value(v, cfg.fmt("h")) for v in h]
        z = []
        for r in range(4 * H):
            real = (sum(w * v for w, v in zip(self.w_ih[r], xv))
                    + sum(w * v for w, v in zip(self.w_hh[r], hv)) + self.bias[r])
            z.append(self.cast("z", real, counts))
        out = {"z": z}
        for k, gate in enumerate(GATES):
            table = "tanh" if gate == "g" else "sigmoid"
            out[gate] = [self.table(gate, table, q, counts) for q in z[k * H:(k + 1) * H]]
        gf, cf, gcf = cfg.fmt("gate"), cfg.fmt("c"), cfg.fmt("candidate")
        out["c"] = [self.cast("c", value(f, gf) * value(cc, cf) + value(i, gf) * value(g, gcf),
                              counts)
                    for f, cc, i, g in zip(out["f"], c, out["i"], out["g"])]
        out["tanh_c"] = [self.table("tanh_c", "tanh_c", q, counts) for q in out["c"]]
        out["h"] = [self.cast("h", value(o, gf) * value(t, cfg.fmt("tanh_c")), counts)
                    for o, t in zip(out["o"], out["tanh_c"])]
        return out

    def run(self, x: np.ndarray, h0: np.ndarray, c0: np.ndarray):
        """x (B, T, X) raw codes; h0, c0 (B, H). Returns ({tensor: (B, T, n) lists}, counts)."""
        counts: dict = {}
        trace = {n: [] for n in STATE_TENSORS}
        for b in range(x.shape[0]):
            h, c = [int(v) for v in h0[b]], [int(v) for v in c0[b]]
            rows = {n: [] for n in STATE_TENSORS}
            for t in range(x.shape[1]):
                step = self.step([int(v) for v in x[b, t]], h, c, counts)
                for n in STATE_TENSORS:
                    rows[n].append(step[n])
                h, c = step["h"], step["c"]
            for n in STATE_TENSORS:
                trace[n].append(rows[n])
        return trace, counts
