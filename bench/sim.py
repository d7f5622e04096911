"""python -m bench sim [--json] [--out FILE.json] [--sim verilator|icarus] [--repeat N] [--limit N] [--cocotb N]

Checked simulation speed: the whole held-out set of the shipped model through the exported
Verilog in batch mode (sim/batch.py: sim/verilog/tb_vectors.v, every h and c code compared in
the HDL, and again in Python from the testbench's dump). ``checked_cycles_per_second`` is
simulated cycles over the CPU time of the simulator process (the best of ``--repeat`` runs):
on a machine shared with other jobs the wall time measures the other jobs too, so the wall
figure (``checked_cycles_per_wall_second``) is reported beside it; the simulator is single-
threaded, so on an idle machine the two agree. The build (cached by design hash) and the
golden model's run are timed separately and not included. ``--cocotb N`` also times the cocotb
testbench on the first N sequences, for comparison. Results also go to build/bench/sim.json
(``--out`` elsewhere).
"""
from __future__ import annotations

import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

from model.cli import ArgumentParser, UsageError, run_command

GOAL = 2_000_000
RESULTS_DIR = Path("build") / "bench"


def build_parser() -> ArgumentParser:
    ap = ArgumentParser(prog="python -m bench sim", description=__doc__.splitlines()[2].strip())
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--out", metavar="FILE.json", help="results file (default build/bench/sim.json)")
    ap.add_argument("--sim", choices=("verilator", "icarus"), default="verilator",
                    help="simulator (default verilator)")
    ap.add_argument("--repeat", type=int, default=3, help="simulation runs, best counts (3)")
    ap.add_argument("--limit", type=int, help="only the first N held-out sequences")
    ap.add_argument("--cocotb", type=int, default=0, metavar="N",
                    help="also time the cocotb testbench on the first N sequences (0: skip)")
    return ap


def _cocotb(cfg, golden, simulator: str, sequences: int) -> dict:
    from sim.runner import run_scenario
    from sim.scenario import Scenario
    warm = Scenario(cfg, golden.qweights)           # builds (or reuses) the cocotb model
    warm.add_sequences(golden.x_raw[:1])
    run_scenario(warm, simulator)
    scenario = Scenario(cfg, golden.qweights)
    scenario.add_sequences(golden.x_raw[:sequences])
    before = resource.getrusage(resource.RUSAGE_CHILDREN)   # the simulator runs cocotb inside
    result = run_scenario(scenario, simulator)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    r = result.results
    return {"sequences": sequences, "compared": r["compared"], "mismatches": r["mismatches"],
            "cycles": r["cycles"], "cpu_seconds": round(cpu, 3),
            "wall_seconds": round(result.seconds, 3),
            "checked_cycles_per_second": round(r["cycles"] / cpu),
            "checked_cycles_per_wall_second": round(r["cycles"] / result.seconds)}


def bench_sim(args) -> dict:
    import numpy as np

    from model.config import load_config
    from model.golden import run_golden
    from model.shipped import DEFAULT_WEIGHTS, load_heldout
    from model.vectors import vectors_of_run
    from model.weights import load_weights
    from sim.batch import run_testbench, run_vectors
    from sim.runner import SimError

    if args.repeat < 1:
        raise UsageError(f"--repeat must be at least 1, not {args.repeat}")
    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit must be at least 1, not {args.limit}")
    cfg, weights = load_config(), load_weights(DEFAULT_WEIGHTS)
    x, labels = load_heldout(weights.n_inputs, weights.head_weight.shape[0])
    x, labels = x[:args.limit], labels[:args.limit]
    start = time.perf_counter()
    golden = run_golden(cfg, weights, x)
    vectors = vectors_of_run(golden)
    golden_seconds = time.perf_counter() - start

    first = run_vectors(vectors, args.sim)      # builds (or finds) the binary; dump checked
    runs = [first.tb]
    for _ in range(args.repeat - 1):
        runs.append(run_testbench(first.extra["executable"], args.sim, first.run_dir,
                                  steps=vectors.n_steps, load=False,
                                  dump=first.run_dir / "received.hex"))
    best = min(runs, key=lambda r: r.cpu_seconds)
    best_wall = min(r.seconds for r in runs)
    tb = first.tb
    passed = first.passed and all(r.passed and r.summary == tb.summary for r in runs)
    if first.h.shape[:1] != (x.shape[0],):
        raise SimError(f"the testbench delivered {len(first.h)} of {vectors.n_steps} outputs; "
                       f"see {first.tb.log}")
    rtl_pred = np.asarray(golden.cell.head(first.h[:, -1]), dtype=object).argmax(axis=1)
    gold_pred = np.asarray(golden.logits_raw, dtype=object).argmax(axis=1)
    out = {
        "simulator": args.sim, "mode": "batch", "passed": passed,
        "compared": tb["compared"], "compared_c": tb["compared_c"],
        "mismatches": tb["mismatches"], "mismatches_dump": first.mismatches_dump,
        "steps": tb["steps"], "sequences": x.shape[0], "cycles": tb["cycles"],
        "cycles_per_step": tb["step_cycles"] / tb["steps"],
        "checked_cycles_per_second": round(tb["cycles"] / max(best.cpu_seconds, 1e-6)),
        "checked_cycles_per_wall_second": round(tb["cycles"] / best_wall),
        "cpu_seconds": round(best.cpu_seconds, 3), "wall_seconds": round(best_wall, 3),
        "cpu_seconds_all": [round(r.cpu_seconds, 3) for r in runs],
        "wall_seconds_all": [round(r.seconds, 3) for r in runs],
        "load_average": list(os.getloadavg()),
        "build_seconds": round(first.build_seconds, 3),
        "golden_and_vectors_seconds": round(golden_seconds, 3),
        "goal_cycles_per_second": GOAL, "goal_met": tb["cycles"] / max(best.cpu_seconds, 1e-6) >= GOAL,
        "accuracy_rtl": float((rtl_pred.astype(int) == labels).mean()),
        "accuracy_golden": float((gold_pred.astype(int) == labels).mean()),
        "machine": {"python": platform.python_version(), "processor": platform.machine()},
    }
    if args.cocotb:
        out["cocotb"] = _cocotb(cfg, golden, args.sim, min(args.cocotb, x.shape[0]))
        out["speedup_over_cocotb"] = round(                 # CPU time against CPU time
            out["checked_cycles_per_second"] / out["cocotb"]["checked_cycles_per_second"], 1)
    return out


def cmd_bench(args) -> int:
    from model.cli import atomic_write, check_target, shown
    if args.out:
        target = check_target(args.out, "--out")
    else:
        target = RESULTS_DIR / "sim.json"
        target.parent.mkdir(parents=True, exist_ok=True)
    out = bench_sim(args)
    out["command"] = "python -m bench sim " + " ".join(args.argv)
    text = json.dumps(out, indent=2) + "\n"
    atomic_write(target, lambda f: f.write(text), mode="w")
    if args.json:
        print(json.dumps(out))
    else:
        verdict = "PASS" if out["passed"] else "FAIL"
        print(f"{verdict}: {out['simulator']} batch, {out['steps']} steps of {out['sequences']} "
              f"held-out sequences, {out['compared']} h and {out['compared_c']} c values "
              f"compared, {out['mismatches']} mismatches")
        print(f"checked: {out['cycles']:,} cycles in {out['cpu_seconds']:.2f} s of simulator CPU "
              f"time = {out['checked_cycles_per_second']:,} cycles/s (best of "
              f"{len(out['cpu_seconds_all'])}; goal {GOAL:,}: "
              f"{'met' if out['goal_met'] else 'NOT met'})")
        print(f"wall: {out['wall_seconds']:.2f} s = {out['checked_cycles_per_wall_second']:,} "
              f"cycles/s at load average {out['load_average'][0]:.1f} on {os.cpu_count()} cores")
        print(f"not included: build {out['build_seconds']:.1f} s, golden model and vectors "
              f"{out['golden_and_vectors_seconds']:.2f} s")
        print(f"accuracy: RTL {out['accuracy_rtl']:.4f}, golden {out['accuracy_golden']:.4f}")
        if "cocotb" in out:
            c = out["cocotb"]
            print(f"cocotb on {c['sequences']} sequences: {c['cycles']:,} cycles in "
                  f"{c['cpu_seconds']:.1f} s of CPU time = {c['checked_cycles_per_second']:,} "
                  f"cycles/s (wall {c['checked_cycles_per_wall_second']:,}); batch is "
                  f"x{out['speedup_over_cocotb']}")
        print(f"wrote {shown(target)}")
    return 0 if out["passed"] else 1


def main(argv=None) -> int:
    from rtl.geometry import RTLError
    from sim.runner import SimError
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    return run_command(cmd_bench, args, expected=(RTLError, SimError))


if __name__ == "__main__":
    sys.exit(main())
