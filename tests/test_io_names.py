"""Graph inputs/outputs answer to NNTool's input_N / output_N as well as their file names."""

from __future__ import annotations

import pytest

from nnshell.errors import SelectorError, UsageError
from nnshell.importers.onnx_importer import load_onnx
from nnshell.importers.tflite_importer import load_tflite
from nnshell.ir.io_names import io_caption, io_names, require_input, resolve_io
from nnshell.selectors import select_steps
from tests.conftest import ROOT, SAMPLE_MODEL

TFLITE = ROOT / "tests" / "data" / "tflite" / "lenet_bw.tflite"


def test_onnx_input_answers_to_both_names() -> None:
    g = load_onnx(str(SAMPLE_MODEL))
    assert g.inputs == ["input"] and g.outputs == ["output"]  # the file's names, not input_1
    assert resolve_io(g, "input_1") == "input" == resolve_io(g, "input")
    assert resolve_io(g, "output_1") == "output"
    assert resolve_io(g, "output_1", "input") is None
    assert resolve_io(g, "input_2") is None
    assert io_caption(g) == "inputs: input_1 (input); outputs: output_1 (output)"
    assert {"input", "input_1"} <= set(io_names(g, "input"))
    # selectors: an input selects its first reader, an output its writer
    assert select_steps(g, "input_1") == [0]
    assert select_steps(g, "output_1") == [len(g.nodes) - 1]
    assert select_steps(g, "input_1:output_1") == list(range(len(g.nodes)))
    with pytest.raises(SelectorError, match="input_9"):
        select_steps(g, "input_9")
    with pytest.raises(UsageError, match="input_1 \\(input\\)"):
        require_input(g, "input_3", "imageformat")


def test_tflite_file_names_answer_too() -> None:
    import tflite

    g = load_tflite(str(TFLITE))
    model = tflite.Model.GetRootAsModel(TFLITE.read_bytes(), 0)
    sg = model.Subgraphs(0)
    file_in = sg.Tensors(int(sg.Inputs(0))).Name().decode()
    file_out = sg.Tensors(int(sg.Outputs(0))).Name().decode()
    assert g.inputs == ["input_1"] and g.outputs == ["output_1"]
    assert resolve_io(g, file_in) == "input_1" and resolve_io(g, file_out) == "output_1"
    assert io_caption(g) == f"inputs: input_1 ({file_in}); outputs: output_1 ({file_out})"


def test_shell_imageformat_and_show_take_input_1(shell) -> None:  # noqa: ANN001
    ok, _, err = shell.run(f"open {SAMPLE_MODEL}")
    assert ok, err
    ok, out, err = shell.run("imageformat input_1 rgb888 offset_int8")
    assert ok, err
    assert out.startswith("input: raw rgb888 32x32x3")
    ok, out, _ = shell.run("show input_1")
    assert ok and "input_1 (input)" in out and "_conv1_Conv" in out
    ok, _, err = shell.run("imageformat input_2 rgb888 offset_int8")
    assert not ok and "'input_2' is not a graph input" in err


def test_completion_offers_both_names(shell) -> None:  # noqa: ANN001
    from nnshell.shell.commands.graph_cmds import GraphCommands
    from nnshell.shell.commands.nntool_cmds import NntoolCommands

    assert shell.run(f"open {SAMPLE_MODEL}")[0]
    sets = shell.app._installed_command_sets
    inputs = next(c for c in sets if isinstance(c, NntoolCommands)).input_choices()
    assert {str(x) for x in inputs} == {"input", "input_1"}
    nodes = {str(x) for x in next(c for c in sets if isinstance(c, GraphCommands)).node_choices()}
    assert {"_conv1_Conv", "input_1", "output_1", "output"} <= nodes
