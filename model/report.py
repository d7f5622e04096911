"""Quantization report: the fixed-point cell against its float64 reference (docs/numerics.md, docs/cli.md).

Two halves, kept apart so each can be tested alone:

* computation: pure functions from arrays (or a :class:`~model.golden.GoldenRun`) to plain
  dicts of numbers: :func:`error_stats`, :func:`step_errors`, :func:`accuracy`,
  :func:`quantization_report`, :func:`activation_summary`;
* presentation: :func:`to_jsonable` (the ``--json`` object) and :func:`format_report`,
  :func:`format_activations` (aligned text tables).

Error is always ``fixed - float``: the fixed-point value decoded to float64 minus the float64
reference of the same tensor on the same inputs. SQNR is ``10 log10(sum ref^2 / sum err^2)``
in dB (infinite when the error is zero; ``null`` in JSON).
"""
from __future__ import annotations

import math

import numpy as np

from .activations import Table
from .cell import CAST_TENSORS, STATE_TENSORS
from .config import Config, TensorSpec, accumulator_bits_needed
from .fixed import to_float

__all__ = [
    "error_stats", "step_errors", "accuracy", "quantization_report", "layer_report",
    "activation_summary",
    "format_summary", "to_jsonable", "format_report", "format_layers", "format_activations",
]

#: Operands cast from float before the cell runs, with the config tensor they are cast into.
OPERANDS = {"x": "x", "weight_ih": "weight", "weight_hh": "weight", "bias": "bias",
            "head_weight": "weight", "head_bias": "bias"}


# ---- computation ----------------------------------------------------------------------------

def error_stats(fixed, reference) -> dict:
    """Max abs, mean abs, RMSE of ``fixed - reference`` and SQNR (dB) of ``reference``."""
    fixed = np.asarray(fixed, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if fixed.shape != reference.shape:
        raise ValueError(f"shapes differ: {fixed.shape} vs {reference.shape}")
    if fixed.size == 0:
        raise ValueError("no values to compare")
    err = fixed - reference
    err_power = float(np.mean(err * err))
    signal_power = float(np.mean(reference * reference))
    if err_power == 0.0:
        sqnr = math.inf
    elif signal_power == 0.0:
        sqnr = -math.inf
    else:
        sqnr = 10.0 * math.log10(signal_power / err_power)
    return {"max_abs_err": float(np.max(np.abs(err))), "mean_abs_err": float(np.mean(np.abs(err))),
            "rmse": math.sqrt(err_power), "sqnr_db": sqnr, "count": int(err.size)}


def step_errors(fixed, reference) -> dict:
    """Error per time step of (B, T, N) arrays: max abs and RMSE over B and N, each (T,)."""
    err = np.asarray(fixed, dtype=np.float64) - np.asarray(reference, dtype=np.float64)
    if err.ndim != 3:
        raise ValueError(f"expected (B, T, N) arrays, not {err.shape}")
    return {"max_abs_err": np.max(np.abs(err), axis=(0, 2)),
            "rmse": np.sqrt(np.mean(err * err, axis=(0, 2)))}


def growth(per_step: np.ndarray) -> float | None:
    """Last step's error over the first step's (> 1: error grows along the sequence)."""
    first, last = float(per_step[0]), float(per_step[-1])
    return None if first == 0.0 else last / first


def accuracy(logits, labels) -> float:
    """Fraction of sequences whose argmax logit is the label (first maximum on ties)."""
    return float(np.mean(np.argmax(np.asarray(logits), axis=-1) == np.asarray(labels)))


def _format_entry(spec: TensorSpec) -> dict:
    return {"q": str(spec.fmt), "bits": spec.fmt.bits, "frac": spec.fmt.frac,
            "round": spec.round, "overflow": spec.overflow}


def formats(config: Config) -> dict:
    return {name: _format_entry(spec) for name, spec in config.tensors.items()}


def activation_summary(tables: dict[str, Table]) -> dict:
    """Per table: exhaustive max/mean abs error over every input code, segments, ROM sizes."""
    out = {}
    for name, table in tables.items():
        spec = table.spec
        err = np.abs(table.errors())
        max_err = float(err.max())
        out[name] = {
            "function": spec.function, "method": spec.method,
            "max_abs_err": max_err, "max_abs_err_lsb": max_err / spec.output.fmt.lsb,
            "mean_abs_err": float(err.mean()), "segments": table.segments,
            "index_entries": int(len(table.index)), "index_shift": table.index_shift,
            "slope_frac": spec.slope_frac, "input_codes": int(err.size),
            "input_format": str(spec.input.fmt), "output_format": str(spec.output.fmt),
            "input": _format_entry(spec.input), "output": _format_entry(spec.output),
        }
    return out


def _operands(run) -> dict:
    """Float-to-fixed casts of inputs and weights: saturated count and quantization error.
    ``run`` is a :class:`~model.golden.LayerRun`."""
    raw = {"x": run.x_raw, **{n: getattr(run.qweights, n) for n in OPERANDS if n != "x"}}
    values = {"x": run.x, **{n: getattr(run.weights, n) for n in OPERANDS if n != "x"}}
    overflow = run.overflow
    out = {}
    for name, tensor in OPERANDS.items():
        if raw[name] is None:
            continue
        spec = run.config.spec(tensor)
        err = to_float(raw[name], spec.fmt) - values[name]
        out[name] = {"format": str(spec.fmt), "overflow": int(overflow.get(name, 0)),
                     "count": int(err.size), "max_abs_err": float(np.max(np.abs(err)))}
    for name, (values, codes, n) in run.state.items():
        spec = run.config.spec(name[0])           # h0 into the h format, c0 into c
        err = to_float(codes, spec.fmt) - values
        out[name] = {"format": str(spec.fmt), "overflow": n, "count": int(err.size),
                     "max_abs_err": float(np.max(np.abs(err)))}
    return out


def layer_report(layer) -> dict:
    """One layer's errors (h, c headline figures, per tensor, per step), saturation counts
    and operand casts; ``layer`` is a :class:`~model.golden.LayerRun`."""
    decoded, reference = layer.decoded(), layer.reference
    tensors = {}
    for name in STATE_TENSORS:
        spec = layer.config.spec(CAST_TENSORS[name])
        stats = error_stats(decoded[name], reference[name])
        stats.update(format=str(spec.fmt), max_abs_err_lsb=stats["max_abs_err"] / spec.fmt.lsb,
                     overflow=int(layer.fixed.overflow.get(name, 0)))
        tensors[name] = stats
    per_step = {}
    for name in ("h", "c"):
        steps = step_errors(decoded[name], reference[name])
        per_step[name] = {**steps, "rmse_growth": growth(steps["rmse"]),
                          "max_abs_err_growth": growth(steps["max_abs_err"])}
    X, H = layer.weights.n_inputs, layer.weights.n_hidden
    overflow = {k: int(v) for k, v in layer.overflow.items()}
    return {
        "layer": layer.index, "inputs": X, "hidden": H,
        "h_max_abs_err": tensors["h"]["max_abs_err"], "h_rmse": tensors["h"]["rmse"],
        "c_max_abs_err": tensors["c"]["max_abs_err"], "c_rmse": tensors["c"]["rmse"],
        "sqnr_db": tensors["h"]["sqnr_db"],
        "saturated": sum(overflow.values()),
        "accumulator_bits_needed": accumulator_bits_needed(layer.config, X, H),
        "dot_product_path": layer.cell.path,
        "tensors": tensors, "per_step": per_step, "overflow": overflow,
        "operands": _operands(layer), "formats": formats(layer.config),
    }


def quantization_report(run, labels=None) -> dict:
    """Everything the report shows, as plain numbers and numpy arrays (see :func:`to_jsonable`).

    ``run`` is a :class:`~model.golden.GoldenRun`; ``labels`` (B,) class numbers or None.
    The top-level figures are the last layer's (the output); ``layers`` has every layer's.
    """
    layers = [layer_report(layer) for layer in run.layers]
    last = layers[-1]
    B, T, X = run.x.shape
    H = run.weights.n_hidden
    report = {
        **{k: last[k] for k in ("h_max_abs_err", "h_rmse", "c_max_abs_err", "c_rmse", "sqnr_db")},
        "shape": {"sequences": B, "steps": T, "inputs": X, "hidden": H,
                  "classes": run.weights.head_weight.shape[0] if run.weights.has_head else None,
                  "layers": len(layers)},
        "config": run.config.source,
        **{k: last[k] for k in ("dot_product_path", "accumulator_bits_needed", "tensors",
                                "per_step", "overflow", "operands", "formats")},
        "activations": activation_summary(run.cell.tables),
        "layers": layers,
    }
    if run.logits_raw is not None:
        report["logits"] = error_stats(run.logits_fixed, run.logits_float)
    if labels is not None:
        pred_float = np.argmax(run.logits_float, axis=-1)
        pred_fixed = np.argmax(np.asarray(run.logits_raw), axis=-1)
        report.update(
            accuracy_float=accuracy(run.logits_float, labels),
            accuracy_fixed=accuracy(run.logits_raw, labels),
            predictions_differ=int(np.count_nonzero(pred_float != pred_fixed)))
    return report


# ---- presentation ---------------------------------------------------------------------------

def to_jsonable(value):
    """Nested dicts/lists of JSON types: arrays become lists, numpy scalars Python numbers,
    non-finite floats (an infinite SQNR when the error is exactly zero) ``None``."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def _e(v) -> str:
    return "-" if v is None else f"{v:.3e}"


def _db(v) -> str:
    return "inf" if v == math.inf else ("-inf" if v == -math.inf else f"{v:.1f}")


def _table(header: list[str], rows: list[list[str]], align: str, indent: str = "  ") -> list[str]:
    """Aligned columns; ``align`` has one letter per column: ``l`` (text) or ``r`` (numbers)."""
    widths = [max(len(r[k]) for r in [header, *rows]) for k in range(len(header))]

    def line(r):
        cells = [c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(r, widths, align)]
        return (indent + "  ".join(cells)).rstrip()
    return [line(header), *(line(r) for r in rows)]


def _steps_shown(T: int, limit: int = 16) -> list[int]:
    if T <= limit:
        return list(range(T))
    return sorted(set(np.linspace(0, T - 1, limit).round().astype(int).tolist()))


def format_summary(report: dict) -> list[str]:
    lines = []
    if report["shape"]["classes"] is None:
        lines.append("  accuracy    - (the weights have no classifier head)")
    elif "accuracy_float" not in report:
        lines.append("  accuracy    - (no labels given)")
    else:
        n = report["shape"]["sequences"]
        lines.append(f"  accuracy    float {report['accuracy_float']:.4f}   fixed "
                     f"{report['accuracy_fixed']:.4f}   predictions that differ: "
                     f"{report['predictions_differ']} of {n}")
    lines.append(f"  h           max abs err {_e(report['h_max_abs_err'])}   RMSE "
                 f"{_e(report['h_rmse'])}   SQNR {_db(report['sqnr_db'])} dB")
    lines.append(f"  c           max abs err {_e(report['c_max_abs_err'])}   RMSE "
                 f"{_e(report['c_rmse'])}")
    return lines


def format_report(report: dict) -> str:
    """The report as aligned text tables (the CLI's default output)."""
    shape = report["shape"]
    out = ["Quantization report: fixed point vs float64 reference (error = fixed - float)", ""]
    for key, value in report.get("sources", {}).items():
        out.append(f"  {key:<11} {value}")
    head = f", head C={shape['classes']}" if shape["classes"] else ", no classifier head"
    out += [f"  sizes       X={shape['inputs']}, H={shape['hidden']}{head}; "
            f"{shape['sequences']} sequences x {shape['steps']} steps"
            + (f"; {shape['layers']} stacked layers" if shape.get("layers", 1) > 1 else ""),
            f"  accumulator {report['formats']['accumulator']['q']} "
            f"({report['formats']['accumulator']['bits']} bits, "
            f"{report['accumulator_bits_needed']} needed); dot products on the "
            f"{report['dot_product_path']} path", ""]
    out += ["Summary", *format_summary(report), ""]
    layers = report.get("layers", [])
    which = ""
    if len(layers) > 1:
        out += format_layers(layers)
        which = f", last layer ({len(layers) - 1})"

    out.append(f"Per tensor (all sequences and steps{which})")
    rows = [[name, s["format"], _e(s["max_abs_err"]), f"{s['max_abs_err_lsb']:.2f}",
             _e(s["mean_abs_err"]), _e(s["rmse"]), _db(s["sqnr_db"]), str(s["overflow"])]
            for name, s in report["tensors"].items()]
    out += _table(["tensor", "format", "max abs err", "(LSB)", "mean abs err", "RMSE",
                   "SQNR dB", "sat/wrap"], rows, "llrrrrrr")
    if "logits" in report:
        lg = report["logits"]
        out.append(f"  logits: max abs err {_e(lg['max_abs_err'])}, RMSE {_e(lg['rmse'])}, "
                   f"SQNR {_db(lg['sqnr_db'])} dB")
    out.append("")

    out.append(f"Error per time step{which.replace(', l', ': l')}")
    h, c = report["per_step"]["h"], report["per_step"]["c"]
    rows = [[str(t), _e(h["max_abs_err"][t]), _e(h["rmse"][t]), _e(c["max_abs_err"][t]),
             _e(c["rmse"][t])] for t in _steps_shown(len(h["rmse"]))]
    out += _table(["step", "h max abs", "h RMSE", "c max abs", "c RMSE"], rows, "rrrrr")
    for name, s in (("h", h), ("c", c)):
        g = s["rmse_growth"]
        out.append(f"  {name} RMSE, last step / first step: " + ("-" if g is None else f"x{g:.2f}"))
    out.append("")

    if which:
        out.append(f"Operand casts (last layer ({len(layers) - 1}); its x is layer "
                   f"{len(layers) - 2}'s h)")
    else:
        out.append("Casts from float (inputs and weights)")
    rows = [[name, s["format"], str(s["count"]), str(s["overflow"]), _e(s["max_abs_err"])]
            for name, s in report["operands"].items()]
    out += _table(["operand", "format", "values", "sat/wrap", "max abs err"], rows, "llrrr")
    total = sum(report["overflow"].values())
    out.append(f"  values saturated or wrapped in all casts: {total}")
    out.append("")

    out.append("Activation tables (exhaustive over every input code)")
    out += format_activations(report["activations"]).splitlines()[1:]
    return "\n".join(out) + "\n"


def format_layers(layers: list) -> list[str]:
    """The per-layer table of a stacked model's report."""
    rows = [[str(r["layer"]), str(r["inputs"]), str(r["hidden"]), _e(r["h_max_abs_err"]),
             _e(r["h_rmse"]), _e(r["c_max_abs_err"]), _e(r["c_rmse"]), _db(r["sqnr_db"]),
             str(r["saturated"])] for r in layers]
    return ["Per layer (layer k+1 reads layer k's h; its x cast counts as its own saturation)",
            *_table(["layer", "X", "H", "h max abs err", "h RMSE", "c max abs err", "c RMSE",
                     "SQNR dB", "sat/wrap"], rows, "rrrrrrrrr"), ""]


def format_activations(summary: dict) -> str:
    """The activation tables' summary as an aligned text table."""
    rows = [[name, s["function"], s["method"], s["input_format"], s["output_format"],
             str(s["segments"]), str(s["index_entries"]), _e(s["max_abs_err"]),
             f"{s['max_abs_err_lsb']:.2f}", _e(s["mean_abs_err"])]
            for name, s in summary.items()]
    lines = ["Activation tables (exhaustive over every input code)"]
    lines += _table(["table", "function", "method", "input", "output", "segments",
                     "index", "max abs err", "(LSB)", "mean abs err"], rows, "lllllrrrrr")
    return "\n".join(lines) + "\n"
