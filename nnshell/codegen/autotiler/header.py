"""The AutoTiler header: per input and kernel output, its scale, QSCALE/QNORM and zero point."""

from __future__ import annotations

from nnshell.codegen.autotiler.common import _fmt
from nnshell.codegen.autotiler.emitter import _Emitter
from nnshell.codegen.csafe import MAX_IDENT, c_comment, c_ident, c_int, is_c_ident, short_name
from nnshell.ir import c_safe_name
from nnshell.quant.fixed_point import header_qscale_qnorm
from nnshell.quant.fixed_pow2 import q_of


def _guard(guard_name: str) -> str:
    """The include guard: the header's name, C-safe, upper case, never a reserved name."""
    guard = c_safe_name(guard_name).upper().lstrip("_") + "_"
    return c_ident(f"H_{guard}" if guard[0].isdigit() else guard, "header guard")


def _intro(em: _Emitter) -> list[str]:
    name = c_comment(em.graph.name)
    if em.pow2:
        return [
            f"/* Output quantization of graph '{name}' (POW2.md): Qm.n codes,",
            " * real = code * 2^-Q (ZERO_POINT 0, SCALE = 2^-Q ~= QSCALE * 2^-QNORM). */",
        ]
    return [
        f"/* Output quantization of graph '{name}' (SQ8.md section 8):",
        " * real = (q - ZERO_POINT) * SCALE, SCALE ~= QSCALE * 2^-QNORM (7-bit QSCALE). */",
    ]


def header(em: _Emitter, guard_name: str) -> str:
    """The header text; ``guard_name`` (the header's file name) makes its include guard."""
    g = em.g.upper()
    if not is_c_ident(g + "_X"):  # "_abc" is fine, "_ABC" is reserved in C
        g = "M" + g
    guard = _guard(guard_name)
    out = [f"#ifndef {guard}", f"#define {guard}", "", *_intro(em)]
    entries = [(f"Input_{i}", em.qstate.tensors[t]) for i, t in enumerate(em.graph.inputs, 1)]
    entries += [(k.cname, em.qstate.tensors[k.out]) for k in em.kernels]
    for name, q in entries:
        scale = _fmt(q.scale)
        qs, qn = header_qscale_qnorm(float(scale))
        # the longest suffix is _OUT_ZERO_POINT: a long graph + layer name is cut and tagged
        prefix = c_ident(short_name(f"{g}_{name}", MAX_IDENT - 16), "header macro")
        out.append(f"// {name}")
        out.append(f"#define {prefix}_OUT_SCALE\t{scale}")
        out.append(f"#define {prefix}_OUT_QSCALE\t{c_int(qs)}")
        out.append(f"#define {prefix}_OUT_QNORM\t{c_int(qn)}")
        out.append(f"#define {prefix}_OUT_ZERO_POINT\t{c_int(q.zero_point)}")
        if em.pow2:  # POW2.md: real = code * 2^-Q
            out.append(f"#define {prefix}_Q\t{c_int(q_of(q))}")
    out += ["", f"#endif /* {guard} */", ""]
    return "\n".join(out)
