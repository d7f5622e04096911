"""One call from float weights and inputs to everything the CLI, report and testbench need:
the quantized operands, the bit-accurate fixed-point trace, the float64 reference, the head."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .cell import FixedLSTM, Trace, float_head, float_run
from .config import Config
from .fixed import quantize, to_float
from .weights import LSTMWeights, QuantizedWeights, check_inputs, quantize_weights

__all__ = ["GoldenRun", "run_golden", "quantize_inputs"]


@dataclass(frozen=True, eq=False)
class GoldenRun:
    config: Config
    weights: LSTMWeights
    qweights: QuantizedWeights
    cell: FixedLSTM
    x: np.ndarray            # float inputs (B, T, X)
    x_raw: np.ndarray        # their codes in the x format
    x_overflow: int          # inputs that saturated (or wrapped) in that cast
    fixed: Trace             # raw codes
    reference: Trace         # float64
    logits_raw: np.ndarray | None     # exact integer logits (cell.head_frac fraction bits)
    logits_float: np.ndarray | None   # float head on the float reference's last h

    def decoded(self) -> dict:
        """The fixed trace as float64 values."""
        return self.cell.decode(self.fixed)

    @property
    def logits_fixed(self) -> np.ndarray | None:
        return None if self.logits_raw is None else to_float(self.logits_raw, self.cell.head_frac)

    @property
    def overflow(self) -> dict:
        """Values that saturated or wrapped, per cast: operands first, then the cell's casts."""
        return {"x": self.x_overflow, **self.qweights.overflow, **self.fixed.overflow}


def quantize_inputs(config: Config, x: np.ndarray, name: str = "inputs"):
    spec = config.spec("x")
    return quantize(x, spec.fmt, spec.round, spec.overflow, name=name)


def run_golden(config: Config, weights: LSTMWeights, x, *, h0=None, c0=None, first=None,
               path: str = "auto") -> GoldenRun:
    """Quantize, run the fixed-point cell and the float reference on the same framing.

    ``h0`` and ``c0`` are float initial states ((H,) or (B, H)), cast into the h and c formats.
    """
    x = check_inputs(x, weights.n_inputs)
    qweights = quantize_weights(weights, config)
    cell = FixedLSTM(config, qweights, path=path)
    x_raw, x_overflow = quantize_inputs(config, x)
    raw_state = []
    for name, s in (("h", h0), ("c", c0)):
        spec = config.spec(name)
        raw_state.append(None if s is None else
                         quantize(s, spec.fmt, spec.round, spec.overflow, name=f"{name}0")[0])
    fixed = cell.run(x_raw, raw_state[0], raw_state[1], first)
    reference = float_run(weights, x, h0, c0, first)
    logits_raw = logits_float = None
    if weights.has_head:
        logits_raw = cell.head(fixed["h"][:, -1])
        logits_float = float_head(weights, reference["h"][:, -1])
    return GoldenRun(config, weights, qweights, cell, x, x_raw, x_overflow, fixed, reference,
                     logits_raw, logits_float)
