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
from model.weights import LSTMWeights, load_weights, quantize_weights

RESULTS = Path(__file__).resolve().parent / "results"


def _best(fn, repeat: int) -> float:
    """Best wall time of ``repeat`` calls (the least disturbed by a noisy machine)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _paths(cfg, qw, x_raw, repeat: int) -> dict:
    """Both dot-product paths on the same operands, timed in one run (a ratio, not absolutes)."""
    steps = x_raw.shape[0] * x_raw.shape[1]
    out, traces = {"steps": steps}, {}
    h = np.zeros((x_raw.shape[0], qw.n_hidden), np.int64)
    for path in ("float", "int"):
        cell = FixedLSTM(cfg, qw, path=path)
        traces[path] = cell.run(x_raw)
        out[f"run_{path}_s"] = _best(lambda: cell.run(x_raw), repeat)
        out[f"accumulate_{path}_s"] = _best(lambda: cell.accumulate(x_raw[:, 0], h), 5 * repeat)
    out["paths_agree"] = all(np.array_equal(traces["float"][n], traces["int"][n])
                             for n in traces["float"].tensors)
    out["accumulate_speedup"] = out["accumulate_int_s"] / out["accumulate_float_s"]
    out["run_speedup"] = out["run_int_s"] / out["run_float_s"]
    out["steps_per_s"] = steps / out["run_float_s"]
    return out


def bench_model(repeat: int) -> dict:
    """The shipped model on its held-out set, and a larger random model (X=64, H=256)."""
    cfg = load_config()
    weights = load_weights(DEFAULT_WEIGHTS)
    x, _ = load_heldout(weights.n_inputs, weights.head_weight.shape[0])
    shipped = _paths(cfg, quantize_weights(weights, cfg), quantize_inputs(cfg, x)[0], repeat)
    shipped["float_reference_s"] = _best(lambda: float_run(weights, x), repeat)
    shipped["fixed_over_float_reference"] = shipped["run_float_s"] / shipped["float_reference_s"]
    shipped["sequences"] = x.shape[0]
    rng = np.random.default_rng(0)
    X, H = 64, 256
    k = 1 / np.sqrt(H)
    big = LSTMWeights(rng.uniform(-k, k, (4 * H, X)), rng.uniform(-k, k, (4 * H, H)),
                      rng.uniform(-k, k, 4 * H))
    large = _paths(cfg, quantize_weights(big, cfg),
                   quantize_inputs(cfg, rng.normal(0, 1, (64, 16, X)))[0], repeat)
    large["shape"] = {"X": X, "H": H, "B": 64, "T": 16}
    return {"shipped": shipped, "large": large}


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
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["sim"]:                     # python -m bench sim: checked simulation speed
        from .sim import main as sim_main
        return sim_main(argv[1:])
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
    m = results["model"]["shipped"]
    print(f"golden model, shipped model on {m['sequences']} held-out sequences ({m['steps']} steps):")
    print(f"  fixed point, float64 fast path  {m['run_float_s'] * 1e3:8.1f} ms  "
          f"({m['steps_per_s']:,.0f} steps/s; fixed / float reference x{m['fixed_over_float_reference']:.2f})")
    for name, m in results["model"].items():
        print(f"  {name:8s} fast path vs exact int64 path: whole run x{m['run_speedup']:.2f}, "
              f"dot products x{m['accumulate_speedup']:.2f} (bit for bit equal: {m['paths_agree']})")
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
