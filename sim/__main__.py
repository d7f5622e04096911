"""python -m sim [--config C] [--weights FILE] [--weights-format F] [--inputs X.npy] [--sim icarus|verilator] [--axis [--axis-width N]] [--waves] [--json]

Runs the exported Verilog against the golden model, every raw integer compared.
With no options: the shipped digits model on its whole held-out set.

Two modes: ``cocotb`` (the cocotb testbench sim/tb_lstm.py, golden model as scoreboard, random
gaps and stalls, waves) and ``batch`` (sim/batch.py: the plain Verilog testbench
sim/verilog/tb_vectors.v on vectors from the golden model, every output compared in the HDL and
again from its dump; about 40x less CPU time than cocotb). Verilator runs without --gap,
--stall or --waves use batch unless --cocotb is given; --fast asks for batch on either
simulator. --axis runs the design behind its AXI4-Stream wrapper (sim/tb_axis.py, cocotbext-axi
drivers; docs/axis.md): it starts blank and the model is loaded through s_axis_load first.
"""
import argparse
import json
import os
import sys

import numpy as np

from model.cli import (ArgumentParser, add_weights_options, load_operands, run_command,
                       note_default_lanes, single_layer)
from model.fixed import FixedPointError
from model.golden import run_golden
from model.weights import LSTMWeights
from rtl.geometry import RTLError

from .runner import SIMULATORS, SimError, run_scenario
from .scenario import Scenario


def build_parser() -> ArgumentParser:
    ap = ArgumentParser(prog="python -m sim", description=__doc__.splitlines()[2])
    ap.add_argument("--config", help="TOML config (default: configs/default.toml)")
    add_weights_options(ap)
    ap.add_argument("--inputs", help="inputs .npy, (B, T, X) or (T, X) (default: held-out digits)")
    ap.add_argument("--labels", help="labels .npy for --inputs (B,), to report RTL accuracy")
    ap.add_argument("--sim", choices=SIMULATORS, default=os.environ.get("SIM") or "icarus",
                    help="simulator (default: $SIM or icarus)")
    ap.add_argument("--lanes", metavar="P", help="MAC lanes P, or P0,P1,... one per layer of a "
                    "stacked model (default: the config's)")
    ap.add_argument("--limit", type=int, help="only the first N sequences")
    ap.add_argument("--serial-output", action="store_true",
                    help="the design with the word-serial h stream (python -m rtl "
                         "--serial-output; one layer only)")
    ap.add_argument("--gap", type=float, default=0.0, help="probability of input idle cycles (0)")
    ap.add_argument("--stall", type=float, default=0.0, help="probability of output ready stalls (0)")
    ap.add_argument("--seed", type=int, default=int(os.environ.get("SEED", 0)), help="random seed")
    ap.add_argument("--waves", action="store_true", help="dump a waveform file and print its path")
    ap.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    ap.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                    help="progress on stderr: a bar on a terminal, else a line every 10%% "
                         "(default: on)")
    ap.add_argument("--axis", action="store_true",
                    help="through the AXI4-Stream wrapper (cocotb mode, cocotbext-axi): the "
                         "design starts blank, the model is loaded through s_axis_load, and "
                         "loaded again halfway while steps run")
    ap.add_argument("--axis-width", type=int, default=32, metavar="N",
                    help="tdata bits with --axis: a power of two from 8 to 1024 (default 32)")
    ap.add_argument("--head-lanes", type=int, default=1, metavar="K",
                    help="the classifier head works on K classes at once (python -m rtl "
                         "--head-lanes; batch mode)")
    ap.add_argument("--logic-lanes", type=int, default=0, metavar="L",
                    help="of the P lanes, the last L multiply in logic (python -m rtl "
                         "--logic-lanes; one-layer models, batch mode)")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--fast", action="store_true",
                      help="batch mode: plain Verilog testbench, checks in the HDL (default on "
                           "Verilator without --gap/--stall/--waves); --gap/--stall are then "
                           "per-cycle probabilities")
    mode.add_argument("--cocotb", action="store_true", help="cocotb mode even where batch is the default")
    return ap


def _load(args):
    if args.labels and not args.inputs:
        raise FixedPointError("--labels goes with --inputs")
    config, stack, x, labels, _ = load_operands(args, want_labels=True, stacked=True)
    if stack.n_layers > 1 and args.serial_output:
        raise FixedPointError("--serial-output is for one layer; a stacked model's layers pass "
                              "whole h vectors to each other")
    note_default_lanes(config, stack, args.lanes)
    if stack.n_layers == 1:
        weights = single_layer(stack, "python -m sim")
        args.lanes = None if args.lanes is None else _one_lane_count(args.lanes)
    else:
        weights = stack
    if args.limit is not None:
        if args.limit < 1:
            raise FixedPointError(f"--limit must be at least 1, not {args.limit}")
        x = x[:args.limit]
        labels = None if labels is None else labels[:args.limit]
    if args.axis and args.serial_output:
        raise FixedPointError("--axis serialises whole results: leave out --serial-output")
    if args.axis_width != 32 and not args.axis:
        raise FixedPointError("--axis-width goes with --axis")
    from rtl.axis import AXIS_WIDTHS
    if args.axis_width not in AXIS_WIDTHS:
        raise FixedPointError(f"--axis-width must be a power of two from 8 to 1024, not "
                              f"{args.axis_width}")
    for name in ("gap", "stall"):
        if not 0 <= getattr(args, name) < 1:
            raise FixedPointError(f"--{name} must be a probability in [0, 1), not {getattr(args, name)}")
    return config, weights, x, labels


def _accuracy(golden, h_last, labels):
    """RTL accuracy: the golden head on the h_T the design produced for each sequence."""
    rtl_pred = np.asarray(golden.cell.head(h_last), dtype=object).argmax(axis=1).astype(int)
    gold_pred = np.asarray(golden.logits_raw, dtype=object).argmax(axis=1).astype(int)
    return float((rtl_pred == labels).mean()), float((gold_pred == labels).mean())


def _batch_mode(args) -> bool:
    if args.axis:
        if args.fast:
            raise FixedPointError("--axis runs under cocotb (leave out --fast)")
        return False
    if args.fast:
        if args.waves:
            raise FixedPointError("--waves needs the cocotb mode (leave out --fast)")
        return True
    return (not args.cocotb and args.sim == "verilator" and not args.waves
            and args.gap == 0 and args.stall == 0)


def _one_lane_count(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise FixedPointError(f"--lanes must be one number P for a one-layer model, not {text!r}") \
            from None


def _print_summary(args, summary: dict, mode: str, timing: str) -> None:
    """One JSON object (``--json``), or the verdict, the counts, the speed and the accuracy."""
    if args.json:
        print(json.dumps(summary))
        return
    verdict = "PASS" if summary["passed"] else "FAIL"
    print(f"{verdict}: {args.sim}, {mode}, {summary['steps']} steps of {summary['sequences']} "
          f"sequences, {summary['compared']} h and {summary['compared_c']} c values compared, "
          f"{summary['mismatches']} mismatches, {summary['missing']} missing")
    if "labels_compared" in summary:
        print(f"classifier head: {summary['logits_compared']} logits and "
              f"{summary['labels_compared']} labels compared, {summary['logits_mismatches']} "
              f"and {summary['labels_mismatches']} mismatches")
    print(f"cycles {summary['cycles']}, {summary['cycles_per_step']:.1f} per step; {timing}, "
          f"build {summary['build_seconds']:.1f} s")
    if "accuracy_rtl" in summary:
        print(f"accuracy: RTL {summary['accuracy_rtl']:.4f}, golden {summary['accuracy_golden']:.4f}")


def cmd_batch(args, config, weights, x, labels) -> int:
    from model.vectors import vectors_of_run
    from rtl.stack import build_design, lanes_per_layer
    from .batch import run_vectors, summary_json
    golden = run_golden(config, weights, x)
    design = build_design(config, golden.stack, lanes=args.lanes,
                          serial_output=args.serial_output, head_lanes=args.head_lanes,
                          logic_lanes=args.logic_lanes)
    lanes = lanes_per_layer(args.lanes, golden.stack.n_layers)
    head = getattr(design, "head", None) is not None
    vectors = vectors_of_run(golden, lanes=None if lanes is None else lanes[-1],
                             serial_output=args.serial_output, head=head)
    result = run_vectors(vectors, args.sim, lanes=args.lanes, gap=round(100 * args.gap),
                         stall=round(100 * args.stall), seed=args.seed, design=design)
    summary = summary_json(result)
    B = x.shape[0]
    summary.update(sequences=B, seed=args.seed)
    if labels is not None and head and len(result.labels) == B:
        summary["accuracy_rtl"] = float(np.mean(np.asarray(result.labels) == labels))
        summary["accuracy_golden"] = _accuracy(golden, golden.layers[-1].fixed["h"][:, -1],
                                               labels)[1]
    elif labels is not None and weights.has_head and result.h.shape[0] == B:
        summary["accuracy_rtl"], summary["accuracy_golden"] = _accuracy(
            golden, result.h[:, -1], labels)
    _print_summary(args, summary, "batch mode (sim/verilog/tb_vectors.v, checks in the HDL)",
                   f"simulation {summary['seconds']:.2f} s ({summary['cycles_per_second']} "
                   f"cycles/s; CPU {summary['cpu_seconds']:.2f} s)")
    for line in result.tb.reports:
        print(f"mismatch: {line}" if line.startswith("mismatch") else line, file=sys.stderr)
    if result.mismatches_dump != result.tb["mismatches"]:
        print(f"error: the testbench counted {result.tb['mismatches']} mismatches but its dump "
              f"holds {result.mismatches_dump}", file=sys.stderr)
    return 0 if result.passed else 1


def _blank(q):
    """Weights of the same sizes, every code zero (what an --axis design starts with)."""
    from model.weights import QuantizedWeights
    return QuantizedWeights(*(np.zeros_like(getattr(q, k)) for k in ("weight_ih", "weight_hh", "bias")),
                            head_weight=None, head_bias=None, overflow={})


def _axis_ops(scenario, golden):
    """Every layer's weights and a zero initial state through the load stream, the first half
    of the sequences, the same weights and state again while the second half runs."""
    from rtl.geometry import Geometry

    def loads(background):
        for k, layer in enumerate(golden.layers):
            g = Geometry(layer.config, layer.qweights, 1)
            zero = np.zeros(g.n_hidden, np.int64)
            scenario.add_weight_load(g.load_packet(layer.qweights), background=background, layer=k)
            scenario.add_state_load(g.state_packet(zero, zero), background=background, layer=k)

    half = (golden.x_raw.shape[0] + 1) // 2
    loads(False)
    scenario.add_sequences(golden.x_raw[:half])
    loads(True)
    if half < golden.x_raw.shape[0]:
        scenario.add_sequences(golden.x_raw[half:], first_sequence=half)


def cmd_sim(args) -> int:
    config, weights, x, labels = _load(args)
    if _batch_mode(args):
        return cmd_batch(args, config, weights, x, labels)
    if args.head_lanes != 1:
        raise FixedPointError("--head-lanes runs in batch mode (add --fast)")
    if args.logic_lanes:
        raise FixedPointError("--logic-lanes runs in batch mode (add --fast)")
    golden = run_golden(config, weights, x)
    layers = [(layer.config, layer.qweights) for layer in golden.layers]
    if args.axis:          # the design starts blank: the model goes in through s_axis_load
        layers = [(cfg, _blank(q)) for cfg, q in layers]
    if isinstance(weights, LSTMWeights):
        scenario = Scenario(*layers[0], seed=args.seed, gap=args.gap, stall=args.stall,
                            serial_output=args.serial_output)
        lanes = args.lanes
        last_q = golden.qweights
    else:       # one cell per layer; the scoreboard follows each layer's own input handshake
        from rtl.stack import lanes_per_layer
        per_layer = lanes_per_layer(args.lanes, len(golden.layers)) or [None] * len(golden.layers)
        scenario = Scenario.stacked([(cfg, q, p) for (cfg, q), p in zip(layers, per_layer)],
                                    seed=args.seed, gap=args.gap, stall=args.stall)
        lanes = None
        last_q = golden.layers[-1].qweights
    if last_q.head_weight is not None and not args.serial_output:   # the head on chip
        scenario.add_head(last_q.head_weight, last_q.head_bias)
    if args.axis:
        _axis_ops(scenario, golden)
    else:
        scenario.add_sequences(golden.x_raw)
    result = run_scenario(scenario, args.sim, waves=args.waves, progress=args.progress,
                          lanes=lanes, axis_width=args.axis_width if args.axis else None)
    r = result.results
    B, T = x.shape[:2]
    summary = {
        "simulator": args.sim, "mode": "cocotb", "passed": result.passed, "compared": r["compared"],
        "compared_c": r["compared_c"], "mismatches": r["mismatches"], "missing": r["missing"],
        "steps": r["steps"], "sequences": B, "cycles": r["cycles"],
        "cycles_per_step": r["cycles_per_step"], "seconds": round(result.seconds, 3),
        "cycles_per_second": round(r["cycles"] / result.seconds) if result.seconds else None,
        "build_seconds": round(result.build_seconds, 3),
        "seed": args.seed, "log": str(result.log),
    }
    if args.axis:
        summary.update(axis_width=args.axis_width, loads=r["loads"], frames=r["frames"])
    if scenario.head is not None:
        summary.update({k: r[k] for k in ("logits_compared", "logits_mismatches",
                                          "labels_compared", "labels_mismatches")})
        summary["passed"] = result.passed
    if labels is not None and scenario.head is not None and r["missing"] == 0:
        emitted = dict(r["received_labels"])
        summary["accuracy_rtl"] = float(np.mean([emitted.get(b, -1) == labels[b] for b in range(B)]))
        summary["accuracy_golden"] = _accuracy(golden, golden.layers[-1].fixed["h"][:, -1],
                                               labels)[1]
    elif labels is not None and weights.has_head and r["missing"] == 0:
        last = {(s, t): h for s, t, *h in r["received_h"]}
        h_last = np.array([last[(b, T - 1)] for b in range(B)], np.int64)
        summary["accuracy_rtl"], summary["accuracy_golden"] = _accuracy(golden, h_last, labels)
    if result.waves:
        summary["waves"] = str(result.waves)
    _print_summary(args, summary, f"cocotb mode, AXI4-Stream {args.axis_width}-bit" if args.axis
                   else "cocotb mode",
                   f"simulation {summary['seconds']:.1f} s ({summary['cycles_per_second']} cycles/s)")
    if result.waves and not args.json:
        print(f"waves: {result.waves}")
    for line in r["reports"]:
        print(f"mismatch: {line}", file=sys.stderr)
    return 0 if result.passed else 1


def main(argv=None) -> int:
    return run_command(cmd_sim, build_parser().parse_args(argv), expected=(RTLError, SimError))


if __name__ == "__main__":
    sys.exit(main())
