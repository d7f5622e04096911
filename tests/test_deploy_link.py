"""deploy.hostlink at the byte level in the Amaranth simulator: every command against the golden
model, and every bad frame answered with the board still serving."""
import numpy as np
import pytest

from deploy import protocol as P
from deploy_bench import exchange, other_weights, small_link
from model.cell import FixedLSTM
from rtl.geometry import Geometry

RUN_FL = P.RunFlags.FIRST | P.RunFlags.LAST


@pytest.fixture(scope="module")
def link():
    return small_link()


def req(command, payload=b""):
    return P.encode_request(command, payload)


def golden_last_h(cfg, qw, x, h0=None, c0=None):
    x = np.asarray(x)[None]
    first = np.zeros(x.shape[:2], bool)
    first[:, 0] = True
    return FixedLSTM(cfg, qw).run(x, h0, c0, first)["h"][0, -1]


def test_info_identifies_the_design(link):
    dut, cfg, stack, qws, design = link
    (reply,) = exchange(dut, [req(P.Command.INFO)])
    assert reply.status == P.Status.OK
    info = P.Info.decode(reply.payload)
    assert (info.n_inputs, info.n_hidden, info.n_layers) == (3, 4, 1)
    assert info.cycles_per_step == design.cycles_per_step
    assert info.layers[0].weight_words == design.geometry.n_words
    # the host computes the same hash from its own config and model
    assert info.design_hash == P.design_hash(cfg.as_dict(), [(3, 4)], 0)


def test_run_and_batch_match_the_golden_model(link):
    dut, cfg, stack, qws, design = link
    rng = np.random.default_rng(1)
    x = rng.integers(-3 << 12, 3 << 12, (3, 5, 3))
    reqs = [req(P.Command.INFO)]
    reqs += [req(P.Command.RUN, P.run_payload(x[0], 16, RUN_FL))]
    reqs += [req(P.Command.LOAD_BATCH, P.batch_payload(x[b], 16, b == 0)) for b in range(3)]
    reqs += [req(P.Command.RUN_BATCH)]
    replies = exchange(dut, reqs, gap=0.3)
    assert [r.status for r in replies] == [P.Status.OK] * len(reqs)
    info = P.Info.decode(replies[0].payload)
    cycles, result = P.run_reply(replies[1].payload, info, P.RunFlags.LAST)
    assert list(result.h) == list(golden_last_h(cfg, qws[0], x[0]))
    assert cycles == 5 * design.cycles_per_step
    assert [r.payload for r in replies[2:5]] == [b"\x01\x00", b"\x02\x00", b"\x03\x00"]
    cycles, results = P.batch_reply(replies[5].payload, info)
    assert [list(r.h) for r in results] == [list(golden_last_h(cfg, qws[0], x[b])) for b in range(3)]
    # back to back: the sequences' steps plus a few cycles per sequence to read its length
    assert 15 * design.cycles_per_step <= cycles <= 15 * design.cycles_per_step + 3 * 10


def test_head_results_are_label_and_logits():
    dut, cfg, stack, qws, design = small_link(classes=5, seed=4)
    rng = np.random.default_rng(5)
    x = rng.integers(-3 << 12, 3 << 12, (2, 4, 3))
    reqs = [req(P.Command.INFO),
            req(P.Command.RUN, P.run_payload(x[0], 16, RUN_FL)),
            req(P.Command.RUN, P.run_payload(x[1][:2], 16, P.RunFlags.FIRST)),   # no LAST: h
            req(P.Command.RUN, P.run_payload(x[1][2:], 16, P.RunFlags.LAST)),    # continues
            req(P.Command.LOAD_BATCH, P.batch_payload(x[0], 16, True)),
            req(P.Command.LOAD_BATCH, P.batch_payload(x[1], 16, False)),
            req(P.Command.RUN_BATCH)]
    replies = exchange(dut, reqs)
    assert [r.status for r in replies] == [P.Status.OK] * len(reqs)
    info = P.Info.decode(replies[0].payload)
    assert info.n_classes == 5 and info.has_last
    first = np.zeros((2, 4), bool)
    first[:, 0] = True
    cell = FixedLSTM(cfg, qws[0])
    h = cell.run(x, first=first)["h"]
    logits = cell.head(h[:, -1])
    _, r0 = P.run_reply(replies[1].payload, info, RUN_FL)
    assert list(r0.logits) == list(logits[0]) and r0.label == int(np.argmax(logits[0]))
    _, part = P.run_reply(replies[2].payload, info, P.RunFlags.FIRST)
    assert list(part.h) == list(h[1, 1])
    _, r1 = P.run_reply(replies[3].payload, info, P.RunFlags.LAST)
    assert list(r1.logits) == list(logits[1]) and r1.label == int(np.argmax(logits[1]))
    _, results = P.batch_reply(replies[6].payload, info)
    assert [list(r.logits) for r in results] == [list(v) for v in logits]


def refusal_case(flip_at: int):
    """A small link, a RUN request on it, the same request with one CRC-covered bit flipped,
    and the weight-load words of other weights."""
    dut, cfg, stack, qws, design = small_link(seed=2)
    x = np.random.default_rng(3).integers(-3 << 12, 3 << 12, (5, 3))
    run = req(P.Command.RUN, P.run_payload(x, 16, RUN_FL))
    bad_crc = bytearray(run)
    bad_crc[flip_at] ^= 0x04
    words = Geometry(cfg, qws[0], 2).load_words(other_weights(seed=9))
    return dut, cfg, qws, x, run, bytes(bad_crc), words


def test_bad_frames_get_error_replies_and_change_nothing():
    dut, cfg, qws, x, run, bad_crc, words = refusal_case(7)
    long_header = bytes([P.SYNC_REQUEST, P.Command.RUN]) + (300).to_bytes(2, "little")
    # a refused weight frame: its words must not reach the memories
    too_many = P.weights_payloads(0, list(words) + [0], 16, max_payload=256)
    script = [
        run,                                                   # 0 the reference result
        bad_crc,                                               # 1 BAD_CRC
        ("raw", run[:9]), ("reply",),                          # 2 TIMEOUT (truncated)
        ("raw", long_header + bytes(20)), ("reply",),          # 3 TOO_LONG (the rest drained)
        req(0x42),                                             # 4 UNKNOWN_COMMAND
        ("raw", run[:6]), ("line_error",), ("raw", run[6:]), ("reply",),  # 5 LINE_ERROR
        req(P.Command.RUN, P.run_payload(x, 16, RUN_FL)[:-1]),  # 6 BAD_SIZE
        req(P.Command.RUN, b"\x03\x00\x00"),                   # 7 BAD_SIZE: T = 0
        req(P.Command.INFO, b"\x00"),                          # 8 BAD_SIZE
        req(P.Command.LOAD_WEIGHTS, too_many[0]),              # 9 opens the packet (OK)
        req(P.Command.LOAD_WEIGHTS, too_many[1]),              # 10 129 words: BAD_SIZE
        run,                                                   # 11 X_BLOCKED
        req(P.Command.READ_ERROR),                             # 12 weights invalid
        req(P.Command.LOAD_WEIGHTS, P.weights_payloads(3, words, 16, max_payload=256)[0]),  # 13 BAD_ARGUMENT
        req(P.Command.LOAD_STATE, bytes(1 + 16)),              # 14 X_BLOCKED: packet open
    ]
    replies = exchange(dut, script)
    S = P.Status
    assert [r.status for r in replies] == [
        S.OK, S.BAD_CRC, S.TIMEOUT, S.TOO_LONG, S.UNKNOWN_COMMAND, S.LINE_ERROR, S.BAD_SIZE,
        S.BAD_SIZE, S.BAD_SIZE, S.OK, S.BAD_SIZE, S.X_BLOCKED, S.OK, S.BAD_ARGUMENT,
        S.X_BLOCKED]
    assert replies[4].command == 0x42
    report = P.error_report(replies[12].payload)
    assert report.weights_invalid == 1 and report.core_error == 0
    assert report.last_status == S.X_BLOCKED and report.refused == 10


def test_board_keeps_serving_after_refusals():
    """After each refused frame, the same RUN gives the same h (nothing changed)."""
    dut, cfg, qws, x, run, bad_crc, words = refusal_case(-1)
    short = P.weights_payloads(0, words[:-1], 16, max_payload=256)
    short_last = short[-1][:1] + bytes([P.WeightFlags.LAST]) + short[-1][2:]
    script = [run, bad_crc, run, ("raw", run[:20]), ("reply",), run,
              req(P.Command.LOAD_WEIGHTS, short[0]),        # opens a packet
              req(P.Command.LOAD_WEIGHTS, short_last),      # 127 words and LAST: BAD_SIZE
              req(P.Command.RESET), run,                     # still blocked after RESET
              req(P.Command.LOAD_WEIGHTS, short_last),      # not open any more: BAD_ARGUMENT
              ]
    replies = exchange(dut, script)
    S = P.Status
    assert [r.status for r in replies] == [S.OK, S.BAD_CRC, S.OK, S.TIMEOUT, S.OK, S.OK,
                                           S.BAD_SIZE, S.OK, S.X_BLOCKED, S.BAD_ARGUMENT]
    assert replies[0].payload == replies[2].payload == replies[4].payload
    assert list(P.unpack_codes(replies[0].payload[4:], 16, 4)) == \
        list(golden_last_h(cfg, qws[0], x))


def test_weights_and_state_loads_over_frames():
    dut, cfg, stack, qws, design = small_link(seed=6)
    new = other_weights(seed=7)
    rng = np.random.default_rng(8)
    x = rng.integers(-3 << 12, 3 << 12, (4, 3))
    h0 = rng.integers(-1 << 14, 1 << 14, 4)
    c0 = rng.integers(-1 << 13, 1 << 13, 4)
    words = Geometry(cfg, qws[0], 2).load_words(new)
    frames = P.weights_payloads(0, words, 16, max_payload=100)
    assert len(frames) == 3
    run = req(P.Command.RUN, P.run_payload(x, 16, RUN_FL))
    script = [req(P.Command.LOAD_WEIGHTS, f) for f in frames]
    script += [run, req(P.Command.LOAD_STATE, P.state_payload(0, h0, c0, 16, 16)), run,
               req(P.Command.RESET), run, req(P.Command.READ_ERROR)]
    replies = exchange(dut, script, gap=0.2)
    assert all(r.status == P.Status.OK for r in replies)
    h = [list(P.unpack_codes(replies[k].payload[4:], 16, 4)) for k in (3, 5, 7)]
    assert h[0] == list(golden_last_h(cfg, new, x))
    assert h[1] == list(golden_last_h(cfg, new, x, h0, c0))
    assert h[2] == h[0]                      # RESET zeroes the loaded initial state
    assert h[0] != list(golden_last_h(cfg, qws[0], x))
    assert P.error_report(replies[8].payload) == P.ErrorReport(0, 0, 0, 0)


def test_uart_pins_end_to_end():
    """The same requests through the UART pins at the bit level (host clock 2 % fast)."""
    from deploy_helpers import line_bits, line_receive, line_send
    from rtl_helpers import simulate
    dut, cfg, stack, qws, design = small_link(seed=11, timeout=64 * 10 * 8, uart=True)
    params = dut._params
    rng = np.random.default_rng(12)
    x = rng.integers(-3 << 12, 3 << 12, (3, 3))
    requests = [req(P.Command.INFO), req(P.Command.RUN, P.run_payload(x, 16, RUN_FL))]
    replies = []
    line = bytearray()

    async def listener(ctx):
        while True:
            got, _ = await line_receive(ctx, dut.tx, params.divisor, 1)
            line.extend(got)

    async def host(ctx):
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(10)
        for frame in requests:
            phase = 0.0
            for b in frame:
                phase = await line_send(ctx, dut.rx, line_bits(b), params.divisor * 0.98,
                                        phase=phase)
            ctx.set(dut.rx, 1)
            while len(line) < P.REPLY_HEADER or \
                    len(line) < P.REPLY_HEADER + int.from_bytes(line[3:5], "little") + P.CRC_BYTES:
                await ctx.tick()
            replies.append(P.decode_reply(bytes(line)))
            line.clear()

    simulate(dut, host, background=[listener])
    info = P.Info.decode(replies[0].payload)
    assert info.baud == params.baud and info.timeout_cycles == params.timeout
    _, result = P.run_reply(replies[1].payload, info, P.RunFlags.LAST)
    assert list(result.h) == list(golden_last_h(cfg, qws[0], x))
