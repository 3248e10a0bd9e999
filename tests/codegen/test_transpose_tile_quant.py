"""Tile (a data mover) and ConvTranspose quantized: SQ8 / POW2 integer executors against float,
and the generated C (``nn_tile``, ``nn_conv_transpose``) bit-exact with the executors."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from onnx import helper

from nnshell.codegen.verify import verify_arrays
from nnshell.exec import run_float
from nnshell.exec.int_exec import dequantize, run_int
from nnshell.importers.onnx_importer import load_onnx
from nnshell.ir import Graph
from nnshell.passes import run_scheme
from nnshell.quant.pow2 import Pow2Options, quantize_graph_pow2
from nnshell.quant.ranges import RangeMode
from nnshell.quant.sq8 import QuantOptions, quantize_graph
from nnshell.quant.stats import TensorStats
from tests.helpers import save_xy_model

needs_gcc = pytest.mark.skipif(
    shutil.which("gcc") is None, reason="gen --target c tests need gcc on PATH (CI has it)"
)


def _save(
    path: Path,
    nodes: list[Any],
    inits: dict[str, np.ndarray],
    in_shape: list[Any],
) -> Graph:
    save_xy_model(path, nodes, inits, in_shape, "g")
    return load_onnx(str(path))


def _stats(graph: Graph, xs: np.ndarray) -> dict[str, TensorStats]:
    stats: dict[str, TensorStats] = {}
    run_float(
        graph, {"x": xs}, observer=lambda n, v, s=stats: s.setdefault(n, TensorStats()).update(v)
    )
    return stats


def _quantize(graph: Graph, xs: np.ndarray, scheme: str) -> Any:
    stats = _stats(graph, xs)
    if scheme == "SQ8":
        return quantize_graph(graph, stats, QuantOptions())
    bits = int(scheme.split("-")[1])
    return quantize_graph_pow2(graph, stats, Pow2Options(RangeMode("minmax"), True, True, bits))


def _qsnr(graph: Graph, qstate: Any, xs: np.ndarray) -> float:
    """QSNR (dB) of the dequantized integer output against the float output."""
    ref = run_float(graph, {"x": xs})["y"].astype(np.float64)
    got = dequantize(qstate, "y", run_int(graph, qstate, {"x": xs})["y"]).astype(np.float64)
    noise = float(np.sum((got - ref) ** 2))
    return 10 * np.log10(float(np.sum(ref**2)) / max(noise, 1e-30))


# ---------------------------------------------------------------------------------- Tile


def _tile_graph(path: Path) -> Graph:
    r = np.random.default_rng(5)
    inits = {
        "W1": (r.standard_normal((4, 3, 3, 3)) * 0.3).astype(np.float32),
        "B1": (r.standard_normal(4) * 0.1).astype(np.float32),
        "reps": np.array([1, 2, 1, 3], np.int64),
        "W2": (r.standard_normal((5, 8, 3, 3)) * 0.3).astype(np.float32),
    }
    mk = helper.make_node
    nodes = [
        mk("Conv", ["x", "W1", "B1"], ["c1"], pads=[1, 1, 1, 1]),
        mk("Tile", ["c1", "reps"], ["t"]),
        mk("Conv", ["t", "W2"], ["y"], strides=[1, 2]),
    ]
    return _save(path, nodes, inits, [3, 6, 5])


@pytest.mark.parametrize("scheme", ["SQ8", "POW2-16", "POW2-8"])
def test_tile_quantized_matches_float(tmp_path: Path, scheme: str) -> None:
    graph = _tile_graph(tmp_path / "tile.onnx")
    xs = np.random.default_rng(1).uniform(-1, 1, (16, 3, 6, 5)).astype(np.float32)
    qstate = _quantize(graph, xs, scheme)
    assert [n.op for n in graph.nodes] == ["Conv", "Tile", "Conv"]
    # the tile moves codes: its output codes are the tiled input codes
    vals = run_int(graph, qstate, {"x": xs}, keep=["c1", "t"])
    want = np.tile(vals["c1"], (1, 2, 1, 3))
    if "out_shift" not in qstate.nodes[graph.nodes[1].name].consts:
        np.testing.assert_array_equal(vals["t"], want)
    assert _qsnr(graph, qstate, xs) >= (20 if scheme == "POW2-8" else 30)


@needs_gcc
@pytest.mark.parametrize("scheme", ["SQ8", "POW2-16", "POW2-8"])
def test_tile_c_bit_exact(tmp_path: Path, scheme: str) -> None:
    graph = _tile_graph(tmp_path / "tile.onnx")
    xs = np.random.default_rng(1).uniform(-1, 1, (16, 3, 6, 5)).astype(np.float32)
    qstate = _quantize(graph, xs, scheme)
    res = verify_arrays(graph, qstate, xs, tmp_path / "build", "tile")
    assert res.ok, res.summary()
    assert res.layers == 3


@needs_gcc
def test_tile_3d_and_5d_c_bit_exact(tmp_path: Path) -> None:
    """Ranks 3 and 5 (padding to 5-D on both ends), tiles on every non-batch axis."""
    r = np.random.default_rng(2)
    inits = {
        "W": (r.standard_normal((3, 2, 3)) * 0.4).astype(np.float32),
        "reps": np.array([1, 2, 3], np.int64),
        "shape": np.array([0, 6, 3, 2, 6], np.int64),
        "reps5": np.array([1, 2, 1, 3, 2], np.int64),
        "shape3": np.array([0, 12, -1], np.int64),
    }
    mk = helper.make_node
    nodes = [
        mk("Conv", ["x", "W"], ["c"], pads=[1, 1]),
        mk("Tile", ["c", "reps"], ["t"]),  # (6, 36)
        mk("Reshape", ["t", "shape"], ["r5"]),  # (6, 3, 2, 6)
        mk("Tile", ["r5", "reps5"], ["t5"]),  # (12, 3, 6, 12)
        mk("Reshape", ["t5", "shape3"], ["y"]),
    ]
    graph = _save(tmp_path / "t5.onnx", nodes, inits, [2, 12])
    xs = r.uniform(-1, 1, (8, 2, 12)).astype(np.float32)
    for scheme in ("SQ8", "POW2-16"):
        qstate = _quantize(graph, xs, scheme)
        ref = np.tile(
            run_int(graph, qstate, {"x": xs}, keep=["r5"])["r5"], (1, 2, 1, 3, 2)
        ).reshape(8, 12, -1)
        np.testing.assert_array_equal(run_int(graph, qstate, {"x": xs})["y"], ref)
        res = verify_arrays(graph, qstate, xs, tmp_path / scheme, "t5")
        assert res.ok, res.summary()


# ------------------------------------------------------------------------- ConvTranspose

SAME, OS = "SAME_UPPER", [8, 9]
#: (in channels, out channels, kernel, strides, pads, output_padding, dilations, group, bias,
#: spatial input size, extra attributes)
CT_CASES = {
    "s1": (3, 4, (3, 3), (1, 1), (0, 0, 0, 0), (0, 0), (1, 1), 1, True, (5, 6), {}),
    "s2_pad_adj": (3, 4, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), (1, 1), 1, True, (5, 4), {}),
    "mixed_group2": (4, 6, (2, 3), (2, 1), (0, 1, 1, 0), (1, 0), (1, 2), 2, False, (4, 5), {}),
    "upsample_k4": (4, 6, (4, 4), (2, 2), (1, 1, 1, 1), (0, 0), (1, 1), 2, True, (4, 4), {}),
    "dw_s2_d2": (4, 4, (3, 3), (2, 2), (1, 1, 1, 1), (1, 0), (2, 1), 4, True, (5, 5), {}),
    "dw_s1_d2": (4, 4, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), (2, 2), 4, False, (4, 5), {}),
    "1d": (3, 5, (4,), (2,), (1, 2), (1,), (1,), 1, True, (7,), {}),
    "1d_dw_d2": (3, 3, (3,), (1,), (2, 0), (0,), (2,), 3, False, (6,), {}),
    "same_upper": (3, 4, (3, 3), (2, 2), (), (), (1, 1), 1, True, (4, 5), {"auto_pad": SAME}),
    "output_shape": (2, 3, (3, 3), (2, 2), (), (), (1, 1), 1, True, (3, 4), {"output_shape": OS}),
}


def _ct_graph(path: Path, case: tuple[Any, ...], seed: int = 0) -> Graph:
    cin, m, kernel, strides, pads, adj, dil, group, bias, size, extra = case
    r = np.random.default_rng(seed)
    inits = {"W": (r.standard_normal((cin, m // group, *kernel)) * 0.4).astype(np.float32)}
    ins = ["x", "W"]
    if bias:
        inits["B"] = (r.standard_normal(m) * 0.2).astype(np.float32)
        ins.append("B")
    attrs: dict[str, Any] = {"strides": list(strides), "dilations": list(dil), "group": group}
    if pads:
        attrs["pads"] = list(pads)
    if adj:
        attrs["output_padding"] = list(adj)
    attrs.update(extra)
    node = helper.make_node("ConvTranspose", ins, ["y"], **attrs)
    return _save(path, [node], inits, [cin, *size])


def _ct_inputs(case: tuple[Any, ...], n: int = 16, seed: int = 1) -> np.ndarray:
    cin, size = case[0], case[9]
    return np.random.default_rng(seed).uniform(-1, 1, (n, cin, *size)).astype(np.float32)


@pytest.mark.parametrize("name", list(CT_CASES))
def test_conv_transpose_sq8_matches_float(tmp_path: Path, name: str) -> None:
    case = CT_CASES[name]
    graph = _ct_graph(tmp_path / "ct.onnx", case)
    xs = _ct_inputs(case)
    qstate = _quantize(graph, xs, "SQ8")
    assert qstate.tensors["x"].zero_point == 0  # forced symmetric: the taps vary per pixel
    assert _qsnr(graph, qstate, xs) >= 30


@needs_gcc
@pytest.mark.parametrize("name", list(CT_CASES))
def test_conv_transpose_sq8_c_bit_exact(tmp_path: Path, name: str) -> None:
    case = CT_CASES[name]
    graph = _ct_graph(tmp_path / "ct.onnx", case)
    xs = _ct_inputs(case)
    qstate = _quantize(graph, xs, "SQ8")
    res = verify_arrays(graph, qstate, xs, tmp_path / "build", "ct")
    assert res.ok, res.summary()


def _conv_ct_relu(path: Path) -> Graph:
    r = np.random.default_rng(4)
    inits = {
        "W1": (r.standard_normal((6, 3, 3, 3)) * 0.3).astype(np.float32),
        "B1": (r.standard_normal(6) * 0.1).astype(np.float32),
        "Wt": (r.standard_normal((6, 4, 4, 4)) * 0.3).astype(np.float32),
        "Bt": (r.standard_normal(4) * 0.1).astype(np.float32),
    }
    mk = helper.make_node
    nodes = [
        mk("Conv", ["x", "W1", "B1"], ["c"], strides=[2, 2], pads=[1, 1, 1, 1]),
        mk("ConvTranspose", ["c", "Wt", "Bt"], ["t"], strides=[2, 2], pads=[1, 1, 1, 1]),
        mk("Relu", ["t"], ["y"]),
    ]
    return _save(path, nodes, inits, [3, 8, 8])


@needs_gcc
def test_conv_conv_transpose_relu_through_scale8_fusions(tmp_path: Path) -> None:
    graph = _conv_ct_relu(tmp_path / "ccr.onnx")
    run_scheme(graph, "scale8")
    ops = [n.op for n in graph.nodes]
    assert ops == ["Conv", "ConvTranspose", "Relu"], ops  # a ConvTranspose heads no fusion
    xs = np.random.default_rng(3).uniform(-1, 1, (16, 3, 8, 8)).astype(np.float32)
    qstate = _quantize(graph, xs, "SQ8")
    assert qstate.tensors["c"].zero_point == 0
    assert _qsnr(graph, qstate, xs) >= 30
    res = verify_arrays(graph, qstate, xs, tmp_path / "build", "ccr")
    assert res.ok, res.summary()
    assert res.layers == 3


@needs_gcc
def test_conv_transpose_asymmetric_output_bit_exact(tmp_path: Path) -> None:
    """An output zero point != 0 (the offset pre-added to the bias), read by an unpadded conv."""
    r = np.random.default_rng(6)
    inits = {
        "Wt": (r.standard_normal((3, 4, 3, 3)) * 0.3).astype(np.float32),
        "Bt": (1.0 + r.random(4)).astype(np.float32),
        "W1": (r.standard_normal((2, 4, 1, 1)) * 0.5).astype(np.float32),
    }
    mk = helper.make_node
    nodes = [
        mk("ConvTranspose", ["x", "Wt", "Bt"], ["t"], strides=[2, 2], output_padding=[1, 1]),
        mk("Conv", ["t", "W1"], ["y"]),
    ]
    graph = _save(tmp_path / "asym.onnx", nodes, inits, [3, 5, 5])
    xs = np.random.default_rng(3).uniform(-1, 1, (16, 3, 5, 5)).astype(np.float32)
    qstate = _quantize(graph, xs, "SQ8")
    assert qstate.tensors["t"].zero_point != 0
    vals = run_int(graph, qstate, {"x": xs}, keep=["t"])
    got = dequantize(qstate, "t", vals["t"])
    ref = run_float(graph, {"x": xs}, keep=["t"])["t"]
    noise = float(np.sum((got - ref) ** 2))
    assert 10 * np.log10(float(np.sum(ref**2)) / noise) >= 30
    res = verify_arrays(graph, qstate, xs, tmp_path / "build", "asym")
    assert res.ok, res.summary()


@pytest.mark.parametrize("bits", [16, 8])
@pytest.mark.parametrize("name", list(CT_CASES))
def test_conv_transpose_pow2_matches_float(tmp_path: Path, name: str, bits: int) -> None:
    case = CT_CASES[name]
    graph = _ct_graph(tmp_path / "ct.onnx", case)
    xs = _ct_inputs(case)
    qstate = _quantize(graph, xs, f"POW2-{bits}")
    assert _qsnr(graph, qstate, xs) >= (50 if bits == 16 else 25)


@needs_gcc
@pytest.mark.parametrize("bits", [16, 8])
@pytest.mark.parametrize("name", list(CT_CASES))
def test_conv_transpose_pow2_c_bit_exact(tmp_path: Path, name: str, bits: int) -> None:
    case = CT_CASES[name]
    graph = _ct_graph(tmp_path / "ct.onnx", case)
    xs = _ct_inputs(case)
    qstate = _quantize(graph, xs, f"POW2-{bits}")
    res = verify_arrays(graph, qstate, xs, tmp_path / "build", "ct")
    assert res.ok, res.summary()


@needs_gcc
@pytest.mark.parametrize("bits", [16, 8])
def test_conv_conv_transpose_relu_pow2_bit_exact(tmp_path: Path, bits: int) -> None:
    graph = _conv_ct_relu(tmp_path / "ccr.onnx")
    run_scheme(graph, "pow2")
    assert [n.op for n in graph.nodes] == ["Conv", "ConvTranspose", "Relu"]
    xs = np.random.default_rng(3).uniform(-1, 1, (16, 3, 8, 8)).astype(np.float32)
    qstate = _quantize(graph, xs, f"POW2-{bits}")
    res = verify_arrays(graph, qstate, xs, tmp_path / "build", "ccr")
    assert res.ok, res.summary()
