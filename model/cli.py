"""Command-line plumbing shared by ``python -m model``, ``python -m rtl`` and ``python -m sim``:
one-line errors (docs/cli.md), the common operands, atomic output files.

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
from .importers import FORMATS, load_model_file
from .shipped import DEFAULT_HELDOUT, DEFAULT_WEIGHTS
from .weights import (InputError, check_inputs, check_labels, file_kind, load_dataset,
                      load_inputs, load_npy)

__all__ = ["USAGE_ERROR", "INTERRUPTED", "UsageError", "ArgumentParser", "fail", "run_command",
           "interrupted", "main_interruptible", "add_weights_options", "load_model", "single_layer",
           "note_default_lanes",
           "load_operands", "check_target",
           "atomic_write", "shown"]

USAGE_ERROR = 2
INTERRUPTED = 130


class UsageError(Exception):
    """A command line that cannot be carried out (bad output path, ...)."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line errors (exit status 2, like argparse's own)."""

    def error(self, message):
        raise SystemExit(fail(f"{message} (see: {self.prog} --help)"))


def fail(message) -> int:
    print("error: " + " ".join(str(message).split()), file=sys.stderr)
    return USAGE_ERROR


def interrupted() -> int:
    """Ctrl-C: one line and status 130, like the shell's, instead of a traceback."""
    print("interrupted", file=sys.stderr)
    return INTERRUPTED


def main_interruptible(main, argv=None) -> int:
    """``main(argv)`` for commands that do not go through :func:`run_command`."""
    try:
        return main(argv)
    except KeyboardInterrupt:
        return interrupted()


def run_command(handler, args, *, expected=()) -> int:
    """``handler(args)`` under the contract: FixedPointError, UsageError and ``expected``
    exceptions give one line and exit 2; Ctrl-C gives ``interrupted`` and exit 130; anything
    else one line and exit 1."""
    try:
        return handler(args)
    except KeyboardInterrupt:
        return interrupted()
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


def add_weights_options(parser, default: str = "the shipped digits model") -> None:
    """``--weights`` and ``--weights-format``, the same on every command that reads a model."""
    parser.add_argument("--weights", metavar="FILE",
                        help="trained model: our .npz, a PyTorch state_dict (.npz, .safetensors, "
                             f".pt), .onnx, Keras .keras/.h5, TensorFlow .npz (default: {default})")
    parser.add_argument("--weights-format", choices=FORMATS, metavar="{" + ",".join(FORMATS) + "}",
                        help="read --weights as this format instead of recognising it by content")


def load_model(args):
    """Config and the model (an LSTMStack) from ``--config``, ``--weights`` and
    ``--weights-format`` (defaults: the shipped config and model)."""
    config = load_config(args.config)
    stack = load_model_file(Path(args.weights) if args.weights else DEFAULT_WEIGHTS,
                            getattr(args, "weights_format", None))
    return config, stack


def note_default_lanes(config, model, lanes) -> None:
    """With no ``--lanes``, a layer smaller than the config's ``[rtl] lanes`` gets P = X+H
    (:meth:`Config.lanes_for`): one line on stderr says so. An explicit P is never changed."""
    if lanes is not None:
        return
    layers = getattr(model, "layers", None) or [model]
    capped = [(k, w.n_inputs + w.n_hidden) for k, w in enumerate(layers)
              if config.for_layer(k).lanes > w.n_inputs + w.n_hidden]
    if capped:
        where = ", ".join(f"layer {k}: P = {p}" for k, p in capped) if len(layers) > 1 \
            else f"P = {capped[0][1]}"
        print(f"note: the config's [rtl] lanes = {config.lanes} is more than this model's X+H; "
              f"using {where} (--lanes sets P)", file=sys.stderr)


def single_layer(stack, what: str):
    """The model as one LSTMWeights for a consumer that takes one layer and no stored state."""
    weights = stack.single(what)
    if stack.h0 is not None or stack.c0 is not None:
        raise InputError(f"{what} does not take the initial state stored in this model file "
                         "(ONNX initial_h/initial_c)")
    return weights


def load_operands(args, *, want_labels: bool, stacked: bool = False, what: str = "this command"):
    """Config, model, inputs (B, T, X), labels (or None) and where each came from, from the
    common options ``--config``, ``--weights``, ``--inputs`` (and ``--labels``).

    The model is the whole :class:`LSTMStack` with ``stacked=True``, else the single layer
    (:func:`single_layer`; ``what`` names the command in a refusal)."""
    config, stack = load_model(args)
    model = stack if stacked else single_layer(stack, what)
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
    """``write(file)`` into a temporary file beside ``path``, renamed onto it on success.

    An OSError about the temporary file (directory not writable, ...) is raised as one about
    ``path``: the user never named the temporary file."""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise OSError(e.errno, e.strerror, str(path)) from None
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError) and e.filename == tmp:
            raise OSError(e.errno, e.strerror, str(path)) from None
        raise
