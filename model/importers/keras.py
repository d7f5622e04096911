"""Keras models: ``.keras`` archives (Keras 3: ``config.json`` + ``model.weights.h5`` in a zip)
and legacy ``.h5`` files (``model_config`` attribute, ``model_weights`` group; Keras 2 and
Keras 3's ``model.save("m.h5")``). Read with ``h5py`` and the file's own JSON config: no
layer is ever deserialised and no TensorFlow is needed.

The model is a chain (``Sequential``, or a ``Functional`` model whose layers each take the
previous one's output) of ``InputLayer``, ``LSTM`` layers, ``Dropout``/``SpatialDropout1D``
(identity at inference), and an optional ``Dense`` head on the last LSTM's last step
(``return_sequences=False``), optionally followed by ``Activation("softmax")``.

LSTM weights: ``kernel`` (X, 4H), ``recurrent_kernel`` (H, 4H), ``bias`` (4H), gate order
i, f, c, o, which is our i, f, g, o: transposed, not reordered. ``use_bias=False`` gives a
zero bias; ``unit_forget_bias``, ``dropout``, ``recurrent_dropout``, ``unroll`` and
``implementation`` do not change inference; a ``stateful`` layer is read like any other (each
sequence here starts from the zero state, as after ``reset_states()``).

Refused, naming the setting: ``activation`` other than tanh, ``recurrent_activation`` other
than sigmoid (older Keras defaulted to hard_sigmoid), ``go_backwards=True``, ``Masking``,
``Bidirectional`` and any other layer, a ``Dense`` activation other than linear or softmax
(with softmax the logits here are the values before it: the argmax is the same), a ``Dense``
on every step (after ``return_sequences=True``), branches.
"""
from __future__ import annotations

import io
import json
import zipfile

import numpy as np

from ..weights import InputError, LSTMStack
from .common import HDF5_MAGIC, ZIP_MAGIC, ImportFailure, layer

NAME = "keras"
DESCRIPTION = "Keras model (.keras, legacy .h5)"
IDENTITY_LAYERS = ("Dropout", "SpatialDropout1D")
#: The h5 group names Keras 3 gives the layers of a .keras archive: the class name in
#: snake case, then _1, _2 ... for repeats (saving_lib; the user's layer names are not used).
SNAKE = {"LSTM": "lstm", "Dense": "dense"}


def sniff(path, head: bytes, npz_keys) -> bool:
    if head.startswith(HDF5_MAGIC):
        return True
    if npz_keys is not None or not head.startswith(b"PK"):
        return False
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return False
    return {"config.json", "model.weights.h5"} <= names


def _h5py():
    try:
        import h5py
    except ImportError:
        raise ImportFailure("reading Keras models needs the h5py package (pip install h5py)") from None
    return h5py


def load(path) -> LSTMStack:
    where = f"Keras model {path}"
    with open(path, "rb") as f:
        head = f.read(len(HDF5_MAGIC))
    h5py = _h5py()
    if head != HDF5_MAGIC and not zipfile.is_zipfile(path):
        if head.startswith(ZIP_MAGIC):
            raise ImportFailure(f"{where}: a damaged or truncated .keras archive (zip: its "
                                "directory cannot be read; was the file cut short?)")
        raise ImportFailure(f"{where}: neither a legacy .h5 (HDF5) file nor a .keras archive (zip)")
    try:
        if head == HDF5_MAGIC:
            with h5py.File(path, "r") as f:
                config = f.attrs.get("model_config")
                if config is None or "model_weights" not in f:
                    raise ImportFailure(f"{where}: an HDF5 file without a Keras model_config "
                                        "attribute and model_weights group (weights-only .h5 "
                                        "files carry no architecture: save the whole model)")
                config = _json(config, where)
                return _build(config, _LegacyWeights(f["model_weights"], where), where)
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
            if "config.json" not in names or "model.weights.h5" not in names:
                raise ImportFailure(f"{where}: not a .keras archive (needs config.json and "
                                    f"model.weights.h5; found {', '.join(names[:8])})")
            config = _json(z.read("config.json"), where)
            blob = z.read("model.weights.h5")
        with h5py.File(io.BytesIO(blob), "r") as f:
            return _build(config, _ArchiveWeights(f, where), where)
    except (zipfile.BadZipFile, OSError, KeyError, EOFError) as e:
        text = " ".join(str(e).split()) or type(e).__name__
        raise ImportFailure(f"{where} cannot be read ({text})") from None


def _json(raw, where):
    try:
        return json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
    except (UnicodeDecodeError, ValueError) as e:
        raise ImportFailure(f"{where}: its model config is not JSON ({e})") from None


# ---- weights as each file kind stores them -------------------------------------------------

class _ArchiveWeights:
    """``model.weights.h5`` of a .keras archive: ``layers/<snake name>[/cell]/vars/<n>``."""

    def __init__(self, f, where):
        self.f, self.where, self.seen = f, where, {}

    def get(self, cfg, names):
        cls = cfg["class_name"]
        key = SNAKE[cls]
        n = self.seen.get(key, -1) + 1
        self.seen[key] = n
        group = f"layers/{key}" if n == 0 else f"layers/{key}_{n}"
        group += "/cell/vars" if cls == "LSTM" else "/vars"
        if group not in self.f:
            raise ImportFailure(f"{self.where}: no weights at {group} for layer "
                                f"{_name(cfg)!r}")
        vars_ = self.f[group]
        return [np.asarray(vars_[str(i)]) if str(i) in vars_ else None for i in range(len(names))]


class _LegacyWeights:
    """``model_weights/<layer name>`` with the ``weight_names`` attribute (legacy .h5)."""

    def __init__(self, group, where):
        self.group, self.where = group, where

    def get(self, cfg, names):
        name = _name(cfg)
        if name not in self.group:
            raise ImportFailure(f"{self.where}: no model_weights/{name} for layer {name!r}")
        g = self.group[name]
        found = {}
        for full in g.attrs.get("weight_names", []):
            full = full.decode() if isinstance(full, bytes) else str(full)
            found[full.rsplit("/", 1)[-1].split(":")[0]] = np.asarray(g[full])
        return [found.get(n) for n in names]


# ---- the architecture --------------------------------------------------------------------

def _name(cfg) -> str:
    return cfg.get("name") or cfg.get("config", {}).get("name", "?")


def _chain(config, where) -> list:
    """The layers' configs from input to output, checked to form a single chain, each with the
    index of the predecessor's output tensor it reads (an LSTM with return_state=True gives
    [output, state_h, state_c])."""
    cls = config.get("class_name")
    body = config.get("config", {})
    layers = body if isinstance(body, list) else body.get("layers")
    if cls not in ("Sequential", "Functional", "Model") or not isinstance(layers, list):
        raise ImportFailure(f"{where}: the model is a {cls}; Sequential and Functional models "
                            "are read")
    if cls == "Sequential":
        return [(L, 0) for L in layers]
    by_name = {_name(L): L for L in layers}
    outputs = body.get("output_layers") or []
    if outputs and isinstance(outputs[0], str):        # one output: [name, 0, 0]
        outputs = [outputs]
    if len(outputs) != 1:
        raise ImportFailure(f"{where}: the model has {len(outputs)} outputs; one is read")
    if outputs[0][2:3] not in ([], [0]):
        raise ImportFailure(f"{where}: the model's output is tensor {outputs[0][2]} of layer "
                            f"{outputs[0][0]!r} (a state); the layer output is read")
    chain, name = [], outputs[0][0]
    while name is not None:
        L = by_name.get(name)
        if L is None:
            raise ImportFailure(f"{where}: layer {name!r} is referenced but not defined")
        sources = _inbound(L.get("inbound_nodes", []))
        if len(sources) > 1:
            raise ImportFailure(f"{where}: layer {name!r} has several inputs "
                                f"({', '.join(sorted(n for n, _ in sources))}); only a chain of "
                                "layers is read")
        name, index = sources.pop() if sources else (None, 0)
        chain.append((L, index))
    if len(chain) != len(layers):
        extra = sorted(set(by_name) - {_name(L) for L, _ in chain})
        raise ImportFailure(f"{where}: layers off the input-to-output chain: {', '.join(extra)}")
    return chain[::-1]


def _inbound(nodes) -> set:
    """(layer name, tensor index) pairs in Keras 3 (``keras_history``) or Keras 2
    (``[name, node, tensor, {}]``) inbound nodes."""
    found = set()

    def walk(v):
        if isinstance(v, dict):
            history = v.get("config", {}).get("keras_history") if isinstance(v.get("config"), dict) else None
            if history:
                found.add((history[0], int(history[2]) if len(history) > 2 else 0))
                return
            for u in v.values():
                walk(u)
        elif isinstance(v, list):
            if len(v) >= 3 and isinstance(v[0], str) and isinstance(v[1], int):
                found.add((v[0], int(v[2])))
                return
            for u in v:
                walk(u)
    walk(nodes)
    return found


def _activation(value) -> str:
    if isinstance(value, dict):              # a serialised activation object
        value = value.get("config", {}).get("name") or value.get("class_name")
    return "linear" if value is None else str(value)


def _build(config, weights, where) -> LSTMStack:
    layers, head, last_seq = [], None, None
    for L, source in _chain(config, where):
        cls, cfg = L.get("class_name"), L.get("config", {})
        name = _name(L)
        what = f"{where}: layer {name!r} ({cls})"
        if source == 2 or (source == 1 and cls != "Dense"):
            raise ImportFailure(f"{what} reads the previous LSTM's {('state_h', 'state_c')[source - 1]} "
                                "(return_state=True); only a Dense head on state_h is read")
        if source == 1:
            last_seq = False             # state_h is h at the last step
        if cls == "InputLayer" or (cls in IDENTITY_LAYERS and head is None):
            continue
        if head is not None and not (cls == "Activation" and
                                     _activation(cfg.get("activation")) in ("softmax", "linear")):
            raise ImportFailure(f"{what} follows the Dense head; only Activation('softmax') may")
        if cls == "Activation":
            if head is None:
                raise ImportFailure(f"{what} before the head is not understood")
            continue
        if cls == "LSTM":
            if last_seq is False:
                raise ImportFailure(f"{what} follows an LSTM with return_sequences=False")
            layers.append(_lstm(weights, L, cfg, what))
            last_seq = bool(cfg.get("return_sequences", False))
        elif cls == "Dense":
            if not layers:
                raise ImportFailure(f"{what} comes before any LSTM; only a head after the last "
                                    "LSTM is read")
            if last_seq:
                raise ImportFailure(f"{what} follows an LSTM with return_sequences=True, so it is "
                                    "applied to every step; the head here reads the last step "
                                    "(return_sequences=False)")
            head = _dense(weights, L, cfg, what, layers[-1].n_hidden)
        elif cls == "Masking":
            raise ImportFailure(f"{what}: masked steps are skipped by Keras but run here; remove "
                                "the Masking layer (or pad so that no step is masked)")
        elif cls == "Bidirectional":
            raise ImportFailure(f"{what}: only one-directional LSTMs are supported")
        else:
            raise ImportFailure(f"{what} is not understood (read: InputLayer, LSTM, Dropout, "
                                "Dense, Activation('softmax'))")
    if not layers:
        raise ImportFailure(f"{where}: no LSTM layer")
    try:
        return LSTMStack(tuple(layers), *(head if head else (None, None)))
    except InputError as e:
        raise ImportFailure(f"{where}: {e}") from None


def _lstm(weights, L, cfg, what):
    for key, want in (("activation", "tanh"), ("recurrent_activation", "sigmoid")):
        got = _activation(cfg.get(key, want))
        if got != want:
            raise ImportFailure(f"{what} has {key}={got!r}; only {want!r} is supported")
    if cfg.get("go_backwards"):
        raise ImportFailure(f"{what} has go_backwards=True; only forward LSTMs are supported")
    kernel, recurrent, bias = weights.get(L, ("kernel", "recurrent_kernel", "bias"))
    if kernel is None or recurrent is None:
        raise ImportFailure(f"{what} has no {'kernel' if kernel is None else 'recurrent_kernel'}")
    H = recurrent.shape[0] if recurrent.ndim == 2 else -1
    if cfg.get("units", H) != H or recurrent.shape != (H, 4 * H):
        raise ImportFailure(f"{what}: recurrent_kernel has shape {recurrent.shape}, not "
                            f"(units, 4 units) with units = {cfg.get('units')}")
    if kernel.ndim != 2 or kernel.shape[1] != 4 * H:
        raise ImportFailure(f"{what}: kernel has shape {kernel.shape}, not (X, {4 * H})")
    if cfg.get("use_bias", True):
        if bias is None or bias.shape != (4 * H,):
            raise ImportFailure(f"{what}: bias has shape {None if bias is None else bias.shape}, "
                                f"not ({4 * H},)")
    else:
        bias = np.zeros(4 * H)
    # Keras: z = x @ kernel + h @ recurrent_kernel + bias, columns i, f, c, o = our rows
    return layer(what, kernel.astype(np.float64).T, recurrent.astype(np.float64).T,
                 bias.astype(np.float64))


def _dense(weights, L, cfg, what, n_hidden):
    act = _activation(cfg.get("activation"))
    if act not in ("linear", "softmax"):
        raise ImportFailure(f"{what} has activation={act!r}; the head is read with linear or "
                            "softmax (argmax unchanged) only")
    kernel, bias = weights.get(L, ("kernel", "bias"))
    if kernel is None or kernel.ndim != 2 or kernel.shape[0] != n_hidden:
        raise ImportFailure(f"{what}: kernel has shape {None if kernel is None else kernel.shape}, "
                            f"not (H, C) with H = {n_hidden}")
    C = kernel.shape[1]
    if not cfg.get("use_bias", True):
        bias = np.zeros(C)
    elif bias is None or bias.shape != (C,):
        raise ImportFailure(f"{what}: bias has shape {None if bias is None else bias.shape}, "
                            f"not ({C},)")
    return kernel.astype(np.float64).T, bias.astype(np.float64)
