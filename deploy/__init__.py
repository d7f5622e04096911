"""On a board: the design ``python -m rtl`` exports, behind a UART host link, as a bitstream for
an open FPGA board (``python -m deploy build``), in Verilator with its UART on a TCP socket
(``python -m deploy sim``), and the host driver for both (``python -m deploy run``,
:class:`deploy.Board`). The frame protocol is :mod:`deploy.protocol` (docs/deploy.md)."""


def __getattr__(name):
    # the host driver is imported on first use: `import deploy` needs neither pyserial nor Amaranth
    if name == "Board":
        from .host import Board
        return Board
    raise AttributeError(f"module 'deploy' has no attribute {name!r}")
