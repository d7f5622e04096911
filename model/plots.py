"""Plots of the quantization report (matplotlib, Agg backend, imported only when asked for).

Each ``*_figure`` function builds and returns a Figure from plain data; :func:`save_figure`
writes it (to a path or an open binary file) and closes it. ``model/`` itself never needs
matplotlib: :func:`require_matplotlib` raises :class:`PlotError` with the install hint.
"""
from __future__ import annotations

import numpy as np

from .activations import reference
from .fixed import to_float

__all__ = ["PlotError", "require_matplotlib", "activation_figure", "step_error_figure",
           "histogram_figure", "report_figures", "save_figure", "FORMATS"]

#: File types the CLI accepts for a plot (matplotlib's Agg canvas writes all of them).
FORMATS = ("png", "svg", "pdf")
DPI = 120


class PlotError(RuntimeError):
    """Plots were asked for but cannot be made (matplotlib missing, unknown file type)."""


def require_matplotlib():
    """pyplot on the Agg backend, or PlotError naming the missing package."""
    try:
        import matplotlib
    except ImportError:
        raise PlotError("plots need matplotlib: pip install 'fixed-lstm[report]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_format(path) -> str:
    suffix = str(path).rsplit(".", 1)[-1].lower() if "." in str(path) else ""
    if suffix not in FORMATS:
        raise PlotError(f"plot file {path} must end in one of .{', .'.join(FORMATS)}")
    return suffix


def _sci(axis) -> None:
    """Tick labels like 2.5e-04 on ``axis`` (no offset text to collide with titles)."""
    from matplotlib.ticker import FuncFormatter
    from matplotlib.ticker import NullFormatter
    axis.set_major_formatter(FuncFormatter(lambda v, _: "0" if v == 0 else f"{v:.1e}"))
    axis.set_minor_formatter(NullFormatter())


def _plain(axis) -> None:
    """Tick labels like 25 or 0.5 (major ticks only on a log axis)."""
    from matplotlib.ticker import FuncFormatter, NullFormatter
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def _twin_y(ax, scale: float, label: str, sci: bool = False):
    """A right-hand y axis showing the left one's values times ``scale``."""
    sec = ax.secondary_yaxis("right", functions=(lambda v: v * scale, lambda v: v / scale))
    sec.set_ylabel(label)
    if sci:
        _sci(sec.yaxis)
    return sec


def activation_figure(tables: dict):
    """Per table: output and exact function over every input code (top), error (bottom)."""
    plt = require_matplotlib()
    fig, axes = plt.subplots(2, len(tables), figsize=(5.2 * len(tables), 7.0), squeeze=False,
                             sharex="col", height_ratios=(3, 2), layout="constrained")
    for col, (name, table) in enumerate(tables.items()):
        spec = table.spec
        fin, fout = spec.input.fmt, spec.output.fmt
        codes = fin.codes()
        v = to_float(codes, fin)
        out = to_float(table(codes)[0], fout)
        exact = reference(spec.function, v)
        err = out - exact
        top, bottom = axes[0, col], axes[1, col]
        top.plot(v, exact, color="0.6", lw=3.0, label=f"exact {spec.function}")
        top.plot(v, out, color="C0", lw=1.0, label=f"table ({spec.method})")
        top.set_title(f"{name}: {spec.function}, {fin} -> {fout}\n{table.segments} segments, "
                      f"max |err| {np.abs(err).max():.2e} ({np.abs(err).max() / fout.lsb:.2f} LSB)",
                      fontsize=10)
        top.set_ylabel("output")
        top.grid(alpha=0.3)
        top.legend(loc="upper left", fontsize=8)
        # error in output LSBs (left) and absolute (right); segment starts as a rug at the bottom
        bottom.plot(v, err / fout.lsb, color="C1", lw=0.6)
        bottom.axhline(0.0, color="0.3", lw=0.8)
        knots = to_float(table.base, fin)
        knots = np.concatenate([-knots[knots > 0], knots])
        bottom.vlines(knots, 0.0, 0.05, transform=bottom.get_xaxis_transform(), color="C3",
                      lw=0.8)
        bottom.set_xlabel(f"input ({fin}, all {codes.size} codes; red ticks: segment starts)")
        bottom.set_ylabel(f"table - exact (LSBs of {fout})")
        bottom.grid(alpha=0.3)
        _twin_y(bottom, fout.lsb, "error (absolute)", sci=True)
        bottom.set_xlim(v[0], v[-1])
    fig.suptitle("Activation tables vs exact functions (exhaustive over every input code)")
    return fig


def step_error_figure(per_step: dict, lsbs: dict,
                      title: str = "Does quantization error grow along the sequence?"):
    """Max abs error and RMSE per time step for each tensor in ``per_step`` (h, c)."""
    plt = require_matplotlib()
    names = list(per_step)
    fig, axes = plt.subplots(1, len(names), figsize=(5.5 * len(names), 4.2), squeeze=False,
                             layout="constrained")
    for ax, name in zip(axes[0], names):
        steps = per_step[name]
        t = np.arange(len(steps["rmse"]))
        ax.plot(t, steps["max_abs_err"], "o-", color="C3", label="max abs error")
        ax.plot(t, steps["rmse"], "s-", color="C0", label="RMSE")
        # log scale when possible: max and RMSE differ by an order of magnitude or more
        log = bool(np.all(np.concatenate([steps["max_abs_err"], steps["rmse"]]) > 0))
        if log:
            ax.set_yscale("log")
        else:
            ax.set_ylim(bottom=0)
        ax.set_title(f"{name}: error per time step")
        ax.set_xlabel("time step t")
        ax.set_ylabel("|fixed - float|")
        ax.set_xticks(t if len(t) <= 16 else np.linspace(0, len(t) - 1, 9).round())
        ax.grid(alpha=0.3, which="both" if log else "major")
        ax.legend(fontsize=9, loc="best")
        sec = _twin_y(ax, 1.0 / lsbs[name], f"{name} LSBs (2^-{round(-np.log2(lsbs[name]))})")
        _sci(ax.yaxis)
        _plain(sec.yaxis)
        if log:                      # ticks at 1, 2, 5 per decade: a decade is a lot here
            from matplotlib.ticker import LogLocator
            for axis in (ax.yaxis, sec.yaxis):
                axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    fig.suptitle(title)
    return fig


def histogram_figure(errors, lsb: float, name: str = "h"):
    """Histogram of ``errors`` (fixed - float) in LSBs, log counts."""
    plt = require_matplotlib()
    e = np.asarray(errors, dtype=np.float64).ravel() / lsb
    fig, ax = plt.subplots(figsize=(7.5, 4.5), layout="constrained")
    span = max(float(np.abs(e).max()), 0.5)
    bins = np.linspace(-span, span, 81)
    ax.hist(e, bins=bins, color="C0", edgecolor="white", lw=0.3, log=True)
    rmse = float(np.sqrt(np.mean(e * e)))
    ax.axvline(0.0, color="0.3", lw=0.8)
    ax.set_title(f"{name}: fixed - float over {e.size} values   "
                 f"(max |err| {np.abs(e).max():.2f}, mean {e.mean():+.2f}, RMSE {rmse:.2f} LSB)", fontsize=10)
    ax.set_xlabel(f"error ({name} LSBs, 1 LSB = {lsb:.3g})")
    ax.set_ylabel("count (log)")
    sec = ax.secondary_xaxis("top", functions=(lambda v: v * lsb, lambda v: v / lsb))
    sec.set_xlabel("error (absolute)")
    _sci(sec.xaxis)
    ax.grid(alpha=0.3)
    return fig


def report_figures(run, report: dict) -> dict:
    """File stem -> Figure for ``model report --plots``: the last layer's figures, and for a
    stacked model one ``error_per_step_l<k>`` per layer k."""
    cfg = run.cell.config
    h_err = run.decoded()["h"] - run.reference["h"]
    figures = {
        "activations": activation_figure(run.cell.tables),
        "error_per_step": step_error_figure(report["per_step"],
                                            {n: cfg.fmt(n).lsb for n in report["per_step"]}),
        "error_histogram_h": histogram_figure(h_err, cfg.fmt("h").lsb, "h"),
    }
    layers = report.get("layers", [])
    if len(layers) > 1:
        for layer, entry in zip(run.layers, layers):
            k = entry["layer"]
            figures[f"error_per_step_l{k}"] = step_error_figure(
                entry["per_step"], {n: layer.config.fmt(n).lsb for n in entry["per_step"]},
                title=f"Layer {k} (of layers 0 to {len(layers) - 1}): error per time step")
    return figures


def save_figure(fig, target, fmt: str = "png") -> None:
    """Write ``fig`` to a path or binary file, then close it."""
    plt = require_matplotlib()
    try:
        fig.savefig(target, format=fmt, dpi=DPI)
    finally:
        plt.close(fig)
