"""The classifier head in RTL (rtl/head.py) in Amaranth's simulator: logits and label against
the golden model's integers (random formats, ties, C = 1, C > H, both multipliers), and the
composed designs (cell or stack + head) with their closed form cycles_per_sequence."""
import random

import numpy as np
import pytest

import helpers_model
import helpers_stack
from model.cell import FixedLSTM
from model.config import load_config
from model.golden import run_golden
from model.weights import InputError, quantize_weights
from rtl.geometry import RTLError
from rtl.head import ClassifiedLSTM, ClassifierHead, logit_format
from rtl.stack import build_design
from rtl_helpers import random_weights, simulate, stream_get, stream_put


def _run_head(head, h_rows, last, *, gap=0.0, stall=0.0, seed=0):
    """Offer the h rows (with their `last` bits) to a bare head; returns its y outputs."""
    rng = random.Random(seed)
    out = []

    async def driver(ctx):
        for h, e in zip(h_rows, last):
            await stream_put(ctx, head.h, {"h": [int(v) for v in h], "last": int(e)}, gap=gap, rng=rng)

    async def monitor(ctx):
        for _ in range(int(np.sum(last))):
            p = await stream_get(ctx, head.y, stall=stall, rng=rng)
            out.append(([int(v) for v in p.logits], int(p.label)))

    simulate(head, driver, monitor)
    return out


def _golden_head(cfg, qweights, h_rows):
    logits = FixedLSTM(cfg, qweights).head(np.asarray(h_rows, np.int64))
    return [([int(v) for v in row], int(np.argmax(np.asarray(row, dtype=object)))) for row in logits]


def _random_qweights(rng, cfg, X, H, C, scale=1.5):
    return quantize_weights(random_weights(rng, X, H, scale=scale, head_classes=C), cfg)


@pytest.mark.parametrize("seed, H, C, multiplier, lanes", [
    (0, 5, 3, "dsp", 1), (1, 7, 4, "lut", 1), (2, 3, 1, "dsp", 1), (3, 2, 7, "lut", 1),
    (4, 1, 2, "dsp", 1), (5, 6, 4, "dsp", 4), (6, 7, 5, "lut", 3), (7, 1, 3, "dsp", 3),
    (8, 9, 10, "dsp", 4), (9, 2, 1, "lut", 1)])
def test_head_equals_the_golden_integers(seed, H, C, multiplier, lanes):
    """Random formats (any h, weight, bias widths and fractions), random h codes at any value of
    their format, steps without `last` dropped; C = 1 and C > H included; K = C head lanes (H
    = 1 too) and 1 < K < C, whose last round is partly empty (C = 5, K = 3; C = 10, K = 4)."""
    rng = np.random.default_rng(seed)
    cfg = helpers_model.random_config(rng, 2, H) if seed else load_config()
    qw = _random_qweights(rng, cfg, 2, H, C)
    fmt = cfg.fmt("h")
    h_rows = rng.integers(fmt.min_code, fmt.max_code + 1, (9, H))
    h_rows[0] = fmt.min_code                  # the corners of the product
    h_rows[1] = fmt.max_code
    last = rng.random(9) < 0.6
    last[:2] = True
    head = ClassifierHead(cfg, qw.head_weight, qw.head_bias, multiplier=multiplier, lanes=lanes)
    got = _run_head(head, h_rows, last, gap=0.3, stall=0.4, seed=seed)
    assert got == _golden_head(cfg, qw, h_rows[last])
    assert head.logit_bits == logit_format(cfg, H)[0]
    assert head.logit_frac == FixedLSTM(cfg, qw).head_frac


def test_argmax_ties_take_the_first_maximum():
    """Equal logits: the label is the first of them, as numpy's argmax (classes 1 and 3 tie
    for the largest; then every class ties)."""
    cfg = load_config()
    H, C = 3, 5
    weight = np.array([[1, 2, 3], [50, 60, 70], [5, 6, 7], [50, 60, 70], [-9, 0, 9]])
    bias = np.array([0, 7, 0, 7, 0])
    head = ClassifierHead(cfg, weight, bias)
    h_rows = np.array([[100, 200, 300], [0, 0, 0]])
    got = _run_head(head, h_rows, [1, 1])
    assert [label for _, label in got] == [1, 1]
    flat = ClassifierHead(cfg, np.zeros((C, H), int), np.full(C, 4))
    assert [label for _, label in _run_head(flat, h_rows, [1, 1])] == [0, 0]


def test_argmax_when_logits_differ_only_in_their_low_bits():
    """Logits within a few codes of each other (the compare's high halves equal, the low halves
    decide), positive and negative, and a sign change across the halves: the label is still
    numpy's argmax of the exact logits."""
    cfg = load_config()
    H = 2
    weight = np.array([[3, 1], [3, 2], [3, 0], [-3, -1], [-3, -2]])
    bias = np.zeros(5, int)
    head = ClassifierHead(cfg, weight, bias)
    h_rows = np.array([[1000, 1], [-1000, -1], [0, 1], [0, -1]])
    got = _run_head(head, h_rows, [1, 1, 1, 1])
    logits = [[int(w @ h) << (head.logit_frac - cfg.fmt("h").frac - cfg.fmt("weight").frac)
               for w in weight] for h in h_rows]
    assert [lg for lg, _ in got] == logits
    assert [label for _, label in got] == [int(np.argmax(row)) for row in logits] == [1, 4, 1, 4]


def test_head_parameters_are_checked():
    cfg = load_config()
    for kw, message in [
            (dict(head_weight=np.zeros((2, 3), int), head_bias=np.zeros(2, int), multiplier="x"),
             "multiplier must be one of dsp, lut, not 'x'"),
            (dict(head_weight=np.zeros((2, 3), int), head_bias=np.zeros(3, int)),
             "head_weight must be (C, H) and head_bias (C,), not (2, 3) and (3,)"),
            (dict(head_weight=np.full((2, 3), 1 << 20), head_bias=np.zeros(2, int)),
             "head weight codes must fit the weight format (16 bits)"),
            (dict(head_weight=np.zeros((2, 3), int), head_bias=np.zeros(2, int), lanes=3),
             "head lanes must be an integer from 1 to the 2 classes, not 3"),
            (dict(head_weight=np.zeros((2, 3), int), head_bias=np.zeros(2, int), lanes=0),
             "head lanes must be an integer from 1 to the 2 classes, not 0"),
            (dict(head_weight=np.zeros((5, 3), int), head_bias=np.zeros(5, int), lanes=2),
             "2 head lanes over 5 classes need H >= 4 (a round's logits leave one every other "
             "cycle), not H = 3: use 1 or 5 lanes")]:
        with pytest.raises(RTLError, match=message.replace("(", r"\(").replace(")", r"\)")):
            ClassifierHead(cfg, **kw)


def run_classified(dut, x_raw, first, last, *, gap=0.0, stall=0.0, seed=0):
    """Steps (rows of x_raw with first/last) through a ClassifiedLSTM; returns the h codes of
    every step (when the design has h), the y outputs, and the cycles of each accept, each h
    and each y."""
    rng = random.Random(seed)
    hs, ys, cycles = [], [], {"x": [], "h": [], "y": []}
    cycle = [0]

    async def clock(ctx):
        async for _ in ctx.tick():
            cycle[0] += 1

    async def driver(ctx):
        for x, f, e in zip(x_raw, first, last):
            await stream_put(ctx, dut.x, {"x": [int(v) for v in x], "first": int(f), "last": int(e)},
                             gap=gap, rng=rng)
            cycles["x"].append(cycle[0])

    async def h_monitor(ctx):
        for _ in range(len(x_raw)):
            p = await stream_get(ctx, dut.h, stall=stall, rng=rng)
            hs.append([int(v) for v in p.h])
            cycles["h"].append(cycle[0])

    async def y_monitor(ctx):
        for _ in range(int(np.sum(last))):
            p = await stream_get(ctx, dut.y, stall=stall, rng=rng)
            ys.append(([int(v) for v in p.logits], int(p.label)))
            cycles["y"].append(cycle[0])

    benches = [driver, y_monitor] + ([h_monitor] if dut.output_h else [])
    simulate(dut, *benches, background=[clock])
    return hs, ys, cycles


def _model(rng, sizes, C):
    return helpers_stack.random_stack(rng, sizes, n_classes=C)


def _sequences(golden, B, T):
    first = np.zeros((B, T), bool)
    first[:, 0] = True
    last = np.zeros((B, T), bool)
    last[:, -1] = True
    x = golden.layers[0].x_raw.reshape(B * T, -1)
    return x, first.reshape(-1), last.reshape(-1)


def _expected_y(golden):
    return [([int(v) for v in row], int(np.argmax(np.asarray(row, dtype=object))))
            for row in golden.logits_raw]


@pytest.mark.parametrize("sizes, C, lanes, T, output_h", [
    ([3, 4], 3, 2, 3, True), ([2, 3], 5, 1, 1, False), ([3, 4, 3], 2, [2, 3], 2, True)])
def test_classified_designs_equal_the_golden_run(sizes, C, lanes, T, output_h):
    """Cell or stack + head through build_design: every h and every (logits, label) equal the
    golden run's, under gaps and stalls; T = 1 (first and last on one step) included."""
    rng = np.random.default_rng(len(sizes) * 10 + C)
    model = _model(rng, sizes, C)
    cfg = load_config()
    B = 3
    golden = run_golden(cfg, model, rng.normal(0, 1.5, (B, T, sizes[0])))
    dut = build_design(cfg, model, lanes=lanes, output_h=output_h)
    assert isinstance(dut, ClassifiedLSTM) and dut.output_h == output_h
    x, first, last = _sequences(golden, B, T)
    hs, ys, _ = run_classified(dut, x, first, last, gap=0.3, stall=0.3, seed=C)
    assert ys == _expected_y(golden)
    if output_h:
        assert hs == golden.layers[-1].fixed["h"].reshape(B * T, -1).tolist()


@pytest.mark.parametrize("sizes, lanes, multiplier, head_lanes", [
    ([3, 4], 2, "dsp", 1), ([2, 3, 2], [1, 2], "lut", 1), ([3, 4], 2, "lut", 3),
    ([3, 6], 3, "dsp", 2)])
def test_cycles_per_sequence_includes_the_head(sizes, lanes, multiplier, head_lanes):
    """One sequence, inputs waiting, outputs always ready: y is taken cycles_per_sequence(T)
    cycles after the first accept, and the h of every step at the core's pace; a second
    sequence right behind it is not slowed (the head overlaps its steps)."""
    rng = np.random.default_rng(7)
    model = _model(rng, sizes, 3)
    cfg = load_config()
    T = 3
    golden = run_golden(cfg, model, rng.normal(0, 1, (2, T, sizes[0])))
    dut = build_design(cfg, model, lanes=lanes, head_multiplier=multiplier,
                       head_lanes=head_lanes)
    x, first, last = _sequences(golden, 2, T)
    _, ys, cycles = run_classified(dut, x, first, last)
    assert ys == _expected_y(golden)
    start = cycles["x"][0]
    assert cycles["y"][0] - start == dut.cycles_per_sequence(T)
    assert cycles["y"][1] - cycles["x"][T] == dut.cycles_per_sequence(T)
    assert cycles["x"][T] - start == T * dut.cycles_per_step
    H, C, K = dut.head.n_hidden, dut.head.n_classes, head_lanes
    R = -(-C // K)
    assert dut.head.latency == (H * R + ClassifierHead.multiplier_latency(cfg, multiplier) + 6
                                + (H >= 2 or K > 1)
                                + (2 * (C - (R - 1) * K) - 1 if K > 1 else 0))


def test_build_design_choices_and_refusals():
    rng = np.random.default_rng(3)
    cfg = load_config()
    headed, bare = _model(rng, [2, 3], 2), _model(rng, [2, 3], 0)
    full = build_design(cfg, headed, lanes=2)
    assert isinstance(full, ClassifiedLSTM)
    cell = build_design(cfg, headed, lanes=2, head=False)
    assert not isinstance(cell, ClassifiedLSTM)
    serial = build_design(cfg, headed, lanes=2, serial_output=True)      # the head needs whole vectors
    assert not isinstance(serial, ClassifiedLSTM)
    for design in (full, full.core, full.head, cell, serial):
        design._MustUse__silence = True
    for model, kw, message in [
            (bare, dict(head=True), "this model has no classifier head"),
            (bare, dict(output_h=False), "leaving out the h stream"),
            (headed, dict(head=True, serial_output=True), "the word-serial output needs")]:
        with pytest.raises((RTLError, InputError), match=message):
            build_design(cfg, model, lanes=2, **kw)


def test_cli_head_options(tmp_path):
    """python -m rtl: the shipped digits model gets its head (y port) unless --no-head; --no-h
    drops the h port; --no-h without a head is one line and exit status 2."""
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent

    def export(*args):
        out = tmp_path / "d.v"
        r = subprocess.run([sys.executable, "-m", "rtl", *args, "--out", str(out)], cwd=root,
                           capture_output=True, text=True)
        text = out.read_text() if out.exists() and r.returncode == 0 else ""
        header = next((line for line in text.splitlines() if line.startswith("module lstm_cell(")), "")
        return r, header

    r, text = export()
    assert r.returncode == 0 and "classifier head C=10 (37-bit logits)" in r.stdout
    assert "y__payload" in text and "h__payload" in text
    r, text = export("--no-h", "--head-multiplier", "lut")
    assert r.returncode == 0 and "no h stream" in r.stdout
    assert "y__payload" in text and "h__payload" not in text
    r, text = export("--no-head")
    assert r.returncode == 0 and "no classifier head" in r.stdout and "y__payload" not in text
    r, _ = export("--no-head", "--no-h")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "needs a classifier head" in r.stderr
    r, text = export("--head-lanes", "10", "--head-multiplier", "lut")
    assert r.returncode == 0 and "y__payload" in text
    r, _ = export("--head-lanes", "11")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and \
        "head lanes must be an integer from 1 to the 10 classes, not 11" in r.stderr
