"""cocotb on exported stacked designs (rtl.stack.StackedLSTM), golden model as scoreboard, both
simulators: random odd sizes, random formats per layer (``[layers.K.formats]``), lanes per
layer, gaps, stalls, a reset mid-step, back-to-back sequences with ``first``, a runtime weight
load on one layer and state loads on every layer, offered while steps run.

The scoreboard steps layer k's golden model when the design's layer k takes a step (its x
handshake inside the design), so loads on deeper layers may overlap steps anywhere in the
pipeline and still every h and c code of the last layer is compared, and every x code a deeper
layer takes (the link's cast). Two Verilator builds (one per design); the rest runs on Icarus.
"""
import numpy as np
import pytest

from helpers_sim import full_scenario, random_stack_case
from model.config import load_config
from model.golden import layer_input, quantize_inputs, run_golden
from model.weights import quantize_weights
from rtl.geometry import Geometry
from rtl.top import LSTMCell
from rtl_helpers import random_weights
from sim.runner import design_of, run_scenario
from sim.scenario import Scenario

SIMULATORS = ["icarus", "verilator"]

#: seeds of tests/helpers_sim.py's random_stack_case: (seed, layers); sizes X, H_0, H_1, ...
#: and lanes: 2 layers [8, 3, 2], P (5, 4); 3 layers [6, 6, 1, 2], P (3, 2, 3) (layer 0 the
#: slowest, so the layers after it have time to load between steps). Every tensor of every
#: deeper layer has its own format, and each link's cast changes codes.
TWO, THREE = (18, 2), (17, 3)


def _design(case):
    seed, L = case
    return random_stack_case(seed, L, max_hidden=7)


def _passed(result, scenario):
    r = result.results
    assert result.passed, "\n".join(r["reports"][:5]) or f"see {result.log}"
    assert r["mismatches"] == 0 and r["missing"] == 0 and r["error"] == 0
    H = scenario.n_hidden
    assert r["compared"] == r["compared_c"] == r["steps"] * H > 0
    assert r["sent"] == scenario.n_steps and r["steps"] + r["dropped"] == r["sent"]
    return r


@pytest.mark.parametrize("simulator", SIMULATORS)
@pytest.mark.parametrize("case", [TWO, THREE], ids=["2-layers", "3-layers"])
def test_stack_all_scenarios(case, simulator):
    """A weight packet on layer 1 and a state packet on every layer, offered while steps run,
    and a reset somewhere in the stack's latency: 0 mismatches, every step accounted for."""
    cfg, stack, lanes = _design(case)
    L = stack.n_layers
    sc = full_scenario(cfg, stack, lanes, seed=case[0], steps=36 if L == 2 else 27,
                       weight_layers=[1], state_layers=list(range(L)))
    r = _passed(run_scenario(sc, simulator), sc)
    assert r["layers"] == L
    assert r["loads"] == {f"{kind}_l{k}": int(kind == "state" or k == 1)
                          for k in range(L) for kind in ("weights", "state")}
    # the step(s) in flight somewhere in the pipeline at the reset are lost, and counted
    assert 1 <= r["dropped"] <= 2 * L
    # every deeper layer's input was compared, for every step it took
    assert r["compared_inner"] >= sum(w.n_inputs for w in stack.layers[1:]) * r["steps"]
    # a load on a deeper layer holds only that layer: layer 0 took steps meanwhile
    assert r["x_during_deeper_loads"] > 0


def test_closed_forms_in_simulation():
    """No gaps, no stalls, one sequence of T steps: from its first accept to its last output
    takes latency + (T-1) * cycles_per_step = sum_k CPS_k + (T-1) * max_k CPS_k cycles."""
    cfg, stack, lanes = _design(THREE)
    configs = [cfg.for_layer(k) for k in range(stack.n_layers)]
    qw = [quantize_weights(w, c) for w, c in zip(stack.layers, configs)]
    sc = Scenario.stacked(zip(configs, qw, lanes), seed=1)
    T = 6
    x = np.random.default_rng(1).normal(0, 1, (1, T, stack.n_inputs))
    sc.add_sequences(quantize_inputs(cfg, x)[0])
    r = _passed(run_scenario(sc, "icarus"), sc)
    dut = design_of(sc)
    for part in (dut, *dut.layers):      # read for its closed forms only, never elaborated
        part._MustUse__silence = True
    assert dut.latency == sum(Geometry.of(c, q, p).issue_cycles + LSTMCell.overhead_for(p)
                              for c, q, p in zip(configs, qw, lanes))
    assert round(r["cycles_per_step"] * r["steps"]) == dut.cycles_per_sequence(T)


def test_outputs_equal_the_golden_run():
    """The outputs the design delivered are run_golden's last-layer h codes for the same model
    (the testbench's layer-by-layer scoreboard and the golden model's stacked run agree)."""
    cfg, stack, lanes = _design(TWO)
    x = np.random.default_rng(3).normal(0, 2, (2, 4, stack.n_inputs))
    golden = run_golden(cfg, stack, x)
    sc = Scenario.stacked([(layer.config, layer.qweights, p)
                           for layer, p in zip(golden.layers, lanes)], seed=3, gap=0.3, stall=0.3)
    sc.add_sequences(golden.x_raw)
    r = _passed(run_scenario(sc, "icarus"), sc)
    got = np.array([h for _, _, *h in r["received_h"]]).reshape(golden.fixed["h"].shape)
    assert np.array_equal(got, golden.fixed["h"])


def _mutant_case():
    cfg, stack, lanes = _design(TWO)
    configs = [cfg.for_layer(k) for k in range(2)]
    qw = [quantize_weights(w, c) for w, c in zip(stack.layers, configs)]
    x = quantize_inputs(cfg, np.random.default_rng(5).normal(0, 2, (2, 3, stack.n_inputs)))[0]
    return configs, qw, lanes, x


def test_mutant_without_the_inter_layer_cast_is_caught():
    """A scoreboard that feeds layer 1 layer 0's h codes uncast (Q1.10 codes read as Q0.8
    here) must report mismatches: on layer 1's inputs and on the outputs."""
    configs, qw, lanes, x = _mutant_case()
    h = np.arange(-2 ** 11, 2 ** 11, 7)
    assert not np.array_equal(layer_input(h, configs[0], configs[1])[0], h)   # the cast matters
    sc = Scenario.stacked(zip(configs, qw, lanes), seed=5)
    sc.add_believed_raw_link(1)
    sc.add_sequences(x)
    bad = run_scenario(sc, "icarus")
    r = bad.results
    assert not bad.passed and r["mismatches"] > 0 and r["missing"] == 0
    assert any(line.startswith("sequence 0 step 0 layer 1 input unit ") for line in r["reports"])
    assert any(" h: expected " in line for line in r["reports"]), r["reports"]


def test_mutant_with_wrong_deeper_weights_is_caught():
    """The design's layer 1 holds other weights than the scoreboard's: output mismatches."""
    configs, qw, lanes, x = _mutant_case()
    rng = np.random.default_rng(6)
    other = quantize_weights(random_weights(rng, qw[1].n_inputs, qw[1].n_hidden, scale=1.5),
                             configs[1])
    sc = Scenario.stacked(zip(configs, qw, lanes), seed=6)
    sc.add_believed_weights(other, layer=1)
    sc.add_sequences(x)
    bad = run_scenario(sc, "icarus")
    assert not bad.passed and bad.results["mismatches"] > 0
    assert "reproduce with SEED=6" in bad.results["reports"][0]


def test_mutant_stepping_every_layer_at_the_input_is_caught():
    """Loads follow each layer's own handshake: a scoreboard that steps the whole stack when
    layer 0 takes a step (loads on layer 1 then apply to the wrong steps) reports mismatches
    on the scenario the right scoreboard passes (test_stack_all_scenarios, 2 layers)."""
    cfg, stack, lanes = _design(TWO)
    sc = full_scenario(cfg, stack, lanes, seed=TWO[0], steps=36, weight_layers=[1],
                       state_layers=[0, 1])
    sc.add_believed_eager_layers()
    sc.ops.insert(0, sc.ops.pop())          # from the first step on
    bad = run_scenario(sc, "icarus")
    assert not bad.passed and bad.results["mismatches"] > 0


def test_scenario_file_round_trip(tmp_path):
    """A stack's scenario file holds every layer; a single cell's has no stack keys at all."""
    cfg, stack, lanes = _design(THREE)
    configs = [cfg.for_layer(k) for k in range(3)]
    qw = [quantize_weights(w, c) for w, c in zip(stack.layers, configs)]
    sc = Scenario.stacked(zip(configs, qw, lanes), seed=9, gap=0.1)
    g = Geometry.of(configs[2], qw[2], lanes[2])
    H = qw[2].n_hidden
    sc.add_state_load(g.state_packet([0] * H, [1] * H), layer=2)
    sc.save(tmp_path / "s.json")
    again = Scenario.load(tmp_path / "s.json")
    assert again.n_layers == 3 and again.ops == sc.ops and again.ops[0]["layer"] == 2
    for (c0, w0, p0), (c1, w1, p1) in zip(sc.layers, again.layers):
        assert c0 == c1 and p0 == p1 and np.array_equal(w0.weight_hh, w1.weight_hh)
    with pytest.raises(ValueError, match="layer must be in 0..2"):
        sc.add_weight_load([], layer=3)
    single = Scenario(load_config(), qw[0])
    single.add_state_load(Geometry.of(load_config(), qw[0], 1).state_packet([0] * 6, [1] * 6))
    single.save(tmp_path / "one.json")
    text = (tmp_path / "one.json").read_text()
    assert '"stack"' not in text and '"layer"' not in text
