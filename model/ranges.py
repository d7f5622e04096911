"""Formats for the precision sweep (:mod:`model.sweep`): the range analysis of the float run,
configs with one format changed and the exact accumulator derived, and the exact model's
verdict on a config (:func:`evaluate`)."""
from __future__ import annotations

import math

import numpy as np

from .cell import float_run
from .config import Config, TensorSpec, accumulator_bits_needed, parse_config
from .fixed import Format, to_float
from .golden import run_golden
from .report import accuracy

__all__ = ["UNIT_RANGE", "TABLE_INPUTS", "range_analysis", "with_accumulator", "with_format",
           "with_segments", "evaluate"]

#: Tensors that must hold 1.0 (sigmoid and tanh outputs).
UNIT_RANGE = ("gate", "candidate", "tanh_c")
#: Activation-table inputs: at most 24 bits (their tables are checked exhaustively).
TABLE_INPUTS = ("z", "c")


def _int_bits(m: float) -> int:
    """Smallest I >= 0 with m < 2^I."""
    bits = 0
    while m >= 2.0 ** bits:
        bits += 1
    return bits


def range_analysis(weights, x, margin: int = 1) -> dict:
    """Per searched tensor: the largest magnitude the float64 reference reaches on ``x`` and
    the integer bits (sign excluded) that hold it (margins: see :mod:`model.sweep`)."""
    ref = float_run(weights, np.asarray(x, dtype=np.float64))
    def biggest(*arrays):
        return max(float(np.max(np.abs(a))) for a in arrays if a is not None)
    measured = {
        "x": (biggest(x), margin),
        "weight": (biggest(weights.weight_ih, weights.weight_hh, weights.head_weight), 0),
        "bias": (biggest(weights.bias, weights.head_bias), 0),
        "z": (biggest(ref["z"]), margin),
        "c": (biggest(ref["c"]), margin),
        "gate": (biggest(ref["i"], ref["f"], ref["o"]), None),
        "candidate": (biggest(ref["g"]), None),
        "tanh_c": (biggest(ref["tanh_c"]), None),
        "h": (biggest(ref["h"]), None),
    }
    out = {}
    for name, (m, extra) in measured.items():
        if name in UNIT_RANGE:
            bits, why = 1, "holds 1.0"
        elif name == "h":
            bits, why = 0, "|h| < 1"
        else:
            bits, why = _int_bits(m) + extra, f"{extra} bit margin" if extra else "exact range"
        out[name] = {"max_abs": m, "int_bits": bits, "why": why}
    return out


def with_accumulator(config: Config, n_inputs: int, n_hidden: int) -> Config:
    """``config`` with the narrowest exact accumulator for these sizes: the fraction bits of
    the finest product (or the bias), the width the worst-case bound needs."""
    f = config.fmt
    frac = max(f("x").frac + f("weight").frac, f("h").frac + f("weight").frac, f("bias").frac)
    spec = config.spec("accumulator")
    probe = config.replace(accumulator=TensorSpec(Format(128, frac), spec.round, spec.overflow))
    bits = accumulator_bits_needed(probe, n_inputs, n_hidden)
    return config.replace(accumulator=TensorSpec(Format(bits, frac), spec.round, spec.overflow))


def with_format(config: Config, name: str, int_bits: int, frac: int) -> Config:
    """``config`` with tensor ``name`` in Q(int_bits).(frac), its modes kept (accumulator not
    re-derived). ConfigError/FixedPointError when the format is impossible."""
    spec = config.spec(name)
    return config.replace(**{name: TensorSpec(Format(int_bits + 1 + frac, frac), spec.round,
                                              spec.overflow)})


def with_segments(config: Config, table: str, segments: int) -> Config:
    """``config`` with one activation table's segment budget changed."""
    raw = config.as_dict()
    raw["activations"][table]["max_segments"] = segments
    return parse_config(raw, source=config.source)


# ---- evaluation ---------------------------------------------------------------------------

def evaluate(config: Config, weights, x, labels=None) -> dict:
    """Run the exact fixed-point model (:func:`model.golden.run_golden`) and its float
    reference; accuracy (with labels and a head), h max abs error and SQNR."""
    run = run_golden(config, weights, x)
    h_fixed = to_float(run.fixed["h"], config.fmt("h"))
    err = h_fixed - run.reference["h"]
    err_power = float(np.mean(err * err))
    signal = float(np.mean(run.reference["h"] ** 2))
    out = {"h_max_abs_err": float(np.max(np.abs(err))),
           "sqnr_db": math.inf if err_power == 0 else 10 * math.log10(signal / err_power),
           "h_max_abs_err_step": np.max(np.abs(err), axis=(0, 2)),
           "accuracy_float": None, "accuracy_fixed": None}
    if labels is not None and run.logits_raw is not None:
        out["accuracy_float"] = accuracy(run.logits_float, labels)
        out["accuracy_fixed"] = accuracy(run.logits_raw, labels)
    return out
