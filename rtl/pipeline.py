"""Pipeline registers shared by the components."""
from amaranth.hdl import Signal

__all__ = ["delay", "tree_sum"]


def delay(m, value, cycles: int, name: str):
    """``value`` delayed by ``cycles`` registers in the sync domain (``cycles`` = 0: itself)."""
    out = value
    for k in range(cycles):
        stage = Signal.like(value, name=f"{name}_d{k + 1}") if isinstance(value, Signal) \
            else Signal(value.shape(), name=f"{name}_d{k + 1}")
        m.d.sync += stage.eq(out)
        out = stage
    return out


def tree_sum(values):
    """Sum of Amaranth values as a balanced adder tree: log2(n) adder levels, not n - 1 (shorter
    critical path; event-driven simulators also re-evaluate far fewer adders per change)."""
    values = list(values)
    if not values:
        raise ValueError("tree_sum needs at least one value")
    while len(values) > 1:
        pairs = [values[k] + values[k + 1] for k in range(0, len(values) - 1, 2)]
        values = pairs + ([values[-1]] if len(values) % 2 else [])
    return values[0]
