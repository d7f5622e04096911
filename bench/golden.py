"""python -m bench golden [--json] [--repeat N] [--out FILE.json]

The bit-accurate golden model against a plain float64 numpy LSTM of the same shape, in the
same process, one BLAS thread for both, best CPU time of N interleaved repeats (CPU time,
not wall clock, so that other processes on a shared machine do not count; the best wall-clock
times are reported too):

- ``notebook``: B=256 sequences, T=28 steps, X=28 inputs, H=128 units (an MNIST row-by-row
  LSTM), random weights (PyTorch's init) and inputs in [0, 1);
- ``shipped``: the shipped digits model on its held-out set (B=540, T=8, X=8, H=32).

The golden run is ``FixedLSTM.run(x_codes, record=("h", "c"))`` (the fused loop; every h and
c code of every step, every overflow counted); the float loop keeps h of every step. Also
timed: the golden run keeping every tensor of every step (the full trace), the step-by-step
loop (``fused=False``: float64 dot products, tables evaluated directly, every tensor kept; what
``run`` did before the fused loop), and the exact path (``path="int"``). Bit-exactness is checked, not assumed: the fused runs must equal the
exact path (int64 dot products, tables evaluated directly) in every recorded integer and
every overflow count, else the command fails.
"""
from __future__ import annotations

import sys

import numpy as np

from bench.common import best_of, finish, machine, parser, target
from model.cli import UsageError, run_command
from model.config import load_config
from model.cell import STATE_TENSORS, FixedLSTM
from model.golden import quantize_inputs
from model.shipped import DEFAULT_WEIGHTS, load_heldout
from model.weights import LSTMWeights, load_weights, quantize_weights

NOTEBOOK = {"B": 256, "T": 28, "X": 28, "H": 128}
LEAN = ("h", "c")


def float_lstm(w: LSTMWeights, x: np.ndarray) -> np.ndarray:
    """The plain float64 LSTM loop the golden model is measured against (h of every step)."""
    B, T, _ = x.shape
    H = w.n_hidden
    w_ih, w_hh, b = w.weight_ih.T, w.weight_hh.T, w.bias
    h, c, out = np.zeros((B, H)), np.zeros((B, H)), np.empty((B, T, H))
    for t in range(T):
        z = x[:, t] @ w_ih + h @ w_hh + b
        i, f, g, o = z[:, :H], z[:, H:2 * H], z[:, 2 * H:3 * H], z[:, 3 * H:]
        c = 1 / (1 + np.exp(-f)) * c + 1 / (1 + np.exp(-i)) * np.tanh(g)
        h = 1 / (1 + np.exp(-o)) * np.tanh(c)
        out[:, t] = h
    return out


def notebook_model(rng) -> tuple[LSTMWeights, np.ndarray]:
    X, H = NOTEBOOK["X"], NOTEBOOK["H"]
    k = 1 / np.sqrt(H)
    w = LSTMWeights(rng.uniform(-k, k, (4 * H, X)), rng.uniform(-k, k, (4 * H, H)),
                    rng.uniform(-k, k, 4 * H))
    return w, rng.uniform(0, 1, (NOTEBOOK["B"], NOTEBOOK["T"], X))


def same(a, b, names) -> bool:
    return all(np.array_equal(a[n], b[n]) for n in names) and dict(a.overflow) == dict(b.overflow)


def measure(name: str, config, weights: LSTMWeights, x: np.ndarray, repeat: int) -> dict:
    qw = quantize_weights(weights, config)
    x_raw, _ = quantize_inputs(config, x)
    fast, exact = FixedLSTM(config, qw), FixedLSTM(config, qw, path="int")
    lean, full, want = fast.run(x_raw, record=LEAN), fast.run(x_raw), exact.run(x_raw)
    checks = {"lean_equals_exact": same(lean, want, LEAN),
              "full_trace_equals_exact": same(full, want, STATE_TENSORS)}
    with np.errstate(over="ignore"):           # exp(-z) of a large negative z is inf: fine
        t, wall = best_of({"golden": lambda: fast.run(x_raw, record=LEAN),
                           "float": lambda: float_lstm(weights, x),
                           "full": lambda: fast.run(x_raw)}, repeat)
    steps = FixedLSTM(config, qw, fused=False)     # the step-by-step loop (the previous run)
    t.update(best_of({"exact": lambda: exact.run(x_raw), "steps": lambda: steps.run(x_raw)},
                     max(1, repeat // 3))[0])
    B, T, X = x.shape
    return {"name": name, "shape": {"B": B, "T": T, "X": X, "H": weights.n_hidden},
            "fused": fast.fused, "golden_seconds": t["golden"], "float_seconds": t["float"],
            "golden_wall_seconds": wall["golden"], "float_wall_seconds": wall["float"],
            "golden_vs_float_time_ratio": t["golden"] / t["float"],
            "full_trace_seconds": t["full"], "full_trace_vs_float_time_ratio": t["full"] / t["float"],
            "step_by_step_seconds": t["steps"],
            "step_by_step_vs_float_time_ratio": t["steps"] / t["float"],
            "exact_path_seconds": t["exact"], "exact_path_vs_float_time_ratio": t["exact"] / t["float"],
            "steps_per_second": B * T / t["golden"],
            "bit_exact": all(checks.values()), "checks": checks}


def build_parser():
    ap = parser("golden", "Golden model speed against a plain float64 numpy LSTM (bit-exactness checked).")
    ap.add_argument("--repeat", type=int, default=7, metavar="N", help="repeats, best kept (default 7)")
    return ap


def cmd_golden(args) -> int:
    if args.repeat < 1:
        raise UsageError(f"--repeat must be at least 1, not {args.repeat}")
    out = target(args, "golden")
    try:
        from threadpoolctl import threadpool_info, threadpool_limits
    except ImportError:
        raise UsageError("python -m bench golden needs threadpoolctl (pip install threadpoolctl, "
                         "or make setup)") from None
    config = load_config()
    shipped = load_weights(DEFAULT_WEIGHTS)
    x_shipped, _ = load_heldout(shipped.n_inputs, shipped.head_weight.shape[0])
    w_nb, x_nb = notebook_model(np.random.default_rng(0))
    with threadpool_limits(limits=1):
        blas = sorted({f"{p['internal_api']} {p['version']} ({p['num_threads']} thread)"
                       for p in threadpool_info() if p.get("user_api") == "blas"})
        shapes = [measure("notebook", config, w_nb, x_nb, args.repeat),
                  measure("shipped", config, shipped, x_shipped, args.repeat)]
    nb = shapes[0]
    result = {"benchmark": "golden", "command": "python -m bench golden",
              "machine": {**machine(), "blas": blas},
              "golden_vs_float_time_ratio": nb["golden_vs_float_time_ratio"],
              "shape": nb["shape"], "golden_seconds": nb["golden_seconds"],
              "float_seconds": nb["float_seconds"],
              "bit_exact": all(s["bit_exact"] for s in shapes), "goal_ratio": 1.5,
              "clock": "CPU time of this process (time.process_time), best of repeat; "
                       "*_wall_seconds: wall clock, best of repeat",
              "repeat": args.repeat, "shapes": shapes}
    finish(args, out, result, print_table)
    if not result["bit_exact"]:
        bad = [f"{s['name']}: {k}" for s in shapes for k, ok in s["checks"].items() if not ok]
        print(f"error: the fast golden path differs from the exact path ({', '.join(bad)})",
              file=sys.stderr)
        return 1
    return 0


def print_table(r: dict) -> None:
    print(f"golden model vs float64 numpy LSTM, one BLAS thread, best CPU time of {r['repeat']} "
          f"({r['machine']['cores']} cores, {r['machine']['cpu']})")
    print(f"  {'shape':34s} {'float':>9s} {'golden':>9s} {'ratio':>6s} {'full trace':>11s} "
          f"{'step loop':>10s} {'exact path':>11s}  bit-exact")
    for s in r["shapes"]:
        d = s["shape"]
        label = f"{s['name']} B={d['B']} T={d['T']} X={d['X']} H={d['H']}"
        print(f"  {label:34s} {s['float_seconds'] * 1e3:7.1f}ms {s['golden_seconds'] * 1e3:7.1f}ms "
              f"{s['golden_vs_float_time_ratio']:5.2f}x {s['full_trace_vs_float_time_ratio']:10.2f}x "
              f"{s['step_by_step_vs_float_time_ratio']:9.2f}x "
              f"{s['exact_path_vs_float_time_ratio']:10.2f}x  {s['bit_exact']}")
    print(f"  golden_vs_float_time_ratio {r['golden_vs_float_time_ratio']:.2f} "
          f"(goal <= {r['goal_ratio']}; golden keeps h and c of every step, float keeps h)")


def main(argv=None) -> int:
    return run_command(cmd_golden, build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
