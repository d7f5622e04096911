"""The host driver: :class:`Board`, one class over a byte link (a serial port, a socket to the
simulated board: anything ``serial.serial_for_url`` opens), and ``python -m deploy run``
(:mod:`deploy.run`). Every request waits for its reply (docs/deploy.md, "Frame protocol").

    with Board("socket://127.0.0.1:5000") as board:     # config: configs/default.toml
        board.info()                        # the design identity (protocol.Info)
        board.load("data/digits_lstm.npz")  # refuses a bitstream built for another model
        out = board.run(x)                  # x float (B, T, X): labels/logits or h, cycles
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model.config import Config, load_config
from model.golden import quantize_inputs
from model.weights import LSTMStack, LSTMWeights, quantize_weights
from rtl.geometry import Geometry
from rtl.top import LSTMCell

from . import protocol as p

__all__ = ["Board", "BoardError", "Identity", "expected_identity", "layer_weights", "main"]

DEFAULT_TIMEOUT = 10.0          # seconds a reply may take (the simulated board is slow)

# what each refusal means for the user, in one line (docs/deploy.md, "Status codes")
MEANING = {
    p.Status.BAD_CRC: "the frame's CRC-32 did not match (corrupted on the line)",
    p.Status.TIMEOUT: "the frame stopped before its end",
    p.Status.LINE_ERROR: "a UART framing error, break or overrun inside the frame",
    p.Status.UNKNOWN_COMMAND: "the board does not know this command",
    p.Status.TOO_LONG: "the payload is longer than the board's receive buffer",
    p.Status.BAD_SIZE: "the payload's size does not fit the command",
    p.Status.BAD_ARGUMENT: "an argument is out of range (layer, packet not opened)",
    p.Status.X_BLOCKED: "x is blocked: a weight packet is open or was refused, so the weights "
                        "are invalid until a complete weight packet loads",
    p.Status.BATCH_FULL: "the on-chip batch memory is full",
}


class BoardError(RuntimeError):
    """The board refused a request, did not answer, or is not the design the host expects.
    ``status`` is the board's status code when it answered one."""

    def __init__(self, message: str, status: p.Status | None = None):
        super().__init__(message)
        self.status = status


def layer_weights(config: Config, model) -> list:
    """Quantized weights of each layer (``config.for_layer(k)``); the last carries the head."""
    stack = model if isinstance(model, LSTMStack) else LSTMStack.from_single(model)
    out = []
    for k, layer in enumerate(stack.layers):
        if k == stack.n_layers - 1:
            layer = LSTMWeights(layer.weight_ih, layer.weight_hh, layer.bias,
                                stack.head_weight, stack.head_bias)
        out.append(quantize_weights(layer, config.for_layer(k)))
    return out


@dataclass(frozen=True)
class Identity:
    """What the host expects INFO to say for its config and model."""
    config: dict            # Config.as_dict(): what the design hash covers
    sizes: tuple            # (X_k, H_k) per layer
    n_classes: int          # the model's head (0: none); a board may leave it off the chip
    x_fmt: tuple            # (bits, frac) of layer 0's x
    h_fmt: tuple            # (bits, frac) of the last layer's h
    logit_fmt: tuple        # (bits, frac) of the on-chip head's logits, (0, 0) without a head

    def design_hash(self, n_classes: int) -> bytes:
        return p.design_hash(self.config, self.sizes, n_classes)


def expected_identity(config: Config, model) -> Identity:
    from rtl.head import logit_format
    stack = model if isinstance(model, LSTMStack) else LSTMStack.from_single(model)
    sizes = tuple((layer.n_inputs, layer.n_hidden) for layer in stack.layers)
    n_classes = stack.head_weight.shape[0] if stack.has_head else 0
    last = config.for_layer(stack.n_layers - 1)
    x, h = config.for_layer(0).fmt("x"), last.fmt("h")
    logits = logit_format(last, stack.n_hidden) if n_classes else (0, 0)
    return Identity(config.as_dict(), sizes, n_classes, (x.bits, x.frac), (h.bits, h.frac),
                    tuple(logits))


def identity_problems(info: p.Info, want: Identity) -> list[str]:
    """How the board's INFO differs from what the host's config and model need (empty: none).
    A board without the head (C = 0) serves a model with one: it returns h, and the host
    applies the golden head."""
    got_sizes = tuple((layer.n_inputs, layer.n_hidden) for layer in info.layers)
    problems = []
    if got_sizes != want.sizes:
        shown = lambda sizes: ", ".join(f"X={x} H={h}" for x, h in sizes)   # noqa: E731
        problems.append(f"layers {shown(got_sizes)} (L={len(got_sizes)}), the model has "
                        f"{shown(want.sizes)} (L={len(want.sizes)})")
    if info.n_classes not in (0, want.n_classes):
        problems.append(f"a head of C={info.n_classes} classes, the model has "
                        f"{want.n_classes or 'no head'}")
    formats = [("x", (info.x_bits, info.x_frac), want.x_fmt),
               ("h", (info.h_bits, info.h_frac), want.h_fmt)]
    if info.n_classes and info.n_classes == want.n_classes:
        formats.append(("logit", (info.logit_bits, info.logit_frac), want.logit_fmt))
    for name, got, need in formats:
        if got != need:
            problems.append(f"{name} format {got[0]} bits/{got[1]} fraction, the config gives "
                            f"{need[0]}/{need[1]}")
    for k, layer in enumerate(info.layers):
        # the step period this RTL gives the board's own lanes (a board from another RTL differs).
        # The board does not report logic lanes: with them and weights over 16 bits its steps
        # take Geometry.logic_delay cycles more, and this check names that as a difference.
        if k >= len(want.sizes) or (layer.n_inputs, layer.n_hidden) != want.sizes[k] \
                or layer.lanes < 1:
            continue
        cycles = LSTMCell.cycles_per_step_for(layer.n_inputs, layer.n_hidden, layer.lanes)
        if layer.cycles_per_step != cycles:
            problems.append(f"layer {k} takes {layer.cycles_per_step} cycles per step at "
                            f"P={layer.lanes}, this RTL {cycles}")
    expected_hash = want.design_hash(info.n_classes)
    if info.design_hash != expected_hash and not problems:
        problems.append(f"design hash {info.design_hash.hex()}, the config and model give "
                        f"{expected_hash.hex()} (formats, activation tables or modes differ)")
    return problems


def as_model(weights):
    """A model object as is, or the model in a file (any format ``python -m model`` reads)."""
    if isinstance(weights, (LSTMWeights, LSTMStack)):
        return weights
    from model.importers import load_model_file
    return load_model_file(Path(weights))


class Board:
    """A board (or the simulated board) behind ``port``: ``/dev/ttyUSB0``, ``socket://host:port``
    or any other ``serial.serial_for_url`` URL. ``config``: a Config, a TOML path or None (the
    default config): the formats the host quantizes with and checks the board against.
    ``timeout``: seconds a reply may take."""

    def __init__(self, port: str, *, config=None, baud: int = p.DEFAULT_BAUD,
                 timeout: float = DEFAULT_TIMEOUT):
        import serial

        self.config = config if isinstance(config, Config) else load_config(config)
        try:
            self.link = serial.serial_for_url(port, baudrate=baud, timeout=timeout)
        except (serial.SerialException, ValueError) as e:
            raise BoardError(f"cannot open {port}: {e}") from None
        self.port = port
        self._info: p.Info | None = None

    # -- the link ------------------------------------------------------------------------------
    def close(self) -> None:
        self.link.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def request(self, command: p.Command, payload: bytes = b"", *, what: str = "") -> bytes:
        """Send one request and return the payload of its OK reply; a refusal is a BoardError
        naming the command, the status and what it means."""
        import serial

        what = f"{getattr(command, 'name', f'command 0x{command:02x}')}{what}"
        frame = p.encode_request(command, payload)
        try:
            self.link.write(frame)
            reply = p.read_reply(self.link.read)
        except p.ProtocolError as e:
            raise BoardError(f"no valid reply to {what} from {self.port}: {e}") from None
        except (serial.SerialException, OSError) as e:
            raise BoardError(f"the link to {self.port} failed during {what}: {e}") from None
        if reply.command != command:
            raise BoardError(f"the reply to {what} is for command 0x{reply.command:02x}")
        if reply.status != p.Status.OK:
            name = getattr(reply.status, "name", f"0x{int(reply.status):02x}")
            raise BoardError(f"the board refused {what}: {name}, "
                             f"{MEANING.get(reply.status, 'unknown status')}", reply.status)
        return reply.payload

    # -- commands ------------------------------------------------------------------------------
    def info(self) -> p.Info:
        if self._info is None:
            try:
                payload = self.request(p.Command.INFO)
            except BoardError as e:
                if e.status is not None:
                    raise
                raise BoardError(f"no reply to INFO from {self.port} within "
                                 f"{self.link.timeout:g} s: is the board programmed, and is "
                                 f"{self.link.baudrate} its baud rate (--baud)?") from None
            try:
                self._info = p.Info.decode(payload)
            except p.ProtocolError as e:
                raise BoardError(f"the board's INFO does not decode: {e}") from None
        return self._info

    def check(self, weights) -> p.Info:
        """INFO against the design the config and ``weights`` (a model or a model file) need;
        a BoardError in one line if the bitstream was built for another model."""
        info = self.info()
        problems = identity_problems(info, expected_identity(self.config, as_model(weights)))
        if problems:
            raise BoardError(f"the board at {self.port} was built for another model: "
                             + "; ".join(problems))
        return info

    def load(self, weights) -> int:
        """Check the identity, then load every layer's weight packet of ``weights`` (a model or
        a model file); returns the frames sent."""
        model = as_model(weights)
        info = self.check(model)
        config = self.config
        frames = 0
        for k, (layer, qweights) in enumerate(zip(info.layers, layer_weights(config, model))):
            words = Geometry(config.for_layer(k), qweights, 1).load_words(qweights)
            payloads = p.weights_payloads(k, words, layer.weight_bits, info.max_payload)
            for n, payload in enumerate(payloads):
                try:
                    self.request(p.Command.LOAD_WEIGHTS, payload,
                                 what=f" (layer {k} weights, frame {n + 1} of {len(payloads)})")
                except BoardError as e:
                    if n == 0 or e.status is None:
                        raise
                    # earlier frames of the packet were written: the core now blocks x
                    raise BoardError(f"{e}; layer {k}'s weights are now incomplete, so x stays "
                                     "blocked until a complete weight packet loads",
                                     e.status) from None
                frames += 1
        return frames

    def load_state(self, layer: int, h0_codes, c0_codes) -> None:
        lay = self.info().layers[layer]
        self.request(p.Command.LOAD_STATE,
                     p.state_payload(layer, h0_codes, c0_codes, lay.h_bits, lay.c_bits))

    def reset(self) -> None:
        self.request(p.Command.RESET)

    def read_error(self) -> p.ErrorReport:
        return p.error_report(self.request(p.Command.READ_ERROR))

    def x_codes(self, x) -> np.ndarray:
        """Float inputs (B, T, X) or (T, X) cast into the x format: the golden model's cast."""
        x = np.asarray(x, dtype=np.float64)
        return quantize_inputs(self.config, x[None] if x.ndim == 2 else x)[0]

    def run_sequence(self, codes) -> tuple[int, p.RunResult]:
        """One sequence of x codes (T, X), as many RUN frames as the receive buffer needs;
        returns its on-chip cycles and the board's result."""
        info = self.info()
        codes = np.asarray(codes, dtype=np.int64)
        per_frame = max(1, (info.max_payload - p.RUN_HEADER) * 8 // (info.x_bits * info.n_inputs))
        T = codes.shape[0]
        cycles, result = 0, None
        for start in range(0, T, per_frame):
            end = min(T, start + per_frame)
            flags = (p.RunFlags.FIRST if start == 0 else 0) | (p.RunFlags.LAST if end == T else 0)
            reply = self.request(p.Command.RUN, p.run_payload(codes[start:end], info.x_bits, flags))
            try:
                used, result = p.run_reply(reply, info, flags)
            except p.ProtocolError as e:
                raise BoardError(f"the board's RUN reply does not decode: {e}") from None
            cycles += used
        return cycles, result

    def run(self, x, *, progress=None) -> dict:
        """Every sequence of ``x`` (float, (B, T, X)) through the board: ``cycles`` (B,) and
        ``labels`` (B,) with ``logits`` (B, C) from a head, else ``h`` (B, H) (the last step's),
        all raw codes; ``seconds`` the wall time. ``progress(done, total)`` after each."""
        codes = self.x_codes(x)
        results, cycles = [], []
        start = time.perf_counter()
        for b in range(codes.shape[0]):
            used, result = self.run_sequence(codes[b])
            results.append(result)
            cycles.append(used)
            if progress:
                progress(b + 1, codes.shape[0])
        out = collect(results)
        out.update(cycles=np.array(cycles, np.int64), seconds=time.perf_counter() - start)
        return out

    def batch_capacity(self, codes) -> int:
        """Sequences of ``codes`` (B, T, X) the on-chip batch holds at once (0: not one)."""
        info = self.info()
        packed = p.packed_bytes(codes.shape[1] * codes.shape[2], info.x_bits)
        held = p.RUN_HEADER - 1 + packed          # T u16 and the codes, per sequence
        if p.RUN_HEADER + packed > info.max_payload:
            return 0                              # LOAD_BATCH takes a sequence in one frame
        return min(codes.shape[0], info.batch_bytes // held, info.batch_results,
                   (0xFFFF - 6) // p.result_bytes(info, info.has_head))

    def run_batch(self, x) -> dict:
        """Load as many sequences of ``x`` as the batch memory holds and run them back to back;
        the board's own cycle count measures compute without the link. Returns what
        :meth:`run` does for those sequences, ``cycles`` being the whole batch's."""
        codes = self.x_codes(x)
        info = self.info()
        count = self.batch_capacity(codes)
        if count == 0:
            raise BoardError("the board's batch memory cannot hold one sequence of these inputs")
        for b in range(count):
            self.request(p.Command.LOAD_BATCH, p.batch_payload(codes[b], info.x_bits, b == 0),
                         what=f" (sequence {b})")
        try:
            cycles, results = p.batch_reply(self.request(p.Command.RUN_BATCH), info)
        except p.ProtocolError as e:
            raise BoardError(f"the board's RUN_BATCH reply does not decode: {e}") from None
        if len(results) != count:
            raise BoardError(f"RUN_BATCH returned {len(results)} results for {count} sequences")
        out = collect(results)
        out.update(cycles=cycles, sequences=count)
        return out


def collect(results) -> dict:
    """RunResults as arrays per kind: ``labels`` and ``logits``, or ``h``."""
    if not results:
        return {}
    if results[0].h is not None:
        return {"h": np.stack([r.h for r in results])}
    return {"labels": np.array([r.label for r in results], np.int64),
            "logits": np.stack([r.logits for r in results])}


def main(argv=None) -> int:
    from .run import main as run_main
    return run_main(argv)
