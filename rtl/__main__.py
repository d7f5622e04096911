"""python -m rtl [--config C] [--weights FILE] [--weights-format F] [--lanes P[,P1,...]] [--logic-lanes L] [--no-c] [--serial-output] [--no-head] [--no-h] [--head-multiplier dsp|lut] [--head-lanes K] [--axis [--axis-width N]] [--ecp5-dsp [--dsp-input-registers]] --out FILE.v

Exports the LSTM cell (or, for a stacked model, one cell per layer chained as a pipeline), with
the quantized weights in its memories, and the model's classifier head with its argmax when it
has one, as plain Verilog; with --axis behind AXI4-Stream ports (docs/axis.md)."""
import sys

from model.cli import (ArgumentParser, add_weights_options, atomic_write, check_target, load_model,
                       note_default_lanes, run_command)

from .axis import AXIS_WIDTHS, AxisWrapper
from .geometry import RTLError
from .stack import StackedLSTM, build_design
from .top import LSTMCell


def export_verilog(dut, name: str = "lstm_cell", *, ecp5: bool = False,
                   dsp_input_registers: bool = False) -> str:
    """Plain Verilog of ``dut``; ``ecp5``: ECP5 primitives (:class:`rtl.pipeline.ECP5`):
    ``MULT18X18D`` and ``DP16KD`` with their output registers, ``TRELLIS_FF`` enable copies (for
    synthesis; a simulator needs models of them); ``dsp_input_registers`` (with ``ecp5``): the
    activation units' and the cell update's multipliers also take their operands through their
    input registers (same integers, same cycles)."""
    from amaranth.back import verilog

    from .pipeline import ECP5
    if dsp_input_registers and not ecp5:
        raise RTLError("--dsp-input-registers goes with --ecp5-dsp")
    platform = ECP5(dsp_input_registers=dsp_input_registers) if ecp5 else None
    return verilog.convert(dut, name=name, emit_src=False, platform=platform)


def build_parser() -> ArgumentParser:
    ap = ArgumentParser(prog="python -m rtl", description=__doc__.splitlines()[2])
    ap.add_argument("--config", metavar="C", help="TOML config (default: configs/default.toml)")
    add_weights_options(ap)
    ap.add_argument("--lanes", metavar="P", help="MAC lanes: P, or P0,P1,... one per layer of a "
                    "stacked model (default: the config's [rtl] lanes)")
    ap.add_argument("--logic-lanes", type=int, default=0, metavar="L",
                    help="of the P lanes, the last L multiply in logic instead of a multiplier "
                         "block (one-layer models; for more lanes than the chip has multipliers)")
    ap.add_argument("--no-c", action="store_true", help="leave c_t off the output stream")
    ap.add_argument("--serial-output", action="store_true",
                    help="word-serial h stream: one unit per transfer (h, c, first, last)")
    ap.add_argument("--no-head", action="store_true",
                    help="leave the model's classifier head out (the design ends at h)")
    ap.add_argument("--no-h", action="store_true",
                    help="leave the h stream out: only y (logits and label) leaves the design")
    ap.add_argument("--head-multiplier", choices=("dsp", "lut"), default="dsp",
                    help="the head's product in a DSP block (default) or in logic")
    ap.add_argument("--head-lanes", type=int, default=1, metavar="K",
                    help="classes the head works on at once, 1 (default: one MAC, C*H cycles) to "
                         "C (C MACs, H cycles); K multipliers")
    ap.add_argument("--axis", action="store_true",
                    help="wrap the design in AXI4-Stream ports (aclk, aresetn, s_axis_x_*, "
                         "m_axis_h_*, m_axis_y_*, s_axis_load_* with tdest; docs/axis.md)")
    ap.add_argument("--axis-width", type=int, default=32, metavar="N",
                    help="tdata bits of every AXI4-Stream port with --axis: a power of two from "
                         "8 to 1024 (default 32)")
    ap.add_argument("--ecp5-dsp", action="store_true",
                    help="ECP5 primitives for synthesis: products as MULT18X18D and weight "
                         "memories as DP16KD, both with their output register, copies of wide "
                         "enables as TRELLIS_FF (same integers and cycles; simulators need "
                         "models of the primitives)")
    ap.add_argument("--dsp-input-registers", action="store_true",
                    help="with --ecp5-dsp: the activation units' and the cell update's "
                         "multipliers take their operands through the MULT18X18D's input "
                         "registers, in place of the fabric registers before them (same "
                         "integers and cycles; the MAC lanes' always do)")
    ap.add_argument("--single-ports", action="store_true",
                    help="a stacked model behind the single cell's port names, its load ports "
                         "never ready: for sim/verilog/tb_vectors.v and python -m model vectors "
                         "(run with +noload; the layers keep the exported weights)")
    ap.add_argument("--name", default="lstm_cell", help="Verilog module name (default lstm_cell)")
    ap.add_argument("--out", metavar="FILE.v", required=True, help="Verilog file to write")
    return ap


def cmd_export(args) -> int:
    out = check_target(args.out, "--out")
    if args.dsp_input_registers and not args.ecp5_dsp:
        raise RTLError("--dsp-input-registers goes with --ecp5-dsp")
    if args.axis_width != 32 and not args.axis:
        raise RTLError("--axis-width goes with --axis")
    if args.axis_width not in AXIS_WIDTHS:
        raise RTLError(f"--axis-width must be a power of two from 8 to 1024, not {args.axis_width}")
    config, stack = load_model(args)
    note_default_lanes(config, stack, args.lanes)
    dut = build_design(config, stack, lanes=args.lanes, output_c=not args.no_c,
                       serial_output=args.serial_output, head=False if args.no_head else None,
                       output_h=not args.no_h, head_multiplier=args.head_multiplier,
                       head_lanes=args.head_lanes, logic_lanes=args.logic_lanes)
    core = getattr(dut, "core", dut)
    top = dut
    if args.axis:
        if args.single_ports:
            raise RTLError("--axis and --single-ports are two different faces: choose one")
        top = AxisWrapper(dut, width=args.axis_width)
    elif not isinstance(core, LSTMCell) and args.single_ports:
        from .stack import StackTop
        top = StackTop(dut)
    text = export_verilog(top, args.name, ecp5=args.ecp5_dsp,
                          dsp_input_registers=args.dsp_input_registers)
    atomic_write(out, lambda f: f.write(text), mode="w")
    if args.axis:
        print(f"AXI4-Stream, tdata {top.width} bits: a step is {top.x_layout.n_beats} beat(s) of "
              f"s_axis_x; " + ", ".join(f"m_axis_{n}: {o.n_beats} beat(s) per record"
                                       for n, o in top.output_layouts.items())
              + "; s_axis_load tdest " + ", ".join(f"{k} = {n}" for k, n in enumerate(top.load_ports)))
    print(f"wrote {out}: module {args.name}, {describe(dut)}"
          + ("; single-cell ports, loads never ready (tb_vectors.v: +noload)"
             if top is not dut and not args.axis else ""))
    return 0


def describe(dut) -> str:
    """Sizes, cycles and (with a head) the head's classes and latency, in one line."""
    head = getattr(dut, "head", None)
    core = dut.core if head is not None else dut
    if isinstance(core, LSTMCell):
        g = core.geometry
        logic = f" ({g.logic_lanes} in logic)" if g.logic_lanes else ""
        text = (f"X={g.n_inputs} H={g.n_hidden} P={g.lanes}{logic}, "
                f"{core.cycles_per_step} cycles/step "
                f"(MAC bound {g.issue_cycles}, efficiency {core.mac_efficiency:.3f})")
    else:
        layers = "; ".join(f"layer {k}: X={c.geometry.n_inputs} H={c.geometry.n_hidden} "
                           f"P={c.geometry.lanes}, {c.cycles_per_step} cycles/step"
                           for k, c in enumerate(core.layers))
        text = (f"{core.n_layers} layers ({layers}); {core.cycles_per_step} cycles/step (the "
                f"slowest layer), latency {core.latency} cycles (the sum), MAC efficiency "
                f"{core.mac_efficiency:.3f}")
    if head is None:
        return text + "; no classifier head"
    lanes = f", {head.lanes} classes at once" if head.lanes > 1 else ""
    return (text + f"; classifier head C={head.n_classes}{lanes} ({head.logit_bits}-bit logits), y "
            f"{head.latency} cycles after the last h{'' if dut.output_h else ', no h stream'}")


def main(argv=None) -> int:
    return run_command(cmd_export, build_parser().parse_args(argv), expected=(RTLError,))


if __name__ == "__main__":
    sys.exit(main())
