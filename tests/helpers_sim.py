"""Scenario builders shared by the cocotb tests and the long regression."""
import numpy as np

import helpers_model
from model.config import load_config
from model.fixed import quantize
from model.golden import quantize_inputs
from model.weights import LSTMWeights, quantize_weights
from rtl.geometry import Geometry
from rtl.top import LSTMCell
from sim.scenario import Scenario

__all__ = ["random_case", "full_scenario", "corner_weights"]


def random_case(seed: int, *, default_formats: bool = False):
    """A random odd-size model: (config, X, H, lanes, float weights)."""
    rng = np.random.default_rng(seed)
    X, H = int(rng.integers(1, 9)), int(rng.integers(1, 10))
    cfg = load_config() if default_formats else helpers_model.random_config(rng, X, H)
    lanes = int(rng.integers(1, X + H + 1))
    scale = float(rng.choice([0.5, 1.0, 2.0]))
    k = scale / np.sqrt(H)
    weights = LSTMWeights(rng.uniform(-k, k, (4 * H, X)), rng.uniform(-k, k, (4 * H, H)),
                          rng.uniform(-k, k, 4 * H))
    return cfg, X, H, lanes, weights


def corner_weights(cfg, X, H, sign):
    """Every weight and bias at one rail: accumulators and c are driven to saturation."""
    big = sign * 2.0 * max(abs(cfg.fmt("weight").min_value), abs(cfg.fmt("bias").min_value), 1.0)
    return LSTMWeights(np.full((4 * H, X), big), np.full((4 * H, H), big), np.full(4 * H, big))


def full_scenario(cfg, weights, lanes, *, seed, steps, gap=0.3, stall=0.3, reset=True,
                  reload=True, state=True, loads=1):
    """Sequences back to back with random gaps and stalls; a reset in the middle of a step;
    then ``loads`` weight packets (of new models) and ``loads`` state packets offered
    concurrently with the last block of sequences, each after a random wait, so they land
    between any two steps and the x producer waits on them."""
    rng = np.random.default_rng(seed)
    X, H = weights.n_inputs, weights.n_hidden
    qw = quantize_weights(weights, cfg)
    sc = Scenario(cfg, qw, seed=seed, gap=gap, stall=stall)
    geometry = Geometry.of(cfg, qw, lanes)
    T = int(rng.integers(1, 9))
    B = -(-steps // (3 * T))             # at least ``steps`` steps in the three blocks
    block_cycles = B * T * (geometry.issue_cycles + LSTMCell.overhead_for(lanes))

    def sequences(first_sequence, background=False):
        x = rng.normal(0, 2, (B, T, X)) * rng.choice([1, 4], (B, T, X))
        sc.add_sequences(quantize_inputs(cfg, x)[0], first_sequence=first_sequence,
                         background=background)

    sequences(0)
    if reset:
        # some steps later, reset mid-step (the step's output is lost), then start clean
        sc.add_sequences(quantize_inputs(cfg, rng.normal(0, 1, (1, T, X)))[0], first_sequence=B)
        sc.add_reset(int(rng.integers(1, geometry.issue_cycles)))
    sequences(B + 1)
    for _ in range(loads if reload else 0):
        k = float(rng.choice([0.5, 1.5])) / np.sqrt(H)
        second = LSTMWeights(rng.uniform(-k, k, (4 * H, X)), rng.uniform(-k, k, (4 * H, H)),
                             rng.uniform(-k, k, 4 * H))
        sc.add_weight_load(geometry.load_packet(quantize_weights(second, cfg)),
                           after=int(rng.integers(0, block_cycles // max(loads, 1) + 1)),
                           background=True)
    for _ in range(loads if state else 0):
        h0, _ = quantize(rng.uniform(-1, 1, H), cfg.fmt("h"), *_modes(cfg, "h"))
        c0, _ = quantize(rng.uniform(-3, 3, H), cfg.fmt("c"), *_modes(cfg, "c"))
        sc.add_state_load(geometry.state_packet(h0, c0),
                          after=int(rng.integers(0, block_cycles // max(loads, 1) + 1)),
                          background=True)
    sequences(2 * B + 1)
    return sc


def _modes(cfg, name):
    spec = cfg.spec(name)
    return spec.round, spec.overflow
