"""The UART-to-TCP harness of the simulated board (deploy/verilator/uart_tcp.cpp) on a loopback
design: bytes through the bit-level UART both ways, and the process's lifetime (it exits when
its client disconnects, when no client comes, after an idle timeout)."""
import socket
import time
from pathlib import Path

import numpy as np
import pytest

serial = pytest.importorskip("serial")

from amaranth.back import verilog                                    # noqa: E402
from amaranth.hdl import Module, Signal                              # noqa: E402
from amaranth.lib import wiring                                      # noqa: E402
from amaranth.lib.wiring import In, Out                              # noqa: E402

from deploy.simboard import build_board, start_board                 # noqa: E402


class Loopback(wiring.Component):
    """tx follows rx through two flip-flops (a synchroniser's delay): the harness's frames
    come back as it sent them."""

    rx: In(1, init=1)
    tx: Out(1, init=1)

    def elaborate(self, platform):
        m = Module()
        middle = Signal(init=1)
        m.d.sync += [middle.eq(self.rx), self.tx.eq(middle)]
        return m


@pytest.fixture(scope="module")
def loopback():
    return build_board(verilog.convert(Loopback(), name="loopback", emit_src=False), "loopback")


@pytest.mark.parametrize("divisor", [4, 7, 16])
def test_bytes_come_back_at_any_divisor(loopback, divisor):
    data = np.random.default_rng(divisor).integers(0, 256, 3000, dtype=np.uint8).tobytes()
    with start_board(loopback, divisor=divisor, idle_timeout=10) as board:
        link = serial.serial_for_url(board.url, timeout=10)
        link.write(data)
        got = link.read(len(data))
        link.close()
        assert board.stop() == 0
    assert got == data
    assert not board.messages


def test_exits_when_no_client_comes(loopback):
    with start_board(loopback, divisor=4, accept_timeout=1) as board:
        start = time.monotonic()
        assert board.stop() == 3
        assert time.monotonic() - start < 5
    assert any("no client connected" in m for m in board.messages)


def test_exits_after_idle_timeout(loopback):
    with start_board(loopback, divisor=4, idle_timeout=1) as board:
        with socket.create_connection(("127.0.0.1", board.port), timeout=5):
            start = time.monotonic()
            assert board.stop() == 3
            assert time.monotonic() - start < 6
    assert any("no byte in either direction" in m for m in board.messages)


def test_binds_to_loopback_only(loopback):
    with start_board(loopback, divisor=4, accept_timeout=5) as board:
        listening = [line for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
                     if int(line.split()[1].split(":")[1], 16) == board.port
                     and line.split()[3] == "0A"]
        assert listening and all(line.split()[1].startswith("0100007F:") for line in listening)
        socket.create_connection(("127.0.0.1", board.port), timeout=5).close()
        assert board.stop() == 0
