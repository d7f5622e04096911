"""ONNX models whose weights live in an external data file beside the graph, as
``torch.onnx.export`` writes them by default since torch 2.9 (``m.onnx`` + ``m.onnx.data``).
The fixtures are written with onnx's own external-data helpers (torch is not installed here);
the import must equal the one of the same graph with its weights inside, and a data location
outside the model's folder is refused with one line."""
from __future__ import annotations

import numpy as np
import pytest

from helpers_import import assert_one_line_exit_2, model_cli, onnx_lstm_model, torch_state_dict
from model.importers import load_model_file
from model.weights import InputError

onnx = pytest.importorskip("onnx")

X, H, L, C = 3, 4, 2, 3


def _model():
    return onnx_lstm_model(torch_state_dict(np.random.default_rng(5), X, H, L, C), L)


def _save_external(model, folder, name="m.onnx", location=None):
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, str(folder / name), save_as_external_data=True,
                    all_tensors_to_one_file=True, location=location or f"{name}.data",
                    size_threshold=0)
    return folder / name


def _arrays(stack):
    return [(w.weight_ih, w.weight_hh, w.bias) for w in stack.layers] + [(stack.head_weight, stack.head_bias)]


def test_external_data_beside_the_model_is_read(tmp_path):
    inline = tmp_path / "inline.onnx"
    onnx.save_model(_model(), str(inline))
    external = _save_external(_model(), tmp_path / "ext")
    assert (tmp_path / "ext" / "m.onnx.data").stat().st_size > 0
    assert b"LSTM_W0" in external.read_bytes()                  # the graph names it ...
    assert len(external.read_bytes()) < len(inline.read_bytes()) - 4 * 4 * H * X   # ... but holds no data
    a, b = load_model_file(inline), load_model_file(external)
    for x, y in zip(_arrays(a), _arrays(b), strict=True):
        for u, v in zip(x, y, strict=True):
            np.testing.assert_array_equal(u, v)


def test_external_data_through_the_command_line(tmp_path):
    external = _save_external(_model(), tmp_path / "ext")
    x = np.random.default_rng(1).uniform(-1, 1, (2, 5, X))
    np.save(tmp_path / "x.npy", x)
    run = model_cli("run", "--weights", external, "--inputs", tmp_path / "x.npy", "--out", tmp_path / "o.npz")
    assert run.returncode == 0, run.stderr
    assert np.load(tmp_path / "o.npz")["h"].shape == (2, 5, H)


def _relocated(model, location):
    """Point every external initializer at ``location`` (offsets and lengths kept)."""
    for t in model.graph.initializer:
        for entry in t.external_data:
            if entry.key == "location":
                entry.value = location


@pytest.mark.parametrize("location", ["../outside.data", "sub/../../outside.data", "ABS"])
def test_data_outside_the_models_folder_is_refused(tmp_path, location):
    path = _save_external(_model(), tmp_path / "ext")
    (tmp_path / "outside.data").write_bytes((tmp_path / "ext" / "m.onnx.data").read_bytes())
    location = str(tmp_path / "outside.data") if location == "ABS" else location
    model = onnx.load(str(path), load_external_data=False)
    _relocated(model, location)
    onnx.save_model(model, str(path))
    with pytest.raises(InputError, match="outside the model's folder; refused"):
        load_model_file(path)
    assert_one_line_exit_2(model_cli("report", "--weights", path), "outside the model's folder")


def test_missing_or_short_data_file_is_one_line(tmp_path):
    path = _save_external(_model(), tmp_path / "ext")
    data = tmp_path / "ext" / "m.onnx.data"
    data.write_bytes(data.read_bytes()[:10])
    assert_one_line_exit_2(model_cli("report", "--weights", path), "cannot be read")
    data.unlink()
    assert_one_line_exit_2(model_cli("report", "--weights", path), "'m.onnx.data', which is not in")
