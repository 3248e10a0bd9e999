"""The quantization schemes as objects: which op hooks each one runs, looked up once.

A quantized graph records its scheme by name (``QuantState.scheme``, kept as text in saved
states); :func:`scheme_of` turns it into the :class:`Scheme`, and code that differs per scheme
asks the object for its op hook (``scheme.run_int(op)``, ``scheme.emit_c(op)``) or keys a table
by it (the explainers, the AutoTiler planners), instead of comparing scheme names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nnshell.errors import GraphStateError

if TYPE_CHECKING:
    from nnshell.quant.sq8 import QuantState


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
    #: ``qexplain`` of one step ``(graph, qstate, step) -> QExplain`` (loaded on first use:
    #: the explainers in ``nnshell.analysis`` sit above this module).
    explain: Callable[[], Callable[..., Any]]
    #: The AutoTiler entry point: which generator family ``gen --target autotiler`` plans the
    #: graph with (``POW2_GENERATORS`` or ``SQ8_GENERATORS``), or None when nnshell writes no
    #: AutoTiler model for the scheme (why: ``autotiler_refusal``).
    autotiler: str | None
    #: Why there is no AutoTiler model, for the error line (only when ``autotiler`` is None).
    autotiler_refusal: str = ""

    def label(self, qstate: QuantState) -> str:
        """The scheme as reports name it: SQ8, POW2-8 / POW2-16, the float type of FLOAT."""
        if self.name == "POW2":
            return f"POW2-{getattr(qstate.options, 'bits', 16)}"
        if self.name == "FLOAT":
            return str(getattr(qstate.options, "float_type", "FLOAT"))
        return self.name

    def __str__(self) -> str:
        return self.name


#: The AutoTiler generator families (``Scheme.autotiler``).
SQ8_GENERATORS = "CNN_*_SQ8"
POW2_GENERATORS = "CNN_* fixed-point (POW2)"


def _explain_sq8() -> Callable[..., Any]:
    from nnshell.analysis.qexplain import explain_sq8

    return explain_sq8


def _explain_pow2() -> Callable[..., Any]:
    from nnshell.analysis.qexplain_pow2 import explain_pow2

    return explain_pow2


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
    explain=_explain_sq8,
    autotiler=SQ8_GENERATORS,
)
POW2 = Scheme(
    "POW2",
    "pow2",
    quantize=lambda op: op.quantize_pow2,
    run_int=lambda op: op.run_int_pow2,
    emit_c=_emit_c_pow2,
    explain=_explain_pow2,
    autotiler=POW2_GENERATORS,
)
#: Every scheme by the name a quantization records.


def _run_float(op: Any) -> Callable[..., list[Any]]:
    # float layers run one shared float kernel (docs/FLOAT16.md), not an op hook
    from nnshell.ops.float_layer import run_node_float

    return run_node_float


def _emit_c_float(op: Any) -> Callable[..., Any]:
    # an op with a C of its own for float layers (a conversion), else the shared float call
    from nnshell.ops.float_layer import emit_float

    own: Callable[..., Any] | None = getattr(op, "emit_c_float", None)
    return own if own is not None else emit_float


def _no_quantizer(op: Any) -> Callable[..., Any]:
    raise GraphStateError("float layers are chosen by qtune, not quantized by aquant")


FLOAT = Scheme(
    "FLOAT",
    "scale8",
    quantize=_no_quantizer,
    run_int=_run_float,
    emit_c=_emit_c_float,
    explain=_explain_sq8,  # the float layers' records read as the SQ8 explainer's "other" layers
    autotiler=None,
    autotiler_refusal="nnshell emits no AutoTiler float (fp16) generator yet",
)
SCHEMES: dict[str, Scheme] = {s.name: s for s in (SQ8, POW2, FLOAT)}


def scheme_of(qstate: QuantState) -> Scheme:
    """The scheme object of a quantization (``QuantState.scheme`` names it)."""
    name = qstate.scheme
    scheme = SCHEMES.get(name)
    if scheme is None:
        raise GraphStateError(
            f"the graph is quantized with {name}, which nnshell cannot run or generate",
            "aquant -s SQ8 or aquant -s POW2",
        )
    return scheme


__all__ = [
    "FLOAT",
    "POW2",
    "POW2_GENERATORS",
    "SCHEMES",
    "SQ8",
    "SQ8_GENERATORS",
    "Scheme",
    "scheme_of",
]
