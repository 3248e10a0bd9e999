"""Derive ``sample_models/mobile_block.onnx``, the MobileNet-style model of the NNTool parity check.

It is ``sample_models/mobile_net_tiny.onnx`` (``scripts/make_sample2.py``: stem conv, two blocks of
depthwise 3x3 + ReLU6, pointwise 1x1 and residual add, a stride-2 conv, global average pool,
linear) with the ReLU6 (``Clip(0, 6)``) after the stem and after the stride-2 conv made a ReLU.
Why: those two outputs feed both a padded depthwise conv and a residual Add. NNTool quantizes a
ReLU6 output to ``[0, 6]`` asymmetric, then its padded depthwise conv and its Add both ask for a
symmetric input, each its own, and NNTool inserts ``CNN_Convert`` layers (``_qin0``) to give them
that; nnshell makes such an output symmetric once, from its calibrated range, and has no convert
layer, so the two graphs would not be comparable layer by layer. With a ReLU there (its output
never reached 6 on the calibration images: 2.41 and 5.31 at most, so the model computes the same
thing on them) both tools produce the same layers. The depthwise ReLU6 outputs, which feed only
an unpadded 1x1 conv, keep NNTool's ``[0, 6]`` rule (``KOP_RELUM``).

    python scripts/make_mobile_block.py          # rewrites sample_models/mobile_block.onnx
"""

from __future__ import annotations

import sys
from pathlib import Path

import onnx
from onnx import helper

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "sample_models" / "mobile_net_tiny.onnx"
TARGET = ROOT / "sample_models" / "mobile_block.onnx"
#: The ReLU6 nodes whose output feeds a padded depthwise conv and a residual add.
SHARED_RELU6 = ("/Clip", "/Clip_1")


def derive(model: onnx.ModelProto) -> onnx.ModelProto:
    """Return a copy of ``model`` with the :data:`SHARED_RELU6` Clip nodes made Relu."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    nodes = list(out.graph.node)
    for i, node in enumerate(nodes):
        if node.name in SHARED_RELU6:
            relu = helper.make_node(
                "Relu", [node.input[0]], [node.output[0]], name=node.name.replace("Clip", "Relu")
            )
            out.graph.node.remove(node)
            out.graph.node.insert(i, relu)
    used = {i for n in out.graph.node for i in n.input}
    keep = [n for n in out.graph.node if n.op_type != "Constant" or n.output[0] in used]
    del out.graph.node[:]
    out.graph.node.extend(keep)  # the Clip bounds' Constant nodes go with the Clips
    out.graph.name = "mobile_block"
    onnx.checker.check_model(out)
    return out


def main() -> int:
    """Write :data:`TARGET`."""
    onnx.save(derive(onnx.load(str(SOURCE))), str(TARGET))
    print(f"wrote {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
