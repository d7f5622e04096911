"""Pieces every importer shares: what a file looks like from outside, gate reordering, the
safetensors container, and the one-line error.

Model files are untrusted: nothing here unpickles, executes or deserialises code.
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from ..weights import NPY_MAGIC, InputError, LSTMWeights, load_npz

__all__ = ["HEAD_BYTES", "ZIP_MAGIC", "HDF5_MAGIC", "GATE_ORDERS", "ImportFailure", "Probe",
           "probe", "to_ifgo", "layer", "load_safetensors", "is_safetensors", "read_npz"]

HEAD_BYTES = 64
ZIP_MAGIC = b"PK\x03\x04"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"

#: Row blocks of each framework's 4H gate axis, as the position of our i, f, g, o in it.
#: Ours (and PyTorch's): i, f, g, o. Keras: i, f, c, o (c is our g: the same order).
#: ONNX: i, o, f, c. TensorFlow 1 BasicLSTMCell: i, j, f, o (j is our g).
GATE_ORDERS = {
    "pytorch": (0, 1, 2, 3),
    "keras": (0, 1, 2, 3),
    "onnx": (0, 2, 3, 1),
    "tensorflow": (0, 2, 1, 3),
}


class ImportFailure(InputError):
    """A model file that an importer cannot map onto LSTM layers, with the reason."""


class Probe:
    """What a file looks like before any importer reads it: its first bytes, its size, the
    names inside it when it is a zip, and the array names when that zip is an ``.npz``."""

    def __init__(self, path: Path, head: bytes, size: int, zip_names, npz_keys):
        self.path, self.head, self.size = path, head, size
        self.zip_names, self.npz_keys = zip_names, npz_keys
        #: starts like a zip archive but its directory cannot be read (cut short, corrupted)
        self.damaged_zip = head.startswith(ZIP_MAGIC) and zip_names is None

    def describe(self) -> str:
        """What was found, for an error that says why no importer took the file."""
        if self.npz_keys is not None:
            return "an .npz with arrays " + (", ".join(self.npz_keys) or "(none)")
        if self.zip_names is not None:
            return "a zip with " + (", ".join(self.zip_names[:12]) or "nothing in it")
        if self.damaged_zip:
            return (f"a damaged or truncated zip archive ({self.size} bytes: a .keras, .npz or "
                    ".pt file cut short or corrupted?)")
        if self.head.startswith(NPY_MAGIC):
            return "a .npy array, not an .npz archive"
        if self.head.startswith(HDF5_MAGIC):
            return "an HDF5 file"
        if not self.head:
            return "an empty file"
        return f"{self.size} bytes starting {self.head[:8].hex(' ')}"


def probe(path) -> Probe:
    path = Path(path)
    if not path.exists():
        raise InputError(f"weights file not found: {path}")
    if not path.is_file():
        raise InputError(f"weights path is not a file: {path}")
    with open(path, "rb") as f:
        head = f.read(HEAD_BYTES)
    size = path.stat().st_size
    zip_names = npz_keys = None
    if head.startswith(ZIP_MAGIC) and zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as z:
                zip_names = z.namelist()
        except (zipfile.BadZipFile, OSError, ValueError):
            zip_names = None
        if zip_names is not None and all(n.endswith(".npy") for n in zip_names):
            npz_keys = [n[:-4] for n in zip_names]
    return Probe(path, head, size, zip_names, npz_keys)


def read_npz(path, what: str) -> dict:
    """Every array of an ``.npz`` (no pickles), as a dict."""
    return load_npz(path, what)


def to_ifgo(a: np.ndarray, order, axis: int = 0) -> np.ndarray:
    """Reorder the four gate blocks along ``axis`` (length 4H) into i, f, g, o.

    ``order[k]`` is where our k-th gate (i, f, g, o) sits in the framework's blocks, as in
    :data:`GATE_ORDERS`.
    """
    a = np.asarray(a)
    if a.shape[axis] % 4:
        raise ImportFailure(f"gate axis of length {a.shape[axis]} is not 4H")
    blocks = np.split(a, 4, axis=axis)
    return np.concatenate([blocks[k] for k in order], axis=axis)


def layer(where: str, weight_ih, weight_hh, bias) -> LSTMWeights:
    """A headless layer, with the layer's name in front of any shape error."""
    try:
        return LSTMWeights(weight_ih, weight_hh, bias)
    except InputError as e:
        raise ImportFailure(f"{where}: {e}") from None


# ---- safetensors: an 8-byte little-endian header length, a JSON header, raw tensor bytes ----

_ST_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4",
              "I16": "<i2", "I8": "i1", "U8": "u1", "BOOL": "?"}


SAFETENSORS_MAX_HEADER = 100_000_000      # the format's own limit on the JSON header


def is_safetensors(head: bytes, size: int) -> bool:
    """An 8-byte header length then '{' (a truncated file still counts: the loader says so)."""
    if len(head) < 10:
        return False
    n = int.from_bytes(head[:8], "little")
    return 2 <= n <= SAFETENSORS_MAX_HEADER and head[8:9] == b"{"


def load_safetensors(path) -> dict:
    """Every tensor of a ``.safetensors`` file as numpy arrays (float types as they are; BF16
    widened to float32 exactly). Parsed here: the format is a JSON header and raw bytes."""
    path = Path(path)
    data = path.read_bytes()
    if len(data) < 8:
        raise ImportFailure(f"{path} is too short for a .safetensors file")
    n = int.from_bytes(data[:8], "little")
    if n > len(data) - 8:
        raise ImportFailure(f"{path}: .safetensors header of {n} bytes but the file has "
                            f"{len(data) - 8} (truncated?)")
    try:
        header = json.loads(data[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ImportFailure(f"{path}: .safetensors header is not JSON ({e})") from None
    if not isinstance(header, dict):
        raise ImportFailure(f"{path}: .safetensors header is not a JSON object")
    body = memoryview(data)[8 + n:]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (begin, end) = info["dtype"], list(info["shape"]), info["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise ImportFailure(f"{path}: tensor {name!r} has a malformed .safetensors entry") from None
        count = int(np.prod(shape, dtype=np.int64))
        if dtype == "BF16":
            width, np_dtype = 2, "<u2"
        elif dtype in _ST_DTYPES:
            np_dtype = _ST_DTYPES[dtype]
            width = np.dtype(np_dtype).itemsize
        else:
            raise ImportFailure(f"{path}: tensor {name!r} has dtype {dtype}, not a number type "
                                "this importer reads")
        if not (0 <= begin <= end <= len(body)) or end - begin != count * width:
            raise ImportFailure(f"{path}: tensor {name!r} ({dtype} {shape}) lies outside the "
                                f"file or has the wrong byte count (truncated?)")
        a = np.frombuffer(body[begin:end], dtype=np_dtype).reshape(shape)
        if dtype == "BF16":
            a = (a.astype(np.uint32) << 16).view(np.float32)
        tensors[name] = a.copy()
    return tensors
