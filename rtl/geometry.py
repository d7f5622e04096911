"""Sizes, formats and memory images of the RTL, all derived from the model's config and
quantized weights (never re-derived by hand; docs/architecture.md)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from amaranth.hdl import signed
from amaranth.lib import data

from model.config import Config, check_sizes
from model.fixed import Format
from model.weights import QuantizedWeights

from .pipeline import booth_levels

__all__ = ["Geometry", "RTLError", "framed", "issue_cycles_for", "load_layout", "refuse",
           "state_layout", "wide_for"]

GATES = 4   # i, f, g, o


def issue_cycles_for(n_inputs: int, n_hidden: int, lanes: int) -> int:
    """The MAC bound of X = ``n_inputs``, H = ``n_hidden`` on P = ``lanes``: ceil(4H(X+H) / P)
    cycles per step (:attr:`Geometry.issue_cycles`, without weights)."""
    return -(-GATES * n_hidden * (n_inputs + n_hidden) // lanes)


def wide_for(n_inputs: int, n_hidden: int, lanes: int) -> bool:
    """More lanes than columns, P > X+H (:attr:`Geometry.wide`, without weights)."""
    return lanes > n_inputs + n_hidden


class RTLError(ValueError):
    """Parameters the RTL cannot implement."""


def refuse(component, error: Exception):
    """Raise ``error`` from a component's constructor. Amaranth warns about elaboratables that
    are created but never used; one whose construction failed was never usable, so silence it."""
    component._MustUse__silence = True
    raise error


def load_layout(config: Config) -> data.StructLayout:
    """The ``weights`` stream payload, fields from bit 0 up: ``data`` (the wider of the weight
    and bias formats; narrower codes sign-extended), ``first``, ``last``."""
    bits = max(config.fmt("weight").bits, config.fmt("bias").bits)
    return data.StructLayout({"data": signed(bits), "first": 1, "last": 1})


def state_layout(config: Config) -> data.StructLayout:
    """The ``state`` stream payload, fields from bit 0 up: ``h``, ``c``, ``first``, ``last``."""
    return data.StructLayout({"h": signed(config.fmt("h").bits), "c": signed(config.fmt("c").bits),
                              "first": 1, "last": 1})


@dataclass(frozen=True, eq=False)
class Geometry:
    """Everything the components need to know about one design instance.

    Memory order of the weight matrix: row 4u + k holds gate k (i, f, g, o) of hidden unit u, so
    a unit's four pre-activations finish together and its cell update can start while the lanes
    work on the next units. Columns are [x_t (X); h_{t-1} (H)].
    """

    config: Config
    weights: QuantizedWeights
    lanes: int
    logic_lanes: int = 0

    def __post_init__(self):
        P, L, w = self.lanes, self.logic_lanes, self.weights
        if not isinstance(P, int) or isinstance(P, bool):
            raise RTLError(f"lanes must be an integer, not {P!r}")
        if P < 1:
            raise RTLError(f"lanes must be from 1 to 2(X+H) = {2 * self.n_columns}, not {P}")
        if P > 2 * self.n_columns:
            raise RTLError(f"lanes must be at most 2(X+H) = {2 * self.n_columns} (two row ends "
                           f"per cycle), not {P}")
        if not isinstance(L, int) or isinstance(L, bool) or not 0 <= L <= P:
            raise RTLError(f"logic lanes must be from 0 to the {P} lanes, not {L!r}")
        try:
            check_sizes(self.config, self.n_inputs, self.n_hidden)
        except ValueError as e:
            raise RTLError(str(e)) from None
        H = self.n_hidden
        shapes = {"weight_ih": (4 * H, self.n_inputs), "weight_hh": (4 * H, H), "bias": (4 * H,)}
        for name, shape in shapes.items():
            a = np.asarray(getattr(w, name))
            if a.shape != shape:
                raise RTLError(f"{name} must have shape {shape}, not {a.shape}")
            fmt = self.bias_fmt if name == "bias" else self.weight_fmt
            if a.size and (a.min() < fmt.min_code or a.max() > fmt.max_code):
                raise RTLError(f"{name} codes do not fit the {name.split('_')[0]} format {fmt}")

    @classmethod
    def of(cls, config: Config, weights: QuantizedWeights, lanes: int | None = None,
           logic_lanes: int = 0) -> "Geometry":
        if lanes is None:
            lanes = config.lanes_for(weights.n_inputs, weights.n_hidden)
        return cls(config, weights, lanes, logic_lanes)

    # -- sizes ---------------------------------------------------------------------------------
    @property
    def n_inputs(self) -> int:
        return self.weights.n_inputs

    @property
    def n_hidden(self) -> int:
        return self.weights.n_hidden

    @property
    def n_columns(self) -> int:
        return self.n_inputs + self.n_hidden

    @property
    def n_rows(self) -> int:
        return GATES * self.n_hidden

    @property
    def n_weights(self) -> int:
        return self.n_rows * self.n_columns

    @property
    def n_words(self) -> int:
        """Words of a full runtime weight load: every weight, then every bias."""
        return self.n_weights + self.n_rows

    @property
    def issue_cycles(self) -> int:
        """The MAC bound: ceil(4H(X+H) / P) cycles per step."""
        return issue_cycles_for(self.n_inputs, self.n_hidden, self.lanes)

    @property
    def wide(self) -> bool:
        """More lanes than columns (X+H < P <= 2(X+H)): up to two rows end in one cycle, and
        the MAC emits the even and the odd rows on two ports."""
        return wide_for(self.n_inputs, self.n_hidden, self.lanes)

    @property
    def logic_product_levels(self) -> int:
        """Registered adder levels of a logic lane's product (radix-4 Booth,
        :func:`rtl.pipeline.booth_product`): ceil(log2 ceil(W_weight / 2)), at least 1 (3 at
        16-bit weights)."""
        return booth_levels(self.weight_fmt.bits)

    @property
    def logic_delay(self) -> int:
        """Cycles every lane's product waits beyond a multiplier block's 3 (input register,
        product, fabric register) so that the logic lanes' products, ``logic_product_levels``
        cycles from the same registers, arrive with them: 0 without logic lanes, and 0 for
        weights of up to 16 bits."""
        return max(0, self.logic_product_levels - 3) if self.logic_lanes else 0

    # -- formats -------------------------------------------------------------------------------
    def fmt(self, name: str) -> Format:
        return self.config.fmt(name)

    @property
    def weight_fmt(self) -> Format:
        return self.fmt("weight")

    @property
    def bias_fmt(self) -> Format:
        return self.fmt("bias")

    @property
    def acc_fmt(self) -> Format:
        return self.fmt("accumulator")

    @property
    def operand_bits(self) -> int:
        """Width of the lanes' vector operands: raw x or h codes (x and h are aligned after
        the multiplier, so the operand is no wider than the wider of the two)."""
        return max(self.fmt("x").bits, self.fmt("h").bits)

    @property
    def x_product_shift(self) -> int:
        """Left shift from x * weight fraction bits to the accumulator's."""
        return self.acc_fmt.frac - self.fmt("x").frac - self.weight_fmt.frac

    @property
    def h_product_shift(self) -> int:
        """Left shift from h * weight fraction bits to the accumulator's."""
        return self.acc_fmt.frac - self.fmt("h").frac - self.weight_fmt.frac

    @property
    def bias_shift(self) -> int:
        return self.acc_fmt.frac - self.bias_fmt.frac

    @property
    def load_data_bits(self) -> int:
        """Width of the weight-load ``data`` field: the wider of the weight and bias formats
        (the narrower codes are sign-extended into it)."""
        return max(self.weight_fmt.bits, self.bias_fmt.bits)

    @property
    def load_layout(self) -> data.StructLayout:
        return load_layout(self.config)

    @property
    def state_layout(self) -> data.StructLayout:
        return state_layout(self.config)

    # -- memory images -------------------------------------------------------------------------
    def memory_rows(self, weights: QuantizedWeights | None = None) -> np.ndarray:
        """(4H, X+H) weight codes in memory order (row 4u + gate)."""
        w = self.weights if weights is None else weights
        H = self.n_hidden
        full = np.concatenate([np.asarray(w.weight_ih, np.int64),
                               np.asarray(w.weight_hh, np.int64)], axis=1)
        return full.reshape(GATES, H, self.n_columns).transpose(1, 0, 2).reshape(self.n_rows, -1)

    def memory_bias(self, weights: QuantizedWeights | None = None) -> np.ndarray:
        w = self.weights if weights is None else weights
        return np.asarray(w.bias, np.int64).reshape(GATES, self.n_hidden).T.reshape(-1)

    def lane_memories(self) -> list[list[int]]:
        """Initial contents of each lane's weight memory: lane j, address t = element tP + j."""
        flat = np.zeros(self.issue_cycles * self.lanes, np.int64)
        flat[:self.n_weights] = self.memory_rows().reshape(-1)
        return [[int(v) for v in flat[j::self.lanes]] for j in range(self.lanes)]

    def bias_memory(self) -> list[int]:
        return [int(v) for v in self.memory_bias()]

    def load_words(self, weights: QuantizedWeights) -> list[int]:
        """The codes of a runtime weight load of ``weights``: every weight in memory order, then
        every bias in memory order (:meth:`load_packet` adds the framing)."""
        other = Geometry(self.config, weights, self.lanes, self.logic_lanes)
        if (other.n_inputs, other.n_hidden) != (self.n_inputs, self.n_hidden):
            raise RTLError(f"weights for X={other.n_inputs}, H={other.n_hidden} cannot load into "
                           f"a design built for X={self.n_inputs}, H={self.n_hidden}")
        return [int(v) for v in other.memory_rows().reshape(-1)] + \
               [int(v) for v in other.memory_bias()]


    def load_packet(self, weights: QuantizedWeights) -> list[dict]:
        """The ``weights`` stream packet for ``weights``: :attr:`n_words` payloads ``{"data",
        "first", "last"}``, ``first`` on word 0 and ``last`` on word N-1."""
        return framed({"data": v} for v in self.load_words(weights))

    def weights_from_words(self, words) -> QuantizedWeights:
        """Inverse of :meth:`load_words`: the quantized weights a complete load writes."""
        words = np.asarray(list(words), np.int64)
        if words.shape != (self.n_words,):
            raise RTLError(f"a weight load has {self.n_words} words, not {words.size}")
        H, X, N = self.n_hidden, self.n_inputs, self.n_columns
        rows = words[:self.n_weights].reshape(H, GATES, N).transpose(1, 0, 2).reshape(GATES * H, N)
        bias = words[self.n_weights:].reshape(H, GATES).T.reshape(-1)
        return QuantizedWeights(weight_ih=rows[:, :X], weight_hh=rows[:, X:], bias=bias,
                                head_weight=None, head_bias=None, overflow={})

    def state_packet(self, h0, c0) -> list[dict]:
        """The ``state`` stream packet for initial state codes ``h0``, ``c0`` (H each): payloads
        ``{"h", "c", "first", "last"}``, unit 0 first."""
        h0, c0 = [int(v) for v in h0], [int(v) for v in c0]
        if len(h0) != self.n_hidden or len(c0) != self.n_hidden:
            raise RTLError(f"a state load has H = {self.n_hidden} words, not {len(h0)}, {len(c0)}")
        return framed({"h": h, "c": c} for h, c in zip(h0, c0))


def framed(words) -> list[dict]:
    """Payload dicts with ``first`` set on the first and ``last`` on the last."""
    words = [dict(w) for w in words]
    for k, w in enumerate(words):
        w["first"], w["last"] = int(k == 0), int(k == len(words) - 1)
    return words
