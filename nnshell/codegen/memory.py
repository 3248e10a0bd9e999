"""Static activation memory: tensor lifetimes -> offsets in one arena (greedy, deterministic).

A tensor lives from the step that writes it (graph inputs: step 0) to the last step that reads
it (graph outputs: past the last step) — exactly the lifetimes ``footprint`` sums, so the peak of
live bytes it reports is a lower bound of any arena. Offsets are placed first-fit: each tensor
takes the lowest offset (aligned to its element size) that overlaps no already placed tensor
alive at the same time. Two orders are tried — execution order and largest-first — and the
smaller arena is kept (ties: execution order); both are deterministic.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from nnshell.ir import Graph


@dataclass(frozen=True)
class Block:
    """One activation tensor in the arena: bytes, alignment and lifetime ``[start, end]``."""

    name: str
    nbytes: int
    align: int
    start: int
    end: int


@dataclass(frozen=True)
class ArenaPlan:
    """Offsets of every activation tensor, the arena size and the lower bound (live peak)."""

    offsets: dict[str, int]
    size: int
    peak_live: int
    order: str


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


def _first_fit(blocks: Sequence[Block]) -> tuple[dict[str, int], int]:
    placed: list[tuple[int, Block]] = []
    offsets: dict[str, int] = {}
    for b in blocks:
        busy = sorted(
            (off, off + p.nbytes) for off, p in placed if p.start <= b.end and b.start <= p.end
        )
        off = 0
        for lo, hi in busy:
            if off + b.nbytes <= lo:
                break
            off = max(off, -(-hi // b.align) * b.align)
        offsets[b.name] = off
        placed.append((off, b))
    size = max((off + b.nbytes for off, b in placed), default=0)
    return offsets, size


def plan_arena(blocks: Sequence[Block]) -> ArenaPlan:
    """First-fit in execution order and largest-first; keep the smaller arena."""
    orders = {
        "execution order": list(blocks),
        "largest first": sorted(blocks, key=lambda b: (-b.nbytes, b.start, b.end)),
    }
    best: ArenaPlan | None = None
    for label, seq in orders.items():
        offsets, size = _first_fit(seq)
        if best is None or size < best.size:
            best = ArenaPlan(offsets, size, peak_live(blocks), label)
    assert best is not None
    return best
