"""The README stays true: its headline figures agree with the recorded runs, every command it
shows at least parses, every make target it names is in `make help` (and every target there
exists), and every link in the README and docs/ points at a file of the repository.

When a benchmark is re-recorded (bench/results/, data/*.json), the figure test below names each
README figure that no longer agrees, with the value the record gives: edit the number in the
README's "Headline figures" table. A new row in that table needs an entry in FIGURES (where its
value comes from)."""
from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
RESULTS = REPO / "bench" / "results"


# ---- the headline figures against the records ---------------------------------------------

@cache
def record(name: str) -> dict:
    return json.loads((REPO / name).read_text())


@cache
def regression(simulator: str) -> dict:
    lines = [json.loads(line) for line in
             (RESULTS / f"regress-{simulator}.jsonl").read_text().splitlines() if line.strip()]
    return {"configurations": len(lines), **{k: sum(line[k] for line in lines)
                                            for k in ("steps", "compared", "compared_c", "mismatches")}}


@cache
def shipped_report() -> dict:
    """`python -m model report --json` on the shipped model (about a second)."""
    run = subprocess.run([sys.executable, "-m", "model", "report", "--json"], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def pct(fraction: float) -> str:
    return f"{100 * fraction:.2f} %"


def thousands(n: float) -> str:
    return f"{round(n):,}"


def _train():
    r = record("data/digits_lstm.json")
    return [("data/digits_lstm.json heldout_accuracy_float", pct(r["heldout_accuracy_float"])),
            ("data/digits_lstm.json heldout_accuracy_fixed", pct(r["heldout_accuracy_fixed"])),
            ("data/digits_lstm.json heldout_fixed_float_disagreements",
             f"{r['heldout_fixed_float_disagreements']} predictions differ")]


def _h_error():
    r = shipped_report()
    return [("python -m model report --json: h_max_abs_err", f"{r['h_max_abs_err']:.1e}"),
            ("python -m model report --json: sqnr_db", f"{r['sqnr_db']:.1f} dB")]


def _rtl_vs_golden():
    """The whole held-out set has B x T steps of H codes; tests/test_sim.py runs it on Verilator."""
    import numpy as np
    x = np.load(REPO / "data" / "digits_heldout.npz")["x"]
    hidden = np.load(REPO / "data" / "digits_lstm.npz")["weight_hh"].shape[1]
    codes = thousands(x.shape[0] * x.shape[1] * hidden)
    return [("data/: sequences x steps x H", f"{codes} h and {codes} c codes"),
            ("the only pass", "0 mismatches")]


def _regression():
    r = regression("verilator")
    return [("bench/results/regress-verilator.jsonl: lines", f"{r['configurations']} configurations"),
            ("bench/results/regress-verilator.jsonl: steps", f"{thousands(r['steps'])} steps"),
            ("bench/results/regress-verilator.jsonl: mismatches", f"{r['mismatches']} mismatches")]


def _head_on_chip():
    """B x C logits and B labels of the held-out set (tests/test_sim.py and python -m sim
    compare them); the design's labels give the fixed-point accuracy of the recorded model."""
    import numpy as np
    B = np.load(REPO / "data" / "digits_heldout.npz")["x"].shape[0]
    C = np.load(REPO / "data" / "digits_lstm.npz")["head_weight"].shape[0]
    acc = record("data/digits_lstm.json")["heldout_accuracy_fixed"]
    return [("data/: sequences x classes", f"{thousands(B * C)} logits and {thousands(B)} labels"),
            ("the only pass", "0 mismatches"),
            ("data/digits_lstm.json heldout_accuracy_fixed", f"design's labels {pct(acc)}")]


def _mapped_netlist():
    """make sim-netlist (bench.netlist) on the whole held-out set: the ECP5 cells Yosys maps,
    weights from the netlist's initial contents, then loaded through the ports."""
    r = record("bench/results/netlist.json")
    runs = {run["load"]: run for run in r["runs"]}
    assert r["passed"] and set(runs) == {False, True}
    for run in runs.values():
        assert run["passed"] and run["compared"] == run["compared_c"] > 0
        assert run["mismatches"] == run["logits_mismatches"] == run["labels_mismatches"] == 0
    codes = {thousands(run["compared"]) for run in runs.values()}
    assert len(codes) == 1
    cells = r["cells"]
    return [("bench/results/netlist.json runs: codes compared, both weight paths",
             f"{codes.pop()} h and c codes each, weights from the initial contents and loaded "
             f"through the ports: 0 mismatches"),
            ("bench/results/netlist.json cells",
             f"{thousands(cells['TRELLIS_FF'])} TRELLIS_FF, {thousands(cells['LUT4'])} LUT4, "
             f"{cells['MULT18X18D']} MULT18X18D, {cells['DP16KD']} DP16KD")]


def _cycles():
    r = record("bench/results/rtl.json")
    return [("bench/results/rtl.json cycles_per_step / mac_efficiency",
             f"{r['cycles_per_step']} / {r['mac_efficiency']:.3f}")]


def _ecp5_area():
    r = record("bench/results/synth-ecp5-nohead.json")["resources"]
    return [("bench/results/synth-ecp5-nohead.json resources lut4/ff/dsp/bram",
             f"{r['lut4']} / {r['ff']} / {r['dsp']} / {r['bram']}")]


def _ecp5_speed():
    r = record("bench/results/synth-ecp5-nohead.json")
    assert not r["design"].get("head_classes")
    return [("bench/results/synth-ecp5-nohead.json fmax_mhz / steps_per_s",
             f"{r['fmax_mhz']:.1f} MHz / {thousands(round(r['steps_per_s'], -3))}")]


def _ecp5_head():
    r = record("bench/results/synth-ecp5.json")
    assert r["design"]["head_classes"]
    res = r["resources"]
    return [("bench/results/synth-ecp5.json resources lut4/ff/dsp/bram, fmax_mhz",
             f"{res['lut4']} / {res['ff']} / {res['dsp']} / {res['bram']} / {r['fmax_mhz']:.1f} MHz")]


#: The lowest latency to a label measured (the notebook network on the 85F)
BEST = "bench/results/scale-dspin.json"


def _scale_row(device: str, lanes: int) -> dict:
    rows = [r for r in record("bench/results/scale.json")["rows"]
            if r["device"] == device and r["lanes"] == lanes]
    assert len(rows) == 1 and rows[0].get("fits"), f"no measured {device} P={lanes} row"
    return rows[0]


def _notebook_85f():
    r = _scale_row("85k", 64)
    best_record = record(BEST)
    best = best_record["rows"][0]
    assert (best["lanes"], best["logic_lanes"], best["head_lanes"]) == (156, 7, 1)
    assert best_record["dsp_input_registers"]
    return [("bench/results/scale.json 85k P=64: lut/ff/dsp/bram/fmax, latency, images/s",
             f"{r['lut']} / {r['ff']} / {r['dsp']} / {r['bram']} / {r['fmax_mhz']:.1f} MHz / "
             f"{r['latency_us']:.1f} us to the label, {thousands(r['images_per_s'])} images/s"),
            (f"{BEST} 85k P=156 L=7: fmax, latency",
             f"`--logic-lanes {best['logic_lanes']} --dsp-input-registers`) {best['fmax_mhz']:.1f} MHz "
             f"and {best['latency_us']:.1f} us to the label")]


def _golden_speed():
    r = record("bench/results/golden.json")
    assert r["bit_exact"]
    return [("bench/results/golden.json golden_vs_float_time_ratio",
             f"{r['golden_vs_float_time_ratio']:.2f}x, bit-exact")]


@cache
def formal_run_count() -> int:
    from formal.__main__ import plan
    from formal.configs import FAST
    jobs = plan(list(FAST), False)
    for _, dut in jobs:     # built to plan the runs, never elaborated here
        dut._MustUse__silence = True
    return len(jobs)


def _formal_runs():
    pytest.importorskip("amaranth")
    return [("formal.__main__.plan(FAST): runs of make formal", f"{formal_run_count()},")]


#: README headline row (its first cell) -> what its value cell must contain, and where from.
FIGURES = {
    "held-out accuracy: float64 / fixed point": _train,
    "h error against float: max abs / SQNR": _h_error,
    "RTL against golden, whole held-out set": _rtl_vs_golden,
    "random regression (odd sizes, formats, 1-3 layers, loads, resets)": _regression,
    "mapped ECP5 netlist (Yosys's `synth_ecp5` cells) against golden, whole held-out set":
        _mapped_netlist,
    "cycles per step / MAC efficiency": _cycles,
    "classifier head on chip, whole held-out set": _head_on_chip,
    "ECP5 LFE5U-25F-6, the cell without the head: LUT4 / flip-flops / DSP / block RAM": _ecp5_area,
    "ECP5 Fmax / steps per second, the cell without the head": _ecp5_speed,
    "ECP5 LFE5U-25F-6, the default design with its head: LUT4 / flip-flops / DSP / block RAM / Fmax":
        _ecp5_head,
    "ECP5 LFE5U-85F-6, the notebook network (X=28, H=128, P=64) with its head: LUT4 / flip-flops / "
    "DSP / block RAM / Fmax / per image": _notebook_85f,
    "golden model time / plain float64 numpy LSTM (B=256, T=28, X=28, H=128)": _golden_speed,
    "formal runs in `make formal` (proofs, mutants that must fail, covers)": _formal_runs,
}


def headline_rows(text: str) -> dict[str, str]:
    """First cell -> value cell of the table under '## Headline figures'."""
    section = text.split("## Headline figures", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) == 3 and cells[0] not in ("figure", "---"):
            rows[cells[0]] = cells[1]
    return rows


def figure_disagreements(text: str) -> list[str]:
    rows = headline_rows(text)
    problems = [f"README headline row {label!r} has no source in FIGURES"
                for label in rows if label not in FIGURES]
    problems += [f"FIGURES names {label!r}, which the README's headline table lacks"
                 for label in FIGURES if label not in rows]
    for label, source in FIGURES.items():
        if label not in rows:
            continue
        for where, expected in source():
            if expected not in rows[label]:
                problems.append(f"README figure {label!r} says {rows[label]!r}; "
                                f"{where} gives {expected!r}")
    return problems


def test_headline_figures_agree_with_the_records():
    problems = figure_disagreements(README.read_text())
    assert not problems, "\n".join(problems)


def test_a_changed_record_is_named(monkeypatch):
    """The check fails, naming the figure and the record's value, when a number drifts."""
    text = README.read_text()
    fmax = f"{record('bench/results/synth-ecp5-nohead.json')['fmax_mhz']:.1f} MHz"
    assert fmax in text
    problems = figure_disagreements(text.replace(fmax, "150.0 MHz"))
    assert len(problems) == 1
    assert "'ECP5 Fmax / steps per second, the cell without the head'" in problems[0] and fmax in problems[0]
    extra = text.replace("| cycles per step / MAC efficiency |",
                         "| a new figure | 1 | `make x` |\n| cycles per step / MAC efficiency |")
    assert figure_disagreements(extra) == ["README headline row 'a new figure' has no source in FIGURES"]


# ---- the detailed tables in docs/ against the same records ----------------------------------

def doc_figures():
    """(page, text the page must hold, where the value comes from)."""
    synth = record("bench/results/synth-ecp5-nohead.json")
    res, rtl, golden = synth["resources"], record("bench/results/rtl.json"), record("bench/results/golden.json")
    yield ("docs/speed.md", f"| LUT4 (Yosys) | **{res['lut4']}**", "synth-ecp5-nohead.json resources.lut4")
    yield ("docs/speed.md", f"| flip-flops | **{res['ff']}**", "synth-ecp5-nohead.json resources.ff")
    yield ("docs/speed.md", f"| Fmax (`clk`) | **{synth['fmax_mhz']:.1f} MHz**", "synth-ecp5-nohead.json fmax_mhz")
    for d in rtl["designs"]:
        yield ("docs/speed.md", f"| {d['X']} | {d['H']} | {d['lanes']} | {thousands(d['cycles_per_step'])} "
               f"| {thousands(d['mac_bound_cycles_per_step'])} |", f"rtl.json design X={d['X']} P={d['lanes']}")
    for shape in golden["shapes"]:
        yield ("docs/speed.md", f"**{shape['golden_vs_float_time_ratio']:.2f}x**", f"golden.json {shape['name']}")
    serial = record("bench/results/synth-ecp5-serial.json")
    yield ("docs/speed.md", f"{serial['resources']['lut4']} LUT4, **{serial['resources']['ff']} flip-flops, "
           f"{res['ff'] - serial['resources']['ff']} fewer** than the cell alone, for "
           f"{serial['resources']['lut4'] - res['lut4']} more LUT4s", "synth-ecp5-serial.json resources")
    yield ("docs/speed.md", f"per step ({serial['cycles_per_step']}): **{serial['fmax_mhz']:.1f} MHz**",
           "synth-ecp5-serial.json cycles_per_step, fmax_mhz")
    stack = record("bench/results/synth-ecp5-stack2.json")
    yield ("docs/speed.md", f"{thousands(stack['resources']['lut4'])} LUT4, "
           f"{thousands(stack['resources']['ff'])} flip-flops, **{stack['resources']['dsp']} DSP**",
           "synth-ecp5-stack2.json resources")
    yield ("docs/speed.md", f"**{stack['fmax_mhz']:.1f} MHz**, {thousands(stack['cycles_per_step'])} "
           "cycles per step", "synth-ecp5-stack2.json fmax_mhz, cycles_per_step")
    for row in record("bench/results/scale.json")["rows"]:
        if row["device"] == "45k" and row["lanes"] == 16:
            yield ("docs/speed.md",
                   f"at **{row['fmax_mhz']:.1f} MHz**: {row['cell_us']:.1f} us per image for the cell "
                   f"({thousands(row['images_per_s'])} images per second), {row['latency_us']:.1f} us "
                   "to the label", "scale.json 45k P=16")
        if (row["device"], row["lanes"]) in {("85k", 16), ("85k", 32), ("85k", 78), ("85k", 128),
                                             ("85k", 149), ("45k", 32), ("45k", 52)}:
            yield ("docs/speed.md",
                   f"{thousands(row['lut'])} LUT4, {thousands(row['ff'])} flip-flops, {row['dsp']} "
                   f"MULT18X18D, {row['bram']} DP16KD, **{row['fmax_mhz']:.1f} MHz**: "
                   f"{thousands(row['cycles_per_step'])} cycles per step, {row['cell_us']:.1f} us per "
                   f"image for the cell ({thousands(row['images_per_s'])} images per second), "
                   f"{row['latency_us']:.1f} us to the label", f"scale.json 85k P={row['lanes']}")
    wide = record("bench/results/synth-ecp5-wide.json")
    assert (wide["design"]["lanes"], wide["design"]["logic_lanes"]) == (48, 30)
    yield ("docs/speed.md",
           f"{thousands(wide['resources']['lut4'])} LUT4, {thousands(wide['resources']['ff'])} "
           f"flip-flops, **{wide['resources']['dsp']}\nMULT18X18D**", "synth-ecp5-wide.json resources")
    yield ("docs/speed.md", f"{wide['resources']['bram']}\nDP16KD, **{wide['fmax_mhz']:.1f} MHz**, "
           f"{wide['cycles_per_step']} cycles per step", "synth-ecp5-wide.json fmax_mhz, cycles_per_step")
    row = record("bench/results/scale-head10lut.json")["rows"][0]
    assert (row["lanes"], row["head_lanes"], row["head_multiplier"]) == (149, 10, "lut")
    yield ("docs/speed.md",
           f"{thousands(row['lut'])} LUT4, {thousands(row['ff'])} flip-flops, {row['dsp']} "
           f"MULT18X18D, {row['bram']} DP16KD, **{row['fmax_mhz']:.1f} MHz**: "
           f"{thousands(row['cycles_per_step'])}\ncycles per step, {row['cell_us']:.1f} us per "
           f"image for the cell ({thousands(row['images_per_s'])} images per second), "
           f"{row['latency_us']:.1f} us to the\nlabel", "scale-head10lut.json 85k P=149")
    row = record(BEST)["rows"][0]
    assert (row["lanes"], row["logic_lanes"], row["head_lanes"]) == (156, 7, 1)
    yield ("docs/speed.md",
           f"{thousands(row['lut'])} LUT4, {thousands(row['ff'])} flip-flops, {row['dsp']}\n"
           f"MULT18X18D, {row['bram']} DP16KD, **{row['fmax_mhz']:.1f} MHz**: "
           f"{thousands(row['cycles_per_step'])} cycles per step, {row['cell_us']:.1f} us per "
           f"image for the cell\n({thousands(row['images_per_s'])} images per second), "
           f"{row['latency_us']:.1f} us to the label", f"{BEST} 85k P=156 L=7")
    yield ("docs/architecture.md", f"logic, {row['fmax_mhz']:.1f} MHz and {row['latency_us']:.1f} us "
           "to the label, the lowest latency measured", f"{BEST} 85k P=156 L=7")
    sim = record("bench/results/sim.json")
    yield ("docs/speed.md", f"**{thousands(sim['checked_cycles_per_second'])}** ({sim['cpu_seconds']:.2f} s of CPU",
           "sim.json checked_cycles_per_second, cpu_seconds")
    yield ("docs/speed.md", f"| {thousands(sim['checked_cycles_per_wall_second'])} |",
           "sim.json checked_cycles_per_wall_second")
    yield ("docs/speed.md", f"{thousands(sim['cocotb']['checked_cycles_per_second'])} cycles/s: batch mode "
           f"is {sim['speedup_over_cocotb']:.1f}x", "sim.json cocotb, speedup_over_cocotb")
    for sim in ("verilator", "icarus"):
        r = regression(sim)
        yield ("docs/verification.md", f"| {r['configurations']} (", f"regress-{sim}.jsonl lines")
        yield ("docs/verification.md", f"| {thousands(r['steps'])} (", f"regress-{sim}.jsonl steps")
        yield ("docs/verification.md", f"| {thousands(r['compared'])} + {thousands(r['compared_c'])} |",
               f"regress-{sim}.jsonl compared")


def _words(text: str) -> str:
    """Text with every run of whitespace as one space: a figure's sentence matches however
    the page wraps it."""
    return " ".join(text.split())


def test_docs_tables_agree_with_the_records():
    missing = [f"{page} lacks {text!r} ({where})" for page, text, where in doc_figures()
               if _words(text) not in _words((REPO / page).read_text())]
    assert not missing, "\n".join(missing)


# ---- every command the README shows parses --------------------------------------------------

def readme_commands(text: str, code_blocks_only: bool = False) -> list[list[str]]:
    """`python -m ...` commands of the README's code blocks (and inline code, where a command
    may be named without its required options), as argument lists."""
    found = []
    for line in text.splitlines():
        if code_blocks_only and not line.startswith("    "):
            continue
        # words up to the first that carries prose punctuation (a comment's "...: does x")
        for match in re.finditer(r"python -m [a-z][\w.]*(?: [^\s`#;:,()]+)*", line):
            found.append(shlex.split(match.group(0))[2:])
    return found


def _parser(module: str):
    """The argparse parser of a module's command line, where it has one to build."""
    if module == "model":
        from model.__main__ import build_parser
    elif module == "rtl":
        pytest.importorskip("amaranth")
        from rtl.__main__ import build_parser
    elif module == "sim":
        pytest.importorskip("cocotb")
        from sim.__main__ import build_parser
    elif module == "bench.synth":
        from bench.synth import build_parser
    elif module == "formal":
        pytest.importorskip("amaranth")
        from formal.__main__ import build_parser
    else:
        return None
    return build_parser()


def test_readme_shows_commands():
    modules = {words[0] for words in readme_commands(README.read_text())}
    assert {"model", "rtl", "sim", "bench", "bench.synth", "formal"} <= modules, modules


@pytest.mark.parametrize("words", readme_commands(README.read_text(), code_blocks_only=True), ids=" ".join)
def test_readme_command_parses(words):
    parser = _parser(words[0])
    if parser is None:
        return          # python -m bench: its --help is run below
    try:
        parser.parse_args(words[1:])
    except SystemExit as e:
        pytest.fail(f"python -m {' '.join(words)}: the parser refuses it (status {e.code})")


def _help_commands():
    subs = {("model", w[1]) if w[0] == "model" else
            ("bench", w[1]) if w[0] == "bench" and len(w) > 1 and not w[1].startswith("-") else
            (w[0],) for w in readme_commands(README.read_text())}
    return sorted(subs | {("model.train",)})


@pytest.mark.parametrize("command", _help_commands(), ids=" ".join)
def test_readme_module_help(command):
    run = subprocess.run([sys.executable, "-m", *command, "--help"], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() and "Traceback" not in run.stderr


def make_help_targets() -> list[str]:
    run = subprocess.run(["make", "-s", "help"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    return [m.group(1) for m in re.finditer(r"^make (\S+)", run.stdout, re.M)]


def test_readme_make_targets_are_in_make_help():
    listed = set(make_help_targets())
    named = set(re.findall(r"(?:`|^ {4})make ([a-z][a-z-]*)", README.read_text(), re.M)) - {"help"}
    assert named <= listed, sorted(named - listed)


def test_every_target_in_make_help_exists():
    """`make -n` (print, do not run) each listed target: a name without a rule fails."""
    for target in make_help_targets():
        run = subprocess.run(["make", "-n", target, "VENV=/nonexistent"], cwd=REPO,
                             capture_output=True, text=True, timeout=60)
        assert run.returncode == 0 and "No rule" not in run.stderr, (target, run.stderr)


# ---- links ---------------------------------------------------------------------------------

def markdown_files():
    yield README
    yield REPO / "CHANGELOG.md"
    yield REPO / "bench" / "RESULTS.md"
    yield from sorted((REPO / "docs").glob("*.md"))


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("page", list(markdown_files()), ids=lambda p: str(p.relative_to(REPO)))
def test_links_point_into_the_repository(page):
    bad = []
    for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
        if re.match(r"[a-z]+://", target):
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            bad.append(f"{target}: no such file")
        elif anchor and file.suffix == ".md":
            anchors = {_anchor(h) for h in re.findall(r"^#+ (.*)$", file.read_text(), re.M)}
            if anchor not in anchors:
                bad.append(f"{target}: no heading with that anchor")
    assert not bad, bad


# ---- make test says what it leaves out -----------------------------------------------------

@pytest.mark.parametrize("mode", [["-p", "no:xdist", "--collect-only", "-q"], ["-n", "2"]],
                         ids=["serial", "xdist"])
def test_make_test_names_the_slow_tests_it_leaves_out(mode):
    """`make test` (serial) and `make test JOBS=2` (xdist, whose workers collect) both end with
    a line naming the deselected slow tests; their count is pytest's own deselected count."""
    run = subprocess.run([sys.executable, "-m", "pytest", *mode, "tests/test_sim_regress.py"],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode in (0, 5), run.stdout + run.stderr       # 5: every test deselected
    line = next(line for line in run.stdout.splitlines() if "slow tests not run" in line)
    assert "make regress" in line and "tests/test_sim_regress.py" in line
    slow = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:xdist", "--collect-only", "-q",
                           "-m", "slow", "tests/test_sim_regress.py"], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert int(line.split()[0]) == slow.stdout.count("::") > 0
