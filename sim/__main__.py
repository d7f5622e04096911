"""python -m sim [--config C] [--weights W.npz] [--inputs X.npy] [--sim icarus|verilator] [--waves] [--json]

Runs the exported Verilog under cocotb against the golden model, every raw integer compared.
With no options: the shipped digits model on its whole held-out set."""
import json
import os
import sys

import numpy as np

from model.cli import ArgumentParser, load_operands, run_command
from model.fixed import FixedPointError
from model.golden import run_golden
from rtl.geometry import RTLError

from .runner import SIMULATORS, SimError, run_scenario
from .scenario import Scenario


def build_parser() -> ArgumentParser:
    ap = ArgumentParser(prog="python -m sim", description=__doc__.splitlines()[2])
    ap.add_argument("--config", help="TOML config (default: configs/default.toml)")
    ap.add_argument("--weights", help="weights .npz (default: the shipped digits model)")
    ap.add_argument("--inputs", help="inputs .npy, (B, T, X) or (T, X) (default: held-out digits)")
    ap.add_argument("--labels", help="labels .npy for --inputs (B,), to report RTL accuracy")
    ap.add_argument("--sim", choices=SIMULATORS, default=os.environ.get("SIM") or "icarus",
                    help="simulator (default: $SIM or icarus)")
    ap.add_argument("--lanes", type=int, help="MAC lanes P (default: the config's)")
    ap.add_argument("--limit", type=int, help="only the first N sequences")
    ap.add_argument("--gap", type=float, default=0.0, help="probability of input idle cycles (0)")
    ap.add_argument("--stall", type=float, default=0.0, help="probability of output ready stalls (0)")
    ap.add_argument("--seed", type=int, default=int(os.environ.get("SEED", 0)), help="random seed")
    ap.add_argument("--waves", action="store_true", help="dump a waveform file and print its path")
    ap.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    ap.add_argument("--progress", action="store_true", default=None,
                    help="progress bar on stderr (default: when stderr is a terminal)")
    return ap


def _load(args):
    if args.labels and not args.inputs:
        raise FixedPointError("--labels goes with --inputs")
    config, stack, x, labels, _ = load_operands(args, want_labels=True)
    weights = stack.single("python -m sim")      # the RTL is one layer
    if args.limit is not None:
        if args.limit < 1:
            raise FixedPointError(f"--limit must be at least 1, not {args.limit}")
        x = x[:args.limit]
        labels = None if labels is None else labels[:args.limit]
    for name in ("gap", "stall"):
        if not 0 <= getattr(args, name) < 1:
            raise FixedPointError(f"--{name} must be a probability in [0, 1), not {getattr(args, name)}")
    return config, weights, x, labels


def _accuracy(golden, received_h, labels, n_seq, T):
    """RTL accuracy: the golden head on the h_T the design produced for each sequence."""
    last = {(s, t): h for s, t, *h in received_h}
    h_last = np.array([last[(b, T - 1)] for b in range(n_seq)], np.int64)
    rtl_pred = np.asarray(golden.cell.head(h_last), dtype=object).argmax(axis=1).astype(int)
    gold_pred = np.asarray(golden.logits_raw, dtype=object).argmax(axis=1).astype(int)
    return float((rtl_pred == labels).mean()), float((gold_pred == labels).mean())


def cmd_sim(args) -> int:
    config, weights, x, labels = _load(args)
    golden = run_golden(config, weights, x)
    scenario = Scenario(config, golden.qweights, seed=args.seed, gap=args.gap, stall=args.stall)
    scenario.add_sequences(golden.x_raw)
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    result = run_scenario(scenario, args.sim, waves=args.waves, progress=progress, lanes=args.lanes)
    r = result.results
    B, T = x.shape[:2]
    summary = {
        "simulator": args.sim, "passed": result.passed, "compared": r["compared"],
        "compared_c": r["compared_c"], "mismatches": r["mismatches"], "missing": r["missing"],
        "steps": r["steps"], "sequences": B, "cycles": r["cycles"],
        "cycles_per_step": r["cycles_per_step"], "seconds": round(result.seconds, 3),
        "cycles_per_second": round(r["cycles"] / result.seconds) if result.seconds else None,
        "seed": args.seed, "log": str(result.log),
    }
    if labels is not None and weights.has_head and r["missing"] == 0:
        summary["accuracy_rtl"], summary["accuracy_golden"] = _accuracy(
            golden, r["received_h"], labels, B, T)
    if result.waves:
        summary["waves"] = str(result.waves)
    if args.json:
        print(json.dumps(summary))
    else:
        verdict = "PASS" if result.passed else "FAIL"
        print(f"{verdict}: {args.sim}, {summary['steps']} steps of {B} sequences, "
              f"{summary['compared']} h and {summary['compared_c']} c values compared, "
              f"{summary['mismatches']} mismatches, {summary['missing']} missing")
        print(f"cycles {summary['cycles']}, {summary['cycles_per_step']:.1f} per step; "
              f"{summary['seconds']:.1f} s ({summary['cycles_per_second']} cycles/s)")
        if "accuracy_rtl" in summary:
            print(f"accuracy: RTL {summary['accuracy_rtl']:.4f}, golden {summary['accuracy_golden']:.4f}")
        if result.waves:
            print(f"waves: {result.waves}")
    for line in r["reports"]:
        print(f"mismatch: {line}", file=sys.stderr)
    return 0 if result.passed else 1


def main(argv=None) -> int:
    return run_command(cmd_sim, build_parser().parse_args(argv), expected=(RTLError, SimError))


if __name__ == "__main__":
    sys.exit(main())
