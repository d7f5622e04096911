"""deploy.hostlink at the byte level in the Amaranth simulator: every command against the golden
model, and every bad frame answered with the board still serving."""
import numpy as np
import pytest

from deploy import protocol as P
from deploy_bench import exchange, small_link
from model.cell import FixedLSTM
from rtl.geometry import Geometry

RUN_FL = P.RunFlags.FIRST | P.RunFlags.LAST


@pytest.fixture(scope="module")
def link():
    return small_link()


def req(command, payload=b""):
    return P.encode_request(command, payload)


def golden_last_h(cfg, qw, x, h0=None, c0=None):
    x = np.asarray(x)[None]
    first = np.zeros(x.shape[:2], bool)
    first[:, 0] = True
    return FixedLSTM(cfg, qw).run(x, h0, c0, first)["h"][0, -1]


def test_info_identifies_the_design(link):
    dut, cfg, stack, qws, design = link
    (reply,) = exchange(dut, [req(P.Command.INFO)])
    assert reply.status == P.Status.OK
    info = P.Info.decode(reply.payload)
    assert (info.n_inputs, info.n_hidden, info.n_layers) == (3, 4, 1)
    assert info.cycles_per_step == design.cycles_per_step
    assert info.layers[0].weight_words == design.geometry.n_words
    # the host computes the same hash from its own config and model
    assert info.design_hash == P.design_hash(cfg.as_dict(), [(3, 4)], 0)


def test_run_and_batch_match_the_golden_model(link):
    dut, cfg, stack, qws, design = link
    rng = np.random.default_rng(1)
    x = rng.integers(-3 << 12, 3 << 12, (3, 5, 3))
    reqs = [req(P.Command.INFO)]
    reqs += [req(P.Command.RUN, P.run_payload(x[0], 16, RUN_FL))]
    reqs += [req(P.Command.LOAD_BATCH, P.batch_payload(x[b], 16, b == 0)) for b in range(3)]
    reqs += [req(P.Command.RUN_BATCH)]
    replies = exchange(dut, reqs, gap=0.3)
    assert [r.status for r in replies] == [P.Status.OK] * len(reqs)
    info = P.Info.decode(replies[0].payload)
    cycles, result = P.run_reply(replies[1].payload, info, P.RunFlags.LAST)
    assert list(result.h) == list(golden_last_h(cfg, qws[0], x[0]))
    assert cycles == 5 * design.cycles_per_step
    assert [r.payload for r in replies[2:5]] == [b"\x01\x00", b"\x02\x00", b"\x03\x00"]
    cycles, results = P.batch_reply(replies[5].payload, info)
    assert [list(r.h) for r in results] == [list(golden_last_h(cfg, qws[0], x[b])) for b in range(3)]
    # back to back: the sequences' steps plus a few cycles per sequence to read its length
    assert 15 * design.cycles_per_step <= cycles <= 15 * design.cycles_per_step + 3 * 10
