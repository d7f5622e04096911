"""PWL sigmoid/tanh tables (model/activations.py, docs/numerics.md): error over every input code,
shape properties, and the documented integer evaluation re-implemented from ``export()``.

Two independent evaluations are compared with ``table(q)`` on every code:
  * helpers_model.TableOracle: the module docstring's recipe in Python ints (index ROM,
    symmetry, output cast by floor division);
  * helpers_model.table_by_search: numpy, segment found by searching the bases (no index
    ROM), so a ROM that points at the wrong segment is caught too.
"""
from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers_model import TableOracle, default_raw, random_config, table_by_search
from model.activations import build_table
from model.config import DEFAULT_CONFIG, ConfigError, load_config, parse_config

DEFAULT = load_config()
#: Contract bounds for the default config's tables (max abs error over every input code).
DEFAULT_BOUNDS = {"sigmoid": 2.0 ** -12, "tanh": 2.0 ** -11, "tanh_c": 2.0 ** -11}


def exact(function: str, v: np.ndarray) -> np.ndarray:
    """Reference functions written independently of model.activations.reference."""
    if function == "tanh":
        return np.tanh(v)
    e = np.exp(-np.abs(v))                                 # never overflows
    return np.where(v >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def abs_errors(table) -> np.ndarray:
    fin, fout = table.spec.input.fmt, table.spec.output.fmt
    codes = fin.codes()
    out, _ = table(codes)
    return np.abs(out / 2.0 ** fout.frac - exact(table.function, codes / 2.0 ** fin.frac))


def random_tables(seed: int, method=None, act_bits=(8, 18)):
    cfg = random_config(np.random.default_rng(seed), 3, 3, method=method, act_bits=act_bits)
    return {name: build_table(spec) for name, spec in cfg.tables.items()}


def check_matches_oracles(table, sample_limit_bits: int = 13, seed: int = 0):
    """table(q) against both oracles: vectorised on every code, per-code Python on every code
    for narrow inputs and on corners, segment edges and a random sample for wider ones."""
    fmt = table.spec.input.fmt
    codes = fmt.codes()
    got, n_over = table(codes)
    want, over = table_by_search(table, codes)
    assert np.array_equal(got, want), table.spec
    assert n_over == int(over.sum())

    oracle = TableOracle(table)
    if fmt.bits <= sample_limit_bits:
        probe = codes
    else:
        edges = np.concatenate([table.base + d for d in (-1, 0, 1)])
        edges = np.concatenate([edges, -edges])
        rng = np.random.default_rng(seed)
        probe = np.unique(np.concatenate([
            edges[(edges >= fmt.min_code) & (edges <= fmt.max_code)],
            [fmt.min_code, fmt.min_code + 1, -1, 0, 1, fmt.max_code],
            rng.integers(fmt.min_code, fmt.max_code + 1, 3000)]))
    got_probe, n_probe = table(probe)
    want_probe = [oracle(int(q)) for q in probe]
    assert got_probe.tolist() == [w for w, _ in want_probe], table.spec
    assert n_probe == sum(o for _, o in want_probe)


# ---- the default config ----------------------------------------------------------------------

@pytest.mark.parametrize("name", list(DEFAULT_BOUNDS))
def test_default_table_error_over_every_input_code(name):
    table = build_table(DEFAULT.tables[name])
    err = abs_errors(table)
    assert err.size == 2 ** DEFAULT.tables[name].input.fmt.bits
    assert err.max() <= DEFAULT_BOUNDS[name]
    assert table.segments <= 64 and table.segments <= table.spec.max_segments
    # the table's own report agrees with this independent measurement
    assert table.max_abs_err() == pytest.approx(err.max(), rel=0, abs=1e-15)


@pytest.mark.parametrize("name", list(DEFAULT_BOUNDS))
def test_default_table_matches_documented_integer_evaluation(name):
    check_matches_oracles(build_table(DEFAULT.tables[name]), sample_limit_bits=16)


@pytest.mark.parametrize("name", list(DEFAULT_BOUNDS))
def test_default_table_is_monotone_and_never_overflows(name):
    table = build_table(DEFAULT.tables[name])
    out, n = table(table.spec.input.fmt.codes())
    assert np.all(np.diff(out) >= 0)
    assert n == 0


# ---- random formats and modes ----------------------------------------------------------------

@pytest.mark.parametrize("seed", range(10))
def test_random_tables_match_documented_integer_evaluation(seed):
    for table in random_tables(seed).values():
        check_matches_oracles(table, seed=seed)


@pytest.mark.parametrize("seed", range(10, 16))
def test_random_pwl_tables_are_monotone_and_bounded(seed):
    for table in random_tables(seed, method="pwl").values():
        codes = table.spec.input.fmt.codes()
        out, n = table(codes)
        assert np.all(np.diff(out) >= 0), table.spec
        # outputs hold 1.0 and |y| <= 1.0: no output cast overflows, whatever the modes
        assert n == 0
        one = 1 << table.spec.output.fmt.frac
        lo = 0 if table.function == "sigmoid" else -one
        assert out.min() >= lo and out.max() <= one


def symmetry_sums(table):
    """out(q) + out(-q) over q = 1 .. max_code, in output LSBs."""
    fmt = table.spec.input.fmt
    q = np.arange(1, fmt.max_code + 1, dtype=np.int64)
    return table(q)[0] + table(-q)[0]


@pytest.mark.parametrize("seed", [None, *range(20, 26)])
def test_symmetry_survives_the_output_cast(seed):
    """y(-q) = one - y(q) (sigmoid) or -y(q) (tanh) before the cast. Casting y and its mirror
    with RND gives codes summing to N or N + 1 (N = 1.0 in output LSBs for sigmoid, 0 for
    tanh: floor(u + 1/2) + floor(N - u + 1/2) = N + [frac(u) = 1/2]); TRN gives N - 1 or N."""
    tables = ({n: build_table(s) for n, s in DEFAULT.tables.items()} if seed is None
              else random_tables(seed))
    for table in tables.values():
        s = symmetry_sums(table)
        n = (1 << table.spec.output.fmt.frac) if table.function == "sigmoid" else 0
        allowed = {n, n + 1} if table.spec.output.round == "RND" else {n - 1, n}
        assert set(np.unique(s).tolist()) <= allowed, table.spec
        # and the pre-cast integers are exactly symmetric (oracle of the docstring recipe)
        oracle = TableOracle(table)
        for q in (1, 2, 3, table.spec.input.fmt.max_code, int(table.base[-1])):
            if q <= table.spec.input.fmt.max_code:
                mirror = oracle.one - oracle.pre_cast(q) if table.function == "sigmoid" \
                    else -oracle.pre_cast(q)
                assert oracle.pre_cast(-q) == mirror


@pytest.mark.parametrize("method", ["pwl", "plan"])
def test_most_negative_code(method):
    """|most negative code| = 2^(W-1) does not fit W bits: the unit must still evaluate it."""
    for name, spec in DEFAULT.tables.items():
        table = build_table(dataclasses.replace(spec, method=method))
        fmt = spec.input.fmt
        got, n = table(np.array([fmt.min_code, fmt.min_code + 1]))
        assert got.tolist() == [TableOracle(table)(fmt.min_code)[0],
                                TableOracle(table)(fmt.min_code + 1)[0]]
        want = 0.0 if table.function == "sigmoid" else -1.0
        tol = 2.0 ** -12 if method == "pwl" else 0.04
        assert abs(got[0] / 2.0 ** spec.output.fmt.frac - want) <= tol


def test_widest_table_words_are_exact():
    """F_in + slope_frac = 62 (the most the config accepts): one = 2^62, still exact."""
    raw = default_raw()
    raw["formats"]["z"] = {"bits": 22, "frac": 22}
    raw["activations"]["sigmoid"] = {"slope_frac": 40, "max_segments": 8}
    table = build_table(parse_config(raw).tables["sigmoid"])
    assert table.frac == 62 and table.one == 2 ** 62
    check_matches_oracles(table)


# ---- ROM structure ---------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [None, 30, 31, 32, 33])
def test_rom_structure(seed):
    tables = ({n: build_table(s) for n, s in DEFAULT.tables.items()} if seed is None
              else random_tables(seed))
    for table in tables.values():
        e = table.export()
        base, index, shift = e["base"], e["index"], e["index_shift"]
        assert base[0] == 0 and np.all(np.diff(base) > 0)
        assert np.all(base % (1 << shift) == 0)           # breakpoints on ROM address steps
        assert len(index) == (base[-1] >> shift) + 1
        rows = np.arange(len(index)) << shift
        assert np.array_equal(index, np.searchsorted(base, rows, side="right") - 1)
        assert np.all(e["slope"] >= 0)
        assert len(e["slope"]) == len(e["intercept"]) == len(base) == table.segments
        assert e["frac"] == table.spec.input.fmt.frac + table.spec.slope_frac
        assert e["one"] == 1 << e["frac"]
        assert base[-1] <= 1 << (table.spec.input.fmt.bits - 1)


def test_export_is_a_copy():
    table = build_table(DEFAULT.tables["sigmoid"])
    e = table.export()
    e["intercept"][:] = 0
    e["index"][:] = 0
    assert table.export()["intercept"].any()
    assert np.array_equal(table(np.array([100, 5000]))[0],
                          build_table(DEFAULT.tables["sigmoid"])(np.array([100, 5000]))[0])


def test_beyond_the_last_index_entry_the_last_segment_holds():
    for name, spec in DEFAULT.tables.items():
        table = build_table(spec)
        fmt = spec.input.fmt
        start = (len(table.index) - 1) << table.index_shift
        a = np.arange(start, fmt.max_code + 1, dtype=np.int64)
        got, _ = table(a)
        want, _ = table_by_search(table, a)
        assert np.array_equal(got, want)
        assert table.index[-1] == table.segments - 1
        # close to the rail there, and exactly constant when the last slope is zero
        rail = 1 << spec.output.fmt.frac
        assert np.all(np.abs(got - rail) <= 2) and np.all(np.diff(got) >= 0)
        if table.slope[-1] == 0:
            assert np.all(got == got[0])
    # the default sigmoid saturates to a constant (slope-0 last segment) on both sides
    sig = build_table(DEFAULT.tables["sigmoid"])
    assert sig.slope[-1] == 0
    far = np.arange(int(sig.base[-1]), DEFAULT.fmt("z").max_code + 1)
    assert np.unique(sig(far)[0]).size == 1 and np.unique(sig(-far)[0]).size == 1


# ---- PLAN --------------------------------------------------------------------------------------

def plan_tables(config=DEFAULT):
    return {n: build_table(dataclasses.replace(s, method="plan")) for n, s in config.tables.items()}


def test_plan_error_and_power_of_two_slopes():
    tables = plan_tables()
    sig = abs_errors(tables["sigmoid"]).max()
    assert 0.018 <= sig <= 0.0190                   # PLAN's published 0.0189
    for name in ("tanh", "tanh_c"):
        t = abs_errors(tables[name]).max()
        assert 1.9 * sig <= t <= 2.05 * sig         # tanh(x) = 2 sigmoid(2x) - 1: twice
    for table in tables.values():
        s = table.slope
        assert np.all((s == 0) | ((s > 0) & ((s & (s - 1)) == 0))), s
        assert table.segments == 4
    # the published slopes: 1/4, 1/8, 1/32, 0 per unit of input (sigmoid)
    sf = DEFAULT.tables["sigmoid"].slope_frac
    assert (tables["sigmoid"].slope / 2.0 ** sf).tolist() == [0.25, 0.125, 0.03125, 0.0]


def test_plan_saturates_exactly_beyond_its_last_breakpoint():
    for name, table in plan_tables().items():
        fin, fout = table.spec.input.fmt, table.spec.output.fmt
        last = 5.0 if table.function == "sigmoid" else 2.5
        a = np.arange(int(last * 2 ** fin.frac), fin.max_code + 1)
        one = 1 << fout.frac
        assert np.all(table(a)[0] == one)
        assert np.all(table(-a)[0] == (0 if table.function == "sigmoid" else -one))


@pytest.mark.parametrize("seed", range(40, 44))
def test_plan_matches_oracles_on_random_formats(seed):
    for table in random_tables(seed, method="plan").values():
        check_matches_oracles(table, seed=seed)
        s = table.slope
        assert np.all((s == 0) | ((s & (s - 1)) == 0))


def test_plan_refuses_too_few_input_fraction_bits():
    raw = default_raw()
    raw["formats"]["z"] = {"bits": 12, "frac": 3}
    raw["activations"]["method"] = "plan"
    cfg = parse_config(raw)
    with pytest.raises(ConfigError, match=r"activation sigmoid: PLAN needs an input with at "
                                          r"least 4 fraction bits .*not Q8.3"):
        build_table(cfg.tables["sigmoid"])


def test_plan_refuses_too_few_slope_bits():
    spec = dataclasses.replace(DEFAULT.tables["tanh"], method="plan", slope_frac=4)
    with pytest.raises(ConfigError, match="activation tanh: PLAN needs slope_frac >= 5"):
        build_table(spec)


# ---- segment budget --------------------------------------------------------------------------

def test_impossible_budget_is_a_config_error():
    spec = dataclasses.replace(DEFAULT.tables["tanh"], max_segments=1)
    with pytest.raises(ConfigError, match="activation tanh: no table fits in 1 segments"):
        build_table(spec)


def test_error_falls_as_the_budget_grows():
    for name in ("sigmoid", "tanh_c"):
        errs = []
        for budget in (4, 8, 16, 32, 64):           # 2 segments miss the error bound
            table = build_table(dataclasses.replace(DEFAULT.tables[name], max_segments=budget))
            assert table.segments <= budget
            errs.append(abs_errors(table).max())
        assert all(b < a for a, b in zip(errs, errs[1:])), errs


def test_tables_are_cached_per_spec():
    spec = DEFAULT.tables["sigmoid"]
    assert build_table(spec) is build_table(dataclasses.replace(spec))


REPO = Path(__file__).resolve().parent.parent


def test_tables_beyond_the_error_bound_are_refused(tmp_path):
    """slope_frac = 0 leaves a 3-segment sigmoid 0.163 off: refused with the bound, one line
    and exit status 2 on the command line."""
    spec = dataclasses.replace(DEFAULT.tables["sigmoid"], slope_frac=0)
    with pytest.raises(ConfigError, match=r"activation sigmoid \(pwl, Q4.11 -> Q1.14\): table "
                                          r"error 0.163 exceeds the bound 0.0626 "):
        build_table(spec)
    text = DEFAULT_CONFIG.read_text().replace("slope_frac = 16", "slope_frac = 0")
    (tmp_path / "c.toml").write_text(text)
    r = subprocess.run([sys.executable, "-m", "model", "activations", "--config",
                        str(tmp_path / "c.toml")], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.startswith("error: activation sigmoid")
    assert len(r.stderr.strip().splitlines()) == 1
