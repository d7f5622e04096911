"""The fixed-point LSTM cell (model/cell.py, model/golden.py; docs/numerics.md).

(a) fixed vs float64 accuracy at the default config, with stated bounds;
(b) the float64-BLAS fast path vs exact integer paths, bit for bit, and the path choice;
(c) an independent scalar re-implementation of the cell in exact rationals and Python ints
    (tables through helpers_model.TableOracle) against FixedLSTM, on random formats and modes
    and on saturation corners;
(d) sequence framing, (e) size checks, (f) the float reference against a separate numpy LSTM.
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from helpers_model import (
    FORMAT_OF, GATES, OracleCell, default_raw, fit_accumulator, random_config, random_raw, value,
)
from model.cell import STATE_TENSORS, FixedLSTM, float_run
from model.config import ConfigError, accumulator_bound, load_config, parse_config
from model.fixed import Format
from model.golden import run_golden
from model.weights import LSTMWeights, QuantizedWeights, quantize_weights

DEFAULT = load_config()


def random_weights(rng, X: int, H: int, scale: float | None = None) -> LSTMWeights:
    """PyTorch's init: uniform(+-1/sqrt(H))."""
    k = 1 / np.sqrt(H) if scale is None else scale
    return LSTMWeights(rng.uniform(-k, k, (4 * H, X)), rng.uniform(-k, k, (4 * H, H)),
                       rng.uniform(-k, k, 4 * H))


def random_codes(rng, fmt: Format, shape, full_range: bool) -> np.ndarray:
    if full_range:
        return rng.integers(fmt.min_code, fmt.max_code + 1, shape, dtype=np.int64)
    # values of magnitude ~1 (or the format's range if smaller)
    mag = min(fmt.max_code, 1 << fmt.frac)
    return rng.integers(-mag, mag + 1, shape, dtype=np.int64)


def random_qweights(rng, cfg, X: int, H: int, full_range: bool) -> QuantizedWeights:
    w, b = cfg.fmt("weight"), cfg.fmt("bias")
    return QuantizedWeights(random_codes(rng, w, (4 * H, X), full_range),
                            random_codes(rng, w, (4 * H, H), full_range),
                            random_codes(rng, b, (4 * H,), full_range), None, None, {})


def constant_qweights(cfg, X: int, H: int, w_code: int, b_code: int) -> QuantizedWeights:
    return QuantizedWeights(np.full((4 * H, X), w_code, np.int64),
                            np.full((4 * H, H), w_code, np.int64),
                            np.full(4 * H, b_code, np.int64), None, None, {})


# ---- (c) the scalar oracle (helpers_model.OracleCell) -----------------------------------

def assert_matches_oracle(cfg, qw, x, h0, c0, path="auto"):
    cell = FixedLSTM(cfg, qw, path=path)
    trace = cell.run(x, h0, c0)
    want, counts = OracleCell(cfg, qw).run(x, h0, c0)
    for n in STATE_TENSORS:
        got = [[[int(v) for v in row] for row in seq] for seq in np.asarray(trace[n], object)]
        assert got == want[n], n
    assert dict(trace.overflow) == counts
    return cell, trace


@pytest.mark.parametrize("seed", range(8))
def test_cell_matches_scalar_oracle_on_random_formats_and_modes(seed):
    rng = np.random.default_rng(100 + seed)
    X, H = (5, 7) if seed % 2 else (int(rng.integers(1, 5)), int(rng.integers(1, 6)))
    cfg = random_config(rng, X, H)
    full = seed % 4 >= 2                  # half the runs use codes anywhere in their formats
    qw = random_qweights(rng, cfg, X, H, full)
    B, T = 2, 5
    x = random_codes(rng, cfg.fmt("x"), (B, T, X), full)
    h0 = random_codes(rng, cfg.fmt("h"), (B, H), full)
    c0 = random_codes(rng, cfg.fmt("c"), (B, H), full)
    cell, trace = assert_matches_oracle(cfg, qw, x, h0, c0)
    # one direct step agrees with the run's first step
    step = cell.step(x[:, 0], h0, c0)
    assert all(np.array_equal(step[n], trace[n][:, 0]) for n in STATE_TENSORS)


@pytest.mark.parametrize("seed", range(4))
def test_cell_matches_scalar_oracle_with_narrow_state(seed):
    """c in Q1.x and h in Q-1.x (range +-0.5) with full-range operands: the c and h casts
    saturate or wrap often, and the model must do exactly what the oracle does."""
    rng = np.random.default_rng(150 + seed)
    X, H = 3, 5
    raw = random_raw(rng, X, H)
    c_bits, h_bits = int(rng.integers(8, 13)), int(rng.integers(6, 17))
    raw["formats"]["c"].update(bits=c_bits, frac=c_bits - 2)
    raw["formats"]["h"].update(bits=h_bits, frac=h_bits)
    for table in ("sigmoid", "tanh", "tanh_c"):
        raw["activations"][table]["index_shift"] = 0
    cfg = parse_config(fit_accumulator(raw, X, H))
    qw = random_qweights(rng, cfg, X, H, True)
    x = random_codes(rng, cfg.fmt("x"), (3, 6, X), True)
    _, trace = assert_matches_oracle(cfg, qw, x, random_codes(rng, cfg.fmt("h"), (3, H), True),
                                     random_codes(rng, cfg.fmt("c"), (3, H), True))
    assert trace.overflow["c"] + trace.overflow["h"] > 0


def default_with_modes(quant: str, overflow: str):
    raw = default_raw()
    raw["modes"] = {"round": quant, "overflow": overflow}
    return parse_config(fit_accumulator(raw, 3, 4))


CORNER_CONFIGS = {
    "default": lambda: parse_config(fit_accumulator(default_raw(), 3, 4)),
    "TRN/WRAP": lambda: default_with_modes("TRN", "WRAP"),
    "RND/WRAP": lambda: default_with_modes("RND", "WRAP"),
    "random": lambda: random_config(np.random.default_rng(7), 3, 4),
}


@pytest.mark.parametrize("config", list(CORNER_CONFIGS))
@pytest.mark.parametrize("w_end, x_end", [("max", "max"), ("min", "min"), ("max", "min"),
                                          ("min", "max")])
def test_saturation_corners_match_oracle(config, w_end, x_end):
    """All weights, biases, inputs and the initial state at a rail: the accumulator reaches
    its extreme (the width derived by accumulator_bits_needed must hold it), z and c hit
    their rails."""
    cfg = CORNER_CONFIGS[config]()
    X, H, B, T = 3, 4, 1, 12
    pick = lambda fmt, end: fmt.max_code if end == "max" else fmt.min_code   # noqa: E731
    qw = constant_qweights(cfg, X, H, pick(cfg.fmt("weight"), w_end), pick(cfg.fmt("bias"), w_end))
    x = np.full((B, T, X), pick(cfg.fmt("x"), x_end), np.int64)
    h0 = np.full((B, H), pick(cfg.fmt("h"), x_end), np.int64)
    c0 = np.full((B, H), pick(cfg.fmt("c"), x_end), np.int64)
    cell, trace = assert_matches_oracle(cfg, qw, x, h0, c0)
    acc = cell.accumulate(x[:, 0], h0)
    assert max(abs(int(v)) for v in acc.ravel()) <= accumulator_bound(cfg, X, H)
    if config != "random":
        # Q3.12 operands: |z| reaches 12 * 64 = 768 >> 16, the rail of Q4.11
        assert trace.overflow["z"] > 0
        if w_end == x_end == "max":
            # i = f = g = o ~ 1: c = c + 1 per step passes the Q3.12 rail at 8
            assert trace.overflow["c"] > 0
            if cfg.spec("c").overflow == "SAT":
                assert np.all(trace["c"] == cfg.fmt("c").max_code)


@pytest.mark.parametrize("config", list(CORNER_CONFIGS))
def test_cell_state_driven_to_the_negative_rail(config):
    """i = f = o ~ 1 and g ~ -1 (the candidate rows' weights at the other rail): c falls by
    1 per step from its most negative code and must saturate (SAT) or wrap (WRAP)."""
    cfg = CORNER_CONFIGS[config]()
    X, H, B, T = 3, 4, 2, 10
    w, b = cfg.fmt("weight"), cfg.fmt("bias")
    qw = constant_qweights(cfg, X, H, w.max_code, b.max_code)
    qw.weight_ih[2 * H:3 * H] = w.min_code
    qw.weight_hh[2 * H:3 * H] = w.min_code
    qw.bias[2 * H:3 * H] = b.min_code
    x = np.full((B, T, X), cfg.fmt("x").max_code, np.int64)
    h0 = np.full((B, H), cfg.fmt("h").max_code, np.int64)
    c0 = np.stack([np.full(H, cfg.fmt("c").min_code), np.zeros(H, np.int64)])
    _, trace = assert_matches_oracle(cfg, qw, x, h0, c0)
    if config != "random":
        assert trace.overflow["c"] > 0 and trace.overflow["z"] > 0
        if cfg.spec("c").overflow == "SAT":
            assert np.all(trace["c"][0] == cfg.fmt("c").min_code)
            assert trace["c"][1, -1, 0] == cfg.fmt("c").min_code
        else:
            assert trace["c"].max() > 0          # wrapped past -8 to positive values


def test_wide_gate_products_are_exact():
    """Gate and candidate codes of 40 bits: f*c and i*g exceed int64 and must not wrap."""
    raw = default_raw()
    for name in ("gate", "candidate", "tanh_c"):
        raw["formats"][name] = {"bits": 40, "frac": 38}
    raw["formats"]["c"] = {"bits": 24, "frac": 20}
    raw["formats"]["h"] = {"bits": 40, "frac": 39}
    raw["activations"]["method"] = "plan"        # quick to build; the products are the point
    cfg = parse_config(fit_accumulator(raw, 2, 3))
    rng = np.random.default_rng(3)
    qw = random_qweights(rng, cfg, 2, 3, full_range=False)
    x = random_codes(rng, cfg.fmt("x"), (2, 4, 2), False)
    h0 = random_codes(rng, cfg.fmt("h"), (2, 3), False)
    c0 = random_codes(rng, cfg.fmt("c"), (2, 3), False)
    assert_matches_oracle(cfg, qw, x, h0, c0)


# ---- (b) fast path vs exact integer paths ----------------------------------------------------

def wide_config(X: int, H: int):
    """32-bit x, h, weights and bias: the accumulator needs more than 63 bits."""
    raw = default_raw()
    raw["formats"]["x"] = {"bits": 32, "frac": 28}
    raw["formats"]["weight"] = {"bits": 32, "frac": 28}
    raw["formats"]["bias"] = {"bits": 32, "frac": 28}
    raw["formats"]["h"] = {"bits": 32, "frac": 31}
    return parse_config(fit_accumulator(raw, X, H))


def run_all_paths(cfg, qw, x, h0, c0):
    """Traces from the float64 path (when allowed), the int64 path and the object path."""
    traces = {}
    for path in ("float", "int"):
        cell = FixedLSTM(cfg, qw, path=path) if path == "int" or \
            accumulator_bound(cfg, qw.n_inputs, qw.n_hidden) < 2 ** 53 else None
        if cell is not None:
            traces[path] = cell.run(x, h0, c0)
    obj = FixedLSTM(cfg, qw, path="int")
    obj.int64_exact = False                        # force object-integer dot products
    traces["object"] = obj.run(x, h0, c0)
    return traces


def assert_same_traces(traces):
    names = list(traces)
    for other in names[1:]:
        for n in STATE_TENSORS:
            assert np.array_equal(traces[names[0]][n], traces[other][n]), (other, n)
        assert dict(traces[names[0]].overflow) == dict(traces[other].overflow)


@pytest.mark.parametrize("seed", range(6))
def test_float_path_equals_integer_paths_bit_for_bit(seed):
    rng = np.random.default_rng(200 + seed)
    X, H = int(rng.integers(1, 9)), int(rng.integers(1, 9))
    cfg = random_config(rng, X, H)
    full = seed % 2 == 0
    qw = random_qweights(rng, cfg, X, H, full)
    B, T = 3, 6
    x = random_codes(rng, cfg.fmt("x"), (B, T, X), full)
    h0 = random_codes(rng, cfg.fmt("h"), (B, H), full)
    c0 = random_codes(rng, cfg.fmt("c"), (B, H), full)
    traces = run_all_paths(cfg, qw, x, h0, c0)
    assert {"int", "object"} <= set(traces)
    assert_same_traces(traces)


def test_float_path_on_the_default_config_with_extreme_operands():
    rng = np.random.default_rng(5)
    X, H = 5, 7
    cfg = DEFAULT
    assert FixedLSTM(cfg, random_qweights(rng, cfg, X, H, True)).path == "float"
    for w_code in (cfg.fmt("weight").min_code, cfg.fmt("weight").max_code):
        qw = constant_qweights(cfg, X, H, w_code, cfg.fmt("bias").min_code)
        x = np.full((1, 4, X), cfg.fmt("x").min_code, np.int64)
        traces = run_all_paths(cfg, qw, x, np.full((1, H), -(1 << 15)), np.zeros((1, H), int))
        assert set(traces) == {"float", "int", "object"}
        assert_same_traces(traces)
    qw = random_qweights(rng, cfg, X, H, True)
    x = random_codes(rng, cfg.fmt("x"), (4, 30, X), True)
    assert_same_traces(run_all_paths(cfg, qw, x, None, None))


def boundary_config(X: int):
    """x, weight Q5.20 (26 bits): each x*w product reaches 2^50 in the accumulator, so the
    dot products stay below 2^53 up to X = 7 (with H = 1) and can exceed it from X = 8."""
    raw = default_raw()
    raw["formats"]["x"] = {"bits": 26, "frac": 20}
    raw["formats"]["weight"] = {"bits": 26, "frac": 20}
    return parse_config(fit_accumulator(raw, X, 1))


def test_float_path_boundary_at_2_pow_53():
    below, above = boundary_config(7), boundary_config(8)
    assert accumulator_bound(below, 7, 1) < 2 ** 53 <= accumulator_bound(above, 8, 1)
    # below: allowed, and exact with every x*w product at its largest (2^50 each)
    cfg, X = below, 7
    xf, wf = cfg.fmt("x"), cfg.fmt("weight")
    qw = constant_qweights(cfg, X, 1, wf.min_code, cfg.fmt("bias").max_code)
    x = np.full((1, 3, X), xf.min_code, np.int64)
    x[0, 1, ::2] = xf.max_code                     # mixed signs on the second step
    h = np.full((1, 1), cfg.fmt("h").min_code, np.int64)
    acc = FixedLSTM(cfg, qw, path="float").accumulate(x[:, 0], h)
    a = cfg.fmt("accumulator").frac                # 40 = x.frac + weight.frac
    want = X * 2 ** 50 * 2 ** (a - 40) + 2 ** 15 * 2 ** 25 * 2 ** (a - 35) \
        + (2 ** 15 - 1) * 2 ** (a - 12)
    assert acc.tolist() == [[want] * 4]
    assert_same_traces(run_all_paths(cfg, qw, x, None, None))
    # above: refused, and 'auto' falls back to (int64) integers
    qw = constant_qweights(above, 8, 1, 1, 0)
    with pytest.raises(ValueError, match="float64 path refused"):
        FixedLSTM(above, qw, path="float")
    cell = FixedLSTM(above, qw)
    assert cell.path == "int" and cell.int64_exact


def test_wide_config_uses_exact_object_integers():
    X, H = 5, 7
    cfg = wide_config(X, H)
    assert cfg.fmt("accumulator").bits > 63
    rng = np.random.default_rng(9)
    qw = random_qweights(rng, cfg, X, H, True)
    cell = FixedLSTM(cfg, qw)
    assert cell.path == "int" and not cell.int64_exact
    with pytest.raises(ValueError, match="float64 path refused"):
        FixedLSTM(cfg, qw, path="float")
    # extreme operands: the accumulator exceeds int64 and must be exact
    corner = constant_qweights(cfg, X, H, cfg.fmt("weight").min_code, cfg.fmt("bias").max_code)
    x = np.full((1, 3, X), cfg.fmt("x").min_code, np.int64)
    h0 = np.full((1, H), cfg.fmt("h").min_code, np.int64)
    acc = FixedLSTM(cfg, corner).accumulate(x[:, 0], h0)
    a = cfg.fmt("accumulator").frac
    want = (X * 2 ** 62 * 2 ** (a - 56) + H * 2 ** 62 * 2 ** (a - 59)
            + (2 ** 31 - 1) * 2 ** (a - 28))
    assert acc.dtype == object and all(int(v) == want for v in acc.ravel())
    assert want >= 2 ** 63
    assert_matches_oracle(cfg, corner, x, h0, np.zeros((1, H), np.int64))
    # random operands, random codes: object path against the scalar oracle
    x = random_codes(rng, cfg.fmt("x"), (2, 3, X), True)
    assert_matches_oracle(cfg, qw, x, random_codes(rng, cfg.fmt("h"), (2, H), True),
                          random_codes(rng, cfg.fmt("c"), (2, H), True))


def test_path_argument_is_checked():
    qw = random_qweights(np.random.default_rng(0), DEFAULT, 2, 2, False)
    with pytest.raises(ValueError, match="path must be 'auto', 'float' or 'int', not 'blas'"):
        FixedLSTM(DEFAULT, qw, path="blas")
    assert FixedLSTM(DEFAULT, qw, path="int").path == "int"


# ---- (a) fixed vs float ----------------------------------------------------------------------

#: Stated accuracy bounds of the default config (Q3.12 x/weights, Q0.15 h, Q3.12 c, 64-segment
#: tables with max errors 2^-12 (sigmoid) and 2^-11 (tanh)) on PyTorch-initialised weights,
#: inputs N(0, 1) clipped to [-4, 4]. Per step, c collects the table errors of f*c + i*g
#: (about |c| 2^-12 + 2^-12 + 2^-11) plus its own cast (2^-13), and the keep gate f < 1
#: forgets old error geometrically; h = o tanh(c) adds 2^-12 + 2^-11 + 2^-16. Over 6 seeds
#: and T up to 400 the observed maxima are below 0.35 of these bounds.
H_BOUND = 2.0 ** -9
C_BOUND = 2.0 ** -8


def check_accuracy(run):
    d = run.decoded()
    h_err = np.abs(d["h"] - run.reference["h"]).max()
    c_err = np.abs(d["c"] - run.reference["c"]).max()
    assert h_err <= H_BOUND, h_err
    assert c_err <= C_BOUND, c_err
    for gate in GATES:                       # one table error plus the z cast's effect
        assert np.abs(d[gate] - run.reference[gate]).max() <= 2.0 ** -9


@pytest.mark.parametrize("seed", range(3))
def test_fixed_tracks_float_on_odd_sizes(seed):
    rng = np.random.default_rng(300 + seed)
    X, H = 5, 7
    x = np.clip(rng.standard_normal((4, 40, X)), -4, 4)
    run = run_golden(DEFAULT, random_weights(rng, X, H), x)
    assert run.x_overflow == 0 and all(v == 0 for v in run.overflow.values())
    check_accuracy(run)


def test_fixed_tracks_float_on_a_long_sequence():
    rng = np.random.default_rng(400)
    X, H, T = 5, 16, 320
    x = np.clip(rng.standard_normal((2, T, X)), -4, 4)
    run = run_golden(DEFAULT, random_weights(rng, X, H), x)
    check_accuracy(run)
    # no drift: the error late in the sequence is no worse than the stated bound either
    d = run.decoded()
    assert np.abs(d["h"][:, -50:] - run.reference["h"][:, -50:]).max() <= H_BOUND


def test_decode_is_codes_times_lsb():
    rng = np.random.default_rng(1)
    run = run_golden(DEFAULT, random_weights(rng, 3, 4), rng.uniform(-1, 1, (2, 5, 3)))
    d = run.decoded()
    for n in STATE_TENSORS:
        assert np.array_equal(d[n], run.fixed[n] / 2.0 ** DEFAULT.fmt(FORMAT_OF[n]).frac)


# ---- (d) framing -----------------------------------------------------------------------------

def test_first_flags_restart_from_the_initial_state():
    rng = np.random.default_rng(11)
    X, H, T = 5, 7, 12
    cfg = DEFAULT
    qw = quantize_weights(random_weights(rng, X, H), cfg)
    cell = FixedLSTM(cfg, qw)
    x = random_codes(rng, cfg.fmt("x"), (3, T, X), False)
    h0 = random_codes(rng, cfg.fmt("h"), (3, H), False)
    c0 = random_codes(rng, cfg.fmt("c"), (3, H), False)
    first = np.zeros((3, T), bool)
    first[0, 4] = first[1, 7] = first[1, 9] = True
    first[2, 0] = True                           # redundant at t = 0
    trace = cell.run(x, h0, c0, first)
    for b in range(3):
        starts = [0, *np.flatnonzero(first[b, 1:]) + 1, T]
        for s, e in zip(starts, starts[1:]):
            alone = cell.run(x[b:b + 1, s:e], h0[b:b + 1], c0[b:b + 1])
            for n in STATE_TENSORS:
                assert np.array_equal(trace[n][b, s:e], alone[n][0]), (b, s, n)
    # the float reference frames the same way
    w = random_weights(rng, X, H)
    xf = rng.uniform(-1, 1, (3, T, X))
    ref = float_run(w, xf, None, None, first)
    alone = float_run(w, xf[1:2, 7:9])
    # (BLAS may sum a batch of 1 in another order: equal to rounding, not bit for bit)
    assert np.abs(ref["h"][1, 7:9] - alone["h"][0]).max() <= 1e-14


def test_initial_state_shapes_and_defaults():
    rng = np.random.default_rng(12)
    X, H = 3, 4
    qw = quantize_weights(random_weights(rng, X, H), DEFAULT)
    cell = FixedLSTM(DEFAULT, qw)
    x = random_codes(rng, DEFAULT.fmt("x"), (2, 3, X), False)
    h0 = random_codes(rng, DEFAULT.fmt("h"), (H,), False)
    c0 = random_codes(rng, DEFAULT.fmt("c"), (H,), False)
    shared = cell.run(x, h0, c0)
    per_seq = cell.run(x, np.stack([h0, h0]), np.stack([c0, c0]))
    assert all(np.array_equal(shared[n], per_seq[n]) for n in STATE_TENSORS)
    zeros = cell.run(x, np.zeros(H, np.int64), np.zeros(H, np.int64))
    default = cell.run(x)
    assert all(np.array_equal(zeros[n], default[n]) for n in STATE_TENSORS)
    assert not np.array_equal(shared["h"], default["h"])
    with pytest.raises(ValueError, match=r"h0 must have shape \(H,\) or \(B, H\)"):
        cell.run(x, np.zeros((3, H), np.int64))
    with pytest.raises(ValueError, match=r"first must have shape \(B, T\) = \(2, 3\)"):
        cell.run(x, first=np.zeros((2, 4), bool))
    with pytest.raises(ValueError, match=r"x must have shape \(B, T, 3\)"):
        cell.run(x[..., :2])


def test_run_golden_casts_the_float_initial_state():
    rng = np.random.default_rng(13)
    X, H = 3, 4
    w = random_weights(rng, X, H)
    x = rng.uniform(-1, 1, (2, 5, X))
    h0, c0 = rng.uniform(-0.9, 0.9, H), rng.uniform(-2, 2, (2, H))
    run = run_golden(DEFAULT, w, x, h0=h0, c0=c0)
    h_raw = np.floor(h0 * 2 ** 15 + 0.5).astype(np.int64)      # RND into Q0.15
    c_raw = np.floor(c0 * 2 ** 12 + 0.5).astype(np.int64)      # RND into Q3.12
    again = run.cell.run(run.x_raw, h_raw, c_raw)
    assert all(np.array_equal(run.fixed[n], again[n]) for n in STATE_TENSORS)
    assert np.array_equal(run.reference["h"], float_run(w, x, h0, c0)["h"])


# ---- (e) size checks propagate ---------------------------------------------------------------

def test_too_narrow_accumulator_is_refused_everywhere():
    X, H = 5, 7
    raw = fit_accumulator(default_raw(), X, H)
    raw["formats"]["accumulator"]["bits"] -= 1
    narrow = parse_config(raw)
    rng = np.random.default_rng(14)
    w = random_weights(rng, X, H)
    qw = quantize_weights(w, DEFAULT)
    with pytest.raises(ConfigError, match=f"could overflow for X={X}, H={H}"):
        FixedLSTM(narrow, qw)
    with pytest.raises(ConfigError, match=f"could overflow for X={X}, H={H}"):
        run_golden(narrow, w, rng.uniform(-1, 1, (1, 3, X)))
    with pytest.raises(ConfigError, match="could overflow"):
        quantize_weights(w, narrow)
    raw["formats"]["accumulator"].update(bits=64, frac=20)
    with pytest.raises(ConfigError, match="exact products need 27"):
        FixedLSTM(parse_config(raw), qw)


# ---- (f) the float reference -----------------------------------------------------------------

def numpy_lstm(w: LSTMWeights, x, h0, c0, first):
    """A separate float64 LSTM: PyTorch's equations, logistic sigmoid via exp."""
    sig = lambda v: 1.0 / (1.0 + np.exp(-v))                 # noqa: E731
    B, T, _ = x.shape
    H = w.n_hidden
    hs, cs = np.zeros((B, T, H)), np.zeros((B, T, H))
    for b in range(B):
        h, c = h0[b].copy(), c0[b].copy()
        for t in range(T):
            if t == 0 or first[b, t]:
                h, c = h0[b].copy(), c0[b].copy()
            z = w.weight_ih @ x[b, t] + w.weight_hh @ h + w.bias
            i, f, g, o = sig(z[:H]), sig(z[H:2 * H]), np.tanh(z[2 * H:3 * H]), sig(z[3 * H:])
            c = f * c + i * g
            h = o * np.tanh(c)
            hs[b, t], cs[b, t] = h, c
    return hs, cs


def test_float_run_equals_an_independent_numpy_lstm():
    rng = np.random.default_rng(15)
    X, H, B, T = 5, 7, 3, 25
    w = random_weights(rng, X, H, scale=0.8)
    x = rng.standard_normal((B, T, X))
    h0, c0 = rng.uniform(-1, 1, (B, H)), rng.uniform(-2, 2, (B, H))
    first = rng.random((B, T)) < 0.1
    ref = float_run(w, x, h0, c0, first)
    hs, cs = numpy_lstm(w, x, h0, c0, first)
    assert np.abs(ref["h"] - hs).max() <= 1e-12
    assert np.abs(ref["c"] - cs).max() <= 1e-12
    assert ref.overflow == {}


# ---- classifier head -------------------------------------------------------------------------

def test_head_logits_are_exact():
    rng = np.random.default_rng(16)
    X, H, C = 3, 6, 4
    base = random_weights(rng, X, H)
    w = LSTMWeights(base.weight_ih, base.weight_hh, base.bias,
                    rng.uniform(-2, 2, (C, H)), rng.uniform(-1, 1, C))
    run = run_golden(DEFAULT, w, rng.uniform(-1, 1, (2, 4, X)))
    h_last = run.fixed["h"][:, -1]
    hw, hb = run.qweights.head_weight, run.qweights.head_bias
    frac = run.cell.head_frac
    for b in range(2):
        for k in range(C):
            real = sum(value(hv, DEFAULT.fmt("h")) * value(wv, DEFAULT.fmt("weight"))
                       for hv, wv in zip(h_last[b], hw[k])) + value(hb[k], DEFAULT.fmt("bias"))
            assert Fraction(int(run.logits_raw[b, k]), 2 ** frac) == real
    assert np.abs(run.logits_fixed - run.logits_float).max() < 0.01
