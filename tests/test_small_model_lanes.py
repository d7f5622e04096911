"""A model with X+H below the config's [rtl] lanes (8 by default): without --lanes every
command takes P = X+H and says so in one line; an explicit --lanes may go up to 2(X+H), and
beyond that stays an error."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers_import import python_m
from model.config import load_config
from model.weights import LSTMWeights, save_weights

REPO = Path(__file__).resolve().parent.parent
X, H = 3, 4                                           # X+H = 7 < the default's 8 lanes
NOTE = "note: the config's [rtl] lanes = 8 is more than this model's X+H; using P = 7 (--lanes sets P)"


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    d = tmp_path_factory.mktemp("small")
    rng = np.random.default_rng(3)
    save_weights(d / "m.npz", LSTMWeights(rng.uniform(-0.5, 0.5, (4 * H, X)),
                                          rng.uniform(-0.5, 0.5, (4 * H, H)), rng.uniform(-0.5, 0.5, 4 * H)))
    np.save(d / "x.npy", rng.uniform(-1, 1, (2, 3, X)))
    return d


def test_lanes_for_caps_the_config_at_x_plus_h():
    config = load_config()
    assert config.lanes == 8
    assert config.lanes_for(3, 4) == 7 and config.lanes_for(8, 32) == 8 and config.lanes_for(1, 1) == 2


def test_rtl_takes_x_plus_h_lanes_and_says_so(small, tmp_path):
    pytest.importorskip("amaranth")
    p = python_m("rtl", "--weights", small / "m.npz", "--out", tmp_path / "m.v")
    assert p.returncode == 0, p.stderr
    assert p.stderr.strip() == NOTE and "P=7" in p.stdout


def test_an_explicit_lanes_beyond_twice_x_plus_h_is_refused(small, tmp_path):
    pytest.importorskip("amaranth")
    p = python_m("rtl", "--weights", small / "m.npz", "--lanes", "8", "--out", tmp_path / "m.v")
    assert p.returncode == 0 and "P=8" in p.stdout and "note:" not in p.stderr     # X+H < P
    p = python_m("rtl", "--weights", small / "m.npz", "--lanes", "15", "--out", tmp_path / "m.v")
    assert p.returncode == 2 and "lanes must be at most 2(X+H) = 14" in p.stderr and "note:" not in p.stderr


def test_the_default_model_gets_no_note(tmp_path):
    pytest.importorskip("amaranth")
    p = python_m("rtl", "--out", tmp_path / "d.v")
    assert p.returncode == 0 and "note:" not in p.stderr


def test_vectors_take_x_plus_h_lanes(small, tmp_path):
    p = python_m("model", "vectors", "--weights", small / "m.npz", "--inputs", small / "x.npy",
                 "--out", tmp_path / "v")
    assert p.returncode == 0, p.stderr
    assert p.stderr.strip() == NOTE
    assert json.loads((tmp_path / "v" / "manifest.json").read_text())["lanes"] == 7


def test_sim_runs_a_small_model_with_the_default_config(small, tmp_path):
    """python -m sim takes P = X+H with the note; run from another working directory with
    LSTM_SIM_DIR set, its build lands there, not in the repository's build/sim."""
    pytest.importorskip("cocotb")
    import os
    env = {**os.environ, "LSTM_SIM_DIR": "cache", "PYTHONPATH": str(REPO)}
    p = subprocess.run([sys.executable, "-m", "sim", "--weights", small / "m.npz", "--inputs",
                        small / "x.npy", "--sim", "icarus", "--json"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    assert NOTE in p.stderr
    r = json.loads(p.stdout)
    assert r["passed"] and r["mismatches"] == 0 and r["compared"] == 2 * 3 * H
    assert Path(r["log"]).is_relative_to(tmp_path / "cache")
    assert any((tmp_path / "cache").glob("icarus-*"))
