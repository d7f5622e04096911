"""The word-serial output option (LSTMCell(serial_output=True)) against the golden model in
Amaranth's simulator: one unit per transfer, raw integers equal, first/last on units 0 and H-1,
steps back to back at cycles_per_step (= the parallel design's + H - 1)."""
import random

import numpy as np
import pytest

import helpers_model
from model.config import load_config
from model.golden import run_golden
from rtl.top import LSTMCell
from rtl_helpers import random_weights, simulate, stream_get, stream_put


def _run_serial(dut, x_raw, first, *, gap=0.0, stall=0.0, seed=0):
    """Drive the steps; returns the words of each step and the accept cycles."""
    rng = random.Random(seed)
    H = dut.geometry.n_hidden
    words, accepted = [], []
    cycle = [0]

    async def clock(ctx):
        async for _ in ctx.tick():
            cycle[0] += 1

    async def driver(ctx):
        for x, f in zip(x_raw, first):
            await stream_put(ctx, dut.x, {"x": [int(v) for v in x], "first": int(f)}, gap=gap, rng=rng)
            accepted.append(cycle[0])

    async def monitor(ctx):
        for _ in range(len(x_raw) * H):
            p = await stream_get(ctx, dut.h, stall=stall, rng=rng)
            words.append({name: int(getattr(p, name)) for name in ("h", "c", "first", "last")})

    simulate(dut, driver, monitor, background=[clock])
    return [words[k:k + H] for k in range(0, len(words), H)], accepted


def _golden_steps(cfg, X, H, seed, B=2, T=3):
    rng = np.random.default_rng(seed)
    golden = run_golden(cfg, random_weights(rng, X, H, scale=1.5), rng.normal(0, 2, (B, T, X)))
    first = np.zeros((B, T), bool)
    first[:, 0] = True
    return (golden, golden.x_raw.reshape(B * T, -1), first.reshape(-1),
            golden.fixed["h"].reshape(B * T, H), golden.fixed["c"].reshape(B * T, H))


@pytest.mark.parametrize("X,H,lanes,seed,gap,stall", [
    (5, 7, 3, 0, 0.3, 0.4), (3, 4, 4, 1, 0.2, 0.6), (2, 3, 1, 2, 0.0, 0.0)])
def test_serial_words_equal_golden(X, H, lanes, seed, gap, stall):
    cfg = helpers_model.random_config(np.random.default_rng(seed), X, H) if seed else load_config()
    golden, x_raw, first, h, c = _golden_steps(cfg, X, H, seed)
    dut = LSTMCell(cfg, golden.qweights, lanes=lanes, serial_output=True)
    steps, accepted = _run_serial(dut, x_raw, first, gap=gap, stall=stall, seed=seed)
    assert len(steps) == len(h)
    for k, step in enumerate(steps):
        assert [w["h"] for w in step] == [int(v) for v in h[k]], f"h at step {k}"
        assert [w["c"] for w in step] == [int(v) for v in c[k]], f"c at step {k}"
        assert [(w["first"], w["last"]) for w in step] == \
            [(1, int(H == 1))] + [(0, 0)] * (H - 2) + [(0, 1)] * (H > 1)
    if gap == stall == 0:
        parallel = dut.geometry.issue_cycles + LSTMCell.overhead_for(lanes)
        assert dut.cycles_per_step == parallel + H - 1
        assert np.diff(accepted).tolist() == [dut.cycles_per_step] * (len(h) - 1)


def test_serial_layout_is_the_state_layout_and_no_c_drops_it():
    cfg = load_config()
    golden, *_ = _golden_steps(cfg, 2, 3, 0, B=1, T=1)
    dut = LSTMCell(cfg, golden.qweights, lanes=2, serial_output=True)
    assert dut.output_layout == dut.state_layout
    bare = LSTMCell(cfg, golden.qweights, lanes=2, serial_output=True, output_c=False)
    assert [name for name, _ in bare.output_layout] == ["h", "first", "last"]
    from amaranth.hdl import Fragment
    for d in (dut, bare):
        Fragment.get(d, None)
