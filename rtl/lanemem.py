"""A lane's weight memory read through registers: ECP5 ``DP16KD`` block RAMs with their output
register for synthesis, the same read latency from a plain Amaranth memory everywhere else
(docs/architecture.md, "Timing")."""
from amaranth.hdl import Cat, ClockSignal, Const, Instance, Mux, Signal
from amaranth.lib.memory import Memory

from .pipeline import delay, read_port, write_port

__all__ = ["MEMORY_LATENCY", "BLOCK_WORDS", "BLOCK_BITS", "block_count", "initval",
           "registered_memory"]

MEMORY_LATENCY = 3
"""Cycles from the address (with write data and enable) to the read data: the memory's read
register, its output register, and the register after the select between cascaded blocks."""

BLOCK_WORDS = 1024    # DP16KD in its 1024 x 18 configuration
BLOCK_BITS = 18


def block_count(depth: int) -> int:
    """DP16KD blocks of a ``depth``-word memory (words up to 18 bits): ceil(depth / 1024)."""
    return max(1, -(-depth // BLOCK_WORDS))


def initval(words, width: int) -> dict[str, int]:
    """``INITVAL_00`` .. ``INITVAL_3F`` of a 1024 x 18 DP16KD holding ``words`` (at most 1024
    codes, two's complement in ``width`` bits): 16 words per 320-bit row, word i of the row at
    bit 20 i (the layout Yosys's ``share/lattice/brams_map_16kd.v`` writes, ``init_slice``)."""
    mask = (1 << width) - 1
    words = [int(w) & mask for w in words] + [0] * (BLOCK_WORDS - len(words))
    out = {}
    for row in range(64):
        value = 0
        for i in range(16):
            value |= words[row * 16 + i] << (20 * i)
        out[f"INITVAL_{row:02X}"] = value
    return out


def _dp16kd(m, name, init, width, addr, write_data, write_en):
    """One 1024 x 18 DP16KD, port A only (read and write share its address), ``REGMODE_A``
    ``OUTREG``: the word addressed before edge k is on ``DOA`` after edge k + 1."""
    data = Signal(BLOCK_BITS, name=f"{name}_do")
    ports = {"i_CLKA": ClockSignal(), "i_CEA": Const(1), "i_OCEA": Const(1), "i_RSTA": Const(0),
             "i_WEA": write_en,
             # x18: ADA13..4 the word address, ADA1..0 the byte-write enables, ADA3..2 unused
             "i_ADA0": Const(1), "i_ADA1": Const(1), "i_ADA2": Const(0), "i_ADA3": Const(0),
             "i_CLKB": ClockSignal(), "i_CEB": Const(0), "i_OCEB": Const(0), "i_RSTB": Const(0),
             "i_WEB": Const(0)}
    ports.update({f"i_ADA{k + 4}": addr[k] if k < len(addr) else Const(0) for k in range(10)})
    ports.update({f"i_CSA{k}": Const(0) for k in range(3)})
    ports.update({f"i_CSB{k}": Const(0) for k in range(3)})
    ports.update({f"i_ADB{k}": Const(0) for k in range(14)})
    ports.update({f"i_DIA{k}": write_data[k] if k < width else Const(0) for k in range(18)})
    ports.update({f"i_DIB{k}": Const(0) for k in range(18)})
    ports.update({f"o_DOA{k}": data[k] for k in range(18)})
    params = {f"p_{k}": Const(v, 320) for k, v in initval(init, width).items()}
    m.submodules[name] = Instance(
        "DP16KD", p_DATA_WIDTH_A=18, p_DATA_WIDTH_B=18, p_REGMODE_A="OUTREG",
        p_REGMODE_B="NOREG", p_RESETMODE="SYNC", p_ASYNC_RESET_RELEASE="SYNC",
        p_CSDECODE_A="0b000", p_CSDECODE_B="0b000", p_WRITEMODE_A="NORMAL",
        p_WRITEMODE_B="NORMAL", p_GSR="DISABLED", **params, **ports)
    return data[:width]


def registered_memory(m, platform, shape, init, name: str, addr, write_data=None,
                      write_en=None):
    """A ``len(init)``-word memory of ``shape``: ``addr``, ``write_data``, ``write_en``
    (registers of the caller) in cycle k; the word read at ``addr`` is the returned signal in
    cycle k + :data:`MEMORY_LATENCY`. A write in cycle k takes effect at the end of cycle k
    (what the same address reads then is not specified: the caller never asks). Without
    ``write_data`` and ``write_en`` the memory is read-only (its initial contents).
    ``write_en`` is one enable, or a list of :func:`block_count` enables, one per block of
    1024 words (block b: the addresses from 1024 b on; the caller decodes them into registers
    of its own, so no decode lies between a register and a block's write enable); an enable
    that is high with an address outside its block is not allowed.

    With a platform that has ``bram_output_register`` (:class:`rtl.pipeline.ECP5`) and words
    of at most 18 bits, the memory is ``ceil(depth / 1024)`` instantiated DP16KD blocks with
    their output register, the block picked after it (select registered beside the read);
    otherwise an Amaranth :class:`Memory` read into two registers. Same words, same cycles."""
    depth, width = len(init), shape.width
    out = Signal(shape, name=f"{name}_data", reset_less=True)
    writable = write_en is not None
    blocks = block_count(depth)
    per_block = isinstance(write_en, (list, tuple))
    if per_block and len(write_en) != blocks:
        raise ValueError(f"{name}: {len(write_en)} write enables for {blocks} blocks")
    if not (getattr(platform, "bram_output_register", False) and width <= BLOCK_BITS):
        mem = Memory(shape=shape, depth=depth, init=init)
        m.submodules[name] = mem
        rd = read_port(mem, f"{name}_rd")
        m.d.comb += rd.addr.eq(addr)
        if writable:
            wr = write_port(mem, f"{name}_wr")
            en = Cat(*write_en).any() if per_block else write_en
            m.d.comb += [wr.addr.eq(addr), wr.data.eq(write_data), wr.en.eq(en)]
        m.d.sync += out.eq(delay(m, rd.data, 1, f"{name}_rd"))
        return out
    if not writable:
        write_data, write_en = Const(0, width), Const(0)
    low = addr[:min(len(addr), 10)]
    high = addr[10:] if blocks > 1 else Const(0, 1)
    reads = []
    for b in range(blocks):
        if per_block:
            enable = write_en[b]
        else:
            enable = write_en & (high == b) if blocks > 1 else write_en
        reads.append(_dp16kd(m, f"{name}_bram{b}", init[b * BLOCK_WORDS:(b + 1) * BLOCK_WORDS],
                             width, low, write_data[:width], enable))
    picked = reads[0]
    if blocks > 1:
        select = delay(m, high, 2, f"{name}_block")      # beside the output register
        for b in range(1, blocks):
            picked = Mux(select == b, reads[b], picked)
    m.d.sync += out.eq(picked.as_signed() if shape.signed else picked)
    return out
