"""python -m rtl [--config C] [--weights W.npz] [--lanes P] [--no-c] --out FILE.v

Exports the LSTM cell, with the quantized weights in its memories, as plain Verilog."""
import argparse
import os
import sys
import tempfile
from pathlib import Path

from model.config import load_config
from model.fixed import FixedPointError
from model.shipped import DEFAULT_WEIGHTS
from model.weights import load_weights, quantize_weights

from .geometry import RTLError
from .top import LSTMCell


def export_verilog(dut: LSTMCell, name: str = "lstm_cell") -> str:
    from amaranth.back import verilog
    return verilog.convert(dut, name=name, emit_src=False)


def build(config_path=None, weights_path=None, lanes=None, output_c=True) -> LSTMCell:
    config = load_config(config_path)
    weights = load_weights(weights_path if weights_path is not None else DEFAULT_WEIGHTS)
    return LSTMCell(config, quantize_weights(weights, config), lanes=lanes, output_c=output_c)


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rtl", description=__doc__.splitlines()[2])
    ap.add_argument("--config", help="TOML config (default: configs/default.toml)")
    ap.add_argument("--weights", help="weights .npz (default: the shipped digits model)")
    ap.add_argument("--lanes", type=int, help="MAC lanes P (default: the config's [rtl] lanes)")
    ap.add_argument("--no-c", action="store_true", help="leave c_t off the output stream")
    ap.add_argument("--name", default="lstm_cell", help="Verilog module name (default lstm_cell)")
    ap.add_argument("--out", required=True, help="Verilog file to write")
    args = ap.parse_args(argv)
    try:
        dut = build(args.config, args.weights, args.lanes, not args.no_c)
        text = export_verilog(dut, args.name)
        _write_atomic(Path(args.out), text)
    except (FixedPointError, RTLError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    g = dut.geometry
    print(f"wrote {args.out}: module {args.name}, X={g.n_inputs} H={g.n_hidden} P={g.lanes}, "
          f"{dut.cycles_per_step} cycles/step (MAC bound {g.issue_cycles}, "
          f"efficiency {dut.mac_efficiency:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
