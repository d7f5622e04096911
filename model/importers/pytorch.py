"""PyTorch ``state_dict`` of an ``nn.LSTM`` (or ``nn.LSTMCell``) and an optional ``nn.Linear``
head, from ``.npz``, ``.safetensors`` or (when torch is installed) ``.pt``/``.pth`` read with
``torch.load(weights_only=True)``: a state_dict, or a checkpoint dict holding one under
``state_dict`` or ``model_state_dict``.

Accepted tensor names (PyTorch's own, with gate order i, f, g, o in every 4H axis):

- ``{prefix}weight_ih_l{k}`` (4H, X_k), ``{prefix}weight_hh_l{k}`` (4H, H),
  ``{prefix}bias_ih_l{k}``, ``{prefix}bias_hh_l{k}`` (4H) for layers k = 0..L-1; the two biases
  are summed; a layer without biases (``bias=False``) gets a zero bias. ``{prefix}`` is the
  LSTM's module path: empty for a bare ``nn.LSTM``, or e.g. ``lstm.``, ``rnn.``,
  ``model.lstm.``. An ``nn.LSTMCell`` (``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh``)
  is one layer.
- the head: one ``nn.Linear`` whose module name ends in one of :data:`HEAD_NAMES`
  (``fc.weight`` (C, H) and ``fc.bias`` (C), ``model.classifier.weight``, ...), applied to
  the last layer's h at the last step.

Refused, with the reason: ``_reverse`` tensors (``bidirectional=True``), ``weight_hr_l{k}``
(``proj_size > 0``), missing or misshapen tensors, gaps in the layer numbers, two LSTM modules,
and any other tensor (an unknown tensor may be a layer this tool would silently skip).
"""
from __future__ import annotations

import re
import zipfile
from collections.abc import Mapping

import numpy as np

from ..weights import InputError, LSTMStack, check_finite
from .common import ImportFailure, is_safetensors, layer, load_safetensors, probe, read_npz

NAME = "pytorch"
DESCRIPTION = "PyTorch state_dict (.npz, .safetensors, .pt/.pth with torch)"
#: Last component of the head's module name (``fc`` in ``fc.weight``, ``model.fc.weight``).
HEAD_NAMES = ("fc", "linear", "head", "classifier", "out", "output", "dense", "decoder")

_LSTM_KEY = re.compile(r"^(?P<prefix>(?:.+\.)?)(?P<kind>weight_ih|weight_hh|bias_ih|bias_hh|"
                       r"weight_hr)(?:_l(?P<k>\d+))?(?P<rev>_reverse)?$")
PICKLE_PROTOCOLS = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")
SAVE_HINT = ("save the state_dict as .safetensors (safetensors.torch.save_file(model.state_dict(), "
             "\"m.safetensors\")) or .npz (np.savez(\"m.npz\", **{k: v.numpy() for k, v in "
             "model.state_dict().items()}))")


def _is_torch_file(path, head: bytes) -> bool:
    if head.startswith(PICKLE_PROTOCOLS):
        return True
    if not head.startswith(b"PK"):
        return False
    try:
        with zipfile.ZipFile(path) as z:
            return any(n == "data.pkl" or n.endswith("/data.pkl") for n in z.namelist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return False


def _is_lstm_dict(keys) -> bool:
    """PyTorch names: layer-numbered, under a module prefix, or with two biases (a bare
    ``weight_ih`` + ``weight_hh`` + ``bias`` is this tool's own format)."""
    for key in keys:
        m = _LSTM_KEY.match(key)
        if m and (m["k"] is not None or m["prefix"] or m["kind"].startswith("bias_")):
            return True
    return False


def sniff(path, head: bytes, npz_keys) -> bool:
    if npz_keys is not None:
        return _is_lstm_dict(npz_keys)
    if is_safetensors(head, path.stat().st_size):
        return True
    return _is_torch_file(path, head)


def load(path) -> LSTMStack:
    return from_state_dict(read_state_dict(path), f"PyTorch state_dict {path}")


def read_state_dict(path) -> dict:
    """Name -> array from an ``.npz``, a ``.safetensors`` or (with torch) a ``.pt`` file."""
    p = probe(path)
    if p.npz_keys is not None:
        return read_npz(path, "weights")
    if is_safetensors(p.head, p.size):
        return load_safetensors(path)
    if _is_torch_file(path, p.head):
        return _torch_load(path)
    raise ImportFailure(f"weights file {path}: not a PyTorch state_dict (.npz, .safetensors or "
                        f".pt): found {p.describe()}")


def _torch_load(path) -> dict:
    try:
        import torch
    except ImportError:
        raise ImportFailure(f"{path} is a torch.save file and torch is not installed (it is not "
                            f"a dependency of this tool): {SAVE_HINT}") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:   # noqa: BLE001 - torch raises many types; each means "unreadable"
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ImportFailure(f"{path}: torch.load(weights_only=True) cannot read it ({first}); "
                            f"{SAVE_HINT}") from None
    for key in ("state_dict", "model_state_dict"):       # training checkpoints
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping):
        raise ImportFailure(f"{path} holds a {type(obj).__name__}, not a state_dict; "
                            "save model.state_dict(), not the model")
    out = {}
    for k, v in obj.items():
        if not isinstance(v, torch.Tensor):
            raise ImportFailure(f"{path}: entry {k!r} is a {type(v).__name__}, not a tensor")
        out[str(k)] = v.detach().to("cpu", torch.float64).numpy()
    return out


def _float(name: str, a, where: str) -> np.ndarray:
    a = np.asarray(a)
    if not np.issubdtype(a.dtype, np.floating):
        raise ImportFailure(f"{where}: tensor {name!r} is {a.dtype}, not floating point")
    try:
        check_finite(name, a)
    except InputError as e:
        raise ImportFailure(f"{where}: {e}") from None
    return a.astype(np.float64)


def from_state_dict(tensors: dict, where: str) -> LSTMStack:
    """LSTM layers and head from PyTorch tensor names (see the module docstring)."""
    lstm, prefixes, extra = {}, set(), []
    for key in tensors:
        m = _LSTM_KEY.match(key)
        if m is None:
            extra.append(key)
            continue
        if m["rev"]:
            raise ImportFailure(f"{where}: {key!r} is the reverse direction of a bidirectional "
                                "LSTM (bidirectional=True); only one-directional LSTMs are supported")
        if m["kind"] == "weight_hr":
            raise ImportFailure(f"{where}: {key!r} is an LSTM projection (proj_size > 0), which "
                                "this cell does not have")
        prefixes.add(m["prefix"])
        lstm[(0 if m["k"] is None else int(m["k"]), m["kind"])] = key
    if not lstm:
        raise ImportFailure(f"{where}: no LSTM tensors (weight_ih_l0, weight_hh_l0, ...); found "
                            f"{', '.join(sorted(tensors)) or 'nothing'}")
    if len(prefixes) > 1:
        names = ", ".join(repr(p) for p in sorted(prefixes))
        raise ImportFailure(f"{where}: LSTM tensors under several modules ({names}); "
                            "one nn.LSTM (with num_layers) is supported")
    count = max(k for k, _ in lstm) + 1
    layers = []
    for k in range(count):
        names = {kind: lstm.get((k, kind)) for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
        missing = [kind for kind in ("weight_ih", "weight_hh") if names[kind] is None]
        if (names["bias_ih"] is None) != (names["bias_hh"] is None):
            missing.append("bias_ih" if names["bias_ih"] is None else "bias_hh")
        if missing:
            raise ImportFailure(f"{where}: layer {k} has no {missing[0]}_l{k} "
                                f"(layers found: 0..{count - 1})")
        w = {kind: _float(n, tensors[n], where) for kind, n in names.items() if n is not None}
        H4 = w["weight_hh"].shape[0] if w["weight_hh"].ndim == 2 else 0
        if names["bias_ih"] is None:
            bias = np.zeros(H4)
        else:
            for kind in ("bias_ih", "bias_hh"):
                if w[kind].shape != (H4,):
                    raise ImportFailure(f"{where}: {names[kind]} must have shape ({H4},), "
                                        f"not {w[kind].shape}")
            bias = w["bias_ih"] + w["bias_hh"]
        layers.append(layer(f"{where}: layer {k}", w["weight_ih"], w["weight_hh"], bias))
    head_weight, head_bias = _head(tensors, extra, layers[-1].n_hidden, where)
    try:
        return LSTMStack(tuple(layers), head_weight, head_bias)
    except InputError as e:
        raise ImportFailure(f"{where}: {e}") from None


def _head(tensors: dict, extra: list, n_hidden: int, where: str):
    if not extra:
        return None, None
    modules = {}
    for key in extra:
        module, _, param = key.rpartition(".")
        modules.setdefault(module, {})[param] = key
    accepted = "one nn.Linear named " + ", ".join(HEAD_NAMES)
    if len(modules) > 1:
        raise ImportFailure(f"{where}: tensors beyond the LSTM and one head: "
                            f"{', '.join(sorted(extra))} (accepted: the LSTM and {accepted})")
    (module, params), = modules.items()
    if module.rpartition(".")[2] not in HEAD_NAMES or "weight" not in params \
            or not set(params) <= {"weight", "bias"}:
        raise ImportFailure(f"{where}: unknown tensors {', '.join(sorted(extra))} "
                            f"(accepted beside the LSTM: {accepted}, e.g. fc.weight, fc.bias)")
    weight = _float(params["weight"], tensors[params["weight"]], where)
    if weight.ndim != 2 or weight.shape[1] != n_hidden or weight.shape[0] == 0:
        raise ImportFailure(f"{where}: head {params['weight']} must have shape (C, H) = "
                            f"(C, {n_hidden}), not {weight.shape}")
    if "bias" in params:
        bias = _float(params["bias"], tensors[params["bias"]], where)
        if bias.shape != (weight.shape[0],):
            raise ImportFailure(f"{where}: head {params['bias']} must have shape "
                                f"({weight.shape[0]},), not {bias.shape}")
    else:
        bias = np.zeros(weight.shape[0])
    return weight, bias
