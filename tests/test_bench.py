"""``python -m bench`` commands: they run, their JSON has the documented keys, the golden
benchmark's bit-exactness check holds, bad input is one line and exit 2. No timing is
asserted (speed figures belong to the benchmarks, not to tests)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.__main__ import summarize

ROOT = Path(__file__).resolve().parent.parent


def bench(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "bench", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True)


def one_line_error(r, message: str):
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1 and message in r.stderr


def test_rtl_figures_are_the_closed_form(tmp_path):
    out = tmp_path / "rtl.json"
    r = bench("rtl", "--json", "--out", out)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert json.loads(out.read_text()) == result
    designs = result["designs"]
    assert [(d["name"], d["lanes"]) for d in designs] == \
        [("default", 8), ("notebook", 8), ("notebook", 16), ("notebook", 32)]
    for d in designs:
        bound = -(-4 * d["H"] * (d["X"] + d["H"]) // d["lanes"])
        assert d["mac_bound_cycles_per_step"] == bound
        assert d["cycles_per_step"] == bound + d["overhead_cycles"]
        assert d["mac_efficiency"] == pytest.approx(
            4 * d["H"] * (d["X"] + d["H"]) / (d["lanes"] * d["cycles_per_step"]))
    assert (designs[1]["X"], designs[1]["H"]) == (28, 128)
    assert result["cycles_per_step"] == designs[0]["cycles_per_step"]
    assert result["mac_efficiency"] >= 0.90


def test_golden_benchmark_checks_bit_exactness(tmp_path):
    r = bench("golden", "--json", "--repeat", "1", "--out", tmp_path / "g.json")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["bit_exact"] is True and result["shape"] == {"B": 256, "T": 28, "X": 28, "H": 128}
    for key in ("golden_vs_float_time_ratio", "golden_seconds", "float_seconds"):
        assert result[key] > 0
    assert [s["name"] for s in result["shapes"]] == ["notebook", "shipped"]
    assert all(s["fused"] and all(s["checks"].values()) for s in result["shapes"])


def test_synth_summary_is_read_from_the_full_report():
    report = json.loads((ROOT / "bench" / "results" / "synth-ecp5.json").read_text())
    s = summarize(report)
    assert (s["lut"], s["ff"], s["dsp"], s["bram"]) == tuple(
        report["resources"][k] for k in ("lut4", "ff", "dsp", "bram"))
    assert s["fmax_mhz"] == report["fmax_mhz"] and s["fits"] is report["fits_device"]


@pytest.mark.parametrize("args, message", [
    (["nonsense"], "unknown command 'nonsense'"),
    (["golden", "--repeat", "0"], "--repeat must be at least 1"),
    (["rtl", "--out", "no/such/dir/rtl.json"], "does not exist"),
    (["synth", "--details-dir", "no/such/dir"], "is not a directory"),
    (["synth", "--family", "xilinx"], "invalid choice"),
    (["scale", "--devices", "99k", "--dry-run"], "--devices: each must be one of 25k, 45k, 85k, not 99k"),
    (["scale", "--lanes", "a", "--dry-run"], "--lanes must be comma-separated integers, not a"),
    (["scale", "--lanes", "313", "--dry-run"], "--lanes must be from 1 to 2(X+H) = 312, not 313"),
    (["scale", "--lanes", "64,20", "--logic-lanes", "25", "--dry-run"],
     "--logic-lanes must be from 0 to the lane count, not 25 with P = 20"),
    (["scale", "--head-lanes", "11", "--dry-run"],
     "--head-lanes must be from 1 to the model's 10 classes, not 11"),
])
def test_bad_input_is_one_line(args, message):
    one_line_error(bench(*args), message)


def test_sim_command_dispatches_or_says_it_is_missing():
    if (ROOT / "bench" / "sim.py").exists():
        r = bench("sim", "--help")
        assert r.returncode == 0 and "usage" in r.stdout.lower()
    else:
        one_line_error(bench("sim"), "not available")


def test_help_lists_the_commands():
    r = bench("--help")
    assert r.returncode == 0 and all(c in r.stdout for c in ("golden", "rtl", "sim", "synth", "scale"))


def test_scale_says_what_cannot_fit_before_running_tools(tmp_path):
    """The notebook network (X=28, H=128, C=10): a lane's memory is ceil(ceil(79,872 / P) / 1024)
    DP16KD and the head's 1,280 weights two more, so P=64 needs 130 (the 45F has 108) and P=54
    110; P=78 needs 78 + 6 + 1 DSPs (the 45F has 72); the cycles per step are the closed form.
    --reuse fills a row from an earlier bench.synth report; images per second are
    Fmax / (T * cycles per step), the latency to a label adds the head's."""
    from rtl.top import LSTMCell
    build = tmp_path / "scale"
    build.mkdir()
    fake = {"resources": {"lut4": 1, "ff": 2, "dsp": 71, "bram": 130}, "fmax_mhz": 150.0,
            "cycles_per_step": 1295, "fits_device": True, "device": "LFE5U-85F-6CABGA381",
            "pnr": None}
    (build / "85k-P64.json").write_text(json.dumps(fake))
    out = tmp_path / "scale.json"
    r = bench("scale", "--devices", "45k,85k", "--lanes", "52,54,64,78", "--dry-run", "--reuse",
              "--build-dir", build, "--json", "--out", out)
    assert r.returncode == 0, r.stderr
    rows = {(x["device"], x["lanes"]): x for x in json.loads(r.stdout)["rows"]}
    assert rows["45k", 64]["fits"] is False and rows["45k", 64]["reason"] == "needs bram 130 > 108"
    assert rows["45k", 78]["reason"] == "needs dsp 85 > 72"
    assert rows["45k", 54]["reason"] == "needs bram 110 > 108"
    assert rows["45k", 52]["bram_needed"] == 106 and rows["45k", 52]["fits"] is None
    assert rows["85k", 64]["cycles_per_step"] == 79872 // 64 + LSTMCell.overhead_for(64) == 1295
    assert rows["85k", 64]["head_latency"] == 10 * 128 + 8
    assert rows["85k", 64]["latency_us"] == pytest.approx((28 * 1295 + 1288) / 150.0)
    assert rows["85k", 64]["images_per_s"] == pytest.approx(150e6 / (28 * 1295))


def _scale_rows(tmp_path, report: str, fake: dict, *args):
    """``bench scale --dry-run --reuse`` with one fake 85F report (``report``, e.g.
    ``85k-P149.json``) in its build directory: the rows by lane count."""
    build = tmp_path / "scale"
    build.mkdir(exist_ok=True)
    (build / report).write_text(json.dumps({"pnr": None, "fits_device": True,
                                            "device": "LFE5U-85F-6CABGA381", **fake}))
    r = bench("scale", "--devices", "85k", *args, "--dry-run", "--reuse", "--build-dir", build,
              "--json", "--out", tmp_path / "s.json")
    assert r.returncode == 0, r.stderr
    return {x["lanes"]: x for x in json.loads(r.stdout)["rows"]}


def test_scale_counts_the_heads_lanes(tmp_path):
    """--head-lanes 10 --head-multiplier lut: the head's ten products in logic (no DSP) from ten
    memories of one DP16KD each, all ten classes in H cycles: at P=149 the 85F's DSPs are the
    lanes' 149 and the cell's 6, and the latency to a label is the cell's plus the head's
    H + 2C + 7 + L_mul - 1 = 158 cycles (L_mul = 4 adder levels); with the products in DSP
    blocks P=149 cannot fit. The report files of such rows are named after the head."""
    from rtl.head import ClassifierHead
    from model.config import load_config
    rows = _scale_rows(tmp_path, "85k-P149-head10lut.json",
                       {"resources": {"lut4": 1, "ff": 2, "dsp": 155, "bram": 159},
                        "fmax_mhz": 125.0, "cycles_per_step": 586, "head_latency": 158},
                       "--lanes", "64,149", "--head-lanes", "10", "--head-multiplier", "lut")
    assert (rows[149]["dsp_needed"], rows[149]["bram_needed"]) == (155, 159)
    assert rows[149]["head_lanes"] == 10 and rows[149]["head_multiplier"] == "lut"
    assert rows[149]["head_latency"] == 158 == ClassifierHead.multiplier_latency(
        load_config(), "lut") + 128 + 2 * 10 + 6
    assert rows[149]["latency_us"] == pytest.approx((28 * 586 + 158) / 125.0)
    assert rows[64]["fits"] is None and rows[64]["dsp_needed"] == 64 + 6
    r = bench("scale", "--devices", "85k", "--lanes", "149", "--head-lanes", "10", "--dry-run",
              "--build-dir", tmp_path / "scale", "--json", "--out", tmp_path / "s2.json")
    row = json.loads(r.stdout)["rows"][0]
    assert row["fits"] is False and row["reason"] == "needs dsp 165 > 156"


def test_scale_counts_logic_lanes(tmp_path):
    """--logic-lanes 25: each row's last 25 lanes multiply in logic. At P = 174 > X+H = 156
    the 85F's DSPs are the 149 multiplier-block lanes, the cell's 6 and the odd rows' second
    sigmoid unit (156); a step is ceil(79,872 / 174) + 41 + 8 + 1 cycles (Booth products at
    16-bit weights add none); at P = 198 the DSPs do not fit. Report files are named after L."""
    rows = _scale_rows(tmp_path, "85k-P174-head10lut-L25.json",
                       {"resources": {"lut4": 1, "ff": 2, "dsp": 156, "bram": 184},
                        "fmax_mhz": 100.0, "cycles_per_step": 510, "head_latency": 158},
                       "--lanes", "174,198", "--logic-lanes", "25", "--head-lanes", "10",
                       "--head-multiplier", "lut")
    assert (rows[174]["dsp_needed"], rows[174]["bram_needed"]) == (156, 184)
    assert rows[174]["logic_lanes"] == 25
    assert rows[174]["cycles_per_step"] == 460 + 41 + 8 + 1 == 510
    assert rows[174]["latency_us"] == pytest.approx((28 * 510 + 158) / 100.0)
    assert rows[198]["fits"] is False and rows[198]["reason"] == "needs dsp 180 > 156"

