"""The SQ8 ``Infos`` arrays, byte by byte, one test per generator kind.

Every expected array is written out by hand from the GAP SDK's ``CNN_Infos_SQ8.h``: 13 bytes,
``ACTSCALE``@0, ``ACTSCALEN``@1, ``A0``@2..3, ``B0``@4..5, ``C0``@6..7, ``BIASN``/``IN1SCALE``/
``GLOBAL_SUM_SCALE``@8, ``SCALEN``/``IN1SCALEN``/``GLOBAL_SUM_SCALEN``@9, ``OUTSCALE``@10,
``OUTSCALEN``@11, ``PRENORM``@12; an 8-bit value fills the first byte of a 2-byte slot. The
arrays marked "NNTool" are the bytes NNTool 4.1 wrote for the same layer (sample LeNet conv1, the
MobileNet-style block's adds and global pool, the residual model below).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from nnshell.codegen import at_infos as inf
from nnshell.quant.fixed_point import QType

ASYM_6 = QType(6 / 255, -128, symmetric=False)  # NNTool's ReLU6 range [0, 6]
SYM = QType(2.41 / 127, 0)


@dataclass(frozen=True)
class _Part:
    op: str
    attrs: object


@dataclass(frozen=True)
class _Clip:
    min: float
    max: float


@dataclass(frozen=True)
class _Leaky:
    alpha: float


def _bytes(a: np.ndarray) -> str:
    return a.astype(np.uint8).tobytes().hex(" ")


def _act(op: str, attrs: object, q: QType) -> inf.ActInfo:
    act = inf.sq8_activation([_Part(op, attrs)], q, "layer")
    assert act is not None
    return act


def test_layout_offsets_are_cnn_infos_sq8() -> None:
    assert (inf.AT_INF_ACTSCALE, inf.AT_INF_ACTSCALEN, inf.AT_INF_A0, inf.AT_INF_B0) == (0, 1, 2, 4)
    assert (inf.AT_INF_C0, inf.AT_INF_BIASN, inf.AT_INF_SCALEN) == (6, 8, 9)
    assert (inf.AT_INF_OUTSCALE, inf.AT_INF_OUTSCALEN, inf.AT_INF_PRENORM) == (10, 11, 12)
    assert inf.AT_INF_IN1SCALE == inf.AT_INF_GLOBAL_SUM_SCALE == 8
    assert inf.INFOS_SIZE == inf.AT_INF_DIM == 13


def test_conv_relu_asymmetric_is_relum() -> None:
    act = _act("Relu", None, QType(0.0624, -128, symmetric=False))
    assert act.kop == "KOP_RELUM"
    # NNTool, LeNet conv1: ACTSCALE 1, ACTSCALEN 0, A0 = -128 (0x80), rest 0
    assert _bytes(inf.conv_infos(act)) == "01 00 80 00 00 00 00 00 00 00 00 00 00"


def test_conv_without_activation_is_all_zero() -> None:
    assert _bytes(inf.conv_infos(None)) == "00 " * 12 + "00"


def test_conv_relu6_bound_range_is_relum_with_b0() -> None:
    act = _act("Clip", _Clip(0.0, 6.0), ASYM_6)
    assert (act.kop, act.name) == ("KOP_RELUM", "Relu6")  # code(6) = 127: the saturation clips
    # NNTool, MobileNet-style block depthwise: A0 = -128, B0 = 127 (0x7f)
    assert _bytes(inf.conv_infos(act)) == "01 00 80 00 7f 00 00 00 00 00 00 00 00"


def test_conv_relu6_forced_symmetric_is_relu() -> None:
    act = _act("Clip", _Clip(0.0, 6.0), SYM)  # 6/S = 316 saturates to 127
    assert act.kop == "KOP_RELU"
    assert _bytes(inf.conv_infos(act)) == "01 00 00 00 7f 00 00 00 00 00 00 00 00"


def test_relun_below_the_top_code_keeps_its_bound() -> None:
    act = _act("Clip", _Clip(0.0, 4.0), ASYM_6)  # round(4·255/6) - 128 = 170 - 128 = 42
    assert (act.kop, act.name) == ("KOP_RELUMN", "Relun")
    assert _bytes(inf.conv_infos(act)) == "01 00 80 00 2a 00 00 00 00 00 00 00 00"
    sym = _act("Clip", _Clip(0.0, 1.0), SYM)  # round(127/2.41) = 53 = 0x35
    assert sym.kop == "KOP_RELUN"
    assert _bytes(inf.conv_infos(sym)) == "01 00 00 00 35 00 00 00 00 00 00 00 00"


def test_leaky_relu_slope_and_zero_point() -> None:
    act = _act("LeakyRelu", _Leaky(0.1), QType(0.05, 0))  # round(0.1·128) = 13 = 0x0d
    assert act.kop == "KOP_LEAKYRELU"
    assert _bytes(inf.conv_infos(act)) == "01 00 0d 00 00 00 00 00 00 00 00 00 00"


def test_pool_without_and_with_activation() -> None:
    assert _bytes(inf.pool_infos(None, (1, 0))) == "01 00 00 00 00 00 00 00 00 00 00 00 00"
    act = _act("Relu", None, SYM)
    assert _bytes(inf.pool_infos(act, (1, 0))) == "01 00 00 00 00 00 00 00 00 00 00 00 00"
    # a lone activation is a pool-less CNN_PoolAct_SQ8: the same array
    relu = _act("Relu", None, QType(0.1, -128, symmetric=False))
    assert _bytes(inf.pool_infos(relu, (1, 0))) == "01 00 80 00 00 00 00 00 00 00 00 00 00"


def test_global_average_pool_sum_scale() -> None:
    consts = {"mul": np.array(1), "shift": np.array(4)}
    # NNTool, MobileNet-style block: ACTSCALE 0, ACTSCALEN 0, GLOBAL_SUM_SCALE 1, _N 4
    got = inf.global_pool_infos(None, True, consts, "gap")
    assert _bytes(got) == "00 00 00 00 00 00 00 00 01 04 00 00 00"
    with_act = inf.global_pool_infos(_act("Relu", None, SYM), True, consts, "gap")
    assert _bytes(with_act) == "01 00 00 00 00 00 00 00 01 04 00 00 00"
    assert _bytes(inf.global_pool_infos(None, False, {}, "gmp")) == "01" + " 00" * 12


def test_matadd_in1_and_out_scales() -> None:
    # NNTool, MobileNet-style block first add: IN1SCALE 121 >> 5, OUTSCALE 121 >> 9
    got = inf.matadd_infos(None, (121, 5), (121, 9))
    assert _bytes(got) == "00 00 00 00 00 00 00 00 79 05 79 09 00"
    # NNTool, residual model add + ReLU: 131 >> 6, 43 >> 6 after the ReLU's slots
    relu = inf.matadd_infos(_act("Relu", None, SYM), (131, 6), (43, 6))
    assert _bytes(relu) == "01 00 00 00 00 00 00 00 83 06 2b 06 00"


def test_softmax_biasl_sm() -> None:
    # BIASL_SM = 15 + ceil(log2(Si)): Si = 0.03 -> ceil(-5.06) = -5 -> 10
    assert _bytes(inf.softmax_infos(0.03)) == "0a" + " 00" * 12


def test_values_that_do_not_fit_are_refused() -> None:
    with pytest.raises(inf.InfosError, match="does not fit"):
        inf.encode_infos([(inf.AT_INF_ACTSCALE, 256, 1)])
    with pytest.raises(inf.InfosError, match="zero points"):
        inf.rescale_of(
            {
                "rescale_mul": np.array(3),
                "rescale_shift": np.array(2),
                "rescale_zin": np.array(-128),
            },
            "pool",
        )


def test_residual_model_infos_are_nntools(tmp_path: Path) -> None:
    """End to end: conv+ReLU, conv, add+ReLU, average pool, global average pool, linear,
    softmax; NNTool 4.1 wrote these 13-byte arrays for this model and these inputs."""
    from nnshell.session import Session
    from tests.codegen.test_autotiler import _residual_model

    s = Session()
    s.open(str(_residual_model(tmp_path)))
    s.adjust()
    s.fusions("scale8")
    s.aquant([str(tmp_path / "*.npy")])
    s.gen_autotiler(model_dir=str(tmp_path / "gen"))
    tensors = tmp_path / "gen" / "tensors"
    nntool = {
        "S3": "01000000000000000000000000",
        "S6": "00000000000000000000000000",
        "S7": "010000000000000083062b0600",
        "S8": "01000000000000000000000000",
        "S9": "00000000000000003f0b000000",
        "S12": "00000000000000000000000000",
        "S13": "09000000000000000000000000",
    }
    got = {p.name.split("_")[0]: p.read_bytes().hex() for p in tensors.glob("*_Infos.tensor")}
    assert got == nntool


def test_nntool_step_numbers_on_the_lenet() -> None:
    """Input S0, each layer after its weights and biases, the output last (NNTool's show)."""
    from nnshell.codegen.at_names import nntool_steps
    from tests.conftest import ROOT

    s = __import__("nnshell.session", fromlist=["Session"]).Session()
    s.open(str(ROOT / "sample_models" / "cifar_net.onnx"))
    s.adjust()
    s.fusions("scale8")
    steps = nntool_steps(s.graph)
    layers = {k[1]: v for k, v in steps.items() if k[0] == "node"}
    assert layers == {
        "_conv1_Conv_fusion": 3,
        "_conv2_Conv_fusion": 6,
        "_fc1_Gemm_fusion": 9,
        "_fc2_Gemm_fusion": 12,
        "_fc3_Gemm": 15,
    }
    assert steps[("input", "input")] == 0 and steps[("output", "output")] == 16
    assert steps[("const", "conv1.weight")] == 1 and steps[("const", "conv1.bias")] == 2
