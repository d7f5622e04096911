"""deploy.crc: the gateware CRC-32 against zlib.crc32 over random frames."""
import random
import zlib

from deploy.crc import CRC32, RESIDUE, crc32_byte
from rtl_helpers import simulate


def test_software_model_and_residue():
    rng = random.Random(1)
    for n in (0, 1, 5, 100):
        frame = bytes(rng.randrange(256) for _ in range(n))
        reg = 0xFFFFFFFF
        for b in frame:
            reg = crc32_byte(reg, b)
        assert reg ^ 0xFFFFFFFF == zlib.crc32(frame)
        assert zlib.crc32(frame + zlib.crc32(frame).to_bytes(4, "little")) == RESIDUE


def test_gateware_matches_zlib_on_random_frames():
    rng = random.Random(2)
    frames = [bytes(rng.randrange(256) for _ in range(rng.randrange(0, 64))) for _ in range(60)]
    frames += [b"", b"\x00" * 9, b"\xff" * 9, b"123456789"]
    dut = CRC32()
    results = []

    async def tb(ctx):
        for frame in frames:
            ctx.set(dut.clear, 1)
            await ctx.tick()
            ctx.set(dut.clear, 0)
            for b in frame:
                # idle cycles between bytes (en low) must not change the CRC
                if rng.random() < 0.3:
                    await ctx.tick()
                ctx.set(dut.data, b)
                ctx.set(dut.en, 1)
                await ctx.tick()
                ctx.set(dut.en, 0)
            value = ctx.get(dut.value)
            crc = zlib.crc32(frame)
            for b in crc.to_bytes(4, "little"):
                ctx.set(dut.data, b)
                ctx.set(dut.en, 1)
                await ctx.tick()
            ctx.set(dut.en, 0)
            results.append((value, crc, ctx.get(dut.residue_ok)))

    simulate(dut, tb)
    assert len(results) == len(frames)
    assert all(value == crc and ok for value, crc, ok in results)
    assert results[-1][0] == 0xCBF43926          # the catalogue check value of CRC-32
