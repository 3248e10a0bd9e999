"""The per-op registry: every operator is described once, by one :class:`OpDef` subclass.

An op module defines a frozen ``Attrs`` dataclass whose defaults are the ONNX defaults, a shape
rule (``infer``), a float kernel (``run_float``) and cost figures (``macs``). Later stages add
``quantize``, ``run_int`` and ``emit_c`` hooks to the same class. Drivers never branch on op
names: they call ``get_op(node.op).<hook>``. ``@register`` refuses a duplicate name, so two
modules cannot silently claim one op.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from nnshell.errors import QuantizationError, UnsupportedOpError
from nnshell.ir import Node, Shape, TensorInfo

#: What an op's shape rule may raise on attributes or input shapes it cannot handle: the ONNX
#: importer and the state loader turn these into one error line naming the node.
INFER_ERRORS: tuple[type[BaseException], ...] = (
    TypeError,
    ValueError,
    KeyError,
    IndexError,
    OverflowError,
    ZeroDivisionError,
    AssertionError,  # ops assert their required inputs are present
    AttributeError,
)


@dataclasses.dataclass(frozen=True)
class NoAttrs:
    """Attributes of an op that has none."""


class OpDef:
    """Base of every op description; subclasses override the hooks they support.

    Conventions: ``infer`` receives the input TensorInfos (None for an omitted optional input)
    with activation shapes carrying a batch of 1, and returns the full output shapes. ``run_float``
    receives arrays whose activations carry a leading batch axis of any size.
    """

    name: ClassVar[str]
    onnx_types: ClassVar[tuple[str, ...]] = ()
    Attrs: ClassVar[type] = NoAttrs
    #: ONNX attributes accepted and ignored because they do not change inference results.
    ignored_attrs: ClassVar[frozenset[str]] = frozenset()
    #: Group used by reports: conv, linear, pool, activation, elementwise, shape, other.
    kind: ClassVar[str] = "other"

    def from_onnx(self, attrs: dict[str, Any], node_name: str) -> Any:
        """Build the Attrs dataclass from plain ONNX attribute values; unknown ones are errors."""
        known = {f.name for f in dataclasses.fields(self.Attrs)}
        unknown = sorted(set(attrs) - known - self.ignored_attrs)
        if unknown:
            raise UnsupportedOpError(
                f"{node_name}: {self.name} attribute(s) {', '.join(unknown)} not supported"
            )
        return self.Attrs(**{k: v for k, v in attrs.items() if k in known})

    def infer(self, node: Node, ins: Sequence[TensorInfo | None]) -> list[Shape]:
        """Return the output shapes (default: same as the first input)."""
        first = ins[0]
        assert first is not None
        return [first.shape]

    def run_float(self, node: Node, *xs: np.ndarray | None) -> list[np.ndarray]:
        """Run the float kernel on batched arrays."""
        raise NotImplementedError(f"{self.name}: no float kernel")

    def macs(self, node: Node, ins: Sequence[TensorInfo | None], outs: Sequence[TensorInfo]) -> int:
        """Multiply-accumulates for one batch item (0 for ops that do no arithmetic of note)."""
        return 0

    # -- what drivers ask of any node, so that they never compare op names ----------------------
    #: The quantizers give all its activation inputs one qtype (Concat), fixed formats aside.
    q_ties_inputs: ClassVar[bool] = False
    #: A layer with a weight tensor (conv, transposed conv, linear) or a fusion headed by one.
    weighted: ClassVar[bool] = False
    #: What a pool does to its window ("max" or "average"); "" for other ops.
    pool_reduce: ClassVar[str] = ""
    #: The AutoTiler generator family that writes this op as a kernel head: "conv", "linear",
    #: "pool" (a windowed pool), "global_pool", "matadd", "softmax"; "" when it has none (an
    #: activation alone goes through its fused-activation hooks).
    at_generator: ClassVar[str] = ""
    #: How the AutoTiler activation infos read this activation: "relu", "clip" (ReLU / ReLU-N)
    #: or "leaky"; "" for any other op (a function activation is refused by its ``at_kop``).
    at_activation: ClassVar[str] = ""
    #: Moves no data in the AutoTiler model (a reshape): its output aliases its input buffer.
    at_alias: ClassVar[bool] = False
    #: A fusion node: its ``attrs.parts`` hold the fused ops, its first part is the head.
    is_fusion: ClassVar[bool] = False
    #: Its constant inputs are constant nodes of their own in NNTool's graph (weights, biases,
    #: constant operands), which the AutoTiler names and orders like NNTool.
    at_const_nodes: ClassVar[bool] = False

    def label(self, node: Node) -> str:
        """The op as reports name it (a fusion: its parts joined with ``+``)."""
        return str(node.op)

    def head(self, node: Node) -> Node:
        """The node whose arithmetic sets the layer's geometry (a fusion: its first part)."""
        return node

    def tail_parts(self, node: Node) -> tuple[Any, ...]:
        """What a fusion applies after its head (pools, activations); () for a plain op."""
        return ()

    # -- SQ8 quantization hooks (ops without them cannot be quantized: an error names them) ----
    #: Output qtype equals the input qtype (max pool, reshapes, transposes): no arithmetic.
    q_passthrough: ClassVar[bool] = False
    #: Output may be asymmetric (conv / linear and the fusions built on them).
    q_asym_output: ClassVar[bool] = False

    def q_asym(self, node: Node) -> bool:
        """Whether this node's output may be asymmetric (default: the class flag)."""
        return self.q_asym_output

    def q_symmetric_input(self, node: Node, idx: int) -> str | None:
        """Why input ``idx`` must be symmetric (zero point 0), or None when any qtype works."""
        return None

    def q_padded_input(self, node: Node, idx: int) -> str | None:
        """Why input ``idx`` is read with padding or averaged globally (a padded conv or pool, a
        global average pool), or None. nnshell pads with the input zero point (the code of real
        0) and subtracts it from a global average, so any qtype works; ``aquant
        --nntool_padding`` forces these inputs symmetric instead, as NNTool does (the reason
        returned is then the ``forced by`` text; docs/quantization.md)."""
        return None

    def q_padded_output(self, node: Node) -> str | None:
        """Why a fused layer's own output is read with padding by a later part (a padded
        average pool after its head), or None; forced symmetric only by ``--nntool_padding``."""
        return None

    def q_output_qtype(self, node: Node, in_q: list[Any]) -> Any:
        """A fixed output qtype the op imposes (softmax Q15, sigmoid 1/127), or None."""
        return None

    def q_output_bound(self, node: Node, graph: Any) -> tuple[float, float] | None:
        """The real range ``[0, N]`` a ReLU-N output is given when nothing forces it symmetric.

        NNTool quantizes a ReLU6 (any ``Clip(0, N)``) output to exactly ``[0, N]``, whatever
        the calibration saw, so that the int8 saturation is the clip (SQ8.md §2); ops whose
        output is no ReLU-N return None and keep their calibrated range.
        """
        return None

    def quantize_sq8(self, ctx: Any) -> Any:
        """Return the NodeQuant (integer parameters) of ``ctx.node``."""
        raise QuantizationError(
            f"{ctx.node.name}: {self.name} has no SQ8 quantizer",
            "nnshell does not silently fall back to float; remove or replace this layer",
        )

    def run_int(self, node: Node, nq: Any, *xs: np.ndarray | None) -> list[np.ndarray]:
        """Run the integer kernel on batched integer arrays."""
        raise QuantizationError(f"{node.name}: {self.name} has no integer kernel")

    # -- POW2 hooks (POW2.md): each op class defines its own, from the shared arithmetic of
    # ``nnshell.ops._pow2``; ops without them cannot be quantized in POW2 (an error names them).
    # ``emit_c_pow2`` has no default: an op without it has no POW2 C kernel.
    def quantize_pow2(self, ctx: Any) -> Any:
        """Return the POW2 NodeQuant (Q formats, shifts, 16/8-bit constants) of ``ctx.node``."""
        raise QuantizationError(
            f"{ctx.node.name}: {self.name} has no POW2 quantizer",
            "nnshell does not silently fall back to float; use aquant -s SQ8 or replace the layer",
        )

    def q_output_qtype_pow2(self, node: Node, bits: int) -> Any:
        """A fixed POW2 output format the op imposes (softmax Q15, sigmoid / tanh Q15 or Q7)."""
        return None

    def run_int_pow2(self, node: Node, nq: Any, *xs: np.ndarray | None) -> list[np.ndarray]:
        """Run the POW2 integer kernel on batched integer arrays."""
        raise QuantizationError(f"{node.name}: {self.name} has no POW2 integer kernel")

    # -- float layers (docs/FLOAT16.md): float32 arithmetic on widened stored values ----------
    def run_float_t(self, node: Node, *xs: np.ndarray | None) -> list[np.ndarray]:
        """The float32 result of a float layer before it is stored (``ops._float``). The
        default is the float kernel on float32 arrays; conv and linear override it with the
        fixed accumulation order of the C runtime."""
        args = [None if x is None else np.asarray(x, np.float32) for x in xs]
        return [np.asarray(y, np.float32) for y in self.run_float(node, *args)]


_REGISTRY: dict[str, OpDef] = {}
_BY_ONNX: dict[str, OpDef] = {}


def register(cls: type[OpDef]) -> type[OpDef]:
    """Class decorator: add one instance of ``cls`` to the registry; duplicates raise."""
    if cls.name in _REGISTRY:
        raise ValueError(f"op '{cls.name}' registered twice")
    inst = cls()
    _REGISTRY[cls.name] = inst
    for t in cls.onnx_types:
        if t in _BY_ONNX:
            raise ValueError(f"ONNX op type '{t}' claimed by {_BY_ONNX[t].name} and {cls.name}")
        _BY_ONNX[t] = inst
    return cls


def get_op(name: str) -> OpDef:
    """Return the op called ``name`` (an IR op name)."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnsupportedOpError(f"operator '{name}' is not supported") from None


def op_for_onnx(op_type: str) -> OpDef | None:
    """Return the op that imports ONNX ``op_type``, or None when nnshell has none."""
    return _BY_ONNX.get(op_type)


def all_ops() -> dict[str, OpDef]:
    """Return a copy of the registry (name -> op)."""
    return dict(_REGISTRY)


def supported_onnx_types() -> list[str]:
    """Return the sorted ONNX op types nnshell imports."""
    return sorted(_BY_ONNX)
