"""The host driver against the simulated board: the whole board top (UART included, PLL
bypassed) in Verilator, its UART pins driven bit by bit from a TCP socket
(deploy/verilator/uart_tcp.cpp), a small model with its head on chip. Sequences match the
golden model with 0 mismatches, and every bad frame (bad CRC, truncated, unknown command, too
long, a weight packet of the wrong size) is answered with its status, changes nothing, and the
board keeps serving. One simulated board serves the module's driver tests (it serves one
client); the harness's lifetime (disconnect, timeouts, 127.0.0.1 only) runs on more processes
of the same build. A harness that sent and sampled bits MSB first fails every test here
(measured: the board's UART then never sees a request)."""
import contextlib
import json
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("serial")

from deploy import protocol as p                                     # noqa: E402
from deploy.check import Comparison, compare                         # noqa: E402
from deploy.host import Board, BoardError                            # noqa: E402
from deploy.simboard import (SIM_DIVISOR, board_verilog, build_board,  # noqa: E402
                             start_board)
from model.config import load_config                                 # noqa: E402
from deploy.run import main as run_main                              # noqa: E402
from model.golden import run_golden                                  # noqa: E402
from model.weights import save_weights                               # noqa: E402
from rtl_helpers import random_weights                               # noqa: E402

X, H, C, T = 3, 4, 3, 4


@pytest.fixture(scope="module")
def small():
    config = load_config()
    weights = random_weights(np.random.default_rng(18), X, H, head_classes=C)
    x = np.random.default_rng(19).normal(0, 1, (6, T, X))
    return config, weights, x


@pytest.fixture(scope="module")
def executable(small):
    """The simulated board (unoptimised: it builds in half the time)."""
    config, weights, _ = small
    text, top, pins = board_verilog("ulx3s-25f", config, weights, lanes=2)
    return build_board(text, top, pins, optimize=False)


@pytest.fixture(scope="module")
def board(small, executable):
    config, weights, _ = small
    with start_board(executable, divisor=SIM_DIVISOR, idle_timeout=60) as sim:
        with Board(sim.url, config=config, timeout=20) as b:
            b.load(weights)
            yield b
        # the driver has disconnected: the simulation ends by itself, at once
        start = time.monotonic()
        assert sim.stop() == 0 and time.monotonic() - start < 5


@pytest.fixture(scope="module")
def files(small, tmp_path_factory):
    """The small model, its inputs and random labels as files, for the command line."""
    _, weights, x = small
    d = tmp_path_factory.mktemp("deploy")
    save_weights(d / "w.npz", weights)
    np.save(d / "x.npy", x)
    np.save(d / "y.npy", np.arange(len(x)) % C)
    return ["--weights", str(d / "w.npz"), "--inputs", str(d / "x.npy"),
            "--labels", str(d / "y.npy")]


def expect_status(board, frame: bytes, status: p.Status, command: int):
    board.link.write(frame)
    reply = p.read_reply(board.link.read)
    assert (reply.command, reply.status, reply.payload) == (command, status, b"")


def matches_golden(out, small, n):
    """Every code the board returned for the first n sequences (labels and logits from an
    on-chip head, else the last step's h) equals the golden model's."""
    config, weights, x = small
    kinds = {k: v for k, v in out.items() if k in ("labels", "logits", "h")}
    result = compare(run_golden(config, weights, x[:n]), kinds, 0, Comparison())
    assert result.compared and result.sequences == n
    assert result.total_mismatches == 0, result.reports


def still_serving(board, small):
    """INFO answers and a sequence gives the golden model's codes."""
    assert board.info().n_hidden == H
    matches_golden(board.run(small[2][:2]), small, 2)


def test_sequences_match_the_golden_model(board, small):
    out = board.run(small[2])
    matches_golden(out, small, len(small[2]))
    assert np.all(out["cycles"] >= T * board.info().cycles_per_step)


def test_batch_matches_the_golden_model(board, small):
    out = board.run_batch(small[2])
    n = out["sequences"]
    assert n == len(small[2])
    matches_golden(out, small, n)
    assert out["cycles"] >= n * T * board.info().cycles_per_step


def test_bad_crc_is_refused_and_changes_nothing(board, small):
    # a weight frame that would open a packet of zeros: refused, so x is not blocked
    payload = p.weights_payloads(0, np.zeros(4, np.int64), 16)[0]
    frame = bytearray(p.encode_request(p.Command.LOAD_WEIGHTS, payload))
    frame[6] ^= 0x04
    expect_status(board, bytes(frame), p.Status.BAD_CRC, p.Command.LOAD_WEIGHTS)
    still_serving(board, small)


def test_truncated_frame_times_out(board, small):
    frame = p.encode_request(p.Command.RUN, p.run_payload(np.zeros((T, X), np.int64),
                                                          board.info().x_bits, 3))
    expect_status(board, frame[:-3], p.Status.TIMEOUT, p.Command.RUN)
    still_serving(board, small)


def test_unknown_command(board, small):
    expect_status(board, p.encode_request(0x7E, b"abc"), p.Status.UNKNOWN_COMMAND, 0x7E)
    still_serving(board, small)


def test_length_beyond_the_limit(board, small):
    limit = board.info().max_payload
    frame = bytes([p.SYNC_REQUEST, p.Command.RUN]) + struct.pack("<H", limit + 1) + bytes(40)
    expect_status(board, frame, p.Status.TOO_LONG, p.Command.RUN)
    still_serving(board, small)


def test_weight_packet_of_the_wrong_size_blocks_x_until_a_good_one(board, small):
    """A packet over several frames whose LAST frame leaves it one word short: the frames
    before it were written, so the weights are invalid and x stays blocked (as in the core)
    until a complete packet loads."""
    weights, x = small[1:]
    layer = board.info().layers[0]
    short = p.weights_payloads(0, np.zeros(layer.weight_words - 1, np.int64), layer.weight_bits,
                               max_payload=64)
    assert len(short) > 2
    for payload in short[:-1]:
        board.request(p.Command.LOAD_WEIGHTS, payload)
    with pytest.raises(BoardError) as e:
        board.request(p.Command.LOAD_WEIGHTS, short[-1])
    assert e.value.status == p.Status.BAD_SIZE
    with pytest.raises(BoardError) as e:
        board.run(x[:1])
    assert e.value.status == p.Status.X_BLOCKED and "x is blocked" in str(e.value)
    assert board.read_error().weights_invalid & 1
    board.load(weights)
    still_serving(board, small)


def test_a_refused_single_frame_packet_writes_nothing(board, small):
    """A whole packet in one frame, one word too long: refused before any word is written,
    so the weights stay valid and x is served."""
    layer = board.info().layers[0]
    (payload,) = p.weights_payloads(0, np.zeros(layer.weight_words + 1, np.int64),
                                    layer.weight_bits, board.info().max_payload)
    with pytest.raises(BoardError) as e:
        board.request(p.Command.LOAD_WEIGHTS, payload)
    assert e.value.status == p.Status.BAD_SIZE
    still_serving(board, small)


def test_garbage_between_frames_is_ignored(board, small):
    board.link.write(bytes([0x00, 0x13, 0xFF]))
    time.sleep(0.05)
    still_serving(board, small)


# ---- the harness's lifetime -------------------------------------------------------------------

@pytest.mark.parametrize("timeouts, connect, message", [
    ({"accept_timeout": 1}, False, "no client connected"),
    ({"idle_timeout": 1}, True, "no byte in either direction"),
])
def test_exits_on_its_timeouts(executable, timeouts, connect, message):
    with start_board(executable, divisor=SIM_DIVISOR, **timeouts) as sim:
        with contextlib.ExitStack() as client:
            if connect:
                client.enter_context(socket.create_connection(("127.0.0.1", sim.port), timeout=5))
            start = time.monotonic()
            assert sim.stop() == 3
            assert time.monotonic() - start < 6
    assert any(message in m for m in sim.messages)


def test_listens_on_127_0_0_1_only(executable):
    with start_board(executable, divisor=SIM_DIVISOR, accept_timeout=5) as sim:
        listening = [line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:]]
        mine = [f for f in listening if int(f[1].split(":")[1], 16) == sim.port and f[3] == "0A"]
        assert mine and all(f[1].startswith("0100007F:") for f in mine)
        socket.create_connection(("127.0.0.1", sim.port), timeout=5).close()
        assert sim.stop() == 0


# ---- the command line ---------------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent


def test_deploy_sim_serves_deploy_run(executable, files, capsys):
    """python -m deploy sim in one process, python -m deploy run against its socket."""
    sim = subprocess.Popen([sys.executable, "-m", "deploy", "sim", "--board", "ulx3s-25f",
                            "--lanes", "2", "--fast-build", files[0], files[1]],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        line = []
        reader = threading.Thread(target=lambda: line.append(sim.stdout.readline()))
        reader.start()
        reader.join(120)
        url = line[0].split(" listening on ")[1].split()[0] if line else None
        assert url and url.startswith("socket://127.0.0.1:"), (line, sim.stderr.read())
        code = run_main(["--port", url, *files, "--json"])
        out, err = capsys.readouterr()
        assert code == 0, err
        r = json.loads(out)
        assert r["passed"] and r["mismatches"] == 0 and r["sequences"] == 6
        assert r["labels_compared"] == 6 and r["logits_compared"] == 6 * C
        assert r["accuracy_board"] == r["accuracy_golden"]
        assert sim.wait(10) == 0          # the driver disconnected: the simulation ended
    finally:
        if sim.poll() is None:
            sim.kill()
            sim.wait()
        sim.stdout.close()
        sim.stderr.close()


def test_deploy_run_starts_the_simulated_board_itself(executable, files, capsys):
    code = run_main(["--port", "sim", "--board", "ulx3s-25f", "--lanes", "2", "--fast-build",
                     *files, "--limit", "3", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    r = json.loads(out)
    assert r["board"] == "ulx3s-25f" and r["passed"] and r["sequences"] == 3


@pytest.mark.parametrize("args, message", [
    (["--board", "ulx3s-99f"], "--board must be one of"),
    (["--board", "ulx3s-25f", "--port-number", "70000"], "--port-number must be from 0"),
    (["--board", "ulx3s-25f", "--idle-timeout", "0"], "--idle-timeout must be positive"),
])
def test_deploy_sim_bad_input_is_one_line(args, message, capsys):
    from deploy.simboard import main as sim_main
    code = sim_main(args)
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1


@pytest.mark.slow
def test_a_stacked_model_through_the_simulated_board():
    """Two layers (X=3 -> H=5 -> H=4) with a head: both weight packets load, and RUN and
    RUN_BATCH match the golden model (its own build: pytest -m slow)."""
    from deploy.simboard import serve
    from model.weights import LSTMStack
    rng = np.random.default_rng(2)
    first, second = random_weights(rng, 3, 5), random_weights(rng, 5, 4)
    stack = LSTMStack((first, second), rng.uniform(-0.5, 0.5, (C, 4)), rng.uniform(-0.5, 0.5, C))
    config, x = load_config(), rng.normal(0, 1, (5, T, 3))
    with serve("ulx3s-25f", config, stack, quiet=True, optimize=False) as sim:
        with Board(sim.url, config=config, timeout=60) as b:
            assert b.load(stack) == 2 and b.info().n_layers == 2
            runs = [b.run(x), b.run_batch(x)]
    golden = run_golden(config, stack, x)
    for out in runs:
        result = compare(golden, {k: v for k, v in out.items() if k in ("labels", "logits")},
                         0, Comparison())
        assert result.compared == {"labels": 5, "logits": 5 * C}
        assert result.total_mismatches == 0, result.reports
