"""Input options real models need (issue 17): per-channel lists in -N, BGR channel order, and
--input_shapes on the nnshell command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nnshell.errors import ExpressionError
from nnshell.input.expr import compile_expression
from nnshell.input.images import InputOptions, iter_batches, load_image
from tests.conftest import ROOT

IMAGENET = "x: (x/255 - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]"
MEAN = np.array([0.485, 0.456, 0.406])
STD = np.array([0.229, 0.224, 0.225])


def _rgb(tmp_path: Path, name: str = "img.png") -> tuple[str, np.ndarray]:
    arr = np.random.default_rng(0).integers(0, 256, (8, 10, 3), dtype=np.uint8)
    path = str(tmp_path / name)
    Image.fromarray(arr, "RGB").save(path)
    return path, arr


def test_lists_broadcast_over_the_channel_axis() -> None:
    f = compile_expression(IMAGENET)
    assert f.channels == 3
    hwc = np.random.default_rng(1).uniform(0, 255, (4, 5, 3))
    want = (hwc / 255 - MEAN) / STD
    np.testing.assert_allclose(f(hwc, channel_axis=-1), want, rtol=1e-6)
    chw = hwc.transpose(2, 0, 1)
    np.testing.assert_allclose(f(chw, channel_axis=0), want.transpose(2, 0, 1), rtol=1e-6)


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("x - [x, 1, 2]", "x inside a list"),
        ("x - [1, 2] + [1, 2, 3]", "lists of 2 and 3 values"),
        ("x - [[1], [2]]", "nested list"),
        ("x ** [1, 2]", "per-channel exponent"),
        ("x - [1, 'a']", "string"),
        ("x - [1, __import__('os')]", "unknown function"),
    ],
)
def test_lists_stay_on_the_whitelist(text: str, found: str) -> None:
    with pytest.raises(ExpressionError, match=found):
        compile_expression(text)


def test_list_of_wrong_length_names_the_file(tmp_path: Path) -> None:
    path, _ = _rgb(tmp_path)
    with pytest.raises(ExpressionError, match="no axis of 4 channels"):
        load_image(path, InputOptions(norm_func="x - [1, 2, 3, 4]"), (3, 8, 10))


def test_imagenet_normalisation_of_a_png(tmp_path: Path) -> None:
    path, arr = _rgb(tmp_path)
    want = ((arr / 255 - MEAN) / STD).transpose(2, 0, 1)
    out = load_image(path, InputOptions(norm_func=IMAGENET, transpose=True), (3, 8, 10))
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-6)
    ((_, batch),) = list(iter_batches([path], InputOptions(norm_func=IMAGENET), (3, 8, 10)))
    np.testing.assert_allclose(batch[0], want, rtol=1e-5, atol=1e-6)  # the batched path too


def test_bgr_mode_reverses_the_channels(tmp_path: Path) -> None:
    path, arr = _rgb(tmp_path)
    rgb = load_image(path, InputOptions(mode="RGB"), (8, 10, 3))
    bgr = load_image(path, InputOptions(mode="BGR"), (8, 10, 3))
    np.testing.assert_array_equal(bgr, rgb[..., ::-1])
    np.testing.assert_array_equal(bgr, arr[..., ::-1].astype(np.float32))
    opts = InputOptions(mode="BGR", norm_func="x - [104, 117, 123]")  # open-nsfw's BGR means
    ((_, batch),) = list(iter_batches([path], opts, (8, 10, 3)))
    np.testing.assert_allclose(batch[0], arr[..., ::-1] - np.array([104, 117, 123]))


def test_bgr_option_in_every_input_option_command() -> None:
    from nnshell.shell.commands.analysis_cmds import AnalysisCommands
    from nnshell.shell.commands.common import input_overrides
    from nnshell.shell.commands.gen_cmds import GenCommands
    from nnshell.shell.commands.quant_cmds import QuantCommands
    from nnshell.shell.commands.run_cmds import RunCommands

    parsers = [
        QuantCommands.aquant_parser,
        QuantCommands.validate_parser,
        AnalysisCommands.qerror_parser,
        RunCommands.dump_parser,
    ]
    for parser in parsers:
        for flags in (["--bgr"], ["-M", "BGR"]):
            args = parser.parse_args(["imgs", *flags])
            assert input_overrides(args)["mode"] == "BGR", (parser.prog, flags)
    # gen's -M is its model directory: --bgr is the spelling there
    args = GenCommands.gen_parser.parse_args(["--target", "c", "--verify", "imgs", "--bgr"])
    assert input_overrides(args)["mode"] == "BGR"


def _nnshell(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nnshell", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


def test_input_shapes_on_the_command_line(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    g = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"], name="relu")],
        "dyn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    path = str(tmp_path / "dyn.onnx")
    onnx.save(m, path)
    proc = _nnshell(path, "--input_shapes", "x=[3,40,50]", "-c", "show")
    assert proc.returncode == 0, proc.stderr
    assert "(3, 40, 50)" in proc.stderr + proc.stdout
    proc = _nnshell("--input_shapes", "x=[3,4,4]", "-c", "show")
    assert proc.returncode == 1 and "needs a model FILE" in proc.stderr
    proc = _nnshell(path, "--input_shapes", "x=3x4", "-c", "show")
    assert proc.returncode == 1 and "is not NAME=[d1,d2,...]" in proc.stderr
