"""Cell update: c_t = f * c_{t-1} + i * g and h_t = o * tanh(c_t), with the model's casts."""
from amaranth.hdl import Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from model.activations import Table
from model.config import Config

from .cast import cast
from .pipeline import delay
from .pwl import PWLUnit

__all__ = ["CellUpdate"]


class CellUpdate(wiring.Component):
    """One hidden unit's state update per cycle, fully pipelined, bit-exact with
    :meth:`model.cell.FixedLSTM.step`.

    Latency :attr:`latency` = 2 + PWL latency + 2 = 9 cycles::

        cycle 0   f * c_prev and i * g, exact
        cycle 1   aligned sum, cast into the c format
        cycle 2-6 tanh(c) in the tanh_c PWL unit
        cycle 7   o * tanh(c), exact
        cycle 8   cast into the h format; registered with c

    Parameters
    ----------
    config : :class:`model.config.Config`
    tanh_c : :class:`model.activations.Table`
        The table for tanh(c) (input format c, output format tanh_c).

    Members
    -------
    i, f, o : ``In(signed(W_gate))``
        Write, keep and read gates in the gate format.
    g : ``In(signed(W_candidate))``
    c_prev : ``In(signed(W_c))``
    valid : ``In(1)``
    c : ``Out(signed(W_c))``
        New cell state, c format.
    h : ``Out(signed(W_h))``
        New hidden state, h format.
    out_valid : ``Out(1)``
    """

    latency = 4 + PWLUnit.latency

    def __init__(self, config: Config, tanh_c: Table):
        self._config, self._tanh_c = config, tanh_c
        gate, cand = config.fmt("gate"), config.fmt("candidate")
        c, h = config.fmt("c"), config.fmt("h")
        super().__init__({
            "i": In(signed(gate.bits)), "f": In(signed(gate.bits)), "o": In(signed(gate.bits)),
            "g": In(signed(cand.bits)), "c_prev": In(signed(c.bits)), "valid": In(1),
            "c": Out(signed(c.bits)), "h": Out(signed(h.bits)), "out_valid": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        m.submodules.tanh_c = tanh_c = PWLUnit(self._tanh_c)

        # cycle 0: exact products (model: f * c and i * g)
        f_fc = cfg.fmt("gate").frac + cfg.fmt("c").frac
        f_ig = cfg.fmt("gate").frac + cfg.fmt("candidate").frac
        f_sum = max(f_fc, f_ig)
        # datapath registers are reset-less: only the valid bits beside them reset
        fc = Signal(signed(len(self.f) + len(self.c_prev)), reset_less=True)
        ig = Signal(signed(len(self.i) + len(self.g)), reset_less=True)
        o1 = Signal.like(self.o, reset_less=True)
        valid1 = Signal()
        m.d.sync += [fc.eq(self.f * self.c_prev), ig.eq(self.i * self.g),
                     o1.eq(self.o), valid1.eq(self.valid)]

        # cycle 1: aligned sum, one cast into c
        c2 = Signal.like(self.c, reset_less=True)
        o2 = Signal.like(self.o, reset_less=True)
        valid2 = Signal()
        total = (fc << (f_sum - f_fc)) + (ig << (f_sum - f_ig))
        m.d.sync += [c2.eq(cast(total, f_sum, cfg.spec("c"))), o2.eq(o1), valid2.eq(valid1)]

        # tanh(c) in the PWL unit; o and c wait beside it
        m.d.comb += [tanh_c.q.eq(c2), tanh_c.q_valid.eq(valid2)]
        o_wait = delay(m, o2, PWLUnit.latency, "o")
        c_wait = delay(m, c2, PWLUnit.latency, "c")

        # o * tanh(c), exact; then one cast into h
        f_h = cfg.fmt("gate").frac + cfg.fmt("tanh_c").frac
        oh = Signal(signed(len(self.o) + len(tanh_c.y)), reset_less=True)
        c_held = Signal.like(self.c, reset_less=True)
        oh_valid = Signal()
        m.d.sync += [oh.eq(o_wait * tanh_c.y), c_held.eq(c_wait), oh_valid.eq(tanh_c.y_valid)]
        h_out = Signal.like(self.h, reset_less=True)
        c_out = Signal.like(self.c, reset_less=True)
        m.d.sync += [h_out.eq(cast(oh, f_h, cfg.spec("h"))), c_out.eq(c_held),
                     self.out_valid.eq(oh_valid)]
        m.d.comb += [self.h.eq(h_out), self.c.eq(c_out)]
        return m
