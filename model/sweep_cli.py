"""``python -m model sweep``: the precision sweep's command line, text and table output.

    python -m model sweep [--config C] [--weights W] [--inputs X] [--labels Y]
                          [--accuracy-budget PP] [--h-error-budget E] [--out NARROW.toml]
                          [--table FILE.csv|md] [--plots DIR] [--json] [--sensitivity]

The search is :func:`model.sweep.search`, the cost model :mod:`model.costs`, the sensitivity
:mod:`model.sensitivity`. Outputs are checked before any work and written atomically.
"""
from __future__ import annotations

import csv
import json
import math
import shlex
import sys
from pathlib import Path

from .cli import UsageError, atomic_write, check_target, load_operands
from .config import TENSORS, dump_config
from .costs import OBJECTIVE
from .sweep import Budget, Progress, formats_text, search, single_threaded_blas

__all__ = ["add_arguments", "cmd_sweep", "table_rows", "format_sweep", "write_table"]

COLUMNS = ("index", "move", "meets", "accepted", "accuracy_fixed", "h_max_abs_err", "sqnr_db",
           "weight_memory_bits", "dsp_ecp5", "dsp_ice40", "bram_ecp5", "rom_bits", "datapath_bits",
           "formats")


def add_arguments(p) -> None:
    """The sweep's own options (``--config``, ``--weights``, ``--inputs`` come with the
    subcommand)."""
    p.add_argument("--labels", metavar="Y.npy", help="class labels (B,) for the accuracy budget")
    p.add_argument("--accuracy-budget", metavar="PP", type=float, default=0.2,
                   help="fixed accuracy >= float accuracy - PP percentage points (default 0.2)")
    p.add_argument("--h-error-budget", metavar="E", type=float,
                   help="also require h max abs error <= E")
    p.add_argument("--margin", metavar="BITS", type=int, default=1,
                   help="integer bits above the range analysis for x, z, c (default 1)")
    p.add_argument("--trim-int", action="store_true",
                   help="let the search drop integer bits below the range analysis (saturating)")
    p.add_argument("--screen", metavar="N", type=int,
                   help="screen candidates on N sequences, confirm the winner on all "
                        "(default: automatic for big models; 0: always the whole set)")
    p.add_argument("--out", metavar="NARROW.toml", help="write the winner's config")
    p.add_argument("--table", metavar="FILE", help="every candidate tried, as .csv or .md")
    p.add_argument("--plots", metavar="DIR", help="Pareto (and sensitivity) plots into DIR")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.add_argument("--sensitivity", action="store_true",
                   help="per-tensor sensitivity (-4..+8 fraction bits) and the h error's sources")


def _table_kind(path: Path) -> str:
    kind = path.suffix.lower().lstrip(".")
    if kind not in ("csv", "md"):
        raise UsageError(f"--table {path} must end in .csv or .md")
    return kind


def cmd_sweep(args) -> int:
    # every check before any work
    budget = Budget(args.accuracy_budget, args.h_error_budget)
    if args.margin < 0 or args.margin > 8:
        raise UsageError(f"--margin must be from 0 to 8 bits, not {args.margin}")
    if args.screen is not None and args.screen < 0:
        raise UsageError(f"--screen must be 0 (whole set) or a number of sequences, not {args.screen}")
    out = check_target(args.out, "--out") if args.out else None
    table = check_target(args.table, "--table") if args.table else None
    kind = _table_kind(table) if table else None
    plot_dir = Path(args.plots) if args.plots else None
    if plot_dir is not None:
        from .plots import require_matplotlib
        if plot_dir.exists() and not plot_dir.is_dir():
            raise UsageError(f"--plots {plot_dir} exists and is not a directory")
        require_matplotlib()
    config, weights, x, labels, sources = load_operands(args, want_labels=True)
    screen = "auto" if args.screen is None else (args.screen or None)
    result = search(config, weights, x, labels, budget, margin=args.margin, trim_int=args.trim_int,
                    screen=screen, progress=Progress())
    summary = sweep_summary(result, sources)
    if args.sensitivity:
        from .sensitivity import error_sources, sensitivity
        progress = Progress(every=20)
        with single_threaded_blas():
            summary["sensitivity"] = sensitivity(
                config, weights, x, labels,
                progress=lambda n: progress.update(n, "sensitivity (one tensor at a time)"))
            progress.done()
            summary["error_sources"] = error_sources(config, weights, x, labels)

    if out is not None:
        header = "\n".join([
            "Written by: python -m model " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
            "The narrowest formats the precision sweep found within the budget:",
            f"  {summary['budget']},",
            f"judged by the exact fixed-point model on {sources['inputs']} with {sources['weights']}:",
            f"  fixed accuracy {_pct(summary['accuracy_fixed'])} (float "
            f"{_pct(summary['accuracy_float'])}), h max abs error {summary['h_max_abs_err']:.3e},",
            f"  {summary['weight_memory_bits']} weight-memory bits "
            f"({summary['weight_memory_ratio']:.1%} of {sources['config']}).",
            f"Objective: {OBJECTIVE}."])
        text = dump_config(result.winner.config, header)
        atomic_write(out, lambda f: f.write(text), "w")
    if table is not None:
        atomic_write(table, lambda f: write_table(f, table_rows(result), kind), "w")
    if plot_dir is not None:
        summary["plots"] = [str(p) for p in _write_plots(result, summary, plot_dir)]
    if args.json:
        from .report import to_jsonable
        print(json.dumps(to_jsonable(summary), allow_nan=False, indent=2))
    else:
        sys.stdout.write(format_sweep(result, summary))
        for label, path in (("config", out), ("table", table)):
            if path is not None:
                print(f"{label} written: {path}")
        for p in summary.get("plots", []):
            print(f"plot written: {p}")
    return 0


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.2f} %"


def config_dict(config) -> dict:
    """The winner's formats (and table budgets) as plain data."""
    out = {n: {"q": str(config.fmt(n)), "bits": config.fmt(n).bits, "frac": config.fmt(n).frac,
               "round": config.spec(n).round, "overflow": config.spec(n).overflow}
           for n in TENSORS}
    out["activations"] = {n: {"method": t.method, "max_segments": t.max_segments,
                              "slope_frac": t.slope_frac, "index_shift": t.index_shift}
                          for n, t in config.tables.items()}
    return out


def sweep_summary(result, sources: dict) -> dict:
    """The ``--json`` object (before the optional sensitivity keys)."""
    win, base = result.winner, result.baseline
    wm, base_wm = win.costs.weight_memory_bits, base.costs.weight_memory_bits
    wm_metrics, base_metrics = win.metrics, base.metrics
    has_labels = wm_metrics.get("accuracy_fixed") is not None
    return {
        "sources": sources,
        "budget": result.budget.describe(has_labels),
        "objective": OBJECTIVE,
        "accuracy_float": wm_metrics["accuracy_float"],
        "accuracy_fixed": wm_metrics["accuracy_fixed"],
        "h_max_abs_err": wm_metrics["h_max_abs_err"],
        "sqnr_db": wm_metrics["sqnr_db"],
        "weight_memory_bits": wm,
        "baseline_weight_memory_bits": base_wm,
        "weight_memory_ratio": wm / base_wm,
        "baseline": {"accuracy_fixed": base_metrics["accuracy_fixed"],
                     "h_max_abs_err": base_metrics["h_max_abs_err"],
                     "sqnr_db": base_metrics["sqnr_db"], "costs": base.costs.as_dict(),
                     "config": config_dict(base.config)},
        "costs": win.costs.as_dict(),
        "config": config_dict(win.config),
        "ranges": result.ranges,
        "candidates": len(result.candidates),
        "winner_index": win.index,
        "seconds": result.seconds,
        "sequences": result.sequences,
        "screened_on": result.screen,
        "table": table_rows(result),
    }


def table_rows(result) -> list[dict]:
    return [{k: c.row()[k] for k in COLUMNS} for c in result.candidates]


def _cell(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return "inf" if v == math.inf else (f"{v:.4f}" if abs(v) >= 0.01 else f"{v:.3e}")
    return str(v)


def write_table(f, rows: list[dict], kind: str) -> None:
    """Every candidate as CSV (plain values) or a markdown table."""
    if kind == "csv":
        w = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r[k] is None else r[k]) for k in COLUMNS})
        return
    f.write("| " + " | ".join(COLUMNS) + " |\n")
    f.write("|" + "---|" * len(COLUMNS) + "\n")
    for r in rows:
        f.write("| " + " | ".join(_cell(r[k]).replace("|", "/") for k in COLUMNS) + " |\n")


def _aligned(header, rows, indent="  ") -> list[str]:
    from .report import _table
    return _table(header, rows, "l" + "r" * (len(header) - 1), indent)


def format_sweep(result, summary: dict) -> str:
    """The sweep as text: budget, ranges, winner vs baseline, every candidate."""
    out = ["Precision sweep: narrowest formats within the budget, judged by the exact model", ""]
    for key, value in summary["sources"].items():
        out.append(f"  {key:<10} {value}")
    out += [f"  budget     {summary['budget']}", f"  objective  {summary['objective']}"]
    where = f"all {result.sequences} sequences"
    if result.screen is not None:
        where = (f"a screening subset of {result.screen} of {result.sequences} sequences, then "
                 f"confirmed and refined on all {result.sequences} (the winner's figures)")
    out += [f"  searched   {summary['candidates']} candidates in {result.seconds:.1f} s, on {where}", ""]

    out.append("Range analysis of the float run (integer bits, sign excluded)")
    out += _aligned(["tensor", "max |value|", "integer bits", "why"],
                    [[n, f"{r['max_abs']:.4g}", str(r["int_bits"]), r["why"]]
                     for n, r in result.ranges.items()])
    out.append("")

    out.append("Winner vs baseline")
    base, win = summary["baseline"], summary
    rows = [[n, base["config"][n]["q"], win["config"][n]["q"]] for n in TENSORS]
    rows += [[f"{n} segments", str(base["config"]["activations"][n]["max_segments"]),
              str(win["config"]["activations"][n]["max_segments"])] for n in result.winner.config.tables]
    rows += [["accuracy (float " + _pct(summary["accuracy_float"]) + ")",
              _pct(base["accuracy_fixed"]), _pct(summary["accuracy_fixed"])],
             ["h max abs error", f"{base['h_max_abs_err']:.3e}", f"{summary['h_max_abs_err']:.3e}"],
             ["SQNR (dB)", _cell(base["sqnr_db"]), _cell(summary["sqnr_db"])]]
    for key, label in (("weight_memory_bits", "weight-memory bits"), ("dsp_ecp5", "ECP5 MULT18X18D"),
                       ("dsp_ice40", "iCE40 SB_MAC16"), ("bram_ecp5", "ECP5 DP16KD (estimate)"),
                       ("rom_bits", "activation ROM bits"),
                       ("datapath_bits", "datapath bits")):
        b, w = base["costs"][key], summary["costs"][key]
        rows.append([label, str(b), f"{w} ({w / b:.1%})"])
    out += _aligned(["", "baseline", "winner"], rows)
    out.append("")

    out.append("Candidates (every config judged; accepted = taken by the descent)")
    rows = [[str(r["index"]), r["move"], _cell(r["meets"]), _cell(r["accepted"]),
             _pct(r["accuracy_fixed"]), _cell(r["h_max_abs_err"]), str(r["weight_memory_bits"]),
             str(r["dsp_ecp5"]), str(r["rom_bits"])] for r in summary["table"]]
    out += _aligned(["#", "move", "meets", "accepted", "accuracy", "h max err", "weight bits",
                     "DSP", "ROM bits"], rows)
    out.append(f"  winner: #{result.winner.index}: {formats_text(result.winner.config)}")

    if "sensitivity" in summary:
        out += ["", *format_sensitivity(summary["sensitivity"], summary["error_sources"])]
    return "\n".join(out) + "\n"


def format_sensitivity(rows: list[dict], sources: list[dict]) -> list[str]:
    out = ["Sensitivity of the given config: one tensor at a time with k more fraction bits",
           "(h max abs error / accuracy %)"]
    ks = sorted({r["k"] for r in rows})
    names = list(dict.fromkeys(r["tensor"] for r in rows))
    cell = {(r["tensor"], r["k"]): r for r in rows}
    table = []
    for n in names:
        line = [n]
        for k in ks:
            r = cell.get((n, k))
            line.append("-" if r is None else f"{r['h_max_abs_err']:.1e}/{_pct(r['accuracy_fixed']).replace(' %', '')}")
        table.append(line)
    out += _aligned(["tensor", *(f"{k:+d}" for k in ks)], table)
    out += ["", "Where the h error comes from (max abs error; per step: first .. last)"]
    table = [[s["experiment"], f"{s['h_max_abs_err']:.2e}",
              " ".join(f"{v:.1e}" for v in s["h_max_abs_err_step"]),
              _cell(s["table_max_abs_err"])] for s in sources]
    out += _aligned(["experiment", "h max err", "per step", "table err"], table)
    return out


def _write_plots(result, summary: dict, directory: Path) -> list[Path]:
    from . import plots
    from .sweep_plots import pareto_figure, sensitivity_figure
    figures = {"pareto": pareto_figure(result)}
    if "sensitivity" in summary:
        figures["sensitivity"] = sensitivity_figure(summary["sensitivity"])
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for stem, fig in figures.items():
        path = directory / f"{stem}.png"
        atomic_write(path, lambda f, fig=fig: plots.save_figure(fig, f, "png"))
        written.append(path)
    return written
