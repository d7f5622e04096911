"""Batch simulation: the plain Verilog testbench ``sim/verilog/tb_vectors.v`` on vectors from
:mod:`model.vectors`, stimulus and expected outputs in HDL memories, every output compared in
the HDL, no Python in the simulation loop. On Verilator this takes about 1/40 of the CPU time
of the cocotb testbench (whose Python runs on every clock edge); nearly all of what is left
is the design's own evaluation (``python -m bench sim``).

Why not cocotb here: the same testbench run under cocotb (a cocotb test that waits for a done
flag and reads the verdict through handles, no per-cycle Python) was measured at 0.67 M
cycles per CPU second against 5.4 M for the plain binary: cocotb's Verilator build (VPI,
every signal public) and its main loop cost 8x. So the batch runs the plain binary and Python
reads the verdict and the dump; cocotb stays the framework of the protocol tests (random gaps
and stalls, resets, loads, waves) in sim/tb_lstm.py.

The testbench also dumps every output it received; :func:`run_vectors` decodes that dump and
compares it with the expected codes again in Python, so the verdict does not rest on the
testbench's comparison alone, and the RTL's accuracy is computed from the RTL's own h.

Builds are cached under ``build/sim/<simulator>-tb-<hash>`` keyed by the design's Verilog, the
testbench source, its sizes, the build flags and the CPU model (the last 8 used are kept;
run directories under ``build/sim/batch-runs``, the last 5); vectors are read at run time, so
a new data set on the same design reuses the build. Verilator builds hold at least 65536 steps
(``+steps=`` picks how many are run).
"""
from __future__ import annotations

import hashlib
import os
import platform
import re
import resource
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from model.vectors import Vectors, params_vh, write_vectors
from rtl.__main__ import export_verilog
from rtl.stack import StackTop
from rtl.top import LSTMCell

from .runner import BUILD_ROOT, ROOT, SimError, simulator_env

__all__ = ["TB_SOURCE", "TBResult", "BatchResult", "build_testbench", "run_build",
           "run_testbench", "run_vectors", "parse_summary", "decode_dump", "verilator_flags"]

TB_SOURCE = ROOT / "sim" / "verilog" / "tb_vectors.v"
TOPLEVEL = "lstm_cell"
KEEP_BUILDS = 8                 # testbench builds kept per simulator (Verilator: ~1 MB each)
MIN_CAPACITY = 1 << 16          # steps a Verilator build holds at least (memories: ~10 MB)
SUMMARY = re.compile(r"^tb_vectors: result=(PASS|FAIL) (.*)$", re.M)


def verilator_flags() -> list[str]:
    """Verilator options of the batch build: a timed (``#5`` clock) testbench as a binary."""
    # -march=native: about 8 % faster here; the cache key includes the CPU model
    return ["--binary", "--timing", "-Wno-fatal", "-O3", "--x-assign", "fast",
            "--x-initial", "fast", "-j", "2",
            "-CFLAGS", "-std=c++20 -fcoroutines -O3 -march=native",
            "--top-module", "tb_vectors"]


def cpu_model() -> str:
    """The processor's name (a build cache key: -march=native builds differ per CPU)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@dataclass
class TBResult:
    """What one testbench run reported (its summary line), and how long it took."""

    passed: bool
    summary: dict            # key=value pairs of the summary line, as ints
    reports: list            # mismatch and timeout lines the testbench printed
    seconds: float           # wall time of the simulation (not the build)
    cpu_seconds: float       # CPU time of the simulator process
    log: Path

    def __getitem__(self, key):
        return self.summary[key]


def parse_summary(text: str) -> tuple[bool, dict]:
    """The testbench's verdict line ``tb_vectors: result=PASS compared=... mismatches=...``."""
    found = SUMMARY.findall(text)
    if not found:
        raise SimError("the testbench ended without its summary line")
    verdict, pairs = found[-1]
    return verdict == "PASS", {k: int(v) for k, v in (p.split("=") for p in pairs.split())}


def _capacity(steps: int, simulator: str) -> int:
    """Steps the build's memories hold. Verilator builds take minutes, so they are sized to
    fit any data set up to a power of two; Icarus compiles in a moment and warns about files
    shorter than their memories, so its builds hold exactly the steps run."""
    if simulator == "icarus":
        return steps
    return max(MIN_CAPACITY, 1 << (steps - 1).bit_length())


def build_testbench(verilog_text: str, manifest: dict, simulator: str, *, steps=None,
                    flags=None) -> Path:
    """Compile the testbench with the design for ``simulator``; returns the executable
    (Verilator) or the ``.vvp`` file (Icarus). Reuses a cached build of the same inputs.
    ``flags`` replaces :func:`verilator_flags` (Verilator only)."""
    env = simulator_env(simulator)
    capacity = _capacity(steps or manifest["steps"], simulator)
    vh = params_vh(manifest, steps=capacity)
    flags = (flags or verilator_flags()) if simulator == "verilator" else ["-g2005"]
    key = "\n".join([simulator, " ".join(flags), cpu_model(), vh, TB_SOURCE.read_text(),
                     verilog_text])
    build_dir = BUILD_ROOT / f"{simulator}-tb-{hashlib.sha256(key.encode()).hexdigest()[:16]}"
    target = build_dir / ("Vtb_vectors" if simulator == "verilator" else "tb_vectors.vvp")
    if target.exists():
        os.utime(build_dir)                      # recently used: kept by _prune
        return target
    _prune(simulator)
    BUILD_ROOT.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"{simulator}-tb-build-", dir=BUILD_ROOT))
    try:
        (work / "params.vh").write_text(vh)
        (work / f"{TOPLEVEL}.v").write_text(verilog_text)
        sources = [str(TB_SOURCE), str(work / f"{TOPLEVEL}.v")]
        if simulator == "verilator":
            cmd = ["verilator", *flags, f"-I{work}", "-Mdir", str(work / "obj"), *sources]
        else:
            cmd = ["iverilog", *flags, "-I", str(work), "-o", str(work / target.name), *sources]
        run_build(cmd, work, env, f"{simulator} build of the testbench")
        if simulator == "verilator":
            shutil.copy2(work / "obj" / "Vtb_vectors", work / "Vtb_vectors")
            shutil.rmtree(work / "obj")          # ~100 MB of objects: keep the binary only
        try:
            os.replace(work, build_dir)          # atomic: a parallel build of the same key wins
        except OSError:
            pass                                 # ... or lost: use the winner's
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    return target


def run_build(cmd: list, work: Path, env: dict, what: str) -> None:
    """Run a build command in ``work`` with its output in ``work/build.log``; a failure is a
    SimError naming ``what`` with the log's last lines."""
    log = work / "build.log"
    with open(log, "w") as f:
        done = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=work)
    if done.returncode != 0:
        tail = log.read_text().strip().splitlines()[-3:]
        raise SimError(f"{what} failed: {' / '.join(tail)}")


def _prune(simulator: str, keep: int = KEEP_BUILDS) -> None:
    """Keep the cache bounded: the ``keep`` most recently used builds of a simulator."""
    builds = sorted((p for p in BUILD_ROOT.glob(f"{simulator}-tb-*")
                     if "-build-" not in p.name),   # never another process's build in progress
                    key=lambda p: p.stat().st_mtime)
    for old in builds[:max(0, len(builds) - (keep - 1))]:     # room for the one being built
        shutil.rmtree(old, ignore_errors=True)


def run_testbench(executable: Path, simulator: str, vectors_dir: Path, *, steps: int,
                  load: bool = True, gap: int = 0, stall: int = 0, seed: int = 1,
                  dump: Path | None = None, timeout_cycles: int | None = None,
                  log: Path | None = None, dump_y: Path | None = None) -> TBResult:
    """Run a built testbench on the vectors in ``vectors_dir`` (gap and stall in percent)."""
    env = simulator_env(simulator)
    plusargs = [f"+vectors={vectors_dir}", f"+steps={steps}", f"+gap={gap}", f"+stall={stall}",
                f"+seed={seed}"]
    if not load:
        plusargs.append("+noload")
    if dump is not None:
        plusargs.append(f"+dump={dump}")
    if dump_y is not None:
        plusargs.append(f"+dumpy={dump_y}")
    if timeout_cycles is not None:
        plusargs.append(f"+timeout={timeout_cycles}")
    cmd = [str(executable), *plusargs] if simulator == "verilator" else \
        ["vvp", "-n", str(executable), *plusargs]
    log = log or vectors_dir / "sim.log"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with open(log, "w") as f:
        done = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=vectors_dir)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    text = log.read_text()
    if done.returncode != 0 and not SUMMARY.search(text):
        raise SimError(f"{simulator} run failed (exit {done.returncode}); see {log}")
    passed, summary = parse_summary(text)
    reports = [line[len("tb_vectors: "):] for line in text.splitlines()
               if line.startswith(("tb_vectors: mismatch", "tb_vectors: timeout",
                                   "tb_vectors: unexpected", "tb_vectors: error"))]
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return TBResult(passed, summary, reports, seconds, cpu, log)


_UNKNOWN_AS_ZERO = str.maketrans("xz", "00")
_UNKNOWN_MASK = str.maketrans("0123456789abcdefxz", "0000000000000000ff")


def decode_dump(path: Path, vectors: Vectors) -> tuple[np.ndarray, np.ndarray | None]:
    """The output payloads the testbench received: h codes (n, H) and c codes (or None).

    A code with unknown bits (``x`` or ``z`` on a four-state simulator) becomes 2^W, which no
    W-bit code equals, so it counts as a mismatch."""
    w = vectors.widths()
    H = vectors.n_hidden
    lines = path.read_text().lower().split()
    fields = [("h", w["h"], 0)]
    if vectors.output_c:
        fields.append(("c", w["c"], H * w["h"]))
    slow = [r for r, line in enumerate(lines) if "x" in line or "z" in line]
    if any(width > 62 for _, width, _ in fields):
        slow = list(range(len(lines)))
    out = {name: np.zeros((len(lines), H), np.int64 if width <= 62 else object)
           for name, width, _ in fields}
    fast = np.setdiff1d(np.arange(len(lines)), slow)
    if fast.size:
        nbytes = -(-w["step_payload"] // 8)
        raw = bytes.fromhex("".join(lines[r].rjust(2 * nbytes, "0") for r in fast))
        bits = np.unpackbits(np.frombuffer(raw, np.uint8).reshape(fast.size, nbytes)[:, ::-1],
                             axis=1, bitorder="little")
        for name, width, offset in fields:
            b = bits[:, offset:offset + H * width].reshape(fast.size, H, width).astype(np.int64)
            v = (b << np.arange(width)).sum(axis=2)
            out[name][fast] = v - ((v >> (width - 1)) << width)     # two's complement
    for r in slow:
        word = int(lines[r].translate(_UNKNOWN_AS_ZERO), 16)
        bad = int(lines[r].translate(_UNKNOWN_MASK), 16)
        for name, width, offset in fields:
            mask = (1 << width) - 1
            for u in range(H):
                shift = offset + u * width
                v = (word >> shift) & mask
                out[name][r, u] = 1 << width if (bad >> shift) & mask else \
                    v - (1 << width) if v >> (width - 1) else v
    return out["h"], out.get("c")


def decode_y_dump(path: Path, vectors: Vectors) -> tuple[list, list]:
    """The y payloads the testbench received: logit codes (C per sequence) and labels. A word
    with unknown bits decodes to a value no code equals (2^W), so it counts as a mismatch."""
    w, C = vectors.widths(), vectors.n_classes
    logits, labels = [], []
    for line in path.read_text().lower().split():
        bad = int(line.translate(_UNKNOWN_MASK), 16)
        word = int(line.translate(_UNKNOWN_AS_ZERO), 16)
        row = []
        for k in range(C + 1):
            width = w["logit"] if k < C else w["label"]
            shift = k * w["logit"]
            v = (word >> shift) & ((1 << width) - 1)
            if (bad >> shift) & ((1 << width) - 1):
                v = 1 << width
            elif k < C and v >> (width - 1):
                v -= 1 << width
            row.append(v)
        logits.append(row[:C])
        labels.append(row[C])
    return logits, labels


@dataclass
class BatchResult:
    simulator: str
    passed: bool
    tb: TBResult
    h: np.ndarray                 # (B, T, H) h codes the design produced (dumped)
    c: np.ndarray | None
    mismatches_dump: int          # the dump compared with the expected codes again, in Python
    build_seconds: float
    run_dir: Path
    extra: dict = field(default_factory=dict)
    logits: list | None = None    # with a head: the logit codes the design produced (dumped)
    labels: list | None = None    # ... and its labels
    y_mismatches_dump: int = 0    # logits and labels of the dump that differ from the expected

    @property
    def mismatches(self) -> int:
        return self.tb["mismatches"]


def run_vectors(vectors: Vectors, simulator: str = "verilator", *, lanes: int | None = None,
                load: bool = False, gap: int = 0, stall: int = 0, seed: int = 1,
                verilog_text: str | None = None, corrupt=None, design=None,
                build_flags=None) -> BatchResult:
    """Export the design for ``vectors`` (or use ``verilog_text``), build the testbench, write
    the vectors into a fresh run directory and run them; every output compared twice (in the
    testbench, and from its dump here). ``corrupt(run_dir)`` may edit the written vectors
    (tests use it to show that a wrong expectation is caught). ``design``: the design to run
    (from :func:`rtl.stack.build_design`; with a classifier head when ``vectors`` expect y).
    ``build_flags``: Verilator's flags instead of :func:`verilator_flags`."""
    if design is not None:
        core = getattr(design, "core", design)
        # a stacked design goes behind the single cell's port names
        dut = design if isinstance(core, LSTMCell) else StackTop(design)
    else:
        dut = LSTMCell(vectors.config, vectors.qweights, lanes=lanes, output_c=vectors.output_c,
                       serial_output=vectors.serial_output)
    if verilog_text is None:
        verilog_text = export_verilog(dut, TOPLEVEL)
    else:       # built elsewhere: this instance only gives the closed-form cycle count
        dut._MustUse__silence = True
    run_dir = Path(tempfile.mkdtemp(prefix=f"{simulator}-batch-", dir=_runs_root()))
    manifest = write_vectors(run_dir, vectors, cycles_per_step=dut.cycles_per_step)
    if corrupt is not None:
        corrupt(run_dir)
    start = time.perf_counter()
    executable = build_testbench(verilog_text, manifest, simulator, flags=build_flags)
    build_seconds = time.perf_counter() - start
    dump, dump_y = run_dir / "received.hex", run_dir / "received_y.hex"
    tb = run_testbench(executable, simulator, run_dir, steps=vectors.n_steps, load=load, gap=gap,
                       stall=stall, seed=seed, dump=dump,
                       dump_y=dump_y if vectors.logits is not None else None)
    B, T, H = vectors.h.shape
    h_got, c_got = decode_dump(dump, vectors) if dump.exists() else (np.zeros((0, H)), None)
    n = min(len(h_got), B * T)
    bad = int(np.count_nonzero(h_got[:n] != vectors.h.reshape(-1, H)[:n]))
    if c_got is not None:
        bad += int(np.count_nonzero(c_got[:n] != vectors.c.reshape(-1, H)[:n]))
    complete = len(h_got) == B * T
    passed = tb.passed and complete and bad == 0 and bad == tb["mismatches"]
    logits = labels = None
    bad_y = 0
    if vectors.logits is not None:
        logits, labels = decode_y_dump(dump_y, vectors) if dump_y.exists() else ([], [])
        want = vectors.logits.tolist()
        bad_y = sum(g != int(w) for got, row in zip(logits, want) for g, w in zip(got, row))
        bad_y += sum(g != int(w) for g, w in zip(labels, vectors.labels))
        passed = passed and len(labels) == B and bad_y == 0 and \
            bad_y == tb["logits_mismatches"] + tb["labels_mismatches"]
    shape = (B, T, H)
    return BatchResult(simulator, passed, tb,
                       h_got.reshape(shape) if complete else h_got,
                       c_got.reshape(shape) if complete and c_got is not None else c_got,
                       bad, build_seconds, run_dir,
                       {"cycles_per_step_design": dut.cycles_per_step,
                        "load_words": manifest["load_words"], "executable": executable},
                       logits, labels, bad_y)


#: A run folder younger than this may belong to a run still going in another process
#: (make test JOBS=2, a regression beside a python -m sim): never pruned.
RUN_GRACE_SECONDS = 3600


def _runs_root() -> Path:
    """Run directories (vectors, log, dump); only the last few are kept, and none that another
    process may still be using."""
    root = BUILD_ROOT / "batch-runs"
    root.mkdir(parents=True, exist_ok=True)
    runs = sorted(root.iterdir(), key=lambda p: p.stat().st_mtime)
    now = time.time()
    for old in runs[:-4]:
        if now - old.stat().st_mtime > RUN_GRACE_SECONDS:
            shutil.rmtree(old, ignore_errors=True)
    return root


def summary_json(result: BatchResult) -> dict:
    """The numbers of a batch run in the keys of ``python -m sim --json``."""
    tb = result.tb
    steps = tb["steps"]
    return {
        "simulator": result.simulator, "mode": "batch", "passed": result.passed,
        "compared": tb["compared"], "compared_c": tb["compared_c"],
        "mismatches": tb["mismatches"], "mismatches_dump": result.mismatches_dump,
        "missing": max(0, tb["expected_steps"] - steps), "steps": steps, "cycles": tb["cycles"],
        "cycles_per_step": tb["step_cycles"] / steps if steps else None,
        "seconds": round(tb.seconds, 3), "cpu_seconds": round(tb.cpu_seconds, 3),
        "build_seconds": round(result.build_seconds, 3),
        "cycles_per_second": round(tb["cycles"] / tb.seconds) if tb.seconds else None,
        "log": str(tb.log),
        **({} if result.labels is None else {
            k: tb[k] for k in ("logits_compared", "logits_mismatches", "labels_compared",
                               "labels_mismatches")}),
    }
