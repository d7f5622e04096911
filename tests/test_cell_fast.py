"""The fused sequence loop (model/fused.py) and its parts against the direct evaluation.

(a) a table's per-code array (one gather) equals the direct evaluation and the search oracle
    over every input code, overflow masks included;
(b) the in-place int64 cast equals ``cast`` on random values, widths, modes;
(c) ``FixedLSTM.run`` through the fused loop equals the step-by-step loop (``fused=False``)
    bit for bit, overflow counts included, on random models and formats, with restarts,
    initial states, saturating and wrapping casts, and ``record`` subsets;
(d) when the fused loop is refused (not provably exact) and when operands are out of format.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from helpers_model import default_raw, fit_accumulator, random_config, table_by_search
from model import activations
from model.activations import GATHER_BITS, build_table, evaluate
from model.cell import STATE_TENSORS, FixedLSTM
from model.config import TensorSpec, accumulator_bound, load_config, parse_config
from model.fixed import Format, cast, cast_int64_, overflows
from test_cell import constant_qweights, random_codes, random_qweights

DEFAULT = load_config()


# ---- (a) per-code tables ------------------------------------------------------------------

def assert_per_code_is_the_table(table):
    codes_in = table.spec.input.fmt.codes()
    per_code, mask = table.per_code
    direct, n = evaluate(table, codes_in)
    assert per_code.dtype == np.int64 and np.array_equal(per_code, direct)
    want, over = table_by_search(table, codes_in)
    assert np.array_equal(per_code, want)
    if n:
        assert np.array_equal(mask, over) and int(mask.sum()) == n
    else:
        assert mask is None and not over.any()
    # a gather of random codes is the direct evaluation of those codes
    rng = np.random.default_rng(len(codes_in))
    q = rng.choice(codes_in, (7, 11))
    assert np.array_equal(np.take(per_code, q - codes_in[0]), evaluate(table, q)[0])


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "tanh_c"])
def test_default_per_code_table_equals_direct_evaluation(name):
    assert_per_code_is_the_table(build_table(DEFAULT.tables[name]))


@pytest.mark.parametrize("seed", range(6))
def test_random_per_code_tables_equal_direct_evaluation(seed):
    cfg = random_config(np.random.default_rng(300 + seed), 3, 3,
                        method=("pwl", "plan")[seed % 2], act_bits=(8, GATHER_BITS))
    for spec in cfg.tables.values():
        assert_per_code_is_the_table(build_table(spec))


@pytest.mark.parametrize("overflow", ["SAT", "WRAP"])
def test_per_code_overflow_mask(overflow):
    """An output format without 1.0 (refused in configs, and by build_table's error bound, so
    built here with the unchecked builder): PLAN's sigmoid reaches 1.0 and overflows; the
    mask marks exactly those codes."""
    spec = dataclasses.replace(DEFAULT.tables["sigmoid"], method="plan",
                               output=TensorSpec(Format(8, 7), "RND", overflow))
    table = activations._build_table(spec)
    assert table.per_code[1] is not None and table.per_code[1].any()
    assert_per_code_is_the_table(table)


def test_wide_inputs_get_no_per_code_table():
    spec = dataclasses.replace(DEFAULT.tables["tanh"], method="plan",
                               input=TensorSpec(Format(GATHER_BITS + 1, 12)))
    assert build_table(spec).per_code is None


# ---- (b) the in-place cast ----------------------------------------------------------------

@pytest.mark.parametrize("seed", range(8))
def test_in_place_cast_equals_cast(seed):
    rng = np.random.default_rng(400 + seed)
    for _ in range(20):
        bits = int(rng.integers(2, 20))
        fmt = Format(bits, int(rng.integers(0, bits + 1)))
        from_frac = fmt.frac + int(rng.integers(-3, 20))
        quant, over = rng.choice(["RND", "TRN"]), rng.choice(["SAT", "WRAP"])
        a = rng.integers(-(1 << 40), 1 << 40, 500) >> int(rng.integers(0, 40))
        want, n = cast(a, from_frac, fmt, quant, over)
        got = a.copy()
        assert cast_int64_(got, from_frac - fmt.frac, fmt, quant, over) == n
        assert np.array_equal(got, want)
        mask = overflows(a, from_frac, fmt, quant)
        assert int(mask.sum()) == n


# ---- (c) fused loop vs the step-by-step loop ----------------------------------------------

def assert_fused_equals_steps(cfg, qw, x, h0=None, c0=None, first=None, record=STATE_TENSORS):
    fused = FixedLSTM(cfg, qw)
    assert fused.fused, "this case should take the fused loop"
    steps = FixedLSTM(cfg, qw, fused=False)
    assert not steps.fused
    got = fused.run(x, h0, c0, first, record=record)
    want = steps.run(x, h0, c0, first)
    assert set(got.tensors) == set(record)
    for n in record:
        assert got[n].dtype == np.int64 and np.array_equal(got[n], want[n]), n
    assert dict(got.overflow) == dict(want.overflow)
    return got


def fusable_random_config(rng, X, H):
    """Random formats and modes with the fused loop's preconditions (narrow z and c)."""
    while True:
        cfg = random_config(rng, X, H, act_bits=(8, 16), operand_bits=(4, 16),
                            out_bits=(6, 16))
        if cfg.fmt("accumulator").frac >= cfg.fmt("z").frac:
            return cfg


@pytest.mark.parametrize("seed", range(10))
def test_fused_run_equals_step_by_step_on_random_models(seed):
    rng = np.random.default_rng(500 + seed)
    X, H = int(rng.integers(1, 10)), int(rng.integers(1, 12))
    cfg = fusable_random_config(rng, X, H)
    full = seed % 2 == 0                  # codes anywhere in their formats: casts overflow
    qw = random_qweights(rng, cfg, X, H, full)
    B, T = 4, 9
    x = random_codes(rng, cfg.fmt("x"), (B, T, X), full)
    h0 = random_codes(rng, cfg.fmt("h"), (B, H), full)
    c0 = random_codes(rng, cfg.fmt("c"), (B, H), full)
    first = rng.random((B, T)) < 0.2
    trace = assert_fused_equals_steps(cfg, qw, x, h0, c0, first)
    if full:
        assert trace.overflow["z"] > 0


@pytest.mark.parametrize("modes", [("RND", "SAT"), ("TRN", "WRAP"), ("RND", "WRAP")])
@pytest.mark.parametrize("end", ["max", "min"])
def test_fused_run_at_the_rails(modes, end):
    """Weights, inputs and state at a rail: z and c saturate or wrap on every step."""
    raw = default_raw()
    raw["modes"] = {"round": modes[0], "overflow": modes[1]}
    X, H = 3, 4
    cfg = parse_config(fit_accumulator(raw, X, H))
    pick = lambda fmt: fmt.max_code if end == "max" else fmt.min_code   # noqa: E731
    qw = constant_qweights(cfg, X, H, pick(cfg.fmt("weight")), pick(cfg.fmt("bias")))
    x = np.full((2, 10, X), pick(cfg.fmt("x")), np.int64)
    trace = assert_fused_equals_steps(cfg, qw, x, np.full(H, pick(cfg.fmt("h"))),
                                      np.full(H, pick(cfg.fmt("c"))))
    assert trace.overflow["z"] > 0


def test_fused_run_on_the_default_config_with_restarts_and_record_subsets():
    rng = np.random.default_rng(7)
    X, H, B, T = 8, 5, 4, 11
    qw = random_qweights(rng, DEFAULT, X, H, False)
    x = random_codes(rng, DEFAULT.fmt("x"), (B, T, X), False)
    first = np.zeros((B, T), bool)
    first[1, 4] = first[2, 7] = first[:, 9] = True
    h0 = random_codes(rng, DEFAULT.fmt("h"), (H,), False)
    for record in (STATE_TENSORS, ("h", "c"), ("z",), ()):
        assert_fused_equals_steps(DEFAULT, qw, x, h0, None, first, record)


@pytest.mark.parametrize("B, T", [(0, 3), (2, 0), (1, 1)])
def test_fused_run_on_empty_and_single_step_inputs(B, T):
    rng = np.random.default_rng(11)
    qw = random_qweights(rng, DEFAULT, 3, 4, False)
    assert_fused_equals_steps(DEFAULT, qw, random_codes(rng, DEFAULT.fmt("x"), (B, T, 3), False))


def test_record_is_checked_and_decode_follows_it():
    rng = np.random.default_rng(8)
    cell = FixedLSTM(DEFAULT, random_qweights(rng, DEFAULT, 2, 3, False))
    x = random_codes(rng, DEFAULT.fmt("x"), (1, 2, 2), False)
    with pytest.raises(ValueError, match="record: unknown tensor 'q'"):
        cell.run(x, record=("h", "q"))
    assert set(cell.decode(cell.run(x, record="h"))) == {"h"}


# ---- (d) when the fused loop is not used --------------------------------------------------

def test_fused_loop_refused_where_not_provably_exact():
    rng = np.random.default_rng(9)
    qw = random_qweights(rng, DEFAULT, 3, 4, False)
    assert FixedLSTM(DEFAULT, qw).fused
    assert not FixedLSTM(DEFAULT, qw, path="int").fused
    assert not FixedLSTM(DEFAULT, qw, fused=False).fused
    # z wider than the per-code tables allow
    raw = default_raw()
    raw["formats"]["z"] = {"bits": GATHER_BITS + 2, "frac": 11}
    raw["activations"]["method"] = "plan"
    cfg = parse_config(fit_accumulator(raw, 3, 4))
    assert FixedLSTM(cfg, random_qweights(rng, cfg, 3, 4, False)).path == "float"
    assert not FixedLSTM(cfg, random_qweights(rng, cfg, 3, 4, False)).fused
    # the accumulator bound is below 2^53 (float path), the folded z offset is not
    raw = default_raw()
    raw["formats"]["accumulator"] = {"bits": 64, "frac": 40}
    raw["formats"]["z"] = {"bits": 18, "frac": 4}
    raw["activations"]["method"] = "plan"
    cfg = parse_config(raw)
    qw = random_qweights(rng, cfg, 3, 4, False)
    bound = accumulator_bound(cfg, 3, 4)
    assert bound < 2 ** 53 <= bound + (1 << (17 + 40 - 4))
    cell = FixedLSTM(cfg, qw)
    assert cell.path == "float" and not cell.fused


def test_out_of_format_operands_take_the_step_by_step_loop():
    """The exactness proof assumes codes in their formats; others still get exact results."""
    rng = np.random.default_rng(10)
    qw = random_qweights(rng, DEFAULT, 3, 4, False)
    cell = FixedLSTM(DEFAULT, qw)
    x = random_codes(rng, DEFAULT.fmt("x"), (2, 3, 3), False)
    h0 = np.full(4, DEFAULT.fmt("h").max_code + 5)
    want = FixedLSTM(DEFAULT, qw, fused=False).run(x, h0)
    got = cell.run(x, h0)
    assert all(np.array_equal(got[n], want[n]) for n in STATE_TENSORS)
