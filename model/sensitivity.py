"""Per-tensor sensitivity of a config, and measurements of where its h error comes from.

:func:`sensitivity` changes one tensor at a time by k fraction bits (its integer bits kept, so
its width changes by k too; the accumulator re-derived) and runs the exact model.
:func:`error_sources` runs the combined experiments that single-tensor changes cannot show:
everything widened together, near-exact activation tables, both, the weights and inputs
alone, and the error one step makes from the float state (teacher forcing) against the error
the recurrence accumulates.
"""
from __future__ import annotations

import numpy as np

from .activations import build_table
from .cell import FixedLSTM
from .config import TABLES, TENSORS, Config
from .fixed import FixedPointError, quantize, to_float
from .ranges import TABLE_INPUTS, evaluate, with_accumulator, with_format
from .sweep import SEARCHED
from .weights import quantize_weights

__all__ = ["KS", "sensitivity", "error_sources", "widened", "exact_tables", "one_step_error"]

#: Fraction-bit changes the sensitivity table tries.
KS = tuple(range(-4, 9))
#: Near-exact tables: the largest segment budget the config allows, finer slopes, breakpoints
#: on a grid of 2^-EXACT_GRID (real units).
EXACT_SEGMENTS, EXACT_SLOPE_FRAC, EXACT_GRID = 1024, 24, 8
#: Widest activation-table input :func:`widened` makes (a 24-bit table takes ~15 s to fit).
WIDEN_CAP = 22


def _with_input(config: Config, name: str, frac: int) -> Config:
    """Tensor ``name`` with ``frac`` fraction bits (integer bits kept). When it feeds tables,
    their index_shift moves by as many bits, so the breakpoints stay on the same real grid
    and the index ROM keeps its size: the same table on a finer input."""
    fmt = config.fmt(name)
    config = with_format(config, name, fmt.int_bits, frac)
    tables = [t for t, (_, src, _) in TABLES.items() if src == name]
    if tables:
        raw = config.as_dict()
        for t in tables:
            shift = raw["activations"][t]["index_shift"] + frac - fmt.frac
            raw["activations"][t]["index_shift"] = max(shift, 0)
        from .config import parse_config
        config = parse_config(raw, source=config.source)
    return config


def _shifted(config: Config, name: str, k: int) -> Config | None:
    fmt = config.fmt(name)
    if fmt.frac + k < 0 or fmt.bits + k < 2 or (name in TABLE_INPUTS and fmt.bits + k > 24):
        return None
    try:
        return _with_input(config, name, fmt.frac + k)
    except FixedPointError:
        return None


def sensitivity(config: Config, weights, x, labels=None, ks=KS, progress=None) -> list[dict]:
    """One row per (tensor, k): the format, h max abs error, SQNR and accuracy when only that
    tensor has k more (k < 0: fewer) fraction bits. Impossible formats are left out."""
    X, H = weights.n_inputs, weights.n_hidden
    rows = []
    for name in SEARCHED:
        for k in ks:
            cfg = _shifted(config, name, k)
            if cfg is None:
                continue
            cfg = with_accumulator(cfg, X, H)
            m = evaluate(cfg, weights, x, labels)
            rows.append({"tensor": name, "k": k, "format": str(cfg.fmt(name)),
                         "h_max_abs_err": m["h_max_abs_err"], "sqnr_db": m["sqnr_db"],
                         "accuracy_fixed": m["accuracy_fixed"]})
            if progress is not None:
                progress(len(rows))
    return rows


def widened(config: Config, k: int, names=SEARCHED) -> Config:
    """Every tensor in ``names`` with k more fraction bits (table inputs: at most
    :data:`WIDEN_CAP` bits)."""
    for name in names:
        fmt = config.fmt(name)
        step = max(min(k, WIDEN_CAP - fmt.bits), 0) if name in TABLE_INPUTS else k
        config = _with_input(config, name, fmt.frac + step)
    return config


def exact_tables(config: Config) -> Config:
    """Every activation table with the largest segment budget, finer slopes and breakpoints
    every 2^-8 (its error then comes from the output format and 1024 segments)."""
    raw = config.as_dict()
    for name, spec in config.tables.items():
        raw["activations"][name].update(
            max_segments=EXACT_SEGMENTS, slope_frac=EXACT_SLOPE_FRAC,
            index_shift=max(spec.input.fmt.frac - EXACT_GRID, 0))
    from .config import parse_config
    return parse_config(raw, source=config.source)


def one_step_error(config: Config, weights, x) -> np.ndarray:
    """Max |h error| per step when every step starts from the float reference's state (cast
    into the h and c formats): the error one step makes, without the recurrence carrying
    earlier steps' errors along. Shape (T,)."""
    from .cell import float_run
    from .golden import quantize_inputs
    ref = float_run(weights, x)
    cell = FixedLSTM(config, quantize_weights(weights, config))
    x_raw, _ = quantize_inputs(config, x)
    hs, cs = config.spec("h"), config.spec("c")
    B, T, H = ref["h"].shape
    out = np.zeros(T)
    for t in range(T):
        if t == 0:
            h = c = np.zeros((B, H), np.int64)
        else:
            h = quantize(ref["h"][:, t - 1], hs.fmt, hs.round, hs.overflow)[0]
            c = quantize(ref["c"][:, t - 1], cs.fmt, cs.round, cs.overflow)[0]
        step = cell.step(x_raw[:, t], h, c)
        out[t] = np.max(np.abs(to_float(step["h"], hs.fmt) - ref["h"][:, t]))
    return out


def error_sources(config: Config, weights, x, labels=None, k: int = 8) -> list[dict]:
    """The h error of ``config`` next to variants that remove one source of error, or all
    but one, at a time: the operands' quantization (x, weight, bias), the internal casts (z,
    gate, candidate, c, tanh_c, h), the tables' approximation. Rows: ``experiment``,
    ``h_max_abs_err``, ``h_max_abs_err_step`` (T,), ``sqnr_db``, ``accuracy_fixed``,
    ``table_max_abs_err`` (worst table); the last row is :func:`one_step_error`."""
    X, H = weights.n_inputs, weights.n_hidden
    internal = [n for n in SEARCHED if n not in ("x", "weight", "bias")]
    variants = {
        "the config": config,
        f"x, weight, bias +{k} fraction bits": widened(config, k, ("x", "weight", "bias")),
        f"internal tensors (z .. h) +{k}": widened(config, k, internal),
        f"every tensor +{k}": widened(config, k),
        "near-exact tables": exact_tables(config),
        f"near-exact tables, x, weight, bias +{k}": exact_tables(widened(config, k, ("x", "weight", "bias"))),
        f"near-exact tables, internal tensors +{k}": exact_tables(widened(config, k, internal)),
        f"near-exact tables, every tensor +{k}": exact_tables(widened(config, k)),
    }
    rows = []
    for label, cfg in variants.items():
        cfg = with_accumulator(cfg, X, H)
        m = evaluate(cfg, weights, x, labels)
        table_err = max(build_table(s).max_abs_err() for s in cfg.tables.values())
        rows.append({"experiment": label, "h_max_abs_err": m["h_max_abs_err"],
                     "h_max_abs_err_step": m["h_max_abs_err_step"], "sqnr_db": m["sqnr_db"],
                     "accuracy_fixed": m["accuracy_fixed"], "table_max_abs_err": table_err,
                     "formats": {n: str(cfg.fmt(n)) for n in TENSORS}})
    local = one_step_error(with_accumulator(config, X, H), weights, x)
    rows.append({"experiment": "one step from the float state (no recurrence)",
                 "h_max_abs_err": float(local.max()), "h_max_abs_err_step": local,
                 "sqnr_db": None, "accuracy_fixed": None, "table_max_abs_err": None,
                 "formats": {n: str(config.fmt(n)) for n in TENSORS}})
    return rows
