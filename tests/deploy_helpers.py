"""Shared helpers for the Amaranth-simulator tests of deploy/: a UART line driver and decoder
working at the bit level on a pin, with a baud rate that may be off by a fraction."""

__all__ = ["line_send", "line_receive", "line_bits", "bytes_producer"]


def line_bits(byte: int, *, stop: int = 1) -> list:
    """The levels of one 8N1 frame: start 0, data LSB first, stop (1 unless a framing error)."""
    return [0] + [(byte >> i) & 1 for i in range(8)] + [stop]


async def line_send(ctx, pin, levels, period: float, *, phase: float = 0.0):
    """Drive ``pin`` with ``levels``, each lasting ``period`` clock cycles (not necessarily an
    integer: the edges fall on the cycle nearest to their ideal time). Returns the phase
    carried over, so consecutive calls keep the sender's own clock."""
    t = phase
    done = 0
    for level in levels:
        ctx.set(pin, level)
        t += period
        while done < round(t):
            await ctx.tick()
            done += 1
    return t - done


async def line_receive(ctx, pin, period: int, count: int, *, limit: int = 10**7):
    """Decode ``count`` 8N1 frames from ``pin`` (ideal receiver sampling at mid-bit); returns
    (bytes, stop bits seen)."""
    out, stops = [], []
    waited = 0
    for _ in range(count):
        while ctx.get(pin):
            await ctx.tick()
            waited += 1
            if waited > limit:
                raise TimeoutError(f"no start bit after {limit} cycles ({len(out)} bytes)")
        await ctx.tick().repeat(period // 2)
        assert ctx.get(pin) == 0, "start bit not low at its middle"
        value = 0
        for i in range(8):
            await ctx.tick().repeat(period)
            value |= ctx.get(pin) << i
        await ctx.tick().repeat(period)
        stops.append(ctx.get(pin))
        out.append(value)
    return bytes(out), stops


def bytes_producer(port, data):
    """A testbench that offers ``data`` on a byte stream port, one byte per transfer."""
    async def producer(ctx):
        for b in data:
            ctx.set(port.payload, b)
            ctx.set(port.valid, 1)
            await ctx.tick().until(port.ready)
        ctx.set(port.valid, 0)
    return producer
