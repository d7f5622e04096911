"""python -m deploy build: refusals in one line, the PLL dividers, the board top's elaboration
for the ULX3S platform (no tools run: bitstreams are built by make bitstream)."""
import numpy as np
import pytest

from deploy.__main__ import main as deploy_main
from deploy.boards import BOARDS, BoardTop, pll_params, platform_for
from deploy.build import BuildError, main, program


def one_line_error(capsys, argv, status=2):
    assert main(argv) == status
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ")
    return err


def test_icebreaker_answers_with_the_measured_reason(capsys):
    err = one_line_error(capsys, ["--board", "icebreaker"])
    assert "158 %" in err and "iCE40UP5K" in err


@pytest.mark.parametrize("argv, message", [
    (["--board", "ulx3s-99f"], "--board must be one of ulx3s-12f"),
    (["--board", "ulx3s-25f", "--baud", "9600"], "--baud must be 115200..3000000"),
    (["--board", "ulx3s-25f", "--clock", "1000"], "the PLL cannot make 1000 MHz"),
    (["--board", "ulx3s-25f", "--clock", "40", "--baud", "3000000"], "3000000 baud at 40 MHz"),
    (["--board", "ulx3s-25f", "--weights", "no/such.npz"], "no/such.npz"),
])
def test_refusals(capsys, argv, message, tmp_path):
    assert message in one_line_error(capsys, argv + ["--out", str(tmp_path / "b")])


def test_dispatcher(capsys):
    assert deploy_main(["nope"]) == 2
    assert "unknown subcommand 'nope'" in capsys.readouterr().err
    assert deploy_main(["build", "--board", "icebreaker"]) == 2


@pytest.mark.parametrize("mhz, expect", [
    # (CLKI_DIV, CLKFB_DIV, CLKOP_DIV, CLKOP_CPHASE) as Project Trellis' calculator gives them:
    # yowasp-ecppll -i 25 -o MHZ -f pll.v
    (40, (5, 8, 15, 7)), (50, (1, 2, 12, 5)), (62.5, (2, 5, 10, 4)), (100, (1, 4, 6, 2)),
    (125, (1, 5, 5, 2)),
])
def test_pll_dividers_match_ecppll(mhz, expect):
    p = pll_params(25e6, mhz * 1e6)
    assert (p["CLKI_DIV"], p["CLKFB_DIV"], p["CLKOP_DIV"], p["CLKOP_CPHASE"]) == expect
    assert p["f_out"] == mhz * 1e6 and 400e6 <= p["f_vco"] <= 800e6


def test_program_without_a_board_says_so_in_one_line(tmp_path):
    bit = tmp_path / "x.bit"
    bit.write_bytes(b"\0" * 16)
    with pytest.raises(BuildError, match="openFPGALoader") as e:
        program(str(bit))
    assert "\n" not in str(e.value)


def test_board_top_elaborates_for_the_ulx3s(tmp_path):
    from deploy.board import linked_design
    from model.config import load_config
    from model.weights import LSTMStack
    from rtl_helpers import random_weights
    stack = LSTMStack((random_weights(np.random.default_rng(0), 3, 4),))
    linked = linked_design(load_config(), stack, lanes=2, clock_hz=50_000_000, baud=3_000_000,
                           batch_bytes=64, batch_results=2)
    board = BOARDS["ulx3s-25f"]
    plan = platform_for(board).build(BoardTop(board, linked.link, pll_params(25e6, 50e6)),
                                     name="top", do_build=False)
    lpf = plan.files["top.lpf"]
    rtlil = plan.files["top.il"]
    assert "EHXPLLL" in rtlil and "CLKOP_DIV" in rtlil
    assert 'SITE "M1"' in lpf and 'SITE "L4"' in lpf          # the FT231X's UART pins
    assert "MULT18X18D" in rtlil                               # DSP output registers


def test_board_top_with_logic_lanes_reports_the_rtls_cycles():
    """--logic-lanes reaches the design behind the link: P = 9 > X+H = 7 with 3 lanes in logic;
    the board's identity says the cycles per step this RTL gives (the host checks them)."""
    from deploy.board import linked_design
    from model.config import load_config
    from model.weights import LSTMStack
    from rtl.top import LSTMCell
    from rtl_helpers import random_weights
    stack = LSTMStack((random_weights(np.random.default_rng(0), 3, 4),))
    linked = linked_design(load_config(), stack, lanes=9, logic_lanes=3, clock_hz=50_000_000,
                           baud=3_000_000, batch_bytes=64, batch_results=2)
    assert linked.design.geometry.logic_lanes == 3
    layer = linked.info.layers[0]
    assert layer.lanes == 9
    assert layer.cycles_per_step == -(-4 * 4 * 7 // 9) + LSTMCell.overhead_for(9, True) == 59
    from amaranth.hdl import Fragment
    Fragment.get(linked.link, None)                # it elaborates (and is used)


def test_board_default_clocks_are_ones_the_pll_makes():
    """Without --clock each board gets the clock its measured build met (docs/deploy.md): 90 MHz,
    62.5 MHz on the 85F; the PLL makes each from the board's oscillator exactly."""
    from deploy.build import DEFAULT_CLOCK_MHZ, default_clock
    assert default_clock("ulx3s-25f") == DEFAULT_CLOCK_MHZ == 90
    assert default_clock("ulx3s-85f") == 62.5
    for name, board in BOARDS.items():
        pll = pll_params(board.clock_hz, default_clock(name) * 1e6)
        assert pll["f_out"] == default_clock(name) * 1e6
