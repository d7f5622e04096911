"""The simulated board: the board top (PLL bypassed, UART pins as top-level ports) in Verilator,
its UART bridged bit by bit to a TCP socket on 127.0.0.1 by the C++ harness
``deploy/verilator/uart_tcp.cpp``, so the host driver runs unchanged over
``socket://127.0.0.1:PORT`` (docs/deploy.md, "The simulated board").

Builds are cached under ``build/deploy/sim-<hash>`` keyed by the Verilog, the harness source,
the pin names and the flags (the last ``KEEP_BUILDS`` used are kept). A running board serves
one client and exits when it disconnects, after ``idle_timeout`` seconds without a byte, when
no client came within ``accept_timeout`` seconds, or when its parent process dies.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sim.batch import run_build
from sim.runner import ROOT, SimError, simulator_env

__all__ = ["HARNESS", "Pins", "SimBoard", "build_board", "start_board"]

HARNESS = Path(__file__).resolve().parent / "verilator" / "uart_tcp.cpp"
BUILD_ROOT = ROOT / "build" / "deploy"
KEEP_BUILDS = 6
LISTENING = re.compile(r"uart_tcp: listening on 127\.0\.0\.1:(\d+)")
START_TIMEOUT = 30.0            # seconds for the harness to bind and print its port
STOP_TIMEOUT = 10.0             # seconds for it to exit once the client has gone


@dataclass(frozen=True)
class Pins:
    """Top-level port names of the Verilog the harness drives."""

    clk: str = "clk"
    rst: str = "rst"
    rx: str = "rx"              # into the design (the host's bytes)
    tx: str = "tx"              # out of the design
    busy: str | None = None     # optional: high while the design computes (lets it idle)

    def defines(self) -> list[str]:
        names = {"CLK": self.clk, "RST": self.rst, "RX": self.rx, "TX": self.tx,
                 "BUSY": self.busy}
        return [f"-DPIN_{k}={v}" for k, v in names.items() if v is not None]


def verilator_flags(top: str, pins: Pins, optimize: bool = True) -> list[str]:
    """``optimize``: Verilator -O3 and g++ -O2 (for long runs); else no optimisation, which
    builds in about half the time (for short tests)."""
    return ["--cc", "--exe", "--build", "-Wno-fatal", *(["-O3"] if optimize else []),
            "--x-assign", "fast", "--x-initial", "fast", "-j", "2", "--prefix", "Vboard",
            "--top-module", top,
            "-CFLAGS", " ".join(["-O2" if optimize else "-O0", *pins.defines()])]


def build_board(verilog_text: str, top: str, pins: Pins = Pins(), *,
                optimize: bool = True) -> Path:
    """Compile ``verilog_text`` (module ``top``) with the harness; returns the executable.
    Reuses a cached build of the same inputs."""
    env = simulator_env("verilator")
    flags = verilator_flags(top, pins, optimize)
    key = "\n".join([" ".join(flags), HARNESS.read_text(), verilog_text])
    build_dir = BUILD_ROOT / f"sim-{hashlib.sha256(key.encode()).hexdigest()[:16]}"
    target = build_dir / "Vboard"
    if target.exists():
        os.utime(build_dir)                      # recently used: kept by _prune
        return target
    _prune()
    BUILD_ROOT.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="build-", dir=BUILD_ROOT))
    try:
        (work / f"{top}.v").write_text(verilog_text)
        cmd = ["verilator", *flags, "-Mdir", str(work / "obj"), "-o", "Vboard",
               str(HARNESS), str(work / f"{top}.v")]
        run_build(cmd, work, env, "Verilator build of the simulated board")
        shutil.copy2(work / "obj" / "Vboard", work / "Vboard")
        shutil.rmtree(work / "obj")              # objects: keep the binary only
        try:
            os.replace(work, build_dir)          # atomic: a parallel build of the same key wins
        except OSError:
            pass
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    return target


def _prune(keep: int = KEEP_BUILDS) -> None:
    """The ``keep`` most recently used builds stay."""
    builds = sorted(BUILD_ROOT.glob("sim-*"), key=lambda p: p.stat().st_mtime)
    for old in builds[:max(0, len(builds) - (keep - 1))]:
        shutil.rmtree(old, ignore_errors=True)


class SimBoard:
    """A running simulated board (one harness process serving one client)."""

    def __init__(self, process: subprocess.Popen, port: int, stderr_lines: list):
        self.process = process
        self.port = port
        self._stderr = stderr_lines

    @property
    def url(self) -> str:
        return f"socket://127.0.0.1:{self.port}"

    @property
    def messages(self) -> list[str]:
        """What the harness said on stderr (timeouts, framing errors)."""
        return list(self._stderr)

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """Wait for the harness to exit (it does once its client has gone), else end it."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.terminate()
            try:
                return self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                return self.process.wait()


def _collect(stream, lines: list):
    for line in stream:
        lines.append(line.rstrip("\n"))


@contextlib.contextmanager
def start_board(executable: Path, *, divisor: int, port: int = 0, accept_timeout: float = 60,
                idle_timeout: float = 60, echo_stderr: bool = False):
    """Run a built board on 127.0.0.1:``port`` (0: a free port); yields a :class:`SimBoard`.
    The process is ended when the block ends, whatever happens in it."""
    cmd = [str(executable), f"+port={port}", f"+divisor={divisor}",
           f"+accept-timeout={max(1, round(accept_timeout))}",
           f"+idle-timeout={max(1, round(idle_timeout))}"]
    process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=simulator_env("verilator"))
    stderr_lines: list[str] = []
    reader = threading.Thread(target=_collect, args=(process.stderr, stderr_lines), daemon=True)
    reader.start()
    board = SimBoard(process, 0, stderr_lines)
    try:
        board.port = _wait_for_port(process, stderr_lines)
        yield board
    finally:
        board.stop()
        reader.join(5)
        process.stdout.close()
        process.stderr.close()
        if echo_stderr:
            for line in stderr_lines:
                print(line, file=sys.stderr)


def _wait_for_port(process: subprocess.Popen, stderr_lines: list) -> int:
    """The port from the harness's first stdout line (bounded by ``START_TIMEOUT``)."""
    found: list[str] = []
    reader = threading.Thread(target=lambda: found.append(process.stdout.readline()), daemon=True)
    reader.start()
    reader.join(START_TIMEOUT)
    match = LISTENING.match(found[0]) if found else None
    if match is None:
        process.kill()
        process.wait()
        said = "; ".join(stderr_lines[-2:]) or "nothing"
        raise SimError(f"the simulated board did not start listening (it said: {said})")
    return int(match.group(1))


# ---- python -m deploy sim ------------------------------------------------------------------

SIM_DIVISOR = 4                 # clock cycles per bit in simulation: the UART's minimum
#: line silence (cycles) that ends a frame: long against any pause of the socket mid-frame,
#: short enough that the bad-frame answers come at once (2^18 cycles: ~0.1 s simulated)
SIM_TIMEOUT = 1 << 18
SIM_PINS = Pins(clk="clk", rst="rst", rx="rx", tx="tx", busy="busy")


def board_verilog(board: str, config, model, *, lanes=None, divisor: int = SIM_DIVISOR):
    """Verilog of ``board``'s top for simulation (PLL bypassed, UART pins as ports): (text,
    module name, :class:`Pins`). The simulated top is the same link and design for every
    board; ``board`` is checked against the names the build knows. Elaborating the link takes
    seconds, so the text is cached under ``build/deploy/verilog`` by everything it depends on:
    the config, the weights, lanes, divisor, timeout, Amaranth's version and the source of
    model/, rtl/ and deploy/."""
    from model.weights import LSTMStack

    _check_board(board)
    stack = model if isinstance(model, LSTMStack) else LSTMStack.from_single(model)
    path = _verilog_cache(config, stack, lanes, divisor)
    if path.exists():
        os.utime(path)
        return path.read_text(), "deploy_board", SIM_PINS
    from .board import simulation_verilog
    text, _ = simulation_verilog(config, stack, lanes=lanes, divisor=divisor,
                                 timeout=SIM_TIMEOUT, name="deploy_board")
    path.parent.mkdir(parents=True, exist_ok=True)
    cached = sorted(path.parent.glob("*.v"), key=lambda f: f.stat().st_mtime)
    for old in cached[:max(0, len(cached) - (KEEP_BUILDS - 1))]:
        old.unlink(missing_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    partial.write_text(text)
    os.replace(partial, path)
    return text, "deploy_board", SIM_PINS


def _verilog_cache(config, stack, lanes, divisor) -> Path:
    import json

    import amaranth

    key = hashlib.sha256()
    key.update(json.dumps([config.as_dict(), lanes, divisor, SIM_TIMEOUT, amaranth.__version__],
                          sort_keys=True, default=str).encode())
    arrays = [a for layer in stack.layers for a in (layer.weight_ih, layer.weight_hh, layer.bias)]
    arrays += [a for a in (stack.head_weight, stack.head_bias, stack.h0, stack.c0) if a is not None]
    for a in arrays:
        a = np.ascontiguousarray(a, dtype=np.float64)
        key.update(str(a.shape).encode() + a.tobytes())
    for package in ("model", "rtl", "deploy"):
        for source in sorted((ROOT / package).rglob("*.py")):
            key.update(source.read_bytes())
    return BUILD_ROOT / "verilog" / f"{key.hexdigest()[:16]}.v"


def _check_board(board: str) -> None:
    try:
        from .boards import BOARDS
    except ImportError:         # no board table in this checkout: any name simulates the same
        return
    if board not in BOARDS:
        raise SimError(f"--board must be one of {', '.join(sorted(BOARDS))}, not {board!r}")


@contextlib.contextmanager
def serve(board: str, config, model, *, lanes=None, port: int = 0, quiet: bool = False,
          accept_timeout: float = 60, idle_timeout: float = 60, optimize: bool = True):
    """Build (or reuse) the simulated ``board`` for ``config`` and ``model`` and run it on
    127.0.0.1:``port``; yields the running :class:`SimBoard`."""
    text, top, pins = board_verilog(board, config, model, lanes=lanes)
    executable = build_board(text, top, pins, optimize=optimize)
    with start_board(executable, divisor=SIM_DIVISOR, port=port, accept_timeout=accept_timeout,
                     idle_timeout=idle_timeout, echo_stderr=not quiet) as running:
        yield running


def build_parser():
    from model.cli import ArgumentParser, add_weights_options
    ap = ArgumentParser(prog="python -m deploy sim",
                        description="the board top (PLL bypassed, UART included) in Verilator, "
                                    "its UART bridged bit by bit to a TCP socket on 127.0.0.1; "
                                    "serves one client (python -m deploy run --port "
                                    "socket://127.0.0.1:N) and exits when it disconnects")
    ap.add_argument("--board", required=True, help="board name, e.g. ulx3s-25f")
    ap.add_argument("--config", help="TOML config (default: configs/default.toml)")
    add_weights_options(ap)
    ap.add_argument("--lanes", type=int, help="MAC lanes P (default: the config's)")
    ap.add_argument("--port-number", type=int, default=0,
                    help="TCP port on 127.0.0.1 (default 0: any free port, printed)")
    ap.add_argument("--accept-timeout", type=float, default=300,
                    help="seconds to wait for the client (default 300)")
    ap.add_argument("--idle-timeout", type=float, default=60,
                    help="exit after this many seconds without a byte on the line (default 60)")
    add_fast_build(ap)
    return ap


def add_fast_build(parser) -> None:
    parser.add_argument("--fast-build", action="store_true",
                        help="unoptimised Verilator build: about half the build time, a slower "
                             "simulation (for a few sequences)")


def cmd_sim(args) -> int:
    from model.cli import load_model
    from model.fixed import FixedPointError
    if not 0 <= args.port_number <= 65535:
        raise FixedPointError(f"--port-number must be from 0 to 65535, not {args.port_number}")
    for name in ("accept_timeout", "idle_timeout"):
        if getattr(args, name) <= 0:
            raise FixedPointError(f"--{name.replace('_', '-')} must be positive")
    config, model = load_model(args)
    with serve(args.board, config, model, lanes=args.lanes, port=args.port_number, quiet=True,
               accept_timeout=args.accept_timeout, idle_timeout=args.idle_timeout,
               optimize=not args.fast_build) as board:
        print(f"simulated {args.board} listening on {board.url} (one client; ends when it "
              f"disconnects): python -m deploy run --port {board.url}", flush=True)
        status = board.process.wait()
    if status == 3:
        raise SimError("the simulated board stopped: " + (board.messages or ["timeout"])[-1])
    if status != 0:
        raise SimError(f"the simulated board ended with status {status}")
    for line in board.messages:          # e.g. framing errors the harness saw on tx
        print(line, file=sys.stderr)
    return 0


def main(argv=None) -> int:
    from model.cli import run_command
    from rtl.geometry import RTLError
    return run_command(cmd_sim, build_parser().parse_args(argv), expected=(SimError, RTLError))
