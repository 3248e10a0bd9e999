"""Helpers shared by op modules for the batch-axis rules and the constant-input forms.

Activations carry a leading batch axis (1 in the IR, any N at run time); ONNX axis attributes
refer to that batched shape. An op that would move, merge or cut the batch axis is rejected at
import with a :class:`ShapeError` naming the node, because its batched run could not be faithful.
Newer opsets moved several attributes (axes, pads, min/max, split) to constant inputs; the
helpers here read either form.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from nnshell.errors import ShapeError
from nnshell.ir import Node, TensorInfo

#: Opset assumed for nodes built without an importer (tests, passes): the newest semantics.
LATEST_OPSET = 99


def opset_of(node: Node) -> int:
    """Return the default-domain opset the node was imported under (set by the importer)."""
    return int(node.meta.get("opset", LATEST_OPSET))


def norm_axis(axis: int, rank: int, node: Node) -> int:
    """Return ``axis`` made non-negative for a tensor of ``rank``; out of range is a ShapeError."""
    if not -rank <= axis < rank:
        raise ShapeError(f"{node.name}: axis {axis} is out of range for rank {rank}")
    return axis % rank


def reject_batch_axis(axes: Iterable[int], node: Node, what: str) -> None:
    """Raise a ShapeError when the (normalised) ``axes`` include the batch axis 0."""
    if 0 in set(axes):
        raise ShapeError(
            f"{node.name}: {node.op} {what} axis 0 would mix the batch axis",
            "only non-batch axes are supported",
        )


def const_input(
    ins: Sequence[TensorInfo | None], idx: int, node: Node, what: str
) -> np.ndarray | None:
    """Return the constant value of optional input ``idx`` (None when omitted or absent).

    Raises a ShapeError when the input exists but is computed at run time.
    """
    if idx >= len(ins) or ins[idx] is None:
        return None
    t = ins[idx]
    assert t is not None
    if t.const is None:
        raise ShapeError(f"{node.name}: {node.op} needs a constant {what} input")
    return np.asarray(t.const)


def int_list(value: np.ndarray | Sequence[int] | None) -> tuple[int, ...] | None:
    """Return a tuple of Python ints from an attribute or a constant input (None stays None)."""
    if value is None:
        return None
    return tuple(int(v) for v in np.asarray(value).reshape(-1))


def with_batch(x: np.ndarray, n: int, is_const: bool) -> np.ndarray:
    """Return ``x`` with a batch axis of size ``n``: constants (leading 1) are broadcast."""
    if not is_const:
        return x
    if x.shape[:1] != (1,):
        raise ShapeError(f"constant of shape {x.shape} cannot be broadcast along the batch axis")
    return np.broadcast_to(x, (n, *x.shape[1:]))


def const_flags(ins: Sequence[TensorInfo | None]) -> tuple[bool, ...]:
    """Return which inputs are constants (omitted inputs count as constant)."""
    return tuple(t is None or t.is_const for t in ins)
