"""The formal harness end to end on one quick property (the rest is `make formal`): the real
design proves, its mutant fails with the property named and a counterexample VCD."""
import subprocess
import sys
from pathlib import Path

import pytest

from formal.__main__ import plan
from formal.configs import CONFIGS
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
