"""python -m deploy build|sim|run ...

  build  --board B [--weights W] [--config C] [--lanes P] [--logic-lanes L] [--clock MHZ] [--out DIR] [--json] [--program]
         bitstream for an FPGA board (YoWASP Yosys/nextpnr from PyPI) and a JSON report
  sim    --board B [--weights W] ...   the board top in Verilator, its UART on a TCP socket
  run    --port PORT [--weights W] [--inputs X] [--labels Y] [--limit N] [--json]
         the host driver: load, run, compare with the golden model (PORT: /dev/ttyUSB0,
         socket://host:port, or sim)
"""
import importlib
import sys

from model.cli import fail

# subcommand -> module providing main(argv) -> int; imported only when asked for, so each
# subcommand's dependencies (Amaranth, pyserial, Verilator) are needed only by that subcommand
SUBCOMMANDS = {"build": "deploy.build", "sim": "deploy.simboard", "run": "deploy.host"}


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        return fail(f"unknown subcommand {name!r}: choose one of {', '.join(SUBCOMMANDS)} "
                    "(see: python -m deploy --help)")
    try:
        module = importlib.import_module(SUBCOMMANDS[name])
    except ModuleNotFoundError as e:
        if e.name == SUBCOMMANDS[name]:
            return fail(f"python -m deploy {name} is not available in this checkout "
                        f"({SUBCOMMANDS[name]} is missing)")
        return fail(f"python -m deploy {name} needs the Python package {e.name!r}: "
                    "pip install -e '.[deploy]'")
    return module.main(rest)


if __name__ == "__main__":
    sys.exit(main())
