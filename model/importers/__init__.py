"""Model importers: a trained LSTM from PyTorch, ONNX, Keras or TensorFlow as an LSTMStack.

``load_model_file(path, fmt=None)`` recognises the file by its content (never by its name
alone), then by the names inside it, and returns :class:`model.weights.LSTMStack` (layers in
gate order i, f, g, o with one summed bias; an optional head on the last step; optional
initial states stored in the file). ``fmt`` forces one importer by name.

Formats, in the order they are tried:

``native``      our ``.npz``: ``weight_ih``, ``weight_hh``, ``bias`` (+ ``head_weight``, ``head_bias``)
``pytorch``     a ``state_dict`` of ``nn.LSTM`` (+ ``nn.Linear``) in ``.npz`` or ``.safetensors``;
                ``.pt``/``.pth`` only when torch is installed
``tensorflow``  TensorFlow 1 ``BasicLSTMCell``/``LSTMCell`` variables in ``.npz`` (``kernel``, ``bias``)
``onnx``        an ONNX graph of ``LSTM`` nodes (+ ``Gemm`` or ``MatMul``/``Add`` head)
``keras``       a Keras ``.keras`` archive or legacy ``.h5`` file (LSTM layers + ``Dense`` head)

Importer module API (each ``model/importers/<name>.py``; a framework package is imported
inside its module's functions only, so ``import model`` needs numpy alone):

``NAME: str``
    the format name above (what ``--weights-format`` takes).
``DESCRIPTION: str`` (optional)
    a few words for error messages, e.g. ``"PyTorch state_dict (.npz, .safetensors, .pt)"``.
``sniff(path: pathlib.Path, head: bytes, npz_keys: list[str] | None) -> bool``
    cheap test of whether this importer takes the file: ``head`` is the file's first
    ``common.HEAD_BYTES`` bytes, ``npz_keys`` the array names when the file is an ``.npz``
    (a zip of ``.npy`` members), else None. Must not raise on any content. (The
    ``tensorflow`` importer answers True for an ``.npz`` with ``kernel`` and ``bias``.)
``load(path: pathlib.Path) -> LSTMStack``
    read the model; anything it cannot map raises :class:`model.weights.InputError` (or its
    subclass :class:`common.ImportFailure`) with a one-line reason naming the file and the
    tensor, node, layer or attribute at fault. ``load`` is also called on files its ``sniff``
    rejects (``fmt`` given by the user), so it checks the content itself.

An importer module that is not present (the ``tensorflow`` one may be built separately) is
skipped by detection and refused by name when asked for.
"""
from __future__ import annotations

import importlib
from pathlib import Path

from ..weights import InputError, LSTMStack
from .common import ImportFailure, probe

__all__ = ["FORMATS", "load_model_file", "detect_format", "importer", "ImportFailure"]

#: Format names in detection order (the first whose ``sniff`` accepts the file wins).
FORMATS = ("native", "pytorch", "tensorflow", "onnx", "keras")


def importer(name: str):
    """The importer module for a format name, or None when that module is not installed."""
    if name not in FORMATS:
        raise InputError(f"unknown weights format {name!r} (known: {', '.join(FORMATS)})")
    qualified = f"{__name__}.{name}"
    try:
        return importlib.import_module(qualified)
    except ModuleNotFoundError as e:
        if e.name == qualified:
            return None
        raise


def detect_format(path) -> str:
    """The name of the first importer whose ``sniff`` takes the file, or a one-line
    InputError saying what the file holds."""
    p = probe(path)
    for name in FORMATS:
        module = importer(name)
        if module is not None and module.sniff(p.path, p.head, p.npz_keys):
            return name
    if p.damaged_zip:
        raise InputError(f"weights file {p.path}: {p.describe()}")
    known = [n for n in FORMATS if importer(n) is not None]
    raise InputError(f"weights file {p.path}: not a model layout this tool reads: found "
                     f"{p.describe()} (formats: {', '.join(known)}; see docs/import.md)")


def load_model_file(path, fmt: str | None = None) -> LSTMStack:
    """Read a trained LSTM from ``path`` as an :class:`LSTMStack`.

    ``fmt`` (one of :data:`FORMATS`) skips detection; otherwise the content decides.
    """
    path = Path(path)
    if fmt is None:
        fmt = detect_format(path)
    else:
        probe(path)                      # not found / not a file: the same message as always
    module = importer(fmt)
    if module is None:
        raise InputError(f"the {fmt} importer is not part of this installation")
    stack = module.load(path)
    if not isinstance(stack, LSTMStack):
        raise TypeError(f"the {fmt} importer returned {type(stack).__name__}, not an LSTMStack")
    return stack
