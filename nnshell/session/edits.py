"""Session-level graph edits: ``remove``, ``extract``, ``freeze`` (the logic: passes/cut.py).

An edit applies to a copy of the working graph, which replaces it only when the edit succeeded
(nothing changes on an error). After ``fusions`` the edited graph also becomes the graph later
fusions start from (the old pre-fusion graph still holds the removed nodes). Calibration and
quantization are dropped, as ``adjust`` does: they name tensors of the old graph.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nnshell.errors import UsageError


@dataclass(frozen=True)
class EditOutcome:
    """What an edit did: the removed node names, the graph's new inputs/outputs, notes."""

    removed: list[str]
    inputs: list[str]
    outputs: list[str]
    notes: list[str]


def _node(graph: Any, token: str) -> Any:
    from nnshell.selectors import select_steps

    steps = select_steps(graph, token)
    if len(steps) != 1:
        raise UsageError(f"'{token}' names {len(steps)} nodes: give one")
    return graph.nodes[steps[0]]


def _commit(session: Any, work: Any, removed: list[str]) -> EditOutcome:
    notes = []
    session.graph = work
    if session.prefusion is not None:
        session.prefusion = work.copy()
    session._runners = {}
    if session._drop_quantization():
        notes.append("the graph changed: calibration and quantization dropped (aquant again)")
    return EditOutcome(removed, list(work.inputs), list(work.outputs), notes)


def remove(session: Any, nodes: list[str], up: bool = False, leave: bool = False) -> EditOutcome:
    """NNTool's ``remove NODE [NODE] [--up] [--leave]`` on the session's graph."""
    from nnshell.passes.cut import remove_below, remove_between

    graph = session.require_graph()
    if not 1 <= len(nodes) <= 2:
        raise UsageError("remove takes one node, or two (from, to)", "help remove")
    work = graph.copy()
    picked = [_node(work, t) for t in nodes]
    if len(picked) == 2:
        if up or leave:
            raise UsageError("remove A B: --up and --leave apply to one node only")
        removed = remove_between(work, picked[0], picked[1])
    else:
        removed = remove_below(work, picked[0], up, leave)
    return _commit(session, work, removed)


def extract(session: Any, step: str) -> EditOutcome:
    """NNTool's ``extract STEP``: keep that step (or a range ``a:b``) as the whole graph."""
    from nnshell.passes.cut import extract_steps
    from nnshell.selectors import select_steps

    graph = session.require_graph()
    work = graph.copy()
    steps = select_steps(work, step)
    if not steps or steps != list(range(steps[0], steps[-1] + 1)):
        raise UsageError(f"extract '{step}': give one step or a contiguous range a:b")
    before = [n.name for n in work.nodes]
    extract_steps(work, steps)
    kept = {n.name for n in work.nodes}
    return _commit(session, work, [n for n in before if n not in kept])


def freeze(session: Any, names: list[str], transpose: str | None = None) -> list[tuple[str, bool]]:
    """NNTool's ``freeze NODE... [--transpose a,b,c]`` (toggle) on inputs/outputs."""
    from nnshell.ir.io_names import resolve_io
    from nnshell.passes.cut import toggle_freeze

    graph = session.require_graph()
    if session.scheme is not None:
        raise UsageError("freeze must come before fusions", "open the model again, then freeze")
    tensors = []
    for n in names:
        t = resolve_io(graph, n)
        if t is None:
            raise UsageError(f"freeze: '{n}' is not a graph input or output", "see show")
        tensors.append(t)
    perm = None
    if transpose is not None:
        try:
            perm = [int(a) for a in transpose.split(",")]
        except ValueError:
            raise UsageError(f"freeze --transpose '{transpose}' is not axes like 1,2,0") from None
    work = graph.copy()
    done = toggle_freeze(work, tensors, perm)
    session.graph = work
    session._runners = {}
    if perm is not None:
        session._drop_quantization()
    return done
