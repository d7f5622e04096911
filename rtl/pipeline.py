"""Pipeline registers shared by the components."""
from amaranth.hdl import Signal
from amaranth.lib.memory import ReadPort, WritePort
from amaranth.utils import ceil_log2

__all__ = ["delay", "read_port", "tree_sum", "write_port"]


def delay(m, value, cycles: int, name: str, *, reset_less: bool = True):
    """``value`` delayed by ``cycles`` registers in the sync domain (``cycles`` = 0: itself).

    The registers are ``reset_less`` unless asked: a datapath value is only read beside the
    valid bit that travels with it, and only that valid bit needs a reset."""
    out = value
    for k in range(cycles):
        stage = Signal(value.shape(), name=f"{name}_d{k + 1}", reset_less=reset_less)
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


def read_port(memory, name: str, *, domain: str = "sync"):
    """``memory.read_port(domain=...)`` with its signals named ``<name>__addr/data/en`` (the
    plain call names them after the signature: ``$signature__addr`` in the netlist)."""
    sig = ReadPort.Signature(shape=memory.shape, addr_width=ceil_log2(memory.depth))
    return ReadPort(sig, memory=memory, domain=domain, path=(name,))


def write_port(memory, name: str):
    """``memory.write_port()`` with its signals named ``<name>__addr/data/en``."""
    sig = WritePort.Signature(shape=memory.shape, addr_width=ceil_log2(memory.depth))
    return WritePort(sig, memory=memory, domain="sync", path=(name,))
