"""The request executor: decodes a checked request in the receive buffer, drives the design's
stream ports (x, h, weights, state, as ``python -m rtl`` exports them: docs/protocol.md) and
answers through the reply sender (docs/deploy.md, "Commands").

Codes leave the buffers bit-serially (one bit per cycle, a byte fetched every 8 bits), so any
packed width works; the next step is unpacked while the design computes the current one.
"""
from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from rtl.geometry import refuse

from .design import DesignPorts
from .protocol import (CYCLES_BYTES, RUN_HEADER, WEIGHTS_HEADER, Command, RunFlags,
                       Status, WeightFlags)
from .slice import RegisterSlice

__all__ = ["Executor"]


def times(value, constant: int):
    """``value * constant`` as a sum of shifted copies of ``value``: Yosys maps it to adders,
    never to a multiplier block (whose unregistered delay is most of a 100 MHz cycle)."""
    terms = [value << i for i in range(constant.bit_length()) if constant >> i & 1]
    total = Const(0, 1)
    for term in terms:
        total = total + term
    return total


class Executor(wiring.Component):
    """Runs one request at a time (see the module docstring and docs/deploy.md).

    Parameters
    ----------
    ports : :class:`DesignPorts`
        The design to drive (the executor connects to its ports in the parent module).
    info : bytes
        INFO's reply payload (a ROM).
    max_payload : int
        The receive buffer's size in bytes.
    batch_bytes, batch_results : int
        LOAD_BATCH memory (bytes) and RUN_BATCH result slots.

    Members
    -------
    req_valid, req_command, req_length, req_status, req_done
        The request from :class:`deploy.link.FrameReceiver`.
    buf_addr, buf_data
        The receive buffer's read port (data one cycle after addr).
    reply_start, reply_command, reply_status, reply_length, reply_addr, reply_data, reply_done
        To :class:`deploy.link.ReplySender`.
    core_reset : ``Out(1)``
        Resets the design (RESET).
    core_error : ``In(L)``
        The design's sticky error bits.
    busy, refused_any : ``Out(1)``
        For the LEDs.
    """

    #: cycles from ``reply_addr`` to its byte on ``reply_data`` (the sender's ``latency``)
    REPLY_LATENCY = 3

    def __init__(self, ports: DesignPorts, *, info: bytes, max_payload: int, batch_bytes: int,
                 batch_results: int):
        self._p = p = ports
        self._info = bytes(info)
        self._max_payload = max_payload
        self._batch_bytes = batch_bytes
        self._batch_results = batch_results
        if 6 + batch_results * p.batch_result_bytes > 0xFFFF:
            refuse(self, ValueError(f"{batch_results} results of {p.batch_result_bytes} bytes "
                                    f"exceed a reply's 65535 bytes"))
        members = {
            "req_valid": In(1), "req_command": In(8), "req_length": In(16), "req_status": In(8),
            "req_done": Out(1),
            "buf_addr": Out(range(max_payload)), "buf_data": In(8),
            "reply_start": Out(1), "reply_command": Out(8), "reply_status": Out(8),
            "reply_length": Out(16), "reply_addr": In(16), "reply_data": Out(8),
            "reply_done": In(1),
            "core_reset": Out(1), "core_error": In(p.n_layers),
            "busy": Out(1), "refused_any": Out(1),
            "x": Out(stream.Signature(p.step_layout)),
            "h": In(stream.Signature(p.output_layout)),
        }
        if p.head is not None:
            members["y"] = In(stream.Signature(p.y_layout))
        for k in range(p.n_layers):
            members[f"weights_l{k}"] = Out(stream.Signature(p.load_layouts[k]))
            members[f"state_l{k}"] = Out(stream.Signature(p.state_layouts[k]))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        p = self._p
        L = p.n_layers

        # ---- memories: INFO ROM, batch sequences, batch results ------------------------------
        m.submodules.info_rom = info_rom = Memory(shape=8, depth=len(self._info), init=self._info)
        info_rd = info_rom.read_port()
        m.submodules.batch_mem = batch_mem = Memory(shape=8, depth=self._batch_bytes, init=[])
        batch_rd, batch_wr = batch_mem.read_port(), batch_mem.write_port()
        result_depth = self._batch_results * p.batch_result_bytes
        m.submodules.result_mem = result_mem = Memory(shape=8, depth=result_depth, init=[])
        result_rd, result_wr = result_mem.read_port(), result_mem.write_port()

        # ---- state kept between requests ------------------------------------------------------
        packet_open = Signal(L)          # a weight packet of layer k continues in the next frame
        weights_invalid = Signal(L)      # a weight packet was opened and not completed: x blocked
        packet_words = Array(Signal(32, name=f"packet_words_l{k}") for k in range(L))
        batch_count = Signal(16)
        batch_fill = Signal(range(self._batch_bytes + 1))
        last_status = Signal(8)
        refused = Signal(16)
        cycles = Signal(32)
        m.d.comb += self.refused_any.eq(refused != 0)

        # ---- the request's header (first payload bytes) and derived sizes --------------------
        hdr = Signal(32)
        n = self.req_length
        cmd = Signal(8)
        layer = hdr[:8]
        wflags = hdr[8:16]
        wcount = hdr[16:32]
        rflags = hdr[:8]
        steps = hdr[8:24]
        layer_ok = layer < L
        k_sel = layer[:max(1, (L - 1).bit_length())]    # the layer, once layer_ok holds
        # a frame's size with its header: per layer a multiply by a constant (shifts and adds,
        # not a multiplier block), the layer picked after it
        w_frame_bytes = Array((times(wcount, b) + 7 + 8 * WEIGHTS_HEADER) >> 3
                              for b in p.weight_bits)
        state_frame_bytes = Array(Const(1 + (h * b + 7) // 8, 16)
                                  for h, b in zip(p.n_hidden_k, p.state_bits))
        n_words = Array(Const(w, 32) for w in p.weight_words)
        # derived in two registered stages (PREPARE: sizes; CHECK: comparisons) so that no
        # decision is a multiply, an add and a compare in one cycle
        seq_end = Signal(32)             # RUN_HEADER + packed bytes of `steps` steps of x
        w_end_bytes = Signal(32)         # WEIGHTS_HEADER + packed bytes of `wcount` words
        w_end = Signal(32)               # words in the layer's packet after this frame
        w_total = Signal(32)             # N of the layer
        s_end = Signal(16)               # a LOAD_STATE frame's n: layer byte + state packet
        b_fill = Signal.like(batch_fill)
        b_end = Signal(17)               # b_fill + the sequence's n - 1 bytes
        b_count = Signal.like(batch_count)
        batch_reply_len = Signal(16, init=6)   # 6 + batch_count results, kept beside the count
        b_reply_len = Signal(16)
        # single-bit facts of the request, registered in CHECK, so DECODE only picks
        facts = ("n_zero", "n_short_w", "layer_bad", "w_unopened", "s_open", "blocked",
                 "batch_empty", "run_bad_size", "w_bad_size", "w_bad_range", "s_bad_size",
                 "batch_full")
        (n_zero, n_short_w, layer_bad, w_unopened, s_open, blocked, batch_empty, run_bad_size,
         w_bad_size, w_bad_range, s_bad_size, batch_full) = (Signal(name=f) for f in facts)

        # ---- bit feeder: buffer bytes -> one bit per cycle -> the destination's word --------
        # Every decision is taken from registers: the bytes read are registered before use
        # (a block RAM's clock-to-out is most of a cycle), a word's completion, its first and
        # last flags are registers, and one shift register serves every destination.
        f_batch = Signal()              # source: batch memory (else the receive buffer)
        f_ptr = Signal(16)              # the next byte to read
        f_dest = Signal(range(2 * L + 1))   # 0: x; 1 + k: weights of layer k; 1 + L + k: state
        f_words = Signal(16)            # words left in this run (steps of the sequence)
        f_total = Signal(16)            # words in the run
        f_seqs = Signal(16)             # batch sequences left after this one
        f_flags = Signal(8)             # RUN / weight flags
        f_start = Signal()
        f_done = Signal()
        bitbuf = Signal(8)
        bitcnt = Signal(range(9))
        m.d.comb += [self.buf_addr.eq(f_ptr), batch_rd.addr.eq(f_ptr)]
        # the byte at f_ptr two cycles ago (f_ptr held for two cycles before it is used)
        buf_q, batch_q = Signal(8), Signal(8)
        m.d.sync += [buf_q.eq(self.buf_data), batch_q.eq(batch_rd.data)]
        byte_q = Mux(f_batch, batch_q, buf_q)

        # destinations: their payload registers hold a word until the design takes it; x goes
        # through a register slice (its valid passes the flag FIFO's room)
        m.submodules.x_slice = x_slice = RegisterSlice(p.step_layout)
        wiring.connect(m, x_slice.o, wiring.flipped(self.x))
        x_out = x_slice.i
        dests = [(x_out, p.step_bits)]
        dests += [(getattr(self, f"weights_l{k}"), p.weight_bits[k]) for k in range(L)]
        dests += [(getattr(self, f"state_l{k}"), p.state_bits[k]) for k in range(L)]
        widths = [w for _, w in dests]
        if min(widths) < 2:
            refuse(self, ValueError(f"every packed word needs at least 2 bits, not {min(widths)}"))
        sh = Signal(max(widths))         # bits enter at the top: a w-bit word is the top w bits
        bits_left = Signal(range(max(widths)))   # bits of the word after the next shift
        completes = Signal()             # the next shift completes the word
        first_q = Signal()               # the word being shifted is the run's first
        last_q = Signal()                # f_words == 1, a cycle late (words take >= 2 cycles)
        first_en = Signal()              # the run's first word carries `first`
        last_en = Signal()               # ... its last word `last`
        m.d.sync += last_q.eq(f_words == 1)
        first_flag = first_q & first_en
        last_flag = last_q & last_en
        x_result = Signal()             # the step in x's hold ends a sequence (its output counts)
        x_last = Signal()               # ... and carries `last`
        stall = Signal()
        shift = Signal()
        is_x = f_dest == 0
        is_w = (f_dest >= 1) & (f_dest <= L)
        flag = {name: (f_flags & int(bit)).any() for name, bit in
                (("run_first", RunFlags.FIRST), ("run_last", RunFlags.LAST),
                 ("w_first", WeightFlags.FIRST), ("w_last", WeightFlags.LAST))}
        # per step taken: (its output is a result, the step had `last`)
        flags_fifo = fifo.SyncFIFOBuffered(width=2, depth=4 * L + 4)
        m.submodules.flags_fifo = flags_fifo
        # x is offered only while the flag FIFO has room, so every step taken has its flag
        x_held = Signal()
        m.d.comb += [x_out.valid.eq(x_held & flags_fifo.w_rdy),
                     flags_fifo.w_en.eq(x_out.valid & x_out.ready),
                     flags_fifo.w_data.eq(Cat(x_result, x_last))]
        new = Cat(sh[1:], bitbuf[0])
        # a completed word goes into its hold on the next edge, from sh and registered flags:
        # the holds' enables (by the design, far from here) are registers, not the stall logic
        word_first, word_last, word_result = Signal(), Signal(), Signal()
        with m.If(shift & completes):
            m.d.sync += [word_first.eq(first_flag), word_last.eq(last_flag),
                         word_result.eq(last_q)]
        stalls, holds = [], []
        for d, (port, width) in enumerate(dests):
            held = x_held if d == 0 else port.valid
            taken = port.valid & port.ready
            load = Signal(name=f"load_{d}")    # the word completed on the last edge is d's
            m.d.sync += load.eq(shift & completes & (f_dest == d))
            # a taken word leaves the hold unless a new one is loaded on the same edge
            with m.If(taken & ~load):
                m.d.sync += held.eq(0)
            with m.If(load):
                m.d.sync += [port.payload.eq(Cat(sh[len(sh) - width:], word_first, word_last)),
                             held.eq(1)]
                if d == 0:
                    m.d.sync += [x_result.eq(word_result), x_last.eq(word_last)]
            # a full (or filling) hold stalls the bit that would complete the next word (even on
            # the edge it is taken: no path from the design's ready to the shift)
            stalls.append((f_dest == d) & (held | load))
            holds.append(held | load)
        m.d.comb += stall.eq(completes & Cat(*stalls).any())
        width_m1 = Array(Const(w - 1, len(bits_left)) for w in widths)[f_dest]

        def start_word():
            m.d.sync += [bits_left.eq(width_m1), completes.eq(0), first_q.eq(1)]

        with m.FSM(name="feeder"):
            with m.State("IDLE"):
                with m.If(f_start):
                    start_word()
                    m.d.sync += [f_words.eq(f_total),
                                 first_en.eq(Mux(is_x, f_batch | flag["run_first"],
                                                 Mux(is_w, flag["w_first"], 1))),
                                 last_en.eq(Mux(is_x, f_batch | flag["run_last"],
                                                Mux(is_w, flag["w_last"], 1)))]
                    with m.If(f_batch):
                        m.next = "SEQ0"
                    with m.Else():
                        m.next = "PRIME"
            with m.State("SEQ0"):              # batch: a sequence's T (u16) at f_ptr
                m.d.sync += f_ptr.eq(f_ptr + 1)
                m.next = "SEQ1"
            with m.State("SEQ1"):
                m.next = "SEQ2"
            with m.State("SEQ2"):              # byte_q: T's low byte (f_ptr moved on)
                m.d.sync += [f_words[:8].eq(byte_q), f_ptr.eq(f_ptr + 1)]
                m.next = "SEQ3"
            with m.State("SEQ3"):
                m.d.sync += f_words[8:].eq(byte_q)
                start_word()
                m.next = "PRIME"
            with m.State("PRIME"):             # byte_q is the byte at f_ptr from the next cycle
                m.next = "LOAD"
            with m.State("LOAD"):
                m.d.sync += [bitbuf.eq(byte_q), bitcnt.eq(8), f_ptr.eq(f_ptr + 1)]
                m.next = "SHIFT"
            with m.State("SHIFT"):
                with m.If(~stall):
                    m.d.comb += shift.eq(1)
                    m.d.sync += [sh.eq(new), bitbuf.eq(bitbuf >> 1), bitcnt.eq(bitcnt - 1)]
                    with m.If(completes):
                        start_word()
                        m.d.sync += [f_words.eq(f_words - 1), first_q.eq(0)]
                    with m.Else():
                        m.d.sync += [bits_left.eq(bits_left - 1), completes.eq(bits_left == 1)]
                    with m.If(completes & last_q):
                        with m.If(f_batch & (f_seqs != 0)):
                            m.d.sync += f_seqs.eq(f_seqs - 1)
                            m.next = "SEQ0"
                        with m.Else():
                            m.next = "DRAIN"
                    with m.Elif(bitcnt == 1):
                        m.next = "LOAD"
            with m.State("DRAIN"):             # done when the last word has been taken
                with m.If(~Cat(*holds).any()):
                    m.d.comb += f_done.eq(1)
                    m.next = "IDLE"

        # ---- collector: every output of the design; results at the end of each sequence -----
        # a result is the h of a frame's last step, or, with the head, the y of a `last` step
        # (whose h is then only passed by); batch results are all of one kind
        head = p.head is not None
        # the design's outputs enter through register slices: no path from the design's valid
        # through this logic back to its ready (with x's, they add two cycles to a run, taken
        # off the count below)
        m.submodules.h_slice = h_slice = RegisterSlice(p.output_layout)
        wiring.connect(m, wiring.flipped(self.h), h_slice.i)
        h_in = h_slice.o
        if head:
            m.submodules.y_slice = y_slice = RegisterSlice(p.y_layout)
            wiring.connect(m, wiring.flipped(self.y), y_slice.i)
            y_in = y_slice.o
        h_rb, y_rb = p.result_bytes, p.head_result_bytes
        res_max = max(h_rb, y_rb)
        res_index = Signal(range(res_max + 1))
        res_ptr = Signal(range(max(2, result_depth + 1)))
        seqs_done = Signal(16)
        counting = Signal()
        run_mode = Signal()              # RUN: hold the result for the reply
        result_ready = Signal()          # RUN's result is offered (on h or y)
        from_y = Signal()                # the result being handled is the head's
        release = Signal()               # the reply has been sent: take RUN's result
        batch_done = Signal()
        h_bytes = Cat(h_in.payload.h.as_value(), Const(0, 8 * res_max - p.result_bits))
        if head:
            y = y_in.payload
            y_bytes = Cat(y.label, Const(0, 8 - len(y.label)), y.logits.as_value(),
                          Const(0, 8 * res_max - p.head_result_bits))
            res_value = Mux(from_y, y_bytes, h_bytes)
        else:
            res_value = h_bytes
        h_is_result = flags_fifo.r_data[0] & ~flags_fifo.r_data[1] if head else flags_fifo.r_data[0]
        SLICE = 2                        # cycles the x slice and an output slice add
        with m.If(counting):
            m.d.sync += cycles.eq(cycles + 1)
        # the write is registered: address, byte and enable reach the block RAM a cycle late
        storing = Signal()
        m.d.sync += [result_wr.addr.eq(res_ptr + res_index),
                     result_wr.data.eq(res_value.word_select(res_index, 8)),
                     result_wr.en.eq(storing)]

        def take_result():
            if head:
                with m.If(from_y):
                    m.d.comb += y_in.ready.eq(1)
                with m.Else():
                    m.d.comb += [h_in.ready.eq(1), flags_fifo.r_en.eq(1)]
            else:
                m.d.comb += [h_in.ready.eq(1), flags_fifo.r_en.eq(1)]

        def got_result(is_y):
            m.d.sync += from_y.eq(is_y)
            with m.If(run_mode):
                m.d.sync += [counting.eq(0), result_ready.eq(1)]
                m.next = "HOLD"
            with m.Else():
                m.d.sync += res_index.eq(0)
                m.next = "STORE"

        with m.FSM(name="collector"):
            with m.State("WAIT"):
                with m.If(y_in.valid if head else 0):
                    got_result(1)
                with m.Elif(h_in.valid & flags_fifo.r_rdy):
                    with m.If(~h_is_result):
                        m.d.comb += [h_in.ready.eq(1), flags_fifo.r_en.eq(1)]
                    with m.Else():
                        got_result(0)
            with m.State("HOLD"):
                with m.If(release):
                    take_result()
                    m.d.sync += [result_ready.eq(0), release.eq(0)]
                    m.next = "WAIT"
            with m.State("STORE"):
                m.d.comb += storing.eq(1)
                m.d.sync += res_index.eq(res_index + 1)
                with m.If(res_index == p.batch_result_bytes - 1):
                    take_result()
                    m.d.sync += [res_ptr.eq(res_ptr + p.batch_result_bytes),
                                 seqs_done.eq(seqs_done + 1)]
                    with m.If(seqs_done + 1 == batch_count):
                        m.d.sync += [counting.eq(0), batch_done.eq(1)]
                    m.next = "WAIT"
        # the count starts when the run's first step is offered; it is started at -SLICE so that
        # it counts the design's cycles, not the slices'
        start_count = Signal()
        with m.If(start_count & x_out.valid):
            m.d.sync += [counting.eq(1), start_count.eq(0)]

        # ---- reply payload sources ----------------------------------------------------------
        # the sender samples reply_data REPLY_LATENCY cycles after setting the address: the
        # memories read it in the first cycle, their data and the byte picked from registers
        # are registered in the second, the source is picked into reply_data in the third
        ra = self.reply_addr
        m.d.comb += [info_rd.addr.eq(ra), result_rd.addr.eq(ra - 6)]
        run_bytes = Cat(cycles, res_value)
        batch_head = Cat(batch_count, cycles)
        error_bytes = Cat(self.core_error, Const(0, 8 - L), weights_invalid, Const(0, 8 - L),
                          last_status, refused)
        ra_1 = Signal(16)
        info_q, result_q, small_q = Signal(8), Signal(8), Signal(8)
        from_info, from_result = Signal(), Signal()
        m.d.sync += [ra_1.eq(ra), info_q.eq(info_rd.data), result_q.eq(result_rd.data),
                     from_info.eq(cmd == Command.INFO),
                     from_result.eq((cmd == Command.RUN_BATCH) & (ra_1 >= 6)),
                     self.reply_data.eq(Mux(from_info, info_q, Mux(from_result, result_q, small_q)))]
        with m.Switch(cmd):
            with m.Case(Command.RUN):
                m.d.sync += small_q.eq(run_bytes.word_select(ra_1[:max(1, (len(run_bytes) // 8 - 1).bit_length())], 8))
            with m.Case(Command.LOAD_BATCH):
                m.d.sync += small_q.eq(batch_count.word_select(ra_1[:1], 8))
            with m.Case(Command.RUN_BATCH):
                m.d.sync += small_q.eq(batch_head.word_select(ra_1[:3], 8))
            with m.Case(Command.READ_ERROR):
                m.d.sync += small_q.eq(error_bytes.word_select(ra_1[:3], 8))

        # ---- the request FSM ------------------------------------------------------------------
        status = Signal(8)
        length = Signal(16)
        hdr_i = Signal(3)
        reset_timer = Signal(3)
        copy_i = Signal(16)
        batch_wp = Signal.like(batch_fill)     # LOAD_BATCH's next write address
        m.d.sync += batch_wr.en.eq(0)           # the write is registered (COPY)
        m.d.comb += [self.reply_command.eq(cmd), self.reply_status.eq(status),
                     self.reply_length.eq(length)]

        def reply(st, size=0):
            m.d.sync += [status.eq(st), length.eq(size)]
            m.next = "REPLY"

        w_first = (wflags & int(WeightFlags.FIRST)).any()
        w_last = (wflags & int(WeightFlags.LAST)).any()
        with m.FSM(name="executor") as fsm:
            with m.State("IDLE"):
                with m.If(self.req_valid):
                    m.d.sync += [cmd.eq(self.req_command), hdr.eq(0), hdr_i.eq(0), f_ptr.eq(0),
                                 f_batch.eq(0)]
                    with m.If(self.req_status != Status.OK):
                        reply(self.req_status)
                    with m.Else():
                        m.next = "HEADER"
            with m.State("HEADER"):
                # payload bytes 0..3 (as many as there are) into hdr; f_ptr is the read address
                m.d.sync += [f_ptr.eq(f_ptr + 1), hdr_i.eq(hdr_i + 1)]
                with m.If(hdr_i != 0):        # bytes past n land in fields no check reads
                    m.d.sync += hdr.eq(Cat(hdr[8:], self.buf_data))
                with m.If(hdr_i == 4):
                    m.next = "PREPARE"
            with m.State("PREPARE"):
                clear = (rflags & int(RunFlags.CLEAR)).any()
                m.d.sync += [
                    seq_end.eq((times(steps, p.step_bits) + 7 + 8 * RUN_HEADER) >> 3),
                    w_end_bytes.eq(w_frame_bytes[k_sel]),
                    w_end.eq(Mux(w_first, 0, packet_words[k_sel]) + wcount),
                    w_total.eq(n_words[k_sel]),
                    s_end.eq(state_frame_bytes[k_sel]),
                    b_fill.eq(Mux(clear, 0, batch_fill)),
                    b_end.eq(Mux(clear, 0, batch_fill) + n - 1),
                    b_count.eq(Mux(clear, 0, batch_count)),
                    b_reply_len.eq(Mux(clear, 6, batch_reply_len)),
                ]
                m.next = "CHECK"
            with m.State("CHECK"):
                m.d.sync += [
                    run_bad_size.eq((n < RUN_HEADER) | (steps == 0) | (n != seq_end)),
                    w_bad_size.eq((wcount == 0) | (n != w_end_bytes)),
                    w_bad_range.eq((w_end > w_total) | (w_last & (w_end != w_total))),
                    s_bad_size.eq(n != s_end),
                    batch_full.eq((b_end > self._batch_bytes) | (b_count >= self._batch_results)),
                    n_zero.eq(n == 0),
                    n_short_w.eq(n < WEIGHTS_HEADER),
                    layer_bad.eq(~layer_ok),
                    w_unopened.eq(~w_first & ~packet_open.bit_select(k_sel, 1)),
                    s_open.eq(packet_open.bit_select(k_sel, 1)),
                    blocked.eq(weights_invalid.any()),
                    batch_empty.eq(batch_count == 0),
                ]
                m.next = "DECODE"
            with m.State("DECODE"):
                with m.Switch(cmd):
                    with m.Case(Command.INFO):
                        with m.If(~n_zero):
                            reply(Status.BAD_SIZE)
                        with m.Else():
                            reply(Status.OK, len(self._info))
                    with m.Case(Command.READ_ERROR):
                        with m.If(~n_zero):
                            reply(Status.BAD_SIZE)
                        with m.Else():
                            reply(Status.OK, 5)
                    with m.Case(Command.RESET):
                        with m.If(~n_zero):
                            reply(Status.BAD_SIZE)
                        with m.Else():
                            m.d.sync += reset_timer.eq(4)
                            m.next = "RESET"
                    with m.Case(Command.LOAD_WEIGHTS):
                        with m.If(n_short_w):
                            reply(Status.BAD_SIZE)
                        with m.Elif(layer_bad):
                            reply(Status.BAD_ARGUMENT)
                        with m.Elif(w_bad_size):
                            reply(Status.BAD_SIZE)
                        with m.Elif(w_unopened):
                            reply(Status.BAD_ARGUMENT)
                        with m.Elif(w_bad_range):
                            reply(Status.BAD_SIZE)
                        with m.Else():
                            m.d.sync += [f_ptr.eq(WEIGHTS_HEADER), f_dest.eq(1 + k_sel),
                                         f_total.eq(wcount), f_flags.eq(wflags), f_start.eq(1)]
                            m.next = "FEED"
                    with m.Case(Command.LOAD_STATE):
                        with m.If(n_zero):
                            reply(Status.BAD_SIZE)
                        with m.Elif(layer_bad):
                            reply(Status.BAD_ARGUMENT)
                        with m.Elif(s_bad_size):
                            reply(Status.BAD_SIZE)
                        with m.Elif(s_open):
                            reply(Status.X_BLOCKED)
                        with m.Else():
                            m.d.sync += [f_ptr.eq(1), f_dest.eq(1 + L + k_sel),
                                         f_total.eq(Array(Const(h, 16) for h in p.n_hidden_k)[k_sel]),
                                         f_start.eq(1)]
                            m.next = "FEED"
                    with m.Case(Command.RUN):
                        with m.If(run_bad_size):
                            reply(Status.BAD_SIZE)
                        with m.Elif(blocked):
                            reply(Status.X_BLOCKED)
                        with m.Else():
                            m.d.sync += [f_ptr.eq(RUN_HEADER), f_dest.eq(0), f_total.eq(steps),
                                         f_flags.eq(rflags), f_start.eq(1), run_mode.eq(1),
                                         cycles.eq(-SLICE), start_count.eq(1)]
                            m.next = "RUN"
                    with m.Case(Command.LOAD_BATCH):
                        with m.If(run_bad_size):
                            reply(Status.BAD_SIZE)
                        with m.Elif(batch_full):
                            reply(Status.BATCH_FULL)
                        with m.Else():
                            m.d.sync += [batch_fill.eq(b_fill), batch_count.eq(b_count),
                                         batch_reply_len.eq(b_reply_len), batch_wp.eq(b_fill),
                                         copy_i.eq(1), f_ptr.eq(1)]
                            m.next = "COPY"
                    with m.Case(Command.RUN_BATCH):
                        with m.If(~n_zero):
                            reply(Status.BAD_SIZE)
                        with m.Elif(blocked):
                            reply(Status.X_BLOCKED)
                        with m.Elif(batch_empty):
                            m.d.sync += cycles.eq(0)
                            reply(Status.OK, 6)
                        with m.Else():
                            m.d.sync += [f_ptr.eq(0), f_batch.eq(1), f_dest.eq(0),
                                         f_seqs.eq(batch_count - 1), f_start.eq(1),
                                         run_mode.eq(0), cycles.eq(-SLICE), start_count.eq(1),
                                         seqs_done.eq(0), res_ptr.eq(0), batch_done.eq(0)]
                            m.next = "BATCH"
                    with m.Default():
                        reply(Status.UNKNOWN_COMMAND)
            with m.State("FEED"):
                m.d.sync += f_start.eq(0)
                with m.If(f_done):
                    with m.If(f_dest <= L):           # a weight frame (not a state packet)
                        for k in range(L):
                            with m.If(k_sel == k):
                                m.d.sync += [packet_words[k].eq(w_end),
                                             packet_open[k].eq(~w_last),
                                             weights_invalid[k].eq(~w_last & (w_first | weights_invalid[k]))]
                    reply(Status.OK)
            with m.State("RUN"):
                m.d.sync += f_start.eq(0)
                with m.If(result_ready):
                    reply(Status.OK, CYCLES_BYTES + Mux(from_y, y_rb, h_rb))
            with m.State("BATCH"):
                m.d.sync += f_start.eq(0)
                with m.If(batch_done):
                    m.d.sync += batch_done.eq(0)
                    reply(Status.OK, batch_reply_len)
            with m.State("COPY"):
                # buffer byte i (read address f_ptr = i) -> batch memory at fill + i - 1, the
                # write registered (batch_wr is written a cycle after the byte arrives)
                m.d.sync += [f_ptr.eq(f_ptr + 1), copy_i.eq(copy_i + 1)]
                with m.If(copy_i >= 2):
                    m.d.sync += [batch_wr.addr.eq(batch_wp), batch_wr.data.eq(self.buf_data),
                                 batch_wr.en.eq(1), batch_wp.eq(batch_wp + 1)]
                with m.If(copy_i == n):
                    m.d.sync += [batch_fill.eq(b_end), batch_count.eq(batch_count + 1),
                                 batch_reply_len.eq(batch_reply_len + p.batch_result_bytes)]
                    reply(Status.OK, 2)
            with m.State("RESET"):
                m.d.sync += reset_timer.eq(reset_timer - 1)
                with m.If(reset_timer == 1):
                    m.d.sync += [packet_open.eq(0), refused.eq(0), last_status.eq(0)]
                    reply(Status.OK)
            with m.State("REPLY"):
                m.d.comb += self.reply_start.eq(1)
                with m.If(status != Status.OK):
                    m.d.sync += [last_status.eq(status), refused.eq(refused + 1)]
                m.next = "SENDING"
            with m.State("SENDING"):
                with m.If(self.reply_done):
                    m.d.comb += self.req_done.eq(1)
                    m.d.sync += release.eq(result_ready)   # registered: no path from the UART
                    m.next = "IDLE"
            m.d.comb += self.busy.eq(~fsm.ongoing("IDLE"))
        # registered: the design's reset reaches all of it
        m.d.sync += self.core_reset.eq(fsm.ongoing("RESET"))
        return m
