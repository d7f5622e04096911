"""Where the shipped model and its held-out data live (used when no file is named)."""
from pathlib import Path

from .weights import check_inputs, check_labels, load_dataset

__all__ = ["DATA_DIR", "DEFAULT_WEIGHTS", "DEFAULT_HELDOUT", "load_heldout"]

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
DEFAULT_WEIGHTS = DATA_DIR / "digits_lstm.npz"
DEFAULT_HELDOUT = DATA_DIR / "digits_heldout.npz"


def load_heldout(n_inputs: int, n_classes: int | None, path=DEFAULT_HELDOUT):
    """The shipped held-out digits: inputs (N, 8, 8) as sequences of rows, labels (N,)."""
    x, labels = load_dataset(path)
    x = check_inputs(x, n_inputs, f"held-out inputs {path}")
    return x, check_labels(labels, x.shape[0], n_classes, f"held-out labels {path}")
