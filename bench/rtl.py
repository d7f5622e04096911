"""python -m bench rtl [--json] [--out FILE.json]

Cycles per LSTM step of the RTL (``rtl.top.LSTMCell``), from its closed form
``cycles_per_step = ceil(4H(X+H) / P) + overhead`` (the ``cycles_per_step`` property), against
the MAC bound ceil(4H(X+H) / P): the default design (shipped model, the config's lanes) and the
notebook network's shape (X=28, H=128; random weights: the figures depend on the shape only)
at P = 8, 16, 32. The closed form is checked against simulated cycle counts in
tests/test_rtl_top.py (``test_cycle_count_equals_closed_form``, ``test_default_model_efficiency``).
"""
from __future__ import annotations

import sys

import numpy as np

from bench.common import finish, machine, parser, target
from model.cli import run_command
from model.config import load_config
from model.shipped import DEFAULT_WEIGHTS
from model.weights import LSTMWeights, load_weights, quantize_weights

NOTEBOOK = {"X": 28, "H": 128}
NOTEBOOK_LANES = (8, 16, 32)
GOAL_EFFICIENCY = 0.90


def design(name: str, config, weights: LSTMWeights, lanes: int | None) -> dict:
    from rtl.top import LSTMCell
    dut = LSTMCell(config, quantize_weights(weights, config), lanes=lanes)
    g = dut.geometry
    return {"name": name, "X": g.n_inputs, "H": g.n_hidden, "lanes": g.lanes,
            "cycles_per_step": dut.cycles_per_step, "mac_bound_cycles_per_step": g.issue_cycles,
            "overhead_cycles": dut.cycles_per_step - g.issue_cycles,
            "mac_efficiency": dut.mac_efficiency}


def cmd_rtl(args) -> int:
    out = target(args, "rtl")
    config = load_config()
    rows = [design("default", config, load_weights(DEFAULT_WEIGHTS), None)]
    rng = np.random.default_rng(0)
    X, H = NOTEBOOK["X"], NOTEBOOK["H"]
    k = 1 / np.sqrt(H)
    nb = LSTMWeights(rng.uniform(-k, k, (4 * H, X)), rng.uniform(-k, k, (4 * H, H)),
                     rng.uniform(-k, k, 4 * H))
    rows += [design("notebook", config, nb, p) for p in NOTEBOOK_LANES]
    d = rows[0]
    result = {"benchmark": "rtl", "command": "python -m bench rtl", "machine": machine(),
              "source": "closed form (LSTMCell.cycles_per_step), checked against simulation "
                        "in tests/test_rtl_top.py",
              "cycles_per_step": d["cycles_per_step"],
              "mac_bound_cycles_per_step": d["mac_bound_cycles_per_step"],
              "mac_efficiency": d["mac_efficiency"], "goal_mac_efficiency": GOAL_EFFICIENCY,
              "designs": rows}
    return finish(args, out, result, print_table)


def print_table(r: dict) -> None:
    print(f"RTL cycles per step ({r['source']})")
    print(f"  {'design':10s} {'X':>4s} {'H':>4s} {'P':>3s} {'cycles/step':>12s} {'MAC bound':>10s} "
          f"{'overhead':>9s} {'efficiency':>11s}")
    for d in r["designs"]:
        print(f"  {d['name']:10s} {d['X']:4d} {d['H']:4d} {d['lanes']:3d} {d['cycles_per_step']:12d} "
              f"{d['mac_bound_cycles_per_step']:10d} {d['overhead_cycles']:9d} {d['mac_efficiency']:11.3f}")
    print(f"  goal: MAC efficiency >= {r['goal_mac_efficiency']} on the default design")


def main(argv=None) -> int:
    return run_command(cmd_rtl, parser("rtl", "RTL cycles per step against the MAC bound.").parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
