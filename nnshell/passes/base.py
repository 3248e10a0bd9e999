"""The pass framework: what a pass is, what it reports, and the registry of passes.

A pass rewrites a graph in place and returns a PassResult: how many sites it changed, the
fusions and removals it made (for the report) and notes on sites it left alone and why. A pass
that does not apply is a result with a note, never an exception.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from nnshell.ir import Graph


@dataclass(frozen=True)
class FusionRecord:
    """One fused node: the old node names, the new name and the fusion kind."""

    old: tuple[str, ...]
    new: str
    kind: str


@dataclass
class PassResult:
    """What one or several passes did."""

    changed: int = 0
    fusions: list[FusionRecord] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    edits: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def merge(self, other: PassResult) -> None:
        """Add another result to this one (notes are de-duplicated)."""
        self.changed += other.changed
        self.fusions += other.fusions
        self.removed += other.removed
        self.edits += other.edits
        self.notes += [n for n in other.notes if n not in self.notes]


PassFn = Callable[[Graph], PassResult]


@dataclass(frozen=True)
class PassDef:
    """A registered pass: its name, one-line description and function."""

    name: str
    description: str
    fn: PassFn


PASSES: dict[str, PassDef] = {}


def register_pass(name: str, description: str) -> Callable[[PassFn], PassFn]:
    """Decorator: register a pass under ``name``; a duplicate name raises."""

    def deco(fn: PassFn) -> PassFn:
        if name in PASSES:
            raise ValueError(f"pass '{name}' registered twice")
        PASSES[name] = PassDef(name, description, fn)
        return fn

    return deco
