"""``dump``: every layer's float output for one input, checked against onnxruntime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from nnshell.errors import ShapeError, UnsupportedOpError
from nnshell.importers.onnx_importer import load_onnx
from tests.conftest import SAMPLE_MODEL, TEST_DIR
from tests.helpers_models import tiny_conv_model, unsupported_model

NORM = "x: (x/255 - 0.5)/0.5"


def _ort_all_outputs(path: Path, x: np.ndarray) -> dict[str, np.ndarray]:
    model = onnx.load(str(path))
    names = [o for n in model.graph.node for o in n.output]
    del model.graph.output[:]
    model.graph.output.extend(onnx.helper.make_empty_tensor_value_info(n) for n in names)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return dict(zip(names, sess.run(None, {sess.get_inputs()[0].name: x}), strict=True))


def test_dump_npz_matches_onnxruntime(shell, tmp_path: Path) -> None:  # noqa: ANN001
    img = sorted(TEST_DIR.glob("*.png"))[0]
    out = tmp_path / "d.npz"
    assert shell.run(f"open {SAMPLE_MODEL}")[0]
    ok, text, err = shell.run(f'dump {img} -N "{NORM}" -P {out}')
    assert ok, err
    with np.load(out, allow_pickle=False) as z:
        arrays = dict(z)
    # the reference input read without nnshell's loader: pillow, HWC -> CHW, the NORM formula
    from PIL import Image

    with Image.open(img) as im:
        hwc = np.asarray(im.convert("RGB"), np.float32)
    x = ((hwc.transpose(2, 0, 1) / 255 - 0.5) / 0.5).astype(np.float32)[None]
    assert x.shape == (1, 3, 32, 32)
    ref = _ort_all_outputs(SAMPLE_MODEL, x)
    graph = shell.app.session.graph
    for node in graph.nodes:
        want = ref[node.outputs[0]][0]
        np.testing.assert_allclose(arrays[node.name], want, atol=1e-5 * (np.ptp(want) + 1))
    np.testing.assert_allclose(arrays["output"], ref["output"][0], atol=1e-4)
    assert len(arrays) == len(graph.nodes) + 1


def test_dump_prints_table_and_rejects_wrong_image(shell, tmp_path: Path) -> None:  # noqa: ANN001
    from PIL import Image

    assert shell.run(f"open {SAMPLE_MODEL}")[0]
    img = sorted(TEST_DIR.glob("*.png"))[0]
    ok, text, _ = shell.run(f'dump {img} -N "{NORM}"')
    assert ok and "_conv1_Conv" in text and "6x28x28" in text
    small = tmp_path / "small.png"
    Image.new("RGB", (16, 16)).save(small)
    ok, _, err = shell.run(f"dump {small}")
    assert not ok and err.count("error:") == 1 and "small.png" in err


def test_dynamic_dims_need_input_shapes(tmp_path: Path) -> None:
    path = tiny_conv_model(tmp_path / "t.onnx")
    model = onnx.load(str(path))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_param, dims[3].dim_param = "H", "W"
    onnx.save(model, str(path))
    with pytest.raises(ShapeError, match="--input_shapes"):
        load_onnx(str(path))
    graph = load_onnx(str(path), {"x": [3, 10, 12]})
    assert graph.tensors[graph.outputs[0]].dims == (4, 8, 10)


def test_unsupported_ops_listed_once_with_names(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedOpError) as exc:
        load_onnx(str(unsupported_model(tmp_path / "u.onnx")))
    msg = str(exc.value)
    assert "2 node(s)" in msg and "Celu (_act_Celu)" in msg and "Erf (_act_Erf)" in msg


def test_old_models_with_initializers_as_inputs(tmp_path: Path) -> None:
    path = tiny_conv_model(tmp_path / "t.onnx")
    model = onnx.load(str(path))
    for init in model.graph.initializer:
        model.graph.input.append(
            onnx.helper.make_tensor_value_info(init.name, init.data_type, list(init.dims))
        )
    onnx.save(model, str(path))
    graph = load_onnx(str(path))
    assert graph.inputs == ["x"]
