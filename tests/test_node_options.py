"""nodeoption: NNTool step numbers and names, validation, state, AutoTiler emission."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nnshell.codegen.autotiler import generate_autotiler
from nnshell.errors import UsageError
from nnshell.node_options import records, resolve, set_node_option, show_node_options
from nnshell.session import Session
from nnshell.state import load_state
from tests.conftest import ROOT, SAMPLE_MODEL

DW_INT8 = ROOT / "tests" / "data" / "tflite" / "dw_block_int8.tflite"


@pytest.fixture
def fused_tflite() -> Session:
    """The visual-wake-like case: an int8 TFLite model opened with -q, adjusted and fused."""
    s = Session()
    s.open(str(DW_INT8), None, True)
    s.set("file_mult_bits", "8")  # GAP's 8-bit multipliers: what the AutoTiler target takes
    s.adjust()
    s.fusions("scale8")
    return s


def test_step_numbers_are_nntools(fused_tflite: Session) -> None:
    g = fused_tflite.graph
    # NNTool: S0 the input, S1/S2 the first conv's weights and biases, S3 the conv
    assert resolve(g, "0").kind == "input" and resolve(g, "0").name == "input_1"
    assert resolve(g, "3").name == "CONV_2D_0_1_fusion" == resolve(g, "S3").name
    assert resolve(g, "1").kind == "const"
    assert resolve(g, "output_1").kind == "output"
    with pytest.raises(UsageError, match="out of range"):
        resolve(g, "999")


def test_visual_wake_lines_and_validation(fused_tflite: Session, tmp_path: Path) -> None:
    s = fused_tflite
    o = set_node_option(s, "CONV_2D_0_1_fusion", "PARALLELFEATURES", "0")
    assert (o.target.step, o.value) == (3, 0)
    o = set_node_option(s, "0", "ALLOCATE", "1")
    assert o.target.kind == "input" and o.options == {"ALLOCATE": 1}
    with pytest.raises(UsageError) as exc:
        set_node_option(s, "0", "PARALLELFEATURES", "0")  # not an input's option
    assert "valid: ALLOCATE" in exc.value.hint
    with pytest.raises(UsageError, match="takes an integer, not 'abc'"):
        set_node_option(s, "3", "PARALLELFEATURES", "abc")
    with pytest.raises(UsageError, match="RNN/SSD"):
        set_node_option(s, "3", "OUTPUT_H_STATE", "1")
    with pytest.raises(UsageError, match="memory area"):
        set_node_option(s, "3", "OUT_HOME_MEM_LOC", "L2")
    set_node_option(s, "3", "OUT_HOME_MEM_LOC", "AT_MEM_L3_HRAM")
    listed = {(o.target.name, k) for o in show_node_options(s) for k in o.options}
    assert listed == {
        ("input_1", "ALLOCATE"),
        ("CONV_2D_0_1_fusion", "PARALLELFEATURES"),
        ("CONV_2D_0_1_fusion", "OUT_HOME_MEM_LOC"),
    }
    # emitted where NNTool emits them (compared with NNTool's model file: docs/nntool-parity.md)
    assert s.qstate is not None  # open -q: the file's quantization
    generate_autotiler(s.graph, s.qstate, s.settings, tmp_path, "m.c", "t", None, False)
    text = (tmp_path / "m.c").read_text()
    assert (
        'CNN_SetGenCtrl(&gen_ctrl_S3_Conv2d_8x3x3x3_Relu6, "PARALLELFEATURES", AT_OPT_VAL(0));'
        in text
    )
    assert '"Input_1", ARG_SCOPE_ARG_ALLOC, ARG_DIR_IN' in text
    assert '"S3_Output", ARG_SCOPE_LOCAL, ARG_DIR_INOUT, AT_MEM_L3_HRAM, AT_MEM_UNDEF' in text
    # removing an option
    set_node_option(s, "3", "OUT_HOME_MEM_LOC")
    assert len(records(s.graph)) == 2
    # kept in save_state; a corrupt record is refused on load
    js, _ = s.save_state(str(tmp_path / "st"))
    assert len(records(load_state(js).graph)) == 2
    doc = json.loads(Path(js).read_text())
    blob = json.dumps(doc)
    assert '"PARALLELFEATURES"' in blob
    bad = blob.replace('"value": 0', '"value": "zero"', 1)
    Path(js).write_text(bad)
    with pytest.raises(Exception, match="node_options"):
        load_state(js)


def test_options_survive_fusions_again() -> None:
    s = Session()
    s.open(str(SAMPLE_MODEL))
    s.adjust()
    set_node_option(s, "_conv1_Conv", "PARALLELFEATURES", "0")  # before fusing: on the part
    s.fusions("scale8")
    fused = next(n.name for n in s.graph.nodes if n.op == "Fused")
    shown = show_node_options(s, fused)[0]
    assert shown.options == {"PARALLELFEATURES": 0}


def test_shell_nodeoption(shell) -> None:  # noqa: ANN001
    assert shell.run(f"open {DW_INT8} -q")[0]
    assert shell.run("adjust")[0] and shell.run("fusions --scale8")[0]
    ok, out, err = shell.run("nodeoption 0 ALLOCATE 1")
    assert ok, err
    assert out.strip() == "S0 input_1 (serving_default_input_1:0): ALLOCATE set to 1"
    ok, out, _ = shell.run("nodeoption CONV_2D_0_1_fusion PARALLELFEATURES 0")
    assert ok and out.strip() == "S3 CONV_2D_0_1_fusion: PARALLELFEATURES set to 0"
    ok, _, err = shell.run("nodeoption 0 FOO 1")
    assert not ok and "FOO is not an option of input_1" in err and "ALLOCATE" in err
    assert len(err.strip().splitlines()) == 1
    ok, out, _ = shell.run("nodeoption")
    assert ok and "S3 CONV_2D_0_1_fusion: PARALLELFEATURES=0" in out


def test_numbers_match_nntools_show_on_the_sample() -> None:
    """Step numbers printed by real NNTool's `show` on cifar_net.onnx (docs/nntool-parity.md)."""
    from nnshell.node_options import layer_nntool_steps
    from nnshell.selectors import select_steps

    s = Session()
    s.open(str(SAMPLE_MODEL))
    steps = layer_nntool_steps(s.graph)
    assert [steps[n.name] for n in s.graph.nodes] == [3, 4, 5, 8, 9, 10, 11, 14, 15, 18, 19, 22]
    assert resolve(s.graph, "23").kind == "output"
    s.adjust()
    s.fusions("scale8")
    steps = layer_nntool_steps(s.graph)
    assert [steps[n.name] for n in s.graph.nodes] == [3, 6, 9, 12, 15]
    assert select_steps(s.graph, "S6") == [1] and select_steps(s.graph, "S0:S9") == [0, 1, 2]


def test_shell_show_nntool_steps(shell) -> None:  # noqa: ANN001
    assert shell.run(f"open {SAMPLE_MODEL}")[0]
    ok, out, _ = shell.run("show --nntool_steps S8")
    assert ok and "NNTool" in out and "S8" in out and "_conv2_Conv" in out
    ok, _, err = shell.run("show S99")
    assert not ok and "NNTool step 99 is out of range" in err
