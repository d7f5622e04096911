"""`python -m model vectors` and the plain Verilog-2005 testbench sim/verilog/tb_vectors.v
under Icarus (no cocotb): the files hold the RTL's own port payloads, every output is compared,
gaps and stalls change nothing, and a wrong expectation or a hung design makes it fail."""
import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers_sim import random_case
from model.config import load_config
from model.golden import quantize_inputs, run_golden
from model.shipped import DEFAULT_WEIGHTS, load_heldout
from model.vectors import (hex_lines, load_order, make_vectors, pack, pack_hex, random_state,
                           vectors_of_run, write_vectors)
from model.weights import load_weights, quantize_weights, save_weights
from rtl.__main__ import export_verilog
from rtl.geometry import Geometry
from rtl.top import LSTMCell, stream_layouts
from rtl_helpers import random_weights
from sim.batch import build_testbench, decode_dump, run_testbench, run_vectors
from sim.ports import Packer

ROOT = Path(__file__).resolve().parent.parent


def small_case(seed=10, *, state=False, B=4, T=5):
    """X=7, H=9, P=5, random formats (11-bit weights, 6-bit biases: the narrower one is
    sign-extended in the load word)."""
    cfg, X, H, lanes, weights = random_case(seed)
    rng = np.random.default_rng(seed)
    qw = quantize_weights(weights, cfg)
    x_raw, _ = quantize_inputs(cfg, rng.normal(0, 2, (B, T, X)))
    h0, c0 = random_state(cfg, H, seed) if state else (None, None)
    return make_vectors(cfg, qw, x_raw, h0=h0, c0=c0, lanes=lanes), lanes


def read_hex(path):
    return [int(line, 16) for line in Path(path).read_text().split()]


def test_load_order_is_the_rtls():
    for seed in range(6):
        cfg, X, H, lanes, weights = random_case(seed)
        qw = quantize_weights(weights, cfg)
        assert load_order(qw).tolist() == Geometry.of(cfg, qw, lanes).load_words(qw)


def test_files_hold_the_port_payloads(tmp_path):
    """Decoded with the RTL's own stream layouts, every file gives back the golden codes."""
    vectors, lanes = small_case(state=True)
    cfg, qw = vectors.config, vectors.qweights
    X, H = qw.n_inputs, qw.n_hidden
    m = write_vectors(tmp_path, vectors)
    step, out, state = (Packer(layout) for layout in stream_layouts(cfg, X, H))
    xs = [step.unpack(w) for w in read_hex(tmp_path / "x.hex")]
    assert [s["x"] for s in xs] == vectors.x_raw.reshape(-1, X).tolist()
    B, T = vectors.x_raw.shape[:2]
    assert [s["first"] for s in xs] == ([1] + [0] * (T - 1)) * B
    assert [s["last"] for s in xs] == ([0] * (T - 1) + [1]) * B
    outs = [out.unpack(w) for w in read_hex(tmp_path / "expected.hex")]
    assert [o["h"] for o in outs] == vectors.h.reshape(-1, H).tolist()
    assert [o["c"] for o in outs] == vectors.c.reshape(-1, H).tolist()
    states = [state.unpack(w) for w in read_hex(tmp_path / "state.hex")]
    assert [s["h"] for s in states] == vectors.h0.tolist()
    assert [s["c"] for s in states] == vectors.c0.tolist()
    # data words: sign-extended codes at max(W_weight, W_bias) bits
    dw = max(cfg.fmt("weight").bits, cfg.fmt("bias").bits)
    words = [w - (1 << dw) if w >> (dw - 1) else w for w in read_hex(tmp_path / "weights.hex")]
    assert words == Geometry.of(cfg, qw, lanes).load_words(qw)
    assert m["load_words"] == len(words) == 4 * H * (X + H) + 4 * H
    assert all(len(read_hex(tmp_path / name)) == f["words"] for name, f in m["files"].items())
    assert m["steps"] == B * T and m["mac_bound_cycles_per_step"] == -(-4 * H * (X + H) // lanes)
    assert m["cycles_per_step"] is None and json.loads((tmp_path / "manifest.json").read_text()) == m
    vh = dict(re.findall(r"`define LSTM_(\w+) (\d+)", (tmp_path / "params.vh").read_text()))
    assert (int(vh["X"]), int(vh["H"]), int(vh["STEPS"]), int(vh["DATA_BITS"])) == (X, H, B * T, dw)


def test_cli_writes_vectors_and_refuses_bad_targets(tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "model", "vectors", *args],
                              capture_output=True, text=True, cwd=ROOT)

    done = run("--limit", "2", "--out", str(tmp_path / "v"))
    assert done.returncode == 0, done.stderr
    m = json.loads((tmp_path / "v" / "manifest.json").read_text())
    assert (m["sequences"], m["steps"], m["X"], m["H"]) == (2, 16, 8, 32)
    user = random_weights(np.random.default_rng(1), 3, 5)
    save_weights(tmp_path / "w.npz", user)
    np.save(tmp_path / "x.npy", np.random.default_rng(2).normal(0, 1, (4, 6, 3)))
    done = run("--weights", str(tmp_path / "w.npz"), "--inputs", str(tmp_path / "x.npy"),
               "--no-c", "--state", "random", "--out", str(tmp_path / "u"))
    assert done.returncode == 0, done.stderr
    m = json.loads((tmp_path / "u" / "manifest.json").read_text())
    assert (m["X"], m["H"], m["steps"], m["output_c"]) == (3, 5, 24, False)
    assert m["widths"]["h_payload"] == 5 * m["widths"]["h"]
    assert any(int(w, 16) for w in (tmp_path / "u" / "state.hex").read_text().split())
    (tmp_path / "file").write_text("")
    for args, words in ((["--out", str(tmp_path / "file")], "not a directory"),
                        (["--limit", "0", "--out", str(tmp_path / "w")], "--limit"),
                        (["--out", str(tmp_path / "no" / "such")], "does not exist")):
        done = run(*args)
        assert done.returncode == 2 and done.stdout == ""
        assert done.stderr.startswith("error: ") and words in done.stderr
        assert done.stderr.count("\n") == 1
    assert not (tmp_path / "w").exists()


def _check_pass(result, vectors):
    B, T, H = vectors.h.shape
    tb = result.tb
    assert result.passed, "\n".join(tb.reports) or f"see {tb.log}"
    assert tb["compared"] == tb["compared_c"] == B * T * H
    assert tb["steps"] == tb["expected_steps"] == B * T
    assert tb["mismatches"] == 0 and result.mismatches_dump == 0
    assert np.array_equal(result.h, vectors.h) and np.array_equal(result.c, vectors.c)


@pytest.mark.parametrize("gap, stall", [(0, 0), (30, 40)])
def test_icarus_small_odd_model(gap, stall):
    vectors, lanes = small_case()
    result = run_vectors(vectors, "icarus", lanes=lanes, gap=gap, stall=stall, seed=5)
    _check_pass(result, vectors)
    steps = vectors.n_steps
    cycles_per_step = result.extra["cycles_per_step_design"]
    if gap == stall == 0:     # back to back: the closed form, exactly
        assert result.tb["step_cycles"] == steps * cycles_per_step
    else:                     # gaps and stalls stretch the run (not a step's own cycles)
        assert result.tb["step_cycles"] >= steps * cycles_per_step
        assert result.tb["cycles"] > steps * cycles_per_step


@pytest.mark.parametrize("gap, stall", [(0, 0), (20, 20)])
def test_icarus_shipped_model(gap, stall):
    cfg, weights = load_config(), load_weights(DEFAULT_WEIGHTS)
    x, _ = load_heldout(weights.n_inputs, weights.head_weight.shape[0])
    vectors = vectors_of_run(run_golden(cfg, weights, x[:2]))
    result = run_vectors(vectors, "icarus", gap=gap, stall=stall, seed=3)
    _check_pass(result, vectors)


def test_icarus_design_without_c():
    """A design built without c on its output: the vectors and the testbench carry h alone."""
    vectors, lanes = small_case(B=2, T=3)
    vectors = dataclasses.replace(vectors, output_c=False)
    result = run_vectors(vectors, "icarus", lanes=lanes, stall=30)
    assert result.passed and result.c is None
    assert result.tb["compared"] == vectors.h.size and result.tb["compared_c"] == 0
    assert np.array_equal(result.h, vectors.h)


def _corrupt_one_h(run_dir):
    """Flip the lowest bit of unit 0's h in the second expected output."""
    path = run_dir / "expected.hex"
    lines = path.read_text().split("\n")
    lines[1] = f"{int(lines[1], 16) ^ 1:0{len(lines[1])}x}"
    path.write_text("\n".join(lines))


def test_one_wrong_expectation_is_one_mismatch():
    vectors, lanes = small_case()
    result = run_vectors(vectors, "icarus", lanes=lanes, corrupt=_corrupt_one_h)
    tb = result.tb
    assert not result.passed and tb["mismatches"] == 1
    assert result.mismatches_dump == 0      # the design was right: the dump says so
    assert len(tb.reports) == 1 and "step 1 (sequence 0 step 1) unit 0 h" in tb.reports[0]
    text = tb.log.read_text()
    assert f"{vectors.n_steps - 1} steps passed, 1 failed" in text and "result=FAIL" in text


def test_a_hung_design_times_out(tmp_path):
    """No transfer for longer than the bound (here shorter than one step): FAIL, timeout=1."""
    vectors, lanes = small_case()
    dut = LSTMCell(vectors.config, vectors.qweights, lanes=lanes)
    m = write_vectors(tmp_path, vectors, cycles_per_step=dut.cycles_per_step)
    tb = build_testbench(export_verilog(dut), m, "icarus")
    result = run_testbench(tb, "icarus", tmp_path, steps=vectors.n_steps, load=False,
                           timeout_cycles=dut.cycles_per_step // 2)
    assert not result.passed and result["timeout"] == 1 and result["steps"] == 0
    assert result.reports and result.reports[0].startswith("timeout: no transfer for")


def _has_load_framing(verilog: str, vectors) -> bool:
    """The exported design takes data, first and last on its weights port."""
    found = re.search(r"input \[(\d+):0\] weights__payload", verilog)
    return found is not None and int(found.group(1)) + 1 == vectors.widths()["weights_payload"]


def test_weight_and_state_load_through_the_ports():
    """A design exported with one set of weights runs another after the testbench loads it
    (and a random initial state); without the load the same vectors fail."""
    vectors, lanes = small_case(state=True)
    cfg = vectors.config
    other = quantize_weights(random_weights(np.random.default_rng(99), vectors.n_inputs,
                                            vectors.n_hidden), cfg)
    verilog = export_verilog(LSTMCell(cfg, other, lanes=lanes))
    if not _has_load_framing(verilog, vectors):
        pytest.skip("the exported weights port has no `last` field yet (payload is data, first): "
                    "the load framing data, first, last is not in this RTL")
    loaded = run_vectors(vectors, "icarus", lanes=lanes, load=True, gap=20, stall=20,
                         verilog_text=verilog)
    _check_pass(loaded, vectors)
    assert loaded.tb["load"] == 1
    unloaded = run_vectors(vectors, "icarus", lanes=lanes, load=False, verilog_text=verilog)
    assert not unloaded.passed and unloaded.tb["mismatches"] > 0


def test_dump_decoding_signs_and_unknown_bits(tmp_path):
    """Dumped payloads decode to signed codes; a code with x or z bits (Icarus) matches none."""
    vectors, _ = small_case(B=1, T=2)
    H, wc = vectors.n_hidden, vectors.widths()["c"]
    words = vectors.words()["expected.hex"][0]
    digits = -(-vectors.widths()["step_payload"] // 4)
    lines = [f"{w:0{digits}x}" for w in words]
    lines[1] = "x" + lines[1][1:]               # top digit: the last unit's c
    (tmp_path / "dump.hex").write_text("\n".join(lines) + "\n")
    h, c = decode_dump(tmp_path / "dump.hex", vectors)
    assert np.array_equal(h, vectors.h.reshape(-1, H))
    assert c[0].tolist() == vectors.c[0, 0].tolist()
    assert c[1, :-1].tolist() == vectors.c[0, 1, :-1].tolist() and c[1, -1] == 1 << wc


def test_fast_packing_equals_the_integer_packing():
    """pack_hex (numpy bit arrays) writes exactly what the Python-integer packing writes."""
    rng = np.random.default_rng(7)
    for _ in range(200):
        n, fields, total = int(rng.integers(1, 6)), [], 0
        for _ in range(int(rng.integers(1, 4))):
            w, k = int(rng.integers(1, 63)), int(rng.integers(1, 5))
            low = -(1 << (w - 1)) if w > 1 else 0
            fields.append((rng.integers(low, 1 << max(w - 1, 1), (n, k)), w))
            total += w * k
        assert pack_hex(fields, n, total) == hex_lines(pack(fields, n), total)
    vectors, _ = small_case()
    assert vectors.files() == {name: hex_lines(words, width)
                               for name, (words, width) in vectors.words().items()}
