"""Long randomised RTL-vs-golden regression (``make regress``; not part of ``make test``).

COUNT random configurations (default 20) of STEPS steps each (default 5000), from SEED
(default 0), on SIM (default icarus): random odd sizes, lanes, formats, rounding and overflow
modes per tensor, PWL and PLAN tables, random input gaps and output stalls, a reset in the
middle of a step, then 1 to 3 weight packets and 1 to 3 state packets offered concurrently
with the steps at random times (with random gaps inside the packets). Zero mismatches is the
only pass. A summary line per configuration goes to build/regress-<sim>.jsonl. ``make regress``
runs the configurations in parallel (pytest-xdist, one worker per core); SHARD=k/N runs every
N-th one (tests/helpers_regress.py) for a CI matrix, merged by ``python -m bench.merge_regress``.
"""
import json
import os
from pathlib import Path

import pytest

from helpers_regress import log_name, shard_seeds
from helpers_sim import full_scenario, random_case
from sim.runner import run_scenario

COUNT = int(os.environ.get("COUNT", 20))
STEPS = int(os.environ.get("STEPS", 5000))
SEED = int(os.environ.get("SEED", 0))
SIM = os.environ.get("SIM", "icarus")
SHARD = os.environ.get("SHARD", "")       # k/N: every N-th configuration (helpers_regress)
LOG = Path(__file__).resolve().parent.parent / "build" / log_name(SIM, SHARD)


@pytest.mark.slow
@pytest.mark.parametrize("seed", shard_seeds(SEED, COUNT, SHARD))
def test_random_configuration(seed):
    cfg, X, H, lanes, weights = random_case(seed, default_formats=(seed % 5 == 0))
    loads = 1 + seed % 3
    sc = full_scenario(cfg, weights, lanes, seed=seed, steps=STEPS, loads=loads)
    result = run_scenario(sc, SIM, lanes=lanes)
    r = result.results
    methods = sorted({t.method for t in cfg.tables.values()})
    modes = sorted({f"{s.round}/{s.overflow}" for s in cfg.tensors.values()})
    LOG.parent.mkdir(exist_ok=True)
    with LOG.open("a") as f:
        f.write(json.dumps({"seed": seed, "simulator": SIM, "X": X, "H": H, "lanes": lanes,
                            "methods": methods, "modes": modes, "loads": r["loads"],
                            "steps": r["steps"], "dropped": r["dropped"],
                            "compared": r["compared"], "compared_c": r["compared_c"],
                            "mismatches": r["mismatches"], "missing": r["missing"],
                            "cycles": r["cycles"], "seconds": round(result.seconds, 1)}) + "\n")
    assert result.passed, "\n".join(r["reports"][:5]) or f"see {result.log}"
    # every step sent is either compared or was in flight at the reset (one or two)
    assert r["sent"] == sc.n_steps >= STEPS
    assert r["steps"] + r["dropped"] == r["sent"] and 1 <= r["dropped"] <= 2
    assert r["loads"] == {"weights": loads, "state": loads} and r["error"] == 0
