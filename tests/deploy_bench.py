"""A byte-level bench for deploy.hostlink.HostLink in the Amaranth simulator: requests in as
bytes, replies out as bytes, decoded with deploy.protocol (the host driver's own decoder)."""
import random

import numpy as np

from deploy import protocol as P
from deploy.hostlink import HostLink, LinkParams, design_info
from model.config import load_config
from model.weights import LSTMStack, quantize_weights
from rtl.stack import build_design
from rtl_helpers import random_weights, simulate

__all__ = ["small_link", "exchange"]


def small_link(X=3, H=4, lanes=2, seed=0, *, batch_bytes=256, batch_results=4, timeout=40,
               max_payload=256, layers=1):
    rng = np.random.default_rng(seed)
    cfg = load_config()
    ws = [random_weights(rng, X if k == 0 else H, H, scale=1.0) for k in range(layers)]
    stack = LSTMStack(tuple(ws))
    design = build_design(cfg, stack, lanes=lanes, output_c=False)
    params = LinkParams(clock_hz=1_000_000, baud=115200, divisor=8, timeout=timeout,
                        max_payload=max_payload, batch_bytes=batch_bytes,
                        batch_results=batch_results)
    info = design_info(cfg, stack, design, params)
    qws = [quantize_weights(w, cfg.for_layer(k)) for k, w in enumerate(ws)]
    return HostLink(design, info, params), cfg, stack, qws, design


def exchange(link, requests, *, gap=0.0, seed=0, reply_limit=200000):
    """Send each request (bytes; or ("raw", bytes) to send without waiting for a reply, or
    ("wait", cycles)) and collect the replies (deploy.protocol.Reply) in order."""
    rng = random.Random(seed)
    replies = []
    received = bytearray()

    async def monitor(ctx):
        ctx.set(link.tx.ready, 1)
        async for _, _, valid, payload in ctx.tick().sample(link.tx.valid, link.tx.payload):
            if valid:
                received.append(payload)

    async def driver(ctx):
        for req in requests:
            if isinstance(req, tuple) and req[0] == "wait":
                await ctx.tick().repeat(req[1])
                continue
            raw = isinstance(req, tuple)
            data = req[1] if raw else req
            for b in data:
                while rng.random() < gap:
                    await ctx.tick()
                ctx.set(link.rx.payload, b)
                ctx.set(link.rx.valid, 1)
                await ctx.tick()
                ctx.set(link.rx.valid, 0)
            if raw:
                continue
            # wait for one whole reply
            start = len(received)
            for _ in range(reply_limit):
                await ctx.tick()
                got = bytes(received[start:])
                if len(got) >= P.REPLY_HEADER:
                    length = int.from_bytes(got[3:5], "little")
                    if len(got) >= P.REPLY_HEADER + length + P.CRC_BYTES:
                        break
            else:
                raise TimeoutError(f"no reply to request {len(replies)}")
            await ctx.tick().repeat(3)
            got = bytes(received[start:])
            del received[start:]
            replies.append(P.decode_reply(got))

    simulate(link, driver, background=[monitor])
    assert not received, f"{len(received)} unexpected bytes after the last reply"
    return replies
