"""NNTool's POW2 accumulator budget, pinned on an example worked out by hand from the rule.

The rule (POW2.md "Conv / linear", ``nnshell.quant.pow2`` step 3): the accumulator of a conv /
linear layer must hold the integer bits of the larger of its own range and its output's; the
accumulator's range is taken before any fused activation or pool and, for a linear layer, also
includes ``min(Σ w·x, 0)`` per output (the sum before the bias). Missing bits are split between
input and weights in proportion to their fractional bits, ``floor(0.5 + missing·q / (qi + qw))``
each, and the input's share is given by its producer's output Q (here: the graph input's).
Every expected number below was computed by hand in the comments, not read from nnshell.
"""

from __future__ import annotations

import numpy as np

from nnshell.ir import Graph, Node, TensorInfo
from nnshell.ops._pow2 import split_missing
from nnshell.ops.fused import FusedAttrs, FusedPart
from nnshell.quant.fixed_pow2 import q_of
from nnshell.quant.pow2 import Pow2Options, quantize_graph_pow2
from nnshell.quant.ranges import RangeMode
from nnshell.quant.stats import acc_key, collect_stats


def test_split_in_proportion_to_fractional_bits() -> None:
    # 4 missing, Q14 input, Q15 weights: 4·14/29 = 1.93 -> floor(2.43) = 2; 4·15/29 = 2.07 -> 2
    assert split_missing(4, 14, 15) == (2, 2)
    # 3 missing, Q13 / Q15: 3·13/28 = 1.39 -> floor(1.89) = 1; 3·15/28 = 1.61 -> floor(2.11) = 2
    assert split_missing(3, 13, 15) == (1, 2)
    # 1 missing, Q13 / Q13: both shares are 0.5 and round up: NNTool takes 2 bits
    assert split_missing(1, 13, 13) == (1, 1)
    # 2 missing, Q2 / Q15: 2·2/17 = 0.24 -> 0; 2·15/17 = 1.76 -> floor(2.26) = 2
    assert split_missing(2, 2, 15) == (0, 2)


def _linear_relu() -> Graph:
    """y = ReLU(W·x + b), 8 inputs, 2 outputs."""
    g = Graph("acc")
    w = np.array([[0.5] * 8, [-0.75] * 8], np.float32)
    b = np.array([-17.0, 21.0], np.float32)
    g.tensors["x"] = TensorInfo("x", (1, 8), "float32")
    g.tensors["w"] = TensorInfo("w", w.shape, "float32", w)
    g.tensors["b"] = TensorInfo("b", b.shape, "float32", b)
    g.tensors["y"] = TensorInfo("y", (1, 2), "float32")
    parts = (FusedPart("Linear", None, "fc"), FusedPart("Relu", None, "relu"))
    g.nodes.append(Node("f", "Fused", ["x", "w", "b"], ["y"], FusedAttrs(parts, "linear_active")))
    g.inputs, g.outputs = ["x"], ["y"]
    return g


def test_linear_relu_accumulator_budget_by_hand() -> None:
    g = _linear_relu()
    x = np.full((1, 8), 3.0, np.float32)
    stats, _ = collect_stats(g, [(["one"], x)], 1)
    # sums without bias: 8·3·0.5 = 12 and 8·3·(-0.75) = -18; with bias: -5 and 3; after ReLU:
    # 0 and 3. The accumulator range is [-18, 3] (the positive sum 12 does not count).
    acc = stats[acc_key("f")]
    assert (acc.min, acc.max) == (-18.0, 3.0)
    assert (stats["y"].min, stats["y"].max) == (0.0, 3.0)
    qs = quantize_graph_pow2(g, stats, Pow2Options(RangeMode("minmax"), True, True, 16))
    nq = qs.nodes["f"]
    # input [3, 3]: ib = 1 + bitlen(3) = 3, Q13; weights max 0.75: ib 1, Q15; Q13 + Q15 = Q28
    # leaves 31 - 28 = 3 integer bits. Accumulator: floor(18) = 18, ib = 1 + bitlen(18) = 6
    # (the output [0, 3] alone would need 3: it fits, nothing to take). 3 bits missing:
    # input floor(0.5 + 3·13/28) = 1, weights floor(0.5 + 3·15/28) = 2.
    assert nq.info["acc_int_bits"] == 6
    assert nq.info["lost_bits"] == 3 and nq.info["input_lowered_bits"] == 1
    assert q_of(qs.tensors["x"]) == 12  # the input's bit: given by the graph input's own Q
    assert int(nq.consts["in_shift"]) == 0
    assert nq.info["q_w"] == 13 and nq.info["q_acc"] == 25
    # bias max 21: ib 1 + bitlen(21) = 6, Q10 (<= Q25); output [0, 3]: Q13
    assert nq.info["q_b"] == 10 and q_of(qs.nodes["f"].out_q) == 13
    assert int(nq.consts["bias_shift"]) == 25 - 10 and int(nq.consts["out_shift"]) == 25 - 13
    # weights at Q13: 0.5 -> 4096, -0.75 -> -6144; biases at Q10: -17 -> -17408, 21 -> 21504
    assert nq.consts["weights"].tolist() == [[4096] * 8, [-6144] * 8]
    assert nq.consts["biases"].tolist() == [-17408, 21504]
