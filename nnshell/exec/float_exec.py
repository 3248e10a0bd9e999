"""The batched float executor: the reference every later stage is measured against.

Activations carry a leading batch axis of any size. Each tensor is freed as soon as its last
consumer has run unless the caller keeps it (``keep``) or an observer is watching, so memory
follows the widest point of the network, not its length.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import numpy as np

from nnshell.errors import ShapeError
from nnshell.ir import Graph
from nnshell.ops import get_op

#: ``observer(tensor_name, batched_value)`` sees every activation the run produces.
Observer = Callable[[str, np.ndarray], None]


def _check_feed(graph: Graph, name: str, value: np.ndarray) -> np.ndarray:
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
    wanted = set(graph.outputs) | set(keep or ())
    last_use: dict[str, int] = {}
    for idx, node in enumerate(graph.nodes):
        for i in node.inputs:
            last_use[i] = idx
    values: dict[str, np.ndarray] = {i: _check_feed(graph, i, feeds[i]) for i in graph.inputs}
    if observer is not None:
        for i in graph.inputs:
            observer(i, values[i])
    for idx, node in enumerate(graph.nodes):
        args = []
        for i in node.inputs:
            if not i:
                args.append(None)
                continue
            t = graph.tensors[i]
            args.append(t.const if t.const is not None else values[i])
        outs = get_op(node.op).run_float(node, *args)
        for name, val in zip(node.outputs, outs, strict=True):
            values[name] = val
            if observer is not None:
                observer(name, val)
        for i in set(node.inputs):
            if last_use.get(i) == idx and i not in wanted and i in values:
                del values[i]
    return {k: v for k, v in values.items() if k in wanted}
