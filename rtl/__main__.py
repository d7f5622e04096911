"""python -m rtl [--config C] [--weights W.npz] [--lanes P] [--no-c] --out FILE.v

Exports the LSTM cell, with the quantized weights in its memories, as plain Verilog."""
import sys

from model.cli import ArgumentParser, atomic_write, check_target, load_model, run_command
from model.weights import quantize_weights

from .geometry import RTLError
from .top import LSTMCell


def export_verilog(dut: LSTMCell, name: str = "lstm_cell") -> str:
    from amaranth.back import verilog
    return verilog.convert(dut, name=name, emit_src=False)


def build_parser() -> ArgumentParser:
    ap = ArgumentParser(prog="python -m rtl", description=__doc__.splitlines()[2])
    ap.add_argument("--config", metavar="C", help="TOML config (default: configs/default.toml)")
    ap.add_argument("--weights", metavar="W.npz", help="weights (default: the shipped digits model)")
    ap.add_argument("--lanes", type=int, metavar="P", help="MAC lanes (default: the config's [rtl] lanes)")
    ap.add_argument("--no-c", action="store_true", help="leave c_t off the output stream")
    ap.add_argument("--name", default="lstm_cell", help="Verilog module name (default lstm_cell)")
    ap.add_argument("--out", metavar="FILE.v", required=True, help="Verilog file to write")
    return ap


def cmd_export(args) -> int:
    out = check_target(args.out, "--out")
    config, weights = load_model(args, "python -m rtl")
    dut = LSTMCell(config, quantize_weights(weights, config), lanes=args.lanes,
                   output_c=not args.no_c)
    text = export_verilog(dut, args.name)
    atomic_write(out, lambda f: f.write(text), mode="w")
    g = dut.geometry
    print(f"wrote {out}: module {args.name}, X={g.n_inputs} H={g.n_hidden} P={g.lanes}, "
          f"{dut.cycles_per_step} cycles/step (MAC bound {g.issue_cycles}, "
          f"efficiency {dut.mac_efficiency:.3f})")
    return 0


def main(argv=None) -> int:
    return run_command(cmd_export, build_parser().parse_args(argv), expected=(RTLError,))


if __name__ == "__main__":
    sys.exit(main())
