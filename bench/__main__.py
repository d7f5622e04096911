"""python -m bench <command> [--json] [--out FILE.json] ...

Benchmarks (not tests): figures with the command and machine that measured them. Each command
prints a table (or one JSON object with ``--json``) and writes build/bench/<command>.json
(``--out`` elsewhere; ``make bench-record`` refreshes the committed copies in bench/results/).

    golden   bit-exact golden model vs a plain float64 numpy LSTM (time ratio)
    rtl      RTL cycles per step vs the MAC bound (closed form, checked in simulation by tests)
    sim      checked RTL simulation speed (cycles per second, every output compared)
    synth    FPGA cost per family: LUTs, flip-flops, DSPs, block RAMs, Fmax, fits
    scale    per ECP5 device and lane count: cost, Fmax, cycles per step, per-image latency,
             images per second (the notebook network by default)
    cpu      what users would run instead: the notebook network on one CPU core (PyTorch when
             importable, and float32 numpy), per image at batch 1 and batched
    netlist  the mapped ECP5 netlist (Yosys synth_ecp5) simulated against the golden model

With no command: golden, then rtl.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.common import BUILD, finish, machine, parser, target
from model.cli import UsageError, fail, run_command, shown

COMMANDS = ("golden", "rtl", "sim", "synth", "scale", "cpu", "netlist")
FAMILIES = ("ecp5", "ice40")


# ---- synth: bench.synth once per family, summarized ---------------------------------------

def synth_parser():
    ap = parser("synth", "FPGA cost of the default design per family (wraps python -m bench.synth; "
                         "other options, e.g. --freq, --lanes, --no-pnr, are passed on to it).")
    ap.add_argument("--family", choices=(*FAMILIES, "all"), default="all",
                    help="one family or all (default all: ecp5 place and route takes minutes)")
    ap.add_argument("--details-dir", metavar="DIR", default=str(BUILD),
                    help=f"where each family's full bench.synth report goes (default {BUILD})")
    return ap


def summarize(report: dict) -> dict:
    res = report["resources"]
    return {"lut": res.get("lut4", 0), "ff": res.get("ff", 0), "dsp": res.get("dsp", 0),
            "bram": res.get("bram", 0), "fmax_mhz": report.get("fmax_mhz"),
            "fits": report["fits_device"], "device": report["device"],
            "cycles_per_step": report["cycles_per_step"], "steps_per_s": report.get("steps_per_s"),
            "place_and_route": report.get("pnr") is not None}


def cmd_synth(args, extra) -> int:
    out = target(args, "synth")
    details = Path(args.details_dir)
    if not details.is_dir():
        raise UsageError(f"--details-dir {details} is not a directory")
    families = FAMILIES if args.family == "all" else (args.family,)
    result = {"benchmark": "synth", "command": " ".join(["python -m bench synth", *extra]),
              "machine": machine(), "families": {}}
    for family in families:
        report_file = details / f"synth-{family}.json"
        if not args.json:
            what = "synthesis, place and route: minutes" if family == "ecp5" else "synthesis"
            print(f"bench synth: {family} (python -m bench.synth, {what})", flush=True)
        run = subprocess.run([sys.executable, "-m", "bench.synth", "--family", family, "--json",
                              "--out", str(report_file), *extra], capture_output=True, text=True)
        if run.returncode:
            sys.stderr.write(run.stderr)
            return run.returncode
        report = json.loads(run.stdout.strip().splitlines()[-1])
        result["families"][family] = {**summarize(report), "report": shown(report_file)}
    return finish(args, out, result, print_synth)


def print_synth(r: dict) -> None:
    print(f"  {'family':7s} {'device':22s} {'LUT4':>6s} {'FF':>6s} {'DSP':>4s} {'BRAM':>5s} "
          f"{'Fmax MHz':>9s}  fits")
    for fam, s in r["families"].items():
        fmax = f"{s['fmax_mhz']:9.1f}" if s["fmax_mhz"] else f"{'-':>9s}"
        print(f"  {fam:7s} {s['device']:22s} {s['lut']:6d} {s['ff']:6d} {s['dsp']:4d} {s['bram']:5d} "
              f"{fmax}  {s['fits']}")


# ---- dispatch ------------------------------------------------------------------------------

def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        from bench import golden, rtl
        return golden.main([]) or rtl.main([])
    command, rest = argv[0], argv[1:]
    if command in ("-h", "--help"):
        print(__doc__.strip())
        return 0
    if command == "golden":
        from bench.golden import main as run
        return run(rest)
    if command == "rtl":
        from bench.rtl import main as run
        return run(rest)
    if command == "sim":
        try:
            from bench.sim import main as run
        except ModuleNotFoundError as e:
            if e.name != "bench.sim":
                raise
            return fail("python -m bench sim is not available in this checkout (no bench/sim.py)")
        return run(rest)
    if command == "scale":
        from bench.scale import main as run
        return run(rest)
    if command == "cpu":
        from bench.cpu import main as run
        return run(rest)
    if command == "netlist":
        from bench.netlist import main as run
        return run(rest)
    if command == "synth":
        args, extra = synth_parser().parse_known_args(rest)
        return run_command(lambda a: cmd_synth(a, extra), args)
    return fail(f"unknown command {command!r}: one of {', '.join(COMMANDS)} "
                f"(see: python -m bench --help)")


if __name__ == "__main__":
    from model.cli import main_interruptible
    sys.exit(main_interruptible(main))
