"""python -m deploy run --port PORT [--config C] [--weights W] [--inputs X] [--labels Y] [--limit N] [--json] [--out FILE.json]

The host driver: checks the board's design identity against the model, loads the weights,
streams every sequence, compares every returned code with the golden model, and reports
accuracy, on-chip cycles per sequence and images per second of compute and of the link.
PORT: /dev/ttyUSB0, socket://host:port, or `sim` to start the simulated board."""
from __future__ import annotations

import contextlib
import json
import sys
import time

import numpy as np

from model.cli import (ArgumentParser, add_weights_options, atomic_write, check_target,
                       load_operands, run_command)
from model.fixed import FixedPointError
from model.golden import run_golden
from rtl.geometry import RTLError
from sim.runner import SimError

from . import protocol as p
from .check import Comparison, compare, predictions
from .host import DEFAULT_TIMEOUT, Board, BoardError
from .simboard import add_fast_build

__all__ = ["build_parser", "main", "Progress"]

SIM_REPLY_TIMEOUT = 600.0       # seconds: Verilator runs the board at ~0.2 M cycles/s


def build_parser() -> ArgumentParser:
    ap = ArgumentParser(prog="python -m deploy run",
                        description=" ".join(__doc__.split("\n\n")[1].split()))
    ap.add_argument("--port", required=True,
                    help="the board: /dev/ttyUSB0, socket://host:port, or sim (start the "
                         "simulated board of --board)")
    ap.add_argument("--config", help="TOML config (default: configs/default.toml)")
    add_weights_options(ap)
    ap.add_argument("--inputs", help="inputs .npy (B, T, X) or a data set .npz (default: the "
                                     "held-out digits)")
    ap.add_argument("--labels", help="labels .npy for --inputs (B,), for accuracy")
    ap.add_argument("--limit", type=int, help="only the first N sequences")
    ap.add_argument("--baud", type=int, default=p.DEFAULT_BAUD,
                    help=f"serial baud rate (default {p.DEFAULT_BAUD}; ignored by socket://)")
    ap.add_argument("--timeout", type=float,
                    help=f"seconds a reply may take (default {DEFAULT_TIMEOUT:g}; with --port "
                         f"sim {SIM_REPLY_TIMEOUT:g}: a simulated batch takes long)")
    ap.add_argument("--no-batch", action="store_true",
                    help="skip the on-chip batch (LOAD_BATCH + RUN_BATCH) compute measurement")
    ap.add_argument("--board", default="ulx3s-25f",
                    help="with --port sim: the board whose top is simulated (default ulx3s-25f)")
    ap.add_argument("--lanes", type=int, help="with --port sim: MAC lanes P (default: the config's)")
    add_fast_build(ap)
    ap.add_argument("--json", action="store_true", help="print one JSON object on stdout "
                                                        "(no progress bar)")
    ap.add_argument("--out", metavar="FILE.json", help="also write the JSON object to this file")
    return ap


class Progress:
    """Sequences done, on stderr: a bar on a terminal, else a line every 10 % (after 3 s)."""

    def __init__(self, label: str, enabled: bool = True):
        self.label, self.enabled = label, enabled
        self.bar = sys.stderr.isatty()
        self.start = time.monotonic()
        self.next_line = 10
        self.shown = False

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        elapsed = time.monotonic() - self.start
        rate = done / elapsed if elapsed > 0 else 0.0
        if self.bar:
            fill = 30 * done // max(total, 1)
            sys.stderr.write(f"\r{self.label} [{'#' * fill}{'.' * (30 - fill)}] {done}/{total} "
                             f"sequences ({rate:.1f}/s)")
            sys.stderr.flush()
            self.shown = True
            return
        percent = 100 * done // max(total, 1)
        if elapsed >= 3 and percent >= self.next_line:
            print(f"{self.label}: {percent}% ({done}/{total} sequences, {rate:.1f}/s)",
                  file=sys.stderr, flush=True)
            self.next_line = (percent // 10 + 1) * 10

    def close(self) -> None:
        if self.shown:
            sys.stderr.write("\r" + " " * 78 + "\r")
            sys.stderr.flush()


def _operands(args):
    if args.labels and not args.inputs:
        raise FixedPointError("--labels goes with --inputs")
    config, model, x, labels, _ = load_operands(args, want_labels=True, stacked=True)
    if args.limit is not None:
        if args.limit < 1:
            raise FixedPointError(f"--limit must be at least 1, not {args.limit}")
        x = x[:args.limit]
        labels = None if labels is None else labels[:args.limit]
    if args.timeout is None:
        args.timeout = SIM_REPLY_TIMEOUT if args.port == "sim" else DEFAULT_TIMEOUT
    if args.timeout <= 0:
        raise FixedPointError(f"--timeout must be positive, not {args.timeout}")
    return config, model, x, labels


@contextlib.contextmanager
def _port(args, config, model):
    """The URL to open: PORT itself, or a simulated board started (and ended) here."""
    if args.port != "sim":
        yield args.port
        return
    from .simboard import serve
    with serve(args.board, config, model, lanes=args.lanes, quiet=args.json,
               optimize=not args.fast_build) as board:
        yield board.url


def line_bound(info: p.Info, codes_per_sequence: int) -> float:
    """Images per second the line itself allows at the board's baud: request and reply frames
    of one sequence at 10 bits per byte (start, 8 data, stop), compute taken as free."""
    request = p.REQUEST_HEADER + p.RUN_HEADER + p.packed_bytes(codes_per_sequence, info.x_bits) \
        + p.CRC_BYTES
    reply = p.REPLY_HEADER + p.CYCLES_BYTES + p.result_bytes(info, info.has_head) + p.CRC_BYTES
    return info.baud / 10 / (request + reply)


def cmd_run(args) -> int:
    out = check_target(args.out, "--out") if args.out else None
    config, model, x, labels = _operands(args)
    golden = run_golden(config, model, x)
    comparison = Comparison()
    with _port(args, config, model) as url, \
            Board(url, config=config, baud=args.baud, timeout=args.timeout) as board:
        info = board.check(model)
        frames = board.load(model)
        progress = Progress("deploy run", enabled=not args.json)
        try:
            streamed = board.run(x, progress=progress)
        finally:
            progress.close()
        compare(golden, {k: v for k, v in streamed.items() if k not in ("cycles", "seconds")},
                0, comparison)
        batch = None
        if not args.no_batch and board.batch_capacity(board.x_codes(x)):
            batch = board.run_batch(x)
            compare(golden, {k: v for k, v in batch.items() if k not in ("cycles", "sequences")},
                    0, batch_comparison := Comparison())
            comparison.compared.update({f"batch_{k}": v for k, v in batch_comparison.compared.items()})
            comparison.mismatches.update({f"batch_{k}": v for k, v in batch_comparison.mismatches.items()})
            comparison.reports += [f"batch: {r}" for r in batch_comparison.reports]
    summary = _summary(args, info, golden, labels, streamed, batch, comparison, frames,
                       x.shape[1] * x.shape[2])
    _print(args, summary, comparison)
    if out is not None:
        atomic_write(out, lambda f: f.write(json.dumps(summary, indent=1) + "\n"), mode="w")
    return 0 if comparison.passed else 1


def _summary(args, info, golden, labels, streamed, batch, comparison, frames, codes) -> dict:
    B = len(streamed["cycles"])
    cycles = float(np.mean(streamed["cycles"]))
    summary = {
        "port": args.port, **({"board": args.board} if args.port == "sim" else {}),
        "passed": comparison.passed, "sequences": B,
        "mismatches": comparison.total_mismatches,
        **{f"{k}_compared": v for k, v in comparison.compared.items()},
        **{f"{k}_mismatches": v for k, v in comparison.mismatches.items()},
        "cycles_per_sequence": cycles, "clock_hz": info.clock_hz, "baud": info.baud,
        "weight_frames": frames,
        "images_per_second_link": B / streamed["seconds"] if streamed["seconds"] else None,
        "images_per_second_line": line_bound(info, codes),
        "seconds": round(streamed["seconds"], 3),
    }
    if batch is not None:
        summary.update(batch_sequences=batch["sequences"], batch_cycles=batch["cycles"],
                       images_per_second_compute=info.clock_hz * batch["sequences"] / batch["cycles"])
    else:           # no batch: the RUN replies' own cycle counts (compute, without the link)
        summary["images_per_second_compute"] = info.clock_hz / cycles
    if labels is not None and golden.logits_raw is not None:
        board_pred = streamed["labels"] if "labels" in streamed else \
            predictions(golden.cell.head(streamed["h"]))
        summary["accuracy_board"] = float((board_pred == labels).mean())
        summary["accuracy_golden"] = float((predictions(golden.logits_raw) == labels).mean())
    return summary


def _print(args, summary: dict, comparison: Comparison) -> None:
    for line in comparison.reports:
        print(f"mismatch: {line}", file=sys.stderr)
    if args.json:
        print(json.dumps(summary))
        return
    kinds = ", ".join(f"{k} {v}" for k, v in comparison.compared.items())
    verdict = "PASS" if summary["passed"] else "FAIL"
    print(f"{verdict}: {summary['sequences']} sequences on {args.port}, codes compared: {kinds}; "
          f"{summary['mismatches']} mismatches")
    if "accuracy_board" in summary:
        print(f"accuracy: board {summary['accuracy_board']:.4f}, "
              f"golden {summary['accuracy_golden']:.4f}")
    mhz = summary["clock_hz"] / 1e6
    print(f"on chip: {summary['cycles_per_sequence']:.0f} cycles per sequence, "
          f"{summary['images_per_second_compute']:.1f} images/s of compute at {mhz:g} MHz"
          + (f" (batch of {summary['batch_sequences']}: {summary['batch_cycles']} cycles)"
             if "batch_cycles" in summary else ""))
    where = " (the simulation's wall time, not a board's)" if args.port == "sim" else ""
    print(f"link: {summary['images_per_second_link']:.1f} images/s measured{where} "
          f"({summary['seconds']:.2f} s), {summary['images_per_second_line']:.1f} images/s "
          f"the line allows at {summary['baud']} baud")


def main(argv=None) -> int:
    return run_command(cmd_run, build_parser().parse_args(argv),
                       expected=(BoardError, RTLError, SimError))
