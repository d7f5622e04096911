"""Which configurations of the long regression (``make regress``) one run takes.

``SHARD=k/N`` (0 <= k < N) splits one regression over N runs, for a CI matrix or a cluster:
configuration i (seed SEED + i, 0 <= i < COUNT) belongs to shard k when i mod N == k, so the
N shards partition the configurations, and each shard gets every N-th one (a mix of sizes
and formats, as seeds are independent). Each shard writes its own JSON lines file
(``build/regress-<sim>-shard<k>of<N>.jsonl``); ``python -m bench.merge_regress`` joins them.
"""
from __future__ import annotations

__all__ = ["parse_shard", "shard_seeds", "log_name"]


def parse_shard(text: str | None) -> tuple[int, int]:
    """``"k/N"`` -> (k, N); empty or None -> (0, 1), the whole regression."""
    if not text:
        return 0, 1
    try:
        k, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise ValueError(f"SHARD must look like k/N (e.g. 0/4), not {text!r}") from None
    if n < 1 or not 0 <= k < n:
        raise ValueError(f"SHARD={text}: needs N >= 1 and 0 <= k < N")
    return k, n


def shard_seeds(seed: int, count: int, shard: str | None) -> list[int]:
    """The seeds of shard ``shard`` of configurations ``seed .. seed + count - 1``."""
    k, n = parse_shard(shard)
    return [seed + i for i in range(count) if i % n == k]


def log_name(simulator: str, shard: str | None) -> str:
    """The JSON lines file of one run: one per shard, so shards on one machine do not clash."""
    k, n = parse_shard(shard)
    return f"regress-{simulator}.jsonl" if n == 1 else f"regress-{simulator}-shard{k}of{n}.jsonl"
