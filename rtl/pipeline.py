"""Pipeline registers shared by the components."""
from amaranth.hdl import Array, ClockSignal, Const, Instance, Mux, ResetSignal, Signal, signed
from amaranth.lib.memory import ReadPort, WritePort
from amaranth.utils import ceil_log2

__all__ = ["ECP5", "delay", "product_register", "read_port", "copies_for", "register_copies",
           "register_copies_tree", "register_word_copies", "lut_rom", "lut_pick", "lut_product",
           "booth_digits", "booth_levels", "booth_product",
           "write_port"]


def delay(m, value, cycles: int, name: str, *, reset_less: bool = True):
    """``value`` delayed by ``cycles`` registers in the sync domain (``cycles`` = 0: itself).

    The registers are ``reset_less`` unless asked: a datapath value is only read beside the
    valid bit that travels with it, and only that valid bit needs a reset."""
    out = value
    for k in range(cycles):
        stage = Signal(value.shape(), name=f"{name}_d{k + 1}", reset_less=reset_less)
        m.d.sync += stage.eq(out)
        out = stage
    return out


def read_port(memory, name: str, *, domain: str = "sync"):
    """``memory.read_port(domain=...)`` with its signals named ``<name>__addr/data/en`` (the
    plain call names them after the signature: ``$signature__addr`` in the netlist)."""
    sig = ReadPort.Signature(shape=memory.shape, addr_width=ceil_log2(memory.depth))
    return ReadPort(sig, memory=memory, domain=domain, path=(name,))


def write_port(memory, name: str):
    """``memory.write_port()`` with its signals named ``<name>__addr/data/en``."""
    sig = WritePort.Signature(shape=memory.shape, addr_width=ceil_log2(memory.depth))
    return WritePort(sig, memory=memory, domain="sync", path=(name,))


class ECP5:
    """Platform marker for Lattice ECP5 synthesis (``python -m bench.synth``, ``python -m rtl
    --ecp5-dsp``): :func:`product_register` then instantiates ``MULT18X18D`` with its output
    register, which Yosys's ``synth_ecp5`` does not infer (it maps a multiplier to a
    combinational ``MULT18X18D`` and keeps the product register in the fabric, which leaves
    the multiplier and two fabric routes in one cycle: about 146 MHz at speed grade 6 with
    nothing else on the chip). :func:`rtl.lanemem.registered_memory` likewise instantiates the
    lanes' weight memories as ``DP16KD`` with their output register (``REGMODE`` ``OUTREG``),
    which Yosys's block RAM mapping never enables, and :func:`register_copies` keeps copies of
    a wide enable apart as ``TRELLIS_FF`` primitives; :func:`lut_rom` maps the activation units'
    small ROMs by hand onto ``LUT4``, ``PFUMX`` and ``L6MUX21``. Simulation uses the plain Amaranth product
    and memory, with the same latencies."""

    dsp_output_register = True
    bram_output_register = True
    replicate_enables = True
    hand_mapped_roms = True

    def __init__(self, *, dsp_input_registers: bool = False):
        #: The activation units' and the cell update's multipliers take their operands through
        #: the ``MULT18X18D``'s input registers, which replace the fabric registers before
        #: them (same integers, same cycles; ``--dsp-input-registers``). The MAC lanes' always
        #: do. Off by default: the recorded figures were measured without.
        self.dsp_input_registers = bool(dsp_input_registers)


def _fits_mult18(value) -> bool:
    shape = value.shape()
    return shape.width <= (18 if shape.signed else 17)


def product_register(m, platform, a, b, name: str, *, input_registers: bool = False,
                     a_enable=None, b_enable=None):
    """``a * b`` (exact) in a reset-less register, one cycle after ``a`` and ``b`` (two with
    ``input_registers``: ``a`` and ``b`` registered first, each loading only when its
    ``a_enable`` / ``b_enable`` is high, if given; the product register loads on every edge).

    With the :class:`ECP5` platform and both operands within 18 signed bits, the register is
    the output register of a ``MULT18X18D`` (signed mode; operands sign- or zero-extended to
    18 bits, the low bits of the 36-bit product kept), and ``input_registers`` are its input
    registers (``REG_INPUTA_CLK``, ``REG_INPUTB_CLK``): the route from the operands' registers
    then ends at a register inside the DSP block, not at the multiplier's input, whose setup
    is most of a cycle. Same integers, same latency."""
    exact = a * b
    out = Signal(exact.shape(), name=name, reset_less=True)
    if not input_registers and (a_enable is not None or b_enable is not None):
        raise ValueError("an operand's enable needs input_registers")
    if not (getattr(platform, "dsp_output_register", False) and _fits_mult18(a)
            and _fits_mult18(b)):
        if input_registers:
            a, b = (_enabled_register(m, v, en, f"{name}_{port}")
                    for v, en, port in ((a, a_enable, "a"), (b, b_enable, "b")))
        m.d.sync += out.eq(a * b)
        return out
    inputs = {}
    ports = {"i_CLK0": ClockSignal(), "i_CE0": Const(1), "i_RST0": Const(0),
             "i_SIGNEDA": Const(1), "i_SIGNEDB": Const(1),
             "i_SOURCEA": Const(0), "i_SOURCEB": Const(0)}
    if input_registers:         # operand A's enable on CE1, B's on CE2 (CE0: always)
        for port, enable, ce in (("A", a_enable, 1), ("B", b_enable, 2)):
            inputs.update({f"p_REG_INPUT{port}_CLK": "CLK0", f"p_REG_INPUT{port}_RST": "RST0",
                           f"p_REG_INPUT{port}_CE": "CE0" if enable is None else f"CE{ce}"})
            if enable is not None:
                ports[f"i_CE{ce}"] = enable
    for port, value in (("A", a), ("B", b)):
        wide = Signal(signed(18), name=f"{name}_{port.lower()}")
        m.d.comb += wide.eq(value)                      # sign- or zero-extends
        ports.update({f"i_{port}{k}": wide[k] for k in range(18)})
    ports.update({f"i_C{k}": Const(0) for k in range(18)})
    p = Signal(36, name=f"{name}_p")
    ports.update({f"o_P{k}": p[k] for k in range(36)})
    m.submodules[f"{name}_dsp"] = Instance(
        "MULT18X18D", p_REG_OUTPUT_CLK="CLK0", p_REG_OUTPUT_CE="CE0", p_REG_OUTPUT_RST="RST0",
        p_GSR="DISABLED", p_RESETMODE="SYNC", **inputs, **ports)
    m.d.comb += out.eq(p[:len(out)])
    return out


def _enabled_register(m, value, enable, name: str):
    """``value`` through one reset-less register that loads when ``enable`` is high (always
    when ``enable`` is None)."""
    if enable is None:
        return delay(m, value, 1, name)
    reg = Signal(value.shape(), name=f"{name}_d1", reset_less=True)
    with m.If(enable):
        m.d.sync += reg.eq(value)
    return reg


#: Bits of a wide register that one copy of its enable (:func:`register_copies`) drives.
ENABLE_SHARE = 128


def copies_for(units: int, bits_per_unit: int, share: int = ENABLE_SHARE) -> int:
    """Copies of an enable for ``units`` fields of ``bits_per_unit`` bits: one per ``share``
    bits (:data:`ENABLE_SHARE` unless given; at least one); field u takes copy
    ``u * copies // units``."""
    return max(1, -(-units * bits_per_unit // share))


def register_copies(m, platform, next_value, copies: int, name: str, *, init: int = 0):
    """``copies`` registers that all take ``next_value`` (one bit) on every edge (reset to
    ``init``): the same signal, each copy driving a share of a wide enable or select, so no
    single register fans out to all of it.

    Yosys merges identical flip-flops (``opt_merge``, whatever ``keep`` attribute the signal
    carries), so with the :class:`ECP5` platform each copy is an instantiated ``TRELLIS_FF``
    (synchronous reset, like the sync domain's); elsewhere plain registers."""
    regs = [Signal(name=f"{name}{k}", init=init) for k in range(copies)]
    if not getattr(platform, "replicate_enables", False):
        m.d.sync += [r.eq(next_value) for r in regs]
        return regs
    d = Signal(name=f"{name}_next")
    m.d.comb += d.eq(next_value)
    for k, r in enumerate(regs):
        _trellis_ff(m, f"{name}{k}_ff", d, r, reset=ResetSignal(), init=init)
    return regs


#: Bits that one last-level copy of a :func:`register_copies_tree` drives.
TREE_SHARE = 32


def register_copies_tree(m, platform, ahead_value, copies: int, name: str, *, levels: int = 2):
    """:func:`register_copies` in ``levels`` levels, for copies spread over a whole large
    design: ``ahead_value`` is the signal's value ``levels`` cycles ahead; a few first-level
    copies take it (about ``copies ** (1 / levels)``), each drives its share of the next
    level (about ``copies ** (2 / levels)`` in all), and so on down to the ``copies`` copies
    of the last level, which then equal the signal on every cycle. No single register or gate
    fans out to many of them, and each route is a part of the way.

    Returns (the last level's copies, the levels before it: element k lists the copies that
    are the signal k + 1 cycles ahead). Logic that needs the signal a cycle or two ahead keeps
    registers of its own beside it: the tree's copies are placed where their shares are."""
    sizes = [max(1, round(copies ** ((k + 1) / levels))) for k in range(levels - 1)] + [copies]
    level = [ahead_value]
    earlier = []
    for depth, size in enumerate(sizes):
        last = depth == levels - 1
        tag = f"{name}" if last else f"{name}_ahead{levels - 1 - depth}_"
        nxt = []
        for k in range(size):
            nxt += register_copies(m, platform, level[k * len(level) // size], 1, f"{tag}{k}")
        level = nxt
        if not last:
            earlier.insert(0, level)
    return level, earlier


def _trellis_ff(m, name, d, q, *, reset, init=0):
    """One instantiated ECP5 ``TRELLIS_FF``: ``q`` takes ``d`` on every edge, synchronous
    ``reset`` to ``init`` (``Const(0)``: none)."""
    m.submodules[name] = Instance(
        "TRELLIS_FF", p_GSR="DISABLED", p_CEMUX="1", p_CLKMUX="CLK", p_LSRMUX="LSR",
        p_REGSET="SET" if init else "RESET", p_SRMODE="LSR_OVER_CE",
        i_CLK=ClockSignal(), i_LSR=reset, i_CE=Const(1), i_DI=d, o_Q=q)


def register_word_copies(m, platform, value, copies: int, name: str):
    """``copies`` reset-less registers that all take ``value`` (any width) on every edge: the
    same word, each copy driving its own share of the logic after it (an address that would
    otherwise fan out to several ROMs). With the :class:`ECP5` platform each bit of each copy
    is an instantiated ``TRELLIS_FF`` (Yosys would merge identical registers back into one);
    elsewhere plain registers."""
    width = len(value)
    regs = [Signal(width, name=f"{name}{k}", reset_less=True) for k in range(copies)]
    if not getattr(platform, "replicate_enables", False) or copies == 1:
        m.d.sync += [r.eq(value) for r in regs]
        return regs
    d = Signal(width, name=f"{name}_next")
    m.d.comb += d.eq(value)
    for k, r in enumerate(regs):
        for b in range(width):
            _trellis_ff(m, f"{name}{k}_ff{b}", d[b], r[b], reset=Const(0))
    return regs


#: Address bits a hand-mapped ROM (:func:`lut_rom`) takes: one ECP5 slice pair's LUT6.
LUT_ROM_BITS = 6


def _lut4(m, name, init: int, inputs, out):
    ports = {f"i_{pin}": (inputs[k] if k < len(inputs) else Const(0))
             for k, pin in enumerate("ABCD")}
    m.submodules[name] = Instance("LUT4", p_INIT=Const(init, 16), o_Z=out, **ports)


def lut_rom(m, platform, words, addr, width: int, name: str):
    """``words[addr]`` (``width`` bits, combinational; ``addr`` of at most
    :data:`LUT_ROM_BITS` bits, ``words`` at most 2^len(addr) codes, missing ones 0).

    With the :class:`ECP5` platform each output bit is mapped by hand: four ``LUT4`` over the
    address's low 4 bits, two ``PFUMX`` on bit 4, one ``L6MUX21`` on bit 5 (fewer for a
    shorter address), the slice's wide-function muxes: one LUT and two fast muxes deep,
    whatever the contents. (Yosys's ABC9 maps such a ROM to as many as five LUT levels, each a
    routed hop.) Elsewhere a plain lookup."""
    k = len(addr)
    words = [int(w) for w in words] + [0] * ((1 << k) - len(words))
    out = Signal(width, name=f"{name}_data")
    if not getattr(platform, "hand_mapped_roms", False) or k > LUT_ROM_BITS:
        m.d.comb += out.eq(Array(Const(w, width) for w in words)[addr])
        return out
    low = [addr[j] for j in range(min(k, 4))]
    for b in range(width):
        luts = []
        for j in range(1 << max(k - 4, 0)):
            init = sum(((words[(j << 4) + i] >> b) & 1) << i for i in range(min(16, 1 << k)))
            z = Signal(name=f"{name}_b{b}_l{j}")
            _lut4(m, f"{name}_b{b}_lut{j}", init, low, z)
            luts.append(z)
        m.d.comb += out[b].eq(_wide_muxes(m, luts, [addr[j] for j in range(4, k)],
                                          f"{name}_b{b}"))
    return out


def _wide_muxes(m, level, select, name):
    """``level`` (1, 2 or 4 LUT outputs) selected by ``select`` (0, 1 or 2 bits): a ``PFUMX``
    on the first select bit, an ``L6MUX21`` on the second."""
    for depth, bit in enumerate(select):
        nxt = []
        for j in range(0, len(level), 2):
            z = Signal(name=f"{name}_m{depth}_{j // 2}")
            if depth == 0:
                m.submodules[f"{name}_pfumx{j // 2}"] = Instance(
                    "PFUMX", i_ALUT=level[j + 1], i_BLUT=level[j], i_C0=bit, o_Z=z)
            else:
                m.submodules[f"{name}_l6mux{j // 2}"] = Instance(
                    "L6MUX21", i_D0=level[j], i_D1=level[j + 1], i_SD=bit, o_Z=z)
            nxt.append(z)
        level = nxt
    return level[0]


def lut_pick(m, platform, words, select, clamp, clamp_value: int, name: str):
    """``clamp_value`` if ``clamp``, else ``words[select]`` (combinational; ``words``: 2, 4 or 8
    signals of one width, ``select`` their index). With the :class:`ECP5` platform each output
    bit is mapped by hand like :func:`lut_rom`: ``LUT4`` cells that each pick between two words on
    the select's bit 0 (or give the clamp value), then ``PFUMX`` and ``L6MUX21`` on bits 1
    and 2; elsewhere plain logic."""
    width, n = len(words[0]), len(words)
    out = Signal(width, name=f"{name}_data")
    if not getattr(platform, "hand_mapped_roms", False) or n not in (2, 4, 8):
        m.d.comb += out.eq(Mux(clamp, clamp_value, Array(words)[select]))
        return out
    for b in range(width):
        fixed = (clamp_value >> b) & 1
        # LUT4 inputs A = word 2j, B = word 2j+1, C = select bit 0, D = clamp
        init = sum((fixed if i & 8 else (i >> 1) & 1 if i & 4 else i & 1) << i for i in range(16))
        luts = []
        for j in range(n // 2):
            z = Signal(name=f"{name}_b{b}_l{j}")
            _lut4(m, f"{name}_b{b}_lut{j}", init, [words[2 * j][b], words[2 * j + 1][b],
                                                   select[0], clamp], z)
            luts.append(z)
        m.d.comb += out[b].eq(_wide_muxes(m, luts, [select[j] for j in range(1, ceil_log2(n))],
                                          f"{name}_b{b}"))
    return out


def lut_product(m, a, b, name: str):
    """``a * b`` (exact, signed ``b``) as shift-and-add in logic, no multiplier block: the
    partial products (``a`` shifted, selected by a bit of ``b``; the sign bit's subtracted) in a
    tree of adders, one registered level per stage. Returns (product, latency in cycles)."""
    wb = len(b)
    width = len(a) + wb
    terms = []
    for k in range(wb):
        term = Mux(b[k], a.as_signed() << k, 0)
        terms.append(-term if k == wb - 1 and b.shape().signed else term)
    return _adder_tree(m, terms, signed(width), name)


def _adder_tree(m, terms, shape, name: str, *, natural: bool = False):
    """``terms`` summed in a tree of adders, one registered level per stage (at least one):
    returns (the sum in a register of ``shape``, the levels). With ``natural`` the levels
    before the last keep each sum's own width instead of ``shape``."""
    level = 0
    while len(terms) > 1 or level == 0:
        nxt = []
        for j in range(0, len(terms), 2):
            value = terms[j] + terms[j + 1] if j + 1 < len(terms) else terms[j]
            last = len(terms) <= 2
            s = Signal(value.shape() if natural and not last else shape,
                       name=f"{name}_l{level}_{j // 2}", reset_less=True)
            m.d.sync += s.eq(value)
            nxt.append(s)
        terms, level = nxt, level + 1
    return terms[0], level


def booth_digits(bits: int) -> int:
    """Radix-4 Booth digits of a ``bits``-bit signed multiplier: ceil(bits / 2)."""
    return (bits + 1) // 2


def booth_levels(bits: int) -> int:
    """Registered adder levels of :func:`booth_product` for a ``bits``-bit signed ``b``:
    ceil(log2 ceil(bits / 2)), at least 1 (3 for 16 bits)."""
    return max(1, (booth_digits(bits) - 1).bit_length())


def booth_product(m, a, neg_a, b, name: str):
    """``a * b`` (exact; ``a`` and ``b`` signed) in logic, no multiplier block: radix-4 Booth.
    Digit i of ``b`` (bits 2i+1, 2i, 2i-1; bit -1 is 0) is d in {-2, -1, 0, 1, 2}; partial
    product i, d * a * 4^i, is ``a`` or 2 ``a`` (or 0), inverted when d < 0 (five inputs a
    bit: one LUT5), and the +1 that completes the negation goes into a bit that is 0 in the
    next partial product (bit 2i of product i+1, which starts at bit 2i+2). The last digit has
    no next product: it selects among 0, +-``a``, +-2 ``a`` outright (``neg_a`` = -``a``, a
    register the caller provides beside ``a``, so no negation lies in front of the adders).
    ceil(bits(b) / 2) partial products in a tree of adders, one registered level per stage
    (:func:`booth_levels`), every sum in its natural width. Returns the product,
    ``len(a) + len(b)`` bits signed, :func:`booth_levels` cycles after ``a``, ``neg_a`` and
    ``b``."""
    wb = len(b)
    width = len(a) + wb
    a, neg_a = a.as_signed(), neg_a.as_signed()
    bit = lambda k: b[min(k, wb - 1)] if k >= 0 else 0       # sign-extended, bit -1 is 0
    digits = booth_digits(wb)
    terms = []
    carry_in = None                  # the previous product's +1, at bit 2(i-1)
    for i in range(digits):
        high, mid, low = bit(2 * i + 1), bit(2 * i), bit(2 * i - 1)
        zero = (high == mid) & (mid == low)
        two = (high != mid) & (mid == low)
        if i < digits - 1:
            magnitude = Mux(zero, 0, Mux(two, a << 1, a))            # (len(a) + 1)-bit signed
            negate = high & ~zero
            term = magnitude ^ Mux(negate, -1, 0)
        else:
            one = Mux(high, neg_a, a)
            term = Mux(zero, 0, Mux(two, one << 1, one))
        term = term << (2 * i)
        if carry_in is not None:
            term = term | (carry_in << (2 * i - 2))       # unsigned: zero-extended
        terms.append(term)
        carry_in = negate if i < digits - 1 else None
    product, _ = _adder_tree(m, terms, signed(width), name, natural=True)
    return product
