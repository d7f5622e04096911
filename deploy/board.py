"""Board tops: the design behind its UART host link, with a clock and a reset.

- :func:`linked_design` builds the design exactly as ``python -m rtl`` does
  (``rtl.stack.build_design``), its INFO payload and the :class:`deploy.hostlink.UARTLink`.
- :func:`simulation_verilog`: that link with the PLL bypassed, as plain Verilog with top-level
  ports ``clk``, ``rst`` (synchronous, active high), ``rx``, ``tx``, ``alive``, ``error``,
  ``busy`` (``python -m deploy sim`` builds it in Verilator).
- :class:`BoardTop`: for an FPGA board (deploy.boards): the oscillator through the ECP5 PLL
  into its own clock domain, reset by a synchroniser on the button and the PLL's lock.
"""
from dataclasses import dataclass

from .hostlink import LinkParams, UARTLink, design_info
from .protocol import DEFAULT_BAUD, DEFAULT_MAX_PAYLOAD, Info
from .uart import divisor_for

__all__ = ["linked_design", "simulation_verilog", "SIM_CLOCK_HZ", "SIM_DIVISOR", "Linked"]

#: the simulated board's nominal clock and bit period (cycles): fast to simulate, and INFO's
#: clock_hz makes the host's "images per second of compute" figure a nominal one
SIM_CLOCK_HZ = 48_000_000
SIM_DIVISOR = 16


@dataclass
class Linked:
    link: UARTLink
    design: object
    info: Info
    params: LinkParams


def linked_design(config, stack, *, lanes=None, clock_hz: int, baud: int = DEFAULT_BAUD,
                  divisor: int | None = None, timeout: int | None = None,
                  max_payload: int = DEFAULT_MAX_PAYLOAD, batch_bytes: int = 16384,
                  batch_results: int = 64, logic_lanes: int = 0) -> Linked:
    """The design of ``stack`` under ``config`` (as ``python -m rtl`` builds it, c left off the
    output; ``logic_lanes`` as ``python -m rtl --logic-lanes``) behind a UART at ``baud`` for a
    ``clock_hz`` clock.

    ``timeout`` (cycles of line silence that end a frame) defaults to the longer of 20 ms and
    64 byte times."""
    from rtl.stack import build_design
    if divisor is None:
        divisor = divisor_for(clock_hz, baud)
    if timeout is None:
        timeout = max(clock_hz // 50, 64 * 10 * divisor)
    design = build_design(config, stack, lanes=lanes, output_c=False, logic_lanes=logic_lanes)
    params = LinkParams(clock_hz=clock_hz, baud=baud, divisor=divisor, timeout=timeout,
                        max_payload=max_payload, batch_bytes=batch_bytes,
                        batch_results=batch_results)
    info = design_info(config, stack, design, params)
    return Linked(UARTLink(design, info, params), design, Info.decode(info), params)


def simulation_verilog(config, stack, *, lanes=None, divisor: int = SIM_DIVISOR,
                       timeout: int | None = None, name: str = "deploy_board", **sizes):
    """(Verilog text, Info) of the board top with the PLL bypassed: ``clk`` drives everything,
    ``rst`` is the reset (hold it high for a few cycles at start), ``rx``/``tx`` are the UART
    pins at ``divisor`` clock cycles per bit (the host's baud is irrelevant to a simulation: a
    bridge feeds the pin one bit per ``divisor`` cycles)."""
    from amaranth.back import verilog
    linked = linked_design(config, stack, lanes=lanes, clock_hz=SIM_CLOCK_HZ,
                           baud=SIM_CLOCK_HZ // divisor, divisor=divisor,
                           timeout=timeout if timeout is not None else 64 * 10 * divisor, **sizes)
    text = verilog.convert(linked.link, name=name, emit_src=False)
    return text, linked.info
