"""The batched float executor: the reference every later stage is measured against.

Activations carry a leading batch axis of any size. Each tensor is freed as soon as its last
consumer has run unless the caller keeps it (``keep``) or an observer is watching, so memory
follows the widest point of the network, not its length.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import numpy as np

from nnshell.errors import ShapeError
from nnshell.ir import Graph, Node
from nnshell.ops import get_op

#: ``observer(tensor_name, batched_value)`` sees every activation the run produces.
Observer = Callable[[str, np.ndarray], None]


def _check_feed(graph: Graph, name: str, value: np.ndarray) -> np.ndarray:
    if graph.meta.get("input_formatter"):  # raw HWC pixels of a formatted input (imageformat)
        from nnshell.input.formatter import format_feed

        value = format_feed(graph, name, value)
    info = graph.tensor(name)
    want = info.shape[1:]
    if tuple(value.shape[1:]) != tuple(want):
        raise ShapeError(
            f"input '{name}' expects batches of shape {want}, got {tuple(value.shape[1:])}"
        )
    return np.asarray(value, dtype=np.dtype(info.dtype))


def run_float(
    graph: Graph,
    feeds: Mapping[str, np.ndarray],
    *,
    keep: Iterable[str] | None = None,
    observer: Observer | None = None,
) -> dict[str, np.ndarray]:
    """Run ``graph`` on batched ``feeds``; return the graph outputs plus the ``keep`` tensors.

    ``keep="all"`` is not special-cased: pass every tensor name to keep them all.
    """
    missing = [i for i in graph.inputs if i not in feeds]
    if missing:
        raise ShapeError(f"no value fed for graph input(s) {', '.join(missing)}")
    values = {i: _check_feed(graph, i, feeds[i]) for i in graph.inputs}

    def call(node: Node, args: list[np.ndarray | None]) -> list[np.ndarray]:
        full = [
            graph.tensors[i].const if i and graph.tensors[i].const is not None else a
            for i, a in zip(node.inputs, args, strict=True)
        ]
        return get_op(node.op).run_float(node, *full)

    return walk(graph, values, call, keep, observer)


def walk(
    graph: Graph,
    values: dict[str, np.ndarray],
    call: Callable[[Node, list[np.ndarray | None]], list[np.ndarray]],
    keep: Iterable[str] | None,
    observer: Observer | None,
) -> dict[str, np.ndarray]:
    """Run every node in order with ``call(node, activation args)`` (None for constants).

    Shared by the float and the integer executors: each tensor is dropped after its last reader
    unless kept, and the observer sees the inputs and every node output.
    """
    wanted = set(graph.outputs) | set(keep or ())
    last_use: dict[str, int] = {}
    for idx, node in enumerate(graph.nodes):
        for i in node.inputs:
            last_use[i] = idx
    if observer is not None:
        for i in graph.inputs:
            observer(i, values[i])
    for idx, node in enumerate(graph.nodes):
        args = [values[i] if i and not graph.tensors[i].is_const else None for i in node.inputs]
        outs = call(node, args)
        for name, val in zip(node.outputs, outs, strict=False):
            values[name] = val
            if observer is not None:
                observer(name, val)
        for i in set(node.inputs):
            if last_use.get(i) == idx and i not in wanted and i in values:
                del values[i]
    return {k: v for k, v in values.items() if k in wanted}
