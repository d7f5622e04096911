"""deploy.protocol: frames, CRC, packing, INFO, the payload builders (pure Python)."""
import struct
import zlib

import numpy as np
import pytest

from deploy import protocol as p


def test_request_frame_layout_and_crc():
    frame = p.encode_request(p.Command.RUN, b"\x01\x02\x03")
    assert frame[0] == 0xA5 and frame[1] == p.Command.RUN
    assert struct.unpack_from("<H", frame, 2)[0] == 3
    assert frame[4:7] == b"\x01\x02\x03"
    assert struct.unpack_from("<I", frame, 7)[0] == zlib.crc32(frame[1:7])
    assert p.decode_request(frame) == (p.Command.RUN, b"\x01\x02\x03")


@pytest.mark.parametrize("mutate, status", [
    (lambda f: f[:5] + bytes([f[5] ^ 0x10]) + f[6:], p.Status.BAD_CRC),
    (lambda f: f[:-1], p.Status.TIMEOUT),
    (lambda f: f[:2] + struct.pack("<H", 5000) + f[4:], p.Status.TOO_LONG),
])
def test_decode_request_refusals(mutate, status):
    frame = p.encode_request(p.Command.INFO, b"abc")
    with pytest.raises(p.ProtocolError) as e:
        p.decode_request(mutate(frame))
    assert e.value.status == status


def test_unknown_command_after_good_crc():
    with pytest.raises(p.ProtocolError) as e:
        p.decode_request(p.encode_request(0x7E, b""))
    assert e.value.status == p.Status.UNKNOWN_COMMAND


def test_reply_round_trip_and_corruption():
    frame = p.encode_reply(p.Command.RUN, p.Status.OK, b"xyz" * 100)
    reply = p.decode_reply(b"\x00\x13" + frame)         # leading noise is skipped
    assert (reply.command, reply.status, reply.payload) == (p.Command.RUN, p.Status.OK, b"xyz" * 100)
    bad = bytearray(frame)
    bad[10] ^= 1
    with pytest.raises(p.ProtocolError) as e:
        p.decode_reply(bytes(bad))
    assert e.value.status == p.Status.BAD_CRC


@pytest.mark.parametrize("bits", [1, 3, 8, 12, 16, 17])
def test_pack_round_trip_not_padded(bits):
    rng = np.random.default_rng(bits)
    codes = rng.integers(-(1 << (bits - 1)), 1 << (bits - 1), size=37)
    data = p.pack_codes(codes, bits)
    assert len(data) == (37 * bits + 7) // 8
    assert np.array_equal(p.unpack_codes(data, bits, 37), codes)
    # code k sits at bits [k*bits, (k+1)*bits) of the little-endian bit string
    as_int = int.from_bytes(data, "little")
    assert all(((as_int >> (k * bits)) & ((1 << bits) - 1)) == (int(c) & ((1 << bits) - 1))
               for k, c in enumerate(codes))


def test_pack_refuses_codes_out_of_range():
    with pytest.raises(ValueError, match="12 signed bits"):
        p.pack_codes([2048], 12)


def test_weights_payloads_cover_the_packet_in_order():
    words = np.arange(-3000, 3000)
    frames = p.weights_payloads(1, words, 16, max_payload=1000)
    assert all(len(f) <= 1000 for f in frames)
    got = []
    for i, f in enumerate(frames):
        layer, flags, count = struct.unpack_from("<BBH", f)
        assert layer == 1
        assert bool(flags & p.WeightFlags.FIRST) == (i == 0)
        assert bool(flags & p.WeightFlags.LAST) == (i == len(frames) - 1)
        got.extend(p.unpack_codes(f[4:], 16, count))
    assert got == list(words)


def test_info_round_trip():
    layer = p.LayerInfo(8, 32, 8, 16, 5248, 16, 16, 680)
    info = p.Info(8, 32, 10, 16, 12, 16, 15, 24, 12, True, 680, 680, 2048, 16384, 64,
                  50_000_000, 3_000_000, 500_000, b"12345678", (layer,))
    assert p.Info.decode(info.encode()) == info
    with pytest.raises(p.ProtocolError):
        p.Info.decode(info.encode()[:-1])


def test_design_hash_ignores_lanes_only():
    cfg = {"formats": {"x": {"bits": 16, "frac": 12}}, "rtl": {"lanes": 8}}
    same = {"formats": {"x": {"bits": 16, "frac": 12}}, "rtl": {"lanes": 2}}
    other = {"formats": {"x": {"bits": 16, "frac": 11}}, "rtl": {"lanes": 8}}
    h = p.design_hash(cfg, [(8, 32)], 10)
    assert len(h) == 8 and h == p.design_hash(same, [(8, 32)], 10)
    assert h != p.design_hash(other, [(8, 32)], 10) != p.design_hash(cfg, [(8, 32)], 0)
