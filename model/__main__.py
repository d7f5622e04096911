"""Command line of the golden model (docs/cli.md; keep these names stable)::

    python -m model run         [--config C] [--weights W.npz] [--inputs X.npy] [--state S.npz]
                                --out OUT.npz
    python -m model report      [--config C] [--weights W.npz] [--inputs X.npy] [--state S.npz]
                                [--labels Y.npy] [--json] [--plots DIR]
    python -m model activations [--config C] [--json] [--plot FILE.png] [--export TABLES.npz]
    python -m model explain     [--config C] [--weights W.npz] [--inputs X.npy] [--sequence N]
                                [--step T] [--units 0,1,2] [--json]
    python -m model sweep       [--config C] [--weights W] [--inputs X] [--labels Y]
                                [--accuracy-budget PP] [--h-error-budget E] [--out NARROW.toml]
                                [--table FILE.csv|md] [--plots DIR] [--json] [--sensitivity]
    python -m model vectors     [--config C] [--weights W.npz] [--inputs X.npy] [--limit N]
                                [--lanes P] [--no-c] [--state zero|random] [--seed S] --out DIR

With no options: configs/default.toml, the shipped model data/digits_lstm.npz and its held-out
data data/digits_heldout.npz (keys ``x`` (N, T, X), ``labels`` (N,)). Bad input ends with one
line ``error: ...`` on stderr and exit status 2; outputs are written to a temporary file next to
the target and renamed only on success, so a failed command leaves nothing behind.
Set MODEL_DEBUG=1 to get the traceback of an unexpected error.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from .cli import (ArgumentParser, UsageError, add_weights_options, atomic_write, check_target,
                  fail, load_operands, run_command, shown)
from .config import load_config
from .explain import add_arguments as explain_arguments, cmd_explain
from .plots import PlotError


def _save_npz(path: Path, arrays: dict) -> None:
    atomic_write(path, lambda f: np.savez(f, **arrays))


def _save_figure(path: Path, fig) -> None:
    from . import plots
    atomic_write(path, lambda f: plots.save_figure(fig, f, plots.plot_format(path)))


def _print_json(obj) -> None:
    from .report import to_jsonable
    print(json.dumps(to_jsonable(obj), allow_nan=False, indent=2))


# ---- subcommands ---------------------------------------------------------------------------

def run_arrays(run) -> dict:
    """The ``run`` output: contract keys (README) plus the operands' codes and logits.

    ``h``, ``c`` (and ``_raw``, ``_float``) are the last layer's (B, T, H); every layer's
    sequences as ``h_l<k>``, ``c_l<k>``, ``h_l<k>_raw``, ``c_l<k>_raw``, ``h_l<k>_float``,
    ``c_l<k>_float`` (B, T, H_k) and its state after the last step as ``h_n_l<k>``,
    ``c_n_l<k>`` (and ``_raw``, ``_float``) (B, H_k); when every layer has the same H, also
    ``h_n``, ``c_n`` (and ``_raw``, ``_float``) (L, B, H), PyTorch's ``h_n`` layout.
    """
    decoded, cfg = run.decoded(), run.cell.config
    arrays = {"h": decoded["h"], "c": decoded["c"],
              "h_raw": run.fixed["h"].astype(np.int64), "c_raw": run.fixed["c"].astype(np.int64),
              "h_float": run.reference["h"], "c_float": run.reference["c"],
              "x_raw": np.asarray(run.x_raw, dtype=np.int64),
              "h_frac": np.int64(cfg.fmt("h").frac), "c_frac": np.int64(cfg.fmt("c").frac)}
    for layer in run.layers:
        d = layer.decoded()
        for n in ("h", "c"):
            arrays[f"{n}_l{layer.index}"] = d[n]
            arrays[f"{n}_l{layer.index}_raw"] = layer.fixed[n].astype(np.int64)
            arrays[f"{n}_l{layer.index}_float"] = layer.reference[n]
            for suffix in ("", "_raw", "_float"):
                arrays[f"{n}_n_l{layer.index}{suffix}"] = arrays[f"{n}_l{layer.index}{suffix}"][:, -1]
    if len({layer.weights.n_hidden for layer in run.layers}) == 1:   # (L, B, H) needs one H
        for n in ("h", "c"):
            for suffix in ("", "_raw", "_float"):
                arrays[f"{n}_n{suffix}"] = np.stack(
                    [arrays[f"{n}_l{k}{suffix}"][:, -1] for k in range(len(run.layers))])
            arrays[f"{n}_n_frac"] = np.array([layer.config.fmt(n).frac for layer in run.layers],
                                             dtype=np.int64)
    if run.logits_raw is not None:
        arrays.update(logits=run.logits_fixed, logits_float=run.logits_float,
                      logits_frac=np.int64(run.cell.head_frac))
        raw = np.asarray(run.logits_raw)
        if all(abs(int(v)) < 1 << 63 for v in raw.ravel()):
            arrays["logits_raw"] = raw.astype(np.int64)
    return arrays


def load_state(args, stack, x):
    """``--state FILE.npz``: float initial states h0, c0 (checked against the model), or
    (None, None) without the option (the model file's own state, if any, then applies)."""
    if not getattr(args, "state", None):
        return None, None
    from .golden import layer_states
    from .weights import InputError, load_state_file
    h0, c0 = load_state_file(args.state)
    hidden = [layer.n_hidden for layer in stack.layers]
    try:
        for name, s in (("h0", h0), ("c0", c0)):
            layer_states(s, name, hidden, x.shape[0])
    except InputError as e:
        raise InputError(f"state file {args.state}: {e}") from None
    return h0, c0


def cmd_run(args) -> int:
    from .golden import run_golden
    out = check_target(args.out, "--out")
    config, stack, x, _, _ = load_operands(args, want_labels=False, stacked=True)
    h0, c0 = load_state(args, stack, x)
    run = run_golden(config, stack, x, h0=h0, c0=c0)
    _save_npz(out, run_arrays(run))
    B, T, H = run.fixed["h"].shape
    L = len(run.layers)
    hidden = [layer.weights.n_hidden for layer in run.layers]
    if L == 1:
        layers = ""
    elif len(set(hidden)) == 1:
        layers = f"; {L} layers: h_n, c_n ({L}, {B}, {H}), per layer h_n_l<k>, c_n_l<k>, h_l<k>, c_l<k>"
    else:
        layers = (f"; {L} layers of H = {', '.join(map(str, hidden))}: per layer h_n_l<k>, "
                  f"c_n_l<k> ({B}, H_k), h_l<k>, c_l<k> ({B}, {T}, H_k) (no h_n, c_n: the H differ)")
    print(f"wrote {out}: h, c, h_raw, c_raw, h_float, c_float ({B}, {T}, {H}){layers}; "
          f"h max abs err {np.abs(run.decoded()['h'] - run.reference['h']).max():.3e}")
    warning = saturation_warning(run)
    if warning:
        print(warning, file=sys.stderr)
    return 0


def saturation_warning(run) -> str | None:
    """One line for stderr when casts saturated (or wrapped): how many, in which tensors, and
    for the inputs the x format's range (the usual cause: unscaled data such as raw pixels)."""
    counts = {name: int(n) for name, n in run.overflow.items() if n}
    if not counts:
        return None
    where = ", ".join(f"{name} {n}" for name, n in counts.items())
    line = f"warning: {sum(counts.values())} values saturated or wrapped ({where})"
    if counts.get("x"):
        fmt = run.config.fmt("x")
        line += (f"; the x format {fmt} holds [{fmt.min_value:g}, {fmt.max_value:g}]: "
                 "scale the inputs into it")
    return line + "; python -m model report shows them per tensor"


def cmd_report(args) -> int:
    from .golden import run_golden
    from .report import format_report, quantization_report
    plot_dir = Path(args.plots) if args.plots else None
    if plot_dir is not None:
        from .plots import require_matplotlib
        if plot_dir.exists() and not plot_dir.is_dir():
            raise UsageError(f"--plots {plot_dir} exists and is not a directory")
        require_matplotlib()
    config, stack, x, labels, sources = load_operands(args, want_labels=True, stacked=True)
    h0, c0 = load_state(args, stack, x)
    run = run_golden(config, stack, x, h0=h0, c0=c0)
    report = quantization_report(run, labels)
    if args.state:
        sources["state"] = shown(args.state)
    report["sources"] = sources
    if plot_dir is not None:
        report["plots"] = [str(p) for p in _write_report_plots(run, report, plot_dir)]
    if args.json:
        _print_json(report)
    else:
        sys.stdout.write(format_report(report))
        for p in report.get("plots", []):
            print(f"plot written: {p}")
    return 0


def _write_report_plots(run, report, directory: Path) -> list[Path]:
    from .plots import report_figures
    figures = report_figures(run, report)
    created = not directory.exists()
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    try:
        for stem, fig in figures.items():
            path = directory / f"{stem}.png"
            _save_figure(path, fig)
            written.append(path)
    except BaseException:
        if created and not any(directory.iterdir()):
            directory.rmdir()
        raise
    return written


def table_arrays(tables: dict) -> dict:
    """``activations --export``: each table's ROM contents and formats, keys ``<table>_<field>``."""
    arrays = {}
    for name, table in tables.items():
        spec = table.spec
        fields = {**table.export(), "method": np.str_(spec.method),
                  "function": np.str_(spec.function),
                  "in_bits": spec.input.fmt.bits, "in_frac": spec.input.fmt.frac,
                  "out_bits": spec.output.fmt.bits, "out_frac": spec.output.fmt.frac}
        for field, value in fields.items():
            arrays[f"{name}_{field}"] = np.asarray(value)
    return arrays


def cmd_activations(args) -> int:
    from .activations import build_table
    from .report import activation_summary, format_activations
    plot = check_target(args.plot, "--plot") if args.plot else None
    export = check_target(args.export, "--export") if args.export else None
    if plot is not None:
        from .plots import plot_format, require_matplotlib
        plot_format(plot)
        require_matplotlib()
    config = load_config(args.config)
    tables = {name: build_table(spec) for name, spec in config.tables.items()}
    summary = activation_summary(tables)
    if plot is not None:
        from .plots import activation_figure
        _save_figure(plot, activation_figure(tables))
    if export is not None:
        _save_npz(export, table_arrays(tables))
    if args.json:
        _print_json(summary)
    else:
        sys.stdout.write(format_activations(summary))
        for label, path in (("plot", plot), ("tables", export)):
            if path is not None:
                print(f"{label} written: {path}")
    return 0


# ---- argument parsing ----------------------------------------------------------------------

def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="python -m model",
                     description="Bit-accurate fixed-point LSTM golden model and its float64 "
                                 "reference.",
                     epilog="With no options: configs/default.toml, the shipped model "
                            "data/digits_lstm.npz and data/digits_heldout.npz. Bad input ends "
                            "with one line 'error: ...' on stderr and exit status 2.")
    subs = parser.add_subparsers(dest="command", metavar="{run,report,activations,explain,sweep,vectors}",
                                 parser_class=ArgumentParser)

    def sub(name, help_text, handler):
        p = subs.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(handler=handler)
        p.add_argument("--config", metavar="C", help="TOML config (default: configs/default.toml)")
        return p

    def state(p):
        p.add_argument("--state", metavar="S.npz",
                       help="initial state: .npz with h0 and c0, (H,) or (B, H) for one layer, "
                            "(L, H) or (L, B, H) for L layers (default: zero, or the model's)")

    def operands(p):
        add_weights_options(p, "the shipped model data/digits_lstm.npz")
        p.add_argument("--inputs", metavar="X.npy",
                       help="inputs (B, T, X) or (T, X) (.npy; or a .npz with 'x' and "
                            "optional 'labels'); default: data/digits_heldout.npz with its labels")

    p = sub("run", "run the fixed-point cell and the float reference; save every h and c",
            cmd_run)
    operands(p)
    state(p)
    p.add_argument("--out", metavar="OUT.npz", required=True,
                   help="output .npz: h, c, h_raw, c_raw, h_float, c_float (B, T, H) of the "
                        "last layer; per layer h_l<k>, c_l<k> and final states h_n_l<k>, "
                        "c_n_l<k>; h_n, c_n (L, B, H) when every layer has the same H")

    p = sub("report", "quantization report: fixed point vs float, per tensor and per step",
            cmd_report)
    operands(p)
    state(p)
    p.add_argument("--labels", metavar="Y.npy",
                   help="class labels (B,) for accuracy (needs a classifier head)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.add_argument("--plots", metavar="DIR", help="write PNG plots into DIR (needs matplotlib)")

    p = sub("activations", "the PWL activation tables: error over every input code", cmd_activations)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.add_argument("--plot", metavar="FILE.png", help="plot the tables against the exact functions")
    p.add_argument("--export", metavar="TABLES.npz", help="save the tables' ROM contents")

    p = sub("explain", "one step of the cell, unit by unit: gates, kept and new cell content, "
            "output; float, fixed, raw code, error in LSBs", cmd_explain)
    operands(p)
    explain_arguments(p)

    from .sweep_cli import add_arguments, cmd_sweep
    p = sub("sweep", "precision sweep: the narrowest formats within an accuracy budget", cmd_sweep)
    operands(p)
    add_arguments(p)

    from .vectors import add_arguments, cmd_vectors
    add_arguments(sub("vectors", "test vectors ($readmemh files) and expected outputs for any "
                                 "Verilog simulator", cmd_vectors))
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        sub = f"{args.command} " if args.command else ""
        return fail(f"unrecognized arguments: {' '.join(unknown)} "
                    f"(see: python -m model {sub}--help)")
    if args.command is None:
        return fail("choose a subcommand: run, report, activations, explain, sweep or vectors "
                    "(see: python -m model --help)")
    return run_command(args.handler, args, expected=(PlotError,))


if __name__ == "__main__":
    sys.exit(main())
