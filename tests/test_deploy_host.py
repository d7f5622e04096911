"""The host driver (deploy.host.Board, python -m deploy run) against a protocol-level stand-in
board (tests/deploy_fake.py): identity checks, loads, the golden comparison and its mutants,
refusals in one line. The driver against the real top in Verilator: tests/test_deploy_board.py."""
import json

import numpy as np
import pytest

pytest.importorskip("serial")

from deploy import protocol as p                                     # noqa: E402
from deploy.host import Board, BoardError                            # noqa: E402
from deploy.run import main                                          # noqa: E402
from deploy_fake import FakeBoard                                    # noqa: E402
from model.config import load_config                                 # noqa: E402
from model.golden import run_golden                                  # noqa: E402
from model.shipped import DEFAULT_WEIGHTS                            # noqa: E402
from model.weights import load_weights, save_weights                 # noqa: E402
from rtl_helpers import random_weights                               # noqa: E402


@pytest.fixture
def digits():
    return load_config(), load_weights(DEFAULT_WEIGHTS)


def run_cli(capsys, board, *args):
    try:
        code = main(["--port", board.url, "--json", *args])
    finally:
        board.close()
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip() else None), err


def test_digits_through_the_driver_match_the_golden_model(capsys, digits):
    fake = FakeBoard(*digits)
    code, r, err = run_cli(capsys, fake, "--limit", "24")
    assert code == 0, err
    assert r["passed"] and r["sequences"] == 24 and r["mismatches"] == 0
    assert r["labels_compared"] == 24 and r["logits_compared"] == 240
    assert r["batch_labels_compared"] == 8            # the fake's batch holds 8
    assert r["accuracy_board"] == r["accuracy_golden"] > 0.8
    assert r["cycles_per_sequence"] == 8 * fake.info.cycles_per_step
    for key in ("images_per_second_compute", "images_per_second_link"):
        assert r[key] > 0


def test_a_board_with_more_lanes_than_columns_is_accepted(capsys, digits):
    """P = 48 > X+H = 40: the board's cycles per step (one more, two row ends per cycle) are
    what this RTL gives, so the identity check passes."""
    fake = FakeBoard(*digits, lanes=48)
    code, r, err = run_cli(capsys, fake, "--limit", "2")
    assert code == 0, err
    assert r["passed"] and fake.info.layers[0].cycles_per_step == 107 + 41 + 6 + 1


@pytest.mark.parametrize("flaw, kind", [("logit", "logits"), ("h", "h")])
def test_a_wrong_code_from_the_board_fails_the_run(capsys, flaw, kind, tmp_path):
    config = load_config()
    weights = random_weights(np.random.default_rng(3), 3, 5,
                             head_classes=4 if kind == "logits" else 0)
    save_weights(tmp_path / "w.npz", weights)
    x = np.random.default_rng(4).normal(0, 1, (5, 4, 3))
    np.save(tmp_path / "x.npy", x)
    code, r, err = run_cli(capsys, FakeBoard(config, weights, flaw=flaw), "--weights",
                           str(tmp_path / "w.npz"), "--inputs", str(tmp_path / "x.npy"))
    assert code == 1 and not r["passed"]
    assert r[f"{kind}_mismatches"] == 5 and r[f"batch_{kind}_mismatches"] == 5
    assert "mismatch: sequence 0 unit " in err and "expected" in err


def test_headless_model_compares_h(capsys, tmp_path):
    config = load_config()
    weights = random_weights(np.random.default_rng(5), 3, 5)
    save_weights(tmp_path / "w.npz", weights)
    np.save(tmp_path / "x.npy", np.random.default_rng(6).normal(0, 1, (6, 3, 3)))
    code, r, err = run_cli(capsys, FakeBoard(config, weights), "--weights",
                           str(tmp_path / "w.npz"), "--inputs", str(tmp_path / "x.npy"))
    assert code == 0, err
    assert r["h_compared"] == 6 * 5 and r["mismatches"] == 0 and "accuracy_board" not in r


def test_a_board_without_the_head_returns_h_and_the_host_applies_the_head(capsys, digits):
    code, r, err = run_cli(capsys, FakeBoard(*digits, head_on_chip=False), "--limit", "12")
    assert code == 0, err
    assert r["h_compared"] == 12 * 32 and r["mismatches"] == 0 and "labels_compared" not in r
    assert r["accuracy_board"] == r["accuracy_golden"]


def test_a_board_for_another_model_is_refused_in_one_line(capsys, digits, tmp_path):
    other = random_weights(np.random.default_rng(7), 8, 16, head_classes=10)
    save_weights(tmp_path / "w.npz", other)
    code, r, err = run_cli(capsys, FakeBoard(*digits), "--weights", str(tmp_path / "w.npz"))
    assert code == 2 and r is None
    assert err.count("\n") == 1 and "built for another model" in err
    assert "X=8 H=32" in err and "X=8 H=16" in err


def test_a_board_with_other_formats_is_refused_by_its_hash(capsys, digits):
    code, r, err = run_cli(capsys, FakeBoard(*digits, flaw="hash"))
    assert code == 2 and "design hash" in err and err.count("\n") == 1


def test_a_refused_weight_packet_blocks_x_and_the_driver_says_so(digits):
    config, model = digits
    fake = FakeBoard(config, model)
    try:
        with Board(fake.url, config=config, timeout=5) as board:
            info = board.info()
            layer = info.layers[0]
            short = p.weights_payloads(0, np.zeros(layer.weight_words - 1, np.int64),
                                       layer.weight_bits, info.max_payload)
            for payload in short[:-1]:
                board.request(p.Command.LOAD_WEIGHTS, payload)
            with pytest.raises(BoardError) as e:
                board.request(p.Command.LOAD_WEIGHTS, short[-1])
            assert e.value.status == p.Status.BAD_SIZE
            x = np.zeros((1, 8, 8))
            with pytest.raises(BoardError) as e:
                board.run(x)
            assert e.value.status == p.Status.X_BLOCKED and "x is blocked" in str(e.value)
            assert board.read_error().weights_invalid == 1
            board.load(DEFAULT_WEIGHTS)          # a complete packet unblocks x
            out = board.run(x)
            golden = run_golden(config, model, x)
            assert np.array_equal(out["logits"], np.asarray(golden.logits_raw, np.int64))
    finally:
        fake.close()


def test_a_weight_frame_refused_mid_packet_says_x_is_blocked(capsys, digits):
    code, r, err = run_cli(capsys, FakeBoard(*digits, flaw="refuse"))
    assert code == 2 and r is None and err.count("\n") == 1
    assert "refused LOAD_WEIGHTS (layer 0 weights, frame 2 of 6): BAD_SIZE" in err
    assert "x stays blocked until a complete weight packet loads" in err


def test_a_board_that_goes_away_is_one_line(capsys, digits):
    code, r, err = run_cli(capsys, FakeBoard(*digits, flaw="hangup"), "--timeout", "3")
    assert code == 2 and r is None and err.count("\n") == 1
    assert "during LOAD_WEIGHTS (layer 0 weights, frame 1 of" in err


def test_an_unreachable_port_is_one_line(capsys):
    code = main(["--port", "socket://127.0.0.1:1", "--limit", "1"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: cannot open socket://127.0.0.1:1") \
        and err.count("\n") == 1
