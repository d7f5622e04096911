"""The LSTM cell in fixed point (bit-accurate: this defines the hardware's integers) and the
float64 reference of the same equations (docs/numerics.md).

    z   = W_ih x_t + W_hh h_{t-1} + b                 exact in the accumulator, then cast to z
    i, f, o = sigmoid(z_i, z_f, z_o)  g = tanh(z_g)   PWL tables (model.activations)
    c_t = f * c_{t-1} + i * g                         exact products and sum, one cast to c
    h_t = o * tanh(c_t)                               PWL tanh(c) to tanh_c; exact product, cast to h

Gate order in z and in the weights' rows is i, f, g, o (PyTorch). Sequences: step t of
sequence b starts from (h0, c0) when t == 0 or ``first[b, t]`` is set.
"""
from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from .activations import build_table, reference
from .config import Config, accumulator_bound, check_sizes
from .fixed import cast, shift, to_float
from .fused import plan as fused_plan
from .weights import QuantizedWeights

__all__ = ["FixedLSTM", "Trace", "float_run", "CAST_TENSORS", "STATE_TENSORS", "head_frac",
           "head_logits", "logit_bits"]

#: Tensors of a trace, with the format each is decoded with.
STATE_TENSORS = ("z", "i", "f", "g", "o", "c", "tanh_c", "h")
#: Casts whose overflow is counted (tensor cast into -> its format name).
CAST_TENSORS = {"z": "z", "i": "gate", "f": "gate", "g": "candidate", "o": "gate",
                "c": "c", "tanh_c": "tanh_c", "h": "h"}
FLOAT_EXACT = 1 << 53


@dataclass(frozen=True, eq=False)
class Trace:
    """Every tensor of every step: arrays (B, T, 4H) for z, (B, T, H) for the rest.

    Fixed traces hold raw int64 codes; float traces hold float64 values.
    ``overflow`` counts values that saturated or wrapped in each cast (fixed traces only).
    """

    tensors: MappingProxyType
    overflow: MappingProxyType

    def __getitem__(self, name: str) -> np.ndarray:
        return self.tensors[name]


def _framing(x: np.ndarray, first, h0, c0, n_hidden: int, dtype):
    B, T = x.shape[:2]
    first = np.zeros((B, T), bool) if first is None else np.asarray(first, bool)
    if first.shape != (B, T):
        raise ValueError(f"first must have shape (B, T) = {(B, T)}, not {first.shape}")
    states = []
    for name, s in (("h0", h0), ("c0", c0)):
        s = np.zeros((B, n_hidden), dtype) if s is None else np.asarray(s)
        s = np.broadcast_to(s, (B, n_hidden)) if s.shape in ((n_hidden,), (1, n_hidden)) else s
        if s.shape != (B, n_hidden):
            raise ValueError(f"{name} must have shape (H,) or (B, H) = {(B, n_hidden)}, not {s.shape}")
        states.append(s)
    return first, states[0], states[1]


class FixedLSTM:
    """The bit-accurate fixed-point cell for one config and one set of quantized weights.

    ``path`` chooses how W_ih x + W_hh h is computed: ``"auto"`` uses float64 BLAS when the
    config proves every partial sum stays below 2^53 (then float64 is exact), else exact
    integers; ``"float"`` insists on BLAS (refused when not provably exact); ``"int"`` always
    uses exact integer arithmetic.

    ``fused=True`` lets :meth:`run` take the fused loop of :mod:`model.fused` (one BLAS call
    for W_ih x over all steps, table lookups by one gather) whenever the config proves it
    exact; it gives the same integers as calling :meth:`step` per time step, which
    ``fused=False`` (or ``path="int"``) does.
    """

    def __init__(self, config: Config, weights: QuantizedWeights, *, path: str = "auto",
                 fused: bool = True):
        H, X = weights.n_hidden, weights.n_inputs
        check_sizes(config, X, H)
        self.config, self.weights = config, weights
        self.n_inputs, self.n_hidden = X, H
        acc, wf = config.fmt("accumulator"), config.fmt("weight")
        self.shift_x = acc.frac - config.fmt("x").frac - wf.frac
        self.shift_h = acc.frac - config.fmt("h").frac - wf.frac
        self.shift_b = acc.frac - config.fmt("bias").frac
        self.bias_acc = shift(weights.bias, self.shift_b)
        # every partial sum of x.W_ih (resp. h.W_hh) is bounded by the same count of
        # worst-case products as the accumulator bound, before the alignment shift
        bound = accumulator_bound(config, X, H)
        self.float_exact = bound < FLOAT_EXACT
        self.int64_exact = bound < 1 << 63
        if path not in ("auto", "float", "int"):
            raise ValueError(f"path must be 'auto', 'float' or 'int', not {path!r}")
        if path == "float" and not self.float_exact:
            raise ValueError("float64 path refused: this config's dot products can exceed 2^53")
        self.path = "float" if path == "float" or (path == "auto" and self.float_exact) else "int"
        if self.path == "float":
            self._wih_t = weights.weight_ih.T.astype(np.float64)
            self._whh_t = weights.weight_hh.T.astype(np.float64)
        self.tables = {name: build_table(spec) for name, spec in config.tables.items()}
        # the fused sequence loop (model/fused.py) when this config proves it exact
        self._fused = fused_plan(self) if fused else None

    @property
    def fused(self) -> bool:
        """True when :meth:`run` uses the fused loop (same integers as :meth:`step`)."""
        return self._fused is not None

    # -- one step -----------------------------------------------------------------------------
    def _matvec(self, v: np.ndarray, w: np.ndarray, w_t_float) -> np.ndarray:
        if self.path == "float":
            return (v.astype(np.float64) @ w_t_float).astype(np.int64)   # exact integers
        if self.int64_exact and v.dtype != object and w.dtype != object:
            return v @ w.T        # int64 matmul cannot wrap below the 2^63 bound
        return v.astype(object) @ w.T.astype(object)

    def accumulate(self, x: np.ndarray, h: np.ndarray) -> np.ndarray:
        """Exact W_ih x + W_hh h + b in accumulator LSBs, shape (B, 4H)."""
        w = self.weights
        fast = self.path == "float"
        ax = self._matvec(x, w.weight_ih, self._wih_t if fast else None)
        ah = self._matvec(h, w.weight_hh, self._whh_t if fast else None)
        return shift(ax, self.shift_x) + shift(ah, self.shift_h) + self.bias_acc

    def _mul(self, a: np.ndarray, b: np.ndarray, fmt_a: str, fmt_b: str) -> np.ndarray:
        """Exact a * b: |product| <= 2^(W_a + W_b - 2) fits int64 only when W_a + W_b <= 64."""
        if self.config.fmt(fmt_a).bits + self.config.fmt(fmt_b).bits > 64:
            return a.astype(object) * b.astype(object)
        return a * b

    def step(self, x: np.ndarray, h: np.ndarray, c: np.ndarray, overflow: dict | None = None):
        """One time step on raw codes: x (B, X), h and c (B, H). Returns a dict of raw tensors."""
        cfg, H = self.config, self.n_hidden
        counts = {} if overflow is None else overflow

        def into(name, raw, frac):
            spec = cfg.spec(CAST_TENSORS[name])
            codes, n = cast(raw, frac, spec.fmt, spec.round, spec.overflow)
            counts[name] = counts.get(name, 0) + n
            return codes

        def table(name, tensor, q):
            codes, n = self.tables[tensor](q)
            counts[name] = counts.get(name, 0) + n
            return codes

        z = into("z", self.accumulate(x, h), cfg.fmt("accumulator").frac)
        zi, zf, zg, zo = (z[:, k * H:(k + 1) * H] for k in range(4))
        i, f, o = (table(n, "sigmoid", q) for n, q in (("i", zi), ("f", zf), ("o", zo)))
        g = table("g", "tanh", zg)
        # c = f*c + i*g: both products exact, aligned to the wider fraction, one cast
        f_fc = cfg.fmt("gate").frac + cfg.fmt("c").frac
        f_ig = cfg.fmt("gate").frac + cfg.fmt("candidate").frac
        f_sum = max(f_fc, f_ig)
        c_sum = shift(self._mul(f, c, "gate", "c"), f_sum - f_fc) + \
            shift(self._mul(i, g, "gate", "candidate"), f_sum - f_ig)
        c_new = into("c", c_sum, f_sum)
        tanh_c = table("tanh_c", "tanh_c", c_new)
        h_new = into("h", self._mul(o, tanh_c, "gate", "tanh_c"),
                     cfg.fmt("gate").frac + cfg.fmt("tanh_c").frac)
        return {"z": z, "i": i, "f": f, "g": g, "o": o, "c": c_new, "tanh_c": tanh_c, "h": h_new}

    # -- sequences ----------------------------------------------------------------------------
    def run(self, x: np.ndarray, h0=None, c0=None, first=None, *,
            record=STATE_TENSORS) -> Trace:
        """Raw x codes (B, T, X) through the cell. h0, c0: raw codes (H,) or (B, H).

        ``record``: the tensors the trace keeps (default all of ``STATE_TENSORS``; e.g.
        ``("h", "c")`` for a lean run). The overflow counts always cover every cast.
        """
        x = np.asarray(x, dtype=np.int64)
        if x.ndim != 3 or x.shape[2] != self.n_inputs:
            raise ValueError(f"x must have shape (B, T, {self.n_inputs}), not {x.shape}")
        record = (record,) if isinstance(record, str) else tuple(record)
        unknown = sorted(set(record) - set(STATE_TENSORS))
        if unknown:
            raise ValueError(f"record: unknown tensor {unknown[0]!r} (one of {', '.join(STATE_TENSORS)})")
        B, T, _ = x.shape
        first, h0, c0 = _framing(x, first, h0, c0, self.n_hidden, np.int64)
        if self._fused is not None and self._in_formats(x, h0, c0):
            out, counts = self._fused.run(x, first, h0, c0, record)
            return Trace(MappingProxyType(out), MappingProxyType(counts))
        out = {n: np.zeros((B, T, 4 * self.n_hidden if n == "z" else self.n_hidden), np.int64)
               for n in record}
        counts: dict = {}
        h, c = h0.astype(np.int64), c0.astype(np.int64)
        for t in range(T):
            restart = first[:, t] | (t == 0)
            h = np.where(restart[:, None], h0, h)
            c = np.where(restart[:, None], c0, c)
            step = self.step(x[:, t], h, c, counts)
            for n in record:
                out[n][:, t] = step[n]
            h, c = step["h"], step["c"]
        return Trace(MappingProxyType(out), MappingProxyType(counts))

    def _in_formats(self, x, h0, c0) -> bool:
        """The fused loop's exactness proof assumes representable operands (codes in format)."""
        for a, name in ((x, "x"), (h0, "h"), (c0, "c")):
            fmt = self.config.fmt(name)
            if a.size and (a.min() < fmt.min_code or a.max() > fmt.max_code):
                return False
        return True

    def decode(self, trace: Trace) -> dict:
        """Fixed trace decoded to float64 values (the tensors the trace recorded)."""
        return {n: to_float(trace[n], self.config.fmt(CAST_TENSORS[n])) for n in trace.tensors}

    # -- classifier head ----------------------------------------------------------------------
    @property
    def head_frac(self) -> int:
        return head_frac(self.config)

    def head(self, h_last: np.ndarray) -> np.ndarray:
        """Exact integer logits (head_frac fraction bits) of the head on raw h codes (B, H)."""
        w = self.weights
        if w.head_weight is None:
            raise ValueError("these weights have no classifier head")
        return head_logits(self.config, w.head_weight, w.head_bias, h_last)


def head_frac(config: Config) -> int:
    """Fraction bits of a logit: F_l = max(F_h + F_weight, F_bias) (docs/numerics.md)."""
    return max(config.fmt("h").frac + config.fmt("weight").frac, config.fmt("bias").frac)


def head_logits(config: Config, head_weight, head_bias, h_last: np.ndarray) -> np.ndarray:
    """Exact integer logits of the head: weight codes (C, H), bias codes (C,) on raw h codes
    (B, H): sum_u h[u] W[c, u] and the bias, both aligned to F_l fraction bits, no cast."""
    frac = head_frac(config)
    prod = np.asarray(h_last).astype(object) @ np.asarray(head_weight).T.astype(object)
    logits = shift(prod, frac - config.fmt("h").frac - config.fmt("weight").frac) + \
        shift(np.asarray(head_bias), frac - config.fmt("bias").frac)
    return np.asarray(logits)


def logit_bits(config: Config, n_hidden: int) -> int:
    """Bits of a logit code: enough for the worst case of H products and the bias at any codes
    of their formats (the hardware's y stream carries logits at this width)."""
    fh, fw, fb = (config.fmt(n) for n in ("h", "weight", "bias"))
    frac = head_frac(config)
    bound = (n_hidden << (fh.bits + fw.bits - 2 + frac - fh.frac - fw.frac)) + \
        (1 << (fb.bits - 1 + frac - fb.frac))
    return bound.bit_length() + 1


def float_run(weights, x: np.ndarray, h0=None, c0=None, first=None) -> Trace:
    """The float64 reference of the same cell (same framing). ``weights``: LSTMWeights."""
    x = np.asarray(x, dtype=np.float64)
    H = weights.n_hidden
    B, T, _ = x.shape
    first, h0, c0 = _framing(x, first, h0, c0, H, np.float64)
    out = {n: np.zeros((B, T, 4 * H if n == "z" else H)) for n in STATE_TENSORS}
    h, c = h0.astype(np.float64), c0.astype(np.float64)
    for t in range(T):
        restart = first[:, t] | (t == 0)
        h = np.where(restart[:, None], h0, h)
        c = np.where(restart[:, None], c0, c)
        z = x[:, t] @ weights.weight_ih.T + h @ weights.weight_hh.T + weights.bias
        i, f, g, o = (z[:, k * H:(k + 1) * H] for k in range(4))
        i, f, o = reference("sigmoid", i), reference("sigmoid", f), reference("sigmoid", o)
        g = reference("tanh", g)
        c = f * c + i * g
        tanh_c = reference("tanh", c)
        h = o * tanh_c
        for n, v in (("z", z), ("i", i), ("f", f), ("g", g), ("o", o), ("c", c),
                     ("tanh_c", tanh_c), ("h", h)):
            out[n][:, t] = v
    return Trace(MappingProxyType(out), MappingProxyType({}))


def float_head(weights, h_last: np.ndarray) -> np.ndarray:
    return h_last @ weights.head_weight.T + weights.head_bias
