"""python -m bench cpu [--json] [--out FILE.json] [--backend auto|numpy|torch|all] [--images N] [--batch B] [--repeat R]

What a user would run instead of the FPGA: the notebook's network (LSTM(28, 128) + Linear(128,
10) over T=28 rows of a 28x28 digit: data/notebook_lstm.npz on data/notebook_heldout.npz) on
one CPU core, in float32, per image at batch 1 (latency) and batched (throughput).

Backends:
  torch   torch.nn.LSTM + torch.nn.Linear (eval, inference_mode, torch.set_num_threads(1)),
          measured when torch is importable. torch is not a dependency of this project (it is
          several GB with its CUDA libraries): install it into a separate environment to measure.
  numpy   the same network in float32 numpy: x W_ih^T for all 28 steps in one product, then
          h W_hh^T per step, the gates, the head; BLAS on one thread. This is an equivalent
          implementation, not PyTorch, and is labelled as such.
``auto`` (default) measures torch when it is importable and numpy always.

One core: the command runs the measurement in a child process with OMP_NUM_THREADS,
OPENBLAS_NUM_THREADS, MKL_NUM_THREADS and the like set to 1 (they must be set before numpy or
torch load), and torch also gets torch.set_num_threads(1). Each figure is the best of
``--repeat`` rounds of CPU time of the process (a round at batch 1 runs ``--images`` images one
by one; batched runs the first ``--batch`` held-out images in one call); wall time is reported
beside it. Every backend's logits are checked against the project's float64 reference of the
same network (model/cell.py), so the figures time the right network.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np

from bench.common import finish, parser, target
from model.cli import UsageError, run_command

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
CHILD = "BENCH_CPU_CHILD"
#: logits of a float32 backend against the float64 reference: the bound checked
LOGIT_TOLERANCE = 1e-3


def build_parser():
    ap = parser("cpu", "The notebook network (LSTM(28,128)+Linear, T=28) on one CPU core, "
                       "float32, per image at batch 1 and batched.")
    ap.add_argument("--backend", choices=("auto", "numpy", "torch", "all"), default="auto",
                    help="auto: torch when importable, and numpy (default); all: both, torch "
                         "required")
    ap.add_argument("--images", type=int, default=200,
                    help="images run one by one per round at batch 1 (default 200)")
    ap.add_argument("--batch", type=int, default=540,
                    help="images in the batched call (default 540, the held-out set)")
    ap.add_argument("--repeat", type=int, default=5, help="rounds, best counts (default 5)")
    return ap


# ---- the network ---------------------------------------------------------------------------

def load_network():
    """The notebook model (PyTorch gate order, float64) and its held-out inputs (N, 28, 28)."""
    from model.importers import load_model_file
    from model.shipped import DATA_DIR
    from model.weights import load_dataset
    weights = load_model_file(DATA_DIR / "notebook_lstm.npz").single("python -m bench cpu")
    x, _ = load_dataset(DATA_DIR / "notebook_heldout.npz")
    return weights, np.asarray(x, np.float32)


def reference_logits(weights, x) -> np.ndarray:
    from model.cell import float_head, float_run
    return float_head(weights, float_run(weights, x)["h"][:, -1])


class NumpyLSTM:
    """LSTM + Linear in float32 numpy (gate order i, f, g, o)."""

    name = "numpy float32 (equivalent implementation, not PyTorch)"

    def __init__(self, weights):
        self.w_ih_t = np.ascontiguousarray(weights.weight_ih.T, np.float32)
        self.w_hh_t = np.ascontiguousarray(weights.weight_hh.T, np.float32)
        self.bias = weights.bias.astype(np.float32)
        self.head_t = np.ascontiguousarray(weights.head_weight.T, np.float32)
        self.head_bias = weights.head_bias.astype(np.float32)
        self.H = weights.n_hidden

    def __call__(self, x: np.ndarray) -> np.ndarray:
        B, T, X = x.shape
        H = self.H
        zx = (x.reshape(B * T, X) @ self.w_ih_t + self.bias).reshape(B, T, 4 * H)
        h = np.zeros((B, H), np.float32)
        c = np.zeros((B, H), np.float32)
        for t in range(T):
            z = zx[:, t] + h @ self.w_hh_t
            ifo = 1.0 / (1.0 + np.exp(-z[:, np.r_[0:2 * H, 3 * H:4 * H]]))
            g = np.tanh(z[:, 2 * H:3 * H])
            c = ifo[:, H:2 * H] * c + ifo[:, :H] * g
            h = ifo[:, 2 * H:] * np.tanh(c)
        return h @ self.head_t + self.head_bias


class TorchLSTM:
    """torch.nn.LSTM(28, 128, batch_first) + torch.nn.Linear(128, 10), float32, eval."""

    def __init__(self, weights):
        import torch
        torch.set_num_threads(1)
        self.torch = torch
        self.name = f"PyTorch {torch.__version__} nn.LSTM + nn.Linear, float32"
        H = weights.n_hidden
        self.lstm = torch.nn.LSTM(weights.n_inputs, H, batch_first=True)
        self.head = torch.nn.Linear(H, weights.head_weight.shape[0])
        with torch.no_grad():
            self.lstm.weight_ih_l0.copy_(torch.from_numpy(weights.weight_ih.astype(np.float32)))
            self.lstm.weight_hh_l0.copy_(torch.from_numpy(weights.weight_hh.astype(np.float32)))
            self.lstm.bias_ih_l0.copy_(torch.from_numpy(weights.bias.astype(np.float32)))
            self.lstm.bias_hh_l0.zero_()
            self.head.weight.copy_(torch.from_numpy(weights.head_weight.astype(np.float32)))
            self.head.bias.copy_(torch.from_numpy(weights.head_bias.astype(np.float32)))
        self.lstm.eval()
        self.head.eval()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        with self.torch.inference_mode():
            out, _ = self.lstm(self.torch.from_numpy(x))
            return self.head(out[:, -1]).numpy()


# ---- timing --------------------------------------------------------------------------------

def _best(fn, repeat: int) -> tuple[float, float]:
    """Best CPU time and best wall time of ``fn()`` over ``repeat`` rounds."""
    cpu, wall = [], []
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    return min(cpu), min(wall)


def measure(net, x: np.ndarray, reference: np.ndarray, *, images: int, batch: int,
            repeat: int) -> dict:
    singles = [x[k:k + 1] for k in range(images)]
    net(singles[0])                                   # warm up (allocations, first calls)
    one_cpu, one_wall = _best(lambda: [net(s) for s in singles], repeat)
    many = np.ascontiguousarray(x[:batch])
    net(many)
    b_cpu, b_wall = _best(lambda: net(many), repeat)
    logits = net(many)
    err = float(np.abs(logits - reference[:batch]).max())
    agree = float((logits.argmax(1) == reference[:batch].argmax(1)).mean())
    return {
        "backend": net.name,
        "batch1_us_per_image": 1e6 * one_cpu / images,
        "batch1_images_per_s": images / one_cpu,
        "batch1_wall_us_per_image": 1e6 * one_wall / images,
        "batch": batch,
        "batched_us_per_image": 1e6 * b_cpu / batch,
        "batched_images_per_s": batch / b_cpu,
        "batched_wall_us_per_image": 1e6 * b_wall / batch,
        "logits_max_abs_err_vs_float64": err,
        "argmax_agreement_vs_float64": agree,
    }


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


# ---- the command ---------------------------------------------------------------------------

def cmd_cpu(args) -> int:
    out = target(args, "cpu")
    for name in ("images", "batch", "repeat"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name} must be at least 1, not {getattr(args, name)}")
    weights, x = load_network()
    if args.images > len(x) or args.batch > len(x):
        raise UsageError(f"--images and --batch must be at most {len(x)} (the held-out images)")
    has_torch = torch_available()
    if args.backend in ("torch", "all") and not has_torch:
        raise UsageError("--backend torch needs torch, which is not importable here (it is not "
                         "a dependency of this project: pip install torch into a separate "
                         "environment to measure it)")
    nets = []
    if args.backend in ("torch", "all") or (args.backend == "auto" and has_torch):
        nets.append(TorchLSTM(weights))
    if args.backend in ("numpy", "all", "auto"):
        nets.append(NumpyLSTM(weights))
    reference = reference_logits(weights, x[:max(args.images, args.batch)].astype(np.float64))
    results = [measure(net, x, reference, images=args.images, batch=args.batch,
                       repeat=args.repeat) for net in nets]
    bad = [r["backend"] for r in results if r["logits_max_abs_err_vs_float64"] > LOGIT_TOLERANCE]
    if bad:
        raise UsageError(f"{', '.join(bad)}: logits differ from the float64 reference by more "
                         f"than {LOGIT_TOLERANCE:g}: not the same network")
    from bench.common import machine
    result = {
        "benchmark": "cpu", "command": "python -m bench cpu " + " ".join(args.argv),
        "network": {"n_inputs": weights.n_inputs, "n_hidden": weights.n_hidden,
                    "n_classes": int(weights.head_weight.shape[0]), "steps": int(x.shape[1]),
                    "weights": "data/notebook_lstm.npz", "inputs": "data/notebook_heldout.npz"},
        "threads": {v: os.environ.get(v) for v in THREAD_VARIABLES},
        "torch_importable": has_torch, "repeat": args.repeat, "images": args.images,
        "backends": results, "machine": machine(),
        "logit_tolerance": LOGIT_TOLERANCE,
    }
    return finish(args, out, result, print_table)


def print_table(r: dict) -> None:
    n = r["network"]
    print(f"LSTM({n['n_inputs']}, {n['n_hidden']}) + Linear({n['n_hidden']}, {n['n_classes']}), "
          f"T={n['steps']}, on one core of {r['machine']['cpu']} (CPU time, best of {r['repeat']})")
    print(f"  {'backend':52s} {'batch 1 us/image':>16s} {'img/s':>8s}   "
          f"{'batch':>5s} {'us/image':>9s} {'img/s':>8s}")
    for b in r["backends"]:
        print(f"  {b['backend']:52s} {b['batch1_us_per_image']:16.1f} "
              f"{b['batch1_images_per_s']:8.0f}   {b['batch']:5d} {b['batched_us_per_image']:9.2f} "
              f"{b['batched_images_per_s']:8.0f}")
    if not r["torch_importable"]:
        print("  (torch is not importable here: numpy only; see python -m bench cpu --help)")


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if os.environ.get(CHILD) != "1":
        # one core: the thread limits must be in the environment before numpy/torch load
        env = dict(os.environ, **{v: "1" for v in THREAD_VARIABLES}, **{CHILD: "1"})
        return subprocess.run([sys.executable, "-m", "bench.cpu", *argv], env=env).returncode
    args = build_parser().parse_args(argv)
    args.argv = argv
    return run_command(cmd_cpu, args)


if __name__ == "__main__":
    sys.exit(main())
