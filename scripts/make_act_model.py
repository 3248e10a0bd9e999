"""Build the activation acceptance model (issue 17, activations slice): no torch needed.

For every activation A (Relu, Clip(0, 6), LeakyRelu(0.1), Sigmoid, Tanh, HardSigmoid,
HardSwish, Swish written as ``Mul(x, Sigmoid(x))``) the graph has
``conv_A = A(Conv(x, W_A, pads 1))`` (fused by ``fusions``) and ``solo_A = A(x)`` (standalone:
the graph input has many readers, so nothing fuses), each a graph output. Weights are seeded
random normals. ``python scripts/make_act_model.py OUT.onnx`` writes it.
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


if __name__ == "__main__":
    onnx.save(build(), sys.argv[1] if len(sys.argv) > 1 else "acts.onnx")
