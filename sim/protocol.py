"""The load-packet rules of the ``weights`` and ``state`` ports as the testbench's reference
(docs/protocol.md): what each accepted word does, when a packet commits, when x may be
accepted, and the sticky ``error`` bit. The testbench feeds it every transfer in the order the
design accepted them; the golden model loads what it commits."""
from __future__ import annotations

__all__ = ["LoadProtocol", "ProtocolViolation"]


class ProtocolViolation(Exception):
    """The design accepted something the protocol forbids."""


class LoadProtocol:
    """Packet state of the two load ports.

    Parameters
    ----------
    n_words : int
        Words of a weight packet, N = 4H(X+H) + 4H.
    n_hidden : int
        Words of a state packet, H.
    """

    def __init__(self, n_words: int, n_hidden: int):
        self.sizes = {"weights": n_words, "state": n_hidden}
        self.weights_ok = True        # the memory holds a complete matrix (survives reset)
        self.reset()

    def reset(self):
        """``rst``: no packet open, the initial state is zero (valid), ``error`` cleared. The
        weight memory is not reset: a matrix left incomplete stays invalid."""
        self.open, self.words = None, []
        self.state_ok, self.error = True, False

    def x_allowed(self) -> bool:
        return self.open is None and self.weights_ok and self.state_ok

    def blocked_because(self) -> str:
        if self.open:
            return f"in the middle of a {self.open} packet"
        return "the weights are invalid" if not self.weights_ok else "the state is invalid"

    def word(self, port: str, payload: dict):
        """One accepted word of ``port``; returns the packet's payloads when it commits."""
        if self.open not in (None, port):
            raise ProtocolViolation(f"a {port} word was accepted during a {self.open} packet")
        if payload["first"]:
            if self.open == port:
                self.error = True     # the open packet is abandoned
            self.open, self.words = port, []
        elif self.open is None:
            self.error = True         # outside a packet: dropped
            return None
        self.words.append(payload)
        setattr(self, f"{port}_ok", False)
        at_end = len(self.words) == self.sizes[port]
        if at_end and payload["last"]:
            setattr(self, f"{port}_ok", True)
            self.open = None
            return self.words
        if at_end or payload["last"]:
            self.error = True         # refused: `last` early or missing
            self.open = None
        return None
