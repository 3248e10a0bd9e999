"""The record one ``qexplain`` explanation is: shared by the SQ8 and POW2 explainers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class QExplain:
    """One layer's explanation: ``data`` is the ``--json`` document, ``lines`` the text."""

    step: int
    name: str
    data: dict[str, Any]
    lines: list[str] = field(default_factory=list)
