"""Hardware cost of a config, as the precision sweep (``python -m model sweep``) minimises it.

Every figure is computed from the config's formats, the sizes X, H and the RTL's structure
(docs/architecture.md); none is measured. The parts:

weight-memory bits
    ``4H(X+H) * W_weight + 4H * W_bias``: the weight matrix and the biases as the lanes' block
    RAMs hold them (the classifier head is outside the cell and not counted).
DSP multipliers
    A product of an a-bit by a b-bit operand needs ``ceil(a/18) * ceil(b/18)`` ECP5
    MULT18X18D blocks (``ceil(a/16) * ceil(b/16)`` iCE40 SB_MAC16 blocks), counted for

    * the P lanes: ``weight x max(x, h)`` bits each,
    * the three activation units (sigmoid, tanh, tanh_c): ``|input| x slope`` bits, where
      ``|input|`` has the input's W bits and the slope the widest slope's bit length
      (PLAN tables shift instead and need none),
    * the cell update's three products ``f*c``, ``i*g``, ``o*tanh_c``: gate bits times c,
      candidate and tanh_c bits.

    The default config gives 8 + 3 + 3 = 14 MULT18X18D, as ``make synth`` measures.
activation ROM bits
    Per table (:class:`model.activations.Table`, the RTL's :class:`rtl.pwl.PWLUnit` layout):
    index ROM ``entries x ceil(log2 segments)`` bits plus coefficient ROM ``segments x
    (W_in + slope bits + 1 + F_t + 1)`` bits (base, slope, zero flag, intercept).
datapath bits
    The sum of every tensor's width (accumulator included): a proxy for the registers and
    adders that scale with word widths (the LUT/FF count), used only to break ties.
ECP5 block RAMs (reported, not in the objective)
    Each of the P lanes holds ``ceil(4H(X+H) / P)`` weights in its own memory; a DP16KD is
    16384 x 1, 8192 x 2, 4096 x 4, 2048 x 9, 1024 x 18 or 512 x 36, so blocks only drop when
    the weight width crosses 18, 9, 4, 2 or 1 bits or the words cross a depth. (The 4H biases
    are few and go to LUT RAM: ``make synth`` counts 8 DP16KD for the default's 8 lanes.)

The sweep's objective, :func:`objective`, compares costs lexicographically: weight-memory bits
first (block RAM is what a bigger model runs out of), then ECP5 DSPs, then activation ROM
bits, then datapath bits.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from .activations import build_table
from .config import TABLES, TENSORS, Config

__all__ = ["Costs", "weight_memory_bits", "multipliers", "dsp_count", "rom_bits", "bram_blocks",
           "bram_count", "costs", "objective", "OBJECTIVE"]

#: The objective in words (printed by the sweep, quoted in docs/sweep.md).
OBJECTIVE = ("lexicographic: weight-memory bits, then ECP5 MULT18X18D count, then activation "
             "ROM bits, then datapath bits (sum of tensor widths)")


@dataclass(frozen=True)
class Costs:
    """Hardware cost figures of one config for one (X, H) and lane count."""

    weight_memory_bits: int
    dsp_ecp5: int
    dsp_ice40: int
    rom_bits: int
    datapath_bits: int
    bram_ecp5: int

    def as_dict(self) -> dict:
        return asdict(self)


def weight_memory_bits(config: Config, n_inputs: int, n_hidden: int) -> int:
    """``4H(X+H) * W_weight + 4H * W_bias``."""
    rows = 4 * n_hidden
    return rows * (n_inputs + n_hidden) * config.fmt("weight").bits + rows * config.fmt("bias").bits


def _blocks(a: int, b: int, side: int) -> int:
    return -(-a // side) * -(-b // side)


def multipliers(config: Config, lanes: int | None = None) -> list[tuple[str, int, int, int]]:
    """Every multiplier of the RTL as ``(what, count, a bits, b bits)``."""
    f = config.fmt
    lanes = config.lanes if lanes is None else lanes
    out = [("lane weight x max(x, h)", lanes, f("weight").bits, max(f("x").bits, f("h").bits))]
    for name, spec in config.tables.items():
        if spec.method == "plan":
            continue                      # power-of-two slopes: a shifter, no multiplier
        table = build_table(spec)
        slope_bits = max(int(table.slope.max()).bit_length(), 1)
        out.append((f"{name} |input| x slope", 1, spec.input.fmt.bits, slope_bits))
    out += [("cell f*c", 1, f("gate").bits, f("c").bits),
            ("cell i*g", 1, f("gate").bits, f("candidate").bits),
            ("cell o*tanh_c", 1, f("gate").bits, f("tanh_c").bits)]
    return out


def dsp_count(config: Config, side: int = 18, lanes: int | None = None) -> int:
    """DSP blocks of ``side`` x ``side`` bits (18: ECP5 MULT18X18D, 16: iCE40 SB_MAC16)."""
    return sum(n * _blocks(a, b, side) for _, n, a, b in multipliers(config, lanes))


def rom_bits(config: Config) -> int:
    """Index ROM plus coefficient ROM bits of the three activation tables."""
    total = 0
    for name in TABLES:
        table = build_table(config.tables[name])
        spec = table.spec
        seg_bits = max((table.segments - 1).bit_length(), 1)
        if spec.method == "plan":
            shifts = [int(s).bit_length() - 1 if s else 0 for s in table.slope]
            slope_bits = max(max(shifts), 1).bit_length()
        else:
            slope_bits = max(int(table.slope.max()).bit_length(), 1)
        word = spec.input.fmt.bits + slope_bits + 1 + table.frac + 1
        total += len(table.index) * seg_bits + table.segments * word
    return total


#: ECP5 DP16KD aspect ratios (width, depth).
DP16KD_MODES = ((1, 16384), (2, 8192), (4, 4096), (9, 2048), (18, 1024), (36, 512))


def bram_blocks(words: int, width: int) -> int:
    """DP16KD blocks for a ``words`` x ``width``-bit memory (best aspect ratio, cascaded)."""
    return min(-(-width // w) * -(-words // d) for w, d in DP16KD_MODES)


def bram_count(config: Config, n_inputs: int, n_hidden: int, lanes: int | None = None) -> int:
    """ECP5 DP16KD blocks of the P lanes' weight memories."""
    lanes = config.lanes if lanes is None else lanes
    words = -(-4 * n_hidden * (n_inputs + n_hidden) // lanes)
    return lanes * bram_blocks(words, config.fmt("weight").bits)


def costs(config: Config, n_inputs: int, n_hidden: int, lanes: int | None = None) -> Costs:
    """All cost figures of ``config`` for X = ``n_inputs``, H = ``n_hidden``."""
    return Costs(
        weight_memory_bits=weight_memory_bits(config, n_inputs, n_hidden),
        dsp_ecp5=dsp_count(config, 18, lanes),
        dsp_ice40=dsp_count(config, 16, lanes),
        rom_bits=rom_bits(config),
        datapath_bits=sum(config.fmt(n).bits for n in TENSORS),
        bram_ecp5=bram_count(config, n_inputs, n_hidden, lanes))


def objective(c: Costs) -> tuple:
    """Sort key of the sweep's objective (smaller is better): see :data:`OBJECTIVE`."""
    return (c.weight_memory_bits, c.dsp_ecp5, c.rom_bits, c.datapath_bits)
