"""The testbench's scoreboard: the golden model of each layer, stepped in the order the design
accepts steps, and the in-order checker of every raw h and c code (docs/verification.md).
Used by the cocotb testbench :mod:`sim.tb_lstm`; nothing here drives the design."""
from collections import deque

import numpy as np

from model.cell import FixedLSTM
from model.fixed import to_float
from model.golden import layer_input

__all__ = ["Checker", "Model", "StackModel", "cycle_now", "describe_mismatch"]

PERIOD_NS = 10                 # the clock period the testbench drives
MAX_REPORTED = 20


def cycle_now() -> int:
    from cocotb.simtime import get_sim_time      # here: the module's report serves without cocotb
    return int(get_sim_time("ns")) // PERIOD_NS


def describe_mismatch(sequence, step, unit, name, want, got, fmt, where="", seed=None) -> str:
    """One mismatch as ``python -m sim`` reports it: where, which code, expected and received
    codes with their values in ``fmt`` (a :class:`model.fixed.Format`), how to reproduce."""
    at = f"sequence {sequence}" + ("" if step is None else f" step {step}")
    line = (f"{at} {where}unit {unit} {name}: expected {want} ({to_float(want, fmt):.6g}), "
            f"got {got} ({to_float(got, fmt):.6g})")
    return line if seed is None else f"{line}; reproduce with SEED={seed}"


class Model:
    """The golden model of one layer, stepped in the order the design's layer accepts steps."""

    def __init__(self, config, weights):
        self.config = config
        self.cell = FixedLSTM(self.config, weights)
        self.reset()

    def reset(self):
        H = self.cell.n_hidden
        self.h0 = self.c0 = self.h = self.c = np.zeros(H, np.int64)

    def load_weights(self, weights):
        self.cell = FixedLSTM(self.config, weights)

    def load_state(self, h0, c0):
        self.h0, self.c0 = np.asarray(h0, np.int64), np.asarray(c0, np.int64)

    def step(self, x, first):
        if first:
            self.h, self.c = self.h0, self.c0
        out = self.cell.step(np.asarray(x, np.int64)[None], self.h[None], self.c[None])
        self.h, self.c = out["h"][0], out["c"][0]
        return self.h, self.c


class StackModel:
    """L layer models and, between them, the steps each deeper layer has still to take: layer k's
    h codes cast into layer k+1's x format (:func:`model.golden.layer_input`, the golden run's
    own cast), with the step's tag and ``first``."""

    def __init__(self, layers):
        self.layers = [Model(cfg, w) for cfg, w, _ in layers]
        # deliberately wrong scoreboards (to show the checker catches them): layers fed uncast
        # codes; every layer stepped when layer 0 takes the step (not when it takes it itself)
        self.raw_link = set()
        self.eager = False
        self.reset()

    def reset(self):
        for layer in self.layers:
            layer.reset()
        self.waiting = [deque() for _ in self.layers]     # [0] unused: layer 0 takes the input

    def in_flight(self) -> int:
        return sum(len(w) for w in self.waiting)

    def step(self, k, x, first):
        """Layer k takes a step: its h, c and layer k+1's input codes (None after the last)."""
        layer = self.layers[k]
        h, c = layer.step(x, first)
        if k + 1 < len(self.layers):
            nxt = h if k + 1 in self.raw_link else layer_input(
                h, layer.config, self.layers[k + 1].config)[0]
            return h, c, nxt
        return h, c, None


class Checker:
    """In-order scoreboard: expected outputs queue up as steps are sent; outputs pop them."""

    def __init__(self, config, seed):
        self.config, self.seed = config, seed
        self.expected = deque()
        self.compared = self.compared_c = self.compared_inner = self.steps = self.dropped = 0
        self.errors = 0
        self.reports = []
        self.received_h = []     # (sequence, step, h codes) for accuracy downstream
        # the classifier head: expected logits per sequence, and what was compared
        self.expected_y = deque()
        self.logits_compared = self.labels_compared = self.logits_errors = self.label_errors = 0
        self.received_labels = []    # (sequence, label) the design emitted

    def expect(self, tag, h, c):
        self.expected.append((tag, h, c))

    def expect_y(self, tag, logits):
        self.expected_y.append((tag, [int(v) for v in logits]))

    def observe_y(self, logits, label):
        """One y: the C logit codes and the label (numpy's argmax: the first largest)."""
        if not self.expected_y:
            self.violation(f"unexpected y (label {label}): no sequence has ended")
            return
        tag, want = self.expected_y.popleft()
        want_label = int(np.argmax(np.asarray(want, dtype=object)))
        for c, (w, g) in enumerate(zip(want, logits)):
            if w != g:
                self.logits_errors += 1
                self._report(f"sequence {tag[0]} logit {c}: expected {w}, got {g}")
        if label != want_label:
            self.label_errors += 1
            self._report(f"sequence {tag[0]} label: expected {want_label}, got {label}")
        self.logits_compared += len(want)
        self.labels_compared += 1
        self.received_labels.append([tag[0], label])

    def _report(self, message):
        if len(self.reports) < MAX_REPORTED:
            self.reports.append(f"{message}; reproduce with SEED={self.seed}")

    def violation(self, message):
        """The design broke the stream or load protocol (counted as a mismatch)."""
        self.errors += 1
        if len(self.reports) < MAX_REPORTED:
            self.reports.append(f"cycle {cycle_now()}: {message}; reproduce with SEED={self.seed}")

    def drop_pending(self, inside: int = 0):
        """A reset: outputs not yet delivered are lost (counted, so every step is accounted for),
        with ``inside`` steps a stack's deeper layers had still to take."""
        self.dropped += len(self.expected) + inside
        self.expected.clear()
        self.expected_y.clear()

    def _mismatch(self, tag, unit, name, want, got, config=None, where=""):
        self.errors += 1
        if len(self.reports) < MAX_REPORTED:
            self.reports.append(describe_mismatch(
                tag[0], tag[1], unit, name, want, got, (config or self.config).fmt(name), where,
                self.seed))

    def observe_inner(self, k, config, tag, want_x, want_frame, got):
        """Layer k (>= 1) took ``got`` (its x port's payload): the model's cast of the layer
        below's h and that step's ``first`` and ``last`` (``want_frame``)."""
        for unit, (w, g) in enumerate(zip(want_x, got["x"])):
            if int(w) != g:
                self._mismatch(tag, unit, "x", int(w), g, config, f"layer {k} input ")
        for name, want in zip(("first", "last"), want_frame):
            if int(want) != got[name]:
                self.violation(f"layer {k} took sequence {tag[0]} step {tag[1]} with {name}="
                               f"{got[name]}, expected {int(want)}")
        self.compared_inner += len(want_x)

    def observe(self, h, c):
        if not self.expected:
            self.errors += 1
            self.reports.append(f"unexpected output h={h}: no step is outstanding")
            return
        tag, want_h, want_c = self.expected.popleft()
        self.steps += 1
        for unit, (w, g) in enumerate(zip(want_h, h)):
            if int(w) != g:
                self._mismatch(tag, unit, "h", int(w), g)
        self.compared += len(h)
        if c is not None:
            for unit, (w, g) in enumerate(zip(want_c, c)):
                if int(w) != g:
                    self._mismatch(tag, unit, "c", int(w), g)
            self.compared_c += len(c)
        self.received_h.append([tag[0], tag[1], *h])
