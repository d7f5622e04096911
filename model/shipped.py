"""Where the shipped model and its held-out data live (used when no file is named)."""
from pathlib import Path

import numpy as np

from .weights import InputError, check_inputs, check_labels

__all__ = ["DATA_DIR", "DEFAULT_WEIGHTS", "DEFAULT_HELDOUT", "load_heldout"]

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
DEFAULT_WEIGHTS = DATA_DIR / "digits_lstm.npz"
DEFAULT_HELDOUT = DATA_DIR / "digits_heldout.npz"


def load_heldout(n_inputs: int, n_classes: int | None, path=DEFAULT_HELDOUT):
    """The shipped held-out digits: inputs (N, 8, 8) as sequences of rows, labels (N,)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"held-out data not found: {path}")
    with np.load(path, allow_pickle=False) as npz:
        x, labels = npz["x"], npz["labels"]
    x = check_inputs(x, n_inputs, f"held-out inputs {path}")
    return x, check_labels(labels, x.shape[0], n_classes, f"held-out labels {path}")
