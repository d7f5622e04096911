"""The classifier head on chip: the logits of the last layer's h at each ``last`` step, exactly
the golden model's ``logits_raw`` (:meth:`model.cell.FixedLSTM.head`), and their argmax.

    logit[c] = sum_u h[u] * W[c, u] << s_w  +  b[c] << s_b      (exact, F_l fraction bits)
    F_l = max(F_h + F_weight, F_bias),  s_w = F_l - F_h - F_weight,  s_b = F_l - F_bias
    label = the first c with the largest logit (numpy's argmax)

One serial multiply-accumulate does the C*H products, class by class, from a copy of the h
vector (a rotating register taken in one cycle) while the cell already runs the next sequence
(docs/architecture.md, "The classifier head").
"""
from amaranth.hdl import Module, Mux, ResetSignal, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

import numpy as np

from model.cell import head_frac, logit_bits
from model.config import Config

from .geometry import RTLError, refuse
from .lanemem import MEMORY_LATENCY, registered_memory
from .pipeline import copies_for, delay, lut_product, product_register, read_port, register_copies

__all__ = ["ClassifierHead", "ClassifiedLSTM", "Fork", "logit_format", "head_layouts"]

MULTIPLIERS = ("dsp", "lut")
#: most bits per chunk of the argmax's registered compare (a carry chain of 7 CCU2C on ECP5;
#: a logit of 37 to 39 bits is compared in three chunks)
COMPARE_CHUNK = 13
#: cycles from a weight's address to the weight (rtl.lanemem.MEMORY_LATENCY)
READ_LATENCY = MEMORY_LATENCY


def logit_format(config: Config, n_hidden: int) -> tuple[int, int]:
    """(bits, frac) of a logit code (:func:`model.cell.logit_bits`, :func:`model.cell.head_frac`):
    wide enough for any codes of the h, weight and bias formats, so a head with other weights
    of the same formats cannot overflow either."""
    return logit_bits(config, n_hidden), head_frac(config)


def head_layouts(config: Config, n_hidden: int, n_classes: int):
    """Payload layouts of the head's input (h codes and the step's ``last``) and of ``y``
    (C logit codes, then the label)."""
    wh = signed(config.fmt("h").bits)
    bits, _ = logit_format(config, n_hidden)
    h_in = data.StructLayout({"h": data.ArrayLayout(wh, n_hidden), "last": 1})
    y = data.StructLayout({"logits": data.ArrayLayout(signed(bits), n_classes),
                           "label": unsigned(max(1, ceil_log2(n_classes)))})
    return h_in, y


class ClassifierHead(wiring.Component):
    """C logits and the label of the h of each ``last`` step, in K serial MACs side by side.

    Parameters
    ----------
    config : :class:`model.config.Config`
        The last layer's config: h, weight and bias formats (the head's weights are cast into
        the weight and bias formats like the cell's).
    head_weight : int array (C, H)
        Weight codes (weight format), initialised into one memory (block RAM), row-major.
    head_bias : int array (C,)
        Bias codes (bias format), in a small memory of their own.
    multiplier : ``"dsp"`` or ``"lut"``
        The product in a multiplier block (``MULT18X18D`` on ECP5, with its output register) or
        in logic (:func:`lut_product`, ceil(log2 W_weight) registered adder levels), for
        designs whose DSPs are all spent.
    lanes : int
        K multiply-accumulates, 1 to C: in round r (R = ceil(C/K) rounds of H cycles) MAC k
        works on class r*K + k, all of them on the same unit of h, each from a memory of its
        own classes' rows. K = 1 is one serial MAC (C*H cycles); K = C finishes every logit in
        H cycles and costs C multipliers. With 1 < K < C a round's K logits leave for the argmax
        one every other cycle, so H >= 2K is required.

    Members
    -------
    h : ``In(stream.Signature(h_layout))``
        ``h``: the last layer's H codes (h format); ``last``: this step ends a sequence. A step
        without ``last`` is taken at once and dropped. A ``last`` step is taken in one cycle
        (into the head's rotating h register) once the previous sequence's ``y`` is taken and
        the head is idle.
    y : ``Out(stream.Signature(y_layout))``
        ``logits``: C codes of :func:`logit_format`; ``label``: the first class with the largest
        logit. One transfer per ``last`` step, held (valid and payload) until taken.

    Latency: ``y`` is taken ``latency`` = R*H + L_mul + 7 cycles after the edge an
    always-ready consumer would have taken the ``last`` step's h (L_mul = 1 for ``"dsp"``;
    + 6 when H = 1 and K = 1, where the argmax compare is not registered), + 2n - 1 with
    K > 1 (n = C - (R-1)K logits of the last round pass to the argmax one every other cycle).
    The head is busy for that long per sequence: throughput is the cell's while sequences take
    at least that many cycles (a stalled ``y`` or shorter sequences hold the cell's output).
    """

    def __init__(self, config: Config, head_weight, head_bias, *, multiplier: str = "dsp",
                 lanes: int = 1):
        head_weight = np.asarray(head_weight, np.int64)
        head_bias = np.asarray(head_bias, np.int64)
        try:
            if multiplier not in MULTIPLIERS:
                raise RTLError(f"multiplier must be one of {', '.join(MULTIPLIERS)}, not "
                               f"{multiplier!r}")
            if head_weight.ndim != 2 or head_bias.shape != head_weight.shape[:1] \
                    or 0 in head_weight.shape:
                raise RTLError(f"head_weight must be (C, H) and head_bias (C,), not "
                               f"{head_weight.shape} and {head_bias.shape}")
            for codes, name in ((head_weight, "weight"), (head_bias, "bias")):
                fmt = config.fmt(name)
                if codes.min() < fmt.min_code or codes.max() > fmt.max_code:
                    raise RTLError(f"head {name} codes must fit the {name} format "
                                   f"({fmt.bits} bits)")
            C, H = head_weight.shape
            if not isinstance(lanes, int) or isinstance(lanes, bool) or not 1 <= lanes <= C:
                raise RTLError(f"head lanes must be an integer from 1 to the {C} classes, "
                               f"not {lanes!r}")
            if 1 < lanes < C and H < 2 * lanes:
                raise RTLError(f"{lanes} head lanes over {C} classes need H >= {2 * lanes} "
                               f"(a round's logits leave one every other cycle), not H = {H}: "
                               f"use 1 or {C} lanes")
        except RTLError as e:
            refuse(self, e)
        self._config, self._multiplier, self.lanes = config, multiplier, lanes
        self._weight, self._bias = head_weight, head_bias
        self.n_classes, self.n_hidden = head_weight.shape
        self.rounds = -(-self.n_classes // lanes)
        self.logit_bits, self.logit_frac = logit_format(config, self.n_hidden)
        self.h_layout, self.y_layout = head_layouts(config, self.n_hidden, self.n_classes)
        super().__init__({"h": In(stream.Signature(self.h_layout)),
                          "y": Out(stream.Signature(self.y_layout))})

    @staticmethod
    def multiplier_latency(config: Config, multiplier: str) -> int:
        if multiplier == "dsp":
            return 1
        return max(1, ceil_log2(config.fmt("weight").bits))

    @property
    def latency(self) -> int:
        """Cycles from where an always-ready consumer takes the ``last`` h to ``y`` taken."""
        K, R = self.lanes, self.rounds
        feed = 2 * (self.n_classes - (R - 1) * K) - 1 if K > 1 else 0
        return (R * self.n_hidden + READ_LATENCY
                + self.multiplier_latency(self._config, self._multiplier) + 3
                + (self.n_hidden >= 2 or K > 1) + feed)

    def elaborate(self, platform):
        m = Module()
        cfg, C, H = self._config, self.n_classes, self.n_hidden
        fh, fw, fb = (cfg.fmt(n) for n in ("h", "weight", "bias"))
        s_w, s_b = self.logit_frac - fh.frac - fw.frac, self.logit_frac - fb.frac

        # MAC k holds the rows (and biases) of classes k, K + k, 2K + k, ... (zeros past the
        # last class), all MACs read at one address: the weights in block RAM read through
        # registers (DP16KD with its output register on ECP5: rtl.lanemem), the biases in small
        # memories of their own (built with each MAC, below)
        K, R = self.lanes, self.rounds
        addr = Signal(range(max(R * H, 2)))   # MAC: round * H + unit of the products issued
        rows = np.zeros((R * K, H), np.int64)
        rows[:C] = self._weight
        biases = np.zeros(R * K, np.int64)
        biases[:C] = self._bias

        y_full = Signal()                     # y holds a result not yet taken
        unit = Signal(range(max(H, 2)))       # MAC: unit of the product issued
        klass = Signal(range(max(R, 2)))      # MAC: round of the products issued (class if K = 1)

        # states, one-hot and explicit: idle (waiting for a `last` step), issue (R*H cycles),
        # drain (the last products go through the pipeline and the argmax)
        idle, issue, drain = Signal(init=1), Signal(), Signal()
        take = self.h.valid & self.h.payload.last & ~y_full
        # h.ready does not look at h.valid (only at the step's `last` bit and the head's own
        # state), so no combinational path runs from the core's valid back to its ready
        m.d.comb += self.h.ready.eq(~self.h.payload.last | (idle & ~y_full))
        # `at_end`: this is the last issue cycle, kept in a register (the compare of the
        # counter is not on the path into the state and the rotation's controls)
        at_end = Signal(init=int(R * H == 1))
        m.d.sync += at_end.eq(Mux(issue, (addr == R * H - 2) if R * H >= 2 else 0, R * H == 1))
        # the take decides into two flip-flops, `idle` and `took`, and nothing wider: the
        # products start on the cycle after `took`, from the h the take left in `h_in` (below)
        took = Signal()
        m.d.sync += [idle.eq(Mux(idle, ~take, drain & y_full)), took.eq(idle & take),
                     issue.eq(Mux(issue, ~at_end, took)),
                     drain.eq(Mux(drain, ~y_full, issue & at_end))]
        with m.If(issue):
            m.d.sync += [unit.eq(Mux(unit == H - 1, 0, unit + 1)), addr.eq(addr + 1)]
            with m.If(unit == H - 1):
                m.d.sync += klass.eq(klass + 1)
            with m.If(at_end):
                m.d.sync += [unit.eq(0), klass.eq(0), addr.eq(0)]

        # the h of a `last` step, taken in one cycle: `h_in` copies the input's h on every
        # edge (no enable), so the edge that takes the step leaves that step's h in it; the
        # rotating register `h_rot` loads `h_in` while the head is not issuing (what it holds
        # then is never read), then rotates by one unit per cycle (unit 0 is the product's
        # operand). Its select is copies of a register set from `took` or `issue` (registers
        # only: the handshake never fans out to them), each driving a share of the register.
        h_in = Signal(data.ArrayLayout(signed(fh.bits), H), reset_less=True)
        m.d.sync += h_in.eq(self.h.payload.h)
        h_rot = Signal(data.ArrayLayout(signed(fh.bits), H), reset_less=True)
        busy = register_copies(m, platform, took | issue, copies_for(H, fh.bits), "head_rotate")
        for u in range(H):
            rotate = busy[u * len(busy) // H]
            m.d.sync += h_rot[u].eq(Mux(rotate, h_rot[(u + 1) % H], h_in[u]))

        # read: weights (READ_LATENCY registers: rtl.lanemem), biases of the round (one memory
        # read, then registers beside the products), h unit 0 delayed to meet the weights
        h_q = delay(m, h_rot[0], READ_LATENCY, "h_q")
        first_u = delay(m, issue & (unit == 0), READ_LATENCY, "first_u", reset_less=False)
        last_u = delay(m, issue & (unit == H - 1), READ_LATENCY, "last_u", reset_less=False)
        klass_r = delay(m, klass, READ_LATENCY, "klass_r")

        lat = self.multiplier_latency(self._config, self._multiplier)
        first_p = delay(m, first_u, lat, "first_p", reset_less=False)
        last_p = delay(m, last_u, lat, "last_p", reset_less=False)
        klass_p = delay(m, klass_r, lat, "klass_p")

        # each MAC: its weights and biases, its product (a multiplier block with its output
        # register, or logic) and its accumulator, which starts a class from its bias (both
        # aligned to F_l fraction bits)
        accs = []
        for k in range(K):
            suffix = "" if K == 1 else str(k)
            weight_q = registered_memory(m, platform, signed(fw.bits),
                                         rows[k::K].reshape(-1).tolist(), f"weights{suffix}",
                                         addr)
            m.submodules[f"biases{suffix}"] = b_mem = Memory(
                shape=signed(fb.bits), depth=R, init=biases[k::K].tolist())
            b_rd = read_port(b_mem, f"biases{suffix}_rd")
            m.d.comb += b_rd.addr.eq(klass)
            if self._multiplier == "dsp":
                product = product_register(m, platform, h_q, weight_q, f"head_product{suffix}")
            else:
                product, levels = lut_product(m, h_q, weight_q, f"head_product{suffix}")
                assert levels == lat
            bias_p = delay(m, b_rd.data, READ_LATENCY - 1 + lat, f"bias{suffix}_p")
            acc = Signal(signed(self.logit_bits), name=f"acc{suffix}", reset_less=True)
            m.d.sync += acc.eq(Mux(first_p, bias_p << s_b, acc) + (product.as_signed() << s_w))
            accs.append(acc)
        done = delay(m, last_p, 1, "logit_done", reset_less=False)
        klass_a = delay(m, klass_p, 1, "klass_a")

        if K == 1:
            # one logit final at a time, straight into the argmax
            acc = accs[0]
        else:
            # a round's K logits final together: the first goes to the argmax on the next
            # edge, the rest wait in a shift register and follow one every other cycle (the
            # last round's n = C - (R-1)K; the rows past the last class are never sent)
            acc = Signal(signed(self.logit_bits), name="feed_logit", reset_less=True)
            klass_f0 = Signal(range(max(R * K, 2)), name="feed_class", reset_less=True)
            sent = Signal(name="feed_valid")
            bank = [Signal(signed(self.logit_bits), name=f"feed_bank{k}", reset_less=True)
                    for k in range(1, K)]
            left = Signal(range(K), name="feed_left")
            wait = Signal(name="feed_wait")
            m.d.sync += sent.eq(0)
            with m.If(done):
                n = Mux(klass_a == R - 1, C - (R - 1) * K, K)
                m.d.sync += [acc.eq(accs[0]), klass_f0.eq(klass_a * K), sent.eq(1),
                             left.eq(n - 1), wait.eq(1)]
                m.d.sync += [b.eq(a) for b, a in zip(bank, accs[1:])]
            with m.Elif(left != 0):
                m.d.sync += wait.eq(~wait)
                with m.If(~wait):
                    m.d.sync += [acc.eq(bank[0]), klass_f0.eq(klass_f0 + 1), sent.eq(1),
                                 left.eq(left - 1)]
                    m.d.sync += [b.eq(a) for b, a in zip(bank, bank[1:])]
            done, klass_a = sent, klass_f0

        # a class's logit is final: store it, and keep the first largest (numpy's argmax). With
        # H >= 2 or K > 1 a logit arrives at most every other cycle, so the compare against the
        # best so far is registered (its two halves apart) and the update of best and label, one
        # cycle later, reads those flags: the wide compare never drives the enables of ~40
        # flip-flops.
        logits = Signal(data.ArrayLayout(signed(self.logit_bits), C), reset_less=True)
        best = Signal(signed(self.logit_bits), reset_less=True)
        label = Signal.like(self.y.payload.label)
        if H >= 2 or K > 1:
            # the compare in chunks of at most COMPARE_CHUNK bits, each registered: the signed
            # top chunk and the unsigned rest greater, all but the lowest equal; `take` is then
            # one LUT level (two LUT4s and a mux) of those flip-flops
            n_chunks = -(-self.logit_bits // COMPARE_CHUNK)
            bounds = [k * self.logit_bits // n_chunks for k in range(n_chunks + 1)]
            for k, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
                signed_chunk = hi == self.logit_bits
                a = acc[lo:hi].as_signed() if signed_chunk else acc[lo:hi]
                b = best[lo:hi].as_signed() if signed_chunk else best[lo:hi]
                gt = Signal(name=f"take_gt{k}", reset_less=True)
                m.d.sync += gt.eq(a > b)
                if k == 0:
                    take = gt
                else:
                    eq = Signal(name=f"take_eq{k}", reset_less=True)
                    m.d.sync += eq.eq(a == b)
                    take = gt | (eq & take)
            first_class = Signal(name="take_first_class", reset_less=True)
            m.d.sync += first_class.eq(klass_a == 0)
            take = first_class | take
            final = delay(m, acc, 1, "logit_final")
            klass_f = delay(m, klass_a, 1, "klass_final")
            done_f = delay(m, done, 1, "logit_done_final", reset_less=False)
        else:
            take = (klass_a == 0) | (acc > best)
            final, klass_f, done_f = acc, klass_a, done
        with m.If(done_f):
            m.d.sync += logits[klass_f].eq(final)
            with m.If(take):
                m.d.sync += [best.eq(final), label.eq(klass_f)]
            with m.If(klass_f == C - 1):
                m.d.sync += y_full.eq(1)

        m.d.comb += [self.y.valid.eq(y_full & ~ResetSignal()), self.y.payload.logits.eq(logits),
                     self.y.payload.label.eq(label)]
        with m.If(self.y.valid & self.y.ready):
            m.d.sync += y_full.eq(0)
        return m


class Fork(wiring.Component):
    """One stream to two consumers: each takes the payload once; the source's transfer completes
    when both have (the payload is held until then)."""

    def __init__(self, layout):
        super().__init__({"i": In(stream.Signature(layout)), "a": Out(stream.Signature(layout)),
                          "b": Out(stream.Signature(layout))})

    def elaborate(self, platform):
        m = Module()
        taken_a, taken_b = Signal(), Signal()
        m.d.comb += [self.a.payload.eq(self.i.payload), self.b.payload.eq(self.i.payload),
                     self.a.valid.eq(self.i.valid & ~taken_a),
                     self.b.valid.eq(self.i.valid & ~taken_b),
                     self.i.ready.eq((taken_a | self.a.ready) & (taken_b | self.b.ready))]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [taken_a.eq(0), taken_b.eq(0)]
        with m.Else():
            m.d.sync += [taken_a.eq(taken_a | (self.a.valid & self.a.ready)),
                         taken_b.eq(taken_b | (self.b.valid & self.b.ready))]
        return m


class ClassifiedLSTM(wiring.Component):
    """A cell or a stack (``core``) with the classifier head after its last layer: the core's
    ports (``x``, ``h`` unless ``output_h`` is False, the load ports, ``error``) and ``y``.

    Each step's ``last`` bit is recorded as the core accepts the step and reattached to its h
    (:class:`rtl.stack.StepTags`); the h goes both to the ``h`` port and to the head
    (:class:`Fork`: the core's output is free once both took it), or only to the head.

    Closed forms (inputs waiting, outputs always ready): ``cycles_per_step`` is the core's;
    ``cycles_per_sequence(T)`` = the core's + :attr:`ClassifierHead.latency`, from the first
    accept of a sequence to its ``y`` taken.
    """

    def __init__(self, core, head: ClassifierHead, *, output_h: bool = True):
        self._core, self._head, self._output_h = core, head, bool(output_h)
        members = dict(core.signature.members.items())
        if not self._output_h:
            del members["h"]
        members["y"] = Out(stream.Signature(head.y_layout))
        super().__init__(members)

    @property
    def core(self):
        return self._core

    @property
    def head(self) -> ClassifierHead:
        return self._head

    @property
    def output_h(self) -> bool:
        return self._output_h

    @property
    def cycles_per_step(self) -> int:
        return self._core.cycles_per_step

    def cycles_per_sequence(self, steps: int) -> int:
        return self._core.cycles_per_sequence(steps) + self._head.latency

    def elaborate(self, platform):
        from .stack import StepTags
        m = Module()
        core, head = self._core, self._head
        m.submodules.core, m.submodules.head = core, head
        for name in self.signature.members:
            if name in ("x", "h", "y"):
                continue
            if name == "error":
                m.d.comb += self.error.eq(core.error)
            else:                               # load ports: straight through
                wiring.connect(m, wiring.flipped(getattr(self, name)), getattr(core, name))

        # `last` beside each step, from the core's input to its output
        step, output = core.x.payload.shape(), core.h.payload.shape()
        layers = len(getattr(core, "layers", (core,)))
        m.submodules.tags = tags = StepTags(2 * layers, step, output)
        wiring.connect(m, wiring.flipped(self.x), tags.upstream_x)
        wiring.connect(m, tags.downstream_x, core.x)
        wiring.connect(m, core.h, tags.upstream_h)

        # the h to the `h` port and the head, or to the head only
        source = tags.h
        if self._output_h:
            m.submodules.fork = fork = Fork(output)
            wiring.connect(m, tags.h, fork.i)
            wiring.connect(m, fork.a, wiring.flipped(self.h))
            source = fork.b
        m.d.comb += [head.h.valid.eq(source.valid), source.ready.eq(head.h.ready),
                     head.h.payload.h.eq(source.payload.h), head.h.payload.last.eq(tags.last)]
        wiring.connect(m, head.y, wiring.flipped(self.y))
        return m
