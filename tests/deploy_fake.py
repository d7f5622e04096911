"""A protocol-level stand-in for a board, for the host driver's own tests: a thread that serves
one TCP client on 127.0.0.1 and answers frames as docs/deploy.md says a board does, computing
with the golden model (one layer). It is not the hardware: the Verilator tests of the real
top (tests/test_deploy_board.py) are. ``flaw`` names a deliberate fault (a mutant) to show the
driver's checks catch it."""
from __future__ import annotations

import socket
import struct
import threading

import numpy as np

from deploy import protocol as p
from deploy.host import expected_identity, layer_weights
from model.cell import FixedLSTM
from rtl.geometry import Geometry
from rtl.top import LSTMCell

__all__ = ["FakeBoard"]

IDLE = 0.2              # seconds of line silence that end a truncated frame


class FakeBoard:
    def __init__(self, config, model, *, lanes: int = 2, flaw: str | None = None,
                 batch_results: int = 8, head_on_chip: bool = True):
        self.config, self.flaw = config, flaw
        (qweights,) = layer_weights(config, model)
        self.geometry = Geometry(config, qweights, lanes)
        self.head = head_on_chip and qweights.head_weight is not None
        ident = expected_identity(config, model)
        self.cell = FixedLSTM(config, qweights)
        X, H = qweights.n_inputs, qweights.n_hidden
        g = self.geometry
        cps = LSTMCell.cycles_per_step_for(g.n_inputs, g.n_hidden, lanes, g.logic_delay)
        layer = p.LayerInfo(X, H, lanes, self.geometry.load_data_bits, self.geometry.n_words,
                            config.fmt("h").bits, config.fmt("c").bits, cps)
        n_classes = ident.n_classes if self.head else 0
        design_hash = bytes(8) if flaw == "hash" else ident.design_hash(n_classes)
        self.info = p.Info(X, H, n_classes, *ident.x_fmt, *ident.h_fmt,
                           *(ident.logit_fmt if self.head else (0, 0)),
                           self.head, cps, cps, p.DEFAULT_MAX_PAYLOAD, 4096, batch_results,
                           50_000_000, 3_000_000, 1000, design_hash, (layer,))
        self.qweights = qweights
        self.packet = None              # words of an open weight packet
        self.weights_ok = True
        self.h = self.c = np.zeros(H, np.int64)
        self.batch = []
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"socket://127.0.0.1:{self.port}"

    def close(self):
        self.server.close()
        self.thread.join(5)

    # -- the line --------------------------------------------------------------------------
    def _serve(self):
        self.server.settimeout(10)
        try:
            conn, _ = self.server.accept()
        except OSError:
            return
        with conn:
            buffer = b""
            while True:
                conn.settimeout(IDLE if buffer else 10)
                try:
                    data = conn.recv(65536)
                except socket.timeout:
                    if buffer:          # the line went idle inside a frame
                        conn.sendall(self._refuse(buffer))
                        buffer = b""
                        continue
                    return
                if not data:
                    return
                buffer += data
                buffer, reply = self._frame(buffer)
                if reply and self.flaw == "hangup" and reply[1] == p.Command.LOAD_WEIGHTS:
                    return              # the board goes away in the middle of a load
                if reply:
                    conn.sendall(reply)

    def _refuse(self, buffer: bytes) -> bytes:
        command = buffer[1] if len(buffer) > 1 else 0
        try:
            p.decode_request(buffer, self.info.max_payload)
            status = p.Status.BAD_SIZE
        except p.ProtocolError as e:
            status = e.status
        return p.encode_reply(command, status)

    def _frame(self, buffer: bytes):
        start = buffer.find(bytes([p.SYNC_REQUEST]))
        if start < 0:
            return b"", None
        buffer = buffer[start:]
        if len(buffer) < p.REQUEST_HEADER:
            return buffer, None
        (length,) = struct.unpack_from("<H", buffer, 2)
        if length > self.info.max_payload:
            return buffer, None           # answered TOO_LONG once the line is idle
        end = p.REQUEST_HEADER + length + p.CRC_BYTES
        if len(buffer) < end:
            return buffer, None
        try:
            command, payload = p.decode_request(buffer[:end], self.info.max_payload)
        except p.ProtocolError as e:
            return b"", self._refuse(buffer[:end]) if e.status else None
        status, out = self._execute(command, payload)
        return buffer[end:], p.encode_reply(command, status, out if status == p.Status.OK else b"")

    # -- commands --------------------------------------------------------------------------
    def _execute(self, command, payload):
        S = p.Status
        try:
            if command == p.Command.INFO:
                return S.OK, self.info.encode()
            if command == p.Command.LOAD_WEIGHTS:
                return self._load_weights(payload), b""
            if command == p.Command.RESET:
                self.h = self.c = np.zeros(self.info.n_hidden, np.int64)
                self.packet = None
                return S.OK, b""
            if command == p.Command.READ_ERROR:
                return S.OK, p.ErrorReport(0, int(not self.weights_ok), 0, 0).encode()
            if command == p.Command.RUN:
                return self._run(payload)
            if command == p.Command.LOAD_BATCH:
                flags, x = self._sequence(payload)
                if flags & p.RunFlags.CLEAR:
                    self.batch = []
                if len(self.batch) >= self.info.batch_results:
                    return S.BATCH_FULL, b""
                self.batch.append(x)
                return S.OK, struct.pack("<H", len(self.batch))
            if command == p.Command.RUN_BATCH:
                results = [self._sequence_result(x, p.RunFlags.FIRST | p.RunFlags.LAST)
                           for x in self.batch]
                cycles = len(self.batch) * self.info.cycles_per_step * self.batch[0].shape[0]
                return S.OK, struct.pack("<HI", len(results), cycles) + b"".join(results)
        except ValueError:
            return S.BAD_SIZE, b""
        return S.UNKNOWN_COMMAND, b""

    def _load_weights(self, payload):
        layer, flags, count = struct.unpack_from("<BBH", payload)
        bits, N = self.info.layers[0].weight_bits, self.info.layers[0].weight_words
        if layer != 0:
            return p.Status.BAD_ARGUMENT
        if len(payload) != p.WEIGHTS_HEADER + p.packed_bytes(count, bits):
            return p.Status.BAD_SIZE
        if flags & p.WeightFlags.FIRST:
            self.packet = []
        elif self.packet is None:
            return p.Status.BAD_ARGUMENT
        self.weights_ok = False
        have = len(self.packet) + count
        if self.flaw == "refuse" and self.packet:
            return p.Status.BAD_SIZE        # a frame after the first refused
        if have > N or (flags & p.WeightFlags.LAST and have != N):
            return p.Status.BAD_SIZE
        self.packet += list(p.unpack_codes(payload[p.WEIGHTS_HEADER:], bits, count))
        if flags & p.WeightFlags.LAST:
            loaded = self.geometry.weights_from_words(self.packet)
            self.cell = FixedLSTM(self.config, type(self.qweights)(
                loaded.weight_ih, loaded.weight_hh, loaded.bias, self.qweights.head_weight,
                self.qweights.head_bias, {}))
            self.packet, self.weights_ok = None, True
        return p.Status.OK

    def _sequence(self, payload):
        flags, T = struct.unpack_from("<BH", payload)
        X, bits = self.info.n_inputs, self.info.x_bits
        if len(payload) != p.RUN_HEADER + p.packed_bytes(T * X, bits):
            raise ValueError("size")
        return flags, p.unpack_codes(payload[p.RUN_HEADER:], bits, T * X).reshape(T, X)

    def _run(self, payload):
        if not self.weights_ok or self.packet is not None:
            return p.Status.X_BLOCKED, b""
        flags, x = self._sequence(payload)
        cycles = self.info.cycles_per_step * x.shape[0]
        return p.Status.OK, struct.pack("<I", cycles) + self._sequence_result(x, flags)

    def _sequence_result(self, x, flags) -> bytes:
        for t, step in enumerate(x):
            if t == 0 and flags & p.RunFlags.FIRST:
                self.h = self.c = np.zeros(self.info.n_hidden, np.int64)
            out = self.cell.step(step[None], self.h[None], self.c[None])
            self.h, self.c = out["h"][0], out["c"][0]
        if self.head and flags & p.RunFlags.LAST:
            logits = np.asarray(self.cell.head(self.h[None])[0], dtype=np.int64)
            label = int(np.argmax(logits))
            if self.flaw == "logit":
                logits = logits.copy()
                logits[-1] += 1
            return bytes([label]) + p.pack_codes(logits, self.info.logit_bits)
        h = self.h.copy()
        if self.flaw == "h":
            h[0] ^= 1
        return p.pack_codes(h, self.info.h_bits)
