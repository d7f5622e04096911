"""python -m bench [--quick] [--out bench/results/latest.json]

Benchmarks (not tests): the golden model's speed on the shipped model and held-out data
(float64-BLAS fast path against exact integer path, as a ratio measured in one run), table
generation, and the simulators' speed on the default design. Prints a table and writes JSON.
"""
import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

from model.activations import build_table
from model.config import load_config
from model.golden import quantize_inputs
from model.cell import FixedLSTM, float_run
from model.shipped import DEFAULT_WEIGHTS, load_heldout
from model.weights import load_weights, quantize_weights

RESULTS = Path(__file__).resolve().parent / "results"


def _best(fn, repeat: int) -> float:
    """Best wall time of ``repeat`` calls (the least disturbed by a noisy machine)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_model(repeat: int) -> dict:
    cfg = load_config()
    weights = load_weights(DEFAULT_WEIGHTS)
    x, _ = load_heldout(weights.n_inputs, weights.head_weight.shape[0])
    qw = quantize_weights(weights, cfg)
    x_raw, _ = quantize_inputs(cfg, x)
    steps = x.shape[0] * x.shape[1]
    out = {"sequences": x.shape[0], "steps": steps}
    traces = {}
    for path in ("float", "int"):
        cell = FixedLSTM(cfg, qw, path=path)
        traces[path] = cell.run(x_raw)
        out[f"fixed_{path}_s"] = _best(lambda: cell.run(x_raw), repeat)
    out["float_reference_s"] = _best(lambda: float_run(weights, x), repeat)
    out["paths_agree"] = all(np.array_equal(traces["float"][n], traces["int"][n])
                             for n in traces["float"].tensors)
    out["fast_path_speedup"] = out["fixed_int_s"] / out["fixed_float_s"]
    out["fixed_steps_per_s"] = steps / out["fixed_float_s"]
    out["fixed_over_float_reference"] = out["fixed_float_s"] / out["float_reference_s"]
    return out


def bench_tables() -> dict:
    cfg = load_config()
    out = {}
    for name, spec in cfg.tables.items():
        build_table.cache_clear()
        start = time.perf_counter()
        table = build_table(spec)
        out[name] = {"seconds": time.perf_counter() - start, "segments": table.segments,
                     "max_abs_err": table.max_abs_err(), "index_entries": len(table.index)}
    return out


def bench_sim(simulator: str, sequences: int) -> dict:
    from model.golden import run_golden
    from sim.runner import run_scenario
    from sim.scenario import Scenario

    cfg = load_config()
    weights = load_weights(DEFAULT_WEIGHTS)
    x, _ = load_heldout(weights.n_inputs, weights.head_weight.shape[0])
    golden = run_golden(cfg, weights, x[:sequences])
    scenario = Scenario(cfg, golden.qweights)
    scenario.add_sequences(golden.x_raw)
    warm = Scenario(cfg, golden.qweights)       # builds (or reuses) the simulator model
    warm.add_sequences(golden.x_raw[:1])
    run_scenario(warm, simulator)
    result = run_scenario(scenario, simulator)
    r = result.results
    return {"steps": r["steps"], "cycles": r["cycles"], "seconds": result.seconds,
            "cycles_per_s": r["cycles"] / result.seconds, "cycles_per_step": r["cycles_per_step"],
            "mismatches": r["mismatches"]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[2])
    ap.add_argument("--quick", action="store_true", help="fewer repeats, fewer simulated steps")
    ap.add_argument("--no-sim", action="store_true", help="skip the simulator benchmarks")
    ap.add_argument("--out", default=str(RESULTS / "latest.json"), help="JSON results file")
    args = ap.parse_args(argv)
    results = {"machine": {"python": platform.python_version(), "processor": platform.machine(),
                           "numpy": np.__version__},
               "model": bench_model(2 if args.quick else 5), "tables": bench_tables()}
    if not args.no_sim:
        results["sim"] = {"icarus": bench_sim("icarus", 2 if args.quick else 10),
                          "verilator": bench_sim("verilator", 20 if args.quick else 540)}
    m = results["model"]
    print(f"golden model, {m['sequences']} sequences x {m['steps'] // m['sequences']} steps (shipped model):")
    print(f"  fixed point, float64 fast path  {m['fixed_float_s'] * 1e3:8.1f} ms  "
          f"({m['fixed_steps_per_s']:,.0f} steps/s)")
    print(f"  fixed point, exact int64 path   {m['fixed_int_s'] * 1e3:8.1f} ms  "
          f"(fast path x{m['fast_path_speedup']:.2f}; paths agree bit for bit: {m['paths_agree']})")
    print(f"  float64 reference               {m['float_reference_s'] * 1e3:8.1f} ms  "
          f"(fixed / float x{m['fixed_over_float_reference']:.2f})")
    print("activation tables (generation, exhaustive error):")
    for name, t in results["tables"].items():
        print(f"  {name:7s} {t['seconds']:6.2f} s  {t['segments']:3d} segments  "
              f"{t['index_entries']:4d} index entries  max abs err {t['max_abs_err']:.3e}")
    for name, s in results.get("sim", {}).items():
        print(f"{name}: {s['steps']} steps, {s['cycles']:,} cycles in {s['seconds']:.1f} s = "
              f"{s['cycles_per_s']:,.0f} cycles/s ({s['cycles_per_step']:.0f} cycles/step, "
              f"{s['mismatches']} mismatches)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
