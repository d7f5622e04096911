"""python -m bench scale [--weights W] [--devices 45k,85k] [--lanes P,P,...] [--logic-lanes L] [--head-lanes K] [--head-multiplier dsp|lut] [--steps T] [--reuse] [--dry-run] [--no-pnr] [--json]

How the design scales with its lane count P on the ECP5 devices: one ``python -m bench.synth``
run per (device, P) (Yosys, then nextpnr at 150 MHz, speed grade 6, out of context), tabled as
LUT4 / flip-flops / DSP / block RAM / Fmax / cycles per step / per-image latency / images per
second. An image is one sequence of T steps (T = 28 for the notebook network: one row of the
28 x 28 image per step); the cell runs one sequence at a time (step t+1 needs h_t), and the
classifier head works on one image's last h while the cell runs the next image, so

    images per second = Fmax / (T * cycles_per_step)
    latency (first x accepted to its label) = (T * cycles_per_step + head latency) / Fmax

(``head latency`` = ``rtl.head.ClassifierHead.latency``: C*H + 7 cycles with one head lane,
about H + 2C + 7 with ``--head-lanes C``; 0 without a head). ``--head-lanes`` and
``--head-multiplier`` choose the head of every row (``python -m rtl --head-lanes``): K
multipliers, in DSP blocks or in logic (``lut``, for the designs that spend every DSP on lanes).
``step_us`` = T * cycles_per_step / Fmax is the time per image of the cell alone.
``--logic-lanes L``: in every row the last L lanes multiply in logic (``python -m rtl
--logic-lanes``), so a row may have more lanes than the device has DSPs, up to 2(X+H).

Before any tool runs, each configuration's DSP and block RAM needs are computed from the design
(``rtl.lanemem.block_count``: a lane's memory is ceil(ceil(4H(X+H)/P) / 1024) DP16KD; DSPs: one
per lane plus the activation and cell-update multipliers); a configuration that cannot fit the
device is listed with the reason and not synthesized. Place and route of an 85F design takes
tens of minutes on a loaded machine: ``--reuse`` takes a configuration's result from an earlier
run's JSON (``--build-dir``) instead of running it again, so the table can be assembled from
runs made one at a time (``--lanes 64 --devices 85k``, ...).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.common import finish, machine, parser, target
from model.cli import UsageError, run_command, shown

NOTEBOOK_WEIGHTS = "data/notebook_lstm.npz"
DEFAULT_DEVICES = ("45k", "85k")
DEFAULT_LANES = (16, 32, 52, 64, 78, 128, 149)
STEPS = 28


def needs(config, stack, lanes: int, head_lanes: int = 1, head_multiplier: str = "dsp",
          logic_lanes: int = 0) -> dict:
    """DSP and block RAM of one cell at P = ``lanes`` (counted from the design, before any
    synthesis): lanes' multipliers (but the ``logic_lanes``) plus those of the activation units
    (a second sigmoid unit when P > X+H) and cell update; each lane's memory in whole DP16KD
    blocks; the head's K multipliers (none in logic) and K memories of ceil(C/K) * H words."""
    from rtl.geometry import Geometry
    from rtl.lanemem import BLOCK_BITS, block_count
    from rtl.top import LSTMCell
    from model.weights import quantize_weights
    weights = quantize_weights(stack.layers[0], config)
    g = Geometry.of(config, weights, lanes, logic_lanes)
    multipliers = 3                                      # f*c, i*g, o*tanh(c)
    pwl = sum(1 for name in ("sigmoid", "tanh", "tanh_c") + ("sigmoid",) * g.wide
              if config.tables[name].method != "plan")
    blocks = block_count(g.issue_cycles) * (1 if g.weight_fmt.bits <= BLOCK_BITS else 2)
    head_dsp, head_latency = 0, 0
    if stack.has_head:
        import numpy as np
        from rtl.head import ClassifierHead
        n_classes, n_hidden = stack.head_weight.shape      # the latency depends on shapes only
        head = ClassifierHead(config, np.zeros((n_classes, n_hidden), int), np.zeros(n_classes, int),
                              multiplier=head_multiplier, lanes=head_lanes)
        head_dsp = head_lanes if head_multiplier == "dsp" else 0
        head_latency = head.latency
        blocks_head = head_lanes * block_count(head.rounds * head.n_hidden)
    else:
        blocks_head = 0
    return {"dsp": lanes - logic_lanes + multipliers + pwl + head_dsp,
            "bram": lanes * blocks + blocks_head, "head_latency": head_latency,
            "words_per_lane": g.issue_cycles, "blocks_per_lane": blocks,
            "cycles_per_step": LSTMCell.cycles_per_step_for(g.n_inputs, g.n_hidden, lanes,
                                                            g.logic_delay)}


def _run_synth(args, device: str, lanes: int, report: Path) -> dict:
    argv = [sys.executable, "-m", "bench.synth", "--weights", args.weights, "--lanes", str(lanes),
            "--device", device, "--head-lanes", str(args.head_lanes),
            "--head-multiplier", args.head_multiplier, "--logic-lanes", str(args.logic_lanes),
            "--json", "--out", str(report),
            "--build-dir", str(Path(args.build_dir) / "synth")]
    if args.no_pnr:
        argv.append("--no-pnr")
    if args.dsp_input_registers:
        argv.append("--dsp-input-registers")
    if args.seed != 1:
        argv += ["--seed", str(args.seed)]
    run = subprocess.run(argv, capture_output=True, text=True)
    if run.returncode:
        lines = (run.stderr or run.stdout).strip().splitlines()
        return {"error": lines[-1] if lines else f"exit status {run.returncode}"}
    return json.loads(run.stdout.strip().splitlines()[-1])


def row(device: str, lanes: int, need: dict, report: dict | None, steps: int, reason=None,
        head=(1, "dsp"), logic_lanes: int = 0) -> dict:
    out = {"device": device, "lanes": lanes, "logic_lanes": logic_lanes,
           "head_lanes": head[0], "head_multiplier": head[1],
           "dsp_needed": need["dsp"], "bram_needed": need["bram"],
           "words_per_lane": need["words_per_lane"], "blocks_per_lane": need["blocks_per_lane"],
           "cycles_per_step": need["cycles_per_step"], "steps": steps}
    if reason:
        return {**out, "fits": False, "reason": reason}
    if "error" in report:
        return {**out, "fits": None, "reason": report["error"]}
    res, fmax = report["resources"], report.get("fmax_mhz")
    cps = report["cycles_per_step"]
    head_latency = report.get("head_latency", need["head_latency"]) or 0
    cell_us = steps * cps / fmax if fmax else None
    latency = (steps * cps + head_latency) / fmax if fmax else None
    cp = (report.get("pnr") or {}).get("critical_path") or {}
    return {**out, "fits": report["fits_device"], "part": report["device"],
            "lut": res["lut4"], "ff": res["ff"], "dsp": res["dsp"], "bram": res["bram"],
            "fmax_mhz": fmax, "cycles_per_step": cps,
            "head_latency": head_latency, "cell_us": cell_us,
            "latency_us": latency, "images_per_s": 1e6 / cell_us if cell_us else None,
            "critical_path": (f"{cp['delay_ns']:.2f} ns: {cp['from']} -> {cp['to']}"
                              if cp else None),
            "report": report.get("_file")}


def cmd_scale(args) -> int:
    out = target(args, "scale")
    from model.cli import load_model
    from bench.synth import ECP5_DEVICES
    from rtl.geometry import RTLError
    devices = [d.strip() for d in args.devices.split(",") if d.strip()]
    for d in devices:
        if d not in ECP5_DEVICES:
            raise UsageError(f"--devices: each must be one of {', '.join(ECP5_DEVICES)}, not {d}")
    try:
        lanes = [int(p) for p in args.lanes.split(",")]
    except ValueError:
        raise UsageError(f"--lanes must be comma-separated integers, not {args.lanes}") from None
    if args.steps < 1:
        raise UsageError(f"--steps must be at least 1, not {args.steps}")
    config, stack = load_model(args)
    if args.head_lanes != 1 or args.head_multiplier != "dsp":
        n_classes = stack.head_weight.shape[0] if stack.has_head else 0
        if not 1 <= args.head_lanes <= n_classes:
            raise UsageError(f"--head-lanes must be from 1 to the model's {n_classes} classes, "
                             f"not {args.head_lanes}" if n_classes else
                             "--head-lanes and --head-multiplier need a model with a classifier head")
    head = (args.head_lanes, args.head_multiplier)
    suffix = (("" if head == (1, "dsp") else f"-head{head[0]}{head[1]}")
              + (f"-L{args.logic_lanes}" if args.logic_lanes else "")
              + ("-dspin" if args.dsp_input_registers else "")
              + (f"-seed{args.seed}" if args.seed != 1 else ""))
    if stack.n_layers != 1:
        raise UsageError("bench scale takes a one-layer model")
    n_columns = stack.layers[0].n_inputs + stack.layers[0].n_hidden
    bad = [p for p in lanes if not 1 <= p <= 2 * n_columns]
    if bad:
        raise UsageError(f"--lanes must be from 1 to 2(X+H) = {2 * n_columns}, not {bad[0]}")
    bad = [p for p in lanes if not 0 <= args.logic_lanes <= p]
    if bad:
        raise UsageError(f"--logic-lanes must be from 0 to the lane count, not {args.logic_lanes} "
                         f"with P = {bad[0]}")
    reports = Path(args.build_dir)
    reports.mkdir(parents=True, exist_ok=True)
    rows = []
    for device in devices:
        dev = ECP5_DEVICES[device]
        for p in lanes:
            try:
                need = needs(config, stack, p, *head, args.logic_lanes)
            except RTLError as e:
                raise UsageError(e) from None
            over = [f"{k} {need[k]} > {dev[k]}" for k in ("dsp", "bram") if need[k] > dev[k]]
            if over:
                rows.append(row(device, p, need, None, args.steps, "needs " + ", ".join(over),
                                head=head, logic_lanes=args.logic_lanes))
                continue
            report_file = reports / f"{device}-P{p}{suffix}.json"
            if args.reuse and report_file.exists():
                report = json.loads(report_file.read_text())
            elif args.dry_run:
                rows.append(row(device, p, need, {"error": "not run (--dry-run)"}, args.steps,
                                head=head, logic_lanes=args.logic_lanes))
                continue
            else:
                if not args.json:
                    print(f"bench scale: {device} P={p} (bench.synth; place and route can take "
                          f"tens of minutes)", flush=True)
                report = _run_synth(args, device, p, report_file)
            report["_file"] = shown(report_file)
            rows.append(row(device, p, need, report, args.steps, head=head,
                            logic_lanes=args.logic_lanes))
    result = {"benchmark": "scale", "command": " ".join(["python -m bench scale", *args.argv]),
              "machine": machine(), "weights": shown(args.weights), "steps": args.steps,
              "target_mhz": 150, "speed_grade": 6,
              "dsp_input_registers": args.dsp_input_registers, "seed": args.seed, "rows": rows}
    return finish(args, out, result, print_scale)


def print_scale(r: dict) -> None:
    print(f"{r['weights']}, T = {r['steps']} steps per image, ECP5 speed grade 6, out of context")
    print(f"  {'device':6s} {'P':>7s} {'head':>6s} {'LUT4':>7s} {'FF':>7s} {'DSP':>4s} {'BRAM':>5s} "
          f"{'Fmax':>7s} {'cyc/step':>8s} {'latency':>10s} {'images/s':>9s}")
    for x in r["rows"]:
        kind = f"{x.get('head_lanes', 1)} {x.get('head_multiplier', 'dsp')}"
        lanes = f"{x['lanes']}" + (f"/{x['logic_lanes']}L" if x.get("logic_lanes") else "")
        head = f"  {x['device']:6s} {lanes:>7s} {kind:>6s}"
        if "lut" not in x:
            what = "does not fit" if x["fits"] is False else "not run"
            print(f"{head}   {what}: {x['reason']} ({x['cycles_per_step']} cycles per step)")
            continue
        fmax = f"{x['fmax_mhz']:7.1f}" if x["fmax_mhz"] else f"{'-':>7s}"
        lat = f"{x['latency_us']:7.1f} us" if x["latency_us"] else f"{'-':>10s}"
        ips = f"{x['images_per_s']:9.0f}" if x["images_per_s"] else f"{'-':>9s}"
        print(f"{head} {x['lut']:7d} {x['ff']:7d} {x['dsp']:4d} {x['bram']:5d} {fmax} "
              f"{x['cycles_per_step']:8d} {lat} {ips}")


def build_parser():
    ap = parser("scale", "Cost, Fmax and per-image latency of the design per ECP5 device and lane "
                         "count (one bench.synth run each).")
    ap.add_argument("--config", metavar="C", help="TOML config (default: configs/default.toml)")
    ap.add_argument("--weights", metavar="W", default=NOTEBOOK_WEIGHTS,
                    help=f"model (default {NOTEBOOK_WEIGHTS}, the notebook network)")
    ap.add_argument("--weights-format", metavar="F",
                    help="read --weights as this format (as python -m model run)")
    ap.add_argument("--devices", default=",".join(DEFAULT_DEVICES),
                    help=f"ECP5 devices (default {','.join(DEFAULT_DEVICES)})")
    ap.add_argument("--lanes", default=",".join(map(str, DEFAULT_LANES)),
                    help=f"lane counts (default {','.join(map(str, DEFAULT_LANES))})")
    ap.add_argument("--logic-lanes", type=int, default=0, metavar="L",
                    help="in every row, the last L lanes multiply in logic, not in DSP blocks "
                         "(default 0)")
    ap.add_argument("--head-lanes", type=int, default=1, metavar="K",
                    help="classes the classifier head works on at once, 1 (default) to C")
    ap.add_argument("--head-multiplier", choices=("dsp", "lut"), default="dsp",
                    help="the head's products in DSP blocks (default) or in logic")
    ap.add_argument("--dsp-input-registers", action="store_true",
                    help="the activation units' and the cell update's multipliers take their "
                         "operands through their input registers (bench.synth "
                         "--dsp-input-registers)")
    ap.add_argument("--seed", type=int, default=1,
                    help="nextpnr placer seed of every row (default 1; report files of other "
                         "seeds end in -seed<S>)")
    ap.add_argument("--steps", type=int, default=STEPS, help=f"steps per image (default {STEPS})")
    ap.add_argument("--no-pnr", action="store_true", help="synthesis only (no Fmax, no latency)")
    ap.add_argument("--dry-run", action="store_true",
                    help="run no tool: what fits each device (and earlier runs, with --reuse)")
    ap.add_argument("--reuse", action="store_true",
                    help="take a configuration's result from --build-dir when it is there")
    ap.add_argument("--build-dir", default="build/bench/scale",
                    help="per-configuration bench.synth reports and work files "
                         "(default build/bench/scale)")
    return ap


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    return run_command(cmd_scale, args)


if __name__ == "__main__":
    sys.exit(main())
