"""LSTM weights and inputs: loading, validation, and the float-to-fixed cast of weights.

Weights ``.npz`` (docs/cli.md): ``weight_ih`` (4H, X), ``weight_hh`` (4H, H), ``bias`` (4H),
gate order i, f, g, o (PyTorch's; its b_ih + b_hh is one bias here); optional classifier head
``head_weight`` (C, H) with ``head_bias`` (C). Inputs ``.npy``: float (B, T, X) or (T, X).
"""
from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import numpy as np

from .config import Config, check_sizes
from .fixed import FixedPointError, quantize

__all__ = ["InputError", "LSTMWeights", "LSTMStack", "QuantizedWeights", "load_weights", "save_weights",
           "file_kind", "load_npz", "load_npy", "load_dataset", "load_inputs", "check_inputs",
           "load_state_file",
           "check_labels", "quantize_weights", "check_finite"]

GATES = ("i", "f", "g", "o")   # row blocks of weight_ih / weight_hh / bias


class InputError(FixedPointError):
    """A file or array the user gave that cannot be used, with the reason."""


def check_finite(name: str, a: np.ndarray) -> None:
    if not np.issubdtype(a.dtype, np.number) or np.iscomplexobj(a):
        raise InputError(f"{name} must be real numbers, not {a.dtype}")
    if not np.all(np.isfinite(a)):
        where = tuple(int(i) for i in np.argwhere(~np.isfinite(a))[0])
        raise InputError(f"{name} contains NaN or infinity (first at index {where})")


class _Sizes:
    """X and H from the weight matrices (4H, X) and (4H, H)."""

    @property
    def n_inputs(self) -> int:
        return self.weight_ih.shape[1]

    @property
    def n_hidden(self) -> int:
        return self.weight_hh.shape[1]


@dataclass(frozen=True, eq=False)
class LSTMWeights(_Sizes):
    """Float weights of one LSTM layer (and an optional classifier head on the last h)."""

    weight_ih: np.ndarray
    weight_hh: np.ndarray
    bias: np.ndarray
    head_weight: np.ndarray | None = None
    head_bias: np.ndarray | None = None

    def __post_init__(self):
        for name in ("weight_ih", "weight_hh", "bias", "head_weight", "head_bias"):
            value = getattr(self, name)
            if value is None:
                continue
            a = np.asarray(value)
            check_finite(name, a)
            object.__setattr__(self, name, a.astype(np.float64))
        wih, whh, b = self.weight_ih, self.weight_hh, self.bias
        if whh.ndim != 2 or whh.shape[0] != 4 * whh.shape[1] or whh.shape[1] == 0:
            raise InputError(f"weight_hh must have shape (4H, H), not {whh.shape}")
        H = whh.shape[1]
        if wih.ndim != 2 or wih.shape[0] != 4 * H or wih.shape[1] == 0:
            raise InputError(f"weight_ih must have shape (4H, X) = ({4 * H}, X), not {wih.shape}")
        if b.shape != (4 * H,):
            raise InputError(f"bias must have shape (4H,) = ({4 * H},), not {b.shape}")
        if (self.head_weight is None) != (self.head_bias is None):
            raise InputError("head_weight and head_bias go together: give both or neither")
        if self.head_weight is not None:
            hw, hb = self.head_weight, self.head_bias
            if hw.ndim != 2 or hw.shape[1] != H or hw.shape[0] == 0:
                raise InputError(f"head_weight must have shape (C, H) = (C, {H}), not {hw.shape}")
            if hb.shape != (hw.shape[0],):
                raise InputError(f"head_bias must have shape (C,) = ({hw.shape[0]},), not {hb.shape}")

    @property
    def has_head(self) -> bool:
        return self.head_weight is not None

    def arrays(self) -> dict:
        d = {"weight_ih": self.weight_ih, "weight_hh": self.weight_hh, "bias": self.bias}
        if self.has_head:
            d.update(head_weight=self.head_weight, head_bias=self.head_bias)
        return d


@dataclass(frozen=True, eq=False)
class LSTMStack:
    """L stacked LSTM layers and an optional classifier head: what every importer returns.

    Layer k+1 reads layer k's h sequence as its x. ``layers`` are headless ``LSTMWeights``
    (gate order i, f, g, o, one summed bias); the head, when present, reads the last layer's
    h at the last step. ``h0`` and ``c0`` are initial states stored in the model file itself
    (ONNX ``initial_h``/``initial_c``), float (L, H) or (L, B, H), else None.
    """

    layers: tuple
    head_weight: np.ndarray | None = None
    head_bias: np.ndarray | None = None
    h0: np.ndarray | None = None
    c0: np.ndarray | None = None

    def __post_init__(self):
        layers = tuple(self.layers)
        if not layers:
            raise InputError("a model needs at least one LSTM layer")
        for k, layer in enumerate(layers):
            if not isinstance(layer, LSTMWeights) or layer.has_head:
                raise TypeError(f"layer {k} must be a headless LSTMWeights")
            if k and layer.n_inputs != layers[k - 1].n_hidden:
                raise InputError(f"layer {k} takes X = {layer.n_inputs} inputs but layer {k - 1} "
                                 f"gives H = {layers[k - 1].n_hidden}")
        object.__setattr__(self, "layers", layers)
        # the head's checks are LSTMWeights' own, on the last layer
        if self.head_weight is not None or self.head_bias is not None:
            last = layers[-1]
            checked = LSTMWeights(last.weight_ih, last.weight_hh, last.bias,
                                  self.head_weight, self.head_bias)
            object.__setattr__(self, "head_weight", checked.head_weight)
            object.__setattr__(self, "head_bias", checked.head_bias)
        for name in ("h0", "c0"):
            value = getattr(self, name)
            if value is None:
                continue
            a = np.asarray(value)
            check_finite(name, a)
            hidden = {layer.n_hidden for layer in layers}
            if a.ndim not in (2, 3) or a.shape[0] != len(layers) or len(hidden) != 1 \
                    or a.shape[-1] != layers[0].n_hidden:
                raise InputError(f"{name} must have shape (L, H) or (L, B, H) with L = "
                                 f"{len(layers)}, H = {layers[-1].n_hidden}, not {a.shape}")
            object.__setattr__(self, name, a.astype(np.float64))

    @classmethod
    def from_single(cls, weights: LSTMWeights) -> "LSTMStack":
        """One layer with its head, as the native ``.npz`` holds it."""
        layer = LSTMWeights(weights.weight_ih, weights.weight_hh, weights.bias)
        return cls((layer,), weights.head_weight, weights.head_bias)

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    @property
    def n_inputs(self) -> int:
        return self.layers[0].n_inputs

    @property
    def n_hidden(self) -> int:
        """H of the last layer (the one whose h is the output)."""
        return self.layers[-1].n_hidden

    @property
    def has_head(self) -> bool:
        return self.head_weight is not None

    def single(self, what: str) -> LSTMWeights:
        """The one layer with the head, for a consumer that takes one layer (``what`` names it
        in the refusal of a stacked model)."""
        if self.n_layers != 1:
            raise InputError(f"{what} takes a single LSTM layer; this model has "
                             f"{self.n_layers} stacked layers")
        layer = self.layers[0]
        return LSTMWeights(layer.weight_ih, layer.weight_hh, layer.bias,
                           self.head_weight, self.head_bias)


@dataclass(frozen=True, eq=False)
class QuantizedWeights(_Sizes):
    """Raw int64 codes of the weights (weight format) and biases (bias format)."""

    weight_ih: np.ndarray
    weight_hh: np.ndarray
    bias: np.ndarray
    head_weight: np.ndarray | None
    head_bias: np.ndarray | None
    overflow: MappingProxyType     # tensor name -> how many values saturated or wrapped


def quantize_weights(weights: LSTMWeights, config: Config) -> QuantizedWeights:
    """Cast float weights into the config's weight and bias formats (a cast like any other)."""
    check_sizes(config, weights.n_inputs, weights.n_hidden)
    w, b = config.spec("weight"), config.spec("bias")
    out, overflow = {}, {}
    for name, spec in (("weight_ih", w), ("weight_hh", w), ("bias", b),
                       ("head_weight", w), ("head_bias", b)):
        value = getattr(weights, name)
        if value is None:
            out[name] = None
            continue
        out[name], overflow[name] = quantize(value, spec.fmt, spec.round, spec.overflow, name=name)
    return QuantizedWeights(**out, overflow=MappingProxyType(overflow))


NPY_MAGIC = b"\x93NUMPY"


def file_kind(path, what: str) -> str:
    """``"npz"`` or ``"npy"`` by content (not by name), or InputError for anything else."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{what} file not found: {path}")
    if not path.is_file():
        raise InputError(f"{what} path is not a file: {path}")
    if zipfile.is_zipfile(path):
        return "npz"
    with open(path, "rb") as f:
        if f.read(len(NPY_MAGIC)) == NPY_MAGIC:
            return "npy"
    raise InputError(f"{what} file {path} is neither a .npy array nor a .npz archive")


def load_npz(path, what: str) -> dict:
    if file_kind(path, what) != "npz":
        raise InputError(f"{what} file {path} is a .npy array, not an .npz archive")
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        raise InputError(f"{what} file {path} is not a readable .npz archive: {e}") from None


def load_npy(path, what: str) -> np.ndarray:
    if file_kind(path, what) != "npy":
        raise InputError(f"{what} file {path} is an .npz archive, not a .npy array")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise InputError(f"{what} file {path} is not a readable .npy array: {e}") from None


def load_weights(path) -> LSTMWeights:
    arrays = load_npz(path, "weights")
    missing = [k for k in ("weight_ih", "weight_hh", "bias") if k not in arrays]
    if missing:
        raise InputError(f"weights file {path} has no {missing[0]!r} "
                         "(needs weight_ih, weight_hh, bias; optional head_weight, head_bias)")
    known = ("weight_ih", "weight_hh", "bias", "head_weight", "head_bias")
    try:
        return LSTMWeights(**{k: arrays[k] for k in known if k in arrays})
    except InputError as e:
        raise InputError(f"weights file {path}: {e}") from None


def load_state_file(path) -> tuple[np.ndarray, np.ndarray]:
    """``--state``: an .npz with ``h0`` and ``c0`` (float; shapes are checked against the
    model by :func:`model.golden.layer_states`)."""
    arrays = load_npz(path, "state")
    need = "h0 and c0: (H,) or (B, H) for one layer, (L, H) or (L, B, H) for L layers"
    missing = [k for k in ("h0", "c0") if k not in arrays]
    if missing:
        raise InputError(f"state file {path} has no {missing[0]!r} (needs {need})")
    extra = sorted(set(arrays) - {"h0", "c0"})
    if extra:
        raise InputError(f"state file {path} has an unknown array {extra[0]!r} (needs {need})")
    for name in ("h0", "c0"):
        try:
            check_finite(name, arrays[name])
        except InputError as e:
            raise InputError(f"state file {path}: {e}") from None
    return arrays["h0"], arrays["c0"]


def save_weights(path, weights: LSTMWeights) -> None:
    np.savez(path, **weights.arrays())


def load_dataset(path) -> tuple[np.ndarray, np.ndarray | None]:
    """A data set .npz: ``x`` (N, T, X) float and optional ``labels`` (N,) integers."""
    arrays = load_npz(path, "data set")
    if "x" not in arrays:
        raise InputError(f"data set {path} has no 'x' array (keys: {', '.join(arrays) or 'none'})")
    return arrays["x"], arrays.get("labels")


def load_inputs(path) -> np.ndarray:
    """``--inputs``: a .npy array, or a data set .npz (its ``x``); not yet checked."""
    if file_kind(path, "inputs") == "npz":
        return load_dataset(path)[0]
    return load_npy(path, "inputs")


def check_inputs(x, n_inputs: int, name: str = "inputs") -> np.ndarray:
    x = np.asarray(x)
    check_finite(name, x)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3 or x.shape[2] != n_inputs:
        raise InputError(f"{name} must have shape (B, T, X) or (T, X) with X = {n_inputs} "
                         f"(the weights' input size), not {np.shape(x)}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise InputError(f"{name} is empty: shape {x.shape}")
    return x.astype(np.float64)


def check_labels(y, n_sequences: int, n_classes: int | None, name: str = "labels") -> np.ndarray:
    y = np.asarray(y)
    if y.shape != (n_sequences,) or not np.issubdtype(y.dtype, np.integer):
        raise InputError(f"{name} must be {n_sequences} integers (one per sequence), "
                         f"not {y.dtype} {y.shape}")
    if n_classes is None:
        raise InputError("labels need a classifier head (head_weight, head_bias) in the weights")
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise InputError(f"{name} must be class numbers from 0 to {n_classes - 1}")
    return y.astype(np.int64)
