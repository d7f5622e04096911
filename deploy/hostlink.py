"""The design behind the host link: frame receiver, executor, reply sender and the design
itself (in its own ``core`` clock domain, so RESET can reset it alone), with a byte-level
interface (:class:`HostLink`) and with the UART pins (:class:`UARTLink`).

:func:`design_info` builds the INFO payload (deploy.protocol.Info) for a design.
"""
from amaranth.hdl import ClockDomain, ClockSignal, DomainRenamer, Module, ResetSignal, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .design import DesignPorts
from .executor import Executor
from .link import FrameReceiver, ReplySender
from .protocol import DEFAULT_MAX_PAYLOAD, Info, LayerInfo, design_hash
from .slice import RegisterSlice
from .uart import UARTRx, UARTTx

__all__ = ["HostLink", "UARTLink", "design_info", "LinkParams"]


class LinkParams:
    """Sizes and rates of a host link build (every figure INFO reports besides the design's)."""

    def __init__(self, *, clock_hz: int, baud: int, divisor: int, timeout: int,
                 max_payload: int = DEFAULT_MAX_PAYLOAD, batch_bytes: int = 16384,
                 batch_results: int = 64):
        self.clock_hz, self.baud, self.divisor, self.timeout = clock_hz, baud, divisor, timeout
        self.max_payload, self.batch_bytes, self.batch_results = max_payload, batch_bytes, batch_results


def design_info(config, stack, design, params: LinkParams) -> bytes:
    """INFO's payload for ``design`` (built by rtl.stack.build_design from ``config``, ``stack``)."""
    ports = DesignPorts(design)
    cells = ports.cells
    layers = tuple(LayerInfo(c.geometry.n_inputs, c.geometry.n_hidden, c.geometry.lanes,
                             ports.weight_bits[k], ports.weight_words[k],
                             c.geometry.config.fmt("h").bits, c.geometry.config.fmt("c").bits,
                             c.cycles_per_step)
                   for k, c in enumerate(cells))
    x_fmt, h_fmt = cells[0].geometry.config.fmt("x"), cells[-1].geometry.config.fmt("h")
    n_classes, logit_bits, logit_frac = 0, 0, 0
    if ports.head is not None:
        from rtl.head import logit_format
        n_classes = ports.n_classes
        logit_bits, logit_frac = logit_format(cells[-1].geometry.config, ports.n_hidden)
        assert logit_bits == ports.logit_bits
    latency = design.cycles_per_sequence(1)
    info = Info(ports.n_inputs, ports.n_hidden, n_classes, x_fmt.bits, x_fmt.frac, h_fmt.bits,
                h_fmt.frac, logit_bits, logit_frac, ports.has_last, design.cycles_per_step, latency,
                params.max_payload, params.batch_bytes, params.batch_results, params.clock_hz,
                params.baud, params.timeout,
                design_hash(config.as_dict(), [(w.n_inputs, w.n_hidden) for w in stack.layers],
                            n_classes),
                layers)
    return info.encode()


class HostLink(wiring.Component):
    """Receiver + executor + sender + the design, on byte streams.

    Members
    -------
    rx : ``In(stream.Signature(8))``
        Bytes from the host (always taken).
    line_error : ``In(1)``
        The UART's framing-error/overrun pulse.
    tx : ``Out(stream.Signature(8))``
        Reply bytes.
    alive, error, busy : ``Out(1)``
        LEDs: a heartbeat (bit 24 of a free-running counter: ~0.3 s at 50 MHz), the design's
        error bit or any refused request since RESET, and a request in progress.
    """

    def __init__(self, design, info: bytes, params: LinkParams):
        self._design = design
        self._ports = DesignPorts(design)
        self._info = info
        self._params = params
        super().__init__({"rx": In(stream.Signature(8)), "line_error": In(1),
                          "tx": Out(stream.Signature(8)),
                          "alive": Out(1), "error": Out(1), "busy": Out(1)})

    def elaborate(self, platform):
        m = Module()
        p, params = self._ports, self._params
        m.submodules.receiver = receiver = FrameReceiver(max_payload=params.max_payload,
                                                         timeout=params.timeout)
        m.submodules.sender = sender = ReplySender(latency=Executor.REPLY_LATENCY)
        m.submodules.executor = ex = Executor(p, info=self._info, max_payload=params.max_payload,
                                              batch_bytes=params.batch_bytes,
                                              batch_results=params.batch_results)
        m.submodules.rx_buffer = rx_buffer = Memory(shape=8, depth=params.max_payload, init=[])
        buf_wr, buf_rd = rx_buffer.write_port(), rx_buffer.read_port()

        # the design in the `core` domain: the same clock, reset also by RESET; its reset is a
        # register (reset-less, high at power-up) beside the design, so the route from the
        # reset synchroniser and the OR are not in the design's paths that read it
        m.domains.core = core = ClockDomain("core")
        core_rst = Signal(init=1, reset_less=True)
        m.d.sync += core_rst.eq(ResetSignal() | ex.core_reset)
        m.d.comb += [core.clk.eq(ClockSignal()), core.rst.eq(core_rst)]
        m.submodules.design = design = DomainRenamer("core")(self._design)

        # bytes in -> receiver -> buffer; request -> executor -> sender -> bytes out
        wiring.connect(m, wiring.flipped(self.rx), receiver.rx)
        wiring.connect(m, sender.tx, wiring.flipped(self.tx))
        m.d.comb += [
            receiver.line_error.eq(self.line_error),
            buf_wr.addr.eq(receiver.buffer_addr), buf_wr.data.eq(receiver.buffer_data),
            buf_wr.en.eq(receiver.buffer_en),
            ex.req_valid.eq(receiver.valid), ex.req_command.eq(receiver.command),
            ex.req_length.eq(receiver.length), ex.req_status.eq(receiver.status),
            receiver.done.eq(ex.req_done),
            buf_rd.addr.eq(ex.buf_addr), ex.buf_data.eq(buf_rd.data),
            sender.start.eq(ex.reply_start), sender.command.eq(ex.reply_command),
            sender.status.eq(ex.reply_status), sender.length.eq(ex.reply_length),
            ex.reply_addr.eq(sender.addr), sender.data.eq(ex.reply_data),
            ex.reply_done.eq(sender.done),
            ex.core_error.eq(design.error),
        ]
        # executor <-> design streams
        wiring.connect(m, ex.x, p.design.x)
        wiring.connect(m, p.design.h, ex.h)
        if p.head is not None:
            wiring.connect(m, p.design.y, ex.y)
        for k in range(p.n_layers):
            wiring.connect(m, getattr(ex, f"weights_l{k}"), p.weights[k])
            wiring.connect(m, getattr(ex, f"state_l{k}"), p.state[k])

        # LEDs
        heartbeat = Signal(25)
        m.d.sync += heartbeat.eq(heartbeat + 1)
        m.d.comb += [self.alive.eq(heartbeat[-1]),
                     self.error.eq(design.error.any() | ex.refused_any),
                     self.busy.eq(receiver.in_frame | ex.busy)]
        return m


class UARTLink(wiring.Component):
    """:class:`HostLink` behind a UART: the pins ``rx`` (from the host) and ``tx`` (to it)."""

    def __init__(self, design, info: bytes, params: LinkParams):
        self._link = HostLink(design, info, params)
        self._params = params
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1),
                          "alive": Out(1), "error": Out(1), "busy": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.link = link = self._link
        m.submodules.uart_rx = urx = UARTRx(self._params.divisor)
        m.submodules.uart_tx = utx = UARTTx(self._params.divisor)
        # the UART sits by its pins, the link elsewhere: registers on both sides of the route
        m.submodules.tx_slice = tx_slice = RegisterSlice(8)
        wiring.connect(m, urx.data, link.rx)
        wiring.connect(m, link.tx, tx_slice.i)
        wiring.connect(m, tx_slice.o, utx.data)
        m.d.comb += [urx.rx.eq(self.rx), self.tx.eq(utx.tx),
                     link.line_error.eq(urx.frame_error | urx.overrun),
                     self.alive.eq(link.alive), self.error.eq(link.error),
                     self.busy.eq(link.busy)]
        return m
