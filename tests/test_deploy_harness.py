"""The UART-to-TCP harness of the simulated board (deploy/verilator/uart_tcp.cpp) on an echo
through the gateware UART (deploy.uart) that answers each byte b with b ^ 0x17, so the
harness's frames must be the UART's (start bit, LSB first, stop bit) at the divisor (0x17 is
no bit palindrome: a harness that sent and sampled MSB first fails, measured); and the
process's lifetime (it exits when its client disconnects, when no client comes, after an idle
timeout; it listens on 127.0.0.1 only)."""
import socket
import time
from pathlib import Path

import numpy as np
import pytest

serial = pytest.importorskip("serial")

from amaranth.back import verilog                                    # noqa: E402
from amaranth.hdl import Module                              # noqa: E402
from amaranth.lib import wiring                                      # noqa: E402
from amaranth.lib.fifo import SyncFIFO                               # noqa: E402
from amaranth.lib.wiring import In, Out                              # noqa: E402

from deploy.simboard import build_board, start_board                 # noqa: E402
from deploy.uart import UARTRx, UARTTx                               # noqa: E402


class Echo(wiring.Component):
    """Each byte the UART receives, XOR 0x17, back through the UART (a FIFO between)."""

    rx: In(1, init=1)
    tx: Out(1, init=1)

    def __init__(self, divisor):
        self.divisor = divisor
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.rx = rx = UARTRx(self.divisor)
        m.submodules.tx = tx = UARTTx(self.divisor)
        m.submodules.fifo = fifo = SyncFIFO(width=8, depth=16)
        m.d.comb += [rx.rx.eq(self.rx), self.tx.eq(tx.tx),
                     fifo.w_data.eq(rx.data.payload ^ 0x17), fifo.w_en.eq(rx.data.valid),
                     rx.data.ready.eq(fifo.w_rdy),
                     tx.data.payload.eq(fifo.r_data), tx.data.valid.eq(fifo.r_rdy),
                     fifo.r_en.eq(tx.data.ready)]
        return m


DIVISOR = 5            # odd: the harness's mid-bit sampling is not at an even split


@pytest.fixture(scope="module")
def echo():
    return build_board(verilog.convert(Echo(DIVISOR), name="echo", emit_src=False), "echo")


def test_echo_through_the_gateware_uart(echo):
    data = np.random.default_rng(5).integers(0, 256, 2000, dtype=np.uint8)
    with start_board(echo, divisor=DIVISOR, idle_timeout=10) as board:
        link = serial.serial_for_url(board.url, timeout=10)
        got = b""
        # in chunks: the gateware transmitter takes 10 D + 1 cycles per byte against the
        # harness's 10 D, so an endless stream would overrun the echo's FIFO
        for chunk in data.reshape(-1, 100):
            link.write(chunk.tobytes())
            got += link.read(len(chunk))
        link.close()
        assert board.stop() == 0
    assert got == (data ^ 0x17).tobytes()
    assert not board.messages


def test_exits_when_no_client_comes(echo):
    with start_board(echo, divisor=DIVISOR, accept_timeout=1) as board:
        start = time.monotonic()
        assert board.stop() == 3
        assert time.monotonic() - start < 5
    assert any("no client connected" in m for m in board.messages)


def test_exits_after_idle_timeout(echo):
    with start_board(echo, divisor=DIVISOR, idle_timeout=1) as board:
        with socket.create_connection(("127.0.0.1", board.port), timeout=5):
            start = time.monotonic()
            assert board.stop() == 3
            assert time.monotonic() - start < 6
    assert any("no byte in either direction" in m for m in board.messages)


def test_binds_to_loopback_only(echo):
    with start_board(echo, divisor=DIVISOR, accept_timeout=5) as board:
        listening = [line for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
                     if int(line.split()[1].split(":")[1], 16) == board.port
                     and line.split()[3] == "0A"]
        assert listening and all(line.split()[1].startswith("0100007F:") for line in listening)
        socket.create_connection(("127.0.0.1", board.port), timeout=5).close()
        assert board.stop() == 0
