"""The host driver against the simulated board: the whole board top (UART included, PLL
bypassed) in Verilator, its UART pins driven bit by bit from a TCP socket
(deploy/verilator/uart_tcp.cpp), a small model. Sequences match the golden model with 0
mismatches, and every bad frame (bad CRC, truncated, unknown command, too long, a weight
packet of the wrong size) is answered with its status, changes nothing, and the board keeps
serving. One simulated board serves the whole module (it serves one client)."""
import struct
import time

import numpy as np
import pytest

pytest.importorskip("serial")

from deploy import protocol as p                                     # noqa: E402
from deploy.host import Board, BoardError                            # noqa: E402
from model.config import load_config                                 # noqa: E402
from model.golden import run_golden                                  # noqa: E402
from rtl_helpers import random_weights                               # noqa: E402

X, H, C, T = 3, 4, 3, 4


@pytest.fixture(scope="module")
def small():
    config = load_config()
    weights = random_weights(np.random.default_rng(18), X, H, head_classes=C)
    x = np.random.default_rng(19).normal(0, 1, (6, T, X))
    return config, weights, x


@pytest.fixture(scope="module")
def board(small):
    config, weights, _ = small
    from deploy.simboard import SimError, board_verilog, serve
    try:
        board_verilog("ulx3s-25f", config, weights, lanes=2)
    except SimError as e:           # until the board top for simulation has landed
        pytest.skip(str(e))
    with serve("ulx3s-25f", config, weights, lanes=2, quiet=True) as sim:
        with Board(sim.url, config=config, timeout=20) as b:
            b.load(weights)
            yield b


def expect_status(board, frame: bytes, status: p.Status, command: int):
    board.link.write(frame)
    reply = p.read_reply(board.link.read)
    assert (reply.command, reply.status, reply.payload) == (command, status, b"")


def still_serving(board, small):
    """INFO answers and a sequence gives the golden model's codes."""
    config, weights, x = small
    assert board.info().n_hidden == H
    out = board.run(x[:2])
    golden = run_golden(config, weights, x[:2])
    assert np.array_equal(out["logits"], np.asarray(golden.logits_raw, np.int64))


def test_sequences_match_the_golden_model(board, small):
    config, weights, x = small
    out = board.run(x)
    golden = run_golden(config, weights, x)
    assert np.array_equal(out["logits"], np.asarray(golden.logits_raw, np.int64))
    assert np.array_equal(out["labels"], np.asarray(golden.logits_raw, dtype=object)
                          .argmax(axis=1).astype(np.int64))
    info = board.info()
    assert np.all(out["cycles"] >= T * info.cycles_per_step)


def test_batch_matches_the_golden_model(board, small):
    config, weights, x = small
    out = board.run_batch(x)
    n = out["sequences"]
    golden = run_golden(config, weights, x[:n])
    assert n >= 1 and np.array_equal(out["logits"], np.asarray(golden.logits_raw, np.int64))
    assert out["cycles"] >= n * T * board.info().cycles_per_step


def test_bad_crc_is_refused_and_changes_nothing(board, small):
    config, weights, x = small
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
    config, weights, x = small
    info = board.info()
    layer = info.layers[0]
    short = p.weights_payloads(0, np.zeros(layer.weight_words - 1, np.int64), layer.weight_bits,
                               info.max_payload)
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


def test_garbage_between_frames_is_ignored(board, small):
    board.link.write(bytes([0x00, 0x13, 0xFF]))
    time.sleep(0.05)
    still_serving(board, small)
