"""``imageformat`` on a POW2 graph: is the formatter's code the POW2 input code of each pixel?

NNTool's ``bw16 out_int16`` writes ``q = p << 7``. A POW2 input stores ``x`` as ``round(x *
2^Q)``, so the formatter's codes are right exactly when the input's real value of pixel ``p`` is
``(p << 7) * 2^-Q``: the input was calibrated on raw pixels 0..255 (no ``input_norm_func``) at
Q7, or on ``p / 256`` at Q15. After a normalisation such as ``x / 128 - 1`` every code is off by
1.0 — silently wrong on the target — so that is refused in one line with the fix. The 8-bit
norms work the same way at their own codes (``p - 128``, ``p >> 1``).

The Q the formatter implies is **imposed** on the input: POW2 may have lowered the input's Q
to give a layer's accumulator headroom (nnshell's rule, docs/POW2.md); with a formatter the
input keeps the formatter's Q and the layer takes the bits from its weights or a pre-shift
instead (:func:`requantize_with_formatters`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from nnshell.input.formatter import Formatter, FormatterError, formatters

if TYPE_CHECKING:
    from nnshell.quant.sq8 import QuantState


def formatter_q(qstate: QuantState, name: str, fmt: Formatter) -> int | None:
    """The input Q at which ``fmt``'s codes stand for the calibrated range of ``name``; raise
    FormatterError naming the fix when no Q does. None: nothing to check (no such tensor)."""
    import numpy as np

    q = qstate.tensors.get(name)
    if q is None:
        return None
    lo, hi = qstate.ranges.get(name, (float("nan"), float("nan")))
    c_lo, c_hi = (float(v) for v in fmt.codes(np.array([0, 255], dtype=np.int64)))
    known = math.isfinite(lo) and math.isfinite(hi) and hi > 0
    want = round(math.log2(c_hi / hi)) if known else None
    if q.bits == fmt.bits and want is not None:
        s = 2.0**-want
        tol = 0.25 * (c_hi - c_lo) * s
        if abs(lo - c_lo * s) <= tol and abs(hi - c_hi * s) <= tol:
            return int(want)
    fix = (
        'set input_norm_func "" and run aquant -s POW2 -f 16 on the raw pixels again'
        if fmt.norm == "out_int16"
        else f'set input_norm_func "{fmt.norm_func}" and re-run aquant -s POW2 -f {fmt.bits}'
    )
    raise FormatterError(
        f"imageformat {fmt.fmt} {fmt.norm} writes {fmt.bits}-bit codes {int(c_lo)}..{int(c_hi)}"
        f", but '{name}' was calibrated on [{lo:.4g}, {hi:.4g}] ({q.bits}-bit POW2): no input Q "
        "makes those codes its values (every code would be wrong)",
        fix + ", then imageformat",
    )


def requantize_with_formatters(graph: Any, qstate: QuantState, stats: Any) -> Any:
    """The POW2 quantization of ``graph`` with each formatted input at its formatter's Q."""
    from nnshell.quant.pow2 import quantize_graph_pow2

    fixed = {}
    for name, fmt in formatters(graph).items():
        q = formatter_q(qstate, name, fmt)
        if q is not None:
            fixed[name] = q
    if not fixed or stats is None:
        return qstate
    return quantize_graph_pow2(graph, stats, qstate.options, fixed)


def check_pow2_formatter(qstate: QuantState, name: str, fmt: Formatter) -> None:
    """Raise FormatterError unless some input Q makes ``fmt``'s codes the input's codes."""
    formatter_q(qstate, name, fmt)
