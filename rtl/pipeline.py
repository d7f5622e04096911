"""Pipeline registers shared by the components."""
from amaranth.hdl import Signal
from amaranth.lib.memory import ReadPort, WritePort
from amaranth.utils import ceil_log2

__all__ = ["delay", "read_port", "write_port"]


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


def read_port(memory, name: str, *, domain: str = "sync"):
    """``memory.read_port(domain=...)`` with its signals named ``<name>__addr/data/en`` (the
    plain call names them after the signature: ``$signature__addr`` in the netlist)."""
    sig = ReadPort.Signature(shape=memory.shape, addr_width=ceil_log2(memory.depth))
    return ReadPort(sig, memory=memory, domain=domain, path=(name,))


def write_port(memory, name: str):
    """``memory.write_port()`` with its signals named ``<name>__addr/data/en``."""
    sig = WritePort.Signature(shape=memory.shape, addr_width=ceil_log2(memory.depth))
    return WritePort(sig, memory=memory, domain="sync", path=(name,))
