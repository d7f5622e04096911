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

from .protocol import (CYCLES_BYTES, MAX_LAYERS, RUN_HEADER, WEIGHTS_HEADER, Command, RunFlags,
                       Status, WeightFlags)

__all__ = ["Executor", "DesignPorts"]


class DesignPorts:
    """What the executor needs to know of a design (an ``rtl`` LSTMCell or StackedLSTM):
    its ports by layer and the widths of everything it packs or unpacks."""

    def __init__(self, design):
        from rtl.head import ClassifiedLSTM
        from rtl.top import LSTMCell
        self.head = design.head if isinstance(design, ClassifiedLSTM) else None
        core = design.core if self.head is not None else design
        if self.head is not None and not design.output_h:
            raise ValueError("the host link needs the design's h stream (RUN without LAST "
                             "answers with h): build it without --no-h")
        cells = [core] if isinstance(core, LSTMCell) else list(core.layers)
        if len(cells) > MAX_LAYERS:
            raise ValueError(f"at most {MAX_LAYERS} layers, not {len(cells)}")
        if cells[-1].serial_output:
            raise ValueError("the host link takes the parallel h output, not --serial-output")
        self.design = design
        self.cells = cells
        self.n_layers = len(cells)
        single = isinstance(core, LSTMCell)
        self.weights = [design.weights if single else getattr(design, f"weights_l{k}")
                        for k in range(len(cells))]
        self.state = [design.state if single else getattr(design, f"state_l{k}")
                      for k in range(len(cells))]
        geos = [c.geometry for c in cells]
        self.weight_bits = [g.load_layout.size - 2 for g in geos]
        self.weight_words = [g.n_words for g in geos]
        self.state_bits = [g.state_layout.size - 2 for g in geos]
        self.n_hidden_k = [g.n_hidden for g in geos]
        self.n_inputs = geos[0].n_inputs
        self.n_hidden = geos[-1].n_hidden
        self.x_bits = geos[0].config.fmt("x").bits
        self.h_bits = geos[-1].config.fmt("h").bits
        self.step_layout, self.output_layout = cells[0].step_layout, cells[-1].output_layout
        self.load_layouts = [g.load_layout for g in geos]
        self.state_layouts = [g.state_layout for g in geos]
        self.step_bits = self.n_inputs * self.x_bits
        self.has_last = "last" in self.step_layout.members
        self.result_bits = self.n_hidden * self.h_bits
        self.result_bytes = (self.result_bits + 7) // 8
        # with the head: a result is the label (one byte) and C logit codes, packed
        if self.head is not None:
            self.y_layout = self.head.y_layout
            self.n_classes = self.head.n_classes if hasattr(self.head, "n_classes") else \
                self.y_layout.members["logits"].length
            self.logit_bits = self.y_layout.members["logits"].elem_shape.width
            self.head_result_bits = 8 + self.n_classes * self.logit_bits
            self.head_result_bytes = (self.head_result_bits + 7) // 8
        else:
            self.n_classes, self.logit_bits = 0, 0
            self.head_result_bytes = 0
        #: one RUN_BATCH result (every batch sequence ends with `last`)
        self.batch_result_bytes = self.head_result_bytes or self.result_bytes


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
        seq_bytes = Signal(32)           # packed bytes of `steps` steps of x
        m.d.comb += seq_bytes.eq((steps * p.step_bits + 7) >> 3)
        layer_ok = layer < L
        k_sel = layer[:max(1, (L - 1).bit_length())]    # the layer, once layer_ok holds
        wbits = Array(Const(b, 8) for b in p.weight_bits)[k_sel]
        w_bytes = Signal(32)
        m.d.comb += w_bytes.eq((wcount * wbits + 7) >> 3)
        state_bytes = Array(Const((h * b + 7) // 8, 16) for h, b in zip(p.n_hidden_k, p.state_bits))
        n_words = Array(Const(w, 32) for w in p.weight_words)
        base = Signal(32)
        m.d.comb += base.eq(Mux(wflags[0], 0, packet_words[k_sel]))   # WeightFlags.FIRST

        # ---- bit feeder: buffer bytes -> one bit per cycle -> the destination's word --------
        f_batch = Signal()              # source: batch memory (else the receive buffer)
        f_ptr = Signal(16)
        f_dest = Signal(range(2 * L + 1))   # 0: x; 1 + k: weights of layer k; 1 + L + k: state
        f_words = Signal(32)            # words left in this run (steps of the sequence)
        f_index = Signal(32)            # word index within the run
        f_total = Signal(32)            # words in the run
        f_seqs = Signal(16)             # batch sequences left after this one
        f_flags = Signal(8)             # RUN / weight flags
        f_start = Signal()
        f_done = Signal()
        bitbuf = Signal(8)
        bitcnt = Signal(range(9))
        word_bit = Signal(range(max(p.step_bits, *p.weight_bits, *p.state_bits) + 1))
        m.d.comb += [self.buf_addr.eq(f_ptr), batch_rd.addr.eq(f_ptr)]
        byte_in = Mux(f_batch, batch_rd.data, self.buf_data)

        # destinations: a shift register per port, the port's payload register as its hold
        dests = [(self.x, p.step_bits)]
        dests += [(getattr(self, f"weights_l{k}"), p.weight_bits[k]) for k in range(L)]
        dests += [(getattr(self, f"state_l{k}"), p.state_bits[k]) for k in range(L)]
        x_result = Signal()             # the step in x's hold ends a sequence (its output counts)
        x_last = Signal()               # ... and carries `last`
        stall = Signal()
        shift = Signal()
        completes = Signal()
        dest_width = Array(Const(w, 16) for _, w in dests)[f_dest]
        m.d.comb += completes.eq(word_bit == dest_width - 1)
        last_word = f_words == 1
        first_flag = Signal()
        last_flag = Signal()
        is_x = f_dest == 0
        is_w = (f_dest >= 1) & (f_dest <= L)
        flag = {name: (f_flags & int(bit)).any() for name, bit in
                (("run_first", RunFlags.FIRST), ("run_last", RunFlags.LAST),
                 ("w_first", WeightFlags.FIRST), ("w_last", WeightFlags.LAST))}
        m.d.comb += [
            first_flag.eq((f_index == 0) & Mux(is_x, f_batch | flag["run_first"],
                                               Mux(is_w, flag["w_first"], 1))),
            last_flag.eq(last_word & Mux(is_x, f_batch | flag["run_last"],
                                         Mux(is_w, flag["w_last"], 1))),
        ]
        # per step taken: (its output is a result, the step had `last`)
        flags_fifo = fifo.SyncFIFOBuffered(width=2, depth=4 * L + 4)
        m.submodules.flags_fifo = flags_fifo
        # x is offered only while the flag FIFO has room, so every step taken has its flag
        x_held = Signal()
        m.d.comb += [self.x.valid.eq(x_held & flags_fifo.w_rdy),
                     flags_fifo.w_en.eq(self.x.valid & self.x.ready),
                     flags_fifo.w_data.eq(Cat(x_result, x_last))]
        stalls, holds = [], []
        for d, (port, width) in enumerate(dests):
            sh = Signal(width, name=f"shift_{d}")
            new = Cat(sh[1:], bitbuf[0]) if width > 1 else bitbuf[0]
            held = x_held if d == 0 else port.valid
            taken = port.valid & port.ready
            loading = shift & (f_dest == d) & completes
            with m.If(shift & (f_dest == d)):
                m.d.sync += sh.eq(new)
            # a taken word leaves the hold unless a new one is loaded on the same edge
            with m.If(taken & ~loading):
                m.d.sync += held.eq(0)
            with m.If(loading):
                m.d.sync += [port.payload.eq(Cat(new, first_flag, last_flag)), held.eq(1)]
                if d == 0:
                    m.d.sync += [x_result.eq(last_word), x_last.eq(last_flag)]
            stalls.append((f_dest == d) & completes & held & ~taken)
            holds.append(held)
        m.d.comb += stall.eq(Cat(*stalls).any())

        with m.FSM(name="feeder"):
            with m.State("IDLE"):
                with m.If(f_start):
                    m.d.sync += [word_bit.eq(0), f_index.eq(0), f_words.eq(f_total)]
                    with m.If(f_batch):
                        m.next = "SEQ0"
                    with m.Else():
                        m.next = "FETCH"
            with m.State("SEQ0"):              # batch: a sequence's T (u16) at f_ptr
                m.d.sync += f_ptr.eq(f_ptr + 1)
                m.next = "SEQ1"
            with m.State("SEQ1"):
                m.d.sync += [f_words[:8].eq(byte_in), f_ptr.eq(f_ptr + 1)]
                m.next = "SEQ2"
            with m.State("SEQ2"):
                m.d.sync += [f_words[8:].eq(byte_in), f_index.eq(0), word_bit.eq(0)]
                m.next = "FETCH"
            with m.State("FETCH"):
                m.d.sync += f_ptr.eq(f_ptr + 1)
                m.next = "LOAD"
            with m.State("LOAD"):
                m.d.sync += [bitbuf.eq(byte_in), bitcnt.eq(8)]
                m.next = "SHIFT"
            with m.State("SHIFT"):
                with m.If(~stall):
                    m.d.comb += shift.eq(1)
                    m.d.sync += [bitbuf.eq(bitbuf >> 1), bitcnt.eq(bitcnt - 1),
                                 word_bit.eq(word_bit + 1)]
                    with m.If(completes):
                        m.d.sync += [word_bit.eq(0), f_words.eq(f_words - 1),
                                     f_index.eq(f_index + 1)]
                    with m.If(completes & last_word):
                        with m.If(f_batch & (f_seqs != 0)):
                            m.d.sync += f_seqs.eq(f_seqs - 1)
                            m.next = "SEQ0"
                        with m.Else():
                            m.next = "DRAIN"
                    with m.Elif(bitcnt == 1):
                        m.next = "FETCH"
            with m.State("DRAIN"):             # done when the last word has been taken
                with m.If(~Cat(*holds).any()):
                    m.d.comb += f_done.eq(1)
                    m.next = "IDLE"

        # ---- collector: every output of the design; results at the end of each sequence -----
        # a result is the h of a frame's last step, or, with the head, the y of a `last` step
        # (whose h is then only passed by); batch results are all of one kind
        head = p.head is not None
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
        h_bytes = Cat(self.h.payload.h.as_value(), Const(0, 8 * res_max - p.result_bits))
        if head:
            y = self.y.payload
            y_bytes = Cat(y.label, Const(0, 8 - len(y.label)), y.logits.as_value(),
                          Const(0, 8 * res_max - p.head_result_bits))
            res_value = Mux(from_y, y_bytes, h_bytes)
        else:
            res_value = h_bytes
        h_is_result = flags_fifo.r_data[0] & ~flags_fifo.r_data[1] if head else flags_fifo.r_data[0]
        with m.If(counting):
            m.d.sync += cycles.eq(cycles + 1)
        m.d.comb += [result_wr.addr.eq(res_ptr + res_index),
                     result_wr.data.eq(res_value.word_select(res_index, 8))]

        def take_result():
            if head:
                with m.If(from_y):
                    m.d.comb += self.y.ready.eq(1)
                with m.Else():
                    m.d.comb += [self.h.ready.eq(1), flags_fifo.r_en.eq(1)]
            else:
                m.d.comb += [self.h.ready.eq(1), flags_fifo.r_en.eq(1)]

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
                with m.If(self.y.valid if head else 0):
                    got_result(1)
                with m.Elif(self.h.valid & flags_fifo.r_rdy):
                    with m.If(~h_is_result):
                        m.d.comb += [self.h.ready.eq(1), flags_fifo.r_en.eq(1)]
                    with m.Else():
                        got_result(0)
            with m.State("HOLD"):
                with m.If(release):
                    take_result()
                    m.d.sync += result_ready.eq(0)
                    m.next = "WAIT"
            with m.State("STORE"):
                m.d.comb += result_wr.en.eq(1)
                m.d.sync += res_index.eq(res_index + 1)
                with m.If(res_index == p.batch_result_bytes - 1):
                    take_result()
                    m.d.sync += [res_ptr.eq(res_ptr + p.batch_result_bytes),
                                 seqs_done.eq(seqs_done + 1)]
                    with m.If(seqs_done + 1 == batch_count):
                        m.d.sync += [counting.eq(0), batch_done.eq(1)]
                    m.next = "WAIT"
        # the count starts when the run's first step is offered
        start_count = Signal()
        with m.If(start_count & self.x.valid):
            m.d.sync += [counting.eq(1), start_count.eq(0)]

        # ---- reply payload sources ----------------------------------------------------------
        ra = self.reply_addr
        m.d.comb += [info_rd.addr.eq(ra), result_rd.addr.eq(ra - 6)]
        run_bytes = Cat(cycles, res_value)
        batch_head = Cat(batch_count, cycles)
        error_bytes = Cat(self.core_error, Const(0, 8 - L), weights_invalid, Const(0, 8 - L),
                          last_status, refused)
        with m.Switch(cmd):
            with m.Case(Command.INFO):
                m.d.comb += self.reply_data.eq(info_rd.data)
            with m.Case(Command.RUN):
                m.d.comb += self.reply_data.eq(run_bytes.word_select(ra[:len(ra)], 8))
            with m.Case(Command.LOAD_BATCH):
                m.d.comb += self.reply_data.eq(batch_count.word_select(ra[:1], 8))
            with m.Case(Command.RUN_BATCH):
                ra_late = Signal(16)
                m.d.sync += ra_late.eq(ra)
                m.d.comb += self.reply_data.eq(Mux(ra_late < 6, batch_head.word_select(ra_late[:3], 8),
                                                   result_rd.data))
            with m.Case(Command.READ_ERROR):
                m.d.comb += self.reply_data.eq(error_bytes.word_select(ra[:3], 8))

        # ---- the request FSM ------------------------------------------------------------------
        status = Signal(8)
        length = Signal(16)
        hdr_i = Signal(3)
        reset_timer = Signal(3)
        copy_i = Signal(16)
        m.d.comb += [self.reply_command.eq(cmd), self.reply_status.eq(status),
                     self.reply_length.eq(length)]

        def reply(st, size=0):
            m.d.sync += [status.eq(st), length.eq(size)]
            m.next = "REPLY"

        blocked = weights_invalid.any()
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
                    m.next = "DECODE"
            with m.State("DECODE"):
                with m.Switch(cmd):
                    with m.Case(Command.INFO):
                        with m.If(n != 0):
                            reply(Status.BAD_SIZE)
                        with m.Else():
                            reply(Status.OK, len(self._info))
                    with m.Case(Command.READ_ERROR):
                        with m.If(n != 0):
                            reply(Status.BAD_SIZE)
                        with m.Else():
                            reply(Status.OK, 5)
                    with m.Case(Command.RESET):
                        with m.If(n != 0):
                            reply(Status.BAD_SIZE)
                        with m.Else():
                            m.d.sync += reset_timer.eq(4)
                            m.next = "RESET"
                    with m.Case(Command.LOAD_WEIGHTS):
                        with m.If(n < WEIGHTS_HEADER):
                            reply(Status.BAD_SIZE)
                        with m.Elif(~layer_ok):
                            reply(Status.BAD_ARGUMENT)
                        with m.Elif((wcount == 0) | (n != WEIGHTS_HEADER + w_bytes)):
                            reply(Status.BAD_SIZE)
                        with m.Elif(~w_first & ~packet_open.bit_select(k_sel, 1)):
                            reply(Status.BAD_ARGUMENT)
                        with m.Elif((base + wcount > n_words[k_sel])
                                    | (w_last & (base + wcount != n_words[k_sel]))):
                            reply(Status.BAD_SIZE)
                        with m.Else():
                            m.d.sync += [f_ptr.eq(WEIGHTS_HEADER), f_dest.eq(1 + k_sel),
                                         f_total.eq(wcount), f_flags.eq(wflags), f_start.eq(1)]
                            m.next = "FEED"
                    with m.Case(Command.LOAD_STATE):
                        with m.If(n < 1):
                            reply(Status.BAD_SIZE)
                        with m.Elif(~layer_ok):
                            reply(Status.BAD_ARGUMENT)
                        with m.Elif(n != 1 + state_bytes[k_sel]):
                            reply(Status.BAD_SIZE)
                        with m.Elif(packet_open.bit_select(k_sel, 1)):
                            reply(Status.X_BLOCKED)
                        with m.Else():
                            m.d.sync += [f_ptr.eq(1), f_dest.eq(1 + L + k_sel),
                                         f_total.eq(Array(Const(h, 16) for h in p.n_hidden_k)[k_sel]),
                                         f_start.eq(1)]
                            m.next = "FEED"
                    with m.Case(Command.RUN):
                        with m.If((n < RUN_HEADER) | (steps == 0) | (n != RUN_HEADER + seq_bytes)):
                            reply(Status.BAD_SIZE)
                        with m.Elif(blocked):
                            reply(Status.X_BLOCKED)
                        with m.Else():
                            m.d.sync += [f_ptr.eq(RUN_HEADER), f_dest.eq(0), f_total.eq(steps),
                                         f_flags.eq(rflags), f_start.eq(1), run_mode.eq(1),
                                         cycles.eq(0), start_count.eq(1)]
                            m.next = "RUN"
                    with m.Case(Command.LOAD_BATCH):
                        clear = (rflags & int(RunFlags.CLEAR)).any()
                        fill = Mux(clear, 0, batch_fill)
                        count = Mux(clear, 0, batch_count)
                        with m.If((n < RUN_HEADER) | (steps == 0) | (n != RUN_HEADER + seq_bytes)):
                            reply(Status.BAD_SIZE)
                        with m.Elif((fill + n - 1 > self._batch_bytes)
                                    | (count + 1 > self._batch_results)):
                            reply(Status.BATCH_FULL)
                        with m.Else():
                            m.d.sync += [batch_fill.eq(fill), batch_count.eq(count),
                                         copy_i.eq(1), f_ptr.eq(1)]
                            m.next = "COPY"
                    with m.Case(Command.RUN_BATCH):
                        with m.If(n != 0):
                            reply(Status.BAD_SIZE)
                        with m.Elif(blocked):
                            reply(Status.X_BLOCKED)
                        with m.Elif(batch_count == 0):
                            m.d.sync += cycles.eq(0)
                            reply(Status.OK, 6)
                        with m.Else():
                            m.d.sync += [f_ptr.eq(0), f_batch.eq(1), f_dest.eq(0),
                                         f_seqs.eq(batch_count - 1), f_start.eq(1),
                                         run_mode.eq(0), cycles.eq(0), start_count.eq(1),
                                         seqs_done.eq(0), res_ptr.eq(0), batch_done.eq(0)]
                            m.next = "BATCH"
                    with m.Default():
                        reply(Status.UNKNOWN_COMMAND)
            with m.State("FEED"):
                m.d.sync += f_start.eq(0)
                with m.If(f_done):
                    with m.If(f_dest > L):            # a state packet
                        pass
                    with m.Else():
                        for k in range(L):
                            with m.If(k_sel == k):
                                m.d.sync += [packet_words[k].eq(base + wcount),
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
                    reply(Status.OK, 6 + batch_count * p.batch_result_bytes)
            with m.State("COPY"):
                # buffer byte i (read address f_ptr = i) -> batch memory at fill + i - 1
                m.d.sync += [f_ptr.eq(f_ptr + 1), copy_i.eq(copy_i + 1)]
                with m.If(copy_i >= 2):
                    m.d.comb += [batch_wr.addr.eq(batch_fill + copy_i - 2),
                                 batch_wr.data.eq(self.buf_data), batch_wr.en.eq(1)]
                with m.If(copy_i == n):
                    m.d.sync += [batch_fill.eq(batch_fill + n - 1), batch_count.eq(batch_count + 1)]
                    reply(Status.OK, 2)
            with m.State("RESET"):
                m.d.comb += self.core_reset.eq(1)
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
                    m.d.comb += [self.req_done.eq(1), release.eq(result_ready)]
                    m.next = "IDLE"
            m.d.comb += self.busy.eq(~fsm.ongoing("IDLE"))
        return m
