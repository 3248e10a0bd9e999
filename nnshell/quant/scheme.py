"""The quantization schemes as objects: which op hooks each one runs, looked up once.

A quantized graph records its scheme by name (``QuantState.scheme``, kept as text in saved
states); :func:`scheme_of` turns it into the :class:`Scheme`, and code that differs per scheme
asks the object for its op hook (``scheme.run_int(op)``, ``scheme.emit_c(op)``) or keys a table
by it (the explainers, the AutoTiler planners), instead of comparing scheme names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nnshell.errors import GraphStateError


@dataclass(frozen=True)
class Scheme:
    """One quantization scheme: its name, its ``fusions`` flag and its op hooks (FLOAT: the
    float layers ``qtune`` chooses, docs/FLOAT16.md)."""

    name: str
    #: ``fusions --<flag>`` that prepares a graph for the scheme (NNTool's names).
    fusions: str
    #: The op's quantizer (a ``QuantContext``/``Pow2Context`` -> ``NodeQuant``).
    quantize: Callable[[Any], Callable[..., Any]]
    #: The op's integer kernel ``(node, nq, *codes) -> [codes]``.
    run_int: Callable[[Any], Callable[..., list[Any]]]
    #: The op's C emitter ``(node, nq, ctx) -> code``, or None when it has none.
    emit_c: Callable[[Any], Callable[..., Any] | None]

    def __str__(self) -> str:
        return self.name


def _emit_c_sq8(op: Any) -> Callable[..., Any] | None:
    # the C emitters are optional hooks: an op without one is refused by ``gen --target c``
    return getattr(op, "emit_c", None)


def _emit_c_pow2(op: Any) -> Callable[..., Any] | None:
    return getattr(op, "emit_c_pow2", None)


SQ8 = Scheme(
    "SQ8",
    "scale8",
    quantize=lambda op: op.quantize_sq8,
    run_int=lambda op: op.run_int,
    emit_c=_emit_c_sq8,
)
POW2 = Scheme(
    "POW2",
    "pow2",
    quantize=lambda op: op.quantize_pow2,
    run_int=lambda op: op.run_int_pow2,
    emit_c=_emit_c_pow2,
)
#: Every scheme by the name a quantization records.


def _run_float(op: Any) -> Callable[..., list[Any]]:
    # float layers run one shared float kernel (docs/FLOAT16.md), not an op hook
    from nnshell.ops._float import run_node_float

    return run_node_float


def _emit_c_float(op: Any) -> Callable[..., Any] | None:
    return getattr(op, "emit_c_float", None)


def _no_quantizer(op: Any) -> Callable[..., Any]:
    raise GraphStateError("float layers are chosen by qtune, not quantized by aquant")


FLOAT = Scheme("FLOAT", "scale8", quantize=_no_quantizer, run_int=_run_float, emit_c=_emit_c_float)
SCHEMES: dict[str, Scheme] = {s.name: s for s in (SQ8, POW2, FLOAT)}


def scheme_of(qstate: Any) -> Scheme:
    """The scheme of a quantization (a state without the field is SQ8, the first scheme)."""
    name = getattr(qstate, "scheme", "SQ8")
    scheme = SCHEMES.get(name)
    if scheme is None:
        raise GraphStateError(
            f"the graph is quantized with {name}, which nnshell cannot run or generate",
            "aquant -s SQ8 or aquant -s POW2",
        )
    return scheme


__all__ = ["FLOAT", "POW2", "SCHEMES", "SQ8", "Scheme", "scheme_of"]
