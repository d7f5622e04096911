"""The design instances the properties are proven on.

``small`` and ``odd`` are the fast ones (``make formal``): small enough for the solver, and
different in every size so a property that holds only by coincidence of sizes shows up. ``odd``
has P = 3 lanes that divide neither X+H = 4 nor 4H(X+H) = 16, so the lanes split rows (the
segmented accumulation). ``make formal-full`` adds ``tall`` (one input, three units, P = 3:
more units than inputs, rows split too), ``serial`` (one lane, no row ever split), ``words``
(the word-serial output), ``stack`` (two layers), ``default``, the shipped design
(configs/default.toml and the shipped model), and the datapath designs ``dp_*``
(:class:`formal.datapath.DatapathDesign`; ``dp_tiny`` also in ``make formal``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model.config import load_config
from model.weights import LSTMWeights, quantize_weights

from .datapath import DatapathDesign

__all__ = ["DesignConfig", "CONFIGS", "FAST", "FULL"]


@dataclass(frozen=True)
class DesignConfig:
    name: str
    n_inputs: int | None      # None: the shipped model
    n_hidden: int | None
    lanes: int | None         # None: the config's [rtl] lanes
    serial_output: bool = False
    layers: int = 1           # > 1: a rtl.stack.StackedLSTM of that many layers of H units

    kind = "protocol"

    def build(self, mutant=None):
        """A fresh :class:`rtl.top.LSTMCell` for this configuration (seeded weights; port
        mutants are the harness's, so ``mutant`` changes nothing here)."""
        from rtl.top import LSTMCell
        config = load_config()
        if self.n_inputs is None:
            from model.shipped import DEFAULT_WEIGHTS
            from model.weights import load_weights
            weights = load_weights(DEFAULT_WEIGHTS)
        else:
            rng = np.random.default_rng(0)
            H = self.n_hidden
            stack = [LSTMWeights(rng.uniform(-1, 1, (4 * H, X)), rng.uniform(-1, 1, (4 * H, H)),
                                 rng.uniform(-1, 1, 4 * H))
                     for X in [self.n_inputs] + [H] * (self.layers - 1)]
            if self.layers > 1:
                from rtl.stack import StackedLSTM
                return StackedLSTM([config] * self.layers,
                                   [quantize_weights(w, config) for w in stack],
                                   lanes=[self.lanes] * self.layers)
            weights = stack[0]
        return LSTMCell(config, quantize_weights(weights, config), lanes=self.lanes,
                        serial_output=self.serial_output)

    def describe(self) -> str:
        if self.n_inputs is None:
            return "shipped model, configs/default.toml"
        return f"X={self.n_inputs} H={self.n_hidden} P={self.lanes}"


CONFIGS = {c.name: c for c in (
    DesignConfig("small", 2, 2, 2),
    DesignConfig("odd", 3, 1, 3),
    DesignConfig("tall", 1, 3, 3),
    DesignConfig("serial", 2, 1, 1),
    DesignConfig("default", None, None, None),
    DesignConfig("words", 2, 2, 2, serial_output=True),
    DesignConfig("stack", 2, 2, 2, layers=2),
    # datapath equivalence (formal.datapath): narrow formats, every P of its shape
    DatapathDesign("dp_tiny", 1, 1, 1, bits=3),
    DatapathDesign("dp_split", 2, 1, 2, bits=3, round="TRN", overflow="WRAP"),
    DatapathDesign("dp_plan", 1, 1, 2, method="plan", bits=3),
    DatapathDesign("dp_load", 1, 1, 1, bits=2, load_weights=True, weight_gaps=False),
    DatapathDesign("dp_serial", 1, 2, 3, bits=3, serial_output=True),
    # more lanes than columns (X+H = 2 < P): two row ends per cycle, rows on two ports
    DesignConfig("wide", 1, 1, 3),
    DatapathDesign("dp_wide", 1, 1, 3, bits=3),
)}
FAST = ("small", "odd", "dp_tiny")
#: dp_serial is left out: its proof did not finish in 17 minutes (docs/formal.md); run it with
#: ``python -m formal --full --config dp_serial``
FULL = ("small", "odd", "tall", "serial", "words", "stack", "default", "wide",
        "dp_tiny", "dp_split", "dp_plan", "dp_load", "dp_wide")
