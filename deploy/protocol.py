"""The host link's frame protocol: the one definition both the gateware (deploy.gateware) and
the host driver read (docs/deploy.md, "Frame protocol", says the same in words and bit diagrams).

Everything here is plain Python (and numpy for packing codes): no Amaranth, no serial port.

Request (host -> board), all multi-byte fields little-endian::

    byte 0      SYNC_REQUEST (0xA5)
    byte 1      command (Command)
    bytes 2-3   payload length n (u16), n <= the board's max_payload (Info.max_payload)
    bytes 4..   payload (n bytes)
    last 4      CRC-32 of bytes 1 .. 3+n (command, length, payload) as zlib.crc32 computes it

Reply (board -> host), one per request, sent only after the request has ended::

    byte 0      SYNC_REPLY (0x5A)
    byte 1      command (the request's, as received)
    byte 2      status (Status)
    bytes 3-4   payload length m (u16)
    bytes ..    payload (m bytes)
    last 4      CRC-32 of every byte after SYNC_REPLY up to the payload's end

A request whose frame is bad in itself (CRC, truncation, line error, too long, unknown command)
is answered only once the line has been idle for the board's timeout, so the bytes the host was
still sending are drained rather than parsed as a new frame. The host sends the next request
only after the reply to the previous one: the board never holds more than one request.
"""
from __future__ import annotations

import hashlib
import json
import struct
import zlib
from dataclasses import dataclass, fields
from enum import IntEnum

import numpy as np

__all__ = ["SYNC_REQUEST", "SYNC_REPLY", "VERSION", "Command", "Status", "RunFlags", "WeightFlags",
           "ProtocolError", "DEFAULT_MAX_PAYLOAD", "DEFAULT_BAUD", "MAX_BAUD", "MIN_BAUD",
           "REQUEST_HEADER", "REPLY_HEADER", "CRC_BYTES", "MAX_LAYERS",
           "crc32", "encode_request", "decode_request", "encode_reply", "decode_reply", "read_reply",
           "pack_codes", "unpack_codes", "packed_bytes",
           "weights_payloads", "state_payload", "run_payload", "batch_payload", "run_reply",
           "batch_reply", "error_report", "ErrorReport", "RunResult",
           "LayerInfo", "Info", "design_hash", "WEIGHTS_HEADER", "RUN_HEADER", "CYCLES_BYTES"]

VERSION = 1
SYNC_REQUEST = 0xA5
SYNC_REPLY = 0x5A
REQUEST_HEADER = 4          # sync, command, length (u16)
REPLY_HEADER = 5            # sync, command, status, length (u16)
CRC_BYTES = 4
MAX_LAYERS = 8              # READ_ERROR's bit masks are one byte
DEFAULT_MAX_PAYLOAD = 2048  # one ECP5 DP16KD as 2048 x 8 bits: the receive buffer
MIN_BAUD = 115200
DEFAULT_BAUD = 115200
MAX_BAUD = 3_000_000        # the ULX3S's FT231X USB-UART bridge
WEIGHTS_HEADER = 4          # LOAD_WEIGHTS payload: layer u8, flags u8, count u16
RUN_HEADER = 3              # RUN / LOAD_BATCH payload: flags u8, steps T u16
CYCLES_BYTES = 4            # on-chip cycle counts are u32


class Command(IntEnum):
    """Request codes (byte 1 of a frame)."""
    INFO = 0x01          # -> Info.encode()
    LOAD_WEIGHTS = 0x02  # layer, flags (FIRST, LAST), count, count weight words: part of a packet
    LOAD_STATE = 0x03    # layer, H state words (h, c): one whole state packet
    RUN = 0x04           # flags (FIRST, LAST), T, T*X x codes -> cycles, the last step's result
    LOAD_BATCH = 0x05    # flags (CLEAR), T, T*X x codes: one sequence into on-chip memory
    RUN_BATCH = 0x06     # -> count, cycles, each held sequence's result
    RESET = 0x07         # reset the design (state, h, c, error, open packet; not the weights)
    READ_ERROR = 0x08    # -> ErrorReport


class Status(IntEnum):
    """Reply status codes (byte 2 of a reply). Anything but OK changed nothing on the board."""
    OK = 0x00
    BAD_CRC = 0x01          # the frame's CRC-32 does not match
    TIMEOUT = 0x02          # the frame stopped before its end (line idle for the timeout)
    LINE_ERROR = 0x03       # a UART framing error, break or overrun inside a frame
    UNKNOWN_COMMAND = 0x04  # the command code is not a Command
    TOO_LONG = 0x05         # the length exceeds the board's receive buffer (max_payload)
    BAD_SIZE = 0x06         # the payload's size does not fit the command (or the packet's size)
    BAD_ARGUMENT = 0x07     # a layer beyond L, a packet continued that was not started, ...
    X_BLOCKED = 0x08        # RUN refused: a weight packet is open or was refused (weights invalid)
    BATCH_FULL = 0x09       # LOAD_BATCH: the sequence or its result does not fit on chip


class WeightFlags(IntEnum):
    FIRST = 0x01   # this frame's first word opens the layer's weight packet
    LAST = 0x02    # this frame's last word closes it (the packet must then hold exactly N words)


class RunFlags(IntEnum):
    FIRST = 0x01   # RUN / LOAD_BATCH: the first step starts a sequence (initial state)
    LAST = 0x02    # RUN: the last step ends the sequence (the head's label and logits)
    CLEAR = 0x04   # LOAD_BATCH: empty the held batch before adding this sequence


class ProtocolError(Exception):
    """A frame that does not decode; ``status`` is what the board answers to it."""

    def __init__(self, status: Status, message: str):
        super().__init__(message)
        self.status = status


def crc32(data: bytes) -> int:
    """CRC-32 (IEEE 802.3, reflected, init and final XOR 0xFFFFFFFF): zlib's."""
    return zlib.crc32(data) & 0xFFFFFFFF


# ---- frames --------------------------------------------------------------------------------

def encode_request(command: int, payload: bytes = b"") -> bytes:
    body = struct.pack("<BH", command, len(payload)) + bytes(payload)
    return bytes([SYNC_REQUEST]) + body + struct.pack("<I", crc32(body))


def decode_request(frame: bytes, max_payload: int = DEFAULT_MAX_PAYLOAD) -> tuple[int, bytes]:
    """(command, payload) of one whole request frame, or ProtocolError with the board's status
    (the reference the gateware receiver is tested against)."""
    if len(frame) < REQUEST_HEADER or frame[0] != SYNC_REQUEST:
        raise ProtocolError(Status.TIMEOUT, "not a whole request header")
    command, length = struct.unpack_from("<BH", frame, 1)
    if length > max_payload:
        raise ProtocolError(Status.TOO_LONG, f"length {length} exceeds {max_payload}")
    end = REQUEST_HEADER + length
    if len(frame) < end + CRC_BYTES:
        raise ProtocolError(Status.TIMEOUT, f"frame of {len(frame)} bytes, header says {end + 4}")
    if crc32(frame[1:end]) != struct.unpack_from("<I", frame, end)[0]:
        raise ProtocolError(Status.BAD_CRC, "CRC-32 mismatch")
    if command not in Command._value2member_map_:
        raise ProtocolError(Status.UNKNOWN_COMMAND, f"unknown command 0x{command:02x}")
    return command, bytes(frame[REQUEST_HEADER:end])


def encode_reply(command: int, status: int, payload: bytes = b"") -> bytes:
    if len(payload) > 0xFFFF:
        raise ValueError(f"a reply payload holds at most 65535 bytes, not {len(payload)}")
    body = struct.pack("<BBH", command, status, len(payload)) + bytes(payload)
    return bytes([SYNC_REPLY]) + body + struct.pack("<I", crc32(body))


@dataclass(frozen=True)
class Reply:
    command: int
    status: Status
    payload: bytes


def read_reply(read) -> Reply:
    """One reply from ``read(n) -> bytes`` (a serial port's read: fewer bytes means timeout).

    Bytes before SYNC_REPLY are skipped. Raises ProtocolError(TIMEOUT) when ``read`` runs dry and
    ProtocolError(BAD_CRC) for a corrupted reply."""
    def exactly(n):
        data = read(n)
        if len(data) != n:
            raise ProtocolError(Status.TIMEOUT, f"reply ended after {len(data)} of {n} bytes")
        return data
    skipped = 0
    while exactly(1)[0] != SYNC_REPLY:
        skipped += 1
        if skipped > 1 << 20:
            raise ProtocolError(Status.TIMEOUT, "no reply sync byte")
    head = exactly(2)
    raw_len = exactly(2)
    length = int.from_bytes(raw_len, "little")
    payload = exactly(length)
    (crc,) = struct.unpack("<I", exactly(CRC_BYTES))
    if crc32(head + raw_len + payload) != crc:
        raise ProtocolError(Status.BAD_CRC, "reply CRC-32 mismatch")
    return Reply(head[0], Status(head[1]) if head[1] in Status._value2member_map_ else head[1],
                 payload)


def decode_reply(frame: bytes) -> Reply:
    view = memoryview(bytes(frame))
    pos = 0

    def read(n):
        nonlocal pos
        out = bytes(view[pos:pos + n])
        pos += len(out)
        return out
    reply = read_reply(read)
    if pos != len(frame):
        raise ProtocolError(Status.BAD_SIZE, f"{len(frame) - pos} bytes after the reply")
    return reply


# ---- packed codes --------------------------------------------------------------------------

def packed_bytes(count: int, bits: int) -> int:
    """Bytes that ``count`` codes of ``bits`` bits take packed (the last byte zero-padded)."""
    return (count * bits + 7) // 8


def pack_codes(codes, bits: int) -> bytes:
    """Two's-complement codes at ``bits`` bits each, not padded: code k occupies bits
    [k*bits, (k+1)*bits) of the payload, where payload bit i is bit i mod 8 of byte i div 8
    (little-endian bit order, the same order as the design's stream payloads)."""
    codes = np.asarray(codes, dtype=np.int64).reshape(-1)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if codes.size and (codes.min() < lo or codes.max() > hi):
        raise ValueError(f"codes must fit {bits} signed bits")
    unsigned = codes.astype(np.uint64) & np.uint64((1 << bits) - 1) if bits < 64 else codes
    bitmat = (unsigned[:, None] >> np.arange(bits, dtype=np.uint64)) & np.uint64(1)
    return np.packbits(bitmat.astype(np.uint8).reshape(-1), bitorder="little").tobytes()


def unpack_codes(data: bytes, bits: int, count: int, *, signed: bool = True) -> np.ndarray:
    """The inverse of :func:`pack_codes`: ``count`` codes (int64), sign-extended if ``signed``."""
    need = packed_bytes(count, bits)
    if len(data) < need:
        raise ProtocolError(Status.BAD_SIZE, f"{count} codes of {bits} bits need {need} bytes, "
                                             f"not {len(data)}")
    allbits = np.unpackbits(np.frombuffer(bytes(data[:need]), dtype=np.uint8), bitorder="little")
    bitmat = allbits[:count * bits].reshape(count, bits).astype(np.int64)
    values = (bitmat << np.arange(bits, dtype=np.int64)).sum(axis=1)
    if signed:
        values = np.where(values >= 1 << (bits - 1), values - (1 << bits), values)
    return values.astype(np.int64)


# ---- payloads ------------------------------------------------------------------------------

def weights_payloads(layer: int, words, bits: int, max_payload: int = DEFAULT_MAX_PAYLOAD):
    """LOAD_WEIGHTS payloads carrying one layer's whole weight packet (the codes of
    rtl.geometry.Geometry.load_words, each at ``bits`` = W_d bits): FIRST on the first frame,
    LAST on the last, as many words per frame as fit ``max_payload``."""
    words = np.asarray(words, dtype=np.int64).reshape(-1)
    per_frame = (max_payload - WEIGHTS_HEADER) * 8 // bits
    if per_frame < 1:
        raise ValueError(f"max_payload {max_payload} holds no {bits}-bit word")
    out = []
    starts = range(0, max(len(words), 1), per_frame)
    for i, start in enumerate(starts):
        chunk = words[start:start + per_frame]
        flags = (WeightFlags.FIRST if i == 0 else 0) | (WeightFlags.LAST if i == len(starts) - 1 else 0)
        out.append(struct.pack("<BBH", layer, flags, len(chunk)) + pack_codes(chunk, bits))
    return out


def state_payload(layer: int, h_codes, c_codes, h_bits: int, c_bits: int) -> bytes:
    """LOAD_STATE: layer u8, then H words, word u = h0[u] (h_bits) then c0[u] (c_bits), packed
    like the design's state stream payload (fields from bit 0: h, c)."""
    h = np.asarray(h_codes, dtype=np.int64).reshape(-1)
    c = np.asarray(c_codes, dtype=np.int64).reshape(-1)
    if h.shape != c.shape:
        raise ValueError("h0 and c0 must have the same length")
    # each word is one (h_bits + c_bits)-bit field: h in its low bits
    hmask, cmask = (1 << h_bits) - 1, (1 << c_bits) - 1
    words = [(int(hu) & hmask) | ((int(cu) & cmask) << h_bits) for hu, cu in zip(h, c)]
    width = h_bits + c_bits
    bits = np.array([(w >> b) & 1 for w in words for b in range(width)], dtype=np.uint8)
    return bytes([layer]) + np.packbits(bits, bitorder="little").tobytes()


def run_payload(x_codes, bits: int, flags: int) -> bytes:
    """RUN / LOAD_BATCH: flags u8, T u16, then the (T, X) x codes packed at the x width, step
    by step (code k = t*X + j)."""
    x = np.asarray(x_codes, dtype=np.int64)
    if x.ndim != 2:
        raise ValueError(f"x codes must be (T, X), not {x.shape}")
    return struct.pack("<BH", flags, x.shape[0]) + pack_codes(x, bits)


@dataclass(frozen=True)
class RunResult:
    """One sequence's result: the last step's h codes, or (with the head) label and logits."""
    h: np.ndarray | None
    label: int | None
    logits: np.ndarray | None


def result_bytes(info: "Info", with_head: bool) -> int:
    """Size of one result in a reply: label u8 + C logit codes (packed), or H h codes (packed)."""
    if with_head:
        return 1 + packed_bytes(info.n_classes, info.logit_bits)
    return packed_bytes(info.n_hidden, info.h_bits)


def _result(data: bytes, info: "Info", with_head: bool) -> RunResult:
    if with_head:
        return RunResult(None, data[0], unpack_codes(data[1:], info.logit_bits, info.n_classes))
    return RunResult(unpack_codes(data, info.h_bits, info.n_hidden), None, None)


def run_reply(payload: bytes, info: "Info", flags: int) -> tuple[int, RunResult]:
    """RUN's OK payload: cycles u32, then the result (the head's when the design has one and the
    request had LAST, else the last step's h)."""
    with_head = info.has_head and bool(flags & RunFlags.LAST)
    need = CYCLES_BYTES + result_bytes(info, with_head)
    if len(payload) != need:
        raise ProtocolError(Status.BAD_SIZE, f"RUN reply of {len(payload)} bytes, expected {need}")
    return struct.unpack_from("<I", payload)[0], _result(payload[CYCLES_BYTES:], info, with_head)


def batch_payload(x_codes, bits: int, clear: bool) -> bytes:
    """LOAD_BATCH: one whole sequence (FIRST and LAST implied); CLEAR empties the batch first."""
    return run_payload(x_codes, bits, RunFlags.CLEAR if clear else 0)


def batch_reply(payload: bytes, info: "Info") -> tuple[int, list]:
    """RUN_BATCH's OK payload: count u16, cycles u32 (first x to last result), then ``count``
    results as in RUN with LAST."""
    count, cycles = struct.unpack_from("<HI", payload)
    size = result_bytes(info, info.has_head)
    if len(payload) != 6 + count * size:
        raise ProtocolError(Status.BAD_SIZE, f"RUN_BATCH reply of {len(payload)} bytes for "
                                             f"{count} results of {size}")
    return cycles, [_result(payload[6 + k * size:6 + (k + 1) * size], info, info.has_head)
                    for k in range(count)]


@dataclass(frozen=True)
class ErrorReport:
    """READ_ERROR's payload: the design's sticky error bit per layer (the core's load-packet
    error), which layers' weights are invalid (x blocked), the last non-OK status the board
    answered and how many requests it refused since power-up or RESET."""
    core_error: int
    weights_invalid: int
    last_status: int
    refused: int

    FORMAT = "<BBBH"

    def encode(self) -> bytes:
        return struct.pack(self.FORMAT, self.core_error, self.weights_invalid, self.last_status,
                           self.refused)


def error_report(payload: bytes) -> ErrorReport:
    if len(payload) != struct.calcsize(ErrorReport.FORMAT):
        raise ProtocolError(Status.BAD_SIZE, f"READ_ERROR reply of {len(payload)} bytes")
    return ErrorReport(*struct.unpack(ErrorReport.FORMAT, payload))


# ---- INFO ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class LayerInfo:
    """One layer as the board holds it: sizes, lanes, load word widths, cycles per step."""
    n_inputs: int
    n_hidden: int
    lanes: int
    weight_bits: int       # W_d: one weight-packet word
    weight_words: int      # N = 4H(X+H) + 4H
    h_bits: int            # the state packet's h field
    c_bits: int            # the state packet's c field
    cycles_per_step: int

    FORMAT = "<HHHBIBBI"


@dataclass(frozen=True)
class Info:
    """INFO's payload: what the bitstream computes and its limits. ``design_hash`` identifies the
    model's config and layout (:func:`design_hash`): a host refuses a board built for another."""
    n_inputs: int
    n_hidden: int
    n_classes: int          # 0: no head, the results are h
    x_bits: int
    x_frac: int
    h_bits: int
    h_frac: int
    logit_bits: int         # 0 without a head
    logit_frac: int
    has_last: bool          # the x stream carries `last` (designs with a head)
    cycles_per_step: int    # the stack's steady-state step period
    latency: int            # from x_t to its output (the sum over layers)
    max_payload: int        # receive buffer: the longest request payload
    batch_bytes: int        # LOAD_BATCH memory (sequences as RUN payloads without the flags)
    batch_results: int      # result slots for RUN_BATCH
    clock_hz: int
    baud: int
    timeout_cycles: int     # line idle this long inside a frame: TIMEOUT
    design_hash: bytes      # 8 bytes
    layers: tuple = ()

    HEAD = "<BBHHHBBBBBBBIIHIHIII8s"

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    @property
    def has_head(self) -> bool:
        return self.n_classes > 0

    def encode(self) -> bytes:
        out = struct.pack(self.HEAD, VERSION, len(self.layers), self.n_inputs, self.n_hidden,
                          self.n_classes, self.x_bits, self.x_frac, self.h_bits, self.h_frac,
                          self.logit_bits, self.logit_frac, int(self.has_last),
                          self.cycles_per_step, self.latency, self.max_payload, self.batch_bytes,
                          self.batch_results, self.clock_hz, self.baud, self.timeout_cycles,
                          self.design_hash)
        for layer in self.layers:
            out += struct.pack(LayerInfo.FORMAT, *(getattr(layer, f.name) for f in fields(layer)))
        return out

    @classmethod
    def decode(cls, payload: bytes) -> "Info":
        head = struct.calcsize(cls.HEAD)
        per = struct.calcsize(LayerInfo.FORMAT)
        if len(payload) < head:
            raise ProtocolError(Status.BAD_SIZE, f"INFO reply of {len(payload)} bytes")
        (version, n_layers, *values) = struct.unpack_from(cls.HEAD, payload)
        if version != VERSION:
            raise ProtocolError(Status.BAD_ARGUMENT, f"board speaks protocol version {version}, "
                                                     f"this host {VERSION}")
        if len(payload) != head + n_layers * per:
            raise ProtocolError(Status.BAD_SIZE, f"INFO reply of {len(payload)} bytes for "
                                                 f"{n_layers} layers")
        layers = tuple(LayerInfo(*struct.unpack_from(LayerInfo.FORMAT, payload, head + k * per))
                       for k in range(n_layers))
        names = [f.name for f in fields(cls)][:-1]
        info = dict(zip(names, values))
        info["has_last"] = bool(info["has_last"])
        return cls(**info, layers=layers)


def design_hash(config: dict, layer_sizes, n_classes: int) -> bytes:
    """8 bytes identifying what the board computes: SHA-256 of the canonical JSON of the
    config (``model.config.Config.as_dict()``, lanes left out: they change speed, not
    integers), the (X, H) of each layer and the head's class count."""
    config = {k: v for k, v in config.items() if k != "rtl"}
    text = json.dumps({"config": config, "layers": [list(map(int, s)) for s in layer_sizes],
                       "classes": int(n_classes)}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).digest()[:8]
