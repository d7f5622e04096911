"""A byte-level bench for deploy.hostlink.HostLink in the Amaranth simulator: requests in as
bytes, replies out as bytes, decoded with deploy.protocol (the host driver's own decoder)."""
import random

import numpy as np

from deploy import protocol as P
from deploy.hostlink import HostLink, LinkParams, UARTLink, design_info
from model.config import load_config
from model.weights import LSTMStack, quantize_weights
from rtl.stack import build_design
from rtl_helpers import random_weights, simulate

__all__ = ["small_link", "exchange", "other_weights"]


def other_weights(X=3, H=4, seed=0):
    """Quantized random weights of the same sizes (what a weight load sends)."""
    return quantize_weights(random_weights(np.random.default_rng(seed), X, H, scale=1.0),
                            load_config())


def small_link(X=3, H=4, lanes=2, seed=0, *, batch_bytes=256, batch_results=4, timeout=40,
               max_payload=256, layers=1, classes=0, uart=False):
    rng = np.random.default_rng(seed)
    cfg = load_config()
    ws = [random_weights(rng, X if k == 0 else H, H, scale=1.0) for k in range(layers)]
    head = {}
    if classes:
        last = random_weights(rng, H, H, scale=1.0, head_classes=classes)
        head = dict(head_weight=last.head_weight, head_bias=last.head_bias)
    stack = LSTMStack(tuple(ws), **head)
    design = build_design(cfg, stack, lanes=lanes, output_c=False)
    params = LinkParams(clock_hz=1_000_000, baud=115200, divisor=8, timeout=timeout,
                        max_payload=max_payload, batch_bytes=batch_bytes,
                        batch_results=batch_results)
    info = design_info(cfg, stack, design, params)
    qws = [quantize_weights(w, cfg.for_layer(k)) for k, w in enumerate(ws)]
    if classes:
        from model.weights import LSTMWeights
        w = ws[-1]
        qws[-1] = quantize_weights(LSTMWeights(w.weight_ih, w.weight_hh, w.bias,
                                               head["head_weight"], head["head_bias"]),
                                   cfg.for_layer(layers - 1))
    link = (UARTLink if uart else HostLink)(design, info, params)
    return link, cfg, stack, qws, design


def exchange(link, requests, *, gap=0.0, seed=0, reply_limit=200000):
    """Send each request and collect the replies (deploy.protocol.Reply) in order. A request is
    bytes (sent, then its reply awaited), ("raw", bytes) (sent only), ("reply",) (await a reply),
    ("line_error",) (a one-cycle UART line-error pulse) or ("wait", cycles)."""
    rng = random.Random(seed)
    replies = []
    received = bytearray()

    async def monitor(ctx):
        ctx.set(link.tx.ready, 1)
        async for _, _, valid, payload in ctx.tick().sample(link.tx.valid, link.tx.payload):
            if valid:
                received.append(payload)

    async def await_reply(ctx):
        for _ in range(reply_limit):
            await ctx.tick()
            if len(received) >= P.REPLY_HEADER:
                length = int.from_bytes(received[3:5], "little")
                if len(received) >= P.REPLY_HEADER + length + P.CRC_BYTES:
                    break
        else:
            raise TimeoutError(f"no reply to request {len(replies)}")
        await ctx.tick().repeat(3)
        replies.append(P.decode_reply(bytes(received)))
        received.clear()

    async def driver(ctx):
        for req in requests:
            kind = req[0] if isinstance(req, tuple) else "request"
            if kind == "wait":
                await ctx.tick().repeat(req[1])
            elif kind == "reply":
                await await_reply(ctx)
            elif kind == "line_error":
                ctx.set(link.line_error, 1)
                await ctx.tick()
                ctx.set(link.line_error, 0)
            else:
                for b in (req[1] if kind == "raw" else req):
                    while rng.random() < gap:
                        await ctx.tick()
                    ctx.set(link.rx.payload, b)
                    ctx.set(link.rx.valid, 1)
                    await ctx.tick()
                    ctx.set(link.rx.valid, 0)
                if kind == "request":
                    await await_reply(ctx)
        await ctx.tick().repeat(100)

    simulate(link, driver, background=[monitor])
    assert not received, f"{len(received)} unexpected bytes after the last reply"
    return replies
