"""The formal harness end to end on one quick property (the rest is `make formal`): the real
design proves, its mutant fails with the property named and a counterexample VCD."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from formal.__main__ import plan
from formal.configs import CONFIGS
from formal.datapath import DATAPATH_MUTANTS, mutate_rtlil
from formal.harness import FormalHarness
from formal.properties import PROPERTIES, Property
from formal.run import Job, run_job, tool_env, write_job

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.formal


def test_output_stream_proves_and_its_mutant_fails(tmp_path):
    jobs = [(job, dut) for job, dut in plan(["small"], full=False, only={"output_stream"})
            if job.mode != "cover"]
    assert [(j.mutant, j.expect) for j, _ in jobs] == [(None, "PASS"), ("ignore_h_ready", "FAIL")]
    env = tool_env()
    proof, mutant = (run_job(job, write_job(job, dut, tmp_path), env) for job, dut in jobs)
    assert proof.status == "PASS", proof.log.read_text()[-2000:]
    assert mutant.status == "FAIL", mutant.log.read_text()[-2000:]
    assert mutant.failed == ["h_valid_held_until_taken"]
    assert mutant.traces and all(t.exists() and t.suffix == ".vcd" for t in mutant.traces)


def test_an_unreachable_cover_fails_the_cover_run_by_name(tmp_path):
    def build(m, t):
        t.cover(t.x.fire, "x_accepted")
        t.cover(t.h.valid & t.rst & ~t.rst, "impossible")
    prop = Property("probe", "two covers, one unreachable", build, "bmc", lambda dut: 10, ())
    job = Job("covers", "odd", [prop], None, "cover", 10, "PASS")
    result = run_job(job, write_job(job, CONFIGS["odd"].build(), tmp_path), tool_env())
    assert result.status == "FAIL"
    assert result.failed == ["unreached impossible"]


def _unused(*duts):
    """Designs built here only to be inspected, never elaborated (silence Amaranth's warning)."""
    for dut in duts:
        dut._MustUse__silence = True


def test_load_atomicity_applies_to_framed_load_ports():
    # the load ports are packets (`first`, `last`): the load-atomicity property is planned
    dut = CONFIGS["small"].build()
    _unused(dut)
    assert PROPERTIES["load_atomic"].applies(dut)
    jobs = plan(["small"], False)
    _unused(*(d for _, d in jobs))
    assert "load_atomic" in {p.name for j, _ in jobs for p in j.properties}


def test_unknown_mutant_is_refused():
    dut = CONFIGS["small"].build()
    _unused(dut)
    with pytest.raises(ValueError, match="unknown mutant"):
        FormalHarness(dut, [], "no_such_fault")


def test_cli_refuses_an_unknown_property():
    proc = subprocess.run([sys.executable, "-m", "formal", "--property", "nope"], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.startswith("error: unknown property 'nope'") and proc.stderr.count("\n") == 1


# -- datapath equivalence (formal.datapath, formal.spec) ---------------------------------------
DATAPATH_DESIGNS = sorted(n for n, c in CONFIGS.items() if c.kind == "datapath")


@pytest.mark.parametrize("name", DATAPATH_DESIGNS)
def test_the_specification_is_the_model_step(name):
    # the datapath proofs compare the RTL with formal.spec: it must be the golden model's step,
    # bit for bit (random codes and every format's extremes, so casts saturate or wrap)
    from amaranth.sim import Simulator

    from formal.spec import StepSpec
    from model.cell import FixedLSTM
    design = CONFIGS[name]
    cfg, qw, X, H = design.config, design.weights, design.n_inputs, design.n_hidden
    model = FixedLSTM(cfg, qw, path="int", fused=False)
    spec = StepSpec(cfg, X, H)
    rng = np.random.default_rng(7)

    def codes(tensor, n, k):
        f = cfg.fmt(tensor)
        extremes = np.array([f.min_code, f.max_code])
        return np.concatenate([rng.choice(extremes, (k // 4, n)),
                               rng.integers(f.min_code, f.max_code + 1, (k - k // 4, n))])
    steps = 120
    xs, hs, cs = codes("x", X, steps), codes("h", H, steps), codes("c", H, steps)
    want = model.step(xs, hs, cs)
    got = {"h": np.zeros((steps, H), np.int64), "c": np.zeros((steps, H), np.int64)}

    async def bench(ctx):
        for field, values in (("weight_ih", qw.weight_ih), ("weight_hh", qw.weight_hh),
                              ("bias", qw.bias)):
            for k, v in enumerate(np.asarray(values).reshape(-1)):
                ctx.set(getattr(spec, field)[k], int(v))
        for n in range(steps):
            for k in range(X):
                ctx.set(spec.x[k], int(xs[n, k]))
            for u in range(H):
                ctx.set(spec.h[u], int(hs[n, u]))
                ctx.set(spec.c[u], int(cs[n, u]))
            for u in range(H):
                got["h"][n, u] = ctx.get(spec.h_next[u])
                got["c"][n, u] = ctx.get(spec.c_next[u])
    sim = Simulator(spec)
    sim.add_testbench(bench)
    sim.run()
    assert np.array_equal(got["c"], want["c"])
    assert np.array_equal(got["h"], want["h"])


def _planned(config, full=True):
    """plan()'s jobs for one configuration, the designs only inspected."""
    jobs = plan([config], full)
    _unused(*(d for _, d in jobs))
    _unused(*(layer for _, d in jobs for layer in getattr(d, "layers", ())))   # a stack's cells
    return jobs


def test_datapath_jobs_plan_the_mutants_that_can_show():
    split = {j.mutant for j, _ in _planned("dp_split")}
    tiny = _planned("dp_tiny")
    assert split == {None, *DATAPATH_MUTANTS}              # P = 2 splits rows of X+H = 3
    # P = 1 never splits a row; with dp_tiny's weights c never overflows (the model says so
    # over every input), so flipping SAT to WRAP is no fault there
    assert {j.mutant for j, _ in tiny} == \
        {None, *DATAPATH_MUTANTS} - {"row_split_lane_off", "c_overflow_flipped"}
    assert all(not j.cut_multipliers for j, _ in tiny)     # the datapath keeps its products
    # make formal: the proof, the fault the outside review found, the covers
    assert [j.mutant for j, _ in _planned("dp_tiny", full=False)] == \
        [None, "x_right_after_state", None]


@pytest.mark.parametrize("mutant", ["row_split_lane_off", "x_right_after_state"])
def test_rtlil_mutants_find_their_signals(tmp_path, mutant):
    # these two are applied to the RTLIL by signal name: a renamed signal must stop the run,
    # never leave a mutant that cannot fail
    job, dut = next((j, d) for j, d in _planned("dp_split") if j.mutant == mutant)
    plain = write_job(Job("plain", "dp_split", job.properties, None, "bmc", 5, "PASS",
                          cut_multipliers=False), CONFIGS["dp_split"].build(), tmp_path)
    mutated = write_job(job, dut, tmp_path)
    a, b = (p.with_suffix(".il").read_text() for p in (plain, mutated))
    assert a != b
    with pytest.raises(ValueError, match=mutant):
        mutate_rtlil("module \\harness\nend\n", mutant)


def test_abc_bridge_repairs_debian_witness(tmp_path):
    from formal.abc import _fix_witness
    trace = tmp_path / "trace.aiw"
    trace.write_text("0000\n01\n00# DONE")
    _fix_witness(trace)
    assert trace.read_text() == "0000\n01\n00\n# DONE"


def test_serial_and_stacked_designs_plan_the_properties_that_fit():
    # a word-serial result is H transfers: the properties counting one per step stay off;
    # a stack's loads are per layer (weights_l<k>, state_l<k>), its ports' readies all checked
    words = {p.name for j, _ in _planned("words", full=False) for p in j.properties}
    assert words == {"output_stream", "reset_ready", "loads_between_steps", "load_atomic"}
    stack = _planned("stack", full=False)
    assert {p.name for j, _ in stack for p in j.properties} == {"output_stream", "reset_ready"}
    harness = FormalHarness(stack[0][1], [PROPERTIES["reset_ready"]])
    _unused(harness)
    assert set(harness.env) == {"x", "weights_l0", "state_l0", "weights_l1", "state_l1"}


def test_pdr_proves_the_load_properties_and_outstanding_where_measured(monkeypatch):
    # PDR closed the load properties in seconds and `outstanding` on `small` in minutes
    # (docs/formal.md): they are proven there unbounded with the property's own resets (the
    # slow one in make formal-full only); without ABC, BMC
    import formal.__main__ as runner
    monkeypatch.setattr(runner, "HAVE_ABC", True)
    full = {j.name: j for j, _ in _planned("small") if j.properties}
    assert full["outstanding"].mode == "pdr" and full["outstanding"].resets == "initial"
    assert full["response"].mode == "bmc"                   # PDR did not close it
    assert full["outstanding__capacity_minus_1"].mode == "bmc"
    fast = {j.name: j for j, _ in _planned("small", full=False) if j.properties}
    assert fast["outstanding"].mode == "bmc"
    assert fast["loads_between_steps"].mode == fast["load_atomic"].mode == "pdr"
    assert fast["load_atomic__x_ready_in_load_gap"].mode == "bmc"     # mutants stay BMC
    monkeypatch.setattr(runner, "HAVE_ABC", False)
    full = {j.name: j for j, _ in _planned("small")}
    assert full["outstanding"].mode == full["load_atomic"].mode == "bmc"


def test_dp_load_loads_weights_through_the_port_in_the_full_run():
    from formal.configs import FULL
    design = CONFIGS["dp_load"]
    assert "dp_load" in FULL and design.load_weights and not design.weight_gaps
    jobs = _planned("dp_load")
    assert "x_right_after_state" in {j.mutant for j, _ in jobs}
    # the check that no weight word is taken while a step runs is in the proof's RTLIL
    job, dut = next((j, d) for j, d in jobs if j.mutant is None and j.mode == "bmc")
    from amaranth.back import rtlil
    harness = FormalHarness(dut, job.properties, None, resets="initial", design=design)
    text = rtlil.convert(harness, name="harness", ports=harness.ports)
    assert "no_weight_word_during_step" in text and "weight_packet_sent" in text
