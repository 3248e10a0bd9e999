"""The committed sample model and images: shapes, names and float accuracy with onnxruntime."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort

from nnshell.exec import run_float
from nnshell.importers.onnx_importer import load_onnx
from nnshell.input.images import InputOptions, expand_files, iter_batches, label_from_name
from tests.conftest import CALIB_DIR, SAMPLE_MODEL, TEST_DIR

NORM = InputOptions(norm_func="x: (x/255 - 0.5)/0.5")


def _test_set() -> tuple[np.ndarray, np.ndarray]:
    files = expand_files([str(TEST_DIR)])
    xs = np.concatenate([b for _, b in iter_batches(files, NORM, (3, 32, 32), batch_size=256)])
    return xs, np.array([label_from_name(f) for f in files])


def test_sample_data_sizes() -> None:
    calib = expand_files([str(CALIB_DIR)])
    test = expand_files([str(TEST_DIR)])
    assert len(calib) >= 200 and len(test) >= 500
    assert all(label_from_name(f) is not None for f in test)
    model = onnx.load(str(SAMPLE_MODEL))
    names = [n.name for n in model.graph.node]
    assert names[:6] == [
        "/conv1/Conv",
        "/pool/MaxPool",
        "/Relu",
        "/conv2/Conv",
        "/pool_1/MaxPool",
        "/Relu_1",
    ]


def test_float_accuracy_with_onnxruntime_and_nnshell() -> None:
    xs, labels = _test_set()
    sess = ort.InferenceSession(str(SAMPLE_MODEL), providers=["CPUExecutionProvider"])
    ref = sess.run(None, {sess.get_inputs()[0].name: xs})[0]
    acc = float((ref.argmax(1) == labels).mean())
    assert acc >= 0.95, f"onnxruntime float accuracy {acc:.4f}"
    graph = load_onnx(str(SAMPLE_MODEL))
    ours = run_float(graph, {graph.inputs[0]: xs})[graph.outputs[0]]
    np.testing.assert_allclose(ours, ref, atol=1e-4 * float(np.ptp(ref)))
    assert (ours.argmax(1) == ref.argmax(1)).all()
