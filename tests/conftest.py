"""Say what `make test` leaves out: the tests marked slow (the long regressions) are deselected by
the default `-m 'not slow'`; the summary names them and the targets that run them, instead of a
bare "N deselected" (or nothing at all under pytest-xdist, whose workers collect)."""
from __future__ import annotations

import pytest

_slow_deselected: set[str] = set()


def pytest_deselected(items):
    _slow_deselected.update(item.nodeid for item in items if item.get_closest_marker("slow"))


def pytest_sessionfinish(session):
    if hasattr(session.config, "workeroutput"):          # an xdist worker: tell the controller
        session.config.workeroutput["slow_deselected"] = sorted(_slow_deselected)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """xdist controller: every worker collected the same tests; take their deselected ones."""
    _slow_deselected.update(getattr(node, "workeroutput", {}).get("slow_deselected", ()))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if hasattr(config, "workeroutput") or not _slow_deselected:
        return
    files = sorted({nodeid.split("::")[0] for nodeid in _slow_deselected})
    terminalreporter.write_line(
        f"{len(_slow_deselected)} slow tests not run (make regress, make regress-batch, "
        f"pytest -m slow): {', '.join(files)}", yellow=True)
