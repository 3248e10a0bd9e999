"""Whether an input formatter's codes are the quantized input codes, asked of the scheme the
graph is quantized with: SQ8 (``formatter``) or POW2 (``formatter_pow2``) — one table keyed by
the :class:`~nnshell.quant.scheme.Scheme`, so neither formatter module imports the other."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from nnshell.input.formatter import Formatter, FormatterError, check_sq8_formatter
from nnshell.input.formatter_pow2 import check_pow2_formatter
from nnshell.quant.scheme import POW2, SQ8, Scheme, scheme_of

if TYPE_CHECKING:
    from nnshell.quant.sq8 import QuantState

_CHECKS: dict[Scheme, Callable[[Any, str, Formatter], None]] = {
    SQ8: check_sq8_formatter,
    POW2: check_pow2_formatter,
}


def check_formatter(graph: Any, qstate: QuantState | None, name: str, fmt: Formatter) -> None:
    """Raise FormatterError unless ``fmt``'s codes are the quantized input codes of ``name``
    (nothing to check before ``aquant``)."""
    if qstate is None:
        return
    scheme = scheme_of(qstate)
    check = _CHECKS.get(scheme)
    if check is None:
        raise FormatterError(
            f"imageformat: the graph is quantized {scheme}; input formatters are checked "
            "against SQ8 and POW2 input codes only",
            "fusions --scale8 and aquant -s SQ8",
        )
    check(qstate, name, fmt)


__all__ = ["check_formatter"]
