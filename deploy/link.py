"""The frame layer of the host link (docs/deploy.md, "Frame protocol"): the receiver that
checks a request frame into the receive buffer, and the sender that frames a reply.

Constants come from :mod:`deploy.protocol`, the same module the host driver reads.
"""
from contextlib import contextmanager

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from rtl.geometry import refuse

from .crc import CRC32
from .protocol import CRC_BYTES, SYNC_REPLY, SYNC_REQUEST, Status

__all__ = ["FrameReceiver", "ReplySender"]


class FrameReceiver(wiring.Component):
    """Request frames from the UART into the receive buffer.

    Bytes outside a frame that are not ``SYNC_REQUEST`` are dropped. A frame's payload is
    written to the buffer (byte k at address k) as it arrives; the CRC covers command, length
    and payload and is checked over the CRC bytes themselves (:data:`deploy.crc.RESIDUE`). Then
    ``request.valid`` rises with the command, length and a status:

    - ``OK``: the frame is whole and its CRC matches (the command is not checked here);
    - ``TIMEOUT``: no byte for ``timeout`` cycles inside a frame (offered at once: the line
      is already idle);
    - ``BAD_CRC``, ``TOO_LONG``, ``LINE_ERROR`` (a framing error, break or overrun inside a
      frame): offered once the line has been idle for ``timeout`` cycles, so the rest of a
      frame whose length field was corrupted is drained, not parsed.

    The request stays offered until ``request.done``; bytes arriving meanwhile are dropped (the
    host waits for each reply, so none should).

    Members
    -------
    rx : ``In(stream.Signature(8))``
        Bytes from the UART receiver (always taken).
    line_error : ``In(1)``
        The UART's framing-error or overrun pulse.
    buffer_addr, buffer_data, buffer_en : ``Out(...)``
        The receive buffer's write port.
    command, length, status : ``Out(8)``, ``Out(16)``, ``Out(8)``
        The request (valid while ``valid``).
    valid : ``Out(1)``
    done : ``In(1)``
        The request has been answered: look for the next frame.
    in_frame : ``Out(1)``
        A frame is being received (for the busy LED).
    """

    def __init__(self, *, max_payload: int, timeout: int):
        if not isinstance(timeout, int) or timeout < 1:
            refuse(self, TypeError(f"timeout must be a positive integer, not {timeout!r}"))
        if not isinstance(max_payload, int) or not 1 <= max_payload <= 0xFFFF:
            refuse(self, TypeError(f"max_payload must be 1..65535, not {max_payload!r}"))
        self._max_payload, self._timeout = max_payload, timeout
        super().__init__({
            "rx": In(stream.Signature(8)), "line_error": In(1),
            "buffer_addr": Out(range(max_payload)), "buffer_data": Out(8), "buffer_en": Out(1),
            "command": Out(8), "length": Out(16), "status": Out(8), "valid": Out(1),
            "done": In(1), "in_frame": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.crc = crc = CRC32()
        byte = self.rx.payload
        got = Signal()
        m.d.comb += [self.rx.ready.eq(1), got.eq(self.rx.valid)]

        count = Signal(16)                       # payload or CRC bytes so far
        idle = Signal(range(self._timeout + 1))  # cycles since the last byte or line event
        with m.If(got | self.line_error):
            m.d.sync += idle.eq(0)
        with m.Elif(idle != self._timeout):
            m.d.sync += idle.eq(idle + 1)
        timed_out = Signal()
        m.d.comb += [timed_out.eq((idle == self._timeout) & ~got),
                     self.buffer_addr.eq(count), self.buffer_data.eq(byte),
                     crc.data.eq(byte)]

        def finish(status):
            m.d.sync += [self.status.eq(status), self.valid.eq(1)]
            m.next = "REQUEST"

        def drain(status):
            m.d.sync += self.status.eq(status)
            m.next = "DRAIN"

        @contextmanager
        def frame_byte():
            # a state inside a frame: a line error drains, silence ends it, a byte is CRC'd
            m.d.comb += self.in_frame.eq(1)
            with m.If(self.line_error):
                drain(Status.LINE_ERROR)
            with m.Elif(got):
                m.d.comb += crc.en.eq(1)
                yield
            with m.Elif(timed_out):
                finish(Status.TIMEOUT)

        with m.FSM(name="frame_rx"):
            with m.State("IDLE"):
                m.d.comb += crc.clear.eq(1)
                with m.If(got & (byte == SYNC_REQUEST)):
                    m.next = "COMMAND"
            with m.State("COMMAND"), frame_byte():
                m.d.sync += [self.command.eq(byte), count.eq(0)]
                m.next = "LENGTH0"
            with m.State("LENGTH0"), frame_byte():
                m.d.sync += self.length[:8].eq(byte)
                m.next = "LENGTH1"
            with m.State("LENGTH1"), frame_byte():
                m.d.sync += self.length[8:].eq(byte)
                length = Cat(self.length[:8], byte)
                with m.If(length > self._max_payload):
                    drain(Status.TOO_LONG)
                with m.Elif(length == 0):
                    m.next = "CRC"
                with m.Else():
                    m.next = "PAYLOAD"
            with m.State("PAYLOAD"), frame_byte():
                m.d.comb += self.buffer_en.eq(1)
                m.d.sync += count.eq(count + 1)
                with m.If(count == self.length - 1):
                    m.d.sync += count.eq(0)
                    m.next = "CRC"
            with m.State("CRC"), frame_byte():
                m.d.sync += count.eq(count + 1)
                with m.If(count == CRC_BYTES - 1):
                    m.next = "CHECK"
            with m.State("CHECK"):
                with m.If(crc.residue_ok):
                    finish(Status.OK)
                with m.Else():
                    drain(Status.BAD_CRC)
            with m.State("DRAIN"):
                with m.If(timed_out):
                    m.d.sync += self.valid.eq(1)
                    m.next = "REQUEST"
            with m.State("REQUEST"):
                with m.If(self.done):
                    m.d.sync += self.valid.eq(0)
                    m.next = "IDLE"
        return m


class ReplySender(wiring.Component):
    """Reply frames to the UART: sync, command, status, length, payload, CRC-32.

    ``start`` (one cycle, with ``command``, ``status``, ``length`` valid) begins a reply. The
    payload is fetched byte by byte: the sender sets ``addr`` to the byte's index and samples
    ``data`` ``latency`` cycles later (3 by default: a synchronous memory read port, a register
    of its data and a registered select of the byte can drive ``data``). ``done`` pulses when
    the last CRC byte has been handed to the transmitter.

    Members
    -------
    tx : ``Out(stream.Signature(8))``
        Bytes to the UART transmitter.
    start, command, status, length : ``In(1)``, ``In(8)``, ``In(8)``, ``In(16)``
    addr : ``Out(16)``
        The payload byte wanted.
    data : ``In(8)``
        That byte, ``latency`` cycles after ``addr``.
    busy, done : ``Out(1)``
    """

    def __init__(self, latency: int = 3):
        if not isinstance(latency, int) or latency < 1:
            refuse(self, TypeError(f"latency must be a positive integer, not {latency!r}"))
        self._latency = latency
        super().__init__({
            "tx": Out(stream.Signature(8)),
            "start": In(1), "command": In(8), "status": In(8), "length": In(16),
            "addr": Out(16), "data": In(8), "busy": Out(1), "done": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.crc = crc = CRC32()
        header = Signal(4 * 8)                   # command, status, length (u16 LE)
        index = Signal(16)
        crc_value = Signal(32)
        covered = Signal()                       # the byte in the output register is in the CRC
        out = self.tx
        sent = Signal()
        m.d.comb += [sent.eq(out.valid & out.ready), self.addr.eq(index),
                     crc.data.eq(out.payload), crc.en.eq(sent & covered)]
        with m.If(sent):
            m.d.sync += out.valid.eq(0)
        free = ~out.valid | sent

        def put(value, in_crc):
            m.d.sync += [out.payload.eq(value), out.valid.eq(1), covered.eq(in_crc)]

        with m.FSM(name="reply_tx"):
            with m.State("IDLE"):
                m.d.comb += crc.clear.eq(1)
                with m.If(self.start):
                    m.d.sync += [header.eq(Cat(self.command, self.status, self.length)),
                                 index.eq(0)]
                    put(SYNC_REPLY, 0)
                    m.next = "HEADER"
            with m.State("HEADER"):
                m.d.comb += self.busy.eq(1)
                with m.If(free):
                    put(header.word_select(index[:2], 8), 1)
                    m.d.sync += index.eq(index + 1)
                    with m.If(index == 3):
                        m.d.sync += index.eq(0)
                        m.next = "FETCH"
            with m.State("FETCH"):
                # addr = index from here on: the data is sampled `latency` cycles later
                m.d.comb += self.busy.eq(1)
                with m.If(index == header[16:]):
                    m.next = "CRC_HOLD"
                with m.Else():
                    m.next = "WAIT_1" if self._latency > 1 else "PAYLOAD"
            for i in range(1, self._latency):
                with m.State(f"WAIT_{i}"):
                    m.d.comb += self.busy.eq(1)
                    m.next = f"WAIT_{i + 1}" if i + 1 < self._latency else "PAYLOAD"
            with m.State("PAYLOAD"):
                m.d.comb += self.busy.eq(1)
                with m.If(free):
                    put(self.data, 1)
                    m.d.sync += index.eq(index + 1)
                    m.next = "FETCH"
            with m.State("CRC_HOLD"):
                # wait until the last covered byte has gone (and into the CRC)
                m.d.comb += self.busy.eq(1)
                with m.If(~out.valid):
                    m.d.sync += [crc_value.eq(crc.value), index.eq(0)]
                    m.next = "CRC"
            with m.State("CRC"):
                m.d.comb += self.busy.eq(1)
                with m.If(free):
                    put(crc_value.word_select(index[:2], 8), 0)
                    m.d.sync += index.eq(index + 1)
                    with m.If(index == CRC_BYTES - 1):
                        m.next = "LAST"
            with m.State("LAST"):
                m.d.comb += self.busy.eq(1)
                with m.If(sent):
                    m.d.comb += self.done.eq(1)
                    m.next = "IDLE"
        return m
