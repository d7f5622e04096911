"""The host's scoreboard: every code a board returned, compared with the golden model's
(raw integers, 0 mismatches is the only pass), reported as ``python -m sim`` reports a
mismatch (:func:`sim.scoreboard.describe_mismatch`), and the accuracy of the board's answers
next to the golden model's (docs/deploy.md, "Running")."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sim.scoreboard import MAX_REPORTED, describe_mismatch

__all__ = ["Comparison", "expected_outputs", "compare", "predictions"]


@dataclass
class Comparison:
    """What a run compared: per kind of output (``labels``, ``logits``, ``h``) the codes
    compared and the mismatched ones; the first reports."""

    sequences: int = 0
    compared: dict = field(default_factory=dict)
    mismatches: dict = field(default_factory=dict)
    reports: list = field(default_factory=list)

    @property
    def total_mismatches(self) -> int:
        return sum(self.mismatches.values())

    @property
    def passed(self) -> bool:
        return self.sequences > 0 and self.total_mismatches == 0


def expected_outputs(golden, kinds) -> dict:
    """The golden model's codes of each kind a board returns, per sequence: ``h`` the last
    step's h codes (B, H), ``logits`` the head's exact integer logits (B, C), ``labels`` their
    argmax (B,) (the first maximum, as ``numpy.argmax``)."""
    out = {}
    for kind in kinds:
        if kind == "h":
            out[kind] = np.asarray(golden.fixed["h"][:, -1])
        elif kind == "logits":
            out[kind] = np.asarray(golden.logits_raw)
        elif kind == "labels":
            out[kind] = predictions(golden.logits_raw)
        else:
            raise ValueError(f"unknown output kind {kind!r}")
    return out


def predictions(logits) -> np.ndarray:
    """Class of each row: the first maximum (exact on integer logits of any width)."""
    return np.asarray(np.asarray(logits, dtype=object).argmax(axis=1), dtype=np.int64)


def compare(golden, received: dict, first_sequence: int, into: Comparison) -> Comparison:
    """Add one chunk of sequences (``first_sequence`` onwards) to ``into``: ``received`` maps
    each kind the board returned to its codes, shaped like :func:`expected_outputs`'s."""
    fracs = {"h": golden.config.fmt("h").frac, "labels": 0}
    if golden.logits_raw is not None:
        fracs["logits"] = golden.cell.head_frac
    n = None
    for kind, got in received.items():
        got = np.asarray(got)
        n = got.shape[0]
        want = expected_outputs(golden, [kind])[kind][first_sequence:first_sequence + n]
        want2, got2 = want.reshape(n, -1), got.reshape(n, -1)
        bad = np.argwhere(want2 != got2)
        into.compared[kind] = into.compared.get(kind, 0) + want2.size
        into.mismatches[kind] = into.mismatches.get(kind, 0) + len(bad)
        for b, unit in bad[:max(0, MAX_REPORTED - len(into.reports))]:
            into.reports.append(describe_mismatch(first_sequence + int(b), None, int(unit), kind,
                                                  int(want2[b, unit]), int(got2[b, unit]),
                                                  fracs[kind]))
    into.sequences += n or 0
    return into
