"""Each RTL component against the golden model's function for it: raw integers equal."""
import dataclasses

import numpy as np
import pytest
from amaranth.hdl import Fragment, Module, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

import helpers_model
from model.activations import build_table
from model.cell import FixedLSTM
from model.config import TensorSpec, load_config
from model.fixed import Format, cast as model_cast
from rtl.cast import cast
from rtl.cell import CellUpdate
from rtl.geometry import Geometry, RTLError
from rtl.mac import MACArray
from rtl.pwl import PWLUnit
from model.weights import quantize_weights
from rtl_helpers import random_weights, simulate


# ---- cast ---------------------------------------------------------------------------------

class _CastProbe(wiring.Component):
    def __init__(self, in_bits, from_frac, spec):
        self._args = (from_frac, spec)
        super().__init__({"a": In(signed(in_bits)), "y": Out(signed(spec.fmt.bits))})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.y.eq(cast(self.a, *self._args))
        return m


@pytest.mark.parametrize("quant", ["RND", "TRN"])
@pytest.mark.parametrize("overflow", ["SAT", "WRAP"])
@pytest.mark.parametrize("in_bits,from_frac,bits,frac", [
    (12, 6, 6, 2),     # narrowing with overflow
    (10, 3, 8, 5),     # widening (exact) with overflow
    (8, 4, 12, 4),     # same fraction, wider: never overflows
])
def test_cast_matches_model_exhaustively(quant, overflow, in_bits, from_frac, bits, frac):
    spec = TensorSpec(Format(bits, frac), quant, overflow)
    dut = _CastProbe(in_bits, from_frac, spec)
    codes = Format(in_bits, 0).codes()
    expect, _ = model_cast(codes, from_frac, spec.fmt, quant, overflow)
    got = []

    async def tb(ctx):
        for a in codes:
            ctx.set(dut.a, int(a))
            got.append(ctx.get(dut.y))

    simulate(dut, tb, clock=False)
    assert got == [int(v) for v in expect]


# ---- activation units ---------------------------------------------------------------------

class _Activations(wiring.Component):
    """Every table of a config fed the same code each cycle (all inputs have equal width)."""

    def __init__(self, tables):
        self.units = {n: PWLUnit(t) for n, t in tables.items()}
        bits = {t.spec.input.fmt.bits for t in tables.values()}
        assert len(bits) == 1
        super().__init__({"q": In(signed(bits.pop())), "valid": In(1)})

    def elaborate(self, platform):
        m = Module()
        for name, unit in self.units.items():
            m.submodules[name] = unit
            m.d.comb += [unit.q.eq(self.q), unit.q_valid.eq(self.valid)]
        return m


def _check_exhaustive(tables):
    dut = _Activations(tables)
    codes = next(iter(tables.values())).spec.input.fmt.codes()
    got = {n: [] for n in tables}

    async def tb(ctx):
        for q in [*codes, *[0] * PWLUnit.latency]:
            ctx.set(dut.q, int(q))
            ctx.set(dut.valid, 1)
            await ctx.tick()
            for name, unit in dut.units.items():
                if ctx.get(unit.y_valid):
                    got[name].append(ctx.get(unit.y))

    simulate(dut, tb)
    for name, table in tables.items():
        expect, _ = table(codes)
        assert got[name][:len(codes)] == [int(v) for v in expect], name


@pytest.mark.parametrize("method", ["pwl", "plan"])
def test_activation_units_exhaustive_default_formats(method):
    cfg = load_config()
    tables = {n: build_table(dataclasses.replace(s, method=method)) for n, s in cfg.tables.items()}
    _check_exhaustive(tables)


@pytest.mark.parametrize("seed", range(4))
def test_activation_units_exhaustive_random_formats(seed):
    rng = np.random.default_rng(seed)
    cfg = helpers_model.random_config(rng, 3, 4, act_bits=(8, 12))
    for name, spec in cfg.tables.items():
        _check_exhaustive({name: build_table(spec)})


def test_pwl_latency_and_plan_has_no_multiplier():
    cfg = load_config()
    plan = PWLUnit(build_table(dataclasses.replace(cfg.tables["sigmoid"], method="plan")))
    pwl = PWLUnit(build_table(cfg.tables["sigmoid"]))
    assert plan.shift_only and not pwl.shift_only and PWLUnit.latency == 10    # the docstring's stages
    for unit in (plan, pwl):
        Fragment.get(unit, None)


def test_pwl_rejects_non_table():
    with pytest.raises(TypeError, match="table must be a model.activations.Table"):
        PWLUnit("sigmoid")


# ---- MAC lanes ----------------------------------------------------------------------------

def _mac_rows(cfg, qw, lanes, vectors):
    """Run MACArray over several vectors; returns per vector the row accumulators by row."""
    g = Geometry.of(cfg, qw, lanes)
    dut = MACArray(g)
    results = []

    async def tb(ctx):
        for vec in vectors:
            ctx.set(dut.vector, [int(v) for v in vec])
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            rows = {}
            for _ in range(g.issue_cycles + dut.latency + 1):
                if ctx.get(dut.row_valid):
                    rows[ctx.get(dut.row)] = ctx.get(dut.row_acc)
                await ctx.tick()
            results.append(rows)

    simulate(dut, tb)
    return g, results


@pytest.mark.parametrize("X,H,lanes", [(5, 7, 3), (3, 4, 7), (2, 3, 1), (4, 2, 5), (8, 32, 8),
                                       (2, 41, 43), (3, 40, 5)])
def test_mac_rows_equal_model_accumulator(X, H, lanes):
    rng = np.random.default_rng(X * 100 + H * 10 + lanes)
    cfg = load_config()
    qw = quantize_weights(random_weights(rng, X, H, scale=2.0), cfg)
    x = rng.integers(cfg.fmt("x").min_code, cfg.fmt("x").max_code + 1, (3, X))
    h = rng.integers(cfg.fmt("h").min_code, cfg.fmt("h").max_code + 1, (3, H))
    vectors = np.concatenate([x, h], axis=1)
    g, results = _mac_rows(cfg, qw, lanes, vectors)
    expect = FixedLSTM(cfg, qw, path="int").accumulate(x, h)        # (B, 4H), PyTorch order
    for b, rows in enumerate(results):
        assert sorted(rows) == list(range(4 * H))
        memory_order = expect[b].reshape(4, H).T.reshape(-1)
        assert [rows[r] for r in range(4 * H)] == [int(v) for v in memory_order]


# ---- cell update --------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(3))
def test_cell_update_matches_model_step(seed):
    rng = np.random.default_rng(seed)
    cfg = helpers_model.random_config(rng, 3, 4) if seed else load_config()
    dut = CellUpdate(cfg, build_table(cfg.tables["tanh_c"]))
    n = 400
    draw = lambda name: rng.integers(cfg.fmt(name).min_code, cfg.fmt(name).max_code + 1, n)  # noqa
    i, f, o, g, c = draw("gate"), draw("gate"), draw("gate"), draw("candidate"), draw("c")
    # corners: all gates at the rails
    for arr, name in ((i, "gate"), (f, "gate"), (o, "gate"), (g, "candidate"), (c, "c")):
        arr[:4] = [cfg.fmt(name).max_code, cfg.fmt(name).min_code] * 2
    got = []

    async def tb(ctx):
        for k in range(n + CellUpdate.latency):
            if k < n:
                for port, arr in ((dut.i, i), (dut.f, f), (dut.o, o), (dut.g, g), (dut.c_prev, c)):
                    ctx.set(port, int(arr[k]))
            ctx.set(dut.valid, int(k < n))
            await ctx.tick()
            if ctx.get(dut.out_valid):
                got.append((ctx.get(dut.c), ctx.get(dut.h)))

    simulate(dut, tb)
    # the model's cell update, from its own step() pieces
    f_fc = cfg.fmt("gate").frac + cfg.fmt("c").frac
    f_ig = cfg.fmt("gate").frac + cfg.fmt("candidate").frac
    f_sum = max(f_fc, f_ig)
    spec_c, spec_h = cfg.spec("c"), cfg.spec("h")
    total = (f * c << (f_sum - f_fc)) + (i * g << (f_sum - f_ig))
    c_new, _ = model_cast(total, f_sum, spec_c.fmt, spec_c.round, spec_c.overflow)
    tanh_c, _ = build_table(cfg.tables["tanh_c"])(c_new)
    h_new, _ = model_cast(o * tanh_c, cfg.fmt("gate").frac + cfg.fmt("tanh_c").frac,
                          spec_h.fmt, spec_h.round, spec_h.overflow)
    assert got == [(int(a), int(b)) for a, b in zip(c_new, h_new)]


# ---- parameters ---------------------------------------------------------------------------

def test_geometry_rejects_bad_parameters():
    cfg = load_config()
    qw = quantize_weights(random_weights(np.random.default_rng(0), 5, 7), cfg)
    with pytest.raises(RTLError, match=r"lanes must be from 1 to 2\(X\+H\) = \d+, not 0"):
        Geometry.of(cfg, qw, 0)
    with pytest.raises(RTLError, match=r"lanes must be at most 2\(X\+H\) = 24 .*not 25"):
        Geometry.of(cfg, qw, 25)
    with pytest.raises(RTLError, match=r"logic lanes must be from 0 to the 3 lanes, not 4"):
        Geometry.of(cfg, qw, 3, 4)
    narrow = cfg.replace(accumulator=TensorSpec(Format(30, 27)))
    with pytest.raises(RTLError, match="accumulator .* could overflow"):
        Geometry.of(narrow, qw, 3)
    big = dataclasses.replace(qw, weight_ih=qw.weight_ih * 0 + (1 << 20))
    with pytest.raises(RTLError, match="weight_ih codes do not fit the weight format Q3.12"):
        Geometry.of(cfg, big, 3)
    wrong = dataclasses.replace(qw, bias=qw.bias[:-1])
    with pytest.raises(RTLError, match=r"bias must have shape \(28,\)"):
        Geometry.of(cfg, wrong, 3)


def test_load_words_refuse_other_sizes():
    cfg = load_config()
    rng = np.random.default_rng(0)
    g = Geometry.of(cfg, quantize_weights(random_weights(rng, 5, 7), cfg), 3)
    assert len(g.load_words(quantize_weights(random_weights(rng, 5, 7), cfg))) == g.n_words
    with pytest.raises(RTLError, match="cannot load into a design built for X=5, H=7"):
        g.load_words(quantize_weights(random_weights(rng, 4, 7), cfg))


def test_load_packet_framing_and_inverse():
    cfg = load_config()
    rng = np.random.default_rng(1)
    g = Geometry.of(cfg, quantize_weights(random_weights(rng, 3, 2), cfg), 2)
    other = quantize_weights(random_weights(rng, 3, 2, scale=3.0), cfg)
    packet = g.load_packet(other)
    assert len(packet) == g.n_words == 4 * 2 * (3 + 2) + 4 * 2
    assert [w["data"] for w in packet] == g.load_words(other)
    assert [(w["first"], w["last"]) for w in packet] == [(1, 0)] + [(0, 0)] * (g.n_words - 2) + [(0, 1)]
    back = g.weights_from_words(g.load_words(other))
    for name in ("weight_ih", "weight_hh", "bias"):
        assert np.array_equal(getattr(back, name), getattr(other, name)), name
    state = g.state_packet([1, 2], [3, 4])
    assert state == [{"h": 1, "c": 3, "first": 1, "last": 0}, {"h": 2, "c": 4, "first": 0, "last": 1}]
    with pytest.raises(RTLError, match="a state load has H = 2 words"):
        g.state_packet([1], [2])
    assert [n for n, _ in g.load_layout] == ["data", "first", "last"]
    assert [n for n, _ in g.state_layout] == ["h", "c", "first", "last"]
