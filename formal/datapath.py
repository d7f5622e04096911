"""Datapath equivalence: every h_t and c_t the cell puts out equals :class:`formal.spec.StepSpec`
(the model's step, written independently of ``rtl/``), for every input the environment may
send, on small designs with narrow formats (multipliers not cut).

The harness keeps a shadow of what the environment loaded: the weights (initially the memory's
contents, then every word of a weight packet, decoded in docs/protocol.md's word order) and the
initial state (zero after reset, then every word of a state packet). When x is accepted, the
step's inputs are latched: x and either the initial state (``first``) or the previous step's
result as delivered; the result the cell delivers next must equal the specification on the
latched inputs and the shadow weights, word for word, on the cycle it appears (its stability
until taken is the protocol property ``output_stream``'s).

Environment assumptions beyond the harness's: load packets are well formed (``first`` on word
0, ``last`` on the last word, nothing else): what the cell does with malformed packets is
the protocol properties' business (``load_atomic``), and a refused packet leaves the memory
partly written by design.

Datapath mutants change the design under test, never the specification: a cast's rounding or
overflow mode flipped, an alignment shift one bit off, one table entry wrong, a row split one
lane off, and x accepted in the cycle after a state packet's last word (before the state is
shifted in: the fault an outside review found that no port property catches). The last two
have no constructor parameter; they are applied to the design's RTLIL by the names of its
signals (:func:`mutate_rtlil`), and refuse to run when those names are gone.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Mux, Signal, signed
from amaranth.lib import data

from model.config import Config, TensorSpec, parse_config
from model.weights import QuantizedWeights

from .spec import StepSpec

__all__ = ["DatapathDesign", "DATAPATH_MUTANTS", "narrow_config", "mutate_rtlil",
           "build_datapath_check"]

#: Faults of the datapath, name -> what the broken design does.
DATAPATH_MUTANTS = {
    "z_rounding_flipped": "the cast to z rounds with the other mode (RND <-> TRN)",
    "c_overflow_flipped": "the cast to c overflows with the other mode (SAT <-> WRAP)",
    "x_shift_off_by_one": "x products are aligned to the accumulator one bit too far left",
    "sigmoid_entry_wrong": "the sigmoid table's first intercept is one output LSB high",
    "row_split_lane_off": "the last lane's row-end mask is its neighbour's: at a row end on "
                          "that lane its product goes to the finished row",
    "x_right_after_state": "x is accepted in the cycle after a state packet's last word, "
                           "before that word is shifted into the initial state",
}
_RTLIL_MUTANTS = ("row_split_lane_off", "x_right_after_state")


def narrow_config(*, method="pwl", bits=4, round="RND", overflow="SAT", lanes=1) -> Config:
    """Narrow formats for the datapath proofs: x, weights and biases of ``bits`` bits; z and c
    with 2 fraction bits (4 for PLAN, which needs them); gates 6 bits, h 5 bits; tables of at
    most 8 segments (every table within the model's error bound)."""
    def fmt(b, f):
        return {"bits": b, "frac": f}
    zf = 4 if method == "plan" else 2
    raw = {"modes": {"round": round, "overflow": overflow},
           "formats": {"x": fmt(bits, bits - 2), "weight": fmt(bits, bits - 2),
                       "bias": fmt(bits, bits - 2), "accumulator": fmt(2 * bits + 8, bits + 2),
                       "z": fmt(zf + 3, zf), "gate": fmt(6, 4), "candidate": fmt(6, 4),
                       "c": fmt(zf + 3, zf), "tanh_c": fmt(6, 4), "h": fmt(5, 4)},
           "activations": {"method": method, "max_segments": 8, "slope_frac": 5,
                           "index_shift": 0},
           "rtl": {"lanes": lanes}}
    return parse_config(raw, source=f"narrow {method} {bits}-bit {round}/{overflow}")


@dataclass(frozen=True)
class DatapathDesign:
    """A small design for the datapath proof: sizes, narrow formats, and what the run covers."""
    name: str
    n_inputs: int
    n_hidden: int
    lanes: int
    method: str = "pwl"
    bits: int = 4
    round: str = "RND"
    overflow: str = "SAT"
    #: weight packets through the port (free words); otherwise the memory keeps its contents
    load_weights: bool = False
    #: with ``load_weights``: the producer may leave gaps in the weight packet and send more
    #: packets later (True), or sends one packet right after reset without gaps (False: the
    #: memory's write history is then fixed in time: a smaller problem for the solver)
    weight_gaps: bool = True
    serial_output: bool = False
    #: steps the BMC depth covers after the loads
    steps: int = 1

    kind = "datapath"

    @property
    def config(self) -> Config:
        return narrow_config(method=self.method, bits=self.bits, round=self.round,
                             overflow=self.overflow, lanes=self.lanes)

    @property
    def weights(self) -> QuantizedWeights:
        """Seeded codes over each format's whole range (the memory's initial contents)."""
        cfg, X, H = self.config, self.n_inputs, self.n_hidden
        rng = np.random.default_rng(1)

        def codes(name, shape):
            f = cfg.fmt(name)
            return rng.integers(f.min_code, f.max_code + 1, shape, dtype=np.int64)
        return QuantizedWeights(weight_ih=codes("weight", (4 * H, X)),
                                weight_hh=codes("weight", (4 * H, H)), bias=codes("bias", 4 * H),
                                head_weight=None, head_bias=None, overflow={})

    def _config_mutant(self, mutant: str) -> Config:
        """The config a constructor-level mutant builds the design with."""
        config = self.config
        if mutant == "z_rounding_flipped":
            z = config.spec("z")
            return config.replace(z=TensorSpec(z.fmt, "TRN" if z.round == "RND" else "RND",
                                               z.overflow))
        if mutant == "c_overflow_flipped":
            c = config.spec("c")
            return config.replace(c=TensorSpec(c.fmt, c.round,
                                               "WRAP" if c.overflow == "SAT" else "SAT"))
        return config

    def build(self, mutant: str | None = None):
        """The design under test, with ``mutant`` applied where a constructor can apply it
        (the RTLIL mutants are applied by :func:`mutate_rtlil`)."""
        from rtl.top import LSTMCell
        dut = LSTMCell(self._config_mutant(mutant), self.weights, lanes=self.lanes, serial_output=self.serial_output)
        if mutant == "x_shift_off_by_one":
            dut._geometry = _shifted_geometry(dut.geometry)
        elif mutant == "sigmoid_entry_wrong":
            dut._tables = {**dut._tables, "sigmoid": _wrong_entry(dut._tables["sigmoid"])}
        return dut

    def mutants(self) -> tuple[str, ...]:
        """The datapath mutants that can show on this design: no row split where P divides
        X+H, and no mode flip the model shows to change no result (with these weights, e.g.
        c never overflows, so SAT and WRAP agree: such a mutant could never fail)."""
        out = list(DATAPATH_MUTANTS)
        if (self.lanes < 2 or (self.n_inputs + self.n_hidden) % self.lanes == 0
                or self.lanes > self.n_inputs + self.n_hidden):
            # no row ends inside a cycle's lanes; or more lanes than columns, where the lane
            # masks are the three-sum design's (s0, s2), not the mask<k> this mutant changes
            out.remove("row_split_lane_off")
        return tuple(m for m in out if not self._model_equivalent(m))

    def _model_equivalent(self, mutant: str) -> bool:
        """Whether the model with the mutant's config gives the same h and c on every input
        (every code of x, h and c; a seeded sample of 2^18 when there are more)."""
        from model.cell import FixedLSTM
        config = self._config_mutant(mutant)
        if config == self.config:
            return False
        cfg, X, H = self.config, self.n_inputs, self.n_hidden
        sizes = [cfg.fmt(n).bits for n in ["x"] * X + ["h"] * H + ["c"] * H]
        count = 1 << min(sum(sizes), 18)
        rng = np.random.default_rng(0)
        if sum(sizes) <= 18:
            index = np.arange(count)[:, None] >> np.cumsum([0] + sizes[:-1]) & \
                ((1 << np.array(sizes)) - 1)
            codes = index - (1 << (np.array(sizes) - 1))
        else:
            codes = np.stack([rng.integers(-(1 << (b - 1)), 1 << (b - 1), count)
                              for b in sizes], axis=1)
        x, h, c = codes[:, :X], codes[:, X:X + H], codes[:, X + H:]
        want = FixedLSTM(cfg, self.weights, path="int", fused=False).step(x, h, c)
        got = FixedLSTM(config, self.weights, path="int", fused=False).step(x, h, c)
        return all(np.array_equal(want[n], got[n]) for n in ("h", "c"))

    def depth(self, dut) -> int:
        """Reset, the loads, the initial state's shift (x waits for it) and ``steps`` steps."""
        from rtl.top import STATE_SHIFT_LATENCY
        words = dut.geometry.n_words if self.load_weights else 0
        return 2 + words + self.n_hidden + STATE_SHIFT_LATENCY + self.steps * dut.cycles_per_step

    def describe(self) -> str:
        c = self.config
        return (f"X={self.n_inputs} H={self.n_hidden} P={self.lanes}, {self.method.upper()} "
                f"tables, {self.bits}-bit x/weights, {self.round}/{self.overflow}"
                f"{', weights loaded' if self.load_weights else ''}"
                f"{', serial output' if self.serial_output else ''}; z {c.fmt('z')}, "
                f"c {c.fmt('c')}, h {c.fmt('h')}")


def _shifted_geometry(g):
    from rtl.geometry import Geometry

    class Shifted(Geometry):
        @property
        def x_product_shift(self) -> int:
            return super().x_product_shift + 1
    return Shifted(g.config, g.weights, g.lanes)


def _wrong_entry(table):
    step = 1 << (table.frac - table.spec.output.fmt.frac)
    intercept = table.intercept.copy()
    intercept[0] += step
    return dataclasses.replace(table, intercept=intercept)


def mutate_rtlil(text: str, mutant: str | None) -> str:
    """Apply an RTLIL mutant (:data:`_RTLIL_MUTANTS`) to the harness's RTLIL, by signal names.

    ``x_right_after_state``: the inverter of ``state_wait`` (the x-open register's wait for a
    state word's shift) reads 0. ``row_split_lane_off``: the MAC's last-stage lane muxes of lane P-1
    select on ``mask<k>[P-2]`` instead of ``mask<k>[P-1]`` (in each copy ``mask<k>_<j>``).
    """
    if mutant not in _RTLIL_MUTANTS:
        return text
    if mutant == "x_right_after_state":
        pattern = re.compile(r"(cell \$not \S+\n(?:\s+parameter .*\n)*\s+connect \\A )"
                             r"\\state_wait \[0\]\n")
        new, n = pattern.subn(r"\g<1>1'0\n", text)
    else:
        # the mask of the last stage, mask<k> or its copies mask<k>_<j> (one per lane sum)
        selects = re.findall(r"connect \\S \\(mask(\d+)(?:_\d+)?) \[(\d+)\]\n", text)
        if not selects:
            raise ValueError("mutant row_split_lane_off: no lane mask (mask<k>) in the design")
        stage = max(int(k) for _, k, _ in selects)
        wires = sorted({w for w, k, _ in selects if int(k) == stage})
        lane = max(int(b) for w, k, b in selects if int(k) == stage)
        new, n = text, 0
        for wire in wires:
            new, m = re.subn(rf"connect \\S \\{wire} \[{lane}\]\n",
                             rf"connect \\S \\{wire} [{lane - 1}]\n", new)
            n += m
    if n == 0:
        raise ValueError(f"mutant {mutant}: its signal is not in the design (renamed?)")
    return new


def _array(shape_bits: int, values, name: str, reset_less=False):
    values = [int(v) for v in values]
    return Signal(data.ArrayLayout(signed(shape_bits), len(values)), init=values, name=name,
                  reset_less=reset_less)


def build_datapath_check(m, t, design: DatapathDesign):
    """The datapath property on harness module ``m`` (trace ``t``): see the module docstring."""
    cfg, X, H = design.config, design.n_inputs, design.n_hidden
    N = X + H
    qw = design.weights
    spec = StepSpec(cfg, X, H)
    m.submodules.spec = spec
    rst = t.rst
    wb, bb, hb, cb = (cfg.fmt(n).bits for n in ("weight", "bias", "h", "c"))

    # -- the weights as loaded: the memory's contents, then every word of a weight packet
    #    (the memory is not reset: neither is its shadow)
    w_ih = _array(wb, np.asarray(qw.weight_ih).reshape(-1), "shadow_weight_ih", True)
    w_hh = _array(wb, np.asarray(qw.weight_hh).reshape(-1), "shadow_weight_hh", True)
    bias = _array(bb, qw.bias, "shadow_bias", True)
    n_weights, n_words = 4 * H * N, 4 * H * N + 4 * H
    w = t.weights
    if design.load_weights:
        for k, case in _packet_words(m, t, w, n_words, "shadow_weight_word"):
            with case:
                m.d.sync += _weight_word(k, X, H, w_ih, w_hh, bias, w.payload.data)
        if not design.weight_gaps:
            sent = Signal(name="weight_packet_sent")
            with m.If(w.fire & ~rst & w.payload.last):
                m.d.sync += sent.eq(1)
            m.d.comb += t.assume(w.valid == ~sent, when=~rst)
    else:
        t.m.d.comb += t.assume(~w.valid)

    # -- the initial state: zero after reset, then every word of a state packet
    s = t.state
    h0 = Signal(data.ArrayLayout(signed(hb), H), name="shadow_h0")
    c0 = Signal(data.ArrayLayout(signed(cb), H), name="shadow_c0")
    for u, case in _packet_words(m, t, s, H, "shadow_state_word"):
        with case:
            m.d.sync += [h0[u].eq(s.payload.h), c0[u].eq(s.payload.c)]

    # -- a step: the specification on x and (first ? initial state : the previous result as
    #    the cell delivered it). Each check then covers one step's arithmetic, and by induction
    #    over the outputs every result equals the model's sequence: at the first output that
    #    differed, the previous one was right, so it is the specification that it fails.
    #    The step's inputs are latched when x is accepted and the specification reads the
    #    latches: a check on cycle k then depends on one copy of the specification (cycle
    #    k's), not on one per cycle x might have been accepted on.
    x, h = t.x, t.h
    fresh = t.fresh_output()
    h_prev, c_prev = _delivered_state(m, t, design, fresh)
    first = x.payload.first
    step_x = Signal.like(spec.x, name="step_x")
    step_h = Signal.like(spec.h, name="step_h")
    step_c = Signal.like(spec.c, name="step_c")
    with m.If(x.fire & ~rst):
        m.d.sync += step_x.eq(x.payload.x)
        m.d.sync += [step_h[u].eq(Mux(first, h0[u], h_prev[u])) for u in range(H)]
        m.d.sync += [step_c[u].eq(Mux(first, c0[u], c_prev[u])) for u in range(H)]
    m.d.comb += [spec.x.eq(step_x), spec.h.eq(step_h), spec.c.eq(step_c),
                 spec.weight_ih.eq(w_ih), spec.weight_hh.eq(w_hh), spec.bias.eq(bias)]
    if design.load_weights:
        # the weights the step read: no weight word is accepted while a step runs (the
        # protocol property loads_between_steps), so the shadow at the output is the step's;
        # asserted here too, so this proof does not lean on another
        running = Signal(name="datapath_step_running")
        with m.If(x.fire & ~rst):
            m.d.sync += running.eq(1)
        with m.Elif(fresh):
            m.d.sync += running.eq(0)
        t.require(~w.fire, "no_weight_word_during_step", when=running & ~fresh & ~rst)

    # -- the result on the output: checked on the cycle it appears (while the step's inputs
    #    are still latched: the next x is accepted at the earliest on that cycle). That it
    #    then stays unchanged until taken is output_stream's (k-induction, with mutants)
    shown = h.valid & ~rst
    if design.serial_output:
        # the words leave one per transfer; the next x waits for the last one
        word = _output_word(m, t)
        expect_h = _pick(m, spec.h_next, word, hb, "expected_word_h")
        expect_c = _pick(m, spec.c_next, word, cb, "expected_word_c")
        t.require(h.payload.h == expect_h, "h_word_equals_spec", when=shown)
        t.require(h.payload.c == expect_c, "c_word_equals_spec", when=shown)
        t.require((h.payload.first == (word == 0)) & (h.payload.last == (word == H - 1)),
                  "output_word_framing", when=shown)
    else:
        t.require(h.payload.h.as_value() == spec.h_next.as_value(), "h_equals_spec",
                  when=fresh & ~rst)
        t.require(h.payload.c.as_value() == spec.c_next.as_value(), "c_equals_spec",
                  when=fresh & ~rst)

    # covers: what the depth must reach for the proof to say something
    loaded = Signal(name="state_loaded")
    state_just_loaded = Signal(name="state_just_loaded")
    m.d.sync += state_just_loaded.eq(s.fire & ~rst & s.payload.last)
    with m.If(s.fire & ~rst & s.payload.last):
        m.d.sync += loaded.eq(1)
    t.cover(shown & fresh & loaded, "result_after_state_load")
    t.cover(x.fire & ~first & ~rst & ~h.valid, "step_on_previous_result")
    # (the cell never takes x here: it waits for the last word's shift, which is the point)
    t.cover(x.valid & first & ~rst & state_just_loaded, "x_offered_right_after_state_packet")
    if design.load_weights:
        w_loaded = Signal(name="weights_loaded")
        with m.If(w.fire & ~rst & w.payload.last):
            m.d.sync += w_loaded.eq(1)
        t.cover(shown & fresh & w_loaded & loaded, "result_after_weight_and_state_load")


def _packet_words(m, t, port, n, name):
    """Assume ``port`` carries well-formed packets of ``n`` words (``first`` on word 0,
    ``last`` on word n-1, nothing else) and count them; yield (k, context) for each word k, the
    context active on the cycle word k is transferred (outside reset)."""
    count = Signal(range(n), name=name)
    t.m.d.comb += t.assume((port.payload.first == (count == 0))
                           & (port.payload.last == (count == n - 1)), when=port.valid)
    with m.If(port.fire & ~t.rst):
        m.d.sync += count.eq(_wrap(count, n))
        with m.Switch(count):
            for k in range(n):
                yield k, m.Case(k)


def _output_word(m, t):
    """The number of the word on a word-serial output (0 .. H-1), counted by transfers."""
    H = t.design.n_hidden
    word = Signal(range(H), name="output_word")
    with m.If(t.h.fire & ~t.rst):
        m.d.sync += word.eq(_wrap(word, H))
    return word


def _delivered_state(m, t, design, fresh):
    """h_{t-1} and c_{t-1} as the cell delivered them: the payload of the last result put on
    the output (combinationally on the cycle it appears), zero after reset. A word-serial
    output's words are collected as they leave; the next x waits for the last one."""
    cfg, H = design.config, design.n_hidden
    h, rst = t.h, t.rst
    h_seen = Signal(data.ArrayLayout(signed(cfg.fmt("h").bits), H), name="delivered_h")
    c_seen = Signal(data.ArrayLayout(signed(cfg.fmt("c").bits), H), name="delivered_c")
    if design.serial_output:
        count = Signal(range(H), name="delivered_word")
        with m.If(h.fire & ~rst):
            m.d.sync += count.eq(_wrap(count, H))
            with m.Switch(count):
                for u in range(H):
                    with m.Case(u):
                        m.d.sync += [h_seen[u].eq(h.payload.h), c_seen[u].eq(h.payload.c)]
        return h_seen, c_seen
    h_prev = Signal.like(h_seen, name="delivered_h_now")
    c_prev = Signal.like(c_seen, name="delivered_c_now")
    with m.If(fresh):
        m.d.sync += [h_seen.eq(h.payload.h), c_seen.eq(h.payload.c)]
        m.d.comb += [h_prev.eq(h.payload.h), c_prev.eq(h.payload.c)]
    with m.Else():
        m.d.comb += [h_prev.eq(h_seen), c_prev.eq(c_seen)]
    return h_prev, c_prev


def _wrap(count, n):
    """The next value of a counter over 0..n-1."""
    return Mux(count == n - 1, 0, count + 1)


def _pick(m, array, index, bits, name):
    out = Signal(signed(bits), name=name)
    with m.Switch(index):
        for u in range(len(array)):
            with m.Case(u):
                m.d.comb += out.eq(array[u])
    return out


def _weight_word(k, X, H, w_ih, w_hh, bias, data_field):
    """Shadow update for word k of a weight packet (docs/protocol.md, "Weight packet")."""
    N = X + H
    if k < 4 * H * N:
        row, col = divmod(k, N)
        unit, gate = divmod(row, 4)
        std = gate * H + unit                 # the model's gate-major row
        if col < X:
            target = w_ih[std * X + col]
        else:
            target = w_hh[std * H + col - X]
    else:
        unit, gate = divmod(k - 4 * H * N, 4)
        target = bias[gate * H + unit]
    return [target.eq(data_field[:len(target)].as_signed())]
