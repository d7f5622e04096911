"""A verification scenario: the design's config and weights, and what the testbench does to it
(steps with framing, runtime weight and state loads, resets), saved as one JSON file that the
cocotb test reads. The golden model runs inside the testbench, on what the driver sends.

A stacked design (:class:`rtl.stack.StackedLSTM`) is a scenario made by :meth:`Scenario.stacked`:
one (config, weights, lanes) per layer; loads name the layer whose port they use. A one-layer
scenario's file is the same as before stacks existed."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from model.config import Config, parse_config
from model.weights import QuantizedWeights

__all__ = ["Scenario", "qweights_dict", "qweights_from_dict"]


def _ints(packet):
    return [{k: int(v) for k, v in word.items()} for word in packet]


def qweights_dict(q: QuantizedWeights) -> dict:
    return {k: np.asarray(getattr(q, k)).tolist() for k in ("weight_ih", "weight_hh", "bias")}


def qweights_from_dict(d: dict) -> QuantizedWeights:
    return QuantizedWeights(**{k: np.asarray(d[k], np.int64) for k in ("weight_ih", "weight_hh", "bias")},
                            head_weight=None, head_bias=None, overflow={})


@dataclass
class Scenario:
    """What one simulation run does. Build it with the ``add_*`` methods, in order."""

    config: Config
    weights: QuantizedWeights          # what the design's memories start with
    seed: int = 0
    gap: float = 0.0                   # probability of an idle cycle before each input word
    stall: float = 0.0                 # probability of a ready stall before each output
    output_c: bool = True
    ops: list = field(default_factory=list)
    #: a stack of L >= 2 layers: (config, weights, lanes) per layer (``config``, ``weights``
    #: are layer 0's); empty for the single cell, whose lanes ``run_scenario`` takes
    stack: list = field(default_factory=list)
    #: the design's h stream is word-serial (one unit per transfer; single cell only)
    serial_output: bool = False

    @classmethod
    def stacked(cls, layers, **kw) -> "Scenario":
        """A scenario for L stacked layers, ``layers`` = [(config, weights, lanes), ...]: each
        layer's own config (``config.for_layer(k)``), quantized weights and lane count P_k
        (None: the config's, capped at X_k+H_k). One layer is the plain single-cell scenario."""
        layers = [(cfg, w, None if p is None else int(p)) for cfg, w, p in layers]
        if len(layers) == 1:
            return cls(layers[0][0], layers[0][1], **kw)
        return cls(layers[0][0], layers[0][1], stack=layers, **kw)

    @property
    def layers(self) -> list:
        """(config, weights, lanes) per layer; a single cell's lanes are None (given to
        :func:`sim.runner.run_scenario`)."""
        return self.stack or [(self.config, self.weights, None)]

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    @property
    def n_inputs(self) -> int:
        return self.weights.n_inputs

    @property
    def n_hidden(self) -> int:
        """H of the last layer (the output's)."""
        return self.layers[-1][1].n_hidden

    def _layer(self, layer: int) -> dict:
        if not 0 <= layer < self.n_layers:
            raise ValueError(f"layer must be in 0..{self.n_layers - 1}, not {layer}")
        return {"layer": int(layer)} if layer else {}

    @property
    def n_steps(self) -> int:
        return sum(len(op["x"]) for op in self.ops if op["op"] == "steps")

    def add_sequences(self, x_raw: np.ndarray, *, first_sequence: int = 0,
                      background: bool = False) -> None:
        """Raw x codes (B, T, X): B sequences, back to back, each starting with ``first`` and
        ending with ``last``. ``background``: go on with the next ops while these steps are
        offered."""
        x_raw = np.asarray(x_raw, np.int64)
        B, T, _ = x_raw.shape
        first = np.zeros((B, T), bool)
        first[:, 0] = True
        last = np.zeros((B, T), bool)
        last[:, -1] = True
        seq = np.repeat(np.arange(B) + first_sequence, T)
        step = np.tile(np.arange(T), B)
        self.ops.append({"op": "steps", "x": x_raw.reshape(B * T, -1).tolist(),
                         "first": first.reshape(-1).astype(int).tolist(),
                         "last": last.reshape(-1).astype(int).tolist(),
                         "sequence": seq.tolist(), "step": step.tolist(),
                         "background": bool(background)})

    def add_weight_load(self, packet: list[dict], *, after: int = 0, background: bool = False,
                        layer: int = 0) -> None:
        """Offer a ``weights`` packet (payload dicts ``data``, ``first``, ``last``, e.g.
        :meth:`rtl.geometry.Geometry.load_packet`), ``after`` idle cycles, on layer ``layer``'s
        port (``weights_l{k}`` of a stack). Malformed packets are allowed: the testbench's
        protocol model decides what the design must do."""
        self.ops.append({"op": "weights", "packet": _ints(packet), "after": int(after),
                         "background": bool(background), **self._layer(layer)})

    def add_state_load(self, packet: list[dict], *, after: int = 0, background: bool = False,
                       layer: int = 0) -> None:
        """Offer a ``state`` packet (payload dicts ``h``, ``c``, ``first``, ``last``, e.g.
        :meth:`rtl.geometry.Geometry.state_packet`) on layer ``layer``'s port."""
        self.ops.append({"op": "state", "packet": _ints(packet), "after": int(after),
                         "background": bool(background), **self._layer(layer)})

    def add_believed_weights(self, weights: QuantizedWeights, *, layer: int = 0) -> None:
        """The scoreboard's model of layer ``layer`` switches to ``weights``, the design does
        not (to show that the checker catches mismatches)."""
        self.ops.append({"op": "believe", "weights": qweights_dict(weights), **self._layer(layer)})

    def add_believed_raw_link(self, layer: int) -> None:
        """The scoreboard feeds layer ``layer`` (>= 1) the h codes of the layer below without
        casting them into its x format (a deliberately wrong model: the checker must notice
        when the formats differ)."""
        if layer < 1:
            raise ValueError("the link into layer 0 is the input: no cast to skip")
        self.ops.append({"op": "believe_raw_link", **self._layer(layer)})

    def add_believed_eager_layers(self) -> None:
        """The scoreboard steps every layer when layer 0 takes a step, with the weights and
        state each layer holds at that moment, instead of when each layer takes the step (a
        deliberately wrong model: it differs from the design when a deeper layer's load
        commits while a step is on its way to that layer)."""
        self.ops.append({"op": "believe_eager"})

    def add_reset(self, after_cycles: int, length: int = 3, *, offer: bool = False) -> None:
        """Assert reset ``after_cycles`` after the last accepted input (mid-step if shorter than
        a step), for ``length`` cycles; outputs not yet delivered are lost, state restarts at 0.
        ``offer``: the ops that follow start while reset is still high (nothing may be
        accepted before it ends)."""
        self.ops.append({"op": "reset", "after": int(after_cycles), "length": int(length),
                         "offer": bool(offer)})

    # -- file form ------------------------------------------------------------------------------
    def save(self, path) -> None:
        Path(path).write_text(json.dumps({
            "config": self.config.as_dict(), "weights": qweights_dict(self.weights),
            "seed": self.seed, "gap": self.gap, "stall": self.stall, "output_c": self.output_c,
            "ops": self.ops, "serial_output": self.serial_output,
            **({"stack": [{"config": cfg.as_dict(), "weights": qweights_dict(w), "lanes": p}
                          for cfg, w, p in self.stack]} if self.stack else {})}))

    @classmethod
    def load(cls, path) -> "Scenario":
        d = json.loads(Path(path).read_text())
        stack = [(parse_config(layer["config"], source="<scenario>"),
                  qweights_from_dict(layer["weights"]), layer["lanes"]) for layer in d.get("stack", ())]
        return cls(parse_config(d["config"], source="<scenario>"), qweights_from_dict(d["weights"]),
                   d["seed"], d["gap"], d["stall"], d["output_c"], d["ops"], stack,
                   d.get("serial_output", False))
