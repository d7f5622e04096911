"""Command-line plumbing shared by ``python -m model``, ``python -m rtl`` and ``python -m sim``:
one-line errors (DESIGN.md §7), the common operands, atomic output files.

Bad input ends with one line ``error: ...`` on stderr and exit status 2; an unexpected error
also gives one line (exit status 1) unless ``MODEL_DEBUG=1`` asks for the traceback.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path


from .config import load_config
from .fixed import FixedPointError
from .shipped import DEFAULT_HELDOUT, DEFAULT_WEIGHTS
from .weights import (LSTMStack, check_inputs, check_labels, file_kind, load_dataset,
                      load_inputs, load_npy, load_npz, load_weights)

__all__ = ["USAGE_ERROR", "UsageError", "ArgumentParser", "fail", "run_command",
           "load_stack", "load_model", "load_operands", "check_target", "atomic_write", "shown"]

USAGE_ERROR = 2


class UsageError(Exception):
    """A command line that cannot be carried out (bad output path, ...)."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line errors (exit status 2, like argparse's own)."""

    def error(self, message):
        raise SystemExit(fail(f"{message} (see: {self.prog} --help)"))


def fail(message) -> int:
    print("error: " + " ".join(str(message).split()), file=sys.stderr)
    return USAGE_ERROR


def run_command(handler, args, *, expected=()) -> int:
    """``handler(args)`` under the contract: FixedPointError, UsageError and ``expected``
    exceptions give one line and exit 2; anything else one line and exit 1."""
    try:
        return handler(args)
    except (FixedPointError, UsageError, *expected) as e:
        return fail(e)
    except BrokenPipeError:         # stdout closed early (| head): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except Exception as e:          # noqa: BLE001 - the contract: one line, never a traceback
        if os.environ.get("MODEL_DEBUG"):
            raise
        if isinstance(e, OSError):
            return fail(f"{e.filename}: {e.strerror}" if e.filename else e)
        fail(f"unexpected {type(e).__name__}: {e} (set MODEL_DEBUG=1 for a traceback)")
        return 1


# ---- operands ------------------------------------------------------------------------------

def shown(path) -> str:
    """A path as the user would type it: relative to the working directory when inside it."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def load_stack(args):
    """Config and the model as an :class:`~model.weights.LSTMStack` from ``--config`` and
    ``--weights`` (defaults: shipped).

    Until the importer registry (``model.importers.load_model_file``) replaces it: an
    ``.npz`` in TensorFlow's BasicLSTMCell layout (``kernel``, ``bias``) goes through
    :mod:`model.importers.tensorflow`; any other file is the native one-layer ``.npz``.
    """
    from .importers import tensorflow
    config = load_config(args.config)
    path = Path(args.weights) if args.weights else DEFAULT_WEIGHTS
    arrays = load_npz(path, "weights")
    if tensorflow.sniff(path, b"", set(arrays)):
        return config, tensorflow.load(path)
    return config, LSTMStack.from_single(load_weights(path))


def load_model(args, what: str = "the RTL"):
    """Config and one layer's float weights (with the head) from ``--config`` and
    ``--weights``; a stacked model is refused (``what`` names the single-layer consumer)."""
    config, stack = load_stack(args)
    return config, stack.single(what)


def load_operands(args, *, want_labels: bool):
    """Config, model (an LSTMStack), inputs (B, T, X), labels (or None) and where each came
    from, from the common options ``--config``, ``--weights``, ``--inputs`` (and ``--labels``)."""
    config, model = load_stack(args)
    bundled = None
    if args.inputs and file_kind(Path(args.inputs), "inputs") == "npz":
        # a data set .npz: its labels go with its inputs (like the shipped held-out set)
        x, bundled = load_dataset(Path(args.inputs))
        x = check_inputs(x, model.n_inputs, f"inputs {args.inputs}")
    elif args.inputs:
        x = check_inputs(load_inputs(Path(args.inputs)), model.n_inputs, f"inputs {args.inputs}")
    else:
        x, bundled = load_dataset(DEFAULT_HELDOUT)
        x = check_inputs(x, model.n_inputs, f"inputs {DEFAULT_HELDOUT}")
    n_classes = model.head_weight.shape[0] if model.has_head else None
    label_path = getattr(args, "labels", None) if want_labels else None
    labels = None
    if label_path:
        labels = check_labels(load_npy(Path(label_path), "labels"), x.shape[0], n_classes,
                              f"labels {label_path}")
    elif want_labels and bundled is not None and model.has_head:
        # the bundled labels go with the bundled inputs; a headless model just gets no accuracy
        labels = check_labels(bundled, x.shape[0], n_classes,
                              f"labels in {args.inputs or DEFAULT_HELDOUT}")
    sources = {"config": shown(config.source),
               "weights": shown(args.weights or DEFAULT_WEIGHTS),
               "inputs": shown(args.inputs or DEFAULT_HELDOUT)}
    if labels is not None:
        sources["labels"] = shown(label_path or args.inputs or DEFAULT_HELDOUT)
    return config, model, x, labels, sources


# ---- output files --------------------------------------------------------------------------

def check_target(path, option: str) -> Path:
    """An output file path whose directory exists (checked before any work is done)."""
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{option} {path} is a directory, not a file")
    if not path.parent.is_dir():
        raise UsageError(f"{option} {path}: directory {path.parent} does not exist")
    return path


def atomic_write(path: Path, write, mode: str = "wb") -> None:
    """``write(file)`` into a temporary file beside ``path``, renamed onto it on success."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
