"""P multiply-accumulate lanes time-sharing the 4H x (X+H) weight matrix (docs/architecture.md)."""
from functools import partial

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, Value, signed
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .geometry import Geometry
from .lanemem import BLOCK_WORDS, MEMORY_LATENCY, block_count, registered_memory
from .pipeline import (booth_product, copies_for, delay, product_register, read_port,
                       register_copies, register_word_copies, write_port)

__all__ = ["LANE_GROUP", "MACArray"]

LANE_GROUP = 8
"""Lanes per group: each group has its own registered copy of the memory address and of the
load word, so no address or enable fans out to more than a group's memories."""

BIAS_BANK_BITS = 5
BIAS_BANK = 1 << BIAS_BANK_BITS
"""Rows per bank of the bias memory: the read is a bank's LUT RAM word into a register, then a
select among the banks into the next (at H = 128, 16 banks of 32 rows)."""

BLOCK_ADDRESS_BITS = BLOCK_WORDS.bit_length() - 1
"""Address bits within one block of a lane's memory (the bits above pick the block)."""

BIAS_GROUP = 4
BIAS_GROUP_BITS = BIAS_BANK_BITS + (BIAS_GROUP - 1).bit_length()
"""Banks per group of the bias read: a group's select, then the groups' select, each at most
BIAS_GROUP words wide (rows of a group: 1 << BIAS_GROUP_BITS)."""

ADDRESS_STAGES = 1
"""The memory address register of each group (t, or the load's address, one cycle late)."""


class MACArray(wiring.Component):
    """Exact W v + b for every row of the (unit-interleaved) weight matrix.

    The matrix is read as one flat row-major stream of E = 4H(X+H) weights, P per cycle: lane j
    at cycle t multiplies element e = tP + j by entry e mod (X+H) of the vector. A rotating
    vector register (rotate by P each cycle, free wiring) puts those entries in front of the
    lanes. With P <= X+H a cycle holds at most one row end; lanes before it finish the row, the
    rest start the next one (segmented accumulation), so no lane idles and a step takes exactly
    ``issue_cycles`` = ceil(E / P) cycles, the MAC bound. With X+H < P <= 2(X+H)
    (:attr:`Geometry.wide`) a cycle holds one or two row ends: three lane sums, and the rows
    leave on two ports, even rows on ``row_acc`` and odd rows on ``row_acc1``
    (docs/architecture.md). The last :attr:`Geometry.logic_lanes` lanes multiply in logic
    (:func:`rtl.pipeline.booth_product`). The vector is captured into a register
    on every edge (so on the ``start`` edge); the rotating register and the lanes' counters
    start from that copy a cycle after the memory addresses, so ``start`` drives one
    flip-flop and no handshake fans out across the lanes.

    Pipeline, one carry chain, one multiplier or one block RAM register per stage: memory
    address register (1), weight memory read and its output register
    (:data:`rtl.lanemem.MEMORY_LATENCY` = 3: read, block RAM output register, weight register),
    the DSP blocks' input registers (1), products (1), the products' fabric registers (1),
    alignment, mask and the lane sums
    (:attr:`tree_levels`, one adder level each; the bias banks read in the last), accumulate
    and the bias banks' groups selected (1), the bias group selected (1), bias added (1): a
    row that ends at issue cycle t appears on
    ``row_acc`` at t + :attr:`latency`. With the :class:`rtl.pipeline.ECP5` platform the
    memories are DP16KD primitives read through their output register and the products
    MULT18X18D input and output registers, each followed by a fabric register; otherwise plain
    memories and products (the products' fabric register before the multiplier), same cycles.

    Parameters
    ----------
    geometry : :class:`rtl.geometry.Geometry`
        Sizes, formats and the initial (quantized) weights in memory order.

    Members
    -------
    vector : ``In(ArrayLayout(signed(max(W_x, W_h)), X+H))``
        [x_t; h_{t-1}] as raw codes, x then h (read on the ``start`` cycle); the lanes align
        each product to the accumulator after multiplying.
    start : ``In(1)``
        Begin a step (ignored while ``busy``).
    busy : ``Out(1)``
        Issuing the step's ``issue_cycles`` cycles.
    row_acc : ``Out(signed(W_acc))``
        Exact accumulator of a finished row (bias included), accumulator format.
    row : ``Out(range(4H))``
        Its row number in memory order (row 4u + gate holds unit u's gate i, f, g, o).
    row_valid : ``Out(1)``
        (wide: the even rows only)
    row_acc1, row1, row_valid1 : the odd rows, when :attr:`Geometry.wide` (a row per port per
        cycle at most; the two rows of a cycle leave together)
    load_data : ``In(signed(max(W_weight, W_bias)))``
        Runtime weight load: one code of :meth:`Geometry.load_words`, sign-extended.
    load_write : ``In(1)``
        Write ``load_data`` as the next word of the load (the top level writes only between
        steps, and only words of a framed packet). A bias is written 2 edges later, a weight
        5 edges later (through its lane group's registers); ``start`` may come on the next
        edge (the weights come before the 4H biases, so no read overtakes a write).
    load_restart : ``In(1)``
        This word is word 0 of a load (with ``load_write``).
    load_at_end : ``Out(1)``
        The word offered now would be the load's last word, N-1 (N = :attr:`Geometry.n_words`);
        ``load_restart`` selecting between a constant and a register.
    """

    @staticmethod
    def tree_levels_for(lanes: int) -> int:
        """Adder levels (pipeline stages) of the lane sums: ceil(log2 P), at least 1."""
        return max(1, ceil_log2(lanes))

    @staticmethod
    def latency_for(lanes: int, logic_delay: int = 0) -> int:
        """:attr:`latency` of a MACArray with P = ``lanes``: 10 + ceil(log2 P) (13 at P = 8),
        + :attr:`Geometry.logic_delay` with logic lanes (1 at 16-bit weights)."""
        return (3 + ADDRESS_STAGES + MEMORY_LATENCY + 3 + MACArray.tree_levels_for(lanes)
                + logic_delay)

    @property
    def tree_levels(self) -> int:
        return self.tree_levels_for(self._g.lanes)

    @property
    def latency(self) -> int:
        return self.latency_for(self._g.lanes, self._g.logic_delay)

    def __init__(self, geometry: Geometry):
        self._g = g = geometry
        ports = {
            "vector": In(data.ArrayLayout(signed(g.operand_bits), g.n_columns)),
            "start": In(1),
            "busy": Out(1),
            "row_acc": Out(signed(g.acc_fmt.bits)),
            "row": Out(range(g.n_rows)),
            "row_valid": Out(1),
            "load_data": In(signed(g.load_data_bits)),
            "load_write": In(1),
            "load_restart": In(1),
            "load_at_end": Out(1),
        }
        if g.wide:
            ports.update({"row_acc1": Out(signed(g.acc_fmt.bits)), "row1": Out(range(g.n_rows)),
                          "row_valid1": Out(1)})
        super().__init__(ports)

    @property
    def geometry(self) -> Geometry:
        return self._g

    def elaborate(self, platform):
        m = Module()
        g = self._g
        P, N, M = g.lanes, g.n_columns, g.issue_cycles
        wide = g.wide
        # the lanes' column numbers move by S per cycle (P mod N: P - N with more lanes than
        # columns, N itself at P = 2N, which leaves them in place)
        S = P - N if wide else P

        # the bias memory (writable at run time) in banks of BIAS_BANK rows, each a LUT RAM
        # (see the bias read below)
        bias_init = g.bias_memory()
        n_banks = -(-g.n_rows // BIAS_BANK)
        bias_banks = []
        for k in range(n_banks):
            rows = bias_init[k * BIAS_BANK:(k + 1) * BIAS_BANK]
            name = "biases" if n_banks == 1 else f"biases{k}"
            bank = Memory(shape=signed(g.bias_fmt.bits), depth=len(rows), init=rows,
                          attrs={"ram_style": "distributed"})
            m.submodules[name] = bank
            # with two rows per cycle (wide), a second read port: the second row's bias
            reads = [read_port(bank, f"{name}_rd", domain="comb")]
            if wide:
                reads.append(read_port(bank, f"{name}_rd1", domain="comb"))
            bias_banks.append((reads, write_port(bank, f"{name}_wr")))

        # runtime load, in two halves one cycle apart. On the handshake (`fire`) only the word
        # counter and its flags (the load's last word? a bias?) move: what `load_at_end` and
        # the packet logic need for the next word. The word itself (data, restart, last, bias)
        # goes into registers, and a cycle later (`fire_q`) the lane, the address within the
        # lane and the bias address move: the handshake reaches a few flip-flops, not every
        # counter. Every next value is a select among registers and constants on (last word?
        # restart?): the increments, the compares and the flags are registers kept beside the
        # counters, so no adder or compare lies behind the restart select. The bias address
        # is a counter of its own (the biases are the load's last 4H words).
        count_inc = Signal(range(g.n_words + 2), init=1)  # the number of the word after this
        at_last = Signal(init=int(g.n_words == 1))      # this word is number N - 1
        in_bias = Signal()                               # this word's number >= n_weights
        restart = self.load_restart
        fire = self.load_write
        m.d.comb += self.load_at_end.eq(Mux(restart, g.n_words == 1, at_last))

        def after(last_word, restart, from_last, from_restart, otherwise):
            """The next value: after the last word, after word 0, after any other."""
            return Mux(last_word, from_last, Mux(restart, from_restart, otherwise))

        with m.If(fire):
            step = partial(after, self.load_at_end, restart)
            m.d.sync += [count_inc.eq(step(1, 2, count_inc + 1)),
                         at_last.eq(step(g.n_words == 1, g.n_words == 2,
                                         count_inc == g.n_words - 1)),
                         in_bias.eq(step(0, g.n_weights == 1,
                                         in_bias | (count_inc == g.n_weights)))]
        fire_q = Signal()
        restart_q, last_q, bias_q = (Signal(name=n, reset_less=True)
                                     for n in ("restart_q", "last_q", "bias_q"))
        data_q = Signal.like(self.load_data, name="load_data_q", reset_less=True)
        m.d.sync += [fire_q.eq(fire), restart_q.eq(restart), last_q.eq(self.load_at_end),
                     bias_q.eq(~restart & in_bias), data_q.eq(self.load_data)]

        load_lane = Signal(range(P))
        lane_at_end = Signal(init=int(P == 1))          # load_lane == P - 1
        load_addr = Signal(range(max(M, 2)))
        bias_count = Signal(range(g.n_rows))
        w_lane = Signal(range(P))
        w_addr = Signal(range(max(M, 2)))
        m.d.comb += [w_lane.eq(Mux(restart_q, 0, load_lane)),
                     w_addr.eq(Mux(restart_q, 0, load_addr))]
        with m.If(fire_q):
            step = partial(after, last_q, restart_q)
            m.d.sync += [bias_count.eq(Mux(last_q | ~bias_q, 0, bias_count + 1)),
                         load_lane.eq(step(0, int(P > 1), Mux(lane_at_end, 0, load_lane + 1))),
                         lane_at_end.eq(step(P == 1, P <= 2,
                                             Mux(lane_at_end, P == 1, load_lane == P - 2))),
                         load_addr.eq(step(0, int(P == 1), load_addr + lane_at_end))]

        # issue, in two halves one cycle apart. The address side (`busy`, t, `at_end`) starts
        # on the `start` edge: `start` (the x handshake) drives one flip-flop, `busy`, and
        # nothing else. The operand side (the rotating vector register, the lanes' column
        # counters and the control word beside them) follows one cycle later, from copies of
        # `busy` (a register into registers, no logic): no handshake fans out across the
        # lanes. It catches up at the products, having one register fewer to wait through than
        # the weights' address and memory (so the latency is the same).
        t = Signal(range(max(M, 2)))
        # `at_end`: t == M - 1 on this cycle, kept in a register (t's compare is not on the
        # path into `busy`)
        at_end = Signal(init=int(M == 1))
        m.d.sync += at_end.eq(Mux(self.busy, (t == M - 2) if M >= 2 else 0, M == 1))
        m.d.sync += self.busy.eq(Mux(self.busy, ~at_end, self.start))
        with m.If(self.busy):
            m.d.sync += t.eq(t + 1)
        with m.Else():
            m.d.sync += t.eq(0)

        # the operand side: `vector` captured on every edge (so on the `start` edge), the
        # rotating register loaded from that copy while idle, rotated by P per cycle while
        # `issuing` (busy one cycle late, in copies: each the select of a share of the vector
        # register or of the column counters). Each lane's column (col0 + j mod N) is a counter
        # of its own: the per-lane flags below are then constant compares, not adders. At
        # P = N or 2N (S = N) the columns never move: each is the constant j mod N.
        vector_q = Signal(data.ArrayLayout(signed(g.operand_bits), N), reset_less=True)
        m.d.sync += vector_q.eq(self.vector)
        fixed_columns = S == N
        if fixed_columns:
            column = [Const(j % N, range(N)) for j in range(P)]
        else:
            column = [Signal(range(N), name=f"column{j}", init=j % N) for j in range(P)]
        vec = Signal(data.ArrayLayout(signed(g.operand_bits), N), reset_less=True)
        vec_busy = register_copies(m, platform, self.busy, copies_for(N, g.operand_bits),
                                   "busy_vec")
        issuing = delay(m, self.busy, 1, "issuing", reset_less=False)    # busy, a cycle late
        for n in range(N):
            with m.If(vec_busy[n * len(vec_busy) // N]):
                m.d.sync += vec[n].eq(vec[(n + P) % N])
            with m.Else():
                m.d.sync += vec[n].eq(vector_q[n])
        if not fixed_columns:
            lane_busy = register_copies(m, platform, self.busy, copies_for(P, 8), "busy_lane")
            for j in range(P):
                with m.If(lane_busy[j * len(lane_busy) // P]):
                    m.d.sync += column[j].eq(Mux(column[j] >= N - S, column[j] + S - N,
                                                 column[j] + S))
                with m.Else():
                    m.d.sync += column[j].eq(j % N)

        # the load word into registers (two cycles after the handshake): weight address, lane
        # and data, or the bias address. Bias writes happen on the next edge (LUT RAM).
        write_addr = Signal.like(w_addr, reset_less=True)
        write_lane = Signal.like(w_lane, reset_less=True)
        write_data = Signal.like(self.load_data, reset_less=True)
        write_weight = Signal()
        write_bias = Signal()
        bias_addr = Signal(range(g.n_rows), reset_less=True)
        m.d.sync += [write_addr.eq(w_addr), write_lane.eq(w_lane), write_data.eq(data_q),
                     write_weight.eq(fire_q & ~bias_q), write_bias.eq(fire_q & bias_q),
                     bias_addr.eq(bias_count)]
        for k, (_, bias_wr) in enumerate(bias_banks):
            m.d.comb += [bias_wr.addr.eq(bias_addr[:len(bias_wr.addr)]),
                         bias_wr.data.eq(write_data),
                         bias_wr.en.eq(write_bias & ((bias_addr >> BIAS_BANK_BITS) == k))]

        # weight memories, one per lane, in groups of LANE_GROUP lanes. Each group has its own
        # copy of the load word (registers: the address, the data, the lane within the group
        # and whether the word is the group's), then a second copy beside the lanes' write
        # enables, then its own memory address register, which takes t during a step and the
        # load's address between steps (a block RAM then needs no read-during-write bypass:
        # loads and steps never overlap), beside the data. Each lane's write enable is decoded
        # (the group's word, this lane, this block of the lane's memory) into a register of the
        # lane's own, then copied into the register that drives the block's enable: nothing fans
        # out to every lane in one cycle, and no decode lies between a register and a block
        # RAM. A weight word is written 5 edges after the handshake; weights precede the 4H
        # biases in a load, so every weight is in memory before a step reads it.
        lane_init = g.lane_memories()
        blocks = block_count(M)
        weight_data = []
        for first_lane in range(0, P, LANE_GROUP):
            k = first_lane // LANE_GROUP
            lanes = range(first_lane, min(P, first_lane + LANE_GROUP))
            group_addr = Signal.like(w_addr, name=f"group{k}_load_addr", reset_less=True)
            group_sub = Signal(range(LANE_GROUP), name=f"group{k}_load_lane", reset_less=True)
            group_data = Signal.like(write_data, name=f"group{k}_load_data", reset_less=True)
            group_write = Signal(name=f"group{k}_load_write")
            mine = (write_lane // LANE_GROUP == k) if P > LANE_GROUP else 1
            m.d.sync += [group_addr.eq(write_addr), group_sub.eq(write_lane % LANE_GROUP),
                         group_data.eq(write_data), group_write.eq(write_weight & mine)]
            group_addr2 = delay(m, group_addr, 1, f"group{k}_load_addr2")
            group_data2 = delay(m, group_data, 1, f"group{k}_load_data2")
            mem_addr = Signal.like(w_addr, name=f"group{k}_addr", reset_less=True)
            mem_data = Signal(signed(g.weight_fmt.bits), name=f"group{k}_data", reset_less=True)
            m.d.sync += [mem_addr.eq(Mux(self.busy, t, group_addr2)), mem_data.eq(group_data2)]
            for j in lanes:
                enables = []
                for b in range(blocks):
                    hit = group_write & (group_sub == j % LANE_GROUP)
                    if blocks > 1:
                        hit = hit & (group_addr[BLOCK_ADDRESS_BITS:] == b)
                    decoded = Signal(name=f"write_lane{j}_block{b}")
                    m.d.sync += decoded.eq(hit)
                    enables.append(delay(m, decoded, 1, f"write_lane{j}_block{b}",
                                         reset_less=False))
                weight_data.append(registered_memory(
                    m, platform, signed(g.weight_fmt.bits), lane_init[j], f"weights{j}",
                    mem_addr, mem_data, enables))

        # per lane: still in the current row (col0 + j < N, i.e. no wrap: column >= j)? an x
        # column (else h)? The row ends in this cycle when lane 0's column is N - P or later.
        # With more lanes than columns (wide) a cycle spans the current row, the next and the
        # one after (col0 + j < N, < 2N, else): lanes j < N are in the current row when
        # column >= j (else the next), lanes j >= N in the row after next when column < j - N
        # (else the next); the current row always ends, the next one too when lane 0's column
        # is 2N - P or later.
        if wide:
            ctl0 = {"s0": Cat(column[j] >= j for j in range(N)),
                    "s2": Cat(column[j] < j - N for j in range(N, P)),
                    "is_x": Cat(column[j] < g.n_inputs for j in range(P)),
                    "ends": 1, "ends2": column[0] >= 2 * N - P, "valid": issuing}
        else:
            ctl0 = {"mask": Cat(column[j] >= j for j in range(P)),
                    "is_x": Cat(column[j] < g.n_inputs for j in range(P)),
                    "ends": column[0] >= N - P, "valid": issuing}

        def carry(ctl, stage):
            """The control word one stage further down the pipeline (only ``valid`` needs a
            reset: the rest is read only when it is high)."""
            out = {k: Signal(len(Value.cast(v)), name=f"{k}{stage}", reset_less=(k != "valid"))
                   for k, v in ctl.items()}
            m.d.sync += [out[k].eq(v) for k, v in ctl.items()]
            return out

        # stage 1: memory address registers; stages 2-3: the memory and its output register;
        # stage 4: the weight register. Lane operands and control (already one cycle behind
        # the addresses) wait beside them.
        operand = [vec[j % N] for j in range(P)]
        ctl = ctl0
        for stage in range(2, 1 + ADDRESS_STAGES + MEMORY_LATENCY):
            before = operand
            operand = [delay(m, operand[j], 1, f"operand{j}_s{stage}") for j in range(P)]
            ctl = carry(ctl, stage)
        first_logic = P - g.logic_lanes
        # a logic lane's negated operand, beside its operand (the Booth products select it)
        neg_operand = {}
        for j in range(first_logic, P):
            neg_operand[j] = Signal(signed(g.operand_bits + 1), name=f"neg_operand{j}",
                                    reset_less=True)
            m.d.sync += neg_operand[j].eq(-before[j])
        weight = weight_data

        # stage 5: the operands into the DSP block's input registers (the route from a lane's
        # weight register, by its block RAMs, ends at a register inside the DSP block, not at
        # the multiplier's input, whose setup is most of a cycle); stage 6: products, operand
        # x weight (one DSP multiplier between its input and output registers); stage 7: each
        # product into a fabric register (the route out of a DSP block, often across the chip,
        # is all of this stage: nothing else lies behind it). Without the ECP5 platform the
        # product's fabric register goes before the multiplier instead (same cycles, same
        # integers): Yosys's iCE40 DSP mapping (synth_ice40 -dsp, Yosys 0.70) takes a product
        # followed by two registers into an SB_MAC16 with the high bits tied to 0, and
        # discards the lanes.
        #
        # Logic lanes (the last ``logic_lanes``, for more lanes than the chip has multiplier
        # blocks) multiply in adder levels from the same stage-4 registers (radix-4 Booth,
        # :func:`rtl.pipeline.booth_product`, ``logic_product_levels`` stages: 3 at 16-bit
        # weights, as many as a multiplier block's); with more levels the products of every
        # lane wait ``logic_delay`` stages more so that they all arrive together.
        ecp5_dsp = getattr(platform, "dsp_output_register", False)
        d = g.logic_delay
        dsp_lanes = range(first_logic)
        w, a = weight, operand
        if not ecp5_dsp:
            w = [delay(m, weight[j], 1, f"weight{j}_q") for j in dsp_lanes]
            a = [delay(m, operand[j], 1, f"operand{j}_s5") for j in dsp_lanes]
        product = [product_register(m, platform, w[j], a[j], f"product{j}", input_registers=True)
                   for j in dsp_lanes]
        if ecp5_dsp:
            product = [delay(m, product[j], 1, f"product{j}_q") for j in dsp_lanes]
        product = [delay(m, product[j], d, f"product{j}_wait") for j in dsp_lanes]
        for j in range(first_logic, P):
            p = booth_product(m, operand[j], neg_operand[j], weight[j], f"product{j}_booth")
            product.append(delay(m, p, 3 + d - g.logic_product_levels, f"product{j}_booth"))
        ctl = carry(ctl, 5)
        ctl = carry(ctl, 6)
        for k in range(d):
            ctl = carry(ctl, f"6_{k + 1}")
        # stage 7: the lanes' mask and x flags in two copies, one for each lane sum (each bit
        # drives the first adder of its own tree, so the placer can put it there: one register
        # feeding both trees sat between them, the longest route of a stack's lane sums). Wide:
        # three sums (the current row, the next, the one after), each with its own copies.
        if wide:
            s0_this, s0_mid = register_word_copies(m, platform, ctl["s0"], 2, "s0_7_")
            s2_mid, s2_next = register_word_copies(m, platform, ctl["s2"], 2, "s2_7_")
            is_x_this, is_x_mid, is_x_next = register_word_copies(m, platform, ctl["is_x"], 3,
                                                                  "is_x7_")
            ctl = carry({k: ctl[k] for k in ("ends", "ends2", "valid")}, 7)
        else:
            mask_this, mask_next = register_word_copies(m, platform, ctl["mask"], 2, "mask7_")
            is_x_this, is_x_next = register_word_copies(m, platform, ctl["is_x"], 2, "is_x7_")
            ctl = carry({k: ctl[k] for k in ("ends", "valid")}, 7)

        # stages 8 .. 7 + tree_levels: align x and h products to the accumulator and sum the
        # lanes before (this row) and after (next row) the row end, one adder level per stage
        # (wide: the lanes of the current row, of the next and of the one after)
        def aligned(j, is_x):
            return Mux(is_x[j], product[j] << g.x_product_shift, product[j] << g.h_product_shift)
        if wide:
            this_row = [Mux(s0_this[j], aligned(j, is_x_this), 0) for j in range(N)]
            mid_row = ([Mux(s0_mid[j], 0, aligned(j, is_x_mid)) for j in range(N)]
                       + [Mux(s2_mid[j - N], 0, aligned(j, is_x_mid)) for j in range(N, P)])
            next_row = [Mux(s2_next[j - N], aligned(j, is_x_next), 0) for j in range(N, P)]
            sums = {"this_row": this_row, "mid_row": mid_row, "next_row": next_row}
        else:
            this_row = [Mux(mask_this[j], aligned(j, is_x_this), 0) for j in range(P)]
            next_row = [Mux(mask_next[j], 0, aligned(j, is_x_next)) for j in range(P)]
            sums = {"this_row": this_row, "next_row": next_row}
        for level in range(self.tree_levels):
            stage = 8 + level
            sums = {k: _register(m, _add_pairs(v), f"{k}{stage}") for k, v in sums.items()}
            ctl_before, ctl = ctl, carry(ctl, stage)
        this_row, next_row = sums["this_row"][0], sums["next_row"][0]
        mid_row = sums["mid_row"][0] if wide else None

        # stage 8 + tree_levels: accumulate; a finished row leaves, the next row begins
        acc = Signal(signed(g.acc_fmt.bits), reset_less=True)
        acc_row = Signal(range(g.n_rows), reset_less=True)        # the row acc belongs to
        sum_acc = Signal(signed(g.acc_fmt.bits), reset_less=True)
        sum_row = Signal(range(g.n_rows), reset_less=True)
        sum_valid = Signal()
        # acc and acc_row are cleared on every cycle without products (there are always some
        # between two steps: the next accept waits for the commit), so a step's first row
        # starts from 0 with no select in front of the 48-bit add
        total = acc + this_row
        m.d.sync += sum_valid.eq(ctl["valid"] & ctl["ends"])
        if wide:
            # wide: the current row always ends (acc + this_row); the next one ends too when
            # `ends2` (mid_row is then all of it), and the row after next begins. A second end
            # in a step's last cycle past the last row (the zero padding of the lanes' last
            # words) is no row: its valid stays low. acc_row1 is acc_row + 1, a register.
            acc_row1 = Signal(range(g.n_rows + 1), reset_less=True)
            sum_acc1 = Signal(signed(g.acc_fmt.bits), reset_less=True)
            sum_row1 = Signal(range(g.n_rows + 1), reset_less=True)
            sum_valid1 = Signal()
            m.d.sync += sum_valid1.eq(ctl["valid"] & ctl["ends2"] & (acc_row1 < g.n_rows))
            with m.If(ctl["valid"]):
                m.d.sync += [sum_acc.eq(total), sum_row.eq(acc_row),
                             sum_acc1.eq(mid_row), sum_row1.eq(acc_row1)]
                with m.If(ctl["ends2"]):
                    m.d.sync += [acc.eq(next_row), acc_row.eq(acc_row + 2),
                                 acc_row1.eq(acc_row1 + 2)]
                with m.Else():
                    m.d.sync += [acc.eq(mid_row), acc_row.eq(acc_row + 1),
                                 acc_row1.eq(acc_row1 + 1)]
            with m.Else():
                m.d.sync += [acc.eq(0), acc_row.eq(0), acc_row1.eq(1)]
        else:
            with m.If(ctl["valid"]):
                with m.If(ctl["ends"]):
                    m.d.sync += [sum_acc.eq(total), sum_row.eq(acc_row),
                                 acc.eq(next_row), acc_row.eq(acc_row + 1)]
                with m.Else():
                    m.d.sync += acc.eq(total)
            with m.Else():
                m.d.sync += [acc.eq(0), acc_row.eq(0)]

        # the bias of the row that ends in the accumulate stage, in three steps (LUT RAM, not
        # block RAM: a block RAM's clock-to-out is most of a cycle at speed grade 6), none
        # with a select wider than BIAS_GROUP words: `row_ahead` is acc_row one cycle ahead (a
        # counter of its own, moved by the control of the stage before the accumulate), so
        # each bank's word at the row's place in its bank is read in the lane sums' last stage
        # (7 + tree_levels) and registered; in the accumulate stage (8 + tree_levels) each
        # group of BIAS_GROUP banks selects the row's bank (acc_row's bits) into the group's
        # register; stage 9 + tree_levels: the row's group selected (sum_row's high bits) into
        # the bias register; stage 10 + tree_levels: the bias added, the row's result
        # registered (the same cycles as one select of all the banks). Wide: the same again
        # through the banks' second read ports for the second row (acc_row + 1).
        step = (1 + ctl_before["ends2"]) if wide else 1

        def bias_groups(port, ahead_init, row_now, suffix):
            row_ahead = Signal(range(g.n_rows + wide), name=f"row_ahead{suffix}",
                               init=ahead_init, reset_less=True)
            with m.If(ctl_before["valid"]):
                with m.If(ctl_before["ends"]):
                    m.d.sync += row_ahead.eq(row_ahead + step)
            with m.Else():
                m.d.sync += row_ahead.eq(ahead_init)
            bank_words = []
            for k, (reads, _) in enumerate(bias_banks):
                bias_rd = reads[port]
                word = Signal.like(bias_rd.data, name=f"bias_bank{k}{suffix}", reset_less=True)
                m.d.comb += bias_rd.addr.eq(row_ahead[:len(bias_rd.addr)])
                m.d.sync += word.eq(bias_rd.data)
                bank_words.append(word)
            group_words = []
            for k in range(0, n_banks, BIAS_GROUP):
                words = bank_words[k:k + BIAS_GROUP]
                word = Signal.like(words[0], name=f"bias_group{k // BIAS_GROUP}{suffix}",
                                   reset_less=True)
                if len(words) == 1:
                    m.d.sync += word.eq(words[0])
                else:
                    m.d.sync += word.eq(Array(words)[row_now[BIAS_BANK_BITS:BIAS_GROUP_BITS]])
                group_words.append(word)
            return group_words

        def bias_select(group_words, row):
            """The row's group (combinational: the caller registers it)."""
            if len(group_words) == 1:
                return group_words[0]
            return Array(group_words)[row >> BIAS_GROUP_BITS]

        groups = bias_groups(0, 0, acc_row, "")
        bias = Signal(signed(g.bias_fmt.bits), reset_less=True)
        sum_acc2 = Signal.like(sum_acc, name="sum_acc_d1")
        sum_row2 = Signal.like(sum_row, name="sum_row_d1")
        sum_valid2 = Signal(name="sum_valid_d1")
        out_acc = Signal(signed(g.acc_fmt.bits), reset_less=True)
        out_row = Signal(range(g.n_rows), reset_less=True)
        if not wide:
            m.d.sync += [bias.eq(bias_select(groups, sum_row)), sum_acc2.eq(sum_acc),
                         sum_row2.eq(sum_row), sum_valid2.eq(sum_valid)]
        else:
            # the two rows of a cycle are neighbours, so one is even and one odd: in the
            # bias-select stage each goes (with its bias) to the port of its parity, even rows
            # to row_acc, odd rows to row_acc1, each port one row per cycle at most
            groups1 = bias_groups(1, 1, acc_row1, "_1")
            bias1 = Signal(signed(g.bias_fmt.bits), reset_less=True)
            sum_acc2_1 = Signal.like(sum_acc, name="sum_acc1_d1")
            sum_row2_1 = Signal.like(sum_row, name="sum_row1_d1")
            sum_valid2_1 = Signal(name="sum_valid1_d1")
            odd = sum_row[0]
            first = (bias_select(groups, sum_row), sum_acc, sum_row, sum_valid)
            second = (bias_select(groups1, sum_row1), sum_acc1, sum_row1, sum_valid1)
            for reg, a, b in zip((bias, sum_acc2, sum_row2, sum_valid2), first, second):
                m.d.sync += reg.eq(Mux(odd, b, a))
            for reg, a, b in zip((bias1, sum_acc2_1, sum_row2_1, sum_valid2_1), first, second):
                m.d.sync += reg.eq(Mux(odd, a, b))
            out_acc1 = Signal(signed(g.acc_fmt.bits), reset_less=True)
            out_row1 = Signal(range(g.n_rows), reset_less=True)
            m.d.sync += [out_acc1.eq(sum_acc2_1 + (bias1 << g.bias_shift)),
                         out_row1.eq(sum_row2_1), self.row_valid1.eq(sum_valid2_1)]
            m.d.comb += [self.row_acc1.eq(out_acc1), self.row1.eq(out_row1)]
        m.d.sync += [out_acc.eq(sum_acc2 + (bias << g.bias_shift)), out_row.eq(sum_row2),
                     self.row_valid.eq(sum_valid2)]
        m.d.comb += [self.row_acc.eq(out_acc), self.row.eq(out_row)]
        return m


def _add_pairs(values):
    """One level of an adder tree: neighbours summed (an odd last value passes through)."""
    pairs = [values[k] + values[k + 1] for k in range(0, len(values) - 1, 2)]
    return pairs + ([values[-1]] if len(values) % 2 else [])


def _register(m, values, name):
    regs = [Signal(v.shape(), name=f"{name}_{k}", reset_less=True) for k, v in enumerate(values)]
    m.d.sync += [r.eq(v) for r, v in zip(regs, values)]
    return regs
