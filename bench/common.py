"""What every ``python -m bench`` command shares: the machine description, timing, the
results file (``build/bench/<name>.json`` unless ``--out`` says otherwise) and the options."""
from __future__ import annotations

import json
import os
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

from model.cli import ArgumentParser, atomic_write, check_target, shown

#: Where results go by default; the committed reference copies live in bench/results/ and
#: are refreshed only by ``make bench-record``.
BUILD = Path("build") / "bench"
RESULTS = Path(__file__).resolve().parent / "results"


def parser(name: str, description: str) -> ArgumentParser:
    ap = ArgumentParser(prog=f"python -m bench {name}", description=description)
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    ap.add_argument("--out", metavar="FILE.json",
                    help=f"results file (default {BUILD / (name + '.json')})")
    return ap


def target(args, name: str) -> Path:
    """The results file, checked before any work is done."""
    if args.out:
        return check_target(args.out, "--out")
    BUILD.mkdir(parents=True, exist_ok=True)
    return BUILD / f"{name}.json"


def machine() -> dict:
    """The machine a figure was measured on (cores, CPU, Python, numpy, date)."""
    import numpy as np
    from sim.batch import cpu_model
    return {"cores": os.cpu_count(), "cpu": cpu_model(), "system": platform.system(),
            "python": platform.python_version(), "numpy": np.__version__,
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def best_of(functions: dict, repeat: int) -> tuple[dict, dict]:
    """Best time of each function over ``repeat`` rounds, run interleaved (one call of each per
    round) so that a noisy, shared machine disturbs every candidate alike.

    Returns ``(cpu, wall)``: the best CPU time of this process (``time.process_time``: what
    the figure is taken from, as it does not count time given to other processes on a shared
    machine) and the best wall-clock time.
    """
    cpu = {name: [] for name in functions}
    wall = {name: [] for name in functions}
    for _ in range(repeat):
        for name, fn in functions.items():
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            fn()
            cpu[name].append(time.process_time() - start_cpu)
            wall[name].append(time.perf_counter() - start_wall)
    return {n: min(t) for n, t in cpu.items()}, {n: min(t) for n, t in wall.items()}


def finish(args, out: Path, result: dict, print_table) -> int:
    """Write the results file; print the JSON object or the table."""
    text = json.dumps(result, indent=2) + "\n"
    atomic_write(out, lambda f: f.write(text), mode="w")
    if args.json:
        print(json.dumps(result))
    else:
        print_table(result)
        print(f"wrote {shown(out)}")
    return 0
