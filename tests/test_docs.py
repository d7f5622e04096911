"""The documentation stays true: the repository cites nothing outside itself, and the timing
diagram's simulation (docs/make_timing.py) still runs, matches the golden model and the
closed-form cycles per step that docs/architecture.md states."""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
TEXT_SUFFIXES = {".py", ".md", ".toml", ".txt", ".v", ".sv", ""}
SKIP_DIRS = {".git", ".venv", "build", "sim_build", "__pycache__", ".pytest_cache"}
#: What a stand-alone repository must not cite (built from pieces so this file does not).
OUTSIDE = re.compile("DESIGN" + r"\.md|\.\./" + "shared")


def repository_text_files():
    for path in REPO.rglob("*"):
        parts = path.relative_to(REPO).parts
        if any(part in SKIP_DIRS or part.endswith(".egg-info") for part in parts):
            continue
        if path.is_file() and path.suffix in TEXT_SUFFIXES:       # "" is the Makefile
            yield path


def test_nothing_cites_files_outside_the_repository():
    cited = [f"{p.relative_to(REPO)}:{n}" for p in repository_text_files()
             for n, line in enumerate(p.read_text(errors="replace").splitlines(), 1)
             if OUTSIDE.search(line)]
    assert not cited, cited


def _load_make_timing():
    spec = importlib.util.spec_from_file_location("make_timing", REPO / "docs" / "make_timing.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_timing_diagram_simulation_matches_the_closed_form():
    """Two steps of X=2, H=2, P=4 (the script itself checks h against the golden model):
    h_0 is valid cycles_per_step cycles after x_0 is accepted, and that is ceil(32/4) + overhead (43 at P = 4)."""
    pytest.importorskip("amaranth")
    timing = _load_make_timing()
    samples, dut = timing.simulate_two_steps()
    col = {name: samples[:, k] for k, name in enumerate(timing.SIGNALS)}
    accepted = np.flatnonzero(col["x.valid"] & col["x.ready"])
    taken = np.flatnonzero(col["h.valid"] & col["h.ready"])
    h_valid = np.flatnonzero(np.diff(col["h.valid"]) == 1) + 1
    assert len(accepted) == 2 and len(taken) == 2
    assert col["x.first"][accepted[0]] == 1 and col["x.first"][accepted[1]] == 0
    assert dut.cycles_per_step == -(-4 * 2 * (2 + 2) // 4) + dut.overhead == 8 + 43
    assert h_valid[0] - accepted[0] == dut.cycles_per_step
    # h_0 waits for the stalled consumer; x_1 is accepted before h_0 is taken
    assert taken[0] - h_valid[0] == timing.STALL + 1 and accepted[1] < taken[0]


def test_timing_diagram_png_is_drawn(tmp_path):
    pytest.importorskip("matplotlib")
    pytest.importorskip("amaranth")
    timing = _load_make_timing()
    assert timing.main(["--out", str(tmp_path / "t.png")]) == 0
    assert (tmp_path / "t.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
