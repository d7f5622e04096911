"""Train the shipped models: one LSTM layer and a dense classifier head, in numpy.

    python -m model.train [--seed 0] [--epochs N] [--out-dir data/]              # digits, H=32
    python -m model.train --notebook [--seed 0] [--epochs N] [--out-dir data/]   # H=128

Data: scikit-learn's bundled ``load_digits`` (no network). Each 8x8 image is a sequence of
T=8 steps (its rows) of X=8 pixels, scaled to [0, 1] by /16. A fixed stratified split holds
out 30% (540 samples), independent of ``--seed``.

``--notebook`` trains the classic "LSTM on MNIST" notebook's network instead: 28 steps of 28
pixels, H=128, 10 classes. MNIST itself is not bundled, so the same digits are upsampled to
28x28 (bilinear ``scipy.ndimage.zoom`` by 3.5, same split); the model is saved in the
TensorFlow ``BasicLSTMCell`` layout (``kernel`` (156, 512) over [x, h], gate order i, j, f,
o, ``forget_bias`` 1.0, head ``out_weight`` (128, 10) / ``out_bias``), the layout the
notebook's own cell has, so the shipped example goes through ``model.importers.tensorflow``.

The cell is exactly the golden model's float reference, gate order i, f, g, o:

    z = W_ih x_t + W_hh h_{t-1} + b     i, f, o = sigmoid     g = tanh
    c_t = f * c_{t-1} + i * g           h_t = o * tanh(c_t)   logits = W_head h_T + b_head

Forward and backpropagation through time are written out here (vectorised over the batch) and
checked against finite differences in ``tests/test_train.py``. Adam with a cosine learning
rate, decoupled weight decay and global-norm clipping keep the weights well inside the weight
format (Q3.12, |w| < 8). For one seed the run is bit-reproducible: all randomness comes from one
``numpy.random.Generator`` and BLAS is pinned to one thread while training.

Outputs in ``--out-dir``: ``digits_lstm.npz`` (weights, docs/cli.md),
``digits_heldout.npz`` (``x`` (540, 8, 8) float64, ``labels`` (540,) int64) and
``digits_lstm.json`` (how it was trained, and its float and fixed-point held-out accuracy at the
default config); with ``--notebook``: ``notebook_lstm.npz`` (TensorFlow layout),
``notebook_heldout.npz`` (``x`` (540, 28, 28) float32, ``labels``) and ``notebook_lstm.json``.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .activations import reference

__all__ = ["TrainConfig", "load_digits_split", "load_notebook_split", "init_params", "forward", "backward",
           "loss_and_grads", "train", "predict", "PARAM_NAMES", "SPLIT"]

PARAM_NAMES = ("weight_ih", "weight_hh", "bias", "head_weight", "head_bias")
#: The held-out split: fixed, whatever the training seed.
SPLIT = {"test_size": 0.3, "stratify": True, "random_state": 0}
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "data"


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    epochs: int = 120
    hidden: int = 32
    batch_size: int = 32
    lr: float = 1e-2              # peak; cosine decay to lr * lr_final
    lr_final: float = 0.01
    weight_decay: float = 1e-3    # decoupled (AdamW), times lr
    clip_norm: float = 5.0        # global gradient norm
    forget_bias: float = 1.0      # added to b_f at init


# -- data -------------------------------------------------------------------------------------
def load_digits_split():
    """(x_train, y_train, x_heldout, y_heldout): x (N, 8, 8) in [0, 1], y int64."""
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError:
        raise SystemExit("error: training needs scikit-learn (pip install -e '.[train]')") from None
    digits = load_digits()
    x = digits.data.reshape(-1, 8, 8).astype(np.float64) / 16.0   # rows are the time steps
    y = digits.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=SPLIT["test_size"], stratify=y, random_state=SPLIT["random_state"])
    return x_tr, y_tr, x_te, y_te


NOTEBOOK_SIZE = 28


def upsample(images: np.ndarray) -> np.ndarray:
    """(N, 8, 8) images in [0, 1] to (N, 28, 28): bilinear zoom by 3.5, clipped to [0, 1],
    float32 (the held-out file's precision; training sees the same values)."""
    try:
        from scipy.ndimage import zoom
    except ImportError:
        raise SystemExit("error: --notebook needs scipy (pip install -e '.[train]')") from None
    factor = NOTEBOOK_SIZE / images.shape[1]
    out = zoom(images, (1, factor, factor), order=1, grid_mode=True, mode="nearest")
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def load_notebook_split():
    """The digits split of :func:`load_digits_split`, upsampled to 28 steps of 28 pixels."""
    x_tr, y_tr, x_te, y_te = load_digits_split()
    return upsample(x_tr), y_tr, upsample(x_te), y_te


# -- the model --------------------------------------------------------------------------------
def init_params(rng: np.random.Generator, n_inputs: int, n_hidden: int, n_classes: int,
                forget_bias: float = 1.0) -> dict:
    """PyTorch's init, uniform +-1/sqrt(H) (one bias stands for b_ih + b_hh), plus a forget
    gate bias so the cell starts out remembering."""
    H, k = n_hidden, 1.0 / np.sqrt(n_hidden)
    p = {"weight_ih": rng.uniform(-k, k, (4 * H, n_inputs)),
         "weight_hh": rng.uniform(-k, k, (4 * H, H)),
         "bias": rng.uniform(-k, k, 4 * H) + rng.uniform(-k, k, 4 * H),
         "head_weight": rng.uniform(-k, k, (n_classes, H)),
         "head_bias": rng.uniform(-k, k, n_classes)}
    p["bias"][H:2 * H] += forget_bias
    return p


def forward(params: dict, x: np.ndarray):
    """Logits (B, C) for x (B, T, X), zero initial state, and what the backward pass needs."""
    B, T, _ = x.shape
    H = params["weight_hh"].shape[1]
    zx = x @ params["weight_ih"].T + params["bias"]           # (B, T, 4H): input part of z
    h = np.zeros((B, H))
    c = np.zeros((B, H))
    steps = []
    for t in range(T):
        z = zx[:, t] + h @ params["weight_hh"].T
        i, f, o = (reference("sigmoid", z[:, k * H:(k + 1) * H]) for k in (0, 1, 3))
        g = np.tanh(z[:, 2 * H:3 * H])
        c_prev, h_prev = c, h
        c = f * c_prev + i * g
        tanh_c = np.tanh(c)
        h = o * tanh_c
        steps.append((h_prev, c_prev, i, f, g, o, tanh_c))
    logits = h @ params["head_weight"].T + params["head_bias"]
    return logits, (x, steps, h)


def backward(params: dict, cache, d_logits: np.ndarray) -> dict:
    """Gradients of every parameter given dLoss/dlogits (B, C): backpropagation through time."""
    x, steps, h_last = cache
    B, T, _ = x.shape
    H = params["weight_hh"].shape[1]
    grads = {"head_weight": d_logits.T @ h_last, "head_bias": d_logits.sum(0)}
    dh = d_logits @ params["head_weight"]
    dc = np.zeros((B, H))
    dz_all = np.empty((B, T, 4 * H))
    d_whh = np.zeros_like(params["weight_hh"])
    for t in reversed(range(T)):
        h_prev, c_prev, i, f, g, o, tanh_c = steps[t]
        dc = dc + dh * o * (1.0 - tanh_c * tanh_c)            # h = o * tanh(c)
        dz = dz_all[:, t]
        dz[:, 0 * H:1 * H] = dc * g * i * (1.0 - i)           # c = f*c_prev + i*g
        dz[:, 1 * H:2 * H] = dc * c_prev * f * (1.0 - f)
        dz[:, 2 * H:3 * H] = dc * i * (1.0 - g * g)
        dz[:, 3 * H:4 * H] = dh * tanh_c * o * (1.0 - o)
        d_whh += dz.T @ h_prev
        dh = dz @ params["weight_hh"]
        dc = dc * f
    grads["weight_hh"] = d_whh
    grads["weight_ih"] = dz_all.reshape(B * T, 4 * H).T @ x.reshape(B * T, -1)
    grads["bias"] = dz_all.sum((0, 1))
    return grads


def loss_and_grads(params: dict, x: np.ndarray, y: np.ndarray):
    """Mean softmax cross-entropy over the batch, and its gradients."""
    logits, cache = forward(params, x)
    shifted = logits - logits.max(1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(1, keepdims=True))
    rows = np.arange(len(y))
    loss = -log_p[rows, y].mean()
    d_logits = np.exp(log_p)
    d_logits[rows, y] -= 1.0
    return loss, backward(params, cache, d_logits / len(y))


def predict(params: dict, x: np.ndarray) -> np.ndarray:
    return forward(params, x)[0].argmax(1)


# -- training ---------------------------------------------------------------------------------
def _one_blas_thread():
    """Same arithmetic on any core count (threadpoolctl comes with scikit-learn)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def train(x: np.ndarray, y: np.ndarray, cfg: TrainConfig = TrainConfig(), *,
          n_classes: int = 10, log=None) -> dict:
    """Adam on minibatches from one seeded generator; returns the float64 parameters."""
    rng = np.random.default_rng(cfg.seed)
    params = init_params(rng, x.shape[2], cfg.hidden, n_classes, cfg.forget_bias)
    m = {k: np.zeros_like(v) for k, v in params.items()}
    v = {k: np.zeros_like(a) for k, a in params.items()}
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    n_batches = -(-len(x) // cfg.batch_size)
    total, step = cfg.epochs * n_batches, 0
    with _one_blas_thread():
        for epoch in range(cfg.epochs):
            order = rng.permutation(len(x))
            losses = []
            for b in range(n_batches):
                idx = order[b * cfg.batch_size:(b + 1) * cfg.batch_size]
                loss, grads = loss_and_grads(params, x[idx], y[idx])
                losses.append(loss)
                norm = np.sqrt(sum(float((g * g).sum()) for g in grads.values()))
                scale = min(1.0, cfg.clip_norm / (norm + 1e-12))
                lr = cfg.lr * (cfg.lr_final + (1 - cfg.lr_final) * 0.5 *
                               (1 + np.cos(np.pi * step / max(total - 1, 1))))
                step += 1
                for k in params:
                    g = grads[k] * scale
                    m[k] = beta1 * m[k] + (1 - beta1) * g
                    v[k] = beta2 * v[k] + (1 - beta2) * g * g
                    m_hat = m[k] / (1 - beta1 ** step)
                    v_hat = v[k] / (1 - beta2 ** step)
                    params[k] = params[k] * (1 - lr * cfg.weight_decay) - \
                        lr * m_hat / (np.sqrt(v_hat) + eps)
            if log is not None:
                log(f"epoch {epoch + 1:3d}/{cfg.epochs}  loss {np.mean(losses):.4f}  lr {lr:.2e}")
    return params


def weights_digest(params: dict) -> str:
    """sha256 over the parameters' bytes, in PARAM_NAMES order (a reproducibility check)."""
    h = hashlib.sha256()
    for k in PARAM_NAMES:
        h.update(np.ascontiguousarray(params[k], dtype=np.float64).tobytes())
    return h.hexdigest()


def evaluate_fixed(weights, x: np.ndarray, y: np.ndarray) -> dict:
    """Float and fixed-point accuracy at the default config, through the golden model.
    ``weights``: an LSTMWeights, or the parameter dict :func:`train` returns."""
    from .config import load_config
    from .golden import run_golden
    from .weights import LSTMWeights
    if isinstance(weights, dict):
        weights = LSTMWeights(**weights)
    r = run_golden(load_config(), weights, x)
    fixed_pred = np.array([max(range(row.size), key=row.__getitem__) for row in r.logits_raw])
    float_pred = r.logits_float.argmax(1)
    return {"accuracy_float": float((float_pred == y).mean()),
            "accuracy_fixed": float((fixed_pred == y).mean()),
            "disagreements": int((fixed_pred != float_pred).sum()),
            "saturated": {k: int(n) for k, n in r.overflow.items()}}


@dataclass(frozen=True)
class Recipe:
    """One shipped model: its data, its training settings and how its files are written."""

    stem: str              # files <stem>_lstm.npz, <stem>_heldout.npz, <stem>_lstm.json
    data: str              # how the data set is made (for the JSON)
    load: object           # () -> (x_train, y_train, x_heldout, y_heldout)
    train: TrainConfig
    layout: str            # "native" (docs/cli.md's .npz) or "tensorflow" (BasicLSTMCell)
    flag: str = ""         # the command line option that selects it


RECIPES = {
    "digits": Recipe("digits", "sklearn.datasets.load_digits, rows as time steps, /16",
                     load_digits_split, TrainConfig(), "native"),
    "notebook": Recipe("notebook", "sklearn.datasets.load_digits, /16, upsampled to 28x28 "
                       "(scipy.ndimage.zoom, bilinear, x3.5), rows as time steps",
                       load_notebook_split, TrainConfig(hidden=128, epochs=30, lr=5e-3),
                       "tensorflow", " --notebook"),
}


def model_arrays(recipe: Recipe, params: dict) -> dict:
    """The weights file's arrays in the recipe's layout."""
    if recipe.layout == "native":
        return {k: params[k] for k in PARAM_NAMES}
    from .importers.tensorflow import to_arrays
    from .weights import LSTMWeights
    return to_arrays(LSTMWeights(**params), forget_bias=1.0, head_layout="out")


def stored_weights(recipe: Recipe, arrays: dict):
    """The LSTMWeights the project reads back from ``arrays`` (through the importer)."""
    from .weights import LSTMWeights
    if recipe.layout == "native":
        return LSTMWeights(**arrays)
    from .importers.tensorflow import from_arrays
    return from_arrays(arrays).single("evaluation")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m model.train", description=__doc__.split("\n")[0])
    ap.add_argument("--notebook", action="store_true",
                    help="the notebook's network (28x28 digits, H=128, TensorFlow layout)")
    ap.add_argument("--seed", type=int, default=0, help="init and shuffling seed")
    ap.add_argument("--epochs", type=int, help="default: 120 (digits), 30 (--notebook)")
    ap.add_argument("--out-dir", type=Path, default=DEFAULT_OUT, help="default: data/")
    ap.add_argument("--quiet", action="store_true", help="no per-epoch log")
    args = ap.parse_args(argv)
    recipe = RECIPES["notebook" if args.notebook else "digits"]
    if args.epochs is not None and args.epochs < 1:
        ap.error(f"--epochs must be at least 1, not {args.epochs}")
    cfg = replace(recipe.train, seed=args.seed, epochs=args.epochs or recipe.train.epochs)
    say = (lambda s: None) if args.quiet else (lambda s: print(s, file=sys.stderr))

    x_tr, y_tr, x_te, y_te = recipe.load()
    start = time.perf_counter()
    params = train(x_tr, y_tr, cfg, log=say)
    seconds = time.perf_counter() - start
    arrays = model_arrays(recipe, params)
    result = evaluate_fixed(stored_weights(recipe, arrays), x_te, y_te)

    weights_file = args.out_dir / f"{recipe.stem}_lstm.npz"
    try:
        args.out_dir.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(weights_file, **arrays)
        np.savez_compressed(args.out_dir / f"{recipe.stem}_heldout.npz", x=x_te, labels=y_te)
    except OSError as e:
        print(f"error: cannot write to {args.out_dir}: {e}", file=sys.stderr)
        return 1
    B, T, X = x_te.shape
    meta = {
        "model": f"{recipe.stem}_lstm", "data": recipe.data, "layout": recipe.layout,
        "n_inputs": X, "n_hidden": cfg.hidden, "n_classes": 10, "n_steps": T,
        "seed": cfg.seed, "epochs": cfg.epochs, "batch_size": cfg.batch_size,
        "optimizer": {"name": "adam", "lr": cfg.lr, "schedule": "cosine",
                      "lr_final": cfg.lr * cfg.lr_final, "weight_decay": cfg.weight_decay,
                      "clip_norm": cfg.clip_norm, "forget_bias_init": cfg.forget_bias},
        "split": {**SPLIT, "n_train": int(len(y_tr)), "n_heldout": int(len(y_te))},
        "train_accuracy_float": float((predict(params, x_tr) == y_tr).mean()),
        "heldout_accuracy_float": result["accuracy_float"],
        "heldout_accuracy_fixed": result["accuracy_fixed"],
        "heldout_fixed_float_disagreements": result["disagreements"],
        "fixed_config": "configs/default.toml",
        "saturated": result["saturated"],
        "max_abs_weight": float(max(np.abs(params[k]).max() for k in PARAM_NAMES)),
        "weights_sha256": weights_digest(params),
        "train_seconds": round(seconds, 2),
        "numpy": np.__version__,
        "command": f"python -m model.train{recipe.flag} --seed {cfg.seed} --epochs {cfg.epochs}",
    }
    (args.out_dir / f"{recipe.stem}_lstm.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"held-out accuracy float {result['accuracy_float']:.4f} fixed "
          f"{result['accuracy_fixed']:.4f} ({result['disagreements']} disagree), "
          f"max |w| {meta['max_abs_weight']:.3f}, trained in {seconds:.1f} s -> {weights_file}")
    return 0


if __name__ == "__main__":
    from .cli import main_interruptible
    raise SystemExit(main_interruptible(main))
