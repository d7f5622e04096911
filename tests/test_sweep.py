"""The precision sweep: range analysis, the search, the cost model, the config writer, the CLI.

The search's winner is re-judged here with :func:`model.golden.run_golden` and numpy alone
(argmax of the logits, |h - h_float|), and its cost recomputed from the formula, so a search
that returned a config outside the budget or dearer than the baseline fails.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from model.cell import float_head, float_run
from model.config import DEFAULT_CONFIG, Config, TensorSpec, dump_config, load_config
from model.costs import costs, dsp_count, objective, rom_bits, weight_memory_bits
from model.fixed import Format, to_float
from model.golden import run_golden
from model.sensitivity import one_step_error, sensitivity
from model.ranges import _int_bits, range_analysis, with_accumulator, with_format
from model.sweep import Budget, SweepError, search
from model.weights import LSTMWeights, save_weights

REPO = Path(__file__).resolve().parent.parent
TINY_X, TINY_H, TINY_C, TINY_B, TINY_T = 3, 4, 3, 60, 5


def cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "model", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)


def narrow12(config: Config) -> Config:
    """The default config at 12 bits per tensor (same integer bits): small tables, fast."""
    for name in ("x", "weight", "bias", "z", "gate", "candidate", "c", "tanh_c", "h"):
        fmt = config.fmt(name)
        config = with_format(config, name, fmt.int_bits, 11 - fmt.int_bits)
    return config


@pytest.fixture(scope="module")
def tiny():
    """A random X=3, H=4 model with a 3-class head; labels are the float model's predictions."""
    rng = np.random.default_rng(7)
    H, X, C = TINY_H, TINY_X, TINY_C
    w = LSTMWeights(rng.normal(0, 0.8, (4 * H, X)), rng.normal(0, 0.5, (4 * H, H)),
                    rng.normal(0, 0.3, 4 * H), rng.normal(0, 1.0, (C, H)), rng.normal(0, 0.1, C))
    x = rng.uniform(-1, 1, (TINY_B, TINY_T, X))
    labels = np.argmax(float_head(w, float_run(w, x)["h"][:, -1]), axis=-1)
    config = with_accumulator(narrow12(load_config()), X, H)
    return config, w, x, labels


@pytest.fixture(scope="module")
def tiny_files(tiny, tmp_path_factory):
    config, w, x, labels = tiny
    d = tmp_path_factory.mktemp("sweep")
    save_weights(d / "w.npz", w)
    np.save(d / "x.npy", x)
    np.save(d / "y.npy", labels)
    (d / "c.toml").write_text(dump_config(config))
    return d


def assert_one_line_error(p, words=""):
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert "Traceback" not in p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr
    assert words in lines[0], lines[0]


# ---- range analysis -------------------------------------------------------------------------

def test_int_bits_boundaries():
    assert [_int_bits(m) for m in (0.0, 0.999, 1.0, 1.5, 2.0, 7.99, 8.0)] == [0, 0, 1, 1, 2, 3, 4]


def test_range_analysis_on_known_magnitudes():
    # H = 1, W_hh = 0, one step from zero state: z = W_ih x + b exactly, c = i * g
    w = LSTMWeights(np.array([[0.5], [1.0], [2.0], [-1.5]]), np.zeros((4, 1)),
                    np.array([0.25, 0.0, 0.0, 0.0]), np.array([[5.0]]), np.array([-0.75]))
    x = np.array([[[3.0]], [[-1.0]]])
    sig = lambda v: 1 / (1 + math.exp(-v))          # noqa: E731
    z_max, c_max = 6.0, sig(1.75) * math.tanh(6.0)
    r = range_analysis(w, x, margin=1)
    assert r["x"]["max_abs"] == 3.0 and r["x"]["int_bits"] == 2 + 1
    assert r["weight"]["max_abs"] == 5.0 and r["weight"]["int_bits"] == 3     # head counts, no margin
    assert r["bias"]["max_abs"] == 0.75 and r["bias"]["int_bits"] == 0
    assert r["z"]["max_abs"] == pytest.approx(z_max) and r["z"]["int_bits"] == 3 + 1
    assert r["c"]["max_abs"] == pytest.approx(c_max) and r["c"]["int_bits"] == 0 + 1
    for name in ("gate", "candidate", "tanh_c"):
        assert r[name]["int_bits"] == 1
    assert r["h"]["int_bits"] == 0
    r0 = range_analysis(w, x, margin=0)
    assert (r0["x"]["int_bits"], r0["z"]["int_bits"], r0["c"]["int_bits"]) == (2, 3, 0)


def test_with_accumulator_is_the_narrowest_accepted(tiny):
    config, w, _, _ = tiny
    acc = with_accumulator(config, TINY_X, TINY_H).fmt("accumulator")
    f = config.fmt
    assert acc.frac == max(f("x").frac + f("weight").frac, f("h").frac + f("weight").frac, f("bias").frac)
    narrower = config.replace(accumulator=TensorSpec(Format(acc.bits - 1, acc.frac)))
    with pytest.raises(Exception, match="could overflow"):
        run_golden(narrower, w, np.zeros((1, 1, TINY_X)))


# ---- cost model -----------------------------------------------------------------------------

def test_costs_of_the_default_config_by_hand():
    cfg = load_config()
    assert weight_memory_bits(cfg, 8, 32) == 4 * 32 * (8 + 32) * 16 + 4 * 32 * 16 == 83968
    assert dsp_count(cfg, 18) == 8 + 3 + 3            # lanes, activation units, cell update
    wide = cfg.replace(weight=TensorSpec(Format(20, 12)), gate=TensorSpec(Format(17, 15)))
    # lanes 20 x 16: ceil(20/18) = 2 each; cell products 17 x 16: one 18x18, two 16x16 blocks
    assert dsp_count(wide, 18) == 8 * 2 + 3 + 3
    assert dsp_count(wide, 16) == 8 * 2 * 1 + 3 + 3 * 2 * 1
    assert weight_memory_bits(wide, 8, 32) == 4 * 32 * 40 * 20 + 4 * 32 * 16


def test_rom_bits_of_plan_tables_by_hand():
    raw = load_config().as_dict()
    for t in ("sigmoid", "tanh", "tanh_c"):
        raw["activations"][t]["method"] = "plan"
    from model.config import parse_config
    cfg = parse_config(raw)
    # sigmoid on Q4.11: index_shift 7, breakpoints 0, 1, 2.375, 5 -> last base 10240, 81 index
    # entries of 2 bits; slope shifts 14, 13, 11 -> 4-bit field; word 16 + 4 + 1 + 27 + 1 = 49
    sigmoid = 81 * 2 + 4 * 49
    # tanh on Q4.11: breakpoints 0, .5, 1.1875, 2.5 -> last base 5120, 41 entries; shifts 16,
    # 15, 13 -> 5 bits; word 16 + 5 + 1 + 27 + 1 = 50.  tanh_c on Q3.12: index_shift 8, last
    # base 10240 -> 41 entries; word 16 + 5 + 1 + 28 + 1 = 51
    tanh, tanh_c = 41 * 2 + 4 * 50, 41 * 2 + 4 * 51
    assert rom_bits(cfg) == sigmoid + tanh + tanh_c == 926
    assert dsp_count(cfg, 18) == 8 + 3                 # PLAN shifts: no activation multiplier


def test_objective_is_lexicographic():
    cfg = load_config()
    a = costs(cfg, 8, 32)
    b = costs(cfg.replace(weight=TensorSpec(Format(15, 12))), 8, 32)
    assert objective(b) < objective(a)


# ---- config writer --------------------------------------------------------------------------

def test_written_config_round_trip(tmp_path):
    from model.config import parse_config
    raw = load_config().as_dict()
    raw["formats"]["c"].update(round="TRN", overflow="WRAP")
    raw["formats"]["h"] = {"bits": 11, "frac": 10, "round": "TRN", "overflow": "SAT"}
    raw["activations"]["tanh"].update(max_segments=17, index_shift=4)
    raw["activations"]["tanh_c"].update(method="plan", slope_frac=9)
    raw["rtl"]["lanes"] = 5
    for cfg in (load_config(), parse_config(raw)):
        path = tmp_path / "c.toml"
        path.write_text(dump_config(cfg, "a header\nof two lines"))
        back = load_config(path)
        assert back == cfg
        assert {n: back.spec(n) for n in cfg.tensors} == dict(cfg.tensors)
        assert path.read_text().startswith("# a header\n# of two lines\n")
    assert dump_config(load_config(DEFAULT_CONFIG)).count("[activations.") == 0


# ---- search ---------------------------------------------------------------------------------

def _judge_independently(config, w, x, labels):
    run = run_golden(config, w, x)
    fixed_acc = float(np.mean(np.argmax(np.asarray(run.logits_raw, dtype=float), -1) == labels))
    float_acc = float(np.mean(np.argmax(run.logits_float, -1) == labels))
    h_err = float(np.max(np.abs(to_float(run.fixed["h"], config.fmt("h")) - run.reference["h"])))
    return fixed_acc, float_acc, h_err


def test_search_winner_meets_the_budget_and_costs_less(tiny):
    config, w, x, labels = tiny
    budget = Budget(accuracy_pp=2.0, h_error=0.05)
    result = search(config, w, x, labels, budget, screen=None)
    win = result.winner.config
    fixed_acc, float_acc, h_err = _judge_independently(win, w, x, labels)
    assert fixed_acc >= float_acc - 0.02 and h_err <= 0.05
    assert result.winner.metrics["h_max_abs_err"] == h_err
    hand = 4 * TINY_H * (TINY_X + TINY_H) * win.fmt("weight").bits + 4 * TINY_H * win.fmt("bias").bits
    assert result.winner.costs.weight_memory_bits == hand
    assert hand < weight_memory_bits(config, TINY_X, TINY_H)
    assert objective(result.winner.costs) <= objective(result.baseline.costs)
    # every accepted candidate met the budget; the integer bits stayed at the range analysis'
    assert all(c.meets for c in result.candidates if c.accepted)
    for name in ("x", "weight", "bias", "z", "c"):
        assert win.fmt(name).int_bits == result.ranges[name]["int_bits"]
    # a candidate that misses the budget really misses it
    missed = [c for c in result.candidates if not c.meets]
    assert missed
    acc_m, acc_f, err_m = _judge_independently(missed[0].config, w, x, labels)
    assert acc_m < acc_f - 0.02 or err_m > 0.05


def test_search_h_error_budget_without_labels(tiny):
    config, w, x, _ = tiny
    result = search(config, w, x, None, Budget(h_error=0.01), screen=None)
    assert _judge_independently(result.winner.config, w, x, np.zeros(TINY_B, int))[2] <= 0.01
    assert result.winner.metrics["accuracy_fixed"] is None


def test_search_screens_then_confirms_on_the_whole_set(tiny):
    config, w, x, labels = tiny
    result = search(config, w, x, labels, Budget(accuracy_pp=2.0, h_error=0.05), screen=20)
    assert result.screen == 20
    assert any(c.subset for c in result.candidates)
    assert not result.winner.subset and not result.baseline.subset
    fixed_acc, float_acc, h_err = _judge_independently(result.winner.config, w, x, labels)
    assert fixed_acc >= float_acc - 0.02 and h_err <= 0.05


@pytest.mark.parametrize("budget, words", [
    (dict(accuracy_pp=-1), "accuracy budget"), (dict(accuracy_pp=101), "accuracy budget"),
    (dict(accuracy_pp=float("nan")), "accuracy budget"), (dict(h_error=0.0), "h-error"),
    (dict(h_error=float("inf")), "h-error"),
])
def test_bad_budgets(budget, words):
    with pytest.raises(SweepError, match=words):
        Budget(**budget)


def test_impossible_search(tiny):
    config, w, x, labels = tiny
    with pytest.raises(SweepError, match="even the baseline misses"):
        search(config, w, x, labels, Budget(h_error=1e-9), screen=None)
    with pytest.raises(SweepError, match="nothing to judge"):
        search(config, w, x, None, Budget(), screen=None)


# ---- sensitivity ----------------------------------------------------------------------------

def test_sensitivity_rows_and_one_step_error(tiny):
    config, w, x, labels = tiny
    rows = sensitivity(config, w, x, labels, ks=(-2, 0, 2))
    assert {r["tensor"] for r in rows} >= {"weight", "h", "z"}
    base = _judge_independently(config, w, x, labels)[2]
    assert all(r["h_max_abs_err"] == base for r in rows if r["k"] == 0)
    weight = {r["k"]: r for r in rows if r["tensor"] == "weight"}
    assert weight[-2]["format"] == str(Format(config.fmt("weight").bits - 2, config.fmt("weight").frac - 2))
    # step 0 starts from the zero state either way: one-step and full-run errors agree there
    run = run_golden(config, w, x)
    step0 = np.max(np.abs(to_float(run.fixed["h"][:, 0], config.fmt("h")) - run.reference["h"][:, 0]))
    assert one_step_error(config, w, x)[0] == step0


# ---- command line ---------------------------------------------------------------------------

def test_cli_sweep_outputs_and_report_round_trip(tiny_files, tmp_path):
    d = tiny_files
    common = ["--config", d / "c.toml", "--weights", d / "w.npz", "--inputs", d / "x.npy",
              "--labels", d / "y.npy"]
    out, table = tmp_path / "narrow.toml", tmp_path / "t.csv"
    p = cli("sweep", *common, "--accuracy-budget", 2, "--h-error-budget", 0.05, "--out", out,
            "--table", table, "--json")
    assert p.returncode == 0, p.stderr
    j = json.loads(p.stdout)
    for key in ("accuracy_float", "accuracy_fixed", "weight_memory_bits",
                "baseline_weight_memory_bits", "config", "h_max_abs_err", "candidates"):
        assert key in j
    assert j["weight_memory_bits"] <= j["baseline_weight_memory_bits"]
    assert len(table.read_text().splitlines()) == j["candidates"] + 1
    written = load_config(out)
    assert {n: str(written.fmt(n)) for n in written.tensors} == \
        {n: v["q"] for n, v in j["config"].items() if n != "activations"}
    # the report on the written config reproduces the sweep's figures
    r = cli("report", *common[2:], "--config", out, "--json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["accuracy_fixed"] == j["accuracy_fixed"]
    assert rep["h_max_abs_err"] == j["h_max_abs_err"]


def test_cli_text_markdown_and_plots(tiny_files, tmp_path):
    pytest.importorskip("matplotlib")
    d = tiny_files
    table = tmp_path / "t.md"
    p = cli("sweep", "--config", d / "c.toml", "--weights", d / "w.npz", "--inputs", d / "x.npy",
            "--labels", d / "y.npy", "--accuracy-budget", 5, "--table", table,
            "--plots", tmp_path / "plots")
    assert p.returncode == 0, p.stderr
    assert "Winner vs baseline" in p.stdout and "Range analysis" in p.stdout
    assert table.read_text().startswith("| index | move |")
    assert (tmp_path / "plots" / "pareto.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("extra, words", [
    (["--accuracy-budget", "-1"], "accuracy budget"),
    (["--accuracy-budget", "150"], "accuracy budget"),
    (["--accuracy-budget", "nan"], "accuracy budget"),
    (["--h-error-budget", "-0.1"], "h-error budget"),
    (["--h-error-budget", "nan"], "h-error budget"),
    (["--h-error-budget", "1e-9"], "even the baseline misses"),
    (["--table", "t.txt"], ".csv or .md"),
    (["--out", "no/such/dir/n.toml"], "does not exist"),
    (["--accuracy-budget", "abc"], "invalid float"),
])
def test_cli_errors(tiny_files, tmp_path, extra, words):
    d = tiny_files
    extra = [str(tmp_path / e) if e.startswith(("t.", "no/")) else e for e in extra]
    p = cli("sweep", "--config", d / "c.toml", "--weights", d / "w.npz", "--inputs", d / "x.npy",
            "--labels", d / "y.npy", "--out", tmp_path / "n.toml", *extra)
    assert_one_line_error(p, words)
    assert not (tmp_path / "n.toml").exists()


def test_cli_bad_config(tiny_files, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[modes]\nround = 'RNE'\n")      # a partial config: its one value is bad
    p = cli("sweep", "--config", bad, "--weights", tiny_files / "w.npz")
    assert_one_line_error(p, "[modes]: rounding mode must be one of RND, TRN, not 'RNE'")


def test_shipped_narrow_config_keeps_its_budget():
    """configs/narrow.toml (python -m model sweep --h-error-budget 0.05 --out configs/narrow.toml):
    within 0.2 points of float accuracy, h error <= 0.05, <= 75 % of the default's weight memory."""
    from model.shipped import DEFAULT_HELDOUT, DEFAULT_WEIGHTS, load_heldout
    from model.weights import load_weights
    narrow = load_config(REPO / "configs" / "narrow.toml")
    w = load_weights(DEFAULT_WEIGHTS)
    x, labels = load_heldout(w.n_inputs, w.head_weight.shape[0], DEFAULT_HELDOUT)
    fixed_acc, float_acc, h_err = _judge_independently(narrow, w, x, labels)
    assert fixed_acc >= float_acc - 0.002 and h_err <= 0.05
    assert weight_memory_bits(narrow, 8, 32) <= 0.75 * weight_memory_bits(load_config(), 8, 32)


def test_progress_rewrites_a_line_on_a_terminal_and_prints_every_n_otherwise():
    import io
    from model.sweep import Progress

    class Terminal(io.StringIO):
        def isatty(self):
            return True
    tty, log = Terminal(), io.StringIO()
    bar, lines = Progress(stream=tty), Progress(stream=log, every=3)
    for n in range(1, 8):
        bar.update(n, "pass 1: weight", "123 weight-memory bits")
        lines.update(n, "pass 1: weight")
    bar.done()
    assert tty.getvalue().count("\r") == 7 and tty.getvalue().endswith("\n")
    assert [ln.split(",")[0] for ln in log.getvalue().splitlines()] == \
        ["sweep: 3 candidates", "sweep: 6 candidates"]


def test_block_ram_estimate_by_hand():
    from model.costs import bram_blocks, bram_count
    cfg = load_config()
    # 8 lanes x 640 words x 16 bits: 1024 x 18 mode, one block each (make synth counts 8)
    assert bram_count(cfg, 8, 32) == 8
    assert bram_count(cfg.replace(weight=TensorSpec(Format(12, 9))), 8, 32) == 8
    # 28x28, H = 128 on 8 lanes: 9984 words per lane; 16 bits -> 10 x (1024 x 18) blocks,
    # 9 bits -> 5 x (2048 x 9), 4 bits -> 3 x (4096 x 4)
    assert [bram_blocks(9984, w) for w in (16, 9, 4)] == [10, 5, 3]
    assert bram_blocks(1, 37) == 2 and bram_blocks(16385, 1) == 2
