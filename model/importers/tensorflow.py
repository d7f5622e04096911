"""TensorFlow 1 ``BasicLSTMCell`` / ``LSTMCell`` weights (the classic notebook's cell) from an ``.npz``.

TensorFlow keeps one cell's weights as two variables: ``kernel`` (X+H, 4H), which multiplies
the concatenation [x_t, h_{t-1}] from the right, and ``bias`` (4H). Its column blocks are the
gates in the order **i, j, f, o** (j is the candidate, our g), and the cell adds a constant
``forget_bias`` (default 1.0) to the f pre-activation that is not stored in any variable::

    i, j, f, o = split([x, h] @ kernel + bias, 4)
    c = c * sigmoid(f + forget_bias) + sigmoid(i) * tanh(j)      h = tanh(c) * sigmoid(o)

The import is exact: W_ih = kernel[:X].T and W_hh = kernel[X:].T with their row blocks
reordered to i, f, g, o, and ``forget_bias`` is folded into the f block of the bias.

Keys of the ``.npz`` (all float arrays):

* one layer: ``kernel`` (X+H, 4H), ``bias`` (4H);
* stacked layers (``MultiRNNCell``): ``kernel_0``, ``bias_0``, ``kernel_1``, ... or TensorFlow's
  own variable names ``.../cell_0/basic_lstm_cell/kernel``, ``.../cell_0/basic_lstm_cell/bias``,
  ... (any prefix; also a single ``.../basic_lstm_cell/kernel`` or ``.../lstm_cell/kernel``);
* ``forget_bias``: optional scalar, default 1.0 (TensorFlow's default), the same for every
  layer;
* an optional classifier head on the last step's h, in ONE of two layouts:
  ``out_weight`` (H, C) and ``out_bias`` (C): TensorFlow's ``tf.matmul(h, W) + b``, the
  notebook's ``weights['out']`` and ``biases['out']``; or ``head_weight`` (C, H) and
  ``head_bias`` (C): this project's (and PyTorch's ``nn.Linear``) layout, ``W h + b``.

``LSTMCell`` with peepholes (``w_f_diag``, ...) or a projection (``projection/kernel``) is
refused. The activation cannot be seen in the file: it must be TensorFlow's default tanh.

Saving it from TensorFlow, in a session (TF1 graph) or from a checkpoint::

    k, b = sess.run([cell.weights[0], cell.weights[1]]); np.savez("lstm.npz", kernel=k, bias=b, forget_bias=1.0)
    r = tf.train.load_checkpoint("model.ckpt"); np.savez("lstm.npz", kernel=r.get_tensor("rnn/basic_lstm_cell/kernel"), bias=r.get_tensor("rnn/basic_lstm_cell/bias"))

(add ``out_weight=sess.run(weights['out']), out_bias=sess.run(biases['out'])`` for the
notebook's classifier).
"""
from __future__ import annotations

import re

import numpy as np

from ..weights import InputError, LSTMStack, LSTMWeights, check_finite, load_npz

__all__ = ["NAME", "sniff", "load", "from_arrays", "to_arrays", "TF_GATES"]

NAME = "tensorflow"
#: Column blocks of TensorFlow's kernel, in our gate order i, f, g, o: TF's blocks are i, j, f, o.
TF_GATES = (0, 2, 1, 3)

_SINGLE = re.compile(r"^(?:(?:.*/)?(?:basic_)?lstm_cell/)?(kernel|bias)$")
_NUMBERED = re.compile(r"^(kernel|bias)_(\d+)$")
_CELL = re.compile(r"^(?:.*/)?cell_(\d+)/(?:.*/)?(kernel|bias)$")
_REFUSED = {"w_f_diag": "peephole connections (use_peepholes=True)",
            "w_i_diag": "peephole connections (use_peepholes=True)",
            "w_o_diag": "peephole connections (use_peepholes=True)",
            "projection/kernel": "a projection (num_proj)"}
_HEADS = {"out": ("out_weight", "out_bias"), "head": ("head_weight", "head_bias")}


def _layer_key(key: str):
    """(layer, "kernel" | "bias") for a key naming a cell variable, else None."""
    m = _NUMBERED.match(key)
    if m:
        return int(m.group(2)), m.group(1)
    m = _CELL.match(key)
    if m:
        return int(m.group(1)), m.group(2)
    m = _SINGLE.match(key)
    if m:
        return 0, m.group(1)
    return None


def sniff(path, head: bytes, npz_keys: set | None) -> bool:
    """An ``.npz`` with a TensorFlow cell's ``kernel`` and ``bias`` (see the module docstring)."""
    if not npz_keys:
        return False
    found = {_layer_key(k)[1] for k in npz_keys if _layer_key(k) is not None}
    return found == {"kernel", "bias"}


def load(path) -> LSTMStack:
    """Read and convert a TensorFlow cell's ``.npz`` (never executes anything in it)."""
    arrays = load_npz(path, "weights")
    try:
        return from_arrays(arrays)
    except InputError as e:
        raise InputError(f"weights file {path} (TensorFlow BasicLSTMCell layout): {e}") from None


def _layers(arrays: dict) -> list[tuple[np.ndarray, np.ndarray]]:
    for key in arrays:
        for bad, what in _REFUSED.items():
            if key == bad or key.endswith("/" + bad):
                raise InputError(f"{key!r}: LSTMCell with {what} is not supported")
    by_layer: dict[int, dict[str, str]] = {}
    for key in arrays:
        found = _layer_key(key)
        if found is None:
            continue
        k, what = found
        if what in by_layer.setdefault(k, {}):
            raise InputError(f"two arrays for layer {k}'s {what}: {by_layer[k][what]!r} and {key!r}")
        by_layer[k][what] = key
    if not by_layer:
        raise InputError("no 'kernel' and 'bias' (keys: " + (", ".join(sorted(arrays)) or "none") + ")")
    layers = []
    for k in range(max(by_layer) + 1):
        names = by_layer.get(k, {})
        for what in ("kernel", "bias"):
            if what not in names:
                raise InputError(f"layer {k} has no {what} (layers found: "
                                 f"{', '.join(str(n) for n in sorted(by_layer))})")
        layers.append((arrays[names["kernel"]], arrays[names["bias"]]))
    return layers


def _convert(where: str, kernel, bias, forget_bias: float, n_inputs: int | None) -> LSTMWeights:
    """One TF cell to our layout (``where`` prefixes errors; ``n_inputs``: the X the layer
    below gives, None for the first layer)."""
    kernel, bias = np.asarray(kernel), np.asarray(bias)
    check_finite(f"{where}kernel", kernel)
    check_finite(f"{where}bias", bias)
    if bias.ndim != 1 or bias.size == 0 or bias.size % 4:
        raise InputError(f"{where}bias must have shape (4H,), not {bias.shape}")
    H = bias.size // 4
    if kernel.ndim != 2 or kernel.shape[1] != 4 * H or kernel.shape[0] <= H:
        raise InputError(f"{where}kernel must have shape (X+H, 4H) = (X+{H}, {4 * H}) for the "
                         f"bias's H = {H}, not {kernel.shape}")
    X = kernel.shape[0] - H
    if n_inputs is not None and X != n_inputs:
        raise InputError(f"{where}kernel has {kernel.shape[0]} rows: X+H with H = {H} needs "
                         f"X = {n_inputs} (the layer below's H), not {X}")
    kernel, bias = kernel.astype(np.float64), bias.astype(np.float64)
    blocks = [slice(g * H, (g + 1) * H) for g in TF_GATES]
    cols = np.concatenate([np.arange(4 * H)[s] for s in blocks])
    b = bias[cols].copy()
    b[H:2 * H] += forget_bias                  # our f block: TF adds it to f's pre-activation
    return LSTMWeights(kernel[:X, cols].T, kernel[X:, cols].T, b)


def _head(arrays: dict, H: int):
    given = {name: keys for name, keys in _HEADS.items() if any(k in arrays for k in keys)}
    if not given:
        return None, None
    if len(given) > 1:
        raise InputError("give one classifier head: out_weight/out_bias (H, C) or "
                         "head_weight/head_bias (C, H), not both")
    (layout, (wname, bname)), = given.items()
    if wname not in arrays or bname not in arrays:
        raise InputError(f"{wname} and {bname} go together: give both or neither")
    w, b = np.asarray(arrays[wname]), np.asarray(arrays[bname])
    check_finite(wname, w)
    if layout == "out":      # tf.matmul(h, W) + b: W is (H, C)
        if w.ndim != 2 or w.shape[0] != H:
            raise InputError(f"out_weight must have shape (H, C) = ({H}, C) "
                             f"(TensorFlow's h @ W), not {w.shape}")
        w = w.T
    return w, b


def from_arrays(arrays: dict) -> LSTMStack:
    """The conversion on a dict of arrays (what :func:`load` reads from the file)."""
    forget_bias = 1.0
    if "forget_bias" in arrays:
        fb = np.asarray(arrays["forget_bias"])
        if fb.size != 1:
            raise InputError(f"forget_bias must be one number, not shape {fb.shape}")
        check_finite("forget_bias", fb)
        forget_bias = float(fb.reshape(()))
    layers, n_inputs = [], None
    tf_layers = _layers(arrays)
    for k, (kernel, bias) in enumerate(tf_layers):
        where = f"layer {k}: " if len(tf_layers) > 1 else ""
        layers.append(_convert(where, kernel, bias, forget_bias, n_inputs))
        n_inputs = layers[-1].n_hidden
    head_weight, head_bias = _head(arrays, layers[-1].n_hidden)
    return LSTMStack(tuple(layers), head_weight, head_bias)


def to_arrays(weights: LSTMWeights, forget_bias: float = 1.0, head_layout: str = "out") -> dict:
    """The inverse: one layer (and its head) in TensorFlow's layout, for ``np.savez``.

    The f block of the stored bias is ours minus ``forget_bias`` (TensorFlow adds it back).
    ``head_layout`` ``"out"`` writes ``out_weight`` (H, C) / ``out_bias``; ``"head"`` writes
    ``head_weight`` (C, H) / ``head_bias``.
    """
    H = weights.n_hidden
    ours = np.concatenate([weights.weight_ih, weights.weight_hh], axis=1)   # (4H, X+H)
    b = weights.bias.copy()
    b[H:2 * H] -= forget_bias
    # our block g sits at TF position TF_GATES[g]
    kernel, bias = np.empty((ours.shape[1], 4 * H)), np.empty(4 * H)
    for g, tf in enumerate(TF_GATES):
        kernel[:, tf * H:(tf + 1) * H] = ours[g * H:(g + 1) * H].T
        bias[tf * H:(tf + 1) * H] = b[g * H:(g + 1) * H]
    out = {"kernel": kernel, "bias": bias, "forget_bias": np.float64(forget_bias)}
    if weights.has_head:
        if head_layout == "out":
            out.update(out_weight=weights.head_weight.T, out_bias=weights.head_bias)
        elif head_layout == "head":
            out.update(head_weight=weights.head_weight, head_bias=weights.head_bias)
        else:
            raise ValueError(f"head_layout must be 'out' or 'head', not {head_layout!r}")
    return out
