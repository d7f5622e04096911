"""The ECP5 flavour of the products (rtl.pipeline.product_register with the ECP5 platform):
the exported Verilog instantiates MULT18X18D with its output register (and, for the MAC lanes,
its input registers), and that netlist, simulated in Icarus with the behavioural MULT18X18D of
sim/verilog/ecp5/ (the documented signed 18x18 multiply, registers on CLK0), gives the exact
products one cycle after the operands (two with the input registers)."""
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import Cat, Const, Module, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from rtl.pipeline import ECP5, product_register, register_copies, register_copies_tree

#: the behavioural models of the primitives (sim/verilog/ecp5/, tested alone in test_ecp5_models)
MODELS = Path(__file__).resolve().parent.parent / "sim" / "verilog" / "ecp5"
MULT_MODEL = MODELS / "MULT18X18D.v"
DP16KD_MODEL = MODELS / "DP16KD.v"

pytestmark = pytest.mark.skipif(shutil.which("iverilog") is None, reason="needs iverilog")

SHAPES = {"ss": (signed(16), signed(16)), "uu": (unsigned(16), unsigned(16)),
          "su": (signed(16), unsigned(17)), "wide": (signed(18), signed(18))}


def _product_shape(sa, sb):
    return (Const(0, sa) * Const(0, sb)).shape()


class _Products(wiring.Component):
    def __init__(self, input_registers=False):
        self._input_registers = input_registers
        ports = {}
        for name, (sa, sb) in SHAPES.items():
            ports[f"{name}_a"] = In(sa)
            ports[f"{name}_b"] = In(sb)
            ports[f"{name}_p"] = Out(_product_shape(sa, sb))
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        for name in SHAPES:
            p = product_register(m, platform, getattr(self, f"{name}_a"),
                                 getattr(self, f"{name}_b"), f"p_{name}",
                                 input_registers=self._input_registers)
            m.d.comb += getattr(self, f"{name}_p").eq(p)
        return m


def _run_products(tmp_path, text: str, tb: list) -> str:
    """Icarus on the module ``products`` (``text``), the MULT18X18D model and the testbench
    lines ``tb``: its standard output."""
    (tmp_path / "products.v").write_text(text)
    shutil.copy(MULT_MODEL, tmp_path / "mult.v")
    (tmp_path / "tb.v").write_text("\n".join(tb) + "\n")
    r = subprocess.run(["iverilog", "-g2005", "-o", "sim", "tb.v", "products.v", "mult.v"],
                       cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run(["vvp", "-n", "sim"], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.mark.parametrize("input_registers", [False, True])
def test_ecp5_products_are_mult18x18d_with_output_register_and_exact(tmp_path, input_registers):
    """With ``input_registers`` (the MAC lanes) the operands also pass the DSP's input
    registers, so each product appears one cycle later: row k of the output is row k-1's."""
    dut = _Products(input_registers)
    text = verilog.convert(dut, name="products", platform=ECP5(), emit_src=False)
    assert text.count("MULT18X18D") == len(SHAPES)
    flat = text.replace(" ", "")
    assert 'REG_OUTPUT_CLK("CLK0")' in flat
    assert flat.count('REG_INPUTA_CLK("CLK0")') == flat.count('REG_INPUTB_CLK("CLK0")') \
        == (len(SHAPES) if input_registers else 0)
    plain = verilog.convert(_Products(input_registers), name="products", emit_src=False)
    assert "MULT18X18D" not in plain
    rng = np.random.default_rng(3)
    n = 200
    vectors = {}
    for name, (sa, sb) in SHAPES.items():
        draw = lambda s: rng.integers(-(1 << (s.width - 1)) if s.signed else 0,  # noqa: E731
                                      1 << (s.width - (1 if s.signed else 0)), n)
        a, b = draw(sa), draw(sb)
        a[:2], b[:2] = [a.min(), a.max()], [b.min(), b.max()]
        vectors[name] = (a, b)
    lines = []
    for k in range(n):
        for name, (a, b) in vectors.items():
            lines.append(f"    {name}_a = {int(a[k])}; {name}_b = {int(b[k])};")
        lines.append("    @(posedge clk); #1;")
        lines.append('    $display("%0d %0d %0d %0d", ' + ", ".join(f"{name}_p" for name in SHAPES) + ");")
    decl = []
    for name, (sa, sb) in SHAPES.items():
        decl.append(f"  reg {'signed ' if sa.signed else ''}[{sa.width - 1}:0] {name}_a;")
        decl.append(f"  reg {'signed ' if sb.signed else ''}[{sb.width - 1}:0] {name}_b;")
        sp = _product_shape(sa, sb)
        decl.append(f"  wire {'signed ' if sp.signed else ''}[{sp.width - 1}:0] {name}_p;")
    conns = ", ".join(f".{name}_{x}({name}_{x})" for name in SHAPES for x in "abp")
    tb = (["module tb;", "  reg clk = 0; reg rst = 1;", "  always #5 clk = ~clk;", *decl,
           f"  products dut(.clk(clk), .rst(rst), {conns});", "  initial begin",
           "    rst = 0;", *lines, "    $finish;", "  end", "endmodule"])
    stdout = _run_products(tmp_path, text, tb)
    got = np.array([[int(v) for v in line.split()] for line in stdout.splitlines()
                    if line and line[0] in "-0123456789"])
    assert got.shape == (n, len(SHAPES))
    lag = int(input_registers)
    for col, (name, (a, b)) in enumerate(vectors.items()):
        assert got[lag:, col].tolist() == (a * b)[:n - lag].tolist(), name


class _EnabledProduct(wiring.Component):
    """One product whose operands pass input registers with their own load enables."""

    def __init__(self):
        super().__init__({"a": In(signed(12)), "b": In(signed(15)), "ea": In(1), "eb": In(1),
                          "p": Out(signed(27))})

    def elaborate(self, platform):
        m = Module()
        p = product_register(m, platform, self.a, self.b, "p", input_registers=True,
                             a_enable=self.ea, b_enable=self.eb)
        m.d.comb += self.p.eq(p)
        return m


@pytest.mark.parametrize("ecp5", [False, True], ids=["plain", "ecp5"])
def test_input_registers_load_only_when_enabled(tmp_path, ecp5):
    """``a_enable`` / ``b_enable`` (the cell update's gates with --dsp-input-registers): on
    ECP5 the MULT18X18D's input registers on CE1 / CE2, elsewhere fabric registers with an
    enable; both hold an operand while its enable is low. Checked against a cycle model: on
    each edge p takes ra * rb, then ra takes a when ea, rb takes b when eb."""
    text = verilog.convert(_EnabledProduct(), name="products", emit_src=False,
                           platform=ECP5(dsp_input_registers=True) if ecp5 else None)
    flat = text.replace(" ", "")
    assert ("MULT18X18D" in text) == ecp5
    if ecp5:
        assert 'REG_INPUTA_CE("CE1")' in flat and 'REG_INPUTB_CE("CE2")' in flat
    rng = np.random.default_rng(5)
    n = 300
    a, b = rng.integers(-2048, 2048, n), rng.integers(-16384, 16384, n)
    ea, eb = rng.integers(0, 2, n), rng.integers(0, 2, n)
    ea[:2] = eb[:2] = 1
    lines = []
    for k in range(n):
        lines += [f"    a = {a[k]}; b = {b[k]}; ea = {ea[k]}; eb = {eb[k]};",
                  "    @(posedge clk); #1;", '    $display("%0d", p);']
    tb = ["module tb;", "  reg clk = 0; reg rst = 1;", "  always #5 clk = ~clk;",
          "  reg signed [11:0] a; reg signed [14:0] b; reg ea, eb; wire signed [26:0] p;",
          "  products dut(.clk(clk), .rst(rst), .a(a), .b(b), .ea(ea), .eb(eb), .p(p));",
          "  initial begin", "    rst = 0;", *lines, "    $finish;", "  end", "endmodule"]
    stdout = _run_products(tmp_path, text, tb)
    got = [int(v) for v in stdout.split() if v.lstrip("-").isdigit()]
    want, ra, rb = [], None, None
    for k in range(n):
        want.append(None if ra is None or rb is None else ra * rb)
        ra = int(a[k]) if ea[k] else ra
        rb = int(b[k]) if eb[k] else rb
    assert len(got) == n
    assert got[2:] == want[2:]
    assert 0 < ea.sum() < n and 0 < eb.sum() < n        # both holds and loads happen


def test_an_operand_enable_needs_input_registers():
    m = Module()
    m._MustUse__silence = True          # never elaborated: the call is refused
    with pytest.raises(ValueError, match="an operand's enable needs input_registers"):
        product_register(m, None, Signal(4), Signal(4), "p", a_enable=Signal())


@pytest.mark.parametrize("argv, words", [
    (["-m", "rtl", "--dsp-input-registers"], "--dsp-input-registers goes with --ecp5-dsp"),
    (["-m", "bench.synth", "--family", "ice40", "--dsp-input-registers", "--no-pnr"],
     "--dsp-input-registers needs the ECP5 multipliers"),
])
def test_dsp_input_registers_are_refused_without_ecp5_multipliers(tmp_path, argv, words):
    import sys
    out = ["--out", str(tmp_path / ("x.v" if "rtl" in argv else "x.json"))]
    p = subprocess.run([sys.executable, *argv, *out], capture_output=True, text=True,
                       cwd=Path(__file__).resolve().parent.parent)
    assert p.returncode != 0 and "Traceback" not in p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], p.stderr


# ---- DP16KD weight memories (rtl.lanemem.registered_memory) ----------------------------------

class _LaneMemory(wiring.Component):
    """registered_memory behind registered ports (as the MAC lanes drive it)."""

    def __init__(self, init, width, per_block=False):
        self._init, self._width, self._per_block = init, width, per_block
        abits = max(1, (len(init) - 1).bit_length())
        super().__init__({"addr": In(abits), "wdata": In(signed(width)), "we": In(1),
                          "rdata": Out(signed(width))})

    def elaborate(self, platform):
        from amaranth.hdl import Signal

        from rtl.lanemem import BLOCK_WORDS, block_count, registered_memory
        m = Module()
        addr = Signal.like(self.addr)
        wdata = Signal.like(self.wdata)
        we = Signal()
        m.d.sync += [addr.eq(self.addr), wdata.eq(self.wdata), we.eq(self.we)]
        if self._per_block:             # one enable per block, decoded into registers
            we = [Signal(name=f"we{b}") for b in range(block_count(len(self._init)))]
            m.d.sync += [e.eq(self.we & (self.addr // BLOCK_WORDS == b)) for b, e in enumerate(we)]
        data = registered_memory(m, platform, signed(self._width), self._init, "mem", addr, wdata, we)
        m.d.comb += self.rdata.eq(data)
        return m


def _simulate_memory(tmp_path, text, extra, ops, name):
    lines = []
    for addr, we, wdata in ops:
        lines += [f"    addr = {addr}; we = {we}; wdata = {wdata};", "    @(posedge clk); #1;",
                  '    $display("%0d", rdata);']
    tb = ["module tb;", "  reg clk = 0; reg rst = 1;", "  always #5 clk = ~clk;",
          "  reg [15:0] addr; reg we; reg signed [15:0] wdata; wire signed [15:0] rdata;",
          "  mem dut(.clk(clk), .rst(rst), .addr(addr), .we(we), .wdata(wdata), .rdata(rdata));",
          "  initial begin", "    rst = 0;", *lines, "    $finish;", "  end", "endmodule"]
    work = tmp_path / name
    work.mkdir()
    (work / "mem.v").write_text(text)
    (work / "tb.v").write_text("\n".join(tb) + "\n")
    files = ["tb.v", "mem.v"]
    if extra:
        (work / "dp16kd.v").write_text(extra)
        files.append("dp16kd.v")
    r = subprocess.run(["iverilog", "-g2005", "-o", "sim", *files], cwd=work, capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run(["vvp", "-n", "sim"], cwd=work, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return [int(v) if v.lstrip("-").isdigit() else None for v in r.stdout.split()]


@pytest.mark.parametrize("depth,per_block", [(640, False), (1500, False), (1500, True)])
def test_ecp5_weight_memory_is_dp16kd_outreg_and_reads_like_the_plain_memory(tmp_path, depth,
                                                                            per_block):
    """Reads and writes (random, including both blocks of a 1500-word memory, with one write
    enable or one per block as the MAC lanes drive it): the DP16KD netlist and the plain memory
    give the same word in the same cycle, MEMORY_LATENCY cycles after the address, and the
    initial contents come back from INITVAL."""
    from rtl.lanemem import MEMORY_LATENCY, block_count
    rng = np.random.default_rng(depth)
    init = [int(v) for v in rng.integers(-(1 << 15), 1 << 15, depth)]
    ecp5 = verilog.convert(_LaneMemory(init, 16, per_block), name="mem", platform=ECP5(),
                           emit_src=False)
    plain = verilog.convert(_LaneMemory(init, 16, per_block), name="mem", emit_src=False)
    assert ecp5.count("DP16KD") == block_count(depth) and "DP16KD" not in plain
    assert 'REGMODE_A("OUTREG")' in ecp5.replace(" ", "")
    ops = [(a, 0, 0) for a in range(depth)]                          # every initial word
    mirror = list(init)
    for _ in range(300):                                             # writes mixed with reads
        a = int(rng.integers(0, depth))
        if rng.random() < 0.4:
            v = int(rng.integers(-(1 << 15), 1 << 15))
            ops.append((a, 1, v))
        else:
            ops.append((a, 0, 0))
    ops += [(0, 0, 0)] * (MEMORY_LATENCY + 2)
    got_ecp5 = _simulate_memory(tmp_path, ecp5, DP16KD_MODEL.read_text(), ops, "ecp5")
    got_plain = _simulate_memory(tmp_path, plain, None, ops, "plain")
    assert len(got_ecp5) == len(got_plain) == len(ops)
    # the port is registered once in _LaneMemory: op k's word is displayed after edge k + 1 + L
    shift = 1 + MEMORY_LATENCY
    expected = {}
    for k, (a, we, v) in enumerate(ops):
        if we:
            mirror[a] = v
        elif k + shift - 1 < len(got_plain):
            expected[k] = mirror[a]
    checked = [k for k in expected if k < len(ops) - MEMORY_LATENCY - 2]
    assert len(checked) > depth
    for k in checked:
        assert got_plain[k + shift - 1] == got_ecp5[k + shift - 1] == expected[k], k


# ---- copies of a wide enable (rtl.pipeline.register_copies) ----------------------------------

class _Copies(wiring.Component):
    d: In(1)
    q: Out(4)
    ref: Out(1)

    def elaborate(self, platform):
        m = Module()
        ref = Signal(init=1)
        m.d.sync += ref.eq(self.d)
        copies = register_copies(m, platform, self.d, 3, "copy", init=1)
        copies += register_copies(m, platform, ~self.d, 1, "inverse")
        m.d.comb += [self.q.eq(Cat(*copies)), self.ref.eq(ref)]
        return m


def test_register_copies_are_trellis_ff_on_ecp5_and_equal_the_register(tmp_path):
    """Three copies of a register (reset 1) and one of its inverse (reset 0), as TRELLIS_FF
    primitives (sync reset: the documented LSR_OVER_CE mode; Yosys's own ECP5 simulation model
    of the cell, as the netlist simulation uses it) equal the plain register on every cycle,
    resets included."""
    text = verilog.convert(_Copies(), name="copies", platform=ECP5(), emit_src=False)
    assert text.count("TRELLIS_FF") == 4
    assert "TRELLIS_FF" not in verilog.convert(_Copies(), name="copies", emit_src=False)
    rng = np.random.default_rng(5)
    lines = []
    for k in range(200):
        lines += [f"    d = {int(rng.integers(0, 2))}; rst = {int(k in (0, 77, 78, 150))};",
                  "    @(posedge clk); #1;", '    $display("%b %b", q, ref);']
    rows = _two_column_run(tmp_path, "copies", text, "wire [3:0] q; wire ref;", ".q(q), .ref(ref)",
                           lines)
    assert len(rows) == 200
    for q, ref in rows:
        assert q == ("0" if ref == "1" else "1") + ref * 3, (q, ref)


def _two_column_run(tmp_path, module, text, wires, outputs, lines):
    """Icarus on ``module`` (Verilog ``text``, TRELLIS_FF cells modelled) driven by a testbench
    of ``lines`` with inputs clk, rst and d; the rows it displays, as pairs of strings."""
    from bench.netlist import cell_library
    tb = ["module tb;", "  reg clk = 0; reg rst = 1; reg d = 0;", "  always #5 clk = ~clk;",
          f"  {wires}", f"  {module} dut(.clk(clk), .rst(rst), .d(d), {outputs});",
          "  initial begin", *lines, "    $finish;", "  end", "endmodule"]
    (tmp_path / f"{module}.v").write_text(text)
    (tmp_path / "ff.v").write_text(cell_library({"TRELLIS_FF"}))
    (tmp_path / "tb.v").write_text("\n".join(tb) + "\n")
    r = subprocess.run(["iverilog", "-g2005", "-o", "sim", "tb.v", f"{module}.v", "ff.v"],
                       cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run(["vvp", "-n", "sim"], cwd=tmp_path, capture_output=True, text=True)
    return [line.split() for line in r.stdout.splitlines() if len(line.split()) == 2]


class _CopiesTree(wiring.Component):
    """d in, the tree's 10 last-level copies (q) and one copy of each earlier level (ahead)."""

    def __init__(self):
        super().__init__({"d": In(1), "q": Out(10), "ahead": Out(2)})

    def elaborate(self, platform):
        m = Module()
        last, earlier = register_copies_tree(m, platform, self.d, 10, "tree", levels=3)
        m.d.comb += [self.q.eq(Cat(*last)), self.ahead.eq(Cat(earlier[0][-1], earlier[1][-1]))]
        return m


@pytest.mark.parametrize("ecp5", [True, False])
def test_register_copies_tree_equals_its_input_delayed_by_its_levels(tmp_path, ecp5):
    """A three-level tree of 10 copies (2, 5, then 10 registers): every last-level copy is the
    input three cycles late, the levels before it two and one cycle late, on every cycle and
    through resets (0 in every copy on the cycle after a reset edge, as each copy's own reset);
    on ECP5 every copy is a TRELLIS_FF."""
    plat = ECP5() if ecp5 else None
    text = verilog.convert(_CopiesTree(), name="tree", platform=plat, emit_src=False)
    assert text.count("TRELLIS_FF") == (17 if ecp5 else 0)
    rng = np.random.default_rng(9)
    ds = [int(rng.integers(0, 2)) for _ in range(200)]
    rsts = [int(k in (0, 1, 2, 90, 140)) for k in range(200)]
    lines = []
    for k in range(200):
        lines += [f"    d = {ds[k]}; rst = {rsts[k]};", "    @(posedge clk); #1;",
                  '    $display("%b %b", q, ahead);']
    rows = _two_column_run(tmp_path, "tree", text, "wire [9:0] q; wire [1:0] ahead;",
                           ".q(q), .ahead(ahead)", lines)
    assert len(rows) == 200

    def late(k, n):
        """The input n edges before the edge that ended cycle k (0 when a reset came since)."""
        level = [0] * 3
        for j in range(k + 1):                 # each register level takes the one before it
            level = [0] * 3 if rsts[j] else [ds[j], level[0], level[1]]
        return level[n - 1]

    for k, (q, ahead) in enumerate(rows):
        assert q == str(late(k, 3)) * 10, (k, q)
        assert ahead == f"{late(k, 1)}{late(k, 2)}", (k, ahead)


class _Activations(wiring.Component):
    """The three activation units of the default config side by side (one input code)."""

    def __init__(self, tables):
        self._tables = tables
        ports = {"q": In(signed(16))}
        ports.update({f"y_{n}": Out(signed(16)) for n in tables})
        super().__init__(ports)

    def elaborate(self, platform):
        from rtl.pwl import PWLUnit
        m = Module()
        for name, table in self._tables.items():
            unit = PWLUnit(table)
            m.submodules[name] = unit
            m.d.comb += [unit.q.eq(self.q), unit.q_valid.eq(1),
                         getattr(self, f"y_{name}").eq(unit.y)]
        return m


def test_hand_mapped_activation_roms_are_exact_on_every_code(tmp_path):
    """With the ECP5 platform the activation units' ROMs are LUT4 / PFUMX / L6MUX21 primitives
    (rtl.pipeline.lut_rom); that netlist, simulated in Icarus with Yosys's own models of the
    cells, gives every unit's table value for every input code (all 2^16, the z and c formats
    of the default config)."""
    from bench.netlist import cell_library
    from model.activations import build_table
    from model.config import load_config
    from rtl.pwl import PWLUnit
    cfg = load_config()
    tables = {n: build_table(s) for n, s in cfg.tables.items()}
    assert all(t.spec.input.fmt.bits == 16 and t.spec.output.fmt.bits <= 16
               for t in tables.values())
    text = verilog.convert(_Activations(tables), name="acts", platform=ECP5(), emit_src=False)
    for cell in ("LUT4", "PFUMX", "L6MUX21"):
        assert cell in text, cell
    assert "LUT4" not in verilog.convert(_Activations(tables), name="acts", emit_src=False)
    names = list(tables)
    lat = PWLUnit.latency - 1        # y after the edge ending cycle k is the input of k - lat
    tb = ["`timescale 1ns / 1ps", "module tb;", "  reg clk = 0; reg rst = 1;",
          "  reg signed [15:0] q = 0;", "  always #5 clk = ~clk;",
          *[f"  wire signed [15:0] y_{n};" for n in names],
          "  acts dut(.clk(clk), .rst(rst), .q(q), "
          + ", ".join(f".y_{n}(y_{n})" for n in names) + ");",
          "  integer k;", "  initial begin", "    @(posedge clk); #1 rst = 0;",
          f"    for (k = 0; k < 65536 + {lat}; k = k + 1) begin",
          "      q = k[15:0]; @(posedge clk); #1;",
          f"      if (k >= {lat}) $display(\"%0d %0d %0d %0d\", k - {lat}, "
          + ", ".join(f"y_{n}" for n in names) + ");",
          "    end", "    $finish;", "  end", "endmodule"]
    (tmp_path / "acts.v").write_text(text)
    (tmp_path / "cells.v").write_text(cell_library({"LUT4", "PFUMX", "L6MUX21", "MULT18X18D",
                                                    "TRELLIS_FF"}))
    (tmp_path / "tb.v").write_text("\n".join(tb) + "\n")
    r = subprocess.run(["iverilog", "-g2005", "-o", "sim", "tb.v", "acts.v", "cells.v"],
                       cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run(["vvp", "-n", "sim"], cwd=tmp_path, capture_output=True, text=True)
    rows = np.array([[int(v) for v in line.split()] for line in r.stdout.splitlines()
                     if len(line.split()) == 1 + len(names)])
    assert len(rows) == 65536
    codes = (rows[:, 0] + 32768) % 65536 - 32768          # k as a signed 16-bit code
    for j, n in enumerate(names):
        expected, _ = tables[n](codes.astype(np.int64))
        assert np.array_equal(rows[:, 1 + j], expected), n
