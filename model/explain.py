"""``python -m model explain``: one step of the cell, unit by unit, in the words the LSTM is
taught with, each quantity as float reference, fixed value, raw code and error in LSBs, with
the format and cast that produced it.

    f = sigmoid(z_f)   keep (forget) gate       f*c   the kept old cell      (exact product)
    i = sigmoid(z_i)   write (input) gate       i*g   the new content        (exact product)
    g = tanh(z_g)      candidate                c     = f*c + i*g, one cast into the c format
    o = sigmoid(z_o)   read (output) gate       h     = o * tanh(c)

Every number comes from :func:`model.golden.run_golden`'s traces (the fixed-point codes the
hardware computes and the float64 reference); nothing here recomputes the cell except the two
exact products f*c and i*g, which the cell never stores. See docs/numerics.md.
"""
from __future__ import annotations

import sys
import numpy as np

from .cli import UsageError, load_operands
from .fixed import to_float

__all__ = ["explain_step", "format_explain", "add_arguments", "cmd_explain", "DEFAULT_UNITS"]

#: Units shown when --units is not given (clipped to H).
DEFAULT_UNITS = (0, 1, 2)
GATE_BLOCK = {"i": 0, "f": 1, "g": 2, "o": 3}       # row blocks of z: gate order i, f, g, o
TABLE_OUTPUT = {"sigmoid": "gate", "tanh": "candidate", "tanh_c": "tanh_c"}
WORDS = {
    "z_f": "keep gate's input", "z_i": "write gate's input",
    "z_g": "candidate's input", "z_o": "read gate's input",
    "f": "keep (forget) gate", "i": "write (input) gate", "g": "candidate content",
    "o": "read (output) gate", "c_prev": "old cell c_{t-1}", "f*c": "kept old cell",
    "i*g": "new content", "c": "cell c_t", "tanh_c": "tanh of the cell", "h": "output h_t",
}


def _mode(spec) -> str:
    return f"{spec.round}/{spec.overflow}"


def _quantity(name, ref, raw, frac, lsb_frac, produced_by, fmt=None):
    """One row: reference and fixed values, raw code, error in LSBs of 2^-lsb_frac."""
    raw = int(raw)
    fixed = float(to_float(np.asarray(raw, dtype=object), frac))
    row = {"name": name, "meaning": WORDS[name], "float": float(ref), "fixed": fixed,
           "raw": raw, "frac": frac, "err_lsb": (fixed - float(ref)) * 2.0 ** lsb_frac,
           "lsb_frac": lsb_frac, "produced_by": produced_by}
    if fmt is not None:
        row["format"] = str(fmt)
        row["at_rail"] = raw in (-(1 << (fmt.bits - 1)), (1 << (fmt.bits - 1)) - 1)
    return row


PLURAL = {"sequence": "sequences", "step": "steps", "unit": "hidden units"}


def _check_index(value, size: int, what: str) -> int:
    if not 0 <= value < size:
        there = f"there is 1 {what.replace('unit', 'hidden unit')}" if size == 1 else \
            f"there are {size} {PLURAL[what]}"
        raise UsageError(f"{what} {value} is out of range: {there} (0 to {size - 1})")
    return value


def explain_step(run, sequence: int = 0, step: int = 0, units=None) -> dict:
    """The quantities of ``step`` of ``sequence`` for ``units`` from a :class:`GoldenRun`.

    The run must start each sequence from the zero state at step 0 (no ``h0``, ``c0`` or
    ``first``), as ``python -m model explain`` runs it: c_{t-1} is then zero at step 0 and the
    trace's c at step t-1 after that.

    Returns a JSON-ready dict: ``sequence``, ``step``, ``units`` (a list of
    ``{"unit": u, "quantities": [row, ...]}``; each row has ``name``, ``meaning``, ``float``,
    ``fixed``, ``raw``, ``frac``, ``err_lsb`` (in LSBs of 2^-``lsb_frac``), ``produced_by`` and,
    for cast results, ``format`` and ``at_rail``).
    """
    B, T, H = run.fixed["h"].shape
    _check_index(sequence, B, "sequence")
    _check_index(step, T, "step")
    units = list(DEFAULT_UNITS[:H] if units is None else units)
    if not units:
        raise UsageError("--units names no unit")
    for u in units:
        _check_index(u, H, "unit")
    return {"sequence": sequence, "sequences": B, "step": step, "steps": T, "hidden": H,
            "restart": step == 0,
            "units": [{"unit": u, "quantities": _unit_rows(run, sequence, step, u)}
                      for u in units]}


def _unit_rows(run, b: int, t: int, u: int) -> list[dict]:
    """The rows of one unit, in the order the cell computes them."""
    cfg, fixed, ref = run.config, run.fixed, run.reference
    H = fixed["h"].shape[2]
    fmt = {n: cfg.fmt(n) for n in ("accumulator", "z", "gate", "candidate", "c", "tanh_c", "h")}
    tables = cfg.tables

    def cast_into(tensor):
        spec = cfg.spec(tensor)
        return f"-> {tensor} {spec.fmt} {_mode(spec)}"

    def from_table(table):
        t_spec = tables[table]
        return (f"-> {TABLE_OUTPUT[table]} {t_spec.output.fmt} {_mode(t_spec.output)} "
                f"({t_spec.method} table '{table}')")

    def traced(name, tensor, produced_by):
        f = fmt[tensor]
        return _quantity(name, ref[name][b, t, u], fixed[name][b, t, u], f.frac, f.frac,
                         produced_by, f)

    rows = []
    for g in ("f", "i", "g", "o"):
        k = GATE_BLOCK[g] * H + u
        rows.append(_quantity(f"z_{g}", ref["z"][b, t, k], fixed["z"][b, t, k], fmt["z"].frac,
                              fmt["z"].frac, f"W_ih x + W_hh h + b, exact in the accumulator "
                              f"{fmt['accumulator']} {cast_into('z')}", fmt["z"]))
    for g, function, table in (("f", "sigmoid", "sigmoid"), ("i", "sigmoid", "sigmoid"),
                               ("g", "tanh", "tanh"), ("o", "sigmoid", "sigmoid")):
        rows.append(traced(g, TABLE_OUTPUT[table], f"{g} = {function}(z_{g}) {from_table(table)}"))
    if t == 0:
        c_prev_raw, c_prev_ref, source = 0, 0.0, "initial state (zero) at the sequence start"
    else:
        c_prev_raw, c_prev_ref = int(fixed["c"][b, t - 1, u]), ref["c"][b, t - 1, u]
        source = f"c of step {t - 1}"
    rows.append(_quantity("c_prev", c_prev_ref, c_prev_raw, fmt["c"].frac, fmt["c"].frac,
                          f"{source}, c {fmt['c']}", fmt["c"]))
    # the two products the cell sums without storing them: exact, errors in LSBs of c
    f_fc = fmt["gate"].frac + fmt["c"].frac
    f_ig = fmt["gate"].frac + fmt["candidate"].frac
    f_oh = fmt["gate"].frac + fmt["tanh_c"].frac
    f, i, g = (int(fixed[n][b, t, u]) for n in ("f", "i", "g"))
    f_ref, i_ref, g_ref = (ref[n][b, t, u] for n in ("f", "i", "g"))
    rows.append(_quantity("f*c", f_ref * c_prev_ref, f * c_prev_raw, f_fc, fmt["c"].frac,
                          f"f * c_{{t-1}}: exact product gate x c, {f_fc} fraction bits, "
                          "no rounding"))
    rows.append(_quantity("i*g", i_ref * g_ref, i * g, f_ig, fmt["c"].frac,
                          f"i * g: exact product gate x candidate, {f_ig} fraction bits, "
                          "no rounding"))
    rows.append(traced("c", "c", f"c = f*c + i*g, exact sum at {max(f_fc, f_ig)} fraction "
                                 f"bits {cast_into('c')}"))
    rows.append(traced("tanh_c", "tanh_c", f"tanh(c) {from_table('tanh_c')}"))
    rows.append(traced("h", "h", f"h = o * tanh(c), exact product at {f_oh} fraction bits "
                                 f"{cast_into('h')}"))
    return rows


def _num(v: float) -> str:
    return f"{v:+.6f}" if v == 0 or abs(v) >= 1e-4 else f"{v:+.3e}"


def format_explain(e: dict) -> str:
    """The text form of :func:`explain_step`'s result."""
    lines = [f"sequence {e['sequence']} (of {e['sequences']}), step {e['step']} "
             f"(of {e['steps']}), units {', '.join(str(u['unit']) for u in e['units'])} "
             f"(of {e['hidden']})"]
    if "sources" in e:
        lines.append("  " + ", ".join(f"{k} {v}" for k, v in e["sources"].items()))
    lines.append("  error = fixed - float, in LSBs of the quantity's format "
                 "(for the exact products f*c and i*g: LSBs of c)")
    for unit in e["units"]:
        lines += ["", f"unit {unit['unit']}",
                  f"  {'':7}{'':22}{'float ref':>11}{'fixed':>11}{'raw code':>17}"
                  f"{'err LSB':>9}  produced by"]
        for q in unit["quantities"]:
            rail = "  [at the rail]" if q.get("at_rail") else ""
            raw = f"{q['raw']}" if "format" in q else f"{q['raw']}/2^{q['frac']}"
            lines.append(f"  {q['name']:<7}{q['meaning']:<22}{_num(q['float']):>11}"
                         f"{_num(q['fixed']):>11}{raw:>17}{q['err_lsb']:>+9.2f}  "
                         f"{q['produced_by']}{rail}")
    return "\n".join(lines) + "\n"


def _units(text: str) -> list[int]:
    try:
        units = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise UsageError(f"--units must be unit numbers separated by commas, like 0,1,2, "
                         f"not {text!r}") from None
    return units


def add_arguments(p) -> None:
    """The ``explain`` options (``--config``, ``--weights``, ``--inputs`` come from the caller)."""
    p.add_argument("--sequence", type=int, default=0, metavar="N",
                   help="which sequence of the inputs (default 0: the first held-out digit)")
    p.add_argument("--step", type=int, default=0, metavar="T", help="time step (default 0)")
    p.add_argument("--units", metavar="U,U,...",
                   help=f"hidden units, comma-separated (default {','.join(map(str, DEFAULT_UNITS))})")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")


def cmd_explain(args) -> int:
    from .golden import run_golden
    from .report import to_jsonable
    units = None if args.units is None else _units(args.units)
    config, weights, x, _, sources = load_operands(args, want_labels=False)
    B, T = x.shape[:2]
    _check_index(args.sequence, B, "sequence")
    _check_index(args.step, T, "step")
    # steps after the chosen one cannot change it; the whole batch is kept so that the float
    # reference is computed exactly as `run` and `report` compute it (BLAS rounding can
    # depend on the batch size)
    run = run_golden(config, weights, x[:, :args.step + 1])
    result = explain_step(run, args.sequence, args.step, units)
    result.update(steps=T, sources=sources)
    if args.json:
        import json
        print(json.dumps(to_jsonable(result), allow_nan=False, indent=2))
    else:
        sys.stdout.write(format_explain(result))
    return 0
