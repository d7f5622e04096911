"""What flows on the edges of an ONNX graph, as the ONNX importer classifies it, and the
numpy folding of constant subgraphs (see ``model/importers/onnx.py``).

``g`` in the functions here is the importer's graph walker: ``g.fail(node, why)`` raises the
one-line error naming the node, ``g.axes_of(...)`` reads axes from an attribute or an input.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["SHAPE", "ZERO", "Data", "Logits", "Other", "shape_op", "zero_op", "final_state",
           "tensor", "fold", "first_line"]


def first_line(e) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


# ---- what flows on an edge -------------------------------------------------------------------

class Shape:
    """Integers computed from tensor shapes at run time (the batch size, ...)."""


class Zero:
    """A float tensor known to be all zeros (its shape may depend on the batch size)."""


SHAPE, ZERO = Shape(), Zero()


@dataclass(frozen=True)
class Data:
    axes: tuple        # one label per axis: "<input>:0".. (graph input axes), "dir", "h0".., "Tlast"
    layer: int         # -1: the graph input; k: the output of LSTM layer k
    last: bool = False  # the time axis has been reduced to the last step
    source: str = ""   # the graph input's name


@dataclass(frozen=True)
class Logits:
    weight: np.ndarray     # (C, H)
    bias: np.ndarray | None
    layer: int
    final: bool = False    # after Softmax/LogSoftmax: nothing may follow


@dataclass(frozen=True)
class Other:
    what: str              # something the mapping must not use (Y_c, a dropout mask)


# ---- nodes off the data path -------------------------------------------------------------------

def shape_op(g, node, attrs, ins):
    """A node computing on run-time shapes: more shape integers, or a zero tensor."""
    if node.op_type == "ConstantOfShape":
        fill = attrs.get("value")
        value = np.zeros(1, np.float32) if fill is None else tensor(fill)
        if np.issubdtype(value.dtype, np.integer):
            return SHAPE
        if not np.all(value == 0):
            g.fail(node, "fills a run-time shape with a non-zero value; only zero states "
                            "are built this way")
        return ZERO
    if node.op_type == "Expand" and isinstance(ins[0], np.ndarray):
        if np.issubdtype(ins[0].dtype, np.integer):
            return SHAPE
        if ins[0].any():
            g.fail(node, "expands a non-zero constant to a run-time shape; only zero "
                            "states are built this way")
        return ZERO
    if node.op_type in {"Gather", "Unsqueeze", "Squeeze", "Concat", "Slice", "Cast", "Reshape",
                        "Add", "Sub", "Mul", "Div", "Identity", "Equal", "Where", "Max", "Min",
                        "Abs", "Neg", "Shape", "Range", "ReduceProd"}:
        return SHAPE
    g.fail(node, "computes on run-time shapes in a way this mapping does not understand")

def zero_op(g, node, attrs, ins):
    """A node on a zero tensor (slices, reshapes, expansions of it stay zero)."""
    op = node.op_type
    if op in {"Identity", "Cast", "Unsqueeze", "Squeeze", "Reshape", "Transpose", "Slice",
              "Gather", "Tile", "Expand"} and ins[0] is ZERO or node.op_type == "Mul":
        return ZERO
    if op == "Shape":
        return SHAPE
    if op == "Concat" and all(v is ZERO or (isinstance(v, np.ndarray) and not v.any())
                              for v in ins):
        return ZERO
    g.fail(node, "uses a zero initial state in a way this mapping does not understand")



def final_state(value) -> bool:
    """An LSTM's Y_h or Y_c (or a concatenation of them), which exporters gather into h_n, c_n."""
    return (isinstance(value, Data) and value.last and value.axes[:1] == ("dir",)) or \
        (isinstance(value, Other) and value.what.startswith(("the final cell state", "the LSTMs' final")))


def tensor(proto) -> np.ndarray:
    from onnx import numpy_helper
    return numpy_helper.to_array(proto)


# ---- constant folding ------------------------------------------------------------------------

def fold(g, node, attrs, ins):
    """A node whose inputs are all constants, computed with numpy (a few shape-handling ops)."""
    op = node.op_type
    a = ins[0] if ins else None
    try:
        if op in ("Identity", "Dropout"):
            return a
        if op == "Cast":
            from onnx import helper
            return a.astype(helper.tensor_dtype_to_np_dtype(attrs["to"]))
        if op in ("Unsqueeze", "Squeeze"):
            raw = g.axes_of(node, attrs, 0)
            axes = g.axes_of(node, attrs, a.ndim + (len(raw) if op == "Unsqueeze" else 0))
            if op == "Squeeze":
                return np.squeeze(a, axis=None if axes is None else tuple(axes))
            for ax in sorted(axes):
                a = np.expand_dims(a, ax)
            return a
        if op == "Concat":
            return np.concatenate([np.atleast_1d(v) for v in ins], axis=attrs["axis"])
        if op == "Reshape":
            shape = [int(s) for s in ins[1]]
            shape = [a.shape[i] if s == 0 else s for i, s in enumerate(shape)]
            return a.reshape(shape)
        if op == "Transpose":
            return np.transpose(a, attrs.get("perm"))
        if op == "Gather":
            return np.take(a, ins[1], axis=attrs.get("axis", 0))
        if op == "Slice" and "starts" in attrs:          # opset < 10: attributes
            index = [slice(None)] * a.ndim
            for ax, st, en in zip(attrs.get("axes", range(len(attrs["starts"]))), attrs["starts"],
                                  attrs["ends"]):
                index[int(ax)] = slice(int(st), int(en))
            return a[tuple(index)]
        if op == "Slice":
            axes = list(ins[3]) if len(ins) > 3 and ins[3] is not None else range(len(ins[1]))
            steps = list(ins[4]) if len(ins) > 4 and ins[4] is not None else [1] * len(ins[1])
            index = [slice(None)] * a.ndim
            for ax, s, e, st in zip(axes, ins[1], ins[2], steps):
                index[int(ax)] = slice(int(s), int(e), int(st))
            return a[tuple(index)]
        if op in ("Add", "Sub", "Mul", "Div"):
            f = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide}[op]
            return f(a, ins[1]).astype(np.result_type(a, ins[1]))
        if op == "Neg":
            return -a
        if op == "Shape":
            return np.asarray(a.shape, np.int64)
        if op == "ConstantOfShape":
            fill = attrs.get("value")
            fill = np.zeros(1, np.float32) if fill is None else tensor(fill)
            return np.full([int(s) for s in a], fill.reshape(-1)[0], fill.dtype)
        if op == "Expand":
            return a * np.ones([int(s) for s in ins[1]], a.dtype)
    except (ValueError, IndexError, KeyError, TypeError) as e:
        g.fail(node, f"cannot be computed on its constant inputs ({first_line(e)})")
    g.fail(node, "has constant inputs but is not an operator this mapping folds")
