"""Weights kept beside a graph (ONNX external data, as imported bundles share them): accepted
only as a plain regular file next to the model holding exactly the tensor's bytes; anything
else is refused in one line before onnxruntime opens the file."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from engine.runtime.errors import BundleError
from engine.runtime.onnx_guard import check_onnx
from engine.runtime.sessions import create_session

W = np.arange(6, dtype="<f4") / 3


def _model(folder, location="w.weights", offset=64, length=W.nbytes, data=True):
    if data:
        blob = bytearray(256)
        blob[64 : 64 + W.nbytes] = W.tobytes()
        (folder / "w.weights").write_bytes(bytes(blob))
    w = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[6])
    w.data_location = TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", offset), ("length", length)):
        w.external_data.add(key=k, value=str(v))
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [6])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [6])
    graph = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g", [x], [y], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    path = folder / "model.onnx"
    path.write_bytes(model.SerializeToString())
    return path


def test_weights_beside_the_graph_are_read(tmp_path):
    path = _model(tmp_path)
    check_onnx(path)
    session = create_session(path, "cpu")[0]
    np.testing.assert_array_equal(session.run(None, {"x": np.ones(6, np.float32)})[0], W + 1)


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (dict(location="../w.weights"), "outside the model's folder"),
        (dict(location="/etc/passwd"), "outside the model's folder"),
        (dict(location="sub/w.weights"), "outside the model's folder"),
        (dict(location="absent.weights"), "that is missing"),
        (dict(offset=240), "not whole inside w.weights"),
        (dict(length=8), "not whole inside w.weights"),
        (dict(offset=-4), "not whole inside w.weights"),
        (dict(offset="x"), "damaged external data"),
    ],
)
def test_other_external_data_is_refused(tmp_path, change, why):
    path = _model(tmp_path, **change)
    with pytest.raises(BundleError, match=why) as refused:
        create_session(path, "cpu")
    assert "initializer 'w'" in str(refused.value)
    assert "\n" not in str(refused.value)


def test_a_link_or_a_device_as_the_weights_file_is_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(bytes(256))
    folder = tmp_path / "bundle"
    folder.mkdir()
    (folder / "w.weights").symlink_to(outside / "secret")
    path = _model(folder, data=False)
    with pytest.raises(BundleError, match="not a plain file"):
        check_onnx(path)
    (folder / "w.weights").unlink()
    (folder / "w.weights").mkdir()
    with pytest.raises(BundleError, match="not a plain file"):
        check_onnx(path)


def test_onnx_reads_what_the_guard_passes(tmp_path):
    """The same file through the onnx package (other programs read bundles this way)."""
    model = onnx.load(str(_model(tmp_path)))
    np.testing.assert_array_equal(onnx.numpy_helper.to_array(model.graph.initializer[0]), W)
