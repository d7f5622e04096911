"""StackedLSTM in Amaranth's simulator: the layer link (cast and `first`), whole stacks against
the golden model's integers layer by layer, and the closed forms of the wavefront pipeline."""
import numpy as np
import pytest

import helpers_model
from model.cell import FixedLSTM
from model.config import load_config
from model.fixed import cast, quantize
from model.weights import quantize_weights
from rtl.geometry import RTLError
from rtl.stack import StackedLSTM
from rtl_helpers import assert_outputs, random_weights, run_steps


def golden_stack(configs, qweights, x_float, first):
    """Layer by layer with the model's own parts: FixedLSTM per layer, the model's cast of layer
    k's h codes into layer k+1's x format in between. Returns the last layer's h and c codes."""
    spec = configs[0].spec("x")
    x_raw, _ = quantize(x_float, spec.fmt, spec.round, spec.overflow)
    for k, (cfg, qw) in enumerate(zip(configs, qweights)):
        trace = FixedLSTM(cfg, qw).run(x_raw, first=first)
        if k + 1 < len(configs):
            nxt = configs[k + 1].spec("x")
            x_raw, _ = cast(trace["h"], cfg.fmt("h").frac, nxt.fmt, nxt.round, nxt.overflow)
    return trace["h"], trace["c"]


def _stack(rng, sizes, configs=None, scale=1.0):
    """Random layers of sizes [(X0, H0), (H0, H1), ...] with one config each."""
    configs = configs or [load_config()] * len(sizes)
    weights = [random_weights(rng, X, H, scale=scale) for X, H in sizes]
    return configs, [quantize_weights(w, c) for w, c in zip(weights, configs)]


def _drive(dut, x_raw_steps, first, *, gap=0.0, stall=0.0, seed=0, state=None):
    """Per-layer state packets (``state``: layer -> [(h0, c0) codes per unit]), then the steps."""
    loads = []
    for k, words in (state or {}).items():
        n = len(words)
        loads.append((getattr(dut, f"state_l{k}"),
                      [{"h": int(h), "c": int(c), "first": int(u == 0), "last": int(u == n - 1)}
                       for u, (h, c) in enumerate(words)]))
    return run_steps(dut, x_raw_steps, first, gap=gap, stall=stall, seed=seed, loads=loads)


def _framing(B, T, rng=None):
    first = np.zeros((B, T), bool)
    first[:, 0] = True
    if rng is not None:                       # restarts inside sequences too
        first |= rng.random((B, T)) < 0.15
    return first


def _expected_flat(configs, qweights, x, first):
    h, c = golden_stack(configs, qweights, x, first)
    B, T, H = h.shape
    return h.reshape(B * T, H), c.reshape(B * T, H)


def _assert_equal(outputs, h, c):
    assert_outputs(outputs, h, c)


def _x_codes(configs, x):
    spec = configs[0].spec("x")
    x_raw, _ = quantize(x, spec.fmt, spec.round, spec.overflow)
    return x_raw.reshape(-1, x.shape[2])


@pytest.mark.parametrize("sizes,lanes,seed", [
    ([(3, 5), (5, 4)], (4, 2), 0),
    ([(2, 3), (3, 3), (3, 2)], (5, 1, 3), 1),
    ([(4, 2), (2, 5)], (6, 7), 2),
    ([(2, 3), (3, 2)], (9, 10), 3),         # more lanes than columns in both layers
])
def test_stack_equals_golden_with_gaps_and_stalls(sizes, lanes, seed):
    rng = np.random.default_rng(seed)
    configs = [helpers_model.random_config(rng, X, H) for X, H in sizes] if seed else None
    configs, qweights = _stack(rng, sizes, configs, scale=1.5)
    B, T = 2, 4
    x = rng.normal(0, 2, (B, T, sizes[0][0]))
    first = _framing(B, T, rng)
    h, c = _expected_flat(configs, qweights, x, first)
    dut = StackedLSTM(configs, qweights, lanes=lanes)
    outputs, _, _ = _drive(dut, _x_codes(configs, x), first.reshape(-1), gap=0.3, stall=0.4, seed=seed)
    _assert_equal(outputs, h, c)


def test_layer_link_cast_between_formats():
    """Layer 0's h format (Q0.15) is wider than layer 1's x (Q2.5, TRN, WRAP): the link's cast
    must be the model's cast, bit for bit, or layer 1's results differ."""
    rng = np.random.default_rng(4)
    base = helpers_model.random_raw(rng, 4, 3)   # layer 1: X = 4, H = 3
    base["formats"]["x"] = {"bits": 8, "frac": 5, "round": "TRN", "overflow": "WRAP"}
    base["formats"]["accumulator"]["bits"] += 8      # room for the wider x integer part
    narrow = helpers_model.parse_config(base, source="<narrow x>")
    configs, qweights = _stack(rng, [(3, 4), (4, 3)], [load_config(), narrow], scale=2.0)
    x = rng.normal(0, 2, (2, 3, 3))
    first = _framing(2, 3)
    h, c = _expected_flat(configs, qweights, x, first)
    # the same stack with the cast skipped would differ: the check has teeth
    plain = [configs[0], load_config()]
    h_plain, _ = _expected_flat(plain, [qweights[0], quantize_weights(
        random_weights(np.random.default_rng(4), 4, 3), plain[1])], x, first)
    assert not np.array_equal(h, h_plain)
    dut = StackedLSTM(configs, qweights, lanes=(3, 2))
    outputs, _, _ = _drive(dut, _x_codes(configs, x), first.reshape(-1), gap=0.2, stall=0.2, seed=4)
    _assert_equal(outputs, h, c)


def test_closed_forms_period_and_latency():
    rng = np.random.default_rng(8)
    configs, qweights = _stack(rng, [(3, 4), (4, 2)])
    dut = StackedLSTM(configs, qweights, lanes=(2, 1))
    cps = [layer.cycles_per_step for layer in dut.layers]
    assert dut.cycles_per_step == max(cps) and dut.latency == sum(cps)
    T = 6
    x = rng.normal(0, 1, (1, T, 3))
    first = _framing(1, T)
    h, c = _expected_flat(configs, qweights, x, first)
    outputs, accepted, produced = _drive(dut, _x_codes(configs, x), first.reshape(-1))
    _assert_equal(outputs, h, c)
    assert np.diff(accepted).tolist() == [dut.cycles_per_step] * (T - 1)
    assert produced[0] - accepted[0] == dut.latency
    assert produced[-1] - accepted[0] == dut.cycles_per_sequence(T)


def test_per_layer_state_load():
    rng = np.random.default_rng(12)
    cfg = load_config()
    configs, qweights = _stack(rng, [(2, 3), (3, 3)])
    h0 = rng.uniform(-0.9, 0.9, (2, 3))
    c0 = rng.uniform(-2, 2, (2, 3))
    raw = [(quantize(h0[k], cfg.fmt("h"))[0], quantize(c0[k], cfg.fmt("c"))[0]) for k in range(2)]
    x = rng.normal(0, 1, (2, 3, 2))
    first = _framing(2, 3)
    spec = cfg.spec("x")
    x_raw, _ = quantize(x, spec.fmt, spec.round, spec.overflow)
    trace0 = FixedLSTM(cfg, qweights[0]).run(x_raw, raw[0][0], raw[0][1], first)
    x1, _ = cast(trace0["h"], cfg.fmt("h").frac, spec.fmt, spec.round, spec.overflow)
    trace1 = FixedLSTM(cfg, qweights[1]).run(x1, raw[1][0], raw[1][1], first)
    dut = StackedLSTM(configs, qweights, lanes=(2, 3))
    state = {k: list(zip(*raw[k])) for k in range(2)}
    outputs, _, _ = _drive(dut, x_raw.reshape(-1, 2), first.reshape(-1), state=state)
    _assert_equal(outputs, trace1["h"].reshape(-1, 3), trace1["c"].reshape(-1, 3))


def test_bad_parameters():
    rng = np.random.default_rng(0)
    configs, qweights = _stack(rng, [(3, 4), (4, 2)])
    with pytest.raises(RTLError, match="layer 1 takes X = 3 inputs but layer 0 gives H = 2"):
        StackedLSTM(configs[::-1], qweights[::-1])
    with pytest.raises(RTLError, match=r"lanes must give one P per layer \(2\), not 1"):
        StackedLSTM(configs, qweights, lanes=(2,))
    with pytest.raises(RTLError, match=r"layer 1: lanes must be at most 2\(X\+H\) = 12"):
        StackedLSTM(configs, qweights, lanes=(2, 13))


def test_links_pass_first_and_last_to_every_layer():
    """Each deeper layer takes each step with the `first` and `last` bits it was sent with
    (T = 1 sequences too: both on one step), in order, under gaps and stalls."""
    rng = np.random.default_rng(5)
    configs, qweights = _stack(rng, [(3, 4), (4, 3), (3, 2)])
    dut = StackedLSTM(configs, qweights, lanes=[2, 3, 1])
    n = 12
    x = rng.integers(-4000, 4000, (n, 3))
    first = rng.random(n) < 0.5
    last = rng.random(n) < 0.5
    first[0] = True
    seen = {k: [] for k in (1, 2)}

    def watch(k):
        port = dut.layers[k].x

        async def tb(ctx):
            async for _, _, valid, ready, payload in ctx.tick().sample(port.valid, port.ready,
                                                                         port.payload):
                if valid and ready:
                    seen[k].append((int(payload.first), int(payload.last)))
        return tb

    run_steps(dut, x, first, last=last, gap=0.3, stall=0.3, seed=2,
              background=[watch(1), watch(2)])
    sent = [(int(f), int(e)) for f, e in zip(first, last)]
    assert seen[1] == sent and seen[2] == sent


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_tag_fifo_against_a_queue(depth):
    """TagFIFO (readies from registers) against a Python deque: random writes and reads, every
    cycle's readies, level and read word compared; a word is readable from the edge after its
    write, like Amaranth's SyncFIFOBuffered."""
    from collections import deque

    from amaranth.sim import Simulator

    from rtl.stack import TagFIFO

    dut = TagFIFO(width=4, depth=depth)
    rng = np.random.default_rng(depth)
    mismatches = []

    async def bench(ctx):
        queue, readable = deque(), 0          # words written before the last edge can be read
        for cycle in range(400):
            w_en, r_en = bool(rng.random() < 0.6), bool(rng.random() < 0.5)
            word = int(rng.integers(16))
            ctx.set(dut.w_en, w_en)
            ctx.set(dut.w_data, word)
            ctx.set(dut.r_en, r_en)
            got = (ctx.get(dut.w_rdy), ctx.get(dut.r_rdy), ctx.get(dut.level))
            want = (int(len(queue) < depth), int(readable > 0), len(queue))
            if got != want:
                mismatches.append((cycle, got, want))
            if readable and ctx.get(dut.r_data) != queue[0]:
                mismatches.append((cycle, "data", ctx.get(dut.r_data), queue[0]))
            wrote, read = w_en and len(queue) < depth, r_en and readable > 0
            await ctx.tick()
            if read:
                queue.popleft()
            if wrote:
                queue.append(word)
            readable = len(queue)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert mismatches == []


def test_tag_fifo_refuses_zero_depth():
    from rtl.stack import TagFIFO
    with pytest.raises(ValueError, match="depth"):
        TagFIFO(width=2, depth=0)
