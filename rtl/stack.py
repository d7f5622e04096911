"""Stacked LSTM layers in hardware: one :class:`LSTMCell` per layer, chained by streams.

Layer k's output stream (its h_t) is cast into layer k+1's x format and offered to layer k+1 as
its input step, with the ``first`` bit of the step passed along. The layers work as a wavefront
pipeline: layer k+1 computes step t while layer k computes step t+1, so the slowest layer sets
the pace (see :class:`StackedLSTM`'s docstring for the closed forms).
"""
from amaranth.hdl import Array, Cat, Elaboratable, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from model.config import Config

from .cast import cast
from .geometry import RTLError, refuse
from .top import LSTMCell

__all__ = ["StackedLSTM", "LayerLink", "StepTags", "TagFIFO", "StackTop", "build_design", "lanes_per_layer"]


class LayerLink(wiring.Component):
    """Layer k's h stream into layer k+1's x stream: the cast h format -> x format, ``first`` and
    ``last``.

    The cast is combinational (no cycle added); the framing bits ``first`` and ``last`` of each
    step are remembered in a small FIFO when layer k accepts the step and reattached when layer
    k delivers its h (:class:`StepTags`). A cell holds
    at most two steps in flight (one computing, one waiting in its output register), so two
    entries suffice; the FIFO's ready gates layer k's input all the same, so nothing is lost
    even if that ever changed.

    Members
    -------
    upstream_x : ``In(stream.Signature(step))``, ``downstream_x`` : ``Out(...)``
        Layer k's input step, passed through (its ``first`` and ``last`` are recorded on each
        transfer).
    upstream_h : ``In(stream.Signature(output))``
        Layer k's output (h codes in layer k's h format; c, when present, is dropped).
    next_x : ``Out(stream.Signature(next_step))``
        Layer k+1's input step: the h codes cast into layer k+1's x format, ``first``, ``last``.
    """

    depth = 2

    def __init__(self, upstream: LSTMCell, downstream_config: Config, next_step_layout):
        self._h_spec = upstream.geometry.config.spec("h")
        self._x_spec = downstream_config.spec("x")
        self._n = upstream.geometry.n_hidden
        self._step, self._output = upstream.step_layout, upstream.output_layout
        super().__init__({
            "upstream_x": In(stream.Signature(upstream.step_layout)),
            "downstream_x": Out(stream.Signature(upstream.step_layout)),
            "upstream_h": In(stream.Signature(upstream.output_layout)),
            "next_x": Out(stream.Signature(next_step_layout)),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.tags = tags = StepTags(self.depth, self._step, self._output)
        wiring.connect(m, wiring.flipped(self.upstream_x), tags.upstream_x)
        wiring.connect(m, tags.downstream_x, wiring.flipped(self.downstream_x))
        wiring.connect(m, wiring.flipped(self.upstream_h), tags.upstream_h)

        # layer k's h, cast into layer k+1's x format, with that step's `first` and `last`
        h_frac = self._h_spec.fmt.frac
        m.d.comb += [self.next_x.payload.x[u].eq(cast(tags.h.payload.h[u], h_frac, self._x_spec))
                     for u in range(self._n)]
        m.d.comb += [self.next_x.payload.first.eq(tags.first), self.next_x.payload.last.eq(tags.last),
                     self.next_x.valid.eq(tags.h.valid), tags.h.ready.eq(self.next_x.ready)]
        return m


class TagFIFO(Elaboratable):
    """A small first-in first-out buffer of ``depth`` words whose readies are registers.

    The same interface and timing as Amaranth's ``SyncFIFOBuffered`` (``w_data``, ``w_en``,
    ``w_rdy``; ``r_data``, ``r_en``, ``r_rdy``; a word written on one edge can be read from the
    next), but ``w_rdy`` and ``r_rdy`` come straight from flip-flops, set from the next fill
    level on each edge. The library FIFO derives them from its level through a comparator, and
    its ``w_rdy`` gates x's accept, which starts every MAC lane in the same cycle: on the
    LFE5U-85F that comparator sat at the head of the notebook network's critical path.
    """

    def __init__(self, width: int, depth: int):
        if depth < 1:
            self._MustUse__silence = True     # refused: not an unused design
            raise ValueError(f"TagFIFO depth must be at least 1, not {depth}")
        self.width, self.depth = width, depth
        self.w_data, self.w_en, self.w_rdy = Signal(width), Signal(), Signal(init=1)
        self.r_data, self.r_en, self.r_rdy = Signal(width), Signal(), Signal()
        self.level = Signal(range(depth + 1))

    def elaborate(self, platform):
        m = Module()
        depth = self.depth
        store = Array(Signal(self.width, name=f"word{k}", reset_less=True) for k in range(depth))
        w_ptr, r_ptr = Signal(range(depth)), Signal(range(depth))
        do_write = self.w_en & self.w_rdy
        do_read = self.r_en & self.r_rdy
        level_next = Signal(range(depth + 1))
        m.d.comb += [level_next.eq(self.level + do_write - do_read),
                     self.r_data.eq(store[r_ptr])]
        m.d.sync += [self.level.eq(level_next),
                     self.w_rdy.eq(level_next != depth), self.r_rdy.eq(level_next != 0)]
        with m.If(do_write):
            m.d.sync += [store[w_ptr].eq(self.w_data),
                         w_ptr.eq(Mux(w_ptr == depth - 1, 0, w_ptr + 1))]
        with m.If(do_read):
            m.d.sync += r_ptr.eq(Mux(r_ptr == depth - 1, 0, r_ptr + 1))
        return m


class StepTags(wiring.Component):
    """A step's framing (``first``, ``last``) from where a cell (or stack) accepts it to where
    its h comes out: a FIFO written on each accepted step, read on each delivered h.

    The FIFO's readies gate both streams, so nothing is lost whatever the depth; ``depth``
    should cover the steps the design holds at once (2 per cell) so that it never throttles.

    Members
    -------
    upstream_x : ``In(stream.Signature(step))``, ``downstream_x`` : ``Out(...)``
        The step stream into the design, passed through (framing recorded on each transfer).
    upstream_h : ``In(stream.Signature(output))``, ``h`` : ``Out(...)``
        The design's output, passed through, with the step's framing beside it.
    first, last : ``Out(1)``
        The framing of the step ``h`` offers now (valid with ``h.valid``).
    """

    def __init__(self, depth: int, step_layout, output_layout):
        self._depth = depth
        super().__init__({
            "upstream_x": In(stream.Signature(step_layout)),
            "downstream_x": Out(stream.Signature(step_layout)),
            "upstream_h": In(stream.Signature(output_layout)),
            "h": Out(stream.Signature(output_layout)),
            "first": Out(1), "last": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.fifo = tags = TagFIFO(width=2, depth=self._depth)
        up_x, up_h = self.upstream_x, self.upstream_h
        m.d.comb += [self.downstream_x.payload.eq(up_x.payload),
                     self.downstream_x.valid.eq(up_x.valid & tags.w_rdy),
                     up_x.ready.eq(self.downstream_x.ready & tags.w_rdy),
                     tags.w_data.eq(Cat(up_x.payload.first, up_x.payload.last)),
                     tags.w_en.eq(up_x.valid & up_x.ready)]
        m.d.comb += [self.h.payload.eq(up_h.payload),
                     self.h.valid.eq(up_h.valid & tags.r_rdy),
                     up_h.ready.eq(self.h.ready & tags.r_rdy),
                     self.first.eq(tags.r_data[0]), self.last.eq(tags.r_data[1]),
                     tags.r_en.eq(up_h.valid & up_h.ready)]
        return m


class StackedLSTM(wiring.Component):
    """L stacked LSTM layers: the same integers as the golden model's stacked run.

    Layer k is an :class:`LSTMCell` with its own config (formats may differ per layer), weights
    and lane count P_k; layer k+1's x is layer k's h cast into layer k+1's x format.

    Closed forms (inputs waiting, output not stalled), with CPS_k = layer k's
    :attr:`LSTMCell.cycles_per_step` (ceil(4H_k(X_k+H_k)/P_k) + 41 + ceil(log2 P_k))::

        cycles_per_step = max_k CPS_k           (steady-state step period: the slowest layer)
        latency         = sum_k CPS_k           (from accepting x_t to h_t of the last layer)

    A sequence of T steps takes latency + (T-1) * cycles_per_step cycles from its first accept
    to its last output. Balance the layers by choosing P_k so that the CPS_k are close.

    Parameters
    ----------
    configs : sequence of :class:`model.config.Config`
        One per layer (formats, tables; ``lanes`` unless ``lanes`` is given).
    weights : sequence of :class:`model.weights.QuantizedWeights`
        One per layer; layer k+1's X must equal layer k's H.
    lanes : sequence of int, optional
        P_k per layer (default: each config's ``[rtl] lanes``, capped at X_k+H_k).
    output_c : bool
        Also put the last layer's c_t on the output stream.

    Members
    -------
    x : ``In(stream.Signature(step))``
        Layer 0's input: X_0 codes in layer 0's x format, and ``first``.
    h : ``Out(stream.Signature(output))``
        The last layer's h (and c): as :class:`LSTMCell`'s ``h``.
    weights_l{k}, state_l{k} : ``In(...)``
        Layer k's weight-load and initial-state ports, exactly as :class:`LSTMCell`'s
        ``weights`` and ``state`` (same packet protocol, layer k's formats and sizes).
    error : ``Out(L)``
        Bit k: layer k's sticky load-packet error (see :class:`LSTMCell`).
    """

    def __init__(self, configs, weights, *, lanes=None, output_c=True):
        configs, weights = tuple(configs), tuple(weights)
        try:
            if not configs or len(configs) != len(weights):
                raise RTLError(f"configs and weights must have one entry per layer, not "
                               f"{len(configs)} and {len(weights)}")
            if lanes is None:
                lanes = [None] * len(weights)
            lanes = tuple(lanes)
            if len(lanes) != len(weights):
                raise RTLError(f"lanes must give one P per layer ({len(weights)}), not {len(lanes)}")
            for k in range(1, len(weights)):
                if weights[k].n_inputs != weights[k - 1].n_hidden:
                    raise RTLError(f"layer {k} takes X = {weights[k].n_inputs} inputs but layer "
                                   f"{k - 1} gives H = {weights[k - 1].n_hidden}")
            self._layers = []
            for k, (cfg, w, p) in enumerate(zip(configs, weights, lanes)):
                if p is None:
                    p = cfg.lanes_for(w.n_inputs, w.n_hidden)
                try:
                    self._layers.append(LSTMCell(cfg, w, lanes=p,
                                                 output_c=output_c and k == len(weights) - 1))
                except RTLError as e:
                    raise RTLError(f"layer {k}: {e}") from None
        except RTLError as e:
            for layer in getattr(self, "_layers", ()):   # built before the refusal: never used
                layer._MustUse__silence = True
            refuse(self, e)
        self._configs = configs
        first, last = self._layers[0], self._layers[-1]
        ports = {"x": In(stream.Signature(first.step_layout)),
                 "h": Out(stream.Signature(last.output_layout))}
        for k, layer in enumerate(self._layers):
            ports[f"weights_l{k}"] = In(stream.Signature(layer.geometry.load_layout))
            ports[f"state_l{k}"] = In(stream.Signature(layer.state_layout))
        ports["error"] = Out(len(self._layers))
        super().__init__(ports)

    @property
    def layers(self) -> tuple:
        """The :class:`LSTMCell` of each layer (read their geometry, closed forms)."""
        return tuple(self._layers)

    @property
    def n_layers(self) -> int:
        return len(self._layers)

    @property
    def cycles_per_step(self) -> int:
        return max(layer.cycles_per_step for layer in self._layers)

    @property
    def latency(self) -> int:
        return sum(layer.cycles_per_step for layer in self._layers)

    def cycles_per_sequence(self, steps: int) -> int:
        return self.latency + (steps - 1) * self.cycles_per_step

    @property
    def mac_efficiency(self) -> float:
        """Useful multiply-accumulates over lane-cycles, all layers, at the stack's pace."""
        work = sum(layer.geometry.n_weights for layer in self._layers)
        lanes = sum(layer.geometry.lanes for layer in self._layers)
        return work / (lanes * self.cycles_per_step)

    def elaborate(self, platform):
        m = Module()
        layers = self._layers
        for k, layer in enumerate(layers):
            m.submodules[f"layer{k}"] = layer
            wiring.connect(m, wiring.flipped(getattr(self, f"weights_l{k}")), layer.weights)
            wiring.connect(m, wiring.flipped(getattr(self, f"state_l{k}")), layer.state)
            m.d.comb += self.error[k].eq(layer.error)

        # x -> layer 0; layer k's h -> link k -> layer k+1's x; the last layer's h -> h
        upstream_x = wiring.flipped(self.x)
        for k in range(len(layers) - 1):
            link = LayerLink(layers[k], self._configs[k + 1], layers[k + 1].step_layout)
            m.submodules[f"link{k}"] = link
            wiring.connect(m, upstream_x, link.upstream_x)
            wiring.connect(m, link.downstream_x, layers[k].x)
            wiring.connect(m, layers[k].h, link.upstream_h)
            upstream_x = link.next_x
        wiring.connect(m, upstream_x, layers[-1].x)
        wiring.connect(m, layers[-1].h, wiring.flipped(self.h))
        return m


def lanes_per_layer(lanes, n_layers: int):
    """``--lanes``: None (each config's), one P for every layer, or one P per layer (a sequence,
    or text like ``"8,4"``)."""
    if lanes is None:
        return None
    if isinstance(lanes, str):
        try:
            lanes = [int(p) for p in lanes.split(",")]
        except ValueError:
            raise RTLError(f"lanes must be P or P0,P1,... (one per layer), not {lanes!r}") from None
    if isinstance(lanes, int):
        return (lanes,) * n_layers
    lanes = tuple(lanes)
    if len(lanes) == 1:
        return lanes * n_layers
    if len(lanes) != n_layers:
        raise RTLError(f"lanes must give one P per layer ({n_layers}), not {len(lanes)}")
    return lanes


def build_design(config: Config, stack, *, lanes=None, output_c=True, serial_output=False,
                 head=None, output_h=True, head_multiplier="dsp", head_lanes=1, logic_lanes=0):
    """The hardware for a model (an :class:`model.weights.LSTMStack`): an :class:`LSTMCell` for
    one layer, a :class:`StackedLSTM` for more; layer k quantized with ``config.for_layer(k)``.

    ``head``: put the model's classifier head after the last layer
    (:class:`rtl.head.ClassifiedLSTM`, its weights cast with the last layer's config); None:
    when the model has one and the output is parallel (the head reads whole h vectors).
    ``output_h`` False leaves the h stream out (only ``y``; needs the head).
    ``head_multiplier`` and ``head_lanes``: the head's multipliers (``"dsp"`` or ``"lut"``) and
    how many classes it works on at once (:class:`rtl.head.ClassifierHead`).
    ``logic_lanes``: of a one-layer model's P lanes, the last L multiply in logic
    (:class:`rtl.geometry.Geometry`).

    A model file's stored initial state is refused: the hardware takes its initial state through
    the ``state`` port(s) at run time.
    """
    from model.weights import InputError, LSTMWeights, quantize_weights
    if stack.h0 is not None or stack.c0 is not None:
        raise InputError("the hardware does not take the initial state stored in this model "
                         "file (ONNX initial_h/initial_c): load it through the state port")
    with_head = stack.has_head and not serial_output if head is None else bool(head)
    if with_head and not stack.has_head:
        raise RTLError("this model has no classifier head (head_weight, head_bias)")
    if with_head and serial_output:
        raise RTLError("the classifier head reads whole h vectors: the word-serial output needs "
                       "the design without the head (--no-head)")
    if not output_h and not with_head:
        raise RTLError("leaving out the h stream (--no-h) needs a classifier head: the design "
                       "would have no output")
    configs = [config.for_layer(k) for k in range(stack.n_layers)]
    qweights = [quantize_weights(layer, cfg) for layer, cfg in zip(stack.layers, configs)]
    per_layer = lanes_per_layer(lanes, stack.n_layers)
    if logic_lanes and stack.n_layers > 1:
        raise RTLError("logic lanes are for a one-layer model; this one has "
                       f"{stack.n_layers} layers")
    if stack.n_layers == 1:
        core = LSTMCell(configs[0], qweights[0], lanes=None if per_layer is None else per_layer[0],
                        output_c=output_c, serial_output=serial_output, logic_lanes=logic_lanes)
    elif serial_output:
        raise RTLError("the word-serial output is for one layer; a stacked model's layers pass "
                       "whole h vectors to each other")
    else:
        core = StackedLSTM(configs, qweights, lanes=per_layer, output_c=output_c)
    if not with_head:
        return core
    from .head import ClassifiedLSTM, ClassifierHead
    last = stack.layers[-1]
    q = quantize_weights(LSTMWeights(last.weight_ih, last.weight_hh, last.bias,
                                     stack.head_weight, stack.head_bias), configs[-1])
    try:
        unit = ClassifierHead(configs[-1], q.head_weight, q.head_bias, multiplier=head_multiplier,
                              lanes=head_lanes)
    except RTLError:
        core._MustUse__silence = True
        raise
    return ClassifiedLSTM(core, unit, output_h=output_h)


class StackTop(wiring.Component):
    """A :class:`StackedLSTM` (or one with a classifier head, :class:`rtl.head.ClassifiedLSTM`)
    behind the single cell's ports, for the plain Verilog testbench ``sim/verilog/tb_vectors.v``
    (``python -m rtl --single-ports``): ``x``, ``h`` (and ``y``) go straight through; ``weights`` and ``state`` (the last layer's layouts, as in the vectors) are never
    ready, so the testbench runs it without loads (``+noload``: the layers' memories hold the
    model's weights from the export). Per-layer loads are tested in the Amaranth and cocotb
    tests of the stack."""

    def __init__(self, stack):
        self._stack = stack
        layers = getattr(stack, "core", stack).layers
        last = layers[-1]
        ports = {
            "x": In(stream.Signature(layers[0].step_layout)),
            "h": Out(stream.Signature(last.output_layout)),
            "weights": In(stream.Signature(last.geometry.load_layout)),
            "state": In(stream.Signature(last.state_layout)),
        }
        if "y" in stack.signature.members:
            ports["y"] = Out(stream.Signature(stack.head.y_layout))
        super().__init__(ports)

    @property
    def cycles_per_step(self) -> int:
        return self._stack.cycles_per_step

    def elaborate(self, platform):
        m = Module()
        m.submodules.stack = self._stack
        wiring.connect(m, wiring.flipped(self.x), self._stack.x)
        wiring.connect(m, self._stack.h, wiring.flipped(self.h))
        if "y" in self.signature.members:
            wiring.connect(m, self._stack.y, wiring.flipped(self.y))
        m.d.comb += [self.weights.ready.eq(0), self.state.ready.eq(0)]
        return m
