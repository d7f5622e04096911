"""Independent float64 oracles for stacked models and TensorFlow's cell, and model factories.

Nothing here calls :mod:`model`'s cell or importers: the equations are written out from the
frameworks' definitions, so a test comparing them with the model can fail when it is wrong.
"""
from __future__ import annotations

import numpy as np

from model.weights import LSTMStack, LSTMWeights


def sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def _state(s, B, H):
    return np.zeros((B, H)) if s is None else np.broadcast_to(np.asarray(s, float), (B, H))


def torch_layers(x, layers, h0=None, c0=None):
    """PyTorch's nn.LSTM equations (gate order i, f, g, o, one summed bias per layer).

    ``layers``: list of (weight_ih (4H, X), weight_hh (4H, H), bias (4H)); ``h0``, ``c0``:
    (L, B, H), (L, H) or None. Returns per layer (h (B, T, H), c (B, T, H)).
    """
    out, inp = [], np.asarray(x, float)
    B, T = inp.shape[:2]
    for k, (wih, whh, b) in enumerate(layers):
        H = whh.shape[1]
        h = _state(None if h0 is None else h0[k], B, H)
        c = _state(None if c0 is None else c0[k], B, H)
        hs, cs = [], []
        for t in range(T):
            i, f, g, o = np.split(inp[:, t] @ wih.T + h @ whh.T + b, 4, axis=1)
            c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
            h = sigmoid(o) * np.tanh(c)
            hs.append(h)
            cs.append(c)
        out.append((np.stack(hs, 1), np.stack(cs, 1)))
        inp = out[-1][0]
    return out


def tf_layers(x, cells, forget_bias=1.0, h0=None, c0=None):
    """TensorFlow 1 BasicLSTMCell (MultiRNNCell for several), written out from its source::

        i, j, f, o = split(concat([x, h], 1) @ kernel + bias, 4, axis=1)
        c = c * sigmoid(f + forget_bias) + sigmoid(i) * tanh(j);  h = tanh(c) * sigmoid(o)

    ``cells``: list of (kernel (X+H, 4H), bias (4H)). Returns per layer (h, c) (B, T, H).
    """
    out, inp = [], np.asarray(x, float)
    B, T = inp.shape[:2]
    for k, (kernel, bias) in enumerate(cells):
        H = bias.size // 4
        h = _state(None if h0 is None else h0[k], B, H)
        c = _state(None if c0 is None else c0[k], B, H)
        hs, cs = [], []
        for t in range(T):
            i, j, f, o = np.split(np.concatenate([inp[:, t], h], 1) @ kernel + bias, 4, axis=1)
            c = c * sigmoid(f + forget_bias) + sigmoid(i) * np.tanh(j)
            h = np.tanh(c) * sigmoid(o)
            hs.append(h)
            cs.append(c)
        out.append((np.stack(hs, 1), np.stack(cs, 1)))
        inp = out[-1][0]
    return out


def random_stack(rng, sizes, n_classes=0, scale=None, h0=None, c0=None) -> LSTMStack:
    """Layers of sizes [X, H_0, H_1, ...] with PyTorch's init (+-1/sqrt(H), or ``scale``)."""
    layers = []
    for X, H in zip(sizes[:-1], sizes[1:]):
        k = 1 / np.sqrt(H) if scale is None else scale
        layers.append(LSTMWeights(rng.uniform(-k, k, (4 * H, X)), rng.uniform(-k, k, (4 * H, H)),
                                  rng.uniform(-k, k, 4 * H)))
    head = {}
    if n_classes:
        H = sizes[-1]
        head = dict(head_weight=rng.uniform(-1, 1, (n_classes, H)) / np.sqrt(H),
                    head_bias=rng.uniform(-0.5, 0.5, n_classes))
    return LSTMStack(tuple(layers), h0=h0, c0=c0, **head)


def stack_tuples(stack: LSTMStack):
    return [(w.weight_ih, w.weight_hh, w.bias) for w in stack.layers]


def tf_cells(rng, sizes, scale=0.5):
    """Random TensorFlow cells (kernel (X+H, 4H), bias (4H)) for sizes [X, H_0, H_1, ...]."""
    return [(rng.uniform(-scale, scale, (X + H, 4 * H)), rng.uniform(-scale, scale, 4 * H))
            for X, H in zip(sizes[:-1], sizes[1:])]
