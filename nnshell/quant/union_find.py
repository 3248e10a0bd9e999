"""Union-find over tensor names: the groups of tensors that must share one quantization.

Both schemes tie tensors (SQ8: one qtype through data moves and Concat; POW2: one Q); the
grouping is the same structure, so it is written once. Groups and their members come out in
the order the tensors were first seen, so every run groups (and names) them the same way.
"""

from __future__ import annotations


class TensorGroups:
    """Disjoint sets of tensor names with path halving; :meth:`groups` lists them."""

    def __init__(self) -> None:
        self._parent: dict[str, str] = {}

    def find(self, t: str) -> str:
        """The representative of ``t``'s group (``t`` joins as a group of its own if new)."""
        parent = self._parent
        while parent.setdefault(t, t) != t:
            parent[t] = parent[parent[t]]
            t = parent[t]
        return t

    def union(self, a: str, b: str) -> None:
        """Put ``a``'s group into ``b``'s (``b``'s representative stays)."""
        self._parent[self.find(a)] = self.find(b)

    def groups(self) -> dict[str, list[str]]:
        """``representative -> members`` in first-seen order."""
        out: dict[str, list[str]] = {}
        for t in list(self._parent):
            out.setdefault(self.find(t), []).append(t)
        return out
