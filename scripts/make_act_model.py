"""Build the activation acceptance model (issue 17, activations slice): no torch needed.

For every activation A (Relu, Clip(0, 6), LeakyRelu(0.1), Sigmoid, Tanh, HardSigmoid,
HardSwish, Swish written as ``Mul(x, Sigmoid(x))``) the graph has
``conv_A = A(Conv(x, W_A, pads 1))`` (fused by ``fusions``) and ``solo_A = A(x)`` (standalone:
the graph input has many readers, so nothing fuses), each a graph output. Weights are seeded
random normals. ``python scripts/make_act_model.py OUT.onnx`` writes it;
``python scripts/make_act_model.py --report`` prints the QSNR (dB, vs float) of every output in
SQ8, POW2-16 and POW2-8 (the table of docs/activations.md).
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

#: (name, ONNX op or "Swish", attributes, extra constant inputs)
ACTIVATIONS: list[tuple[str, str, dict[str, Any], list[float]]] = [
    ("relu", "Relu", {}, []),
    ("relu6", "Clip", {}, [0.0, 6.0]),
    ("leaky", "LeakyRelu", {"alpha": 0.1}, []),
    ("sigmoid", "Sigmoid", {}, []),
    ("tanh", "Tanh", {}, []),
    ("hsigmoid", "HardSigmoid", {"alpha": 0.2, "beta": 0.5}, []),
    ("hswish", "HardSwish", {}, []),
    ("swish", "Swish", {}, []),
]


def _act(
    op: str, attrs: dict[str, Any], consts: list[float], x: str, y: str, tag: str
) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """The nodes of one activation (Swish as the Mul(x, Sigmoid(x)) pattern)."""
    mk = helper.make_node
    if op == "Swish":
        return [
            mk("Sigmoid", [x], [f"{y}_sig"], name=f"{tag}_sig"),
            mk("Mul", [x, f"{y}_sig"], [y], name=f"{tag}_mul"),
        ], []
    inits = [numpy_helper.from_array(np.float32(v), f"{tag}_c{i}") for i, v in enumerate(consts)]
    ins = [x, *(t.name for t in inits)]
    return [mk(op, ins, [y], name=tag, **attrs)], inits


def build(seed: int = 0, cin: int = 3, cout: int = 4) -> onnx.ModelProto:
    """The model: 8 fused conv + activation branches and 8 standalone activations."""
    rng = np.random.default_rng(seed)
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    outs: list[str] = []
    for name, op, attrs, consts in ACTIVATIONS:
        w = (rng.standard_normal((cout, cin, 3, 3)) * 0.5).astype(np.float32)
        b = (rng.standard_normal(cout) * 0.2).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"W_{name}"), numpy_helper.from_array(b, f"B_{name}")]
        nodes.append(
            helper.make_node(
                "Conv",
                ["x", f"W_{name}", f"B_{name}"],
                [f"c_{name}"],
                name=f"conv_{name}",
                pads=[1, 1, 1, 1],
            )
        )
        for src, dst, tag in (
            (f"c_{name}", f"conv_{name}_out", f"act_{name}"),
            ("x", f"solo_{name}", f"solo_{name}"),
        ):
            ns, cs = _act(op, attrs, consts, src, dst, tag)
            nodes += ns
            inits += cs
            outs.append(dst)
    graph = helper.make_graph(
        nodes,
        "acts",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", cin, 10, 10])],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outs],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])


def to_swish(graph: Any) -> None:
    """Rewrite ``Mul(x, Sigmoid(x))`` into one Swish node in an nnshell graph (what the
    pattern-normalisation pass does; repeated here so the model works without it)."""
    from nnshell.ir import Node
    from nnshell.ops import get_op
    from nnshell.passes._edit import reinfer

    for mul in [n for n in graph.nodes if n.op == "Mul"]:
        for a, s in (mul.inputs[:2], mul.inputs[1::-1]):
            sig = graph.producer(s)
            if sig is None or sig.op != "Sigmoid" or sig.inputs[0] != a:
                continue
            if len(graph.consumers(s)) != 1:
                continue
            attrs = get_op("Swish").from_onnx({}, mul.name)
            idx = graph.nodes.index(mul)
            graph.nodes[idx] = Node(mul.name, "Swish", [a], list(mul.outputs), attrs)
            graph.nodes.remove(sig)
            graph.tensors.pop(s, None)
            break
    reinfer(graph)


def qsnr(scheme: str, bits: int, xs: np.ndarray, path: str) -> dict[str, float]:
    """QSNR (dB) of every output of the model at ``path`` quantized in ``scheme`` / ``bits``
    (calibrated and evaluated on ``xs``)."""
    from nnshell.exec import run_float
    from nnshell.exec.int_exec import dequantize, run_int
    from nnshell.importers.onnx_importer import load_onnx
    from nnshell.passes import run_scheme
    from nnshell.quant.pow2 import Pow2Options, quantize_graph_pow2
    from nnshell.quant.ranges import RangeMode
    from nnshell.quant.sq8 import QuantOptions, quantize_graph
    from nnshell.quant.stats import TensorStats

    graph = load_onnx(path)
    to_swish(graph)
    run_scheme(graph, "scale8" if scheme == "SQ8" else "pow2")
    stats: dict[str, TensorStats] = {}
    run_float(
        graph, {"x": xs}, observer=lambda n, v, s=stats: s.setdefault(n, TensorStats()).update(v)
    )
    if scheme == "SQ8":
        qs = quantize_graph(graph, stats, QuantOptions())
    else:
        qs = quantize_graph_pow2(graph, stats, Pow2Options(RangeMode("minmax"), True, True, bits))
    ref, got = run_float(graph, {"x": xs}), run_int(graph, qs, {"x": xs})
    out = {}
    for name in graph.outputs:
        f = np.asarray(ref[name], np.float64)
        q = np.asarray(dequantize(qs, name, got[name]), np.float64)
        out[name] = float(10 * np.log10(np.mean(f**2) / max(np.mean((f - q) ** 2), 1e-30)))
    return out


def report() -> None:
    """Print the QSNR table (24 seeded uniform [-2.5, 2.5] inputs, calibration = evaluation)."""
    import os
    import tempfile

    xs = np.random.default_rng(3).uniform(-2.5, 2.5, (24, 3, 10, 10)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "acts.onnx")
        onnx.save(build(), path)
        cols = [qsnr(s, b, xs, path) for s, b in (("SQ8", 8), ("POW2", 16), ("POW2", 8))]
    print("| output | SQ8 | POW2-16 | POW2-8 |\n|---|---|---|---|")
    for name in cols[0]:
        print(f"| {name} | " + " | ".join(f"{c[name]:.1f}" for c in cols) + " |")


if __name__ == "__main__":
    if sys.argv[1:] == ["--report"]:
        report()
    else:
        onnx.save(build(), sys.argv[1] if len(sys.argv) > 1 else "acts.onnx")
