"""The fused sequence loop behind :meth:`model.cell.FixedLSTM.run`: the same integers as
calling :meth:`~model.cell.FixedLSTM.step` once per time step, at close to float speed.

Used when the config proves that everything below is exact (:func:`plan` returns None
otherwise and ``run`` takes the step-by-step path):

- z for a step is one BLAS call: the operand row [h, x_t, 1] of each sequence against
  [W_hh; W_ih; constant], in float64, with the weights pre-scaled by powers of two so that the
  sum comes out directly in z LSBs, and the constant holding the bias, the rounding half LSB
  (RND) and the offset -min_code(z). Every partial sum is an integer multiple of 2^-drop below
  2^53 in magnitude (the accumulator bound plus those offsets, checked by :func:`plan`), so
  float64 holds it exactly, whatever order BLAS adds in.
- Offset by -min_code, a z code that is in range is a non-negative number, so truncation to
  an integer is the floor: the z cast is one conversion, and its result is directly the
  index into the activation tables' per-code arrays (:attr:`model.activations.Table.per_code`),
  so each table lookup is one gather. Out-of-range values (the rare case) take an explicit
  floor and saturate or wrap.
- c and h casts run in place on int64 (:func:`model.fixed.cast_int64_`), with widths
  checked by :func:`plan` so that nothing can wrap.
- Only the tensors asked for are kept (``record``); the overflow counts cover every cast.
"""
from __future__ import annotations

import numpy as np

from .fixed import cast_int64_

__all__ = ["FusedPlan", "plan"]

FLOAT_EXACT = 1 << 53
INT64_SAFE = 1 << 62


class FusedPlan:
    """Pre-scaled weights, the folded constant and the gather tables of one cell."""

    def __init__(self, cell, tables):
        cfg, H = cell.config, cell.n_hidden
        acc, z = cfg.fmt("accumulator"), cfg.spec("z")
        self.drop_z = acc.frac - z.fmt.frac
        self.z_spec, self.z_offset = z, -z.fmt.min_code
        self.n_codes_z = 1 << z.fmt.bits
        scale = -self.drop_z
        X = cell.n_inputs
        half = (1 << (self.drop_z - 1)) if z.round == "RND" and self.drop_z > 0 else 0
        const = [int(b) + half + (self.z_offset << self.drop_z) for b in cell.bias_acc]
        # [W_hh; W_ih; constant] as (4, H + X + 1, H), gate-major, so that each gate's sums
        # come out contiguous; scaled by powers of two (exact) to z LSBs
        w = np.concatenate([np.ldexp(cell.weights.weight_hh.astype(np.float64), cell.shift_h + scale),
                            np.ldexp(cell.weights.weight_ih.astype(np.float64), cell.shift_x + scale),
                            np.ldexp(np.array(const, dtype=np.float64), scale)[:, None]], axis=1)
        self.weights = np.ascontiguousarray(w.reshape(4, H, H + X + 1).transpose(0, 2, 1))
        # per-code arrays in the narrowest integer type that holds the output codes (a
        # smaller gather source stays in cache); products are taken in int64
        self.sigmoid, self.tanh, self.tanh_c = (
            (codes.astype(_narrowest(t.spec.output.fmt)), mask)
            for t in tables for codes, mask in [t.per_code])
        gate, cand, c = cfg.fmt("gate"), cfg.fmt("candidate"), cfg.fmt("c")
        f_fc, f_ig = gate.frac + c.frac, gate.frac + cand.frac
        f_sum = max(f_fc, f_ig)
        self.shift_fc, self.shift_ig = f_sum - f_fc, f_sum - f_ig
        self.c_spec, self.drop_c = cfg.spec("c"), f_sum - c.frac
        self.c_offset = -c.min_code
        self.h_spec = cfg.spec("h")
        self.drop_h = gate.frac + cfg.fmt("tanh_c").frac - self.h_spec.fmt.frac
        self.n_hidden = H

    def run(self, x: np.ndarray, first, h0, c0, record) -> tuple[dict, dict]:
        """x raw codes (B, T, X); returns (recorded tensors (B, T, .), overflow counts)."""
        B, T, X = x.shape
        H = self.n_hidden
        out = {n: np.empty((B, T, 4 * H if n == "z" else H), np.int64) for n in record}
        # as the step-by-step loop: a count for each cast once a step has run
        counts = dict.fromkeys(("z", "i", "f", "g", "o", "c", "tanh_c", "h") if T else (), 0)
        # one operand row per sequence: [h, x_t, 1] against [W_hh; W_ih; constant]
        operand = np.empty((B, H + X + 1))
        operand[:, H + X] = 1.0
        acc = np.empty((4, B, H))             # gate-major: each gate's (B, H) is contiguous
        h, c = h0.astype(np.int64), c0.astype(np.int64)
        restart_any = first[:, 1:].any(axis=0) if T > 1 else np.zeros(0, bool)
        for t in range(T):
            if t and restart_any[t - 1]:
                r = first[:, t][:, None]
                h, c = np.where(r, h0, h), np.where(r, c0, c)
            operand[:, :H] = h
            operand[:, H:H + X] = x[:, t]
            np.matmul(operand, self.weights, out=acc)
            idx, counts["z"] = self._z_index(acc, counts["z"])
            if "z" in out:
                np.subtract(idx.transpose(1, 0, 2), self.z_offset,
                            out=out["z"][:, t].reshape(B, 4, H))
            i, f, g, o = (self._lookup(table, idx[k], name, counts) for name, k, table in
                          (("i", 0, self.sigmoid), ("f", 1, self.sigmoid),
                           ("g", 2, self.tanh), ("o", 3, self.sigmoid)))
            # c = f*c + i*g, exact in int64 (widths checked by plan), one cast
            c_sum = np.multiply(f, c, dtype=np.int64)
            if self.shift_fc:
                c_sum <<= self.shift_fc
            ig = np.multiply(i, g, dtype=np.int64)
            if self.shift_ig:
                ig <<= self.shift_ig
            c_sum += ig
            cs = self.c_spec
            counts["c"] += cast_int64_(c_sum, self.drop_c, cs.fmt, cs.round, cs.overflow)
            c = c_sum
            tanh_c = self._lookup(self.tanh_c, c + self.c_offset, "tanh_c", counts)
            h = np.multiply(o, tanh_c, dtype=np.int64)
            hs = self.h_spec
            counts["h"] += cast_int64_(h, self.drop_h, hs.fmt, hs.round, hs.overflow)
            for name, v in (("i", i), ("f", f), ("g", g), ("o", o), ("c", c),
                            ("tanh_c", tanh_c), ("h", h)):
                if name in out:
                    out[name][:, t] = v
        return out, counts

    def _z_index(self, acc: np.ndarray, count: int):
        """z cast of acc (offset z LSBs, exact float64) -> table index z - min_code."""
        top = self.n_codes_z
        if acc.size == 0 or (acc.min() >= 0 and acc.max() < top):
            return acc.astype(np.intp), count       # non-negative: truncation is the floor
        q = np.floor(acc)
        over = (q < 0) | (q >= top)
        count += int(np.count_nonzero(over))
        if self.z_spec.overflow == "SAT":
            return np.clip(q, 0, top - 1).astype(np.intp), count
        return q.astype(np.int64) & (top - 1), count     # WRAP: low W bits of z - min_code

    @staticmethod
    def _lookup(table, idx: np.ndarray, name: str, counts: dict) -> np.ndarray:
        codes, mask = table
        if mask is not None:
            counts[name] += int(np.count_nonzero(np.take(mask, idx)))
        return np.take(codes, idx)


def _narrowest(fmt) -> type:
    return next(d for d in (np.int16, np.int32, np.int64) if fmt.bits <= np.iinfo(d).bits)


def plan(cell) -> FusedPlan | None:
    """A :class:`FusedPlan` when the config proves the fused loop exact, else None."""
    cfg = cell.config
    if cell.path != "float":
        return None
    acc, z = cfg.fmt("accumulator"), cfg.fmt("z")
    drop_z = acc.frac - z.frac
    if drop_z < 0:
        return None
    tables = (cell.tables["sigmoid"], cell.tables["tanh"], cell.tables["tanh_c"])
    wants = (("z", "gate"), ("z", "candidate"), ("c", "tanh_c"))
    for table, (fin, fout) in zip(tables, wants):
        if table.spec.input.fmt != cfg.fmt(fin) or table.spec.output.fmt != cfg.fmt(fout) \
                or table.per_code is None:
            return None
    # z: |acc| + the half LSB + the offset, in accumulator LSBs, must stay below 2^53
    from .config import accumulator_bound
    bound = accumulator_bound(cfg, cell.n_inputs, cell.n_hidden)
    if bound + (1 << drop_z) + (1 << (z.bits - 1 + drop_z)) >= FLOAT_EXACT:
        return None
    # c_sum = (f*c << s1) + (i*g << s2) + half, then possibly shifted left; h likewise
    gate, cand, c, tc, h = (cfg.fmt(n) for n in ("gate", "candidate", "c", "tanh_c", "h"))
    f_fc, f_ig = gate.frac + c.frac, gate.frac + cand.frac
    f_sum = max(f_fc, f_ig)
    c_bound = (1 << (gate.bits - 1 + c.bits - 1 + f_sum - f_fc)) + \
        (1 << (gate.bits - 1 + cand.bits - 1 + f_sum - f_ig))
    h_bound = 1 << (gate.bits - 1 + tc.bits - 1)
    for value, drop in ((c_bound, f_sum - c.frac), (h_bound, gate.frac + tc.frac - h.frac)):
        if (value << max(0, -drop)) + (1 << max(0, drop)) >= INT64_SAFE:
            return None
    return FusedPlan(cell, tables)
