"""What ``gen`` checks before it writes a line: recorded shapes, kernel descriptors, sizes.

Why: the generated C sizes every arena slot from the *recorded* tensor shapes, while each
kernel writes as much as its descriptors (the NodeQuant's geometry and constants) say. Both
come from a state file that anyone can edit: an output recorded as ``[1, 6, 1, 1]`` for a conv
that writes ``[1, 6, 14, 14]`` gave C that overflowed its arena. So before generating:

* every node's output shapes are derived again from its op's shape rule (``OpDef.infer``, the
  rule the importer and every pass use) and must equal the recorded ones;
* the geometry a conv-like NodeQuant carries must be the one its attributes and shapes give,
  and its weight and per-channel constants must have the sizes the kernel reads;
* every activation, the arena, the constants and the ``--verify`` data stay under caps (a huge
  recorded shape must not make gen allocate or write gigabytes); :data:`LIMITS` names the
  environment variables that raise them.

Each refusal is one :class:`CodegenError` line naming the node.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from nnshell.codegen.csafe import shown
from nnshell.errors import CodegenError, NnshellError
from nnshell.ir import Graph, Node
from nnshell.safeio import GiB, Limit, MiB, human_bytes

if TYPE_CHECKING:
    from nnshell.quant.sq8 import QuantState

#: Largest activation tensor, and largest arena, of generated C.
ARENA = Limit("arena of generated C", 256 * MiB, "NNSHELL_MAX_ARENA_BYTES")
#: Largest total of the constant arrays of generated C.
CONSTANTS = Limit("constants of generated C", 256 * MiB, "NNSHELL_MAX_CONST_BYTES")
#: Largest data ``gen --verify`` writes: the input file plus every step's outputs.
VERIFY_DATA = Limit("gen --verify data", 1 * GiB, "NNSHELL_MAX_VERIFY_BYTES")
LIMITS: tuple[Limit, ...] = (ARENA, CONSTANTS, VERIFY_DATA)

_FIX = "open the ONNX model again (or load a state saved by nnshell) and quantize it again"
_PER_CHANNEL = ("bias_total", "biases", "mul", "shift", "weights_scale")


def check_limit(limit: Limit, nbytes: int, what: str) -> None:
    """Refuse ``nbytes`` above ``limit`` in one line naming ``what`` and the variable."""
    if nbytes > limit.bytes:
        raise CodegenError(
            f"{what} needs {human_bytes(nbytes)}, more than the {limit.kind} limit of "
            f"{human_bytes(limit.bytes)} (a shape in the graph is far too large: corrupt or edited "
            "state?)",
            f"check the model's input size; {limit.env}=BYTES raises the limit",
        )


def _label(node: Node) -> str:
    from nnshell.ops import get_op

    return get_op(node.op).label(node)


def _dims(shape: Any, what: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(d) for d in shape)
    except (TypeError, ValueError):
        raise CodegenError(f"{what} has shape {shown(shape)}, not a list of integers") from None
    if any(d < 1 for d in dims) or not all(isinstance(d, (int, np.integer)) for d in shape):
        raise CodegenError(f"{what} has shape {list(dims)}: dimensions must be integers >= 1")
    return dims


def check_shapes(graph: Graph, qstate: QuantState | None = None) -> None:
    """Refuse a graph whose recorded shapes are not what its ops compute (one line per node).

    Graph inputs are taken as recorded (nothing derives them) but must be sane integers; every
    node output must equal ``get_op(node.op).infer`` of its recorded inputs, and every
    activation stays under the :data:`ARENA` cap. With ``qstate``, conv-like NodeQuants are
    checked too (:func:`check_descriptors`).
    """
    from nnshell.ops import get_op

    for name in graph.inputs:
        dims = _dims(graph.tensors[name].shape, f"graph input '{name}'")
        check_limit(ARENA, int(np.prod(dims, dtype=object)), f"graph input '{name}'")
    for node in graph.nodes:
        where = f"{node.name} ({_label(node)})"
        try:
            shapes = get_op(node.op).infer(node, graph.in_infos(node))
        except NnshellError as exc:
            raise CodegenError(f"{where}: {exc.message}", _FIX) from None
        except Exception as exc:  # noqa: BLE001 - a corrupt node breaks infer in many ways
            raise CodegenError(
                f"{where}: its attributes or input shapes are inconsistent "
                f"({type(exc).__name__}: {str(exc)[:80]})",
                _FIX,
            ) from None
        if len(node.outputs) > len(shapes):
            raise CodegenError(
                f"{where}: records {len(node.outputs)} output(s), its op computes {len(shapes)}",
                _FIX,
            )
        for o, s in zip(node.outputs, shapes, strict=False):
            if not o:
                continue
            got = _dims(graph.tensors[o].shape, f"{where}: output '{o}'")
            want = tuple(int(d) for d in s)
            if got != want:
                raise CodegenError(
                    f"{where}: output '{o}' is recorded with shape {list(got)} but "
                    f"{_label(node)} computes {list(want)} from its inputs (the generated "
                    "kernel would write past its buffer: corrupt or edited state)",
                    _FIX,
                )
            check_limit(ARENA, int(np.prod(got, dtype=object)), f"{where}: output '{o}'")
    if qstate is not None:
        for node in graph.nodes:
            nq = qstate.nodes.get(node.name)
            if nq is not None:
                check_descriptors(graph, node, nq)


def _plain(v: Any) -> Any:
    """Nested sequences of numbers as nested tuples of ints (to compare geometries)."""
    if isinstance(v, (list, tuple)):
        return tuple(_plain(x) for x in v)
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        return int(v)
    return ("not an integer", repr(v)[:40])


def _geometry(head: Node, graph: Graph) -> Any:
    """The geometry the head's attributes and shapes give (AttributeError: an op without one)."""
    from nnshell.ops import get_op

    x = graph.tensors[head.inputs[0]].shape
    w = graph.tensors[head.inputs[1]].shape
    return get_op(head.op).geometry(head, x, w)  # type: ignore[attr-defined]


def check_descriptors(graph: Graph, node: Node, nq: Any) -> None:
    """Refuse a conv-like NodeQuant whose geometry or constant sizes do not fit the graph.

    The geometry (kernel, strides, pads, output sizes) must be the one the head's attributes
    and the recorded shapes give; the weights must hold the graph's weight values and each
    per-channel vector one value per output channel: what the C kernel will index.
    """
    from nnshell.ops import get_op

    head = get_op(node.op).head(node)
    head_op = get_op(head.op)
    if not head_op.weighted or "float_type" in (getattr(nq, "info", None) or {}):
        return  # a float layer's C takes its geometry from the graph; ops._float checks sizes
    where = f"{node.name} ({_label(node)})"
    info = getattr(nq, "info", None) or {}
    consts = getattr(nq, "consts", None) or {}
    try:
        if "geometry" in info or head_op.kind != "linear":
            want = _plain(_geometry(head, graph))
            if _plain(info.get("geometry")) != want:
                raise CodegenError(
                    f"{where}: the quantized geometry {shown(info.get('geometry'), 80)} is not "
                    f"the one its attributes and shapes give {want} (corrupt or edited state)",
                    _FIX,
                )
        w = consts.get("weights")
        wt = graph.tensors.get(head.inputs[1]) if len(head.inputs) > 1 else None
        if w is None or wt is None:
            return
        w = np.asarray(w)
        if getattr(head_op, "weights_relaid", False):  # output-major: same values, other layout
            same = w.ndim == len(wt.shape) and w.size == np.prod(wt.shape, dtype=np.int64)
        else:
            same = tuple(w.shape) == tuple(wt.shape)
        if not same or w.ndim < 2:
            raise CodegenError(
                f"{where}: the quantized weights have shape {list(w.shape)}, the graph's "
                f"'{head.inputs[1]}' {list(wt.shape)} (corrupt or edited state)",
                _FIX,
            )
        out_c = int(w.shape[0])
        y = graph.tensors[node.outputs[0]].shape
        if len(y) < 2 or int(y[1]) != out_c:
            raise CodegenError(
                f"{where}: {out_c} quantized output channels, the output has shape {list(y)} "
                "(corrupt or edited state)",
                _FIX,
            )
        for key in _PER_CHANNEL:
            if key in consts and int(np.asarray(consts[key]).size) != out_c:
                raise CodegenError(
                    f"{where}: constant '{key}' has {np.asarray(consts[key]).size} values for "
                    f"{out_c} output channels (corrupt or edited state)",
                    _FIX,
                )
    except NnshellError as exc:
        if isinstance(exc, CodegenError):
            raise
        raise CodegenError(f"{where}: {exc.message}", _FIX) from None
    except (TypeError, ValueError, KeyError, IndexError, AttributeError) as exc:
        raise CodegenError(
            f"{where}: its quantization record is inconsistent ({type(exc).__name__})", _FIX
        ) from None


def check_8bit_multipliers(qstate: QuantState) -> None:
    """GAP's SQ8 kernels take 8-bit multipliers: refuse a layer quantized with wider ones (a
    TFLite file opened with ``-q`` keeps its 30-bit precision unless ``file_mult_bits`` is 8)."""
    for name, nq in (getattr(qstate, "nodes", None) or {}).items():
        mul = (getattr(nq, "consts", None) or {}).get("mul")
        if mul is not None and np.asarray(mul).size and int(np.asarray(mul).max()) > 255:
            bits = (getattr(nq, "info", None) or {}).get("mult_bits", "?")
            raise CodegenError(
                f"{shown(name, 60)}: {bits}-bit requantization multipliers (open -q keeps the "
                "TFLite file's precision); the AutoTiler's SQ8 kernels take 8-bit ones",
                "set file_mult_bits 8, then fusions --scale8 again (or gen --target c)",
            )


def verify_bytes(n_images: int, per_image: Sequence[int]) -> int:
    """Bytes ``gen --verify`` writes for ``n_images`` (inputs and step outputs), capped."""
    total = int(n_images) * sum(int(b) for b in per_image)
    check_limit(VERIFY_DATA, total, f"gen --verify on {n_images} image(s)")
    return total


__all__ = [
    "ARENA",
    "CONSTANTS",
    "LIMITS",
    "VERIFY_DATA",
    "check_8bit_multipliers",
    "check_descriptors",
    "check_limit",
    "check_shapes",
    "verify_bytes",
]
