"""Plots of the precision sweep: the Pareto front and the per-tensor sensitivity
(matplotlib through :func:`model.plots.require_matplotlib`; imported only when asked for)."""
from __future__ import annotations

import math

import numpy as np

from .plots import require_matplotlib

__all__ = ["pareto_front", "pareto_figure", "sensitivity_figure"]


def pareto_front(points) -> list[int]:
    """Indices of the points (cost, quality) that no other point beats on both (lower cost,
    higher quality), in ascending cost."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], -math.inf
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def pareto_figure(result):
    """Accuracy (left) and h SQNR (right) of every candidate against its weight-memory bits."""
    plt = require_matplotlib()
    cands = result.candidates
    has_acc = cands[0].metrics.get("accuracy_fixed") is not None
    panels = ([("accuracy_fixed", "fixed-point accuracy (%)", 100.0)] if has_acc else []) + \
        [("sqnr_db", "h SQNR (dB)", 1.0)]
    fig, axes = plt.subplots(1, len(panels), figsize=(6.2 * len(panels), 4.6), squeeze=False,
                             layout="constrained")
    wm = np.array([c.costs.weight_memory_bits for c in cands], dtype=float)
    meets = np.array([c.meets for c in cands])
    for ax, (key, label, scale) in zip(axes[0], panels):
        y = np.array([min(c.metrics[key], 200.0) * scale for c in cands])
        ax.scatter(wm[~meets], y[~meets], s=14, color="C3", alpha=0.6, label="misses the budget")
        ax.scatter(wm[meets], y[meets], s=14, color="C0", alpha=0.8, label="meets the budget")
        ok = np.flatnonzero(meets)
        front = ok[pareto_front([(wm[i], y[i]) for i in ok])]
        ax.step(wm[front], y[front], where="post", color="C0", lw=1.0, label="Pareto front (meets)")
        for cand, marker, name in ((result.baseline, "s", "baseline"), (result.winner, "*", "winner")):
            ax.scatter([cand.costs.weight_memory_bits], [min(cand.metrics[key], 200.0) * scale],
                       marker=marker, s=140, facecolor="none", edgecolor="k", lw=1.3, label=name)
        if key == "accuracy_fixed":
            af = cands[0].metrics["accuracy_float"] * 100
            ax.axhline(af, color="0.4", lw=0.8, ls="--", label=f"float {af:.2f} %")
        ax.set_xlabel("weight-memory bits")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    where = "" if result.screen is None else f" (screened on {result.screen} sequences)"
    fig.suptitle(f"Precision sweep: {len(cands)} candidates judged by the exact model{where}")
    return fig


def sensitivity_figure(rows: list[dict]):
    """h max abs error (left) and accuracy (right) against k, one line per tensor."""
    plt = require_matplotlib()
    names = list(dict.fromkeys(r["tensor"] for r in rows))
    has_acc = rows[0].get("accuracy_fixed") is not None
    fig, axes = plt.subplots(1, 2 if has_acc else 1, figsize=(12.4 if has_acc else 6.2, 4.6),
                             squeeze=False, layout="constrained")
    for j, name in enumerate(names):
        mine = [r for r in rows if r["tensor"] == name]
        k = [r["k"] for r in mine]
        style = dict(marker="o", ms=3, lw=1.0, color=f"C{j % 10}", label=name,
                     ls="-" if j < 10 else "--")
        axes[0, 0].plot(k, [r["h_max_abs_err"] for r in mine], **style)
        if has_acc:
            axes[0, 1].plot(k, [100 * r["accuracy_fixed"] for r in mine], **style)
    axes[0, 0].set_yscale("log")
    axes[0, 0].set_ylabel("h max abs error")
    if has_acc:
        axes[0, 1].set_ylabel("fixed-point accuracy (%)")
    for ax in axes[0]:
        ax.set_xlabel("k: fraction bits added to that tensor alone (0 = the config)")
        ax.axvline(0, color="0.4", lw=0.8)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8, ncol=2)
    fig.suptitle("Sensitivity: one tensor narrowed or widened at a time")
    return fig
