"""python -m rtl [--config C] [--weights FILE] [--weights-format F] [--lanes P[,P1,...]] [--no-c] [--serial-output] [--axis [--axis-width N]] [--ecp5-dsp] --out FILE.v

Exports the LSTM cell (or, for a stacked model, one cell per layer chained as a pipeline), with
the quantized weights in its memories, as plain Verilog; with --axis behind AXI4-Stream ports
(docs/axis.md)."""
import sys

from model.cli import (ArgumentParser, add_weights_options, atomic_write, check_target, load_model,
                       run_command)

from .axis import AXIS_WIDTHS, AxisWrapper
from .geometry import RTLError
from .stack import StackedLSTM, build_design
from .top import LSTMCell


def export_verilog(dut: LSTMCell | StackedLSTM | AxisWrapper, name: str = "lstm_cell", *, ecp5: bool = False) -> str:
    """Plain Verilog of ``dut``; ``ecp5``: products as ECP5 ``MULT18X18D`` primitives with their
    output register (:class:`rtl.pipeline.ECP5`; for synthesis only, simulators lack the
    primitive)."""
    from amaranth.back import verilog

    from .pipeline import ECP5
    return verilog.convert(dut, name=name, emit_src=False, platform=ECP5() if ecp5 else None)


def build_parser() -> ArgumentParser:
    ap = ArgumentParser(prog="python -m rtl", description=__doc__.splitlines()[2])
    ap.add_argument("--config", metavar="C", help="TOML config (default: configs/default.toml)")
    add_weights_options(ap)
    ap.add_argument("--lanes", metavar="P", help="MAC lanes: P, or P0,P1,... one per layer of a "
                    "stacked model (default: the config's [rtl] lanes)")
    ap.add_argument("--no-c", action="store_true", help="leave c_t off the output stream")
    ap.add_argument("--serial-output", action="store_true",
                    help="word-serial h stream: one unit per transfer (h, c, first, last)")
    ap.add_argument("--axis", action="store_true",
                    help="wrap the design in AXI4-Stream ports (aclk, aresetn, s_axis_x_*, "
                         "m_axis_h_*, s_axis_load_* with tdest; docs/axis.md)")
    ap.add_argument("--axis-width", type=int, default=32, metavar="N",
                    help="tdata bits of every AXI4-Stream port with --axis: a power of two from "
                         "8 to 1024 (default 32)")
    ap.add_argument("--ecp5-dsp", action="store_true",
                    help="products as ECP5 MULT18X18D primitives with their output register "
                         "(for ECP5 synthesis; simulators lack the primitive)")
    ap.add_argument("--name", default="lstm_cell", help="Verilog module name (default lstm_cell)")
    ap.add_argument("--out", metavar="FILE.v", required=True, help="Verilog file to write")
    return ap


def cmd_export(args) -> int:
    out = check_target(args.out, "--out")
    if args.axis_width != 32 and not args.axis:
        raise RTLError("--axis-width goes with --axis")
    if args.axis_width not in AXIS_WIDTHS:
        raise RTLError(f"--axis-width must be a power of two from 8 to 1024, not {args.axis_width}")
    config, stack = load_model(args)
    dut = build_design(config, stack, lanes=args.lanes, output_c=not args.no_c,
                       serial_output=args.serial_output)
    top = AxisWrapper(dut, width=args.axis_width) if args.axis else dut
    text = export_verilog(top, args.name, ecp5=args.ecp5_dsp)
    atomic_write(out, lambda f: f.write(text), mode="w")
    if args.axis:
        lay = top.x_layout
        print(f"AXI4-Stream, tdata {top.width} bits: a step is {lay.n_beats} beat(s) of "
              f"s_axis_x; " + ", ".join(f"m_axis_{n}: {o.n_beats} beat(s) per record"
                                       for n, o in top.output_layouts.items())
              + "; s_axis_load tdest " + ", ".join(f"{k} = {n}" for k, n in enumerate(top.load_ports)))
    if isinstance(dut, LSTMCell):
        g = dut.geometry
        print(f"wrote {out}: module {args.name}, X={g.n_inputs} H={g.n_hidden} P={g.lanes}, "
              f"{dut.cycles_per_step} cycles/step (MAC bound {g.issue_cycles}, "
              f"efficiency {dut.mac_efficiency:.3f})")
        return 0
    layers = "; ".join(f"layer {k}: X={c.geometry.n_inputs} H={c.geometry.n_hidden} "
                       f"P={c.geometry.lanes}, {c.cycles_per_step} cycles/step"
                       for k, c in enumerate(dut.layers))
    print(f"wrote {out}: module {args.name}, {dut.n_layers} layers ({layers}); "
          f"{dut.cycles_per_step} cycles/step (the slowest layer), latency {dut.latency} cycles "
          f"(the sum), MAC efficiency {dut.mac_efficiency:.3f}")
    return 0


def main(argv=None) -> int:
    return run_command(cmd_export, build_parser().parse_args(argv), expected=(RTLError,))


if __name__ == "__main__":
    sys.exit(main())
