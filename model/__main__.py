"""Command line of the golden model (DESIGN.md §7; keep these names stable)::

    python -m model run         [--config C] [--weights W.npz] [--inputs X.npy] --out OUT.npz
    python -m model report      [--config C] [--weights W.npz] [--inputs X.npy] [--labels Y.npy]
                                [--json] [--plots DIR]
    python -m model activations [--config C] [--json] [--plot FILE.png] [--export TABLES.npz]

With no options: configs/default.toml, the shipped model data/digits_lstm.npz and its held-out
data data/digits_heldout.npz (keys ``x`` (N, T, X), ``labels`` (N,)). Bad input ends with one
line ``error: ...`` on stderr and exit status 2; outputs are written to a temporary file next to
the target and renamed only on success, so a failed command leaves nothing behind.
Set MODEL_DEBUG=1 to get the traceback of an unexpected error.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from .config import load_config
from .fixed import FixedPointError
from .plots import PlotError
from .shipped import DEFAULT_HELDOUT, DEFAULT_WEIGHTS
from .weights import InputError, check_inputs, check_labels, load_weights

USAGE_ERROR = 2


class UsageError(Exception):
    """A command line that cannot be carried out (bad output path, ...)."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit status 2, like argparse's own)."""

    def error(self, message):
        raise SystemExit(_fail(f"{message} (see: python -m model {self._sub}--help)"))

    _sub = ""


def _fail(message: str) -> int:
    print("error: " + " ".join(str(message).split()), file=sys.stderr)
    return USAGE_ERROR


# ---- input files ---------------------------------------------------------------------------

NPY_MAGIC = b"\x93NUMPY"


def _kind(path: Path, what: str) -> str:
    """``"npz"`` or ``"npy"`` by content (not by name), or InputError for anything else."""
    if not path.exists():
        raise InputError(f"{what} file not found: {path}")
    if not path.is_file():
        raise InputError(f"{what} path is not a file: {path}")
    if zipfile.is_zipfile(path):
        return "npz"
    with open(path, "rb") as f:
        if f.read(len(NPY_MAGIC)) == NPY_MAGIC:
            return "npy"
    raise InputError(f"{what} file {path} is neither a .npy array nor a .npz archive")


def _load_npz(path: Path, what: str) -> dict:
    if _kind(path, what) != "npz":
        raise InputError(f"{what} file {path} is a .npy array, not an .npz archive")
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        raise InputError(f"{what} file {path} is not a readable .npz archive: {e}") from None


def _load_npy(path: Path, what: str) -> np.ndarray:
    if _kind(path, what) != "npy":
        raise InputError(f"{what} file {path} is an .npz archive, not a .npy array")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise InputError(f"{what} file {path} is not a readable .npy array: {e}") from None


def load_dataset(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """A data set .npz: ``x`` (N, T, X) float and optional ``labels`` (N,) integers."""
    arrays = _load_npz(path, "data set")
    if "x" not in arrays:
        raise InputError(f"data set {path} has no 'x' array (keys: {', '.join(arrays) or 'none'})")
    return arrays["x"], arrays.get("labels")


def _load_x(path: Path) -> np.ndarray:
    """``--inputs``: a .npy array, or a data set .npz (its ``x``)."""
    if _kind(path, "inputs") == "npz":
        return load_dataset(path)[0]
    return _load_npy(path, "inputs")


def _shown(path) -> str:
    """A path as the user would type it: relative to the working directory when inside it."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def load_operands(args, *, want_labels: bool):
    """Config, weights, inputs (B, T, X) and labels (or None) from the common options."""
    config = load_config(args.config)
    weights_path = Path(args.weights) if args.weights else DEFAULT_WEIGHTS
    if _kind(weights_path, "weights") != "npz":     # clearer than numpy's pickle message
        raise InputError(f"weights file {weights_path} is a .npy array, not an .npz archive")
    weights = load_weights(weights_path)
    bundled = None
    if args.inputs:
        x = check_inputs(_load_x(Path(args.inputs)), weights.n_inputs, f"inputs {args.inputs}")
    else:
        x, bundled = load_dataset(DEFAULT_HELDOUT)
        x = check_inputs(x, weights.n_inputs, f"inputs {DEFAULT_HELDOUT}")
    n_classes = weights.head_weight.shape[0] if weights.has_head else None
    label_path = getattr(args, "labels", None) if want_labels else None
    labels = None
    if label_path:
        labels = check_labels(_load_npy(Path(label_path), "labels"), x.shape[0], n_classes,
                              f"labels {label_path}")
    elif want_labels and bundled is not None and weights.has_head:
        # the bundled labels go with the bundled inputs; headless weights just get no accuracy
        labels = check_labels(bundled, x.shape[0], n_classes, f"labels in {DEFAULT_HELDOUT}")
    sources = {"config": _shown(config.source), "weights": _shown(weights_path),
               "inputs": _shown(args.inputs or DEFAULT_HELDOUT)}
    if labels is not None:
        sources["labels"] = _shown(label_path or DEFAULT_HELDOUT)
    return config, weights, x, labels, sources


# ---- output files --------------------------------------------------------------------------

def _check_target(path, option: str) -> Path:
    """An output file path whose directory exists (checked before any work is done)."""
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{option} {path} is a directory, not a file")
    if not path.parent.is_dir():
        raise UsageError(f"{option} {path}: directory {path.parent} does not exist")
    return path


def atomic_write(path: Path, write) -> None:
    """``write(file)`` into a temporary file beside ``path``, renamed onto it on success."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


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
    """The ``run`` output: contract keys (DESIGN.md §7) plus the operands' codes and logits."""
    decoded, cfg = run.decoded(), run.config
    arrays = {"h": decoded["h"], "c": decoded["c"],
              "h_raw": run.fixed["h"].astype(np.int64), "c_raw": run.fixed["c"].astype(np.int64),
              "h_float": run.reference["h"], "c_float": run.reference["c"],
              "x_raw": np.asarray(run.x_raw, dtype=np.int64),
              "h_frac": np.int64(cfg.fmt("h").frac), "c_frac": np.int64(cfg.fmt("c").frac)}
    if run.logits_raw is not None:
        arrays.update(logits=run.logits_fixed, logits_float=run.logits_float,
                      logits_frac=np.int64(run.cell.head_frac))
        raw = np.asarray(run.logits_raw)
        if all(abs(int(v)) < 1 << 63 for v in raw.ravel()):
            arrays["logits_raw"] = raw.astype(np.int64)
    return arrays


def cmd_run(args) -> int:
    from .golden import run_golden
    out = _check_target(args.out, "--out")
    config, weights, x, _, _ = load_operands(args, want_labels=False)
    run = run_golden(config, weights, x)
    _save_npz(out, run_arrays(run))
    B, T, H = run.fixed["h"].shape
    print(f"wrote {out}: h, c, h_raw, c_raw, h_float, c_float ({B}, {T}, {H}); "
          f"h max abs err {np.abs(run.decoded()['h'] - run.reference['h']).max():.3e}")
    return 0


def cmd_report(args) -> int:
    from .golden import run_golden
    from .report import format_report, quantization_report
    plot_dir = Path(args.plots) if args.plots else None
    if plot_dir is not None:
        from .plots import require_matplotlib
        if plot_dir.exists() and not plot_dir.is_dir():
            raise UsageError(f"--plots {plot_dir} exists and is not a directory")
        require_matplotlib()
    config, weights, x, labels, sources = load_operands(args, want_labels=True)
    run = run_golden(config, weights, x)
    report = quantization_report(run, labels)
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
    plot = _check_target(args.plot, "--plot") if args.plot else None
    export = _check_target(args.export, "--export") if args.export else None
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

def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m model",
                     description="Bit-accurate fixed-point LSTM golden model and its float64 "
                                 "reference.",
                     epilog="With no options: configs/default.toml, the shipped model "
                            "data/digits_lstm.npz and data/digits_heldout.npz. Bad input ends "
                            "with one line 'error: ...' on stderr and exit status 2.")
    subs = parser.add_subparsers(dest="command", metavar="{run,report,activations}",
                                 parser_class=_Parser)

    def sub(name, help_text, handler):
        p = subs.add_parser(name, help=help_text, description=help_text)
        p._sub = f"{name} "
        p.set_defaults(handler=handler)
        p.add_argument("--config", metavar="C", help="TOML config (default: configs/default.toml)")
        return p

    def operands(p):
        p.add_argument("--weights", metavar="W.npz",
                       help="weights (default: the shipped model data/digits_lstm.npz)")
        p.add_argument("--inputs", metavar="X.npy",
                       help="inputs (B, T, X) or (T, X) (.npy; or a .npz with 'x'); default: "
                            "data/digits_heldout.npz with its labels")

    p = sub("run", "run the fixed-point cell and the float reference; save every h and c",
            cmd_run)
    operands(p)
    p.add_argument("--out", metavar="OUT.npz", required=True,
                   help="output .npz: h, c, h_raw, c_raw, h_float, c_float (B, T, H)")

    p = sub("report", "quantization report: fixed point vs float, per tensor and per step",
            cmd_report)
    operands(p)
    p.add_argument("--labels", metavar="Y.npy",
                   help="class labels (B,) for accuracy (needs a classifier head)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.add_argument("--plots", metavar="DIR", help="write PNG plots into DIR (needs matplotlib)")

    p = sub("activations", "the PWL activation tables: error over every input code", cmd_activations)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.add_argument("--plot", metavar="FILE.png", help="plot the tables against the exact functions")
    p.add_argument("--export", metavar="TABLES.npz", help="save the tables' ROM contents")
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        sub = f"{args.command} " if args.command else ""
        return _fail(f"unrecognized arguments: {' '.join(unknown)} "
                     f"(see: python -m model {sub}--help)")
    if args.command is None:
        return _fail("choose a subcommand: run, report or activations "
                     "(see: python -m model --help)")
    try:
        return args.handler(args)
    except (FixedPointError, UsageError, PlotError) as e:
        return _fail(e)
    except BrokenPipeError:         # stdout closed early (| head): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except Exception as e:          # noqa: BLE001 - the contract: one line, never a traceback
        if os.environ.get("MODEL_DEBUG"):
            raise
        if isinstance(e, OSError):
            return _fail(f"{e.filename}: {e.strerror}" if e.filename else e)
        _fail(f"unexpected {type(e).__name__}: {e} (set MODEL_DEBUG=1 for a traceback)")
        return 1


if __name__ == "__main__":
    sys.exit(main())
