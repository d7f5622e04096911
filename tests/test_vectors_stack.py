"""The Verilog-only flow on a stacked model, exactly as docs/vectors.md gives it: `python -m model
vectors`, `python -m rtl --single-ports`, then iverilog and vvp on sim/verilog/tb_vectors.v
with no plusarg but +vectors (a stack's vectors default to +noload)."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from helpers_import import python_m

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def stack_files(tmp_path_factory):
    """A 2-layer PyTorch-named model, X=3 -> H=4 -> H=5 (different H), and 3 sequences of 4 steps."""
    d = tmp_path_factory.mktemp("vstack")
    rng = np.random.default_rng(21)
    arrays = {}
    for k, (X, H) in enumerate([(3, 4), (4, 5)]):
        arrays[f"lstm.weight_ih_l{k}"] = rng.uniform(-0.6, 0.6, (4 * H, X))
        arrays[f"lstm.weight_hh_l{k}"] = rng.uniform(-0.6, 0.6, (4 * H, H))
        arrays[f"lstm.bias_ih_l{k}"] = rng.uniform(-0.3, 0.3, 4 * H)
        arrays[f"lstm.bias_hh_l{k}"] = rng.uniform(-0.3, 0.3, 4 * H)
    np.savez(d / "m.npz", **arrays)
    np.save(d / "x.npy", rng.uniform(-1, 1, (3, 4, 3)))
    return d


def test_stacked_vectors_run_on_the_single_port_design(stack_files, tmp_path):
    pytest.importorskip("amaranth")
    if shutil.which("iverilog") is None:
        pytest.skip("needs Icarus Verilog")
    d, v = stack_files, tmp_path / "v"
    p = python_m("model", "vectors", "--weights", d / "m.npz", "--inputs", d / "x.npy", "--out", v)
    assert p.returncode == 0, p.stderr
    assert "2-layer model" in p.stdout and "--single-ports" in p.stdout
    m = json.loads((v / "manifest.json").read_text())
    assert (m["X"], m["H"], m["steps"], m["loads"]) == (3, 5, 12, False)
    assert "`define LSTM_NOLOAD 1" in (v / "params.vh").read_text()
    p = python_m("rtl", "--weights", d / "m.npz", "--single-ports", "--out", v / "lstm_cell.v")
    assert p.returncode == 0, p.stderr
    assert "single-cell ports" in p.stdout
    subprocess.run(["iverilog", "-g2005", f"-I{v}", "-o", str(tmp_path / "tb.vvp"),
                    str(REPO / "sim" / "verilog" / "tb_vectors.v"), str(v / "lstm_cell.v")],
                   check=True, capture_output=True, text=True, timeout=300)
    run = subprocess.run(["vvp", "-n", str(tmp_path / "tb.vvp"), f"+vectors={v}"],
                         capture_output=True, text=True, timeout=600)
    assert "tb_vectors: 12 steps passed, 0 failed" in run.stdout, run.stdout[-2000:]
    assert "result=PASS compared=60 compared_c=60 mismatches=0" in run.stdout
    assert "load=0" in run.stdout


def test_the_plain_stack_export_keeps_its_per_layer_ports(stack_files, tmp_path):
    pytest.importorskip("amaranth")
    p = python_m("rtl", "--weights", stack_files / "m.npz", "--out", tmp_path / "s.v")
    assert p.returncode == 0, p.stderr
    text = (tmp_path / "s.v").read_text()
    assert "weights_l1__payload" in text and "single-cell ports" not in p.stdout


def test_stacked_vectors_refuse_a_random_state(stack_files, tmp_path):
    p = python_m("model", "vectors", "--weights", stack_files / "m.npz", "--inputs",
                 stack_files / "x.npy", "--state", "random", "--out", tmp_path / "v")
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "zero state" in p.stderr
