"""Pipeline registers shared by the components."""
from amaranth.hdl import Signal

__all__ = ["delay"]


def delay(m, value, cycles: int, name: str):
    """``value`` delayed by ``cycles`` registers in the sync domain (``cycles`` = 0: itself)."""
    out = value
    for k in range(cycles):
        stage = Signal.like(value, name=f"{name}_d{k + 1}") if isinstance(value, Signal) \
            else Signal(value.shape(), name=f"{name}_d{k + 1}")
        m.d.sync += stage.eq(out)
        out = stage
    return out
