"""Test vectors for any Verilog simulator: what to send to the cell's ports and what must come
back, as ``$readmemh`` files, with a manifest (``manifest.json``) and a Verilog include file
(``params.vh``). ``sim/verilog/tb_vectors.v`` is a plain Verilog-2005 testbench that reads them.

Files (one word per line, two's complement hex, zero-padded to the width's hex digits):

==============  =========  ================================================================
file            words      each word (bit 0 first)
==============  =========  ================================================================
weights.hex     4H(X+H)+4H the ``data`` field of the ``weights`` port: a weight or bias code,
                           sign-extended to max(W_weight, W_bias) bits. Order: row 4u + gate
                           (unit u, gates i, f, g, o), columns x then h; then the 4H biases
                           in the same row order. Send with ``first`` on word 0, ``last`` on
                           the final word.
state.hex       H          ``h`` code then ``c`` code of the initial state, unit 0 first
                           (the ``state`` payload without ``first``/``last``).
x.hex           steps      the whole ``x`` payload: X codes (element 0 at bit 0), then
                           ``first`` (set on step 0 of each sequence), then ``last`` (set
                           on step T-1 of each sequence).
expected.hex    steps      the whole ``h`` output payload the design must produce: H h codes,
                           then H c codes (unless the design is built without c). A design with
                           the word-serial output sends it as H words (unit u: its h code,
                           c code, ``first`` = u == 0, ``last`` = u == H-1); the testbench
                           assembles them into this step payload.
expected_y.hex  sequences  with a classifier head only: the ``y`` payload of each sequence, C
                           logit codes (``logit_bits`` each, class 0 at bit 0), then the label
                           (the first largest logit; ceil(log2 C) bits, at least 1).
==============  =========  ================================================================

Numpy only: the load order is re-derived here from the quantized weights (a test checks it
against the RTL's own ``Geometry.load_words``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .cell import FixedLSTM, head_frac, logit_bits
from .cli import atomic_write
from .config import Config
from .weights import QuantizedWeights

__all__ = ["Vectors", "make_vectors", "vectors_of_run", "write_vectors", "load_order",
           "params_vh", "hex_lines", "pack", "pack_hex"]

GATES = 4
VERSION = 1


def load_order(qweights: QuantizedWeights) -> np.ndarray:
    """The weight-load stream's codes: the (4H, X+H) matrix in row 4u + gate order (the
    ``.npz`` rows are gate-major: row gate*H + u), then the biases in the same row order."""
    H = qweights.n_hidden
    full = np.concatenate([np.asarray(qweights.weight_ih, np.int64),
                           np.asarray(qweights.weight_hh, np.int64)], axis=1)
    rows = full.reshape(GATES, H, -1).transpose(1, 0, 2).reshape(GATES * H, -1)
    bias = np.asarray(qweights.bias, np.int64).reshape(GATES, H).T.reshape(-1)
    return np.concatenate([rows.reshape(-1), bias])


def pack(fields, n_rows: int) -> list[int]:
    """Pack per-row fields into one integer per row. ``fields``: (codes (n_rows, k), width)
    pairs in bit order; each code is taken as ``width``-bit two's complement."""
    words = [0] * n_rows
    offset = 0
    for codes, width in fields:
        codes = np.asarray(codes).reshape(n_rows, -1)
        mask = (1 << width) - 1
        for k in range(codes.shape[1]):
            shift = offset + k * width
            # Python integers: & mask gives the two's complement bits at any width
            for r, v in enumerate(codes[:, k].tolist()):
                words[r] |= (int(v) & mask) << shift
        offset += codes.shape[1] * width
    return words


def hex_lines(words, width: int) -> str:
    digits = max(1, -(-width // 4))
    return "".join(f"{w:0{digits}x}\n" for w in words)


def pack_hex(fields, n_rows: int, width: int) -> str:
    """``hex_lines(pack(fields, n_rows), width)``, vectorized through numpy bit arrays when
    every field fits int64 arithmetic (the whole-data-set files have millions of codes)."""
    if any(w > 62 for _, w in fields) or \
            any(np.asarray(codes).dtype == object for codes, _ in fields):
        return hex_lines(pack(fields, n_rows), width)
    nbytes, digits = max(1, -(-width // 8)), max(1, -(-width // 4))
    chunk = max(1, (1 << 22) // (8 * nbytes))           # about 4 M bits at a time
    columns = [(np.asarray(codes, np.int64).reshape(n_rows, -1), w) for codes, w in fields]
    lines = []
    for start in range(0, n_rows, chunk):
        stop = min(n_rows, start + chunk)
        bits = np.zeros((stop - start, 8 * nbytes), np.uint8)
        offset = 0
        for codes, w in columns:
            part = codes[start:stop]
            # arithmetic shifts of int64: the low w bits are the two's complement code
            bits[:, offset:offset + part.shape[1] * w] = \
                ((part[:, :, None] >> np.arange(w)) & 1).reshape(stop - start, -1)
            offset += part.shape[1] * w
        text = np.packbits(bits, axis=1, bitorder="little")[:, ::-1].tobytes().hex()
        row = 2 * nbytes
        lines.extend(text[i + row - digits:i + row] for i in range(0, len(text), row))
    return "".join(line + "\n" for line in lines)


@dataclass(frozen=True, eq=False)
class Vectors:
    """Stimulus and golden outputs for one design (config, weights, lanes, with or without c)."""

    config: Config
    qweights: QuantizedWeights
    x_raw: np.ndarray            # (B, T, X) codes
    h0: np.ndarray               # (H,) initial state codes, what the state packet loads
    c0: np.ndarray
    h: np.ndarray                # (B, T, H) expected codes
    c: np.ndarray
    lanes: int
    output_c: bool = True
    #: a stacked model's first layer config (its x format); the weights, state, h and c are
    #: then the last layer's, and only the x and expected files describe the whole stack
    input_config: Config | None = None
    #: the design's h stream is word-serial (one unit per transfer: h, c, first, last)
    serial_output: bool = False
    #: with a classifier head on chip: the expected logit codes (B, C) of each sequence
    logits: np.ndarray | None = None

    @property
    def n_classes(self) -> int:
        return 0 if self.logits is None else self.logits.shape[1]

    @property
    def labels(self) -> np.ndarray | None:
        """The expected label of each sequence: numpy's argmax, the first largest logit."""
        return None if self.logits is None else \
            np.array([int(np.argmax(row)) for row in self.logits], np.int64)

    @property
    def n_inputs(self) -> int:
        return self.x_raw.shape[2]

    @property
    def n_hidden(self) -> int:
        return self.qweights.n_hidden

    @property
    def n_steps(self) -> int:
        return self.x_raw.shape[0] * self.x_raw.shape[1]

    def widths(self) -> dict:
        cfg, X, H = self.config, self.n_inputs, self.n_hidden
        wx = (self.input_config or cfg).fmt("x").bits
        wh, wc = (cfg.fmt(n).bits for n in ("h", "c"))
        data = max(cfg.fmt("weight").bits, cfg.fmt("bias").bits)
        step = H * wh + (H * wc if self.output_c else 0)     # an expected.hex word
        word = wh + (wc if self.output_c else 0) + 2          # a word-serial transfer
        return {"x": wx, "h": wh, "c": wc, "data": data,
                "x_payload": X * wx + 2, "h_payload": word if self.serial_output else step,
                "step_payload": step, "weights_payload": data + 2, "state_payload": wh + wc + 2,
                **self._y_widths()}

    def _y_widths(self) -> dict:
        if self.logits is None:
            return {}
        C = self.n_classes
        logit, label = logit_bits(self.config, self.n_hidden), max(1, (C - 1).bit_length())
        return {"logit": logit, "label": label, "y_payload": C * logit + label}

    def files(self) -> dict:
        """Each ``.hex`` file's text."""
        return {name: pack_hex(fields, n_rows, width)
                for name, (fields, n_rows, width) in self._fields().items()}

    def words(self) -> dict:
        """Each file's words as integers, and their width (see the module docstring)."""
        return {name: (pack(fields, n_rows), width)
                for name, (fields, n_rows, width) in self._fields().items()}

    def _fields(self) -> dict:
        """Each file's (fields, rows, width): fields are (codes (rows, k), bits) in bit order."""
        (B, T, X), H = self.x_raw.shape, self.n_hidden
        w = self.widths()
        first = np.zeros((B, T), np.int64)
        first[:, 0] = 1
        last = np.zeros((B, T), np.int64)
        last[:, -1] = 1
        n = B * T
        expected = [(self.h.reshape(n, H), w["h"])]
        if self.output_c:
            expected.append((self.c.reshape(n, H), w["c"]))
        order = load_order(self.qweights)
        return {
            "weights.hex": ([(order[:, None], w["data"])], order.size, w["data"]),
            "state.hex": ([(self.h0[:, None], w["h"]), (self.c0[:, None], w["c"])], H,
                          w["h"] + w["c"]),
            "x.hex": ([(self.x_raw.reshape(n, X), w["x"]), (first.reshape(n, 1), 1),
                       (last.reshape(n, 1), 1)], n, w["x_payload"]),
            "expected.hex": (expected, n, w["step_payload"]),
            **({} if self.logits is None else {"expected_y.hex": (
                [(self.logits, w["logit"]), (self.labels[:, None], w["label"])], B,
                w["y_payload"])}),
        }

    def manifest(self, cycles_per_step: int | None = None) -> dict:
        cfg, (B, T, X), H, P = self.config, self.x_raw.shape, self.n_hidden, self.lanes
        # the weight words are the (last) layer's, whose inputs are X unless stacked
        mac_work, w = GATES * H * (self.qweights.n_inputs + H), self.widths()
        m = {
            "format": "fixed-lstm vectors", "version": VERSION,
            "X": X, "H": H, "lanes": P, "output_c": self.output_c,
            "serial_output": self.serial_output,
            "formats": {n: {"bits": cfg.fmt(n).bits, "frac": cfg.fmt(n).frac}
                        for n in ("x", "weight", "bias", "h", "c")},
            "widths": w,
            "load_words": mac_work + GATES * H, "state_words": H,
            # a stack's design (rtl --single-ports) takes no loads: its layers keep the
            # exported weights, and the testbench runs as with +noload
            "loads": self.input_config is None,
            "sequences": B, "steps_per_sequence": T, "steps": B * T,
            "mac_work": mac_work, "mac_bound_cycles_per_step": -(-mac_work // P),
            "files": {"weights.hex": {"words": mac_work + GATES * H, "width": w["data"]},
                      "state.hex": {"words": H, "width": w["h"] + w["c"]},
                      "x.hex": {"words": B * T, "width": w["x_payload"]},
                      "expected.hex": {"words": B * T, "width": w["step_payload"]}},
        }
        if self.logits is not None:
            m["head"] = {"classes": self.n_classes, "logit_bits": w["logit"],
                         "label_bits": w["label"], "logit_frac": head_frac(cfg)}
            m["files"]["expected_y.hex"] = {"words": B, "width": w["y_payload"]}
        if cycles_per_step is None:
            # the pipeline overhead is a property of the RTL, which the model does not import
            m["cycles_per_step"] = None
            m["cycles_per_step_note"] = ("MAC bound + the RTL's pipeline overhead: "
                                         "`python -m rtl` prints it for a design")
        else:
            m["cycles_per_step"] = int(cycles_per_step)
        return m


def make_vectors(config: Config, qweights: QuantizedWeights, x_raw, *, h0=None, c0=None,
                 lanes: int | None = None, output_c: bool = True) -> Vectors:
    """Run the golden model and collect what the testbench sends and expects.

    Parameters
    ----------
    config, qweights
        The design's config and quantized weights (what the weight-load packet carries).
    x_raw : array (B, T, X)
        Input codes in the x format: B sequences of T steps, each starting with ``first``.
    h0, c0 : array (H,), optional
        Initial state codes (h and c formats) that the state packet loads and every sequence
        starts from; zero (the state after reset) when omitted.
    lanes : int, optional
        P, for the manifest's MAC bound (default: the config's).
    output_c : bool
        Whether the design puts c on its output (expected words hold h, or h then c).
    """
    cell = FixedLSTM(config, qweights)
    x_raw = np.asarray(x_raw, np.int64)
    H = qweights.n_hidden
    h0 = np.zeros(H, np.int64) if h0 is None else np.asarray(h0, np.int64).reshape(H)
    c0 = np.zeros(H, np.int64) if c0 is None else np.asarray(c0, np.int64).reshape(H)
    trace = cell.run(x_raw, h0, c0)
    return Vectors(config, qweights, x_raw, h0, c0, np.asarray(trace["h"], np.int64),
                   np.asarray(trace["c"], np.int64),
                   config.lanes_for(qweights.n_inputs, H) if lanes is None else lanes, output_c)


def vectors_of_run(run, *, lanes: int | None = None, output_c: bool = True,
                   serial_output: bool = False, head: bool = False) -> Vectors:
    """The vectors of a :class:`model.golden.GoldenRun` (sequences from the zero state).

    For a stacked run: the inputs in layer 0's x format, the expected h and c of the last layer
    (its formats); the weight and state files hold the last layer's, for a testbench run
    without loads (``+noload``). ``head``: a design with the classifier head on chip (the run's
    model has one): the expected logits and labels of each sequence too."""
    last = run.layers[-1]
    H = last.qweights.n_hidden
    zero = np.zeros(H, np.int64)
    first = run.layers[0].config if len(run.layers) > 1 else None
    return Vectors(last.config, last.qweights, np.asarray(run.layers[0].x_raw, np.int64), zero,
                   zero, np.asarray(last.fixed["h"]), np.asarray(last.fixed["c"]),
                   last.config.lanes_for(last.qweights.n_inputs, H) if lanes is None else lanes,
                   output_c, first, serial_output, _int_codes(run.logits_raw) if head else None)


def _int_codes(codes) -> np.ndarray:
    """Exact integer codes as int64 when they fit (they do for logits up to 63 bits)."""
    codes = np.asarray(codes)
    try:
        return codes.astype(np.int64) if codes.dtype != object or \
            max(abs(int(v)) for v in codes.reshape(-1)) < 1 << 62 else codes
    except ValueError:
        return codes


def params_vh(manifest: dict, steps: int | None = None) -> str:
    """The manifest as Verilog ``define``s for the testbench (``steps`` overrides the count:
    a build sized for more steps than one vector set holds)."""
    w = manifest["widths"]
    values = {
        "X": manifest["X"], "H": manifest["H"], "LANES": manifest["lanes"],
        "X_BITS": w["x"], "H_BITS": w["h"], "C_BITS": w["c"], "DATA_BITS": w["data"],
        "OUTPUT_C": int(manifest["output_c"]),
        "SERIAL_OUTPUT": int(manifest.get("serial_output", False)),
        "X_PAYLOAD_BITS": w["x_payload"], "H_PAYLOAD_BITS": w["h_payload"],
        "STEP_PAYLOAD_BITS": w.get("step_payload", w["h_payload"]),
        "WEIGHTS_PAYLOAD_BITS": w["weights_payload"], "STATE_PAYLOAD_BITS": w["state_payload"],
        "LOAD_WORDS": manifest["load_words"], "STATE_WORDS": manifest["state_words"],
        "STEPS": manifest["steps"] if steps is None else steps,
        "MAC_WORK": manifest["mac_work"], "MAC_BOUND": manifest["mac_bound_cycles_per_step"],
    }
    if manifest.get("cycles_per_step") is not None:
        values["CYCLES_PER_STEP"] = manifest["cycles_per_step"]
    if manifest.get("head"):
        head = manifest["head"]
        values.update(HEAD=1, CLASSES=head["classes"], LOGIT_BITS=head["logit_bits"],
                      Y_PAYLOAD_BITS=w["y_payload"],
                      HEAD_WORK=(head["classes"] + 1) * manifest["H"] + 100)
    if not manifest.get("loads", True):
        values["NOLOAD"] = 1
    lines = ["// Generated by `python -m model vectors`: sizes and widths of the vectors in this",
             "// directory, for sim/verilog/tb_vectors.v (see manifest.json).",
             "`ifndef LSTM_PARAMS_VH", "`define LSTM_PARAMS_VH"]
    lines += [f"`define LSTM_{k} {v}" for k, v in values.items()]
    return "\n".join(lines + ["`endif", ""])


def write_vectors(directory, vectors: Vectors, *, cycles_per_step: int | None = None) -> dict:
    """Write the four ``.hex`` files, ``manifest.json`` and ``params.vh``.

    Parameters
    ----------
    directory : path
        Created if missing (its parent must exist); files of the same names are replaced.
    vectors : Vectors
    cycles_per_step : int, optional
        The design's cycles per step, from a caller that knows the RTL; recorded in the
        manifest and ``params.vh`` (the model alone knows only the MAC bound).

    Returns
    -------
    dict
        The manifest.
    """
    directory = Path(directory)
    directory.mkdir(exist_ok=True)
    manifest = vectors.manifest(cycles_per_step)
    for name, text in vectors.files().items():
        atomic_write(directory / name, lambda f, t=text: f.write(t), mode="w")
    text = json.dumps(manifest, indent=2) + "\n"
    atomic_write(directory / "manifest.json", lambda f: f.write(text), mode="w")
    vh = params_vh(manifest)
    atomic_write(directory / "params.vh", lambda f: f.write(vh), mode="w")
    return manifest


# ---- python -m model vectors ---------------------------------------------------------------

def add_arguments(p) -> None:
    """The ``vectors`` subcommand's options (after the common ``--config``)."""
    p.add_argument("--weights", metavar="W.npz",
                   help="weights (default: the shipped model data/digits_lstm.npz)")
    p.add_argument("--inputs", metavar="X.npy",
                   help="inputs (B, T, X) or (T, X) (.npy; or a .npz with 'x'); default: "
                        "data/digits_heldout.npz")
    p.add_argument("--limit", type=int, metavar="N", help="only the first N sequences")
    p.add_argument("--lanes", type=int, metavar="P",
                   help="MAC lanes of the design, for the manifest's MAC bound (default: the "
                        "config's [rtl] lanes)")
    p.add_argument("--no-c", action="store_true",
                   help="for a design built with --no-c: expected outputs hold h only")
    p.add_argument("--state", choices=("zero", "random"), default="zero",
                   help="initial state that state.hex loads and every sequence starts from "
                        "(default zero: the state after reset)")
    p.add_argument("--seed", type=int, default=0, help="seed of --state random (default 0)")
    p.add_argument("--out", metavar="DIR", required=True,
                   help="directory for the vectors (created; its parent must exist)")


def random_state(config: Config, n_hidden: int, seed: int):
    """An initial state of raw codes: h anywhere in its format, c within a quarter of its range
    (a cell state a trained network reaches)."""
    rng = np.random.default_rng(seed)
    h, c = config.fmt("h"), config.fmt("c")
    return (rng.integers(h.min_code, h.max_code + 1, n_hidden),
            rng.integers(c.min_code // 4, c.max_code // 4 + 1, n_hidden))


def cmd_vectors(args) -> int:
    from .cli import UsageError, load_operands, note_default_lanes, shown, single_layer
    from .golden import quantize_inputs
    from .weights import quantize_weights
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a directory")
    if not out.parent.is_dir():
        raise UsageError(f"--out {out}: directory {out.parent} does not exist")
    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit must be at least 1, not {args.limit}")
    config, stack, x, _, _ = load_operands(args, want_labels=False, stacked=True)
    if args.limit is not None:
        x = x[:args.limit]
    if stack.n_layers > 1:
        return _stacked_vectors(args, out, config, stack, x)
    weights = single_layer(stack, "python -m model vectors")
    note_default_lanes(config, weights, args.lanes)
    lanes = config.lanes_for(weights.n_inputs, weights.n_hidden) if args.lanes is None else args.lanes
    if not 1 <= lanes <= 2 * (weights.n_inputs + weights.n_hidden):
        raise UsageError(f"--lanes must be from 1 to 2(X+H) = "
                         f"{2 * (weights.n_inputs + weights.n_hidden)}, not {lanes}")
    qweights = quantize_weights(weights, config)
    x_raw, _ = quantize_inputs(config, x)
    h0 = c0 = None
    if args.state == "random":
        h0, c0 = random_state(config, weights.n_hidden, args.seed)
    vectors = make_vectors(config, qweights, x_raw, h0=h0, c0=c0, lanes=lanes,
                           output_c=not args.no_c)
    m = write_vectors(out, vectors)
    print(f"wrote {shown(out)}: {m['steps']} steps ({m['sequences']} sequences of "
          f"{m['steps_per_sequence']}), {m['load_words']} weight-load words, X={m['X']} "
          f"H={m['H']}; run them with sim/verilog/tb_vectors.v (see docs/vectors.md)")
    return 0


def _stacked_vectors(args, out: Path, config: Config, stack, x) -> int:
    """Vectors of a stacked model for its single-port design (``python -m rtl --single-ports``):
    layer 0's inputs, the last layer's expected h (and c), run without loads, from zero."""
    from .cli import UsageError, note_default_lanes, shown
    from .golden import run_golden
    if args.state != "zero" or stack.h0 is not None or stack.c0 is not None:
        raise UsageError("a stacked model's vectors start every sequence from the zero state "
                         "(its state packets go to per-layer ports, which tb_vectors.v does not "
                         "drive): drop --state random or the model file's stored state")
    note_default_lanes(config, stack, args.lanes)
    run = run_golden(config, stack, x)
    vectors = vectors_of_run(run, lanes=args.lanes, output_c=not args.no_c)
    m = write_vectors(out, vectors)
    print(f"wrote {shown(out)}: {m['steps']} steps ({m['sequences']} sequences of "
          f"{m['steps_per_sequence']}) of a {stack.n_layers}-layer model, X={m['X']} H={m['H']} "
          f"(the last layer's); the design: python -m rtl --single-ports (same --config, "
          f"--weights); sim/verilog/tb_vectors.v runs it without loads (see docs/vectors.md)")
    return 0

