"""Memory footprint of the float and the quantized model: parameters and peak activation RAM.

Parameters: float32 weights and biases (4 bytes each) against int8 weights, int32 biases and the
per-channel requantization constants (uint8 multiplier + int8 shift). Activation RAM: the peak
over the execution order of the bytes of every tensor alive at that step (a tensor lives from the
step that writes it to the last step that reads it; graph outputs live to the end), at 4 bytes per
float element and at each tensor's quantized width (int8, int16 for Q15 softmax outputs).

What the peak counts, so that a reader can compare it with another tool's figure: whole tensors
only. Not counted: the tiles a tiler streams through a small fast memory (the AutoTiler's L1),
the int32 accumulators (registers or per-tile scratch), constants (they are parameters), and the
AutoTiler's per-layer ``Infos`` arrays (a few bytes per layer; the portable C target has none).

Fusion and quantization shrink the peak for different reasons, and the report keeps them apart:
the float graph *as imported* (what ``show`` prints) holds e.g. a whole conv output before its
pool, which a fused layer never writes out; quantizing then divides what is left by four (int8
against float32). :func:`gap8_placement` turns the figures into where each part lives on GAP8.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nnshell.analysis.summary import node_params
from nnshell.ir import Graph
from nnshell.ir.lifetimes import lifetimes


@dataclass(frozen=True)
class LayerFootprint:
    """Parameter bytes of one layer, float and quantized."""

    name: str
    float_bytes: int
    weight_bytes: int
    bias_bytes: int
    mult_bytes: int

    @property
    def quant_bytes(self) -> int:
        """All quantized parameter bytes of the layer."""
        return self.weight_bytes + self.bias_bytes + self.mult_bytes


@dataclass(frozen=True)
class Peak:
    """The step with the most live activation bytes, and the tensors that make it up.

    A reader checking the figure by hand needs the breakdown, not only the total: e.g. "the
    12,288-byte input plus the 18,816-byte conv1 output".
    """

    bytes: int
    step: int
    node: str
    #: (tensor name, bytes) of every tensor alive at that step, in order of appearance.
    tensors: list[tuple[str, int]] = field(default_factory=list)


@dataclass(frozen=True)
class Footprint:
    """The whole model: per-layer parameters and the peak activation RAM of both versions."""

    layers: list[LayerFootprint]
    float_act_peak: int
    quant_act_peak: int
    quant_act_peak_step: int
    #: The quantized side's label: "SQ8", or "POW2-16" / "POW2-8" (16- or 8-bit containers).
    scheme: str = "SQ8"
    #: Breakdowns of the float and the quantized peaks of the (fused) graph.
    float_peak: Peak | None = None
    quant_peak: Peak | None = None
    #: The float graph as imported, before fusions: what ``show`` prints (None if unknown).
    unfused_peak: Peak | None = None

    @property
    def float_params(self) -> int:
        """Float parameter bytes."""
        return sum(r.float_bytes for r in self.layers)

    @property
    def quant_params(self) -> int:
        """Quantized parameter bytes."""
        return sum(r.quant_bytes for r in self.layers)


def peak_detail(graph: Graph, nbytes: Callable[[str], int]) -> Peak:
    """The peak of live tensor bytes over the execution order, with its tensors.

    At step ``i`` the live set is every tensor written before or at ``i`` and still read at or
    after ``i`` (so a node's inputs and outputs coexist): :func:`nnshell.ir.lifetimes.lifetimes`.
    """
    blocks = lifetimes(graph, nbytes, lambda _name: 1)
    inputs = set(graph.inputs)
    peak_live = [(b.name, b.nbytes) for b in blocks if b.name in inputs]
    peak, peak_step = sum(n for _, n in peak_live), 0
    for idx in range(len(graph.nodes)):
        live = [(b.name, b.nbytes) for b in blocks if b.start <= idx <= b.end]
        total = sum(n for _, n in live)
        if total > peak:
            peak, peak_step, peak_live = total, idx, live
    node = graph.nodes[peak_step].name if graph.nodes else ""
    return Peak(peak, peak_step, node, peak_live)


def footprint(graph: Graph, qstate: Any, unfused: Graph | None = None) -> Footprint:
    """Compute the footprint of ``graph`` float and as quantized by ``qstate``.

    ``unfused``: the float graph before fusions (the session's imported graph), whose peak is
    the float model's real one; without it only the fused graph's float peak is known.
    """
    rows = []
    for node in graph.nodes:
        _, fbytes = node_params(graph, node)
        nq = qstate.nodes.get(node.name)
        c = nq.consts if nq is not None else {}
        w = int(c["weights"].nbytes) if "weights" in c else 0  # int8 (SQ8), int16/int8 (POW2)
        b = int(c["biases"].nbytes) if "biases" in c else 0  # int32 (SQ8), container (POW2)
        m = int(c["mul"].size) * 2 if "mul" in c else 0
        if "float_type" in (nq.info if nq is not None else {}):  # a float layer: in<k> consts
            w = int(c["in1"].nbytes) if "in1" in c else 0
            b = sum(int(a.nbytes) for k, a in c.items() if k.startswith("in") and k != "in1")
        rows.append(LayerFootprint(node.name, fbytes, w, b, m))

    def float_bytes(name: str) -> int:
        return graph.tensors[name].size * 4

    def quant_bytes(name: str) -> int:
        q = qstate.tensors[name]
        return graph.tensors[name].size * int(np.dtype(q.dtype).itemsize)

    fpeak = peak_detail(graph, float_bytes)
    qpeak = peak_detail(graph, quant_bytes)
    upeak = None
    if unfused is not None:
        upeak = peak_detail(unfused, lambda name: unfused.tensors[name].size * 4)
    scheme = getattr(qstate, "scheme", "SQ8")
    if scheme == "POW2":
        scheme += f"-{getattr(qstate.options, 'bits', 16)}"
    if scheme == "FLOAT":
        scheme = str(getattr(qstate.options, "float_type", "FLOAT"))
    return Footprint(rows, fpeak.bytes, qpeak.bytes, qpeak.step, scheme, fpeak, qpeak, upeak)


#: GAP8's memories (GreenWaves GAP8 datasheet): a 64 KB L1 shared by the 8 cluster cores, a
#: 512 KB L2, external L3 (HyperRAM, HyperFlash). The AutoTiler gets budgets below these (the
#: ``l1_size`` / ``l2_size`` settings): L2 also holds the code, the stacks and the I/O buffers.
GAP8_L1_BYTES = 64 * 1024
GAP8_L2_BYTES = 512 * 1024


@dataclass(frozen=True)
class Gap8Placement:
    """Where the quantized model's bytes live on GAP8 under the AutoTiler's budgets.

    GAP8 has no floating-point unit, so only the integer model is a candidate. Activations live
    in L2 (``default_local_location``) and each layer streams tiles of them through L1;
    constants have their home in L3 flash and the graph constructor can promote them to L2 when
    they fit the L2 budget beside the activations, otherwise they are read from L3 tile by tile.
    """

    l1_budget: int
    l2_budget: int
    act_bytes: int
    const_bytes: int

    @property
    def l2_needed(self) -> int:
        """Activations plus every constant, if all of it sat in L2."""
        return self.act_bytes + self.const_bytes

    @property
    def act_fits_l2(self) -> bool:
        """The live activations fit the L2 budget (otherwise they spill to L3 RAM)."""
        return self.act_bytes <= self.l2_budget

    @property
    def consts_fit_l2(self) -> bool:
        """Constants and activations fit the L2 budget together."""
        return self.l2_needed <= self.l2_budget


def gap8_placement(fp: Footprint, settings: dict[str, Any] | None = None) -> Gap8Placement:
    """Place ``fp``'s quantized model on GAP8 under the AutoTiler budgets in ``settings``."""
    st = settings or {}
    return Gap8Placement(
        int(st.get("l1_size", 64000)),
        int(st.get("l2_size", 300000)),
        fp.quant_act_peak,
        fp.quant_params,
    )
