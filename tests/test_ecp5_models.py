"""The behavioural DP16KD and MULT18X18D models (sim/verilog/ecp5/) in isolation, under Icarus:
their plain-Verilog testbenches check the documented timing and behaviour (REGMODE NOREG/OUTREG,
the write modes, CE/OCE, chip select, synchronous and asynchronous output reset, byte enables,
INITVAL layout, narrow ports; signed/unsigned products, register stages, clock/CE/RST
selection). Each mutant is a plausible modelling mistake that its testbench must catch."""
import re
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(shutil.which("iverilog") is None, reason="needs iverilog")

MODELS = Path(__file__).resolve().parent.parent / "sim" / "verilog" / "ecp5"
VERDICT = re.compile(r"^tb_(\w+): (\d+) passed, (\d+) failed$", re.M)


def _run(tmp_path: Path, tb: str, model: str, text: str | None = None) -> tuple[int, int, str]:
    """Compile ``tb`` with ``model`` (or ``text`` in its place) and run it: (passed, failed,
    output)."""
    source = tmp_path / model
    source.write_text(text if text is not None else (MODELS / model).read_text())
    built = subprocess.run(["iverilog", "-g2005", "-I", str(MODELS), "-o",
                            str(tmp_path / "tb.vvp"), str(MODELS / tb), str(source)],
                           capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    ran = subprocess.run(["vvp", "-n", str(tmp_path / "tb.vvp")], capture_output=True, text=True)
    found = VERDICT.findall(ran.stdout)
    assert found, ran.stdout[-2000:] + ran.stderr
    return int(found[-1][1]), int(found[-1][2]), ran.stdout


@pytest.mark.parametrize("tb, model, checks", [("tb_dp16kd.v", "DP16KD.v", 73),
                                               ("tb_mult18x18d.v", "MULT18X18D.v", 1637)])
def test_model_meets_its_documented_behaviour(tmp_path, tb, model, checks):
    passed, failed, out = _run(tmp_path, tb, model)
    assert failed == 0, out
    assert passed == checks        # every check ran (a test that stopped early would pass fewer)


DP16KD_MUTANTS = {
    "OUTREG ignored (NOREG timing)": ("OUTREG_A ? oreg[0] : word_a", "word_a"),
    "OCE ignored": ("if (oce) oreg[p]", "if (1'b1) oreg[p]"),
    "WRITETHROUGH acts as NORMAL": ("if (WM == WM_WRITETHROUGH)", "if (1'b0)"),
    "READBEFOREWRITE acts as NORMAL": ("else if (WM == WM_READBEFOREWRITE)", "else if (1'b0)"),
    "NORMAL shows the written data": ("word = current;\n", "word = di;\n"),
    "reset gated by CE": ("if (rst) begin", "if (rst && ce) begin"),
    "reset clears the array too": ("latch[p] <= 18'b0;", "latch[p] <= 18'b0; mem[row] = 18'b0;"),
    "CE ignored": ("if (ce && sel) begin", "if (sel) begin"),
    "chip select ignored": ("if (ce && sel) begin", "if (ce) begin"),
    "byte enables swapped": ("{{9{ad[1]}}, {9{ad[0]}}}", "{{9{ad[0]}}, {9{ad[1]}}}"),
    "INITVAL in 18-bit slots": ("value[20 * i +: 18]", "value[18 * i +: 18]"),
    "narrow words ignore the parity bits": ("r[9 * ad[3] + 4 * ad[2] +: 4]", "r[8 * ad[3] + 4 * ad[2] +: 4]"),
    "asynchronous reset waits for the clock": ("wire held_a = ASYNC && (RSTA ||", "wire held_a = 1'b0 && (RSTA ||"),
    "collisions not flagged": ("if (rm & last_wmask[OTHER]) word = 18'bx;", ""),
}

MULT_MUTANTS = {
    "unsigned operand taken as signed": ("{a_q[18] & a_q[17], a_q[17:0]}", "{a_q[17], a_q[17:0]}"),
    "signed operand taken as unsigned": ("{b_q[18] & b_q[17], b_q[17:0]}", "{1'b0, b_q[17:0]}"),
    "registers bypassed": ("assign q = CLK_SEL >= 0 ? r : d;", "assign q = d;"),
    "CE ignored": ("else if (ce) r <= d;", "else r <= d;"),      # both reset modes
    "reset gated by CE": ("            always @(posedge clk)\n                if (rst)",
                          "            always @(posedge clk)\n                if (rst && ce)"),
    "asynchronous reset waits for the clock": ("always @(posedge clk or posedge rst)", "always @(posedge clk)"),
    "clock select ignored": ("clks[which(REG_OUTPUT_CLK) & 3]", "clks[0]"),
    "SIGNEDP wrong": ("{a_q[18] | b_q[18], product[35:0]}", "{a_q[18] & b_q[18], product[35:0]}"),
}


@pytest.mark.parametrize("tb, model, mutants", [("tb_dp16kd.v", "DP16KD.v", DP16KD_MUTANTS),
                                                ("tb_mult18x18d.v", "MULT18X18D.v", MULT_MUTANTS)])
def test_every_mutant_of_a_model_fails_its_testbench(tmp_path, tb, model, mutants):
    source = (MODELS / model).read_text()
    survivors = []
    for name, (old, new) in mutants.items():
        assert old in source, f"mutant {name!r}: {old!r} is not in {model}"
        passed, failed, _ = _run(tmp_path, tb, model, source.replace(old, new))
        if failed == 0:
            survivors.append(name)
    assert not survivors, f"mutants not caught: {survivors}"
