"""Long randomised RTL-vs-golden regression (``make regress``; not part of ``make test``).

COUNT random configurations (default 20) of STEPS steps each (default 5000), from SEED
(default 0), on SIM (default icarus): L = 1, 2 or 3 stacked layers (drawn per configuration),
random odd sizes, lanes, formats, rounding and overflow modes per tensor (per layer: every
deeper layer gets its own ``[layers.K.formats]``), PWL and PLAN tables, random input gaps and
output stalls, a reset in the middle of a step (for a stack: anywhere in its latency), then 1
to 3 weight packets and 1 to 3 state packets (each on a random layer) offered concurrently
with the steps at random times (with random gaps inside the packets); about half the
configurations have a classifier head on chip (C = 1..12 classes, random codes: every logit
and label compared). Zero mismatches is the only pass. A summary line per configuration goes to build/regress-<sim>.jsonl. ``make regress``
runs the configurations in parallel (pytest-xdist, one worker per core); SHARD=k/N runs every
N-th one (tests/helpers_regress.py) for a CI matrix, merged by ``python -m bench.merge_regress``.
"""
import json
import os
from pathlib import Path

import pytest

from helpers_regress import log_name, shard_seeds
import numpy as np

from helpers_sim import add_random_head, full_scenario, random_case, random_stack_case
from sim.runner import run_scenario

COUNT = int(os.environ.get("COUNT", 20))
STEPS = int(os.environ.get("STEPS", 5000))
SEED = int(os.environ.get("SEED", 0))
SIM = os.environ.get("SIM", "icarus")
SHARD = os.environ.get("SHARD", "")       # k/N: every N-th configuration (helpers_regress)
LOG = Path(__file__).resolve().parent.parent / "build" / log_name(SIM, SHARD)


def n_layers(seed: int) -> int:
    """L of configuration ``seed``: 1, 2 or 3, drawn from its own stream (the single-layer
    configurations stay what they were before stacks)."""
    return int(np.random.default_rng([seed, 8]).integers(1, 4))


@pytest.mark.slow
@pytest.mark.parametrize("seed", shard_seeds(SEED, COUNT, SHARD))
def test_random_configuration(seed):
    L = n_layers(seed)
    loads = 1 + seed % 3
    if L == 1:
        cfg, X, H, lanes, weights = random_case(seed, default_formats=(seed % 5 == 0))
        sc = full_scenario(cfg, weights, lanes, seed=seed, steps=STEPS, loads=loads)
        classes = add_random_head(sc, seed)
        result = run_scenario(sc, SIM, lanes=lanes)
        tensors = cfg.tensors.values()
    else:
        cfg, weights, lanes = random_stack_case(seed, L)
        sc = full_scenario(cfg, weights, lanes, seed=seed, steps=STEPS, loads=loads)
        classes = add_random_head(sc, seed)
        result = run_scenario(sc, SIM)
        X, H = weights.n_inputs, [w.n_hidden for w in weights.layers]
        tensors = [s for k in range(L) for s in cfg.for_layer(k).tensors.values()]
    r = result.results
    methods = sorted({t.method for t in cfg.tables.values()})
    modes = sorted({f"{s.round}/{s.overflow}" for s in tensors})
    LOG.parent.mkdir(exist_ok=True)
    with LOG.open("a") as f:
        f.write(json.dumps({"seed": seed, "simulator": SIM, "layers": L, "X": X, "H": H, "lanes": lanes,
                            "methods": methods, "modes": modes, "loads": r["loads"],
                            "steps": r["steps"], "dropped": r["dropped"],
                            "compared": r["compared"], "compared_c": r["compared_c"],
                            "mismatches": r["mismatches"], "missing": r["missing"],
                            "classes": classes,
                            **{k: r[k] for k in ("logits_compared", "logits_mismatches",
                                                 "labels_compared", "labels_mismatches") if k in r},
                            "cycles": r["cycles"], "seconds": round(result.seconds, 1)}) + "\n")
    assert result.passed, "\n".join(r["reports"][:5]) or f"see {result.log}"
    # every step sent is either compared or was in flight at the reset (one or two per layer)
    assert r["sent"] == sc.n_steps >= STEPS
    assert r["steps"] + r["dropped"] == r["sent"] and 1 <= r["dropped"] <= 2 * L
    for kind in ("weights", "state"):
        assert sum(n for port, n in r["loads"].items() if port.startswith(kind)) == loads
    assert r["error"] == 0
    if classes:     # every sequence that ended was classified (those cut by the reset are lost)
        assert r["labels_compared"] > 0 and r["logits_compared"] == classes * r["labels_compared"]
