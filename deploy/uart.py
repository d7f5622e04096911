"""UART receiver and transmitter (8 data bits, no parity, 1 stop bit, LSB first) in Amaranth.

No packaged Amaranth UART is on PyPI (amaranth-stdio is a placeholder there), so these are
written here. Both count ``divisor`` = clock / baud cycles per bit (an integer: the baud rate
error is ``clock / divisor / baud - 1``; :func:`divisor_for` refuses more than 2 %, which leaves
the rest of the ~4.5 % an 8N1 frame tolerates at mid-bit sampling to the other end).
"""
from amaranth.hdl import Module, Signal
from amaranth.lib import cdc, stream, wiring
from amaranth.lib.wiring import In, Out

from rtl.geometry import refuse

__all__ = ["UARTRx", "UARTTx", "divisor_for", "MAX_BAUD_ERROR"]

MAX_BAUD_ERROR = 0.02


def divisor_for(clock_hz: float, baud: int) -> int:
    """Clock cycles per bit for ``baud`` at ``clock_hz``; ValueError if the rounding leaves the
    actual rate more than 2 % off, or fewer than 4 cycles per bit."""
    divisor = round(clock_hz / baud)
    if divisor < 4:
        raise ValueError(f"a {clock_hz / 1e6:g} MHz clock is too slow for {baud} baud "
                         f"(at least 4 cycles per bit)")
    error = clock_hz / divisor / baud - 1
    if abs(error) > MAX_BAUD_ERROR:
        raise ValueError(f"{baud} baud at {clock_hz / 1e6:g} MHz: divisor {divisor} is "
                         f"{error:+.1%} off (at most {MAX_BAUD_ERROR:.0%})")
    return divisor


def _check_divisor(component, divisor):
    if not isinstance(divisor, int) or divisor < 4:
        refuse(component, TypeError(f"divisor must be an integer of at least 4, not {divisor!r}"))


class UARTRx(wiring.Component):
    """UART receiver: ``rx`` pin -> byte stream, with line-error pulses.

    ``rx`` passes a two-flip-flop synchroniser (reset value 1, the idle line). A falling edge
    starts a frame; the start bit is checked at its middle (``divisor // 2`` cycles later:
    a glitch shorter than that is ignored), then each data bit and the stop bit are sampled
    ``divisor`` cycles apart, at their middles. Latency: a byte is offered 2 + divisor // 2 +
    9 * divisor cycles after its start bit's falling edge at the pin.

    Members
    -------
    rx : ``In(1)``
        The pin (asynchronous).
    data : ``Out(stream.Signature(8))``
        Received bytes. A byte waits until taken; the next one may complete meanwhile.
    frame_error : ``Out(1)``
        One-cycle pulse: the stop bit was 0 (the byte is dropped). The receiver then waits for
        the line to go high before looking for a start bit, so a break (the line held low)
        gives one pulse and ``brk`` stays high while it lasts.
    brk : ``Out(1)``
        High while a break is seen (a frame of all zeros, stop bit included, until the line
        returns high).
    overrun : ``Out(1)``
        One-cycle pulse: a byte completed while the previous one was still waiting; the new
        byte is dropped.
    """

    def __init__(self, divisor: int):
        _check_divisor(self, divisor)
        self._divisor = divisor
        super().__init__({"rx": In(1, init=1), "data": Out(stream.Signature(8)),
                          "frame_error": Out(1), "brk": Out(1), "overrun": Out(1)})

    @property
    def divisor(self) -> int:
        return self._divisor

    def elaborate(self, platform):
        m = Module()
        line = Signal(init=1)
        m.submodules.sync = cdc.FFSynchronizer(self.rx, line, init=1, stages=2)

        timer = Signal(range(self._divisor))
        bits = Signal(8)
        count = Signal(range(8))

        # the output register: a byte waits here until taken
        with m.If(self.data.valid & self.data.ready):
            m.d.sync += self.data.valid.eq(0)
        m.d.sync += [self.frame_error.eq(0), self.overrun.eq(0)]

        with m.FSM(name="uart_rx"):
            with m.State("IDLE"):
                with m.If(~line):
                    m.d.sync += timer.eq(self._divisor // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(line):
                    m.next = "IDLE"                      # a glitch, not a start bit
                with m.Else():
                    m.d.sync += [timer.eq(self._divisor - 1), count.eq(0)]
                    m.next = "DATA"
            with m.State("DATA"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    m.d.sync += [bits.eq((bits >> 1) | (line << 7)), timer.eq(self._divisor - 1),
                                 count.eq(count + 1)]
                    with m.If(count == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(line):
                    with m.If(self.data.valid & ~self.data.ready):
                        m.d.sync += self.overrun.eq(1)
                    with m.Else():
                        m.d.sync += [self.data.payload.eq(bits), self.data.valid.eq(1)]
                    m.next = "IDLE"
                with m.Else():
                    m.d.sync += [self.frame_error.eq(1), self.brk.eq(bits == 0)]
                    m.next = "WAIT_HIGH"
            with m.State("WAIT_HIGH"):
                with m.If(line):
                    m.d.sync += self.brk.eq(0)
                    m.next = "IDLE"
        return m


class UARTTx(wiring.Component):
    """UART transmitter: byte stream -> ``tx`` pin (idle high).

    A byte is taken when the transmitter is idle and leaves as a start bit, 8 data bits (LSB
    first) and a stop bit, ``divisor`` cycles each, the start bit on ``tx`` from the cycle after
    the byte is taken. ``busy`` is high for those 10 * divisor cycles; the next byte is taken in
    the cycle after them, so bytes sent back to back are 10 * divisor + 1 cycles apart (each
    stop bit but the last lasts divisor + 1 cycles).

    Members
    -------
    data : ``In(stream.Signature(8))``
        Bytes to send.
    tx : ``Out(1)``
        The pin (registered).
    busy : ``Out(1)``
        A byte is being sent.
    """

    def __init__(self, divisor: int):
        _check_divisor(self, divisor)
        self._divisor = divisor
        super().__init__({"data": In(stream.Signature(8)), "tx": Out(1, init=1), "busy": Out(1)})

    @property
    def divisor(self) -> int:
        return self._divisor

    def elaborate(self, platform):
        m = Module()
        shift = Signal(10, init=0x3FF)        # stop, data[7:0], start: bit 0 leaves first
        left = Signal(range(11))
        timer = Signal(range(self._divisor))
        m.d.comb += [self.busy.eq(left != 0), self.data.ready.eq(left == 0)]
        with m.If(self.data.valid & self.data.ready):
            m.d.sync += [shift.eq((1 << 9) | (self.data.payload << 1)), left.eq(10),
                         timer.eq(self._divisor - 1), self.tx.eq(0)]
        with m.Elif(left != 0):
            with m.If(timer != 0):
                m.d.sync += timer.eq(timer - 1)
            with m.Else():
                m.d.sync += [shift.eq((shift >> 1) | (1 << 9)), left.eq(left - 1),
                             timer.eq(self._divisor - 1), self.tx.eq(shift[1])]
                with m.If(left == 1):
                    m.d.sync += self.tx.eq(1)
        return m
