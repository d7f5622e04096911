"""python -m bench.merge_regress FILE.jsonl... [--out MERGED.jsonl] [--expect SEED:COUNT] [--json]

Joins the JSON lines of regression runs (``make regress``, one file per ``SHARD=k/N`` run,
from one machine or many) into one file, one line per configuration sorted by simulator and
seed, and prints the totals. Every line is self-contained (seed, simulator, sizes, formats,
steps, compared, mismatches, ...), so merging is concatenating; this command also refuses two
different results for the same (simulator, seed), keeps one of two runs that agree (on
everything but the wall time), and with ``--expect`` names the configurations no file holds.

Exit status: 0 when every configuration passed (no mismatches, nothing missing) and none
expected is absent; 1 otherwise (the totals say why); 2 on unreadable input.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from model.cli import ArgumentParser, UsageError, atomic_write, check_target, run_command, shown

KEYS = ("seed", "simulator", "mismatches")
SUMS = ("steps", "compared", "compared_c", "mismatches", "missing", "cycles", "seconds")
#: Fields that may differ between two runs of the same configuration (wall time).
VOLATILE = ("seconds",)


def _results(line: dict) -> dict:
    return {k: v for k, v in line.items() if k not in VOLATILE}


def read_lines(paths) -> dict:
    """(simulator, seed) -> line, from every file; conflicting duplicates are refused."""
    lines: dict = {}
    for path in map(Path, paths):
        try:
            text = path.read_text()
        except OSError as e:
            raise UsageError(f"{path}: {e.strerror}") from None
        for n, raw in enumerate(text.splitlines(), 1):
            if not raw.strip():
                continue
            try:
                line = json.loads(raw)
            except json.JSONDecodeError as e:
                raise UsageError(f"{path}:{n}: not a JSON line ({e.msg})") from None
            if not isinstance(line, dict) or any(k not in line for k in KEYS):
                raise UsageError(f"{path}:{n}: a regression line needs {', '.join(KEYS)}")
            key = (str(line["simulator"]), int(line["seed"]))
            if key in lines and _results(lines[key]) != _results(line):
                raise UsageError(f"{path}:{n}: {key[0]} seed {key[1]} appears twice with "
                                 f"different results")
            lines[key] = line
    return lines


def parse_expect(text: str) -> range:
    try:
        seed, count = (int(v) for v in text.split(":"))
    except ValueError:
        raise UsageError(f"--expect must look like SEED:COUNT (e.g. 0:20), not {text!r}") from None
    if count < 0:
        raise UsageError(f"--expect {text}: COUNT must not be negative")
    return range(seed, seed + count)


def summarize(lines: dict, expect: range | None) -> dict:
    by_sim: dict = {}
    for (sim, seed), line in sorted(lines.items()):
        s = by_sim.setdefault(sim, {"configurations": 0, **dict.fromkeys(SUMS, 0), "failed": []})
        s["configurations"] += 1
        for k in SUMS:
            s[k] += line.get(k, 0) or 0
        if line.get("mismatches") or line.get("missing"):
            s["failed"].append(seed)
    for sim, s in by_sim.items():
        s["seconds"] = round(s["seconds"], 1)
        if expect is not None:
            s["absent"] = [seed for seed in expect if (sim, seed) not in lines]
    return by_sim


def build_parser() -> ArgumentParser:
    ap = ArgumentParser(prog="python -m bench.merge_regress",
                        description="Join regression JSON lines (one file per shard) and total them.")
    ap.add_argument("files", nargs="+", metavar="FILE.jsonl")
    ap.add_argument("--out", metavar="MERGED.jsonl", help="write the merged lines here")
    ap.add_argument("--expect", metavar="SEED:COUNT",
                    help="the configurations the shards should hold together (e.g. 0:20)")
    ap.add_argument("--json", action="store_true", help="print the totals as one JSON object")
    return ap


def cmd_merge(args) -> int:
    out = check_target(args.out, "--out") if args.out else None
    expect = parse_expect(args.expect) if args.expect else None
    lines = read_lines(args.files)
    totals = summarize(lines, expect)
    if out is not None:
        text = "".join(json.dumps(lines[k]) + "\n" for k in sorted(lines))
        atomic_write(out, lambda f: f.write(text), mode="w")
    if args.json:
        print(json.dumps(totals))
    else:
        for sim, s in totals.items():
            print(f"{sim}: {s['configurations']} configurations, {s['steps']:,} steps, "
                  f"{s['compared']:,} h and {s['compared_c']:,} c values compared, "
                  f"{s['mismatches']} mismatches, {s['missing']} missing, {s['cycles']:,} cycles, "
                  f"{s['seconds']} s of simulation")
            if s["failed"]:
                print(f"  failed seeds: {', '.join(map(str, s['failed']))}")
            if s.get("absent"):
                print(f"  absent seeds: {', '.join(map(str, s['absent']))}")
        if expect is not None and not totals:
            print("no regression lines")
        if out is not None:
            print(f"wrote {shown(out)}")
    ok = bool(totals) and all(not s["failed"] and not s.get("absent") for s in totals.values())
    return 0 if ok else 1


def main(argv=None) -> int:
    return run_command(cmd_merge, build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
