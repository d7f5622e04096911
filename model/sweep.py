"""Precision sweep: the narrowest formats that keep the accuracy, judged by the exact model.

The search (:func:`search`):

1. **Range analysis** (:func:`model.ranges.range_analysis`) of the float64 reference on the data set: the
   largest magnitude m each tensor reaches gives its integer bits, the smallest I >= 0 with
   m < 2^I, plus a margin (default 1 bit) for the tensors whose range depends on the data
   (x, z, c). Weights and biases are known exactly (no margin); gate, candidate and tanh_c
   hold 1.0, so exactly 1 integer bit; h = o * tanh(c) has |h| < 1, so 0 integer bits.
2. **Start**: those integer bits at the baseline config's total widths. The start must meet the
   budget (else the baseline itself is the start; if the baseline misses it too, the search
   is impossible and says so).
3. **Coordinate descent** over the tensors, most expensive first (weight, bias, h, x, c, z,
   gate, candidate, tanh_c): per tensor, bisect its fraction bits down to the fewest that keep
   the budget (optionally, ``trim_int``, then drop integer bits one at a time while the
   budget holds: values past the range then saturate); then bisect each activation table's
   segment budget. Later passes (up to :data:`MAX_PASSES`, until one changes nothing) try
   one fraction bit less per tensor, since the error is not monotone in the widths. A move
   is kept only when it meets the budget *and* lowers the cost (:func:`model.costs.objective`).

The accumulator is never searched: each candidate gets the exact one (:func:`model.ranges.with_accumulator`:
the fraction bits every product needs, the width :func:`model.config.accumulator_bits_needed`
proves safe). Every candidate is judged by :func:`model.golden.run_golden`, the bit-accurate
model of the hardware, on the held-out set (or, for big models, on a screening subset, with the
winner confirmed on the whole set: :func:`search`'s ``screen``).
"""
from __future__ import annotations

import contextlib
import math
import sys
import time
from dataclasses import dataclass

import numpy as np

from .config import TENSORS, Config
from .costs import Costs, costs, objective
from .fixed import FixedPointError
from .ranges import (TABLE_INPUTS, UNIT_RANGE, evaluate, range_analysis, with_accumulator,
                     with_format, with_segments)

__all__ = ["Budget", "Candidate", "SweepError", "SEARCHED", "search", "SweepResult", "Progress",
           "screen_size", "single_threaded_blas", "formats_text"]

#: Searched tensors in the order the descent visits them (most expensive first).
SEARCHED = ("weight", "bias", "h", "x", "c", "z", "gate", "candidate", "tanh_c")
MAX_PASSES = 4
#: Multiply-adds of one pass over the data set above which the search screens on a subset.
SCREEN_WORK = 1e8


class SweepError(FixedPointError):
    """A sweep that cannot be carried out (bad budget, nothing meets it)."""


@dataclass(frozen=True)
class Budget:
    """What a candidate must keep: fixed accuracy >= float accuracy - ``accuracy_pp``
    percentage points (when there are labels) and, optionally, h max abs error <= ``h_error``."""

    accuracy_pp: float = 0.2
    h_error: float | None = None

    def __post_init__(self):
        pp = self.accuracy_pp
        if not isinstance(pp, (int, float)) or not math.isfinite(pp) or not 0 <= pp <= 100:
            raise SweepError(f"accuracy budget must be from 0 to 100 percentage points, not {pp}")
        e = self.h_error
        if e is not None and (not isinstance(e, (int, float)) or not math.isfinite(e) or e <= 0):
            raise SweepError(f"h-error budget must be a positive number, not {e}")

    def meets(self, metrics: dict) -> bool:
        ok = True
        if metrics.get("accuracy_fixed") is not None:
            # 1e-12 of slack absorbs float rounding in the two fractions
            ok = metrics["accuracy_fixed"] >= metrics["accuracy_float"] - self.accuracy_pp / 100 - 1e-12
        if self.h_error is not None:
            ok = ok and metrics["h_max_abs_err"] <= self.h_error
        return ok

    def describe(self, has_labels: bool) -> str:
        parts = []
        if has_labels:
            parts.append(f"fixed accuracy >= float accuracy - {self.accuracy_pp:g} percentage points")
        if self.h_error is not None:
            parts.append(f"h max abs error <= {self.h_error:g}")
        return " and ".join(parts)


@dataclass
class Candidate:
    """One config the search judged."""

    index: int
    move: str                     # what changed, e.g. "weight Q2.13 -> Q2.9"
    config: Config
    costs: Costs
    metrics: dict
    meets: bool
    accepted: bool = False
    subset: bool = False          # judged on the screening subset only

    def row(self) -> dict:
        m = self.metrics
        return {"index": self.index, "move": self.move, "meets": self.meets,
                "accepted": self.accepted, "subset": self.subset,
                "accuracy_fixed": m.get("accuracy_fixed"), "h_max_abs_err": m.get("h_max_abs_err"),
                "sqnr_db": m.get("sqnr_db"), **self.costs.as_dict(),
                "formats": formats_text(self.config)}


def formats_text(config: Config) -> str:
    """Compact formats: ``x Q1.8, weight Q2.9, ...`` plus non-default segment budgets."""
    parts = [f"{n} {config.fmt(n)}" for n in TENSORS]
    parts += [f"{n} {t.max_segments} seg" for n, t in config.tables.items()]
    return ", ".join(parts)


class Progress:
    """Progress on stderr: one rewritten line on a terminal, else a line every ``every``."""

    def __init__(self, stream=None, every: int = 25, enabled: bool = True):
        self.stream = sys.stderr if stream is None else stream
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.every, self.enabled, self.start = every, enabled, time.monotonic()
        self._shown = False

    def update(self, count: int, phase: str, best: str | None = None) -> None:
        if not self.enabled:
            return
        text = f"sweep: {count} candidates, {time.monotonic() - self.start:5.1f} s, {phase}"
        text += f"; best {best}" if best else ""
        if self.tty:
            width = 100
            bar = "#" * min(count // 5, 20)
            self.stream.write(f"\r[{bar:<20}] {text}"[:width].ljust(width))
            self._shown = True
        elif count % self.every == 0:
            self.stream.write(text + "\n")
        self.stream.flush()

    def done(self) -> None:
        if self.enabled and self.tty and self._shown:
            self.stream.write("\n")
            self.stream.flush()


@dataclass
class SweepResult:
    baseline: Candidate
    winner: Candidate
    candidates: list
    ranges: dict
    budget: Budget
    screen: int | None                 # screening subset size, None when the whole set was used
    sequences: int
    seconds: float = 0.0


def screen_size(x, weights) -> int | None:
    """Sequences to screen on, or None for the whole set: a subset when one pass over the set
    costs more than :data:`SCREEN_WORK` multiply-adds (at least 128 sequences)."""
    B, T = x.shape[:2]
    H, X = weights.n_hidden, weights.n_inputs
    work = B * T * 4 * H * (X + H)
    if work <= SCREEN_WORK:
        return None
    n = max(128, int(B * SCREEN_WORK / work))
    return None if n >= B else n


def single_threaded_blas():
    """One BLAS thread while the search runs, when ``threadpoolctl`` is installed (it comes with
    scikit-learn). The cell's matrices are small (B x (X+H) by (X+H) x 4H): on a busy 2-core
    machine threaded BLAS made a 128-sequence run of a 28x28, H=128 model 10x slower in wall
    time than one thread did. Without threadpoolctl the search runs as numpy is set up."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def search(config: Config, weights, x, labels=None, budget: Budget = Budget(), *,
           margin: int = 1, trim_int: bool = False, screen: int | None | str = "auto",
           progress: Progress | None = None, seed: int = 0) -> SweepResult:
    """Coordinate descent from the range analysis (module docstring).

    ``trim_int`` lets the descent also drop integer bits below the range analysis' (values
    beyond the new range then saturate); by default integer bits stay where the range put them.
    ``screen``: "auto" (:func:`screen_size`), None (whole set) or a number of sequences to
    screen on (a fixed random subset from ``seed``)."""
    with single_threaded_blas():
        return _search(config, weights, x, labels, budget, margin, trim_int, screen, progress, seed)


def _search(config, weights, x, labels, budget, margin, trim_int, screen, progress, seed):
    t0 = time.monotonic()
    has_labels = labels is not None and weights.has_head
    if not has_labels and budget.h_error is None:
        raise SweepError("nothing to judge candidates by: give labels (and weights with a "
                         "classifier head) for the accuracy budget, or --h-error-budget")
    labels = labels if has_labels else None
    B = x.shape[0]
    n_screen = screen_size(x, weights) if screen == "auto" else screen
    if n_screen is not None and n_screen >= B:
        n_screen = None
    s = _Search(weights, budget, trim_int, progress or Progress(enabled=False))
    if n_screen is not None:
        pick = np.sort(np.random.default_rng(seed).choice(B, n_screen, replace=False))
        s.use_data(x[pick], None if labels is None else labels[pick], subset=True)
    else:
        s.use_data(x, labels, subset=False)

    baseline = s.judge(config, "baseline (the given config)", derive=False)
    if baseline is None:
        raise SweepError(f"the baseline config {config.source} cannot be evaluated")
    ranges = range_analysis(weights, x, margin)
    s.phase = "range analysis start"
    start = None
    try:
        start_cfg = config
        for name in SEARCHED:
            bits = ranges[name]["int_bits"]
            start_cfg = with_format(start_cfg, name, bits, max(config.fmt(name).bits - 1 - bits, 0))
        start = s.judge(start_cfg, "start: range-analysis integer bits, baseline widths")
    except FixedPointError:
        pass
    s.begin(start if start is not None and start.meets else baseline, baseline)
    s.descend(bisect_first=True)

    if n_screen is not None:
        # the subset chose; the whole set decides: the cheapest accepted config that meets the
        # budget on every sequence (bisection along the accepted chain), then one more descent
        # judged on the whole set from there
        chain = s.chain
        s.use_data(x, labels, subset=False)
        s.phase = "confirming on the whole set"
        baseline = s.judge(config, "baseline, whole set", derive=False)
        lo, hi, best = 0, len(chain) - 1, None
        while lo <= hi:
            mid = (lo + hi) // 2
            cand = s.judge(chain[mid].config, f"#{chain[mid].index} on the whole set")
            if cand is not None and cand.meets:
                best, lo = cand, mid + 1
            else:
                hi = mid - 1
        s.begin(best, baseline)
        s.descend(bisect_first=False)
    s.progress.done()
    return SweepResult(baseline, s.current, s.candidates, ranges, budget, n_screen, B,
                       time.monotonic() - t0)


class _Search:
    """The descent's state: the data candidates are judged on, every candidate, the current
    config and the chain of accepted moves."""

    def __init__(self, weights, budget: Budget, trim_int: bool, progress: Progress):
        self.weights, self.budget, self.trim_int, self.progress = weights, budget, trim_int, progress
        self.candidates: list[Candidate] = []
        self.current: Candidate | None = None
        self.chain: list[Candidate] = []
        self.phase = "baseline"

    def use_data(self, x, labels, subset: bool) -> None:
        self.x, self.labels, self.subset, self.cache = x, labels, subset, {}

    def judge(self, cfg: Config, move: str, derive: bool = True) -> Candidate | None:
        """The candidate for ``cfg`` (accumulator derived unless ``derive`` is False), judged
        by the exact model on the current data; None when the config cannot be built."""
        w = self.weights
        try:
            cfg = with_accumulator(cfg, w.n_inputs, w.n_hidden) if derive else cfg
        except FixedPointError:
            return None
        if cfg in self.cache:
            return self.cache[cfg]
        try:
            metrics = evaluate(cfg, w, self.x, self.labels)
            cost = costs(cfg, w.n_inputs, w.n_hidden)
        except FixedPointError:                 # e.g. no table fits the segment budget
            self.cache[cfg] = None
            return None
        cand = Candidate(len(self.candidates), move, cfg, cost, metrics,
                         self.budget.meets(metrics), subset=self.subset)
        self.candidates.append(cand)
        self.cache[cfg] = cand
        best = (self.current or cand).costs.weight_memory_bits
        self.progress.update(len(self.candidates), self.phase, f"{best} weight-memory bits")
        return cand

    def begin(self, cand: Candidate | None, baseline: Candidate) -> None:
        if cand is None or not cand.meets:
            self.progress.done()
            raise SweepError(self._impossible(baseline))
        cand.accepted = True
        self.current, self.chain = cand, [cand]

    def _impossible(self, baseline: Candidate) -> str:
        m, has_labels = baseline.metrics, baseline.metrics["accuracy_fixed"] is not None
        got = (f"fixed {100 * m['accuracy_fixed']:.2f} % vs float {100 * m['accuracy_float']:.2f} %"
               if has_labels else "")
        if self.budget.h_error is not None:
            got += (", " if got else "") + f"h max abs error {m['h_max_abs_err']:.3g}"
        what = self.budget.describe(has_labels)
        if baseline.meets:
            return f"no candidate meets the budget ({what}) on the whole data set"
        return f"no candidate meets the budget ({what}): even the baseline misses it ({got})"

    def consider(self, cfg: Config, move: str) -> bool:
        """Judge ``cfg``; make it current when it meets the budget and costs less."""
        cand = self.judge(cfg, move)
        if cand is None or not cand.meets or objective(cand.costs) >= objective(self.current.costs):
            return False
        cand.accepted = True
        self.current = cand
        self.chain.append(cand)
        return True

    def descend(self, bisect_first: bool) -> None:
        def now():
            return self.current.config
        for pass_no in range(1, MAX_PASSES + 1):
            before = self.current
            for name in SEARCHED:
                self.phase = f"pass {pass_no}: {name}"
                _descend_tensor(name, now, self.consider, self.trim_int,
                                bisect_first and pass_no == 1)
            for table in now().tables:
                self.phase = f"pass {pass_no}: {table} segments"
                _descend_segments(table, now, self.consider)
            if self.current is before:
                break


def _descend_tensor(name: str, current, consider, trim_int: bool, bisect: bool) -> None:
    """Fewer fraction bits: bisection down from the current count on the first pass
    (``bisect``), one bit at a time on later passes; then (``trim_int``) fewer integer bits,
    one at a time."""
    fmt = current().fmt(name)
    if bisect:
        lo, hi = 0, fmt.frac              # hi meets the budget (it is the current config)
        while lo < hi:
            mid = (lo + hi) // 2
            if _try(current(), name, fmt.int_bits, mid, consider):
                hi = mid
            else:
                lo = mid + 1
    else:
        while True:
            fmt = current().fmt(name)
            if fmt.frac == 0 or not _try(current(), name, fmt.int_bits, fmt.frac - 1, consider):
                break
    if not trim_int or name in UNIT_RANGE or name == "h":
        return                            # integer bits stay as the range analysis set them
    while True:
        fmt = current().fmt(name)
        if fmt.int_bits <= 0 or not _try(current(), name, fmt.int_bits - 1, fmt.frac, consider):
            return


def _try(config: Config, name: str, int_bits: int, frac: int, consider) -> bool:
    old = config.fmt(name)
    if int_bits + 1 + frac < 2 or (name in TABLE_INPUTS and int_bits + 1 + frac > 24):
        return False
    try:
        cfg = with_format(config, name, int_bits, frac)
    except FixedPointError:
        return False
    return consider(cfg, f"{name} {old} -> {cfg.fmt(name)}")


def _descend_segments(table: str, current, consider) -> None:
    """Smallest segment budget (bisection) that keeps the budget and lowers the cost."""
    spec = current().tables[table]
    if spec.method != "pwl":
        return
    from .activations import build_table
    # any budget from the segments the table uses up to its budget gives the same table
    lo, hi = 2, min(spec.max_segments, build_table(spec).segments)
    while lo < hi:
        mid = (lo + hi) // 2
        old = current().tables[table].max_segments
        try:
            cfg = with_segments(current(), table, mid)
        except FixedPointError:
            lo = mid + 1
            continue
        if consider(cfg, f"{table} segments {old} -> {mid}"):
            hi = mid
        else:
            lo = mid + 1
