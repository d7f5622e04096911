"""Cell update: c_t = f * c_{t-1} + i * g and h_t = o * tanh(c_t), with the model's casts."""
from amaranth.hdl import Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from model.activations import Table
from model.config import Config

from .cast import CAST_LATENCY, cast_registered
from .pipeline import delay, product_register
from .pwl import PWLUnit

__all__ = ["CellUpdate"]


class CellUpdate(wiring.Component):
    """One hidden unit's state update per cycle, fully pipelined, bit-exact with
    :meth:`model.cell.FixedLSTM.step`.

    Latency :attr:`latency` = 3 + 2 CAST_LATENCY + PWLUnit.latency = 17 cycles, one carry
    chain or one multiplier per stage::

        stage 1       f * c_prev and i * g, exact
        stage 2       aligned sum
        stage 3-4     cast into the c format (rounding, saturation)
        stage 5-14    tanh(c) in the tanh_c PWL unit
        stage 15      o * tanh(c), exact
        stage 16-17   cast into the h format; c waits beside it

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
    out_valid_next : ``Out(1)``
        What ``out_valid`` will be in the next cycle (its register's input), for registers
        that must equal ``out_valid`` (copies of a wide enable).
    out_valid_next2 : ``Out(1)``
        What ``out_valid`` will be two cycles from now (for a two-level tree of such copies).
    i_next, f_next, g_next, c_prev_next : like ``i``, ``f``, ``g``, ``c_prev``
    i_load, f_load, g_load : ``In(1)``
        The inputs of the registers that drive ``i``, ``f``, ``g`` and ``c_prev`` (each of
        the first three loads ``*_next`` when its ``*_load`` is high; ``c_prev`` loads on
        every edge). With ``dsp_input_registers`` (:class:`rtl.pipeline.ECP5`) the
        multipliers' input registers take these in place of those registers; otherwise they
        are unused.
    """

    latency = 3 + 2 * CAST_LATENCY + PWLUnit.latency

    def __init__(self, config: Config, tanh_c: Table):
        self._config, self._tanh_c = config, tanh_c
        gate, cand = config.fmt("gate"), config.fmt("candidate")
        c, h = config.fmt("c"), config.fmt("h")
        super().__init__({
            "i": In(signed(gate.bits)), "f": In(signed(gate.bits)), "o": In(signed(gate.bits)),
            "g": In(signed(cand.bits)), "c_prev": In(signed(c.bits)), "valid": In(1),
            "c": Out(signed(c.bits)), "h": Out(signed(h.bits)), "out_valid": Out(1),
            "out_valid_next": Out(1), "out_valid_next2": Out(1),
            "i_next": In(signed(gate.bits)), "i_load": In(1),
            "f_next": In(signed(gate.bits)), "f_load": In(1),
            "g_next": In(signed(cand.bits)), "g_load": In(1),
            "c_prev_next": In(signed(c.bits)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        m.submodules.tanh_c = tanh_c = PWLUnit(self._tanh_c)
        L = PWLUnit.latency

        # stage 1: exact products (model: f * c and i * g), multipliers between registers
        f_fc = cfg.fmt("gate").frac + cfg.fmt("c").frac
        f_ig = cfg.fmt("gate").frac + cfg.fmt("candidate").frac
        f_sum = max(f_fc, f_ig)
        # datapath registers are reset-less: only the valid bits beside them reset
        inputs_in_dsp = getattr(platform, "dsp_input_registers", False)
        if inputs_in_dsp:       # the multipliers' input registers are the inputs' registers
            fc = product_register(m, platform, self.f_next, self.c_prev_next, "fc",
                                  input_registers=True, a_enable=self.f_load)
            ig = product_register(m, platform, self.i_next, self.g_next, "ig",
                                  input_registers=True, a_enable=self.i_load,
                                  b_enable=self.g_load)
        else:
            fc = product_register(m, platform, self.f, self.c_prev, "fc")
            ig = product_register(m, platform, self.i, self.g, "ig")

        # stage 2: aligned sum; stages 3-4: one cast into c
        total = Signal(signed(max(len(fc) + f_sum - f_fc, len(ig) + f_sum - f_ig) + 1),
                       reset_less=True)
        m.d.sync += total.eq((fc << (f_sum - f_fc)) + (ig << (f_sum - f_ig)))
        c_new = cast_registered(m, total, f_sum, cfg.spec("c"), "c_new")

        # tanh(c) in the PWL unit; o and c wait beside it
        pre = 2 + CAST_LATENCY                          # stages before the PWL unit
        valid = delay(m, self.valid, pre, "valid", reset_less=False)
        m.d.comb += [tanh_c.q.eq(c_new), tanh_c.q_valid.eq(valid)]
        o_wait = delay(m, self.o, pre + L - int(inputs_in_dsp), "o")

        # o * tanh(c), exact (multiplier between registers); then one cast into h
        f_h = cfg.fmt("gate").frac + cfg.fmt("tanh_c").frac
        if inputs_in_dsp:       # the input registers: o's last wait and tanh_c's output
            oh = product_register(m, platform, o_wait, tanh_c.y_next, "oh", input_registers=True)
        else:
            oh = product_register(m, platform, o_wait, tanh_c.y, "oh")
        h_out = cast_registered(m, oh, f_h, cfg.spec("h"), "h_new")
        c_out = delay(m, c_new, L + 1 + CAST_LATENCY, "c")
        valid_next2 = delay(m, tanh_c.y_valid, CAST_LATENCY - 1, "out_valid", reset_less=False)
        valid_next = delay(m, valid_next2, 1, "out_valid_next", reset_less=False)
        out_valid = delay(m, valid_next, 1, "out_valid_last", reset_less=False)
        m.d.comb += [self.h.eq(h_out), self.c.eq(c_out), self.out_valid.eq(out_valid),
                     self.out_valid_next.eq(valid_next), self.out_valid_next2.eq(valid_next2)]
        return m
