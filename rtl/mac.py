"""P multiply-accumulate lanes time-sharing the 4H x (X+H) weight matrix (DESIGN.md §5)."""
from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .geometry import Geometry
from .pipeline import tree_sum

__all__ = ["MACArray"]


class MACArray(wiring.Component):
    """Exact W v + b for every row of the (unit-interleaved) weight matrix.

    The matrix is read as one flat row-major stream of E = 4H(X+H) weights, P per cycle: lane j
    at cycle t multiplies element e = tP + j by entry e mod (X+H) of the vector. A rotating
    vector register (rotate by P each cycle, free wiring) puts those entries in front of the
    lanes. With P <= X+H a cycle holds at most one row end; lanes before it finish the row, the
    rest start the next one (segmented accumulation), so no lane idles and a step takes exactly
    ``issue_cycles`` = ceil(E / P) cycles, the MAC bound.

    Pipeline: weight ROM read (1), products (1), masked lane sums (1), accumulate (1): a row that
    ends at issue cycle t appears on ``row_acc`` at t + :attr:`latency`.

    Parameters
    ----------
    geometry : :class:`rtl.geometry.Geometry`
        Sizes, formats and the initial (quantized) weights in memory order.

    Members
    -------
    vector : ``In(ArrayLayout(signed(W_v), X+H))``
        [x_t; h_{t-1}] in the common vector format (captured when ``start`` is high).
    start : ``In(1)``
        Begin a step (ignored while ``busy``).
    busy : ``Out(1)``
        Issuing the step's ``issue_cycles`` cycles.
    row_acc : ``Out(signed(W_acc))``
        Exact accumulator of a finished row (bias included), accumulator format.
    row : ``Out(range(4H))``
        Its row number in memory order (row 4u + gate holds unit u's gate i, f, g, o).
    row_valid : ``Out(1)``
    load : ``In(stream.Signature(load_layout))``
        Runtime weight load: words in :meth:`Geometry.load_words` order; ``first`` restarts it.
    load_enable : ``In(1)``
        The top level allows loads only while no step runs.
    """

    latency = 4

    def __init__(self, geometry: Geometry):
        self._g = g = geometry
        super().__init__({
            "vector": In(data.ArrayLayout(signed(g.vector_fmt.bits), g.n_columns)),
            "start": In(1),
            "busy": Out(1),
            "row_acc": Out(signed(g.acc_fmt.bits)),
            "row": Out(range(g.n_rows)),
            "row_valid": Out(1),
            "load": In(stream.Signature(g.load_layout)),
            "load_enable": In(1),
        })

    @property
    def geometry(self) -> Geometry:
        return self._g

    def elaborate(self, platform):
        m = Module()
        g = self._g
        P, N, M = g.lanes, g.n_columns, g.issue_cycles

        # weight memories, one per lane, and the bias memory (both writable at run time)
        lane_init = g.lane_memories()
        weight_rd, weight_wr = [], []
        for j in range(P):
            mem = Memory(shape=signed(g.weight_fmt.bits), depth=M, init=lane_init[j])
            m.submodules[f"weights{j}"] = mem
            weight_rd.append(mem.read_port())
            weight_wr.append(mem.write_port())
        m.submodules.biases = bias_mem = Memory(
            shape=signed(g.bias_fmt.bits), depth=g.n_rows, init=g.bias_memory())
        bias_rd = bias_mem.read_port(domain="comb")
        bias_wr = bias_mem.write_port()

        # runtime load: word counter -> (lane, address) for weights, then bias address
        count = Signal(range(g.n_words))
        lane, addr = Signal(range(P)), Signal(range(max(M, 2)))
        word = Mux(self.load.payload.first, 0, count)
        w_lane = Mux(self.load.payload.first, 0, lane)
        w_addr = Mux(self.load.payload.first, 0, addr)
        fire = self.load.valid & self.load.ready
        m.d.comb += self.load.ready.eq(self.load_enable)
        for j in range(P):
            m.d.comb += [weight_wr[j].addr.eq(w_addr), weight_wr[j].data.eq(self.load.payload.data),
                         weight_wr[j].en.eq(fire & (word < g.n_weights) & (w_lane == j))]
        m.d.comb += [bias_wr.addr.eq(word - g.n_weights), bias_wr.data.eq(self.load.payload.data),
                     bias_wr.en.eq(fire & (word >= g.n_weights))]
        with m.If(fire):
            last_word = word == g.n_words - 1
            m.d.sync += [count.eq(Mux(last_word, 0, word + 1)),
                         lane.eq(Mux(last_word | (w_lane == P - 1), 0, w_lane + 1)),
                         addr.eq(Mux(last_word, 0, w_addr + (w_lane == P - 1)))]

        # issue: address t, column of lane 0, rotating vector register
        t = Signal(range(max(M, 2)))
        col0 = Signal(range(N))
        vec = Signal(data.ArrayLayout(signed(g.vector_fmt.bits), N))
        with m.If(self.start & ~self.busy):
            m.d.sync += [vec.eq(self.vector), t.eq(0), col0.eq(0), self.busy.eq(1)]
        with m.Elif(self.busy):
            m.d.sync += [vec[n].eq(vec[(n + P) % N]) for n in range(N)]
            m.d.sync += [t.eq(t + 1), col0.eq(Mux(col0 + P >= N, col0 + P - N, col0 + P))]
            with m.If(t == M - 1):
                m.d.sync += self.busy.eq(0)
        for j in range(P):
            m.d.comb += weight_rd[j].addr.eq(t)

        # stage 1: lane operands (ROM data arrives now); mask = lane still in the current row
        operand = [Signal(signed(g.vector_fmt.bits), name=f"operand{j}") for j in range(P)]
        mask1, ends1 = Signal(P), Signal()
        valid1, first1 = Signal(), Signal()
        m.d.sync += [operand[j].eq(vec[j]) for j in range(P)]
        m.d.sync += [mask1.eq(Cat(col0 + j < N for j in range(P))), ends1.eq(col0 + P >= N),
                     valid1.eq(self.busy), first1.eq(self.busy & (t == 0))]

        # stage 2: products
        prod_shape = signed(g.vector_fmt.bits + g.weight_fmt.bits)
        product = [Signal(prod_shape, name=f"product{j}") for j in range(P)]
        mask2, ends2, valid2, first2 = Signal(P), Signal(), Signal(), Signal()
        m.d.sync += [product[j].eq(weight_rd[j].data * operand[j]) for j in range(P)]
        m.d.sync += [mask2.eq(mask1), ends2.eq(ends1), valid2.eq(valid1), first2.eq(first1)]

        # stage 3: lane sums before (this row) and after (next row) the row end
        sum_shape = signed(prod_shape.width + P.bit_length())
        this_row, next_row = Signal(sum_shape), Signal(sum_shape)
        ends3, valid3, first3 = Signal(), Signal(), Signal()
        m.d.sync += [this_row.eq(tree_sum(Mux(mask2[j], product[j], 0) for j in range(P))),
                     next_row.eq(tree_sum(Mux(mask2[j], 0, product[j]) for j in range(P))),
                     ends3.eq(ends2), valid3.eq(valid2), first3.eq(first2)]

        # stage 4: accumulate; a finished row adds its bias and leaves, the next row begins
        acc, row = Signal(signed(g.acc_fmt.bits)), Signal(range(g.n_rows))
        acc_in = Mux(first3, 0, acc)
        row_in = Mux(first3, 0, row)
        total = acc_in + (this_row << g.product_shift)
        m.d.comb += bias_rd.addr.eq(row_in)
        m.d.sync += self.row_valid.eq(valid3 & ends3)
        with m.If(valid3):
            with m.If(ends3):
                m.d.sync += [self.row_acc.eq(total + (bias_rd.data << g.bias_shift)),
                             self.row.eq(row_in),
                             acc.eq(next_row << g.product_shift), row.eq(row_in + 1)]
            with m.Else():
                m.d.sync += [acc.eq(total), row.eq(row_in)]
        return m
