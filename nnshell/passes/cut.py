"""Cutting a graph, as NNTool's ``remove``, ``extract`` and ``freeze`` do.

* ``remove N``: N and everything below it go; the activations the removed part read from the
  kept part become graph outputs (drop a detection head). ``--up``: N and everything above it
  go; the activations the kept part read from the removed part become graph inputs. ``--leave``:
  N itself stays (its outputs, or inputs with ``--up``, become the new outputs or inputs).
  ``remove A B``: the nodes strictly between A and B go and B reads A's output instead (only
  when that keeps every shape: the removed section must not change its tensor's shape).
* ``extract`` keeps the selected steps (NNTool: one step; here also a range ``a:b``) as a graph
  of their own: what they read from outside becomes graph inputs, what is read outside (or was a
  graph output) becomes outputs. ``extract 0:k`` keeps a backbone.
* ``freeze`` pins an input's or output's channel order: ``adjust`` does not fold a transpose
  into a frozen input (``graph.meta['frozen_io']``). ``--transpose`` first gives the tensor a
  new axis order with a Transpose between it and the network, as NNTool does.

Constants nobody reads any more are dropped. The IR knows nothing of the shell; errors are
one-line :class:`~nnshell.errors.GraphStateError` / ``UsageError``.
"""

from __future__ import annotations

from collections.abc import Sequence

from nnshell.errors import GraphStateError, UsageError
from nnshell.ir import Graph, Node, TensorInfo
from nnshell.passes._edit import prune_consts, reinfer

FROZEN_KEY = "frozen_io"


def _descendants(graph: Graph, start: Sequence[Node]) -> set[str]:
    """Names of ``start`` and of every node that reads (transitively) from them."""
    names = {n.name for n in start}
    tensors = {o for n in start for o in n.outputs}
    for n in graph.nodes:  # topological order: one sweep is enough
        if n.name not in names and any(i in tensors for i in n.inputs):
            names.add(n.name)
            tensors.update(n.outputs)
    return names


def _ancestors(graph: Graph, start: Sequence[Node]) -> set[str]:
    """Names of ``start`` and of every node they read from (transitively)."""
    names = {n.name for n in start}
    needed = {i for n in start for i in n.inputs}
    for n in reversed(graph.nodes):
        if n.name not in names and any(o in needed for o in n.outputs):
            names.add(n.name)
            needed.update(n.inputs)
    return names


def keep_nodes(graph: Graph, keep: set[str]) -> None:
    """Keep only the nodes named in ``keep``; the cut edges become graph inputs / outputs."""
    if not keep:
        raise GraphStateError("that would remove every node of the graph", "choose another node")
    kept = [n for n in graph.nodes if n.name in keep]
    removed = [n for n in graph.nodes if n.name not in keep]
    made = {o for n in kept for o in n.outputs if o}
    read_kept = {i for n in kept for i in n.inputs if i}
    read_removed = {i for n in removed for i in n.inputs if i}

    def is_act(t: str) -> bool:
        return t in graph.tensors and not graph.tensors[t].is_const

    new_inputs = [i for i in graph.inputs if i in read_kept]
    for n in kept:
        for i in n.inputs:
            if i and is_act(i) and i not in made and i not in new_inputs:
                new_inputs.append(i)
    new_outputs = [o for o in graph.outputs if o in made]
    for n in kept:
        for o in n.outputs:
            if o and o in read_removed and o not in new_outputs:
                new_outputs.append(o)
    for t in graph.inputs:  # an input read by the removed part only, that the kept part passes on
        if t in read_removed and t in read_kept and t not in new_inputs:
            new_inputs.append(t)
    if not new_outputs or not new_inputs:
        which = "output" if not new_outputs else "input"
        raise GraphStateError(f"the kept part would have no {which}", "choose another node")
    graph.nodes = kept
    graph.inputs, graph.outputs = new_inputs, new_outputs
    live = read_kept | made | set(new_inputs)
    for name in [k for k, t in graph.tensors.items() if not t.is_const and k not in live]:
        del graph.tensors[name]
    prune_consts(graph)


def remove_below(graph: Graph, node: Node, up: bool = False, leave: bool = False) -> list[str]:
    """NNTool's one-node ``remove`` (see the module docstring); returns the removed names."""
    group = _ancestors(graph, [node]) if up else _descendants(graph, [node])
    if leave:
        group.discard(node.name)
    keep = {n.name for n in graph.nodes} - group
    removed = [n.name for n in graph.nodes if n.name in group]
    keep_nodes(graph, keep)
    return removed


def remove_between(graph: Graph, first: Node, last: Node) -> list[str]:
    """NNTool's two-node ``remove``: drop the nodes between ``first`` and ``last``."""
    between = (_descendants(graph, [first]) & _ancestors(graph, [last])) - {first.name, last.name}
    if last.name not in _descendants(graph, [first]):
        raise UsageError(f"remove: '{last.name}' does not read from '{first.name}'")
    if not between:
        raise UsageError(f"remove: nothing between '{first.name}' and '{last.name}'")
    src = first.outputs[0]
    inner = [n for n in graph.nodes if n.name in between]
    inner_outs = {o for n in inner for o in n.outputs}
    for n in graph.nodes:
        if n.name not in between and n is not last and any(i in inner_outs for i in n.inputs):
            raise GraphStateError(
                f"remove: '{n.name}' reads from the section between '{first.name}' and "
                f"'{last.name}'",
                "remove one node and what is below it instead",
            )
    fed = [i for i in last.inputs if i in inner_outs]
    for t in fed:
        if graph.tensors[t].shape != graph.tensors[src].shape:
            raise GraphStateError(
                f"remove: the section changes the shape {graph.tensors[src].dims} -> "
                f"{graph.tensors[t].dims}: '{last.name}' could not read '{first.name}'"
            )
    last.inputs = [src if i in inner_outs else i for i in last.inputs]
    if any(o in graph.outputs for o in inner_outs):
        raise GraphStateError("remove: the section writes a graph output")
    graph.nodes = [n for n in graph.nodes if n.name not in between]
    for t in inner_outs:
        graph.tensors.pop(t, None)
    prune_consts(graph)
    return [n.name for n in inner]


def extract_steps(graph: Graph, steps: Sequence[int]) -> None:
    """Keep only the nodes at ``steps`` (one step, or a contiguous range) as a graph."""
    keep = {graph.nodes[s].name for s in steps}
    keep_nodes(graph, keep)


def frozen(graph: Graph) -> set[str]:
    """The graph inputs/outputs whose order ``adjust`` must not change."""
    return {str(t) for t in graph.meta.get(FROZEN_KEY) or []}


def toggle_freeze(
    graph: Graph, tensors: Sequence[str], transpose: Sequence[int] | None = None
) -> list[tuple[str, bool]]:
    """Freeze (or unfreeze, as NNTool toggles) inputs/outputs; optionally transpose them first.

    ``transpose`` is over the axes without the batch (NNTool's ``--transpose 1,2,0``). An input
    becomes that transposed tensor, followed by a Transpose back; an output becomes the
    transposed version of what the network computes.
    """
    if transpose is not None:
        rank = {len(graph.tensors[t].dims) for t in tensors}
        if len(rank) != 1 or sorted(transpose) != list(range(rank.pop())):
            raise UsageError(
                f"freeze --transpose {','.join(map(str, transpose))}: not a permutation of "
                "every axis of the selected tensors",
                "e.g. --transpose 1,2,0 for CHW -> HWC",
            )
        for t in tensors:
            _transpose_io(graph, t, tuple(transpose))
        reinfer(graph)
    now = frozen(graph)
    out = []
    for t in tensors:
        if t in now:
            now.discard(t)
            out.append((t, False))
        else:
            now.add(t)
            out.append((t, True))
    if now:
        graph.meta[FROZEN_KEY] = sorted(now)
    else:
        graph.meta.pop(FROZEN_KEY, None)
    return out


def _transpose_io(graph: Graph, t: str, perm: tuple[int, ...]) -> None:
    from nnshell.ops.shape_ops import TransposeAttrs

    full = (0, *(p + 1 for p in perm))
    inv = tuple(sorted(range(len(full)), key=lambda k: full[k]))
    info = graph.tensors[t]
    if t in graph.inputs:
        inner = graph.unique_name(f"{t}_trans")
        graph.tensors[inner] = TensorInfo(inner, info.shape, info.dtype)
        for n in graph.nodes:
            n.inputs = [inner if i == t else i for i in n.inputs]
        info.shape = tuple(info.shape[p] for p in full)
        node = Node(graph.unique_name(f"{t}_trans"), "Transpose", [t], [inner], TransposeAttrs(inv))
        graph.nodes.insert(0, node)
    else:
        inner = graph.unique_name(f"{t}_untrans")
        graph.tensors[inner] = TensorInfo(inner, info.shape, info.dtype)
        for n in graph.nodes:
            n.outputs = [inner if o == t else o for o in n.outputs]
            n.inputs = [inner if i == t else i for i in n.inputs]
        info.shape = tuple(info.shape[p] for p in full)
        node = Node(
            graph.unique_name(f"{t}_trans"), "Transpose", [inner], [t], TransposeAttrs(full)
        )
        graph.nodes.append(node)
