"""A register slice between two streams, for timing: every signal it hands on either side is
a register (or a register's inverse), so no combinational path crosses it."""
from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["RegisterSlice"]


class RegisterSlice(wiring.Component):
    """One payload register between ``i`` and ``o``: ``o.valid`` and ``o.payload`` are
    registers, ``i.ready`` is ``~o.valid``. A word taken from ``i`` on edge k is offered on
    ``o`` from cycle k + 1; ``i`` is taken again once ``o`` has been taken, so at most one word
    every two cycles passes (enough for streams that carry a word every few cycles)."""

    def __init__(self, shape):
        super().__init__({"i": In(stream.Signature(shape)), "o": Out(stream.Signature(shape))})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.i.ready.eq(~self.o.valid)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [self.o.payload.eq(self.i.payload), self.o.valid.eq(1)]
        return m
