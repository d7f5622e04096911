"""Sharding of the long regression (SHARD=k/N, tests/helpers_regress.py) and the merge of its
JSON lines (bench/merge_regress.py). Nothing here simulates: pytest only collects."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.merge_regress import main as merge
from helpers_regress import log_name, parse_shard, shard_seeds

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("count, n", [(20, 1), (20, 3), (7, 7), (5, 8), (1, 2), (0, 3), (101, 4)])
def test_shards_partition_the_configurations(count, n):
    seed = 11
    shards = [shard_seeds(seed, count, f"{k}/{n}") for k in range(n)]
    every = sorted(s for shard in shards for s in shard)
    assert every == list(range(seed, seed + count))            # each exactly once
    for k, shard in enumerate(shards):
        assert all((s - seed) % n == k for s in shard)          # configuration i -> shard i mod N
        assert len(shard) in (count // n, -(-count // n))        # balanced
    assert shard_seeds(seed, count, "") == shard_seeds(seed, count, None) == every


@pytest.mark.parametrize("text", ["1", "a/b", "3/3", "-1/2", "0/0", "1/2/3"])
def test_bad_shard_is_refused(text):
    with pytest.raises(ValueError, match="SHARD"):
        parse_shard(text)


def test_each_shard_has_its_own_log():
    assert log_name("icarus", "") == "regress-icarus.jsonl"
    assert log_name("verilator", "2/5") == "regress-verilator-shard2of5.jsonl"


def collected(env: dict) -> list[str]:
    r = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", "slow",
                        "-p", "no:cacheprovider", "tests/test_sim_regress.py"],
                       cwd=ROOT, capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT), **env})
    assert r.returncode in (0, 5), r.stdout + r.stderr        # 5: nothing collected
    return [line.split("[")[1].rstrip("]") for line in r.stdout.splitlines() if "::" in line]


def test_regression_collects_its_shard():
    """The regression module itself, as make regress runs it (COUNT=7, SEED=3, 3 shards)."""
    base = {"COUNT": "7", "SEED": "3", "STEPS": "10"}
    assert collected(base) == [str(s) for s in range(3, 10)]
    shards = [collected({**base, "SHARD": f"{k}/3"}) for k in range(3)]
    assert shards == [["3", "6", "9"], ["4", "7"], ["5", "8"]]


# ---- merging -------------------------------------------------------------------------------

def line(seed, sim="verilator", mismatches=0, **kw):
    return {"seed": seed, "simulator": sim, "X": 3, "H": 4, "lanes": 2, "steps": 100,
            "dropped": 1, "compared": 400, "compared_c": 400, "mismatches": mismatches,
            "missing": 0, "cycles": 5000, "seconds": 1.5, **kw}


def write(path: Path, lines) -> Path:
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


def test_merge_joins_shards_sorted_and_totals(tmp_path, capsys):
    a = write(tmp_path / "a.jsonl", [line(0), line(2), line(4)])
    # a configuration run twice (the same results, another wall time) is kept once
    b = write(tmp_path / "b.jsonl", [line(3), line(1), line(1, seconds=9.0)])
    out = tmp_path / "merged.jsonl"
    assert merge([str(a), str(b), "--out", str(out), "--expect", "0:5", "--json"]) == 0
    totals = json.loads(capsys.readouterr().out)["verilator"]
    assert totals["configurations"] == 5 and totals["compared"] == 2000
    assert totals["mismatches"] == 0 and totals["absent"] == [] and totals["failed"] == []
    assert [json.loads(x)["seed"] for x in out.read_text().splitlines()] == [0, 1, 2, 3, 4]


def test_merge_reports_failures_and_absent_configurations(tmp_path, capsys):
    a = write(tmp_path / "a.jsonl", [line(0), line(2, mismatches=3)])
    assert merge([str(a), "--expect", "0:4"]) == 1
    text = capsys.readouterr().out
    assert "failed seeds: 2" in text and "absent seeds: 1, 3" in text


@pytest.mark.parametrize("content, message", [
    ("not json\n", "not a JSON line"),
    ('{"seed": 1}\n', "needs seed, simulator, mismatches"),
])
def test_merge_refuses_bad_lines(tmp_path, capsys, content, message):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(content)
    assert merge([str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_merge_refuses_conflicting_duplicates(tmp_path, capsys):
    a = write(tmp_path / "a.jsonl", [line(5)])
    b = write(tmp_path / "b.jsonl", [line(5, mismatches=1)])
    out = tmp_path / "merged.jsonl"
    assert merge([str(a), str(b), "--out", str(out)]) == 2
    assert "seed 5 appears twice" in capsys.readouterr().err and not out.exists()
