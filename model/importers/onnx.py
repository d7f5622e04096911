"""ONNX graphs of ``LSTM`` nodes, as exporters write them (needs the ``onnx`` package).

The graph is read, never run. Every node is classified by what flows through it:

- constants (initializers, ``Constant`` nodes, and nodes computed from constants alone, folded
  here with numpy for a few shape-handling ops);
- shape arithmetic (``Shape`` of a tensor and what is computed from it: the batch size that
  exporters use to build a zero initial state with ``ConstantOfShape``/``Expand``);
- zero tensors (a ``ConstantOfShape`` of 0 and its slices, reshapes, expansions);
- the data path: the graph input, through ``Transpose``/``Squeeze``/``Reshape`` into the first
  ``LSTM`` node, its output ``Y`` into the next ``LSTM``, and so on; then the last step
  (``Gather``/``Slice`` of index -1 on the time axis, or ``Y_h``) into a ``Gemm`` or
  ``MatMul`` (+ ``Add``) head, optionally followed by ``Softmax``/``LogSoftmax`` (argmax
  unchanged; the logits here are the head's, before it).

Any node outside these rules is refused with its op_type and name, as are the LSTM attributes
this cell does not have: ``direction`` other than forward, peepholes (input ``P``), ``clip``,
``input_forget``, ``activations`` other than Sigmoid, Tanh, Tanh, ``sequence_lens``.
``initial_h``/``initial_c`` stored as constants become the model's h0/c0; a zero built by a
constant subgraph is no state; a state that is a graph input is refused (give it with
``--state`` instead).

Initializers kept in external data (``torch.onnx.export``'s default since torch 2.9 writes
``m.onnx.data`` beside ``m.onnx``) are read from the model's folder, with onnx's own reader,
as ``onnx.load`` does; a location outside that folder (absolute, or through ``..``) is refused.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from ..weights import InputError, LSTMStack
from .common import GATE_ORDERS, ImportFailure, layer, to_ifgo
from .onnx_values import (SHAPE, ZERO, Data, Logits, Other, final_state, first_line, fold,
                          shape_op, zero_op)

NAME = "onnx"
DESCRIPTION = "ONNX model with LSTM nodes (.onnx)"

#: ONNX LSTM (operator spec): "W: The weight tensor for the gates. Concatenation of
#: W[iofc] and WB[iofc] (if bidirectional) along dimension 0. The tensor has shape
#: [num_directions, 4*hidden_size, input_size]", and likewise R[iofc], and "B: The bias
#: tensor for input gate. Concatenation of [Wb[iofc], Rb[iofc]] ... [num_directions,
#: 8*hidden_size]". So the blocks are i, o, f, c; our i, f, g, o sit at 0, 2, 3, 1.
ONNX_TO_IFGO = GATE_ORDERS["onnx"]
ACTIVATIONS = ["Sigmoid", "Tanh", "Tanh"]
FLOAT_TYPES = {1, 10, 11, 16}          # TensorProto FLOAT, FLOAT16, DOUBLE, BFLOAT16
#: ModelProto's fields as a serialiser writes them: ir_version (field 1, varint) first, then
#: one of producer_name .. graph, opset_import, metadata_props (length-delimited) or model_version
_NEXT_TAGS = {0x12, 0x1A, 0x22, 0x28, 0x32, 0x3A, 0x42, 0x72}


def sniff(path, head: bytes, npz_keys) -> bool:
    return (npz_keys is None and len(head) >= 3 and head[0] == 0x08 and 1 <= head[1] <= 0x7F
            and head[2] in _NEXT_TAGS)


def load(path) -> LSTMStack:
    try:
        import onnx
    except ImportError:
        raise ImportFailure("reading ONNX models needs the onnx package (pip install onnx)") from None
    where = f"ONNX model {path}"
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:   # noqa: BLE001 - protobuf's DecodeError and friends
        raise ImportFailure(f"{where} cannot be parsed ({first_line(e)})") from None
    return _Graph(model.graph, where, Path(path).parent).stack()


def _external_data(tensor, base: Path, where: str):
    """The tensor's array, read from its external file in ``base`` (the model's folder)."""
    from onnx import numpy_helper
    from onnx.external_data_helper import ExternalDataInfo, load_external_data_for_tensor
    location = ExternalDataInfo(tensor).location
    parts = Path(location).parts
    if not location or Path(location).is_absolute() or ".." in parts:
        raise ImportFailure(f"{where}: initializer {tensor.name!r} keeps its data at {location!r}, "
                            "outside the model's folder; refused (keep the data file beside the model)")
    if not (base / location).is_file():
        raise ImportFailure(f"{where}: initializer {tensor.name!r} keeps its data in {location!r}, "
                            f"which is not in {base}")
    try:
        load_external_data_for_tensor(tensor, str(base))
    except Exception as e:   # noqa: BLE001 - onnx's checks: bounds, symlinks, ...
        raise ImportFailure(f"{where}: initializer {tensor.name!r}: its external data in {location!r} "
                            f"cannot be read ({first_line(e)})") from None
    return numpy_helper.to_array(tensor)


class _Graph:
    """One walk over the nodes in their (topological) order, classifying every tensor
    (``onnx_values``), collecting LSTM layers, their stored states and the head."""

    def __init__(self, graph, where: str, base: Path):
        from onnx import TensorProto, helper, numpy_helper
        self.where, self.helper = where, helper
        self.values: dict = {"": None}
        self.layers, self.states, self.head, self.logits = [], [], None, None
        self.time = self.batch = None
        for t in graph.initializer:
            self.values[t.name] = (_external_data(t, base, where)
                                   if t.data_location == TensorProto.EXTERNAL
                                   else numpy_helper.to_array(t))
        self.sizes = {}
        for inp in graph.input:
            if inp.name in self.values:
                continue
            dims = inp.type.tensor_type.shape.dim
            rank = len(dims) or 3
            axes = tuple(f"{inp.name}:{i}" for i in range(rank))
            for label, d in zip(axes, dims):
                if d.HasField("dim_value") and d.dim_value > 0:
                    self.sizes[label] = d.dim_value
            self.values[inp.name] = Data(axes, -1, source=inp.name)
        for node in graph.node:
            self._node(node)

    # -- helpers -----------------------------------------------------------------------------
    def fail(self, node, why: str):
        raise ImportFailure(f"{self.where}: node {node.name or '(unnamed)'!r} ({node.op_type}) {why}")

    def attrs(self, node) -> dict:
        return {a.name: self.helper.get_attribute_value(a) for a in node.attribute}

    def const(self, node, index: int, what: str, optional: bool = False):
        name = node.input[index] if index < len(node.input) else ""
        value = self.values.get(name)
        if value is None and optional and name == "":
            return None
        if not isinstance(value, np.ndarray):
            self.fail(node, f"needs a constant {what} (input {name!r})")
        return value

    def axes_of(self, node, attrs, rank: int, index: int = 1):
        """Axes from the attribute (older opsets) or the constant input (newer), normalised
        for a tensor of this rank (rank 0: as written)."""
        if "axes" in attrs:
            axes = list(attrs["axes"])
        elif len(node.input) > index and node.input[index]:
            axes = [int(a) for a in np.ravel(self.const(node, index, "axes"))]
        else:
            return None
        return [a + rank if a < 0 and rank else a for a in axes]

    # -- one node ------------------------------------------------------------------------------
    def _node(self, node):
        if node.domain not in ("", "ai.onnx"):
            self.fail(node, f"from domain {node.domain!r} is not an ONNX operator this mapping knows")
        ins = [self.values.get(n, Other(f"undefined tensor {n!r}")) if n else None
               for n in node.input]
        op, attrs = node.op_type, self.attrs(node)
        if op == "Constant":
            out = [self._constant(node, attrs)]
        elif op == "LSTM":
            out = self._lstm(node, attrs, ins)
        elif any(isinstance(v, (Data, Logits, Other)) for v in ins):
            out = [self._data(node, attrs, ins)]
        elif all(v is None or isinstance(v, np.ndarray) for v in ins):
            out = [fold(self, node, attrs, ins)]
        elif any(v is ZERO for v in ins):
            out = [zero_op(self, node, attrs, ins)]
        else:
            out = [shape_op(self, node, attrs, ins)]
        for name, value in zip(node.output, out + [Other(f"output of {op}")] * len(node.output)):
            if name:
                self.values[name] = value

    def _constant(self, node, attrs):
        from onnx import numpy_helper
        for key, value in attrs.items():
            if key == "value":
                return numpy_helper.to_array(value)
            if key in ("value_float", "value_floats"):
                return np.asarray(value, np.float32)
            if key in ("value_int", "value_ints"):
                return np.asarray(value, np.int64)
        self.fail(node, "holds no tensor this mapping reads (sparse or string constants)")

    # -- LSTM ------------------------------------------------------------------------------------
    def _lstm(self, node, attrs, ins):
        k = len(self.layers)
        ins = ins + [None] * (8 - len(ins))
        x, _, _, _, seq_lens, init_h, init_c, peep = ins
        direction = attrs.get("direction", b"forward")
        direction = direction.decode() if isinstance(direction, bytes) else direction
        if direction != "forward":
            self.fail(node, f"has direction={direction!r}; only forward LSTMs are supported")
        if "clip" in attrs:
            self.fail(node, f"has clip={attrs['clip']}; cell clipping is not part of this cell")
        if attrs.get("input_forget", 0):
            self.fail(node, "has input_forget=1 (coupled input and forget gates); not supported")
        acts = [a.decode() if isinstance(a, bytes) else a for a in attrs.get("activations", ACTIVATIONS)]
        if acts != ACTIVATIONS:
            self.fail(node, f"has activations={acts}; only {ACTIVATIONS} are supported")
        if peep is not None:
            self.fail(node, "has peepholes (input P); this cell has none")
        if seq_lens is not None:
            self.fail(node, "has sequence_lens; every sequence here runs all of its T steps")
        layout = int(attrs.get("layout", 0))
        if layout not in (0, 1):
            self.fail(node, f"has layout={layout}")
        W = self.const(node, 1, "W")
        R = self.const(node, 2, "R")
        H = int(attrs.get("hidden_size", R.shape[-1] if R.ndim == 3 else 0))
        if W.ndim != 3 or W.shape[:2] != (1, 4 * H):
            self.fail(node, f"has W of shape {W.shape}, not (1, 4H, X) with hidden_size H = {H}")
        if R.shape != (1, 4 * H, H):
            self.fail(node, f"has R of shape {R.shape}, not (1, 4H, H) = {(1, 4 * H, H)}")
        B = self.const(node, 3, "B", optional=True)
        if B is None:
            bias = np.zeros(4 * H)
        elif B.shape != (1, 8 * H):
            self.fail(node, f"has B of shape {B.shape}, not (1, 8H) = {(1, 8 * H)}")
        else:
            bias = B[0, :4 * H].astype(np.float64) + B[0, 4 * H:]     # Wb + Rb
        self._lstm_input(node, x, layout, k, W.shape[2])
        weights = layer(f"{self.where}: LSTM node {node.name!r}",
                        to_ifgo(W[0].astype(np.float64), ONNX_TO_IFGO),
                        to_ifgo(R[0].astype(np.float64), ONNX_TO_IFGO), to_ifgo(bias, ONNX_TO_IFGO))
        self.layers.append(weights)
        self.states.append(tuple(self._state(node, v, name, H)
                                 for v, name in ((init_h, "initial_h"), (init_c, "initial_c"))))
        hk, T, Bt = f"h{k}", self.time, self.batch
        self.sizes[hk] = H
        y = (T, "dir", Bt, hk) if layout == 0 else (Bt, T, "dir", hk)
        y_h = ("dir", Bt, hk) if layout == 0 else (Bt, "dir", hk)
        return [Data(y, k), Data(y_h, k, last=True), Other("the final cell state Y_c")]

    def _lstm_input(self, node, x, layout, k, n_inputs):
        if not isinstance(x, Data) or x.last or len(x.axes) != 3:
            self.fail(node, "does not read a sequence [time, batch, feature] from the graph input "
                            "or the previous LSTM")
        t, b = (x.axes[0], x.axes[1]) if layout == 0 else (x.axes[1], x.axes[0])
        if k == 0:
            if x.layer != -1:
                self.fail(node, "is the first LSTM but does not read the graph input")
            self.time, self.batch = t, b
        elif x.layer != k - 1 or (t, b, x.axes[2]) != (self.time, self.batch, f"h{k - 1}"):
            self.fail(node, f"does not read the previous LSTM's output sequence as "
                            f"[time, batch, feature] with layout={layout}")
        size = self.sizes.get(x.axes[2])
        if size is not None and size != n_inputs:
            self.fail(node, f"reads {size} features but its W has input_size {n_inputs}")

    def _state(self, node, value, name: str, H: int):
        if value is None or value is ZERO:
            return None
        if isinstance(value, Data) and value.layer == -1:
            self.fail(node, f"takes {name} from the graph input {value.source!r}: the importer "
                            "reads states stored in the model; give a run-time state with --state")
        if not isinstance(value, np.ndarray):
            self.fail(node, f"has an {name} this mapping cannot read as a constant")
        if value.ndim != 3 or value.shape[0] != 1 or value.shape[2] != H:
            self.fail(node, f"has {name} of shape {value.shape}, not (1, batch, {H})")
        if not value.any():          # an exporter's zeros folded to a constant: no state
            return None
        return value[0].astype(np.float64)

    # -- the data path ---------------------------------------------------------------------------
    def _data(self, node, attrs, ins):
        op, v = node.op_type, ins[0]
        if op == "Concat" and all(final_state(u) for u in ins):
            return Other("the LSTMs' final states (h_n, c_n), kept only as a graph output")
        bad = next((u for u in ins if isinstance(u, Other)), None)
        if bad is not None:
            self.fail(node, f"uses {bad.what}, which this mapping does not carry")
        if op == "Shape":
            return SHAPE
        if any(isinstance(u, Logits) for u in ins):
            self.logits = self._after_head(node, attrs, sorted(ins, key=lambda u: not isinstance(u, Logits)))
            return self.logits
        if not isinstance(v, Data) or any(isinstance(u, (Data, Logits)) for u in ins[1:]):
            self.fail(node, "combines the data path with other tensors in a way this mapping "
                            "does not understand")
        rank = len(v.axes)
        if op in ("Identity", "Cast", "Dropout"):
            if op == "Cast" and attrs.get("to") not in FLOAT_TYPES:
                self.fail(node, "casts the data path to a non-float type")
            training = ins[2] if op == "Dropout" and len(ins) > 2 else None
            if training is not None and (not isinstance(training, np.ndarray) or training.any()):
                self.fail(node, "may run in training mode (training_mode input); inference "
                                "dropout is the identity")
            return v
        if op == "Transpose":
            perm = list(attrs.get("perm", range(rank)[::-1]))
            return replace(v, axes=tuple(v.axes[p] for p in perm))
        if op == "Squeeze":
            axes = self.axes_of(node, attrs, rank)
            if axes is None:
                axes = [i for i, a in enumerate(v.axes) if a in ("dir", "Tlast")]
            if any(v.axes[a] not in ("dir", "Tlast") for a in axes):
                self.fail(node, f"squeezes axes {axes} of {list(v.axes)}, not a size-1 axis")
            return replace(v, axes=tuple(a for i, a in enumerate(v.axes) if i not in axes))
        if op == "Reshape":
            return self._reshape(node, v)
        if op in ("Gather", "Slice"):
            return self._pick(node, attrs, v)
        if op in ("Gemm", "MatMul"):
            self.logits = self._head(node, attrs, ins)
            return self.logits
        self.fail(node, "is on the data path and this mapping does not understand it")

    def _reshape(self, node, v):
        shape = [int(s) for s in self.const(node, 1, "shape")]
        kept = tuple(a for a in v.axes if a != "dir")
        ok = len(shape) == len(kept) and shape.count(-1) <= 1 and "dir" in v.axes
        for i, s in enumerate(shape if ok else []):
            ok &= (s == -1 or (s == 0 and i < len(v.axes) and v.axes[i] == kept[i])
                   or (s > 0 and self.sizes.get(kept[i]) == s))
        if not ok:
            self.fail(node, f"reshapes {list(v.axes)} to {shape}; only dropping the direction "
                            "axis of an LSTM output is understood")
        return replace(v, axes=kept)

    def _pick(self, node, attrs, v):
        """Gather/Slice: the last time step, or the only entry of a size-1 axis."""
        rank = len(v.axes)
        if node.op_type == "Gather":
            axis = int(attrs.get("axis", 0)) % rank
            idx = self.const(node, 1, "index")
            picks = [int(i) for i in np.ravel(idx)]
            spans = [(picks[0], picks[0] + 1 if picks[0] != -1 else None)] if len(picks) == 1 else []
            keep_axis = idx.ndim == 1
            axes = [axis]
        else:
            starts, ends = (attrs.get("starts"), attrs.get("ends")) if "starts" in attrs else \
                (self.const(node, 1, "starts"), self.const(node, 2, "ends"))
            axes = self.axes_of(node, attrs, rank, 3) or list(range(len(starts)))
            steps = self.const(node, 4, "steps", optional=True)
            if steps is not None and np.any(np.asarray(steps) != 1):
                self.fail(node, "slices with a step other than 1")
            spans = [(int(s), None if int(e) >= 2 ** 31 - 1 else int(e)) for s, e in zip(starts, ends)]
            keep_axis = True
        if len(spans) != len(axes) or not axes:
            self.fail(node, "picks more than one entry")
        out, last = list(v.axes), v.last
        for axis, (start, end) in zip(axes, spans):
            label, size = v.axes[axis], self.sizes.get(v.axes[axis])
            whole = start == 0 and end is None
            one = (start in (0, -1) and end in (start + 1 or None, None)) if label in ("dir", "Tlast") \
                else False
            final = label == self.time and (start == -1 and end is None or
                                            (size is not None and start == size - 1 and end in (size, None)))
            if whole:
                continue
            if not (one or final):
                self.fail(node, f"picks [{start}:{end}] of axis {axis} ({label}); only the last "
                                "time step is understood")
            if final:
                last = True
                out[axis] = "Tlast"
            if not keep_axis:
                out[axis] = None
        return replace(v, axes=tuple(a for a in out if a is not None), last=last)

    def _head(self, node, attrs, ins):
        v = ins[0]
        if self.head is not None:
            self.fail(node, "is a second head on the LSTM output")
        if not v.last or v.axes != (self.batch, f"h{v.layer}") or v.layer < 0:
            self.fail(node, f"is applied to {list(v.axes)} rather than to the last LSTM's h at "
                            "the last step [batch, hidden]")
        W = self.const(node, 1, "weight").astype(np.float64)
        if node.op_type == "MatMul":
            weight, bias = W.T, None
        else:
            if attrs.get("transA", 0):
                self.fail(node, "has transA=1")
            weight = W if attrs.get("transB", 0) else W.T
            weight = weight * attrs.get("alpha", 1.0)
            C = self.const(node, 2, "bias C", optional=True)
            bias = None if C is None else np.broadcast_to(
                np.asarray(C, np.float64).reshape(-1) * attrs.get("beta", 1.0), (weight.shape[0],))
        if weight.ndim != 2 or weight.shape[1] != self.sizes[f"h{v.layer}"]:
            self.fail(node, f"has a weight of shape {W.shape} that does not fit H = "
                            f"{self.sizes[f'h{v.layer}']}")
        self.head = node
        return Logits(weight, bias, v.layer)

    def _after_head(self, node, attrs, ins):
        v = ins[0]
        if v.final:
            self.fail(node, "follows the head's Softmax")
        if node.op_type == "Add" and v.bias is None and len(ins) == 2 and isinstance(ins[1], np.ndarray):
            b = np.asarray(ins[1], np.float64).reshape(-1)
            if b.size not in (1, v.weight.shape[0]):
                self.fail(node, f"adds a bias of shape {ins[1].shape} to {v.weight.shape[0]} logits")
            return replace(v, bias=np.broadcast_to(b, (v.weight.shape[0],)).copy())
        if node.op_type in ("Softmax", "LogSoftmax") and attrs.get("axis", -1) in (-1, 1):
            return replace(v, final=True)
        if node.op_type == "Identity":
            return v
        self.fail(node, "follows the classifier head; only a bias Add and Softmax/LogSoftmax are "
                        "understood there")

    # -- the result ------------------------------------------------------------------------------
    def stack(self) -> LSTMStack:
        if not self.layers:
            raise ImportFailure(f"{self.where}: no LSTM node in the graph")
        head_weight = head_bias = None
        value = self.logits
        if value is not None:
            if value.layer != len(self.layers) - 1:
                raise ImportFailure(f"{self.where}: the head reads LSTM layer {value.layer}, "
                                    f"not the last of {len(self.layers)}")
            head_weight = value.weight
            head_bias = value.bias if value.bias is not None else np.zeros(value.weight.shape[0])
        h0, c0 = (self._stacked([s[i] for s in self.states]) for i in (0, 1))
        try:
            return LSTMStack(tuple(self.layers), head_weight, head_bias, h0, c0)
        except InputError as e:
            raise ImportFailure(f"{self.where}: {e}") from None

    def _stacked(self, states):
        """Per-layer (batch, H) states, None for zero, as (L, H) or (L, B, H), or None."""
        if all(s is None for s in states):
            return None
        batch = {s.shape[0] for s in states if s is not None}
        if len(batch - {1}) > 1:
            raise ImportFailure(f"{self.where}: the LSTM layers' initial states have different "
                                f"batch sizes {sorted(batch)}")
        n = max(batch)
        full = [np.zeros((n, layer.n_hidden)) if s is None else np.broadcast_to(s, (n, s.shape[1]))
                for s, layer in zip(states, self.layers)]
        out = np.stack(full)
        return out[:, 0] if n == 1 else out
