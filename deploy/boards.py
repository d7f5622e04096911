"""FPGA boards: the amaranth-boards platform per board name, the ECP5 PLL, and the board top.

Board names are amaranth-boards' boards in lower case with the device (docs/deploy.md). A
board whose FPGA cannot hold the design says why, with the measured figures, instead of
building.
"""
from dataclasses import dataclass

from amaranth.hdl import ClockDomain, Elaboratable, Instance, Module, Signal
from amaranth.lib import io
from amaranth.lib.cdc import ResetSynchronizer

__all__ = ["BOARDS", "Board", "UnsupportedBoard", "pll_params", "BoardTop", "platform_for"]

PLL_VCO = (400e6, 800e6)          # ECP5 EHXPLLL limits (the ecppll calculator's)
PLL_PFD_MIN = 3.125e6


class UnsupportedBoard(Exception):
    """A board the design cannot be built for (the message says why, with figures)."""


@dataclass(frozen=True)
class Board:
    name: str
    module: str          # amaranth_boards submodule
    platform: str        # platform class
    device: str
    clock_hz: int        # the oscillator
    reset_button: tuple  # (resource, number): active high after the resource's inversion
    leds: tuple = (0, 1, 2)   # alive, error, busy
    note: str = ""


BOARDS = {
    f"ulx3s-{size}f": Board(f"ulx3s-{size}f", "ulx3s", f"ULX3S_{size}F_Platform", f"LFE5U-{size}F",
                            25_000_000, ("button_fire", 0),
                            note="FT231X USB-UART bridge up to 3 Mbaud; F1 resets")
    for size in (12, 25, 45, 85)
}

#: measured with python -m bench.synth --family ice40 (docs/deploy.md, "iCEBreaker")
UNSUPPORTED = {
    "icebreaker": (
        "the iCEBreaker's iCE40UP5K cannot hold the design: the narrow config "
        "(configs/narrow.toml) with P=2 lanes and the word-serial output needs 158 % of its "
        "5280 logic cells (measured: python -m bench.synth --family ice40); the default "
        "design needs more, and the host link adds its own logic"),
}


def platform_for(board: Board):
    """The amaranth-boards platform, with the DSP output-register marker that
    ``rtl.pipeline.product_register`` reads (ECP5 ``MULT18X18D`` with its output register)."""
    import importlib
    module = importlib.import_module(f"amaranth_boards.{board.module}")
    base = getattr(module, board.platform)
    return type(base.__name__ + "WithDSP", (base,), {"dsp_output_register": True})()


def pll_params(f_in: float, f_out: float) -> dict:
    """EHXPLLL dividers for ``f_out`` from ``f_in``: the search of Project Trellis' ``ecppll``
    (closest output, then VCO nearest 600 MHz). Returns CLKI_DIV, CLKFB_DIV, CLKOP_DIV,
    CLKOP_CPHASE and the frequencies reached."""
    best = None
    for in_div in range(1, 129):
        pfd = f_in / in_div
        if pfd < PLL_PFD_MIN or pfd > 400e6:
            continue
        for fb_div in range(1, 81):
            out = pfd * fb_div
            lo, hi = max(1, int(PLL_VCO[0] // out)), min(128, int(PLL_VCO[1] // out) + 1)
            for op_div in range(lo, hi + 1):
                vco = out * op_div
                if not PLL_VCO[0] <= vco <= PLL_VCO[1]:
                    continue
                key = (abs(out - f_out), abs(vco - 600e6))
                if best is None or key < best[0]:
                    best = (key, in_div, fb_div, op_div, out, vco)
    if best is None:
        raise ValueError(f"no EHXPLLL setting gives {f_out / 1e6:g} MHz from {f_in / 1e6:g} MHz")
    _, in_div, fb_div, op_div, out, vco = best
    if abs(out - f_out) > 0.005 * f_out:
        raise ValueError(f"the PLL cannot make {f_out / 1e6:g} MHz from {f_in / 1e6:g} MHz "
                         f"(closest: {out / 1e6:g} MHz)")
    return {"CLKI_DIV": in_div, "CLKFB_DIV": fb_div, "CLKOP_DIV": op_div,
            "CLKOP_CPHASE": (op_div - 1) // 2, "f_out": out, "f_vco": vco}


class BoardTop(Elaboratable):
    """The host link on a board: oscillator -> EHXPLLL -> the ``sync`` domain (this top's own:
    amaranth-boards' default ECP5 ``sync`` is reset-less), reset by a ResetSynchronizer while
    the PLL is unlocked or the reset button is held; UART pins and three LEDs."""

    def __init__(self, board: Board, link, pll: dict):
        self._board, self._link, self._pll = board, link, pll

    def elaborate(self, platform):
        m = Module()
        board, pll = self._board, self._pll
        def pin(direction, *resource):
            buffer = io.Buffer(direction, platform.request(*resource, dir="-"))
            m.submodules["_".join(map(str, resource))] = buffer
            return buffer

        clk_in = pin("i", platform.default_clk, 0)
        m.domains.sync = sync = ClockDomain("sync")
        locked = Signal()
        m.submodules.pll = Instance(
            "EHXPLLL",
            p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_OUTDIVIDER_MUXB="DIVB",
            p_OUTDIVIDER_MUXC="DIVC", p_OUTDIVIDER_MUXD="DIVD",
            p_CLKI_DIV=pll["CLKI_DIV"], p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=pll["CLKOP_DIV"],
            p_CLKOP_CPHASE=pll["CLKOP_CPHASE"], p_CLKOP_FPHASE=0, p_FEEDBK_PATH="CLKOP",
            p_CLKFB_DIV=pll["CLKFB_DIV"],
            i_RST=0, i_STDBY=0, i_CLKI=clk_in.i, o_CLKOP=sync.clk, i_CLKFB=sync.clk,
            i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=1, i_PHASESTEP=1, i_PHASELOADREG=1,
            i_PLLWAKESYNC=0, i_ENCLKOP=0, o_LOCK=locked,
            a_FREQUENCY_PIN_CLKI=f"{board.clock_hz / 1e6:.6f}",
            a_FREQUENCY_PIN_CLKOP=f"{pll['f_out'] / 1e6:.6f}",
        )
        # the clock target goes to nextpnr as --freq (deploy.build): a constraint on this
        # net would name it by one of its aliases, which nextpnr may not find after synthesis
        button = pin("i", *board.reset_button)
        m.submodules.reset_sync = ResetSynchronizer(~locked | button.i, domain="sync")

        m.submodules.link = link = self._link
        uart = platform.request("uart", 0, dir="-")
        m.submodules.uart_rx_pin = rx_pin = io.Buffer("i", uart.rx)
        m.submodules.uart_tx_pin = tx_pin = io.Buffer("o", uart.tx)
        leds = [pin("o", "led", k) for k in board.leds]
        m.d.comb += [link.rx.eq(rx_pin.i), tx_pin.o.eq(link.tx),
                     leds[0].o.eq(link.alive), leds[1].o.eq(link.error), leds[2].o.eq(link.busy)]
        return m
