"""The ECP5 flavour of the products (rtl.pipeline.product_register with the ECP5 platform):
the exported Verilog instantiates MULT18X18D with its output register, and that netlist,
simulated in Icarus with the behavioural MULT18X18D of sim/verilog/ecp5/ (the documented signed
18x18 multiply, output register on CLK0), gives the exact products one cycle after the operands."""
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import Const, Module, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from rtl.pipeline import ECP5, product_register

MULT_MODEL = Path(__file__).resolve().parent.parent / "sim" / "verilog" / "ecp5" / "MULT18X18D.v"

pytestmark = pytest.mark.skipif(shutil.which("iverilog") is None, reason="needs iverilog")

SHAPES = {"ss": (signed(16), signed(16)), "uu": (unsigned(16), unsigned(16)),
          "su": (signed(16), unsigned(17)), "wide": (signed(18), signed(18))}


def _product_shape(sa, sb):
    return (Const(0, sa) * Const(0, sb)).shape()


class _Products(wiring.Component):
    def __init__(self):
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
                                 getattr(self, f"{name}_b"), f"p_{name}")
            m.d.comb += getattr(self, f"{name}_p").eq(p)
        return m


def test_ecp5_products_are_mult18x18d_with_output_register_and_exact(tmp_path):
    dut = _Products()
    text = verilog.convert(dut, name="products", platform=ECP5(), emit_src=False)
    assert text.count("MULT18X18D") == len(SHAPES)
    assert 'REG_OUTPUT_CLK("CLK0")' in text.replace(" ", "")
    plain = verilog.convert(_Products(), name="products", emit_src=False)
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
    (tmp_path / "products.v").write_text(text)
    shutil.copy(MULT_MODEL, tmp_path / "mult.v")
    (tmp_path / "tb.v").write_text("\n".join(tb) + "\n")
    r = subprocess.run(["iverilog", "-g2005", "-o", "sim", "tb.v", "products.v", "mult.v"],
                       cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run(["vvp", "-n", "sim"], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    got = np.array([[int(v) for v in line.split()] for line in r.stdout.splitlines()
                    if line and line[0] in "-0123456789"])
    assert got.shape == (n, len(SHAPES))
    for col, (name, (a, b)) in enumerate(vectors.items()):
        assert got[:, col].tolist() == (a * b).tolist(), name
