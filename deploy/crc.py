"""CRC-32 in gateware, one byte per cycle: the same value as ``zlib.crc32``.

IEEE 802.3 CRC-32, reflected: polynomial 0xEDB88320 (bit-reversed 0x04C11DB7), register
initialised to 0xFFFFFFFF, each byte's bits taken LSB first, the result complemented. The
byte update is one XOR tree per register bit (no table), derived from the bitwise loop.
"""
from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["CRC32", "POLY", "RESIDUE", "crc32_byte"]

POLY = 0xEDB88320
#: zlib.crc32(frame + crc32(frame) as 4 little-endian bytes), whatever the frame: a receiver
#: that feeds the CRC bytes too checks this one constant
RESIDUE = 0x2144DF1C


def crc32_byte(register: int, byte: int) -> int:
    """One byte into the (uncomplemented) register, bit by bit (the reference)."""
    register ^= byte
    for _ in range(8):
        register = (register >> 1) ^ (POLY & -(register & 1))
    return register


def _taps():
    """The byte update is linear over GF(2): output bit j is the XOR of the register bits and
    data bits whose unit vectors set bit j. Returns, per output bit, (register bits, data bits)."""
    taps = []
    for j in range(32):
        reg = [i for i in range(32) if (crc32_byte(1 << i, 0) >> j) & 1]
        dat = [i for i in range(8) if (crc32_byte(0, 1 << i) >> j) & 1]
        taps.append((reg, dat))
    return taps


class CRC32(wiring.Component):
    """CRC-32 over a byte stream.

    Members
    -------
    clear : ``In(1)``
        Start a new CRC (takes priority over ``en`` in the same cycle).
    en, data : ``In(1)``, ``In(8)``
        Feed ``data`` on this clock edge.
    value : ``Out(32)``
        ``zlib.crc32`` of the bytes fed since ``clear`` (combinational from the register).
    residue_ok : ``Out(1)``
        ``value == RESIDUE``: the bytes fed end with their own correct CRC-32 (little-endian).
    """

    def __init__(self):
        super().__init__({"clear": In(1), "en": In(1), "data": In(8), "value": Out(32),
                          "residue_ok": Out(1)})

    def elaborate(self, platform):
        m = Module()
        register = Signal(32, init=0xFFFFFFFF)
        with m.If(self.clear):
            m.d.sync += register.eq(0xFFFFFFFF)
        with m.Elif(self.en):
            m.d.sync += register.eq(Cat(Cat(*(register[i] for i in reg), *(self.data[i] for i in dat)).xor()
                                        for reg, dat in _taps()))
        m.d.comb += [self.value.eq(~register), self.residue_ok.eq(~register == RESIDUE)]
        return m
