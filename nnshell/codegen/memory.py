"""Static activation memory: tensor lifetimes -> offsets in one arena (greedy, deterministic).

The lifetimes are :mod:`nnshell.ir.lifetimes` (the ones ``footprint`` sums too), so the peak of
live bytes it reports is a lower bound of any arena. Offsets are placed first-fit: each tensor
takes the lowest offset (aligned to its element size) that overlaps no already placed tensor
alive at the same time. Two orders are tried — execution order and largest-first — and the
smaller arena is kept (ties: execution order); both are deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from nnshell.ir.lifetimes import Block, lifetimes, peak_live


@dataclass(frozen=True)
class ArenaPlan:
    """Offsets of every activation tensor, the arena size and the lower bound (live peak)."""

    offsets: dict[str, int]
    size: int
    peak_live: int
    order: str


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


__all__ = ["ArenaPlan", "Block", "lifetimes", "peak_live", "plan_arena"]
