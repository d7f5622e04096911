"""The config file (model/config.py): every tensor named, every error named, and the
accumulator width derived and enforced (docs/numerics.md)."""
from __future__ import annotations

import copy
import itertools

import numpy as np
import pytest

from helpers_model import default_raw, fit_accumulator
from model.config import (
    DEFAULT_CONFIG, TABLES, TENSORS, Config, ConfigError, TableSpec, TensorSpec,
    accumulator_bits_needed, accumulator_bound, check_sizes, load_config, parse_config,
)
from model.fixed import FixedPointError, Format


def parse(raw):
    return parse_config(raw, source="<test>")


# ---- the default config ----------------------------------------------------------------------

def test_default_config_names_every_tensor_and_table():
    cfg = load_config()
    assert isinstance(cfg, Config)
    assert set(cfg.tensors) == set(TENSORS)
    assert set(cfg.tables) == set(TABLES)
    for name in TENSORS:
        spec = cfg.spec(name)
        assert isinstance(spec, TensorSpec) and cfg.fmt(name) is spec.fmt
        assert spec.round in ("RND", "TRN") and spec.overflow in ("SAT", "WRAP")
    for name, (function, src, dst) in TABLES.items():
        t = cfg.tables[name]
        assert isinstance(t, TableSpec)
        assert t.function == function and t.input == cfg.spec(src) and t.output == cfg.spec(dst)
    assert cfg.lanes >= 1
    assert cfg.source == str(DEFAULT_CONFIG)


def test_default_config_values_match_the_file():
    cfg, raw = load_config(), default_raw()
    for name, entry in raw["formats"].items():
        assert cfg.fmt(name) == Format(entry["bits"], entry["frac"])
        assert cfg.spec(name).round == entry.get("round", raw["modes"]["round"])
        assert cfg.spec(name).overflow == entry.get("overflow", raw["modes"]["overflow"])
    for t in cfg.tables.values():
        for key in ("method", "max_segments", "slope_frac", "index_shift"):
            assert getattr(t, key) == raw["activations"][key]
    assert cfg.lanes == raw["rtl"]["lanes"]
    # the contract's defaults
    assert raw["modes"] == {"round": "RND", "overflow": "SAT"}


def test_default_config_is_usable_for_small_models():
    check_sizes(load_config(), 16, 32)


def test_per_tensor_modes_and_per_table_overrides():
    raw = default_raw()
    raw["formats"]["c"].update(round="TRN", overflow="WRAP")
    raw["activations"]["tanh_c"] = {"method": "plan", "slope_frac": 8}
    cfg = parse(raw)
    assert cfg.spec("c") == TensorSpec(Format(16, 12), "TRN", "WRAP")
    assert cfg.spec("h").round == "RND"
    assert cfg.tables["tanh_c"].method == "plan" and cfg.tables["tanh_c"].slope_frac == 8
    assert cfg.tables["tanh_c"].input.overflow == "WRAP"
    assert cfg.tables["sigmoid"].method == "pwl"


def test_replace_changes_one_spec_and_keeps_the_rest():
    cfg = load_config()
    new = cfg.replace(h=TensorSpec(Format(12, 11), "TRN", "SAT"), lanes=3)
    assert new.fmt("h") == Format(12, 11) and new.spec("h").round == "TRN" and new.lanes == 3
    assert all(new.spec(n) == cfg.spec(n) for n in TENSORS if n != "h")
    assert new != cfg and cfg.replace() == cfg and hash(cfg.replace()) == hash(cfg)
    # per-table overrides and per-tensor modes survive a replace
    raw = default_raw()
    raw["activations"]["tanh_c"] = {"method": "plan", "index_shift": 3}
    raw["formats"]["z"]["overflow"] = "WRAP"
    custom = parse(raw)
    assert custom.replace() == custom
    assert custom.replace(lanes=2).tables["tanh_c"].method == "plan"


# ---- errors ----------------------------------------------------------------------------------

def mutated(edit):
    raw = default_raw()
    edit(raw)
    return raw


def _del(path):
    def edit(raw):
        d = raw
        for k in path[:-1]:
            d = d[k]
        del d[path[-1]]
    return edit


def _set(path, value):
    def edit(raw):
        d = raw
        for k in path[:-1]:
            d = d[k]
        d[path[-1]] = value
    return edit


BAD_CONFIGS = {
    "unknown top-level key": (_set(("extras",), {}), r"unknown key 'extras' in the config"),
    "unknown format key": (_set(("formats", "x", "signed"), True),
                           r"unknown key 'signed' in \[formats\] x"),
    "unknown tensor": (_set(("formats", "y"), {"bits": 8, "frac": 4}),
                       r"unknown key 'y' in \[formats\]"),
    "unknown activations key": (_set(("activations", "degree"), 2),
                                r"unknown key 'degree' in \[activations\]"),
    "unknown table key": (_set(("activations", "sigmoid"), {"segments": 4}),
                          r"unknown key 'segments' in \[activations.sigmoid\]"),
    "unknown rtl key": (_set(("rtl", "clock"), 100), r"unknown key 'clock' in \[rtl\]"),
    "missing format entry": (_del(("formats", "tanh_c")), r"\[formats\] is missing 'tanh_c'"),
    "missing formats table": (_del(("formats",)), r"the config has no \[formats\] table"),
    "missing bits": (_set(("formats", "z"), {"frac": 11}), r"\[formats\] z is missing 'bits'"),
    "missing frac": (_set(("formats", "z"), {"bits": 16}), r"\[formats\] z is missing 'frac'"),
    "format not a table": (_set(("formats", "z"), 16), r"\[formats\] z must be a table"),
    "missing activations key": (_del(("activations", "slope_frac")),
                                r"\[activations\] is missing 'slope_frac'"),
    "missing activations": (_del(("activations",)), r"the config has no \[activations\] table"),
    "missing modes key": (_del(("modes", "overflow")), r"\[modes\] is missing 'overflow'"),
    "missing rtl": (_del(("rtl",)), r"the config has no \[rtl\] table"),
    "bad global round": (_set(("modes", "round"), "RNE"),
                         r"\[modes\]: rounding mode must be one of RND, TRN, not 'RNE'"),
    "bad global overflow": (_set(("modes", "overflow"), "CLAMP"),
                            r"\[modes\]: overflow mode must be one of SAT, WRAP, not 'CLAMP'"),
    "bad tensor round": (_set(("formats", "h", "round"), "floor"),
                         r"\[formats\] h: rounding mode must be one of RND, TRN, not 'floor'"),
    "bad tensor overflow": (_set(("formats", "c", "overflow"), "sat"),
                            r"\[formats\] c: overflow mode must be one of SAT, WRAP, not 'sat'"),
    "frac > bits": (_set(("formats", "x"), {"bits": 8, "frac": 9}),
                    r"\[formats\] x: format frac must be from 0 to bits \(8\), not 9"),
    "bits < 2": (_set(("formats", "weight"), {"bits": 1, "frac": 0}),
                 r"\[formats\] weight: format bits must be from 2 to 128, not 1"),
    "bits not an integer": (_set(("formats", "bias"), {"bits": 16.0, "frac": 8}),
                            r"\[formats\] bias: format bits must be an integer, not 16.0"),
    "gate cannot hold 1.0": (_set(("formats", "gate"), {"bits": 16, "frac": 15}),
                             r"\[formats\] gate is Q0.15: it must hold 1.0"),
    "candidate cannot hold 1.0": (_set(("formats", "candidate"), {"bits": 8, "frac": 8}),
                                  r"\[formats\] candidate is Q-1.8: it must hold 1.0"),
    "tanh_c cannot hold 1.0": (_set(("formats", "tanh_c"), {"bits": 12, "frac": 11}),
                               r"\[formats\] tanh_c is Q0.11: it must hold 1.0"),
    "z too wide to enumerate": (_set(("formats", "z"), {"bits": 25, "frac": 12}),
                                r"\[formats\] z has 25 bits"),
    "lanes < 1": (_set(("rtl", "lanes"), 0), r"\[rtl\] lanes must be from 1 to X\+H \(inputs plus hidden units\), not 0"),
    "lanes not an integer": (_set(("rtl", "lanes"), "8"),
                             r"\[rtl\] lanes must be an integer, not '8'"),
    "bad method": (_set(("activations", "method"), "lut"),
                   r"\[activations.sigmoid\] method must be one of pwl, plan, not 'lut'"),
    "max_segments < 1": (_set(("activations", "max_segments"), 0),
                         r"max_segments must be from 1 to 1024, not 0"),
    "index_shift too big": (_set(("activations", "index_shift"), 15),
                            r"\[activations.sigmoid\] index_shift must be from 0 to 14, not 15"),
    "slope_frac negative": (_set(("activations", "slope_frac"), -1),
                            r"slope_frac must be from 0 to 40, not -1"),
    "table not a table": (_set(("activations", "tanh"), 3),
                          r"\[activations.tanh\] must be a table, not 3"),
    "table words beyond int64": (
        lambda raw: (_set(("formats", "z"), {"bits": 24, "frac": 23})(raw),
                     _set(("activations", "slope_frac"), 40)(raw)),
        r"\[activations.sigmoid\] slope_frac 40 on input Q0.23: the table needs 63 fraction "
        r"bits, at most 62"),
}


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_parse_refuses_with_a_message_naming_the_problem(case):
    edit, message = BAD_CONFIGS[case]
    with pytest.raises(ConfigError, match=message):
        parse(mutated(edit))


def test_config_error_is_a_fixed_point_error():
    assert issubclass(ConfigError, FixedPointError) and issubclass(ConfigError, ValueError)


def test_load_missing_file(tmp_path):
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match=f"config file not found: {path}"):
        load_config(path)


def test_load_invalid_toml(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[formats\nx = {bits = 16\n")
    with pytest.raises(ConfigError, match=f"config {path} is not valid TOML"):
        load_config(path)


def test_load_a_directory_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path)


def test_load_reads_a_valid_file(tmp_path):
    path = tmp_path / "narrow.toml"
    text = DEFAULT_CONFIG.read_text().replace(
        "h           = { bits = 16, frac = 15 }", 'h = { bits = 12, frac = 11, round = "TRN" }')
    assert text != DEFAULT_CONFIG.read_text()
    path.write_text(text)
    cfg = load_config(path)
    assert cfg.spec("h") == TensorSpec(Format(12, 11), "TRN", "SAT") and cfg.source == str(path)


# ---- a config file holds only what it changes ----------------------------------------------

def test_partial_config_overlays_the_default_key_by_key(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[modes]\nround = "TRN"\n[formats]\nc = { frac = 11 }\n'
                    '[activations]\nmax_segments = 32\n[activations.tanh]\nmethod = "plan"\n')
    cfg, default = load_config(path), load_config()
    assert cfg.spec("c") == TensorSpec(Format(16, 11), "TRN", "SAT")       # bits from the default
    for name in TENSORS:
        if name != "c":
            assert cfg.spec(name) == TensorSpec(default.fmt(name), "TRN", "SAT"), name
    assert cfg.tables["sigmoid"].max_segments == 32 and cfg.tables["sigmoid"].method == "pwl"
    assert cfg.tables["tanh"].method == "plan" and cfg.lanes == default.lanes


def test_empty_config_is_the_default(tmp_path):
    path = tmp_path / "empty.toml"
    path.write_text("# nothing changed\n")
    cfg, default = load_config(path), load_config()
    assert cfg.tensors == default.tensors and cfg.tables == default.tables and cfg.lanes == default.lanes


@pytest.mark.parametrize("text, message", [
    ("[formats]\nc = { bits = 16, frac = 99 }\n", r"\[formats\] c: format frac must be from 0 to bits \(16\), not 99"),
    ("[rtl]\nlanes = 0\n", r"\[rtl\] lanes must be from 1 to X\+H"),
    ('[modes]\noverflow = "CLAMP"\n', r"\[modes\]: overflow mode must be one of SAT, WRAP, not 'CLAMP'"),
    ("[formats]\nq = { bits = 3, frac = 1 }\n", r"unknown key 'q' in \[formats\]"),
    ("[formats]\nz = 16\n", r"\[formats\] z must be a table"),
    ('[activations]\nmethod = "lut"\n', r"method must be one of pwl, plan, not 'lut'"),
])
def test_a_partial_config_names_its_bad_value(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


# ---- accumulator width -----------------------------------------------------------------------

def worst_case_sums(cfg, X: int, H: int) -> tuple[int, int]:
    """Largest and smallest W_ih x + W_hh h + b in accumulator LSBs over representable
    operands, by plain integer reasoning: each product term is independent, so the extremes
    are the sums of each term's extremes (products of range endpoints)."""
    acc = cfg.fmt("accumulator")
    hi = lo = 0
    w = cfg.fmt("weight")
    for name, count in (("x", X), ("h", H)):
        v = cfg.fmt(name)
        ends = [a * b for a in (v.min_code, v.max_code) for b in (w.min_code, w.max_code)]
        scale = 2 ** (acc.frac - v.frac - w.frac)
        hi += count * max(ends) * scale
        lo += count * min(ends) * scale
    b = cfg.fmt("bias")
    scale = 2 ** (acc.frac - b.frac)
    return hi + b.max_code * scale, lo + b.min_code * scale


def bits_to_hold(lo: int, hi: int) -> int:
    """Smallest two's complement width W with -2^(W-1) <= lo and hi <= 2^(W-1) - 1."""
    w = 1
    while not (-(2 ** (w - 1)) <= lo and hi <= 2 ** (w - 1) - 1):
        w += 1
    return w


SIZES = [(1, 1), (5, 7), (1, 7), (16, 32), (64, 64), (3, 100), (784, 128), (1000, 1)]


@pytest.mark.parametrize("X, H", SIZES)
def test_accumulator_bound_covers_the_worst_case(X, H):
    cfg = load_config()
    hi, lo = worst_case_sums(cfg, X, H)
    bound = accumulator_bound(cfg, X, H)
    assert max(hi, -lo) <= bound
    need = accumulator_bits_needed(cfg, X, H)
    # the derived width holds every worst case, and wastes at most one bit on it
    assert bits_to_hold(lo, hi) <= need <= bits_to_hold(lo, hi) + 1
    assert need == bits_to_hold(-bound, bound)


@pytest.mark.parametrize("seed", range(6))
def test_accumulator_bound_on_random_formats(seed):
    rng = np.random.default_rng(seed)
    raw = default_raw()
    for name in ("x", "weight", "bias", "h"):
        bits = int(rng.integers(2, 33))
        raw["formats"][name] = {"bits": bits, "frac": int(rng.integers(0, bits + 1))}
    X, H = int(rng.integers(1, 300)), int(rng.integers(1, 300))
    cfg = parse(fit_accumulator(raw, X, H, extra_frac=int(rng.integers(0, 3))))
    hi, lo = worst_case_sums(cfg, X, H)
    need = accumulator_bits_needed(cfg, X, H)
    assert max(hi, -lo) <= accumulator_bound(cfg, X, H)
    assert bits_to_hold(lo, hi) <= need <= bits_to_hold(lo, hi) + 1
    check_sizes(cfg, X, H)                       # exactly the derived width is accepted


def test_accumulator_worst_case_is_attained_by_operands():
    # build the operand set behind worst_case_sums' maximum and sum it term by term
    cfg = load_config()
    X, H = 5, 7
    acc, w, xf, hf, bf = (cfg.fmt(n) for n in ("accumulator", "weight", "x", "h", "bias"))
    x = [xf.min_code] * X
    h = [hf.min_code] * H
    weights_x, weights_h = [w.min_code] * X, [w.min_code] * H
    total = sum(a * b for a, b in zip(x, weights_x)) * 2 ** (acc.frac - xf.frac - w.frac)
    total += sum(a * b for a, b in zip(h, weights_h)) * 2 ** (acc.frac - hf.frac - w.frac)
    total += bf.max_code * 2 ** (acc.frac - bf.frac)
    assert total == worst_case_sums(cfg, X, H)[0]
    assert total <= accumulator_bound(cfg, X, H) < total + 2 ** (acc.frac - bf.frac) + 1


@pytest.mark.parametrize("X, H", [(5, 7), (16, 32), (1, 1), (200, 3)])
def test_check_sizes_accepts_exactly_the_derived_width(X, H):
    raw = fit_accumulator(default_raw(), X, H)
    need = raw["formats"]["accumulator"]["bits"]
    assert need == accumulator_bits_needed(parse(raw), X, H)
    check_sizes(parse(raw), X, H)
    narrow = copy.deepcopy(raw)
    narrow["formats"]["accumulator"]["bits"] = need - 1
    message = rf"could overflow for X={X}, H={H}: it needs {need} bits"
    with pytest.raises(ConfigError, match=message):
        check_sizes(parse(narrow), X, H)


def test_check_sizes_refuses_a_growing_model():
    cfg = load_config()                           # a fixed 48-bit accumulator
    X = next(n for n in itertools.count(1) if accumulator_bits_needed(cfg, n, 64) > 48)
    check_sizes(cfg, X - 1, 64)
    with pytest.raises(ConfigError, match="could overflow"):
        check_sizes(cfg, X, 64)


@pytest.mark.parametrize("tensor, frac", [("x", 16), ("h", 16), ("weight", 16), ("bias", 28)])
def test_check_sizes_refuses_too_few_fraction_bits(tensor, frac):
    raw = default_raw()
    raw["formats"][tensor]["frac"] = frac
    raw["formats"][tensor]["bits"] = max(raw["formats"][tensor]["bits"], frac + 1)
    cfg = parse(raw)
    with pytest.raises(ConfigError, match=r"accumulator Q20.27 has 27 fraction bits: exact "
                                          r"products need \d+"):
        check_sizes(cfg, 2, 2)
    check_sizes(parse(fit_accumulator(raw, 2, 2)), 2, 2)
