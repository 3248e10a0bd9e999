"""Tensor lifetimes over the execution order: when each activation is written and last read.

A tensor lives from the step that writes it (graph inputs: step 0) to the last step that reads it
(graph outputs: past the last step); constants are no activations. One definition serves the
C arena planner (:mod:`nnshell.codegen.memory`) and the footprint report
(:mod:`nnshell.analysis.footprint`), so the peak one reports bounds the arena the other builds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from nnshell.ir.graph import Graph


@dataclass(frozen=True)
class Block:
    """One activation tensor in the arena: bytes, alignment and lifetime ``[start, end]``."""

    name: str
    nbytes: int
    align: int
    start: int
    end: int


def lifetimes(
    graph: Graph, nbytes: Callable[[str], int], align: Callable[[str], int]
) -> list[Block]:
    """Blocks of the graph inputs and every node output, in execution order."""
    last_use: dict[str, int] = {}
    for idx, node in enumerate(graph.nodes):
        for i in node.inputs:
            if i and not graph.tensors[i].is_const:
                last_use[i] = idx
    end = len(graph.nodes)
    for o in graph.outputs:
        last_use[o] = end
    blocks = [Block(i, nbytes(i), align(i), 0, max(0, last_use.get(i, 0))) for i in graph.inputs]
    for idx, node in enumerate(graph.nodes):
        for o in node.outputs:
            if o:
                blocks.append(Block(o, nbytes(o), align(o), idx, max(idx, last_use.get(o, idx))))
    return blocks


def peak_live(blocks: Sequence[Block]) -> int:
    """Largest sum of the bytes alive at one step (the lower bound of every arena)."""
    steps = {b.start for b in blocks}
    return max((sum(b.nbytes for b in blocks if b.start <= s <= b.end) for s in steps), default=0)
