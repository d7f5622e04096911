"""python -m bench.sweep [--hidden H] [--inputs X] [--steps T] [--sequences B]

How long the precision sweep (:func:`model.sweep.search`) takes on a model the size of the
notebook network (default X=28, H=128, T=28, 540 sequences): random weights, random inputs in
[0, 1), labels = the float model's own predictions (so float accuracy is 100 % and every
flipped prediction counts). Prints wall and CPU seconds, the candidate count, the screening
subset and the winner's weight-memory share; a benchmark, not a test.
"""
import argparse
import time

import numpy as np

from model.cell import float_head, float_run
from model.config import load_config
from model.sweep import Budget, Progress, search
from model.weights import LSTMWeights


def random_model(X: int, H: int, T: int, B: int, classes: int = 10, seed: int = 1):
    rng = np.random.default_rng(seed)
    s = 3 / np.sqrt(H)
    w = LSTMWeights(rng.uniform(-s, s, (4 * H, X)), rng.uniform(-s, s, (4 * H, H)),
                    rng.uniform(-s / 3, s / 3, 4 * H), rng.uniform(-1, 1, (classes, H)),
                    rng.uniform(-0.1, 0.1, classes))
    x = rng.uniform(0, 1, (B, T, X))
    labels = np.argmax(float_head(w, float_run(w, x)["h"][:, -1]), axis=-1)
    return w, x, labels


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.sweep", description=__doc__.splitlines()[2])
    p.add_argument("--inputs", type=int, default=28)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--steps", type=int, default=28)
    p.add_argument("--sequences", type=int, default=540)
    args = p.parse_args(argv)
    w, x, labels = random_model(args.inputs, args.hidden, args.steps, args.sequences)
    wall, cpu = time.perf_counter(), time.process_time()
    result = search(load_config(), w, x, labels, Budget(), progress=Progress())
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    win, base = result.winner, result.baseline
    print(f"X={args.inputs} H={args.hidden} T={args.steps} B={args.sequences}: "
          f"{len(result.candidates)} candidates in {wall:.1f} s wall, {cpu:.1f} s CPU; screened on "
          f"{result.screen or 'all'} sequences; winner {win.costs.weight_memory_bits} weight-memory "
          f"bits ({win.costs.weight_memory_bits / base.costs.weight_memory_bits:.1%} of the "
          f"default), accuracy {100 * win.metrics['accuracy_fixed']:.2f} % "
          f"(float {100 * win.metrics['accuracy_float']:.2f} %)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
