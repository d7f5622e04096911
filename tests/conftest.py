"""Say what `make test` leaves out: the tests marked slow (the long regressions) are deselected by
the default `-m 'not slow'`; the summary names them and the targets that run them, instead of a
bare "N deselected"."""
from __future__ import annotations

_slow_deselected: list[str] = []


def pytest_deselected(items):
    _slow_deselected.extend(item.nodeid for item in items if item.get_closest_marker("slow"))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not _slow_deselected:
        return
    files = sorted({nodeid.split("::")[0] for nodeid in _slow_deselected})
    terminalreporter.write_line(
        f"{len(_slow_deselected)} slow tests not run (make regress, make regress-batch, "
        f"pytest -m slow): {', '.join(files)}", yellow=True)
