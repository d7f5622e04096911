"""This tool's own weights ``.npz``: ``weight_ih`` (4H, X), ``weight_hh`` (4H, H), ``bias``
(4H), gate order i, f, g, o; optional ``head_weight`` (C, H), ``head_bias`` (C)."""
from __future__ import annotations

from ..weights import LSTMStack, load_weights

NAME = "native"
DESCRIPTION = "this tool's .npz (weight_ih, weight_hh, bias)"
KEYS = ("weight_ih", "weight_hh", "bias")


def sniff(path, head: bytes, npz_keys) -> bool:
    # one of the matrices is enough: load() then names whatever else is missing
    # one of the matrices is enough (load() then names what else is missing); PyTorch's
    # LSTMCell has the same matrix names but two biases
    return (npz_keys is not None and any(k in npz_keys for k in KEYS[:2])
            and not any(k in npz_keys for k in ("bias_ih", "bias_hh")))


def load(path) -> LSTMStack:
    return LSTMStack.from_single(load_weights(path))
