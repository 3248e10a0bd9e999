"""``gen --target c``: a self-contained C99 implementation of the quantized graph.

Writes ``<name>.h`` (sizes, quantization of inputs and outputs, the API), ``<name>.c`` (the
constants as ``static const`` arrays, one static arena, ``<name>_run()`` calling one kernel per
step), the hand-written kernels ``nn_kernels.h/.c`` (package data, copied verbatim) and
``<name>_harness.c`` (a host ``main`` for ``gen --verify``). Each node's call comes from its
op's ``emit_c`` hook; this module owns only the generic parts: the arena plan (``memory``), the
declarations and the order. The output is deterministic: no timestamps, no absolute paths, every
iteration in graph order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from nnshell.atomic import atomic_write_files, os_error_text
from nnshell.codegen.c_context import C_TYPES, CContext, ConstArray, Declarations, check_code
from nnshell.codegen.checks import ARENA, CONSTANTS, check_limit, check_shapes
from nnshell.codegen.csafe import (
    c_comment,
    c_float,
    c_ident,
    c_int,
    plain_file_name,
    short_name,
)
from nnshell.codegen.memory import ArenaPlan, Block, lifetimes, plan_arena
from nnshell.errors import CodegenError
from nnshell.ir import Graph
from nnshell.ops import get_op
from nnshell.quant.fixed_point import header_qscale_qnorm
from nnshell.quant.scheme import FLOAT, POW2, SCHEMES, SQ8, scheme_of

RUNTIME_FILES = ("nn_kernels.h", "nn_kernels.c")
#: the runtime of each quantization scheme (POW2 also uses the data movers of nn_kernels)
SCHEME_RUNTIME = {
    "SQ8": RUNTIME_FILES,
    "POW2": (*RUNTIME_FILES, "nn_pow2.h", "nn_pow2.c"),
    "FLOAT": (*RUNTIME_FILES, "nn_float.h", "nn_float.c"),
}
#: the runtime header a model includes, per scheme
_HEADER = {"SQ8": "nn_kernels.h", "POW2": "nn_pow2.h", "FLOAT": "nn_float.h"}
_PER_LINE = {1: 16, 2: 12, 4: 8}


def c_identifier(name: str) -> str:
    """A C-safe identifier for a graph name (``mobile-net.v2`` -> ``mobile_net_v2``).

    Only ``[0-9A-Za-z_]`` survives and no leading ``_``, so every name derived from it
    (``<name>_run``, ``<NAME>_H``, ``<name>.c``) is a valid identifier or plain file name; a
    name longer than 64 characters is cut and tagged with a hash. :func:`render_c` still checks
    the result (runtime file names).
    """
    ident = re.sub(r"[^0-9A-Za-z_]+", "_", str(name)).strip("_") or "model"
    return short_name(f"m_{ident}" if ident[0].isdigit() else ident, source=str(name))


@dataclass(frozen=True)
class Step:
    """One generated kernel call: node, the tensor the harness dumps and its bytes."""

    index: int
    node: str
    label: str
    output: str
    nbytes: int


@dataclass(frozen=True)
class CModel:
    """The generated text of one model, before it is written."""

    name: str
    files: dict[str, str]
    arena: ArenaPlan
    const_bytes: int
    steps: list[Step]
    input_bytes: list[int]
    #: the formatted inputs (``imageformat``): index ``-1 - k`` for graph input ``k``, the
    #: harness dumps their int8 codes to ``I<k>.bin``.
    formatted: list[Step] = field(default_factory=list)
    #: the hand-written runtime files the model needs (copied next to it)
    runtime: tuple[str, ...] = RUNTIME_FILES

    @property
    def sources(self) -> list[str]:
        """The C files to compile: the model, its runtime and the harness."""
        rt = [f for f in self.runtime if f.endswith(".c")]
        return [f"{self.name}.c", *rt, f"{self.name}_harness.c"]


#: raw element layout of each formatter FORMAT in the C kernel ``nn_format``
_RAW_LAYOUT = {
    "bw8": "NN_RAW_U8",
    "rgb888": "NN_RAW_U8",
    "bw16": "NN_RAW_U16",
    "rgb16": "NN_RAW_U16",
    "rgb565_rgb888": "NN_RAW_RGB565",
}
_NORM_C = {
    "offset_int8": ("NN_NORM_OFFSET", "q = p - 128"),
    "shift_int8": ("NN_NORM_SHIFT", "q = p >> 1"),
}


@dataclass(frozen=True)
class RawInput:
    """The raw HWC pixels of a formatted graph input (``imageformat``), kept in the arena."""

    index: int
    tensor: str
    fmt: Any
    h: int
    w: int
    c: int

    @property
    def key(self) -> str:
        """The arena block name of the raw buffer."""
        return f"{self.tensor}#raw"

    @property
    def esize(self) -> int:
        """Bytes of one raw element (``unsigned char`` or ``unsigned short``)."""
        return 1 if self.fmt.ctype == "unsigned char" else 2

    @property
    def nbytes(self) -> int:
        """Bytes of the raw image (rgb565: one 16-bit word per pixel)."""
        per_pixel = 1 if self.fmt.fmt == "rgb565_rgb888" else self.c
        return self.h * self.w * per_pixel * self.esize


def raw_inputs(graph: Graph, qstate: Any) -> dict[str, RawInput]:
    """The formatted inputs of the graph, checked against their quantization."""
    from nnshell.input.formatter import formatters, raw_shape

    out: dict[str, RawInput] = {}
    fmts = formatters(graph)
    for k, name in enumerate(graph.inputs):
        fmt = fmts.get(name)
        if fmt is None:
            continue
        if fmt.norm == "out_int16" and qstate.scheme == "POW2":
            q = qstate.tensors[name]
            if q.per_channel or q.bits != 16 or q.zero_point != 0:
                raise CodegenError(
                    f"gen --target c: the {fmt.fmt} out_int16 formatter of {name} gives int16 "
                    f"codes, the input is quantized with {q.bits} bits",
                    "aquant -s POW2 -f 16 on the raw pixels, then imageformat",
                )
            h, w, c = raw_shape(graph, name, fmt)
            out[name] = RawInput(k, name, fmt, h, w, c)
            continue
        if fmt.norm not in _NORM_C:
            raise CodegenError(
                f"gen --target c: the {fmt.norm} formatter of {name} gives int16 codes, "
                "the SQ8 network input is int8",
                f"imageformat {name} {fmt.fmt} shift_int8 (or offset_int8)",
            )
        q = qstate.tensors[name]
        if (
            q.per_channel
            or q.bits != 8
            or q.zero_point != 0
            or abs(float(q.scale) - fmt.scale) > 1e-9 * fmt.scale
        ):
            raise CodegenError(
                f"gen --target c: the {fmt.fmt} {fmt.norm} formatter of {name} gives int8 codes "
                f"with S=2^-7 Z=0, the input is quantized with S={float(q.scale):g} "
                f"Z={q.zero_point}",
                "open the model again and run imageformat before aquant",
            )
        h, w, c = raw_shape(graph, name, fmt)
        out[name] = RawInput(k, name, fmt, h, w, c)
    return out


def _label(node: Any) -> str:
    from nnshell.ops import get_op

    return get_op(node.op).label(node)


def _array_text(arr: ConstArray) -> str:
    per = _PER_LINE[C_TYPES[arr.ctype]]
    vals = [str(int(v)) for v in arr.values]  # int64 array: only digits and '-' reach the C
    lines = [", ".join(vals[i : i + per]) for i in range(0, len(vals), per)]
    body = ",\n    ".join(lines)
    return f"static const {arr.ctype} {arr.name}[{len(vals)}] = {{\n    {body}\n}};"


def _check_quantized(graph: Graph, qstate: Any) -> None:
    if qstate is None or getattr(qstate, "scheme", None) not in SCHEMES:
        raise CodegenError(
            "gen --target c needs an SQ8-, POW2- or float-quantized graph", "aquant <images>"
        )
    missing = [n.name for n in graph.nodes if n.name not in qstate.nodes]
    if missing:
        raise CodegenError(
            f"node(s) {', '.join(missing[:5])} have no quantization parameters",
            "run aquant again after the last graph change",
        )
    acts = [*graph.inputs, *(o for n in graph.nodes for o in n.outputs if o)]
    untyped = [t for t in acts if t not in qstate.tensors]
    if untyped:
        raise CodegenError(
            f"tensor(s) {', '.join(map(repr, untyped[:5]))} have no quantization type",
            "run aquant again after the last graph change",
        )


def _emit_steps(
    graph: Graph, qstate: Any, plan: ArenaPlan, decls: Declarations
) -> tuple[list[str], list[Step]]:
    body: list[str] = []
    steps: list[Step] = []
    scheme = scheme_of(qstate)
    for idx, node in enumerate(graph.nodes):
        floating = "float_type" in qstate.nodes[node.name].info  # a float layer (mixed graph)
        hook = (FLOAT if floating else scheme).emit_c(get_op(node.op))
        if hook is None:
            raise CodegenError(
                f"{node.name}: {_label(node)} has no {scheme} C kernel yet",
                "gen --target c generates only ops whose integer kernel it can match bit for bit",
            )
        ctx = CContext(graph, qstate.tensors, plan.offsets, decls, idx, node)
        code = check_code(hook(node, qstate.nodes[node.name], ctx), decls, node)
        out = node.outputs[0]
        nbytes = ctx.size(out) * ctx.esize(out)
        steps.append(Step(idx, node.name, _label(node), out, nbytes))
        body.append(
            f"    /* step {idx}: {c_comment(node.name)} ({c_comment(_label(node))}) -> "
            f"{c_comment(out)} */"
        )
        body += [f"    {line}" if line else "" for line in code.splitlines()]
        body += [
            "    if (step_done != NULL) {",
            f"        step_done({idx}, {ctx.ptr(out)}, {nbytes}, user);",
            "    }",
        ]
    return body, steps


def _format_steps(
    raws: dict[str, RawInput], plan: ArenaPlan, ctx: CContext
) -> tuple[list[str], list[Step]]:
    body: list[str] = []
    steps: list[Step] = []
    for raw in raws.values():
        f, t = raw.fmt, raw.tensor
        idx = -1 - raw.index
        nbytes = ctx.size(t) * ctx.esize(t)
        steps.append(Step(idx, f"input formatter of {t}", f"{f.fmt}/{f.norm}", t, nbytes))
        src = f"NN_A8({plan.offsets[raw.key]})"
        dims = f"{raw.h}, {raw.w}, {raw.c}, {_RAW_LAYOUT[f.fmt]}"
        if f.norm == "out_int16":
            head = f"CHW int16, {f.norm} (q = p << 7)"
            call = f"nn_format16({src}, {ctx.ptr(t)}, {dims});"
        else:
            norm, text = _NORM_C[f.norm]
            head = f"CHW int8, {f.norm} ({text})"
            call = f"nn_format({src}, {ctx.ptr8(t)}, {dims}, {norm});"
        body += [
            f"    /* input formatter of {c_comment(t)}: raw {f.fmt} HWC {raw.h}x{raw.w}x{raw.c} "
            f"{f.ctype} -> {head} */",
            f"    {call}",
            "    if (step_done != NULL) {",
            f"        step_done({idx}, {ctx.ptr(t)}, {nbytes}, user);",
            "    }",
        ]
    return body, steps


def _io_function(ret: str, fn: str, ptrs: list[str]) -> list[str]:
    lines = [f"{ret}{fn}(int index)", "{", "    switch (index) {"]
    for k, p in enumerate(ptrs):
        lines.append(f"    case {k}:")
        lines.append(f"        return {p};")
    lines += ["    default:", "        return NULL;", "    }", "}"]
    return lines


def _source(
    name: str,
    guard: str,
    graph: Graph,
    qstate: Any,
    plan: ArenaPlan,
    raws: dict[str, RawInput] | None = None,
) -> CModel:
    raws = raws or {}
    decls = Declarations()
    body, steps = _emit_steps(graph, qstate, plan, decls)
    const_bytes = sum(a.nbytes for a in decls.arrays)
    ctx = CContext(graph, qstate.tensors, plan.offsets, decls, -1, graph.nodes[0])
    fbody, formatted = _format_steps(raws, plan, ctx)
    body = fbody + body
    in_ptrs = [
        f"NN_A8({plan.offsets[raws[i].key]})" if i in raws else ctx.ptr(i) for i in graph.inputs
    ]
    generic_in = bool(raws) or qstate.scheme != "SQ8"
    lines = [
        f"/* {name}.c - generated by nnshell (gen --target c) from graph "
        f"'{c_comment(graph.name)}'.",
        f" * {qstate.scheme} {_arith(qstate)} inference in {len(steps)} steps; do not edit. */",
        f'#include "{name}.h"',
        "",
        "#define NN_A8(off) (g_arena.bytes + (off))",
        "#define NN_A16(off) ((int16_t *)(void *)(g_arena.bytes + (off)))",
        "",
        "/* Every activation lives in this arena, at offsets planned from tensor lifetimes. */",
        "static union {",
        f"    int8_t bytes[{guard}_ARENA_BYTES];",
        "    int64_t align;",
        "} g_arena;",
        "",
    ]
    lines += [_array_text(a) for a in decls.arrays]
    lines += decls.structs + [""]
    lines += _io_function("void *" if generic_in else "int8_t *", f"{name}_input", in_ptrs)
    lines.append("")
    lines += _io_function("const void *", f"{name}_output", [ctx.ptr(o) for o in graph.outputs])
    lines += ["", f"void {name}_run(nn_step_fn step_done, void *user)", "{", *body, "}", ""]
    header = _header(name, guard, graph, qstate, plan, const_bytes, len(steps), raws)
    in_bytes = [raws[i].nbytes if i in raws else ctx.size(i) * ctx.esize(i) for i in graph.inputs]
    files = {
        f"{name}.h": header,
        f"{name}.c": "\n".join(lines),
        f"{name}_harness.c": _harness(name, guard, len(graph.inputs)),
    }
    runtime = SCHEME_RUNTIME[qstate.scheme]
    if _has_float(qstate) and qstate.scheme != "FLOAT":  # a mixed graph: the float runtime too
        runtime = (*runtime, "nn_float.h", "nn_float.c")
    return CModel(name, files, plan, const_bytes, steps, in_bytes, formatted, runtime)


def _arith(qstate: Any) -> str:
    """``integer``, ``float`` or ``integer and float`` (a mixed graph) for the file comment."""
    if qstate.scheme == "FLOAT":
        return "float"
    return "integer and float" if _has_float(qstate) else "integer"


def _has_float(qstate: Any) -> bool:
    """Whether any node is a float layer or a conversion (``qtune``, docs/FLOAT16.md)."""
    return any("float_type" in nq.info for nq in qstate.nodes.values())


def tensor_bytes(graph: Graph, qstate: Any, name: str) -> int:
    """Bytes of an activation tensor at its quantized width."""
    itemsize = int(np.dtype(qstate.tensors[name].dtype).itemsize)
    return int(np.prod(graph.tensors[name].shape)) * itemsize


def _qdefines(prefix: str, q: Any, pow2: bool = False) -> list[str]:
    scale = c_float(q.scale, f"{prefix} scale")
    qs, qn = header_qscale_qnorm(float(q.scale))
    lines = [
        f"#define {prefix}_OUT_SCALE {scale}",
        f"#define {prefix}_OUT_QSCALE {c_int(qs)}",
        f"#define {prefix}_OUT_QNORM {c_int(qn)}",
        f"#define {prefix}_OUT_ZERO_POINT {c_int(q.zero_point, f'{prefix} zero point')}",
    ]
    if pow2:
        from nnshell.quant.fixed_pow2 import q_of

        lines.append(f"#define {prefix}_Q {c_int(q_of(q))}")
    return lines


def _header(
    name: str,
    guard: str,
    graph: Graph,
    qstate: Any,
    plan: ArenaPlan,
    const_bytes: int,
    n: int,
    raws: dict[str, RawInput] | None = None,
) -> str:
    raws = raws or {}
    pow2 = scheme_of(qstate) is POW2
    in_type = "int8_t" if scheme_of(qstate) is SQ8 and not raws else "void"

    def nbytes(t: str) -> int:
        return raws[t].nbytes if t in raws else tensor_bytes(graph, qstate, t)

    lines = [
        f"/* {name}.h - generated by nnshell (gen --target c) from graph "
        f"'{c_comment(graph.name)}'. */",
        f"#ifndef {guard}_H",
        f"#define {guard}_H",
        "",
        f'#include "{_HEADER[qstate.scheme]}"',
        *(['#include "nn_float.h"'] if _has_float(qstate) and qstate.scheme != "FLOAT" else []),
        "",
        f"/* Activation arena (peak of live tensor bytes: {plan.peak_live}) and constants. */",
        f"#define {guard}_ARENA_BYTES {plan.size}",
        f"#define {guard}_CONST_BYTES {const_bytes}",
        f"#define {guard}_N_STEPS {n}",
        f"#define {guard}_N_INPUTS {len(graph.inputs)}",
        f"#define {guard}_N_OUTPUTS {len(graph.outputs)}",
    ]
    for k, t in enumerate(graph.inputs):
        if t in raws:
            r = raws[t]
            lines.append(
                f"/* input {k} is raw {r.fmt.fmt} HWC pixels ({r.h}x{r.w}x{r.c}, {r.fmt.ctype}): "
                f"the {r.fmt.norm} formatter makes the int8 codes */"
            )
        lines.append(f"#define {guard}_INPUT_{k}_BYTES {nbytes(t)}")
    for k, t in enumerate(graph.outputs):
        lines.append(f"#define {guard}_OUTPUT_{k}_BYTES {nbytes(t)}")
    lines += ["", "/* Scales: real = (q - ZERO_POINT) * QSCALE * 2^-QNORM (SQ8.md §8). */"]
    if pow2:
        lines.append("/* POW2 (POW2.md): codes are Qm.n, real = code * 2^-Q (SCALE = 2^-Q). */")
    for k, t in enumerate(graph.inputs):
        lines += _qdefines(f"{guard}_INPUT_{k}", qstate.tensors[t], pow2)
    for idx, node in enumerate(graph.nodes):
        lines += _qdefines(f"{guard}_S{idx}", qstate.tensors[node.outputs[0]], pow2)
    lines += [
        "",
        "/* Pointer to graph input `index` inside the arena: fill it before each run"
        + (" (a formatted input takes its raw HWC pixels). */" if raws else ". */"),
        f"{in_type} *{name}_input(int index);",
        (
            "/* Graph output `index` (int16 or int8 Qm.n codes, int16 Q15 after a softmax), "
            "valid after a run. */"
            if pow2
            else "/* Graph output `index` (int8 codes, or int16 Q15 after a softmax), valid "
            "after a run. */"
        ),
        f"const void *{name}_output(int index);",
        "/* Run the network; step_done (may be NULL) sees every step's output. */",
        f"void {name}_run(nn_step_fn step_done, void *user);",
        "",
        f"#endif /* {guard}_H */",
        "",
    ]
    return "\n".join(lines)


def _harness(name: str, guard: str, n_inputs: int) -> str:
    sizes = ", ".join(f"{guard}_INPUT_{k}_BYTES" for k in range(n_inputs))
    text = resources.files("nnshell.codegen").joinpath("runtime/harness.c.in").read_text("utf-8")
    return text.replace("@NAME@", name).replace("@GUARD@", guard).replace("@SIZES@", sizes)


def render_c(graph: Graph, qstate: Any, name: str | None = None) -> CModel:
    """Generate the C text of the quantized ``graph`` (nothing is written). Expressions are
    emitted as their parts' calls, inner tensors planned in the arena (ops/expression.py)."""
    from nnshell.ops.expression import expanded

    graph, qstate = expanded(graph, qstate)
    _check_quantized(graph, qstate)
    if not graph.nodes:
        raise CodegenError("the graph has no nodes: nothing to generate")
    cname = c_model_name(name or graph.name)
    check_shapes(graph, qstate)

    def nbytes(t: str) -> int:
        return tensor_bytes(graph, qstate, t)

    def align(t: str) -> int:
        return int(np.dtype(qstate.tensors[t].dtype).itemsize)

    raws = raw_inputs(graph, qstate)
    blocks = lifetimes(graph, nbytes, align)
    # a raw image lives before step 0 and while its formatter writes the network input
    extra = [Block(r.key, r.nbytes, r.esize, -1, 0) for r in raws.values()]
    plan = plan_arena(extra + blocks)
    check_limit(ARENA, plan.size, f"the arena of '{cname}'")
    model = _source(cname, cname.upper(), graph, qstate, plan, raws)
    check_limit(CONSTANTS, model.const_bytes, f"the constants of '{cname}'")
    return model


def c_model_name(name: str) -> str:
    """The C name of a model (:func:`c_identifier`), checked: an identifier once suffixed,
    short enough for file names, and not the name of a runtime file it would overwrite."""
    cname = c_identifier(name)
    c_ident(f"{cname}_run", "graph name")
    c_ident(f"{cname.upper()}_H", "graph name")
    taken = {Path(f).stem.lower() for files in SCHEME_RUNTIME.values() for f in files}
    if cname.lower() in taken:
        raise CodegenError(
            f"graph name '{cname}' is the name of a runtime file gen writes next to the model",
            "set graph_name <another name>",
        )
    return cname


def runtime_text(filename: str) -> str:
    """The text of one hand-written runtime file (package data)."""
    return resources.files("nnshell.codegen").joinpath(f"runtime/{filename}").read_text("utf-8")


def write_model(model: CModel, out_dir: str | Path) -> list[Path]:
    """Write the generated files and the runtime into ``out_dir``; return the paths."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise CodegenError(f"cannot write to '{out}': it is a file", "gen -M <a folder>")
    texts = {**model.files, **{f: runtime_text(f) for f in model.runtime}}
    files = {out / plain_file_name(f): texts[f].encode("utf-8") for f in sorted(texts)}
    try:
        out.mkdir(parents=True, exist_ok=True)
        # one set: a full disk keeps every previous file (never a new .c with an old .h)
        return atomic_write_files(files)
    except OSError as exc:
        raise CodegenError(
            f"cannot write {os_error_text(exc, out)}", "free some space or gen -M <another folder>"
        ) from None


def generate_c(
    graph: Graph, qstate: Any, out_dir: str | Path, name: str | None = None
) -> list[Path]:
    """Write ``<name>.h/.c``, the runtime (``nn_kernels.h/.c``, plus ``nn_pow2.h/.c`` for POW2)
    and ``<name>_harness.c`` into ``out_dir``."""
    return write_model(render_c(graph, qstate, name), out_dir)
