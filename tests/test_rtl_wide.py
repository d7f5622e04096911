"""More lanes than columns (X+H < P <= 2(X+H): two row ends per cycle, the MAC's even and odd
rows on two ports) and logic lanes (products in adders, no multiplier block), against the
golden model's integers in Amaranth's simulator."""
import re

import numpy as np
import pytest
from amaranth.utils import ceil_log2

import helpers_model
from model.config import load_config
from model.golden import run_golden
from rtl.geometry import Geometry, RTLError
from rtl.top import LSTMCell
from rtl_helpers import assert_outputs, flatten_golden, random_weights, run_steps


def _check(X, H, lanes, seed, *, logic_lanes=0, gap=0.3, stall=0.3, random_formats=True,
           batches=2, steps=3, config=None):
    rng = np.random.default_rng(seed)
    cfg = config or (helpers_model.random_config(rng, X, H) if random_formats else load_config())
    golden = run_golden(cfg, random_weights(rng, X, H, scale=1.5),
                        rng.normal(0, 2, (batches, steps, X)))
    dut = LSTMCell(cfg, golden.qweights, lanes=lanes, logic_lanes=logic_lanes)
    x_raw, first, h, c = flatten_golden(golden)
    outputs, accepted, produced = run_steps(
        dut, x_raw, first, gap=gap, stall=stall, seed=seed,
        loads=[(dut.weights, ()), (dut.state, ())])
    assert_outputs(outputs, h, c)
    return dut, accepted, produced


# N = X+H; P from N+1 to 2N: the second end in a step's last cycle past the last row (5 and
# 9 of N = 5 pad the last cycle), P = 2N (two whole rows every cycle), a step of one cycle
@pytest.mark.parametrize("X,H,lanes,seed", [(2, 3, 6, 1), (2, 3, 9, 2), (2, 3, 10, 3),
                                            (3, 4, 11, 4), (1, 1, 4, 5), (5, 7, 17, 6)])
def test_wide_matches_golden(X, H, lanes, seed):
    dut, _, _ = _check(X, H, lanes, seed)
    assert dut.geometry.wide


@pytest.mark.parametrize("X,H,lanes,logic,seed", [(3, 4, 5, 2, 7), (2, 3, 8, 3, 8),
                                                  (3, 4, 7, 7, 9)])
def test_logic_lanes_match_golden(X, H, lanes, logic, seed):
    dut, _, _ = _check(X, H, lanes, seed, logic_lanes=logic)
    assert dut.geometry.logic_lanes == logic


def _wide_weights_config(tmp_path):
    """The default config with 18-bit weights: 4 Booth levels in a logic lane."""
    path = tmp_path / "wide_weights.toml"
    path.write_text('[formats]\nweight = { bits = 18, frac = 12 }\n'
                    'accumulator = { bits = 50, frac = 27 }\n')
    return load_config(path)


@pytest.mark.parametrize("lanes,logic,bits", [(9, 0, 16), (9, 4, 16), (7, 0, 16), (4, 2, 18),
                                              (9, 9, 18)])
def test_cycle_count_equals_closed_form(lanes, logic, bits, tmp_path):
    X, H, T = 2, 3, 4
    dut, accepted, produced = _check(X, H, lanes, 10, logic_lanes=logic, gap=0, stall=0,
                                     random_formats=False, batches=1, steps=T,
                                     config=_wide_weights_config(tmp_path) if bits == 18 else None)
    wide = lanes > X + H
    # 16-bit weights: 3 Booth levels in a logic lane, as many as a multiplier block's 3
    # registers; 18 bits: 4, and every lane's product waits one cycle more
    assert dut.geometry.logic_delay == (1 if logic and bits == 18 else 0)
    assert dut.overhead == 41 + ceil_log2(lanes) + wide + dut.geometry.logic_delay
    assert dut.cycles_per_step == -(-4 * H * (X + H) // lanes) + dut.overhead
    # the same from the sizes alone (what a host or a cost table computes without weights)
    assert LSTMCell.cycles_per_step_for(X, H, lanes, dut.geometry.logic_delay) \
        == dut.cycles_per_step
    assert np.diff(accepted).tolist() == [dut.cycles_per_step] * (T - 1)
    assert produced[-1] - accepted[0] == dut.cycles_per_sequence(T)


@pytest.mark.parametrize("lanes,logic,message", [
    (11, 0, "lanes must be at most 2(X+H) = 10 (two row ends per cycle), not 11"),
    (4, 5, "logic lanes must be from 0 to the 4 lanes, not 5"),
    (4, -1, "logic lanes must be from 0 to the 4 lanes, not -1"),
])
def test_bad_lanes_refused(lanes, logic, message):
    rng = np.random.default_rng(0)
    cfg = load_config()
    golden = run_golden(cfg, random_weights(rng, 2, 3), np.zeros((1, 1, 2)))
    with pytest.raises(RTLError, match=re.escape(message)):
        Geometry(cfg, golden.qweights, lanes, logic)
