"""Scenario builders shared by the cocotb tests and the long regression."""
import copy

import numpy as np

import helpers_model
from model.activations import build_table
from model.config import ConfigError, load_config, parse_config
from model.fixed import quantize
from model.golden import quantize_inputs
from model.weights import LSTMStack, LSTMWeights, quantize_weights
from rtl.geometry import Geometry
from rtl.top import LSTMCell
from sim.scenario import Scenario

__all__ = ["random_case", "random_stack_case", "full_scenario", "corner_weights"]


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


def _random_layer(rng, X, H):
    k = float(rng.choice([0.5, 1.0, 2.0])) / np.sqrt(H)
    return LSTMWeights(rng.uniform(-k, k, (4 * H, X)), rng.uniform(-k, k, (4 * H, H)),
                       rng.uniform(-k, k, 4 * H))


def _layer_formats(rng, raw, X, H):
    """Random formats for one deeper layer as a ``[layers.K.formats]`` table over ``raw``
    (the [activations] parameters are shared, so when the tables they give for the drawn z,
    c and gate formats miss their error bound, only the operand formats x, weight, bias, h
    vary); the accumulator fits X, H."""
    drawn = helpers_model.random_raw(rng, X, H)["formats"]
    for names in (tuple(drawn), ("x", "weight", "bias", "h")):
        merged = copy.deepcopy({k: v for k, v in raw.items() if k != "layers"})
        merged["formats"].update({n: drawn[n] for n in names})
        try:
            helpers_model.fit_accumulator(merged, X, H)
            for spec in parse_config(copy.deepcopy(merged)).tables.values():
                build_table(spec)
        except ConfigError:
            continue
        return {n: f for n, f in merged["formats"].items() if f != raw["formats"][n]}
    return {}


def random_stack_case(seed: int, n_layers: int, *, max_hidden: int = 9):
    """A random odd-size stack of ``n_layers``: (config with ``[layers.K.formats]`` for every
    deeper layer, LSTMStack, lanes per layer). Layer k runs with ``config.for_layer(k)``."""
    rng = np.random.default_rng(seed)
    sizes = [int(rng.integers(1, 9))] + [int(rng.integers(1, max_hidden + 1)) for _ in range(n_layers)]
    raw = helpers_model.random_raw(rng, sizes[0], sizes[1])
    if n_layers > 1:
        raw["layers"] = {str(k): {"formats": _layer_formats(rng, raw, sizes[k], sizes[k + 1])}
                         for k in range(1, n_layers)}
    cfg = parse_config(raw, source="<random stack>")
    stack = LSTMStack(tuple(_random_layer(rng, X, H) for X, H in zip(sizes[:-1], sizes[1:])))
    lanes = [int(rng.integers(1, X + H + 1)) for X, H in zip(sizes[:-1], sizes[1:])]
    return cfg, stack, lanes


def corner_weights(cfg, X, H, sign):
    """Every weight and bias at one rail: accumulators and c are driven to saturation."""
    big = sign * 2.0 * max(abs(cfg.fmt("weight").min_value), abs(cfg.fmt("bias").min_value), 1.0)
    return LSTMWeights(np.full((4 * H, X), big), np.full((4 * H, H), big), np.full(4 * H, big))


def full_scenario(cfg, weights, lanes, *, seed, steps, gap=0.3, stall=0.3, reset=True,
                  reload=True, state=True, loads=1, weight_layers=None, state_layers=None):
    """Sequences back to back with random gaps and stalls; a reset in the middle of a step;
    then ``loads`` weight packets (of new models) and ``loads`` state packets offered
    concurrently with the last block of sequences, each after a random wait, so they land
    between any two steps and the x producer waits on them.

    ``weights`` an :class:`LSTMStack` of L >= 2 layers (``lanes`` one P per layer): a stacked
    scenario; each load goes to a random layer, and the reset lands anywhere in the latency
    of the whole stack (a step in flight in some layer). ``weight_layers``, ``state_layers``:
    the layers the loads go to, one packet each (instead of ``loads`` to random layers)."""
    rng = np.random.default_rng(seed)
    if isinstance(weights, LSTMStack) and weights.n_layers == 1:
        weights, lanes = weights.layers[0], (lanes[0] if np.ndim(lanes) else lanes)
    stacked = isinstance(weights, LSTMStack)
    layer_w = list(weights.layers) if stacked else [weights]
    layer_p = list(lanes) if stacked else [lanes]
    cfgs = [cfg.for_layer(k) for k in range(len(layer_w))]
    qws = [quantize_weights(w, c) for w, c in zip(layer_w, cfgs)]
    geometries = [Geometry.of(c, q, p) for c, q, p in zip(cfgs, qws, layer_p)]
    sc = Scenario.stacked(list(zip(cfgs, qws, layer_p)) if stacked else [(cfg, qws[0], None)],
                          seed=seed, gap=gap, stall=stall)
    X = layer_w[0].n_inputs
    cps = [g.issue_cycles + LSTMCell.overhead_for(g.lanes) for g in geometries]
    T = int(rng.integers(1, 9))
    B = -(-steps // (3 * T))             # at least ``steps`` steps in the three blocks
    block_cycles = B * T * max(cps)
    # mid-step: within the step of the single cell, within the stack's latency
    reset_within = geometries[0].issue_cycles if not stacked else sum(cps)
    pick = (lambda: int(rng.integers(0, len(layer_w)))) if stacked else (lambda: 0)

    def sequences(first_sequence, background=False):
        x = rng.normal(0, 2, (B, T, X)) * rng.choice([1, 4], (B, T, X))
        sc.add_sequences(quantize_inputs(cfg, x)[0], first_sequence=first_sequence,
                         background=background)

    sequences(0)
    if reset:
        # some steps later, reset mid-step (the step's output is lost), then start clean
        sc.add_sequences(quantize_inputs(cfg, rng.normal(0, 1, (1, T, X)))[0], first_sequence=B)
        sc.add_reset(int(rng.integers(1, reset_within)))
    sequences(B + 1)
    targets = weight_layers if weight_layers is not None else [None] * (loads if reload else 0)
    n = len(targets)
    for layer in targets:
        layer = pick() if layer is None else layer
        lc, lw = cfgs[layer], layer_w[layer]
        Xk, H = lw.n_inputs, lw.n_hidden
        k = float(rng.choice([0.5, 1.5])) / np.sqrt(H)
        second = LSTMWeights(rng.uniform(-k, k, (4 * H, Xk)), rng.uniform(-k, k, (4 * H, H)),
                             rng.uniform(-k, k, 4 * H))
        sc.add_weight_load(geometries[layer].load_packet(quantize_weights(second, lc)),
                           after=int(rng.integers(0, block_cycles // max(n, 1) + 1)),
                           background=True, layer=layer)
    targets = state_layers if state_layers is not None else [None] * (loads if state else 0)
    n = len(targets)
    for layer in targets:
        layer = pick() if layer is None else layer
        lc, H = cfgs[layer], layer_w[layer].n_hidden
        h0, _ = quantize(rng.uniform(-1, 1, H), lc.fmt("h"), *_modes(lc, "h"))
        c0, _ = quantize(rng.uniform(-3, 3, H), lc.fmt("c"), *_modes(lc, "c"))
        sc.add_state_load(geometries[layer].state_packet(h0, c0),
                          after=int(rng.integers(0, block_cycles // max(n, 1) + 1)),
                          background=True, layer=layer)
    sequences(2 * B + 1)
    return sc


def _modes(cfg, name):
    spec = cfg.spec(name)
    return spec.round, spec.overflow


def add_random_head(sc, seed: int, *, always: bool = False) -> int:
    """Maybe put a classifier head after the scenario's last layer (drawn from its own stream,
    so the rest of configuration ``seed`` stays as it was): about half the configurations get
    C in 1..12 classes (C > H included), weights and biases cast into the last layer's weight
    and bias formats (some at their rails). Returns C (0: no head)."""
    rng = np.random.default_rng([seed, 9])
    if not always and rng.random() < 0.5:
        return 0
    cfg, qw, _ = sc.layers[-1]
    C, H = int(rng.integers(1, 13)), qw.n_hidden
    codes = {}
    for name, shape in (("weight", (C, H)), ("bias", (C,))):
        fmt = cfg.fmt(name)
        codes[name] = rng.integers(fmt.min_code, fmt.max_code + 1, shape)
        codes[name][..., 0] = rng.choice([fmt.min_code, fmt.max_code])
    sc.add_head(codes["weight"], codes["bias"])
    return C
