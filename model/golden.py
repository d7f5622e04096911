"""One call from float weights and inputs to everything the CLI, report and testbench need:
the quantized operands, the bit-accurate fixed-point trace, the float64 reference, the head.

A model is one layer (:class:`~model.weights.LSTMWeights`) or L stacked layers
(:class:`~model.weights.LSTMStack`). Layer k+1 reads layer k's h sequence: in fixed point its
raw h codes, cast into layer k+1's x format with that format's round and overflow modes (the
identity when the formats agree); in the float reference layer k's float h directly. Layer k
runs with ``config.for_layer(k)``; the classifier head reads the last layer's h at the last step.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .cell import FixedLSTM, Trace, float_head, float_run
from .config import Config, ConfigError
from .fixed import cast, quantize, to_float
from .weights import (InputError, LSTMStack, LSTMWeights, QuantizedWeights, check_finite,
                      check_inputs, quantize_weights)

__all__ = ["GoldenRun", "LayerRun", "run_golden", "quantize_inputs", "layer_states", "layer_input"]


@dataclass(frozen=True, eq=False)
class LayerRun:
    """One layer of a run: its operands, its fixed-point trace and its float reference."""

    index: int
    config: Config           # config.for_layer(index)
    weights: LSTMWeights     # float weights; the last layer's carry the head
    qweights: QuantizedWeights
    cell: FixedLSTM
    x: np.ndarray            # float values cast into the x format: the inputs (layer 0) or
                             # the layer below's fixed-point h, decoded
    x_raw: np.ndarray        # their codes in this layer's x format
    x_overflow: int          # values that saturated (or wrapped) in that cast
    state: dict              # "h0", "c0" (when given) -> (float values, raw codes, saturated)
    fixed: Trace             # raw codes
    reference: Trace         # float64

    def decoded(self) -> dict:
        """The fixed trace as float64 values."""
        return self.cell.decode(self.fixed)

    @property
    def overflow(self) -> dict:
        """Values that saturated or wrapped, per cast: operands first, then the cell's casts."""
        return {"x": self.x_overflow, **{k: v[2] for k, v in self.state.items()},
                **self.qweights.overflow, **self.fixed.overflow}


@dataclass(frozen=True, eq=False)
class GoldenRun:
    """A whole run. ``weights``, ``qweights``, ``cell``, ``fixed``, ``reference`` and
    ``overflow`` are the last layer's (the one whose h is the output); ``x``, ``x_raw`` and
    ``x_overflow`` are the network's inputs (layer 0's); ``layers`` has every layer."""

    config: Config
    stack: LSTMStack
    layers: tuple            # of LayerRun, one per layer
    x: np.ndarray            # float inputs (B, T, X)
    logits_raw: np.ndarray | None     # exact integer logits (cell.head_frac fraction bits)
    logits_float: np.ndarray | None   # float head on the float reference's last h

    @property
    def last(self) -> LayerRun:
        return self.layers[-1]

    # the single-layer view every existing consumer (CLI, report, RTL tests, testbench) reads
    @property
    def weights(self) -> LSTMWeights:
        return self.last.weights

    @property
    def qweights(self) -> QuantizedWeights:
        return self.last.qweights

    @property
    def cell(self) -> FixedLSTM:
        return self.last.cell

    @property
    def fixed(self) -> Trace:
        return self.last.fixed

    @property
    def reference(self) -> Trace:
        return self.last.reference

    @property
    def x_raw(self) -> np.ndarray:
        return self.layers[0].x_raw

    @property
    def x_overflow(self) -> int:
        return self.layers[0].x_overflow

    def decoded(self) -> dict:
        """The last layer's fixed trace as float64 values."""
        return self.last.decoded()

    @property
    def logits_fixed(self) -> np.ndarray | None:
        return None if self.logits_raw is None else to_float(self.logits_raw, self.cell.head_frac)

    @property
    def overflow(self) -> dict:
        """The last layer's saturation counts (see :attr:`LayerRun.overflow`)."""
        return self.last.overflow


def quantize_inputs(config: Config, x: np.ndarray, name: str = "inputs"):
    spec = config.spec("x")
    return quantize(x, spec.fmt, spec.round, spec.overflow, name=name)


def layer_input(h_raw, below: Config, above: Config):
    """Layer k's h codes (``below``'s h format) cast into layer k+1's x format (``above``'s
    modes): (codes, values that saturated or wrapped). The hardware's layer link and the
    testbench's scoreboard compute exactly this."""
    spec = above.spec("x")
    return cast(h_raw, below.fmt("h").frac, spec.fmt, spec.round, spec.overflow)


def layer_states(state, name: str, hidden: list[int], n_sequences: int) -> list:
    """A float initial state (``h0`` or ``c0``) split per layer, each None, (H,) or (B, H).

    Accepted shapes, PyTorch's convention: (L, H) or (L, B, H) for L layers, and for one layer
    also (H,) or (B, H); B may be 1 (the same state for every sequence).
    """
    L = len(hidden)
    if state is None:
        return [None] * L
    a = np.asarray(state)
    check_finite(name, a)
    a = a.astype(np.float64)
    given = a.shape
    if L == 1 and a.ndim in (1, 2):
        a = a[None]
    B = n_sequences
    ok = a.ndim in (2, 3) and a.shape[0] == L and len(set(hidden)) == 1 \
        and a.shape[-1] == hidden[0] and (a.ndim == 2 or a.shape[1] in (1, B))
    if not ok:
        H = hidden[-1] if len(set(hidden)) == 1 else "/".join(str(h) for h in hidden)
        single = "(H,) or (B, H), or " if L == 1 else ""
        raise InputError(f"{name} must have shape {single}(L, H) or (L, B, H) with L = {L}, "
                         f"B = {B} (or 1), H = {H}, not {given}")
    return [a[k] for k in range(L)]


def _layer_error(e: Exception, k: int, n_layers: int):
    """A config or input error, naming the layer when there is more than one."""
    return type(e)(f"layer {k}: {e}") if n_layers > 1 else e


def run_golden(config: Config, model, x, *, h0=None, c0=None, first=None,
               path: str = "auto") -> GoldenRun:
    """Quantize, run the fixed-point cell and the float reference on the same framing.

    ``model`` is an :class:`LSTMWeights` (one layer) or an :class:`LSTMStack`. ``h0`` and
    ``c0`` are float initial states (see :func:`layer_states`; default: the stack's own, else
    zero), cast into each layer's h and c formats with their saturation counted.
    """
    stack = model if isinstance(model, LSTMStack) else LSTMStack.from_single(model)
    L = stack.n_layers
    x = check_inputs(x, stack.n_inputs)
    extra = sorted(k for k in config.layers if k >= L)
    if extra:
        raise ConfigError(f"the config sets formats for layer {extra[0]} ([layers.{extra[0]}]) "
                          f"but the model has {L} layer{'s' if L > 1 else ''}")
    hidden = [layer.n_hidden for layer in stack.layers]
    states = {name: layer_states(given if given is not None else own, name, hidden, x.shape[0])
              for name, given, own in (("h0", h0, stack.h0), ("c0", c0, stack.c0))}
    layers = []
    ref_in = x
    for k, layer in enumerate(stack.layers):
        cfg = config.for_layer(k)
        weights = layer if k < L - 1 else LSTMWeights(
            layer.weight_ih, layer.weight_hh, layer.bias, stack.head_weight, stack.head_bias)
        try:
            qweights = quantize_weights(weights, cfg)
            cell = FixedLSTM(cfg, qweights, path=path)
        except ConfigError as e:
            raise _layer_error(e, k, L) from None
        if k == 0:
            x_in = x
            x_raw, x_overflow = quantize_inputs(cfg, x)
        else:
            below = layers[-1]
            x_in = below.decoded()["h"]
            x_raw, x_overflow = layer_input(below.fixed["h"], below.config, cfg)
        state = {}
        for name, tensor in (("h0", "h"), ("c0", "c")):
            s = states[name][k]
            if s is not None:
                ts = cfg.spec(tensor)
                codes, n = quantize(s, ts.fmt, ts.round, ts.overflow, name=name)
                state[name] = (s, codes, int(n))
        raw_state = {name: state[name][1] if name in state else None for name in ("h0", "c0")}
        fixed = cell.run(x_raw, raw_state["h0"], raw_state["c0"], first)
        reference = float_run(weights, ref_in, states["h0"][k], states["c0"][k], first)
        ref_in = reference["h"]
        layers.append(LayerRun(k, cfg, weights, qweights, cell, x_in, x_raw, int(x_overflow),
                               state, fixed, reference))
    last = layers[-1]
    logits_raw = logits_float = None
    if stack.has_head:
        logits_raw = last.cell.head(last.fixed["h"][:, -1])
        logits_float = float_head(last.weights, last.reference["h"][:, -1])
    return GoldenRun(config, stack, tuple(layers), x, logits_raw, logits_float)
