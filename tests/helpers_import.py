"""Model files as the frameworks lay them out, and float oracles written from their documents.

Nothing here calls :mod:`model.importers`: the gate orders below are each framework's
documented order, written out block by block, so a wrong permutation in an importer shows up.

- :func:`torch_state_dict`: a random ``nn.LSTM(num_layers=L)`` + ``nn.Linear`` state_dict with
  PyTorch's documented names and shapes (numpy, no torch).
- :func:`torch_reference`: PyTorch's documented LSTM equations on that state_dict.
- :func:`onnx_lstm_model`: the graph ``torch.onnx.export`` (TorchScript exporter, opset 17)
  writes for ``nn.LSTM(num_layers=L, batch_first=True)`` + ``nn.Linear`` on ``out[:, -1]``:
  Shape/Gather/Unsqueeze/Concat/ConstantOfShape (and Expand) build the zero state, Slice takes
  each layer's part, Transpose, one ``LSTM`` node per layer, Squeeze, Transpose, Gather of
  index -1 on the time axis, Gemm with transB=1. Variants: layout=1, MatMul+Add head, head on
  ``Y_h``, constant initial states, and extra or changed attributes for the refusal tests.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
FIX = REPO / "tests" / "fixtures" / "import"

TORCH_BLOCKS = ("i", "f", "g", "o")      # PyTorch nn.LSTM docs: W_ii|W_if|W_ig|W_io
ONNX_BLOCKS = ("i", "o", "f", "g")       # ONNX LSTM spec: W[iofc] (c is the cell candidate g)


def torch_state_dict(rng, n_inputs, n_hidden, n_layers, n_classes=None, *, prefix="lstm.",
                     head="fc", scale=0.6, bias=True):
    sd = {}
    for k in range(n_layers):
        x = n_inputs if k == 0 else n_hidden
        sd[f"{prefix}weight_ih_l{k}"] = rng.uniform(-scale, scale, (4 * n_hidden, x))
        sd[f"{prefix}weight_hh_l{k}"] = rng.uniform(-scale, scale, (4 * n_hidden, n_hidden))
        if bias:
            sd[f"{prefix}bias_ih_l{k}"] = rng.uniform(-scale, scale, 4 * n_hidden)
            sd[f"{prefix}bias_hh_l{k}"] = rng.uniform(-scale, scale, 4 * n_hidden)
    if n_classes:
        sd[f"{head}.weight"] = rng.uniform(-1, 1, (n_classes, n_hidden))
        sd[f"{head}.bias"] = rng.uniform(-1, 1, n_classes)
    return {k: v.astype(np.float32) for k, v in sd.items()}


def _sigmoid(v):
    return 1 / (1 + np.exp(-v))


def blocks(a, order, axis=0) -> dict:
    """The four gate blocks of a 4H axis, by gate name, in a framework's order."""
    return dict(zip(order, np.split(np.asarray(a, np.float64), 4, axis=axis)))


def torch_reference(sd, x, n_layers, prefix="lstm.", head="fc", h0=None, c0=None):
    """PyTorch's documented equations (i, f, g, o; b_ih and b_hh separate), layer by layer.
    Returns (every layer's h sequence (B, T, H), logits or None)."""
    seq = np.asarray(x, np.float64)
    outs = []
    for k in range(n_layers):
        w_i = blocks(sd[f"{prefix}weight_ih_l{k}"], TORCH_BLOCKS)
        w_h = blocks(sd[f"{prefix}weight_hh_l{k}"], TORCH_BLOCKS)
        zero = np.zeros(w_h["i"].shape[0])
        b_i = blocks(sd.get(f"{prefix}bias_ih_l{k}", np.zeros(4 * zero.size)), TORCH_BLOCKS)
        b_h = blocks(sd.get(f"{prefix}bias_hh_l{k}", np.zeros(4 * zero.size)), TORCH_BLOCKS)
        h = np.zeros((seq.shape[0], zero.size)) if h0 is None else np.broadcast_to(h0[k], (seq.shape[0], zero.size))
        c = np.zeros_like(h) if c0 is None else np.broadcast_to(c0[k], h.shape)
        hs = []
        for t in range(seq.shape[1]):
            pre = {g: seq[:, t] @ w_i[g].T + b_i[g] + h @ w_h[g].T + b_h[g] for g in TORCH_BLOCKS}
            i, f, o = _sigmoid(pre["i"]), _sigmoid(pre["f"]), _sigmoid(pre["o"])
            c = f * c + i * np.tanh(pre["g"])
            h = o * np.tanh(c)
            hs.append(h)
        seq = np.stack(hs, 1)
        outs.append(seq)
    logits = None
    if f"{head}.weight" in sd:
        logits = seq[:, -1] @ np.asarray(sd[f"{head}.weight"], np.float64).T + sd[f"{head}.bias"]
    return outs, logits


def to_onnx_order(a, axis=0):
    b = blocks(a, TORCH_BLOCKS, axis)
    return np.concatenate([b[g] for g in ONNX_BLOCKS], axis=axis)


def onnx_lstm_model(sd, n_layers, *, prefix="lstm.", head="gemm", layout=0, state="zero",
                    opset=17, lstm_attrs=None, extra_inputs=None, seq_out=True, final_states=False):
    """An ONNX model of the state_dict's LSTM (see the module docstring).

    head: "gemm" (Gather -1, Gemm transB=1), "matmul" (Slice -1:, Squeeze, MatMul, Add),
    "yh" (Squeeze of the last layer's Y_h, Gemm), or None. state: "zero" (built from the
    input's shape), "const" (initializers (1, 1, H)), "zeros" (all-zero initializers
    (1, 3, H), as a static-shape export folds them), or "input" (graph inputs h0, c0).
    final_states: also output h_n and c_n (Concat of every layer's Y_h, Y_c), as
    ``return out, (h_n, c_n)`` exports.
    lstm_attrs: extra attributes for every LSTM node; extra_inputs: {index: name} overrides.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    H = sd[f"{prefix}weight_hh_l0"].shape[1]
    X = sd[f"{prefix}weight_ih_l0"].shape[1]
    nodes, inits = [], []

    def init(name, value):
        inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def const(name, value):
        nodes.append(helper.make_node("Constant", [], [name],
                                      value=numpy_helper.from_array(np.asarray(value))))
        return name

    inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", "time", X])]
    # the zero state (L, B, H) from the batch size, as torch writes it
    nodes.append(helper.make_node("Shape", ["input"], ["shape"], name="/lstm/Shape"))
    nodes.append(helper.make_node("Gather", ["shape", const("c0i", np.array(0, np.int64))],
                                  ["batch"], axis=0, name="/lstm/Gather"))
    nodes.append(helper.make_node("Unsqueeze", ["batch", const("ax0", np.array([0], np.int64))],
                                  ["batch1"], name="/lstm/Unsqueeze"))
    nodes.append(helper.make_node("Concat", [const("nl", np.array([n_layers], np.int64)), "batch1",
                                             const("nh", np.array([H], np.int64))],
                                  ["zshape"], axis=0, name="/lstm/Concat"))
    nodes.append(helper.make_node("ConstantOfShape", ["zshape"], ["h_zero"], name="/lstm/ConstantOfShape",
                                  value=numpy_helper.from_array(np.zeros(1, np.float32))))
    nodes.append(helper.make_node("Expand", [const("zf", np.array(0.0, np.float32)), "zshape"],
                                  ["c_zero"], name="/lstm/Expand"))
    if layout == 0:
        nodes.append(helper.make_node("Transpose", ["input"], ["x_tbx"], perm=[1, 0, 2],
                                      name="/lstm/Transpose"))
        x = "x_tbx"
    else:
        x = "input"
    if state == "input":
        for s in ("h0", "c0"):
            inputs.append(helper.make_tensor_value_info(s, TensorProto.FLOAT, [1, "batch", H]))
    for k in range(n_layers):
        w = to_onnx_order(sd[f"{prefix}weight_ih_l{k}"])[None].astype(np.float32)
        r = to_onnx_order(sd[f"{prefix}weight_hh_l{k}"])[None].astype(np.float32)
        args = [x, init(f"onnx::LSTM_W{k}", w), init(f"onnx::LSTM_R{k}", r)]
        if f"{prefix}bias_ih_l{k}" in sd:
            b = np.concatenate([to_onnx_order(sd[f"{prefix}bias_ih_l{k}"]),
                                to_onnx_order(sd[f"{prefix}bias_hh_l{k}"])])[None]
            args.append(init(f"onnx::LSTM_B{k}", b.astype(np.float32)))
        else:
            args.append("")
        args.append("")                                   # sequence_lens
        for s, zero in (("h", "h_zero"), ("c", "c_zero")):
            if state == "zero":
                nodes.append(helper.make_node(
                    "Slice", [zero, const(f"st{s}{k}", np.array([k], np.int64)),
                              const(f"en{s}{k}", np.array([k + 1], np.int64)),
                              const(f"ax{s}{k}", np.array([0], np.int64))],
                    [f"{s}0_{k}"], name=f"/lstm/Slice_{s}{k}"))
                args.append(f"{s}0_{k}")
            elif state == "const":
                args.append(init(f"{s}0_{k}", sd[f"{s}0"][k][None, None].astype(np.float32)))
            elif state == "zeros":
                args.append(init(f"{s}0_{k}", np.zeros((1, 3, H), np.float32)))
            else:
                args.append(f"{s}0")
        for index, name in (extra_inputs or {}).items():
            while len(args) <= index:
                args.append("")
            args[index] = name
        attrs = {"hidden_size": H, **({"layout": 1} if layout else {}), **(lstm_attrs or {})}
        nodes.append(helper.make_node("LSTM", args, [f"Y{k}", f"Yh{k}", f"Yc{k}"],
                                      name=f"/lstm/LSTM_{k}", **attrs))
        dir_axis = 1 if layout == 0 else 2
        nodes.append(helper.make_node("Squeeze", [f"Y{k}", const(f"sq{k}", np.array([dir_axis], np.int64))],
                                      [f"S{k}"], name=f"/lstm/Squeeze_{k}"))
        x = f"S{k}"
    if layout == 0:
        nodes.append(helper.make_node("Transpose", [x], ["h_seq"], perm=[1, 0, 2], name="/lstm/Transpose_1"))
    else:
        nodes.append(helper.make_node("Identity", [x], ["h_seq"], name="/lstm/Identity"))
    outputs = [helper.make_tensor_value_info("h_seq", TensorProto.FLOAT, ["batch", "time", H])] \
        if seq_out else []
    if final_states:
        for s in ("h", "c"):
            nodes.append(helper.make_node("Concat", [f"Y{s}{k}" for k in range(n_layers)], [f"{s}_n"],
                                          axis=0, name=f"/lstm/Concat_{s}n"))
            outputs.append(helper.make_tensor_value_info(f"{s}_n", TensorProto.FLOAT, [n_layers, "batch", H]))
    if head is not None:
        C = sd["fc.weight"].shape[0]
        fw = init("fc.weight", sd["fc.weight"].astype(np.float32))
        fb = init("fc.bias", sd["fc.bias"].astype(np.float32))
        if head == "gemm":
            nodes.append(helper.make_node("Gather", ["h_seq", const("last", np.array(-1, np.int64))],
                                          ["h_last"], axis=1, name="/Gather"))
            nodes.append(helper.make_node("Gemm", ["h_last", fw, fb], ["logits"], alpha=1.0, beta=1.0,
                                          transB=1, name="/fc/Gemm"))
        elif head == "matmul":
            nodes.append(helper.make_node("Slice", ["h_seq", const("s_st", np.array([-1], np.int64)),
                                                    const("s_en", np.array([2 ** 63 - 1], np.int64)),
                                                    const("s_ax", np.array([1], np.int64))],
                                          ["h_last3"], name="/Slice"))
            nodes.append(helper.make_node("Squeeze", ["h_last3", const("s_sq", np.array([1], np.int64))],
                                          ["h_last"], name="/Squeeze"))
            nodes.append(helper.make_node("MatMul", ["h_last", init("fc.weight.T", sd["fc.weight"].T.astype(np.float32))],
                                          ["mm"], name="/fc/MatMul"))
            nodes.append(helper.make_node("Add", ["mm", fb], ["logits"], name="/fc/Add"))
        elif head == "yh":
            last = n_layers - 1
            nodes.append(helper.make_node("Squeeze", [f"Yh{last}", const("yh_ax", np.array([0 if layout == 0 else 1], np.int64))],
                                          ["h_last"], name="/Squeeze_yh"))
            nodes.append(helper.make_node("Gemm", ["h_last", fw, fb], ["logits"], transB=1, name="/fc/Gemm"))
        outputs.append(helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", C]))
    graph = helper.make_graph(nodes, "main_graph", inputs, outputs, inits)
    model = helper.make_model(graph, producer_name="pytorch", producer_version="2.5.0",
                              opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def onnx_reference(model, x, **states):
    """The ONNX reference evaluator's outputs {name: array} (the framework's own arithmetic)."""
    from onnx.reference import ReferenceEvaluator
    feeds = {"input": np.asarray(x, np.float32), **{k: np.asarray(v, np.float32) for k, v in states.items()}}
    names = [o.name for o in model.graph.output]
    return dict(zip(names, ReferenceEvaluator(model).run(None, feeds)))


# ---- running an imported stack (the importers' float path, and the fixed path) --------------

def float_stack(stack, x):
    """Every layer's float h sequence (model.cell.float_run, layer by layer) and the logits."""
    from model.cell import float_run
    seqs, seq = [], np.asarray(x, np.float64)
    for k, layer in enumerate(stack.layers):
        h0 = None if stack.h0 is None else stack.h0[k]
        c0 = None if stack.c0 is None else stack.c0[k]
        seq = float_run(layer, seq, h0, c0)["h"]
        seqs.append(seq)
    logits = seq[:, -1] @ stack.head_weight.T + stack.head_bias if stack.has_head else None
    return seqs, logits


def fixed_stack(config, stack, x):
    """The fixed-point h of the last layer, layer by layer through model.golden.run_golden
    (layer k+1 reads layer k's fixed-point h, cast into the x format)."""
    from model.golden import run_golden
    from model.weights import LSTMWeights
    seq = np.asarray(x, np.float64)
    for k, layer in enumerate(stack.layers):
        last = k == stack.n_layers - 1 and stack.has_head
        weights = LSTMWeights(layer.weight_ih, layer.weight_hh, layer.bias,
                              stack.head_weight if last else None, stack.head_bias if last else None)
        h0 = None if stack.h0 is None else stack.h0[k]
        c0 = None if stack.c0 is None else stack.c0[k]
        seq = run_golden(config, weights, seq, h0=h0, c0=c0).decoded()["h"]
    return seq


def permute_gates(stack, order):
    """The stack with every layer's gate blocks taken in ``order`` (a wrong importer)."""
    from model.weights import LSTMStack, LSTMWeights

    def p(a):
        b = np.split(a, 4, axis=0)
        return np.concatenate([b[k] for k in order], axis=0)
    layers = tuple(LSTMWeights(p(w.weight_ih), p(w.weight_hh), p(w.bias)) for w in stack.layers)
    return LSTMStack(layers, stack.head_weight, stack.head_bias, stack.h0, stack.c0)


# ---- the command line ------------------------------------------------------------------------

def python_m(module, *args, timeout=600):
    """``python -m <module> args`` from the repository root, as a user runs it."""
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def model_cli(*args, module="model"):
    """``python -m <module> args`` (``python -m model`` by default)."""
    return python_m(module, *args, timeout=300)


def assert_one_line_exit_2(p, words=""):
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert "Traceback" not in p.stderr and p.stdout == ""
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], p.stderr


# ---- a Keras 2 (tf.keras) legacy .h5, laid out as TensorFlow 2.x's model.save("m.h5") writes it

def keras2_h5(path, stack, recurrent_activation="sigmoid"):
    """A tf.keras 2.x functional model file (``model_config`` JSON with ``[[name, 0, 0, {}]]``
    inbound nodes, weight names ending in ``:0``, byte-string attributes) holding ``stack``'s
    LSTM layers (kernels transposed back to Keras's (X, 4H)) and head. Not written by Keras 2
    itself (TensorFlow is not installed here): the layout of its legacy HDF5 format."""
    import json

    import h5py
    layers = [{"class_name": "InputLayer", "name": "input_1", "inbound_nodes": [],
               "config": {"batch_input_shape": [None, None, stack.n_inputs], "dtype": "float32",
                          "sparse": False, "ragged": False, "name": "input_1"}}]
    weights, previous = {}, "input_1"
    for k, layer in enumerate(stack.layers):
        name = "lstm" if k == 0 else f"lstm_{k}"
        layers.append({"class_name": "LSTM", "name": name,
                       "inbound_nodes": [[[previous, 0, 0, {}]]],
                       "config": {"name": name, "trainable": True, "dtype": "float32",
                                  "return_sequences": k < stack.n_layers - 1, "return_state": False,
                                  "go_backwards": False, "stateful": False, "unroll": False,
                                  "time_major": False, "units": layer.n_hidden, "activation": "tanh",
                                  "recurrent_activation": recurrent_activation, "use_bias": True,
                                  "unit_forget_bias": True, "dropout": 0.0, "recurrent_dropout": 0.0,
                                  "implementation": 2}})
        weights[name] = {f"{name}/lstm_cell/kernel:0": layer.weight_ih.T,
                         f"{name}/lstm_cell/recurrent_kernel:0": layer.weight_hh.T,
                         f"{name}/lstm_cell/bias:0": layer.bias}
        previous = name
    layers.append({"class_name": "Dense", "name": "dense", "inbound_nodes": [[[previous, 0, 0, {}]]],
                   "config": {"name": "dense", "units": stack.head_weight.shape[0],
                              "activation": "linear", "use_bias": True}})
    weights["dense"] = {"dense/kernel:0": stack.head_weight.T, "dense/bias:0": stack.head_bias}
    config = {"class_name": "Functional", "config": {
        "name": "model", "layers": layers, "input_layers": [["input_1", 0, 0]],
        "output_layers": [["dense", 0, 0]]}, "keras_version": "2.15.0", "backend": "tensorflow"}
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = b"2.15.0"
        f.attrs["backend"] = b"tensorflow"
        f.attrs["model_config"] = json.dumps(config).encode()
        g = f.create_group("model_weights")
        g.attrs["layer_names"] = [L["name"].encode() for L in layers]
        for L in layers:
            lg = g.create_group(L["name"])
            names = list(weights.get(L["name"], {}))
            lg.attrs["weight_names"] = [n.encode() for n in names]
            for n in names:
                lg.create_dataset(n, data=np.asarray(weights[L["name"]][n], np.float32))
    return path
