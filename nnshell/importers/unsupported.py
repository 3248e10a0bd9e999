"""The one error line of an import that meets unsupported operators (ONNX and TFLite alike).

Every unsupported operator is listed at once, each with up to four of the nodes that use it, so
the user sees the whole gap before converting anything again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from nnshell.errors import UnsupportedOpError


def raise_unsupported(path: str, unsupported: Mapping[str, Sequence[str]], hint: str) -> None:
    """Raise one UnsupportedOpError listing ``{operator: [node names]}``; nothing when empty."""
    if not unsupported:
        return
    parts = [
        f"{op} ({', '.join(names[:4])}{', ...' if len(names) > 4 else ''})"
        for op, names in sorted(unsupported.items())
    ]
    n = sum(len(v) for v in unsupported.values())
    raise UnsupportedOpError(
        f"'{path}': {n} node(s) use unsupported operators: {'; '.join(parts)}", hint
    )
