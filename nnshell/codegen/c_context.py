"""What an op's ``emit_c`` hook is given: buffers, constants and C formatting for one node.

An op's hook describes its C call (which kernel, which arguments) with these generic pieces; the
emitter owns the arena, the constant arrays and the order of the calls. Kernel-call builders
shared by several ops (the per-channel affine, MatAdd, copies, transposes, concatenation) live
here too, next to the activation rows of a fused layer, which each activation class writes
itself (``fused_sq8_row`` / ``fused_pow2_row``, ``ops/fused_act.py``) next to its integer kernel.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from nnshell.codegen.csafe import c_ident, c_token, shown
from nnshell.errors import CodegenError
from nnshell.ir import Graph, Node
from nnshell.quant.fixed_point import QType

#: C element type of each numpy dtype the constants use, with its byte size.
C_TYPES = {"int8_t": 1, "uint8_t": 1, "int16_t": 2, "int32_t": 4}
_RANGES = {"int8_t": (-128, 127), "uint8_t": (0, 255), "int16_t": (-32768, 32767)}
NO_ACTS = "NULL, 0"


@dataclass
class ConstArray:
    """One ``static const`` array of the generated model file."""

    name: str
    ctype: str
    values: np.ndarray

    @property
    def nbytes(self) -> int:
        """Bytes of the array on the target."""
        return int(self.values.size) * C_TYPES[self.ctype]


@dataclass
class Declarations:
    """Everything the node hooks declared, in declaration order (deterministic output)."""

    arrays: list[ConstArray] = field(default_factory=list)
    structs: list[str] = field(default_factory=list)
    names: set[str] = field(default_factory=set)


def _field(v: Any) -> str:
    """One initialiser or argument: an integer, a constant name or ``&name`` (nothing else, so
    a string smuggled into a NodeQuant's ``info`` by a state file cannot become code)."""
    if isinstance(v, str) and v.startswith("&"):
        return "&" + c_ident(v[1:], "descriptor name")
    return c_token(v, "kernel argument")


def _fmt_row(values: Iterable[Any]) -> str:
    return ", ".join(_field(v) for v in values)


_RUNTIME = Path(__file__).resolve().parent / "runtime"
_TYPEDEF = re.compile(r"typedef struct \{(.*?)\} (nn_\w+_t);", re.S)
_COMMENT = re.compile(r"/\*.*?\*/", re.S)


@cache
def struct_fields(ctype: str) -> tuple[str, ...]:
    """The field names of a runtime struct, in order, read from the runtime headers (the one
    definition of the layout): the generated initializers name every field."""
    for header in sorted(_RUNTIME.glob("*.h")):
        for body, name in _TYPEDEF.findall(_COMMENT.sub("", header.read_text())):
            if name != ctype:
                continue
            fields: list[str] = []
            for decl in body.split(";"):
                parts = [q.strip() for q in decl.split(",") if q.strip()]
                if parts:
                    fields.append(re.split(r"[\s*]+", parts[0])[-1])
                    fields += [q.lstrip("*").strip() for q in parts[1:]]
            return tuple(fields)
    raise KeyError(f"no struct {ctype} in the C runtime headers")


def _fmt_struct(ctype: str, values: Sequence[Any]) -> str:
    """``{.field = value, ...}``: a C99 designated initializer of every field of ``ctype``."""
    names = struct_fields(ctype)
    if len(names) != len(values):
        raise ValueError(f"{ctype} has {len(names)} fields, {len(values)} values were given")
    return ", ".join(f".{n} = {_field(v)}" for n, v in zip(names, values, strict=True))


def _join(exprs: Iterable[str]) -> str:
    """Arena pointers (``NN_A8(64)``) built by :meth:`CContext.ptr`, comma-separated."""
    return ", ".join(exprs)


#: What a node's C may contain: identifiers, decimal numbers, blanks and the punctuation of
#: calls, blocks and declarations; no quote, slash, backslash, ``#`` or ``?`` (no string,
#: comment, preprocessor line or trigraph can start in it).
_CODE_CHARS = re.compile(r"[A-Za-z0-9_ \n(){}\[\],;&*+\-=]*\Z")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_RUNTIME_WORD = re.compile(r"(nn|NN)_[A-Za-z0-9_]*\Z")
_C_WORDS = frozenset({"const", "void", "int8_t", "uint8_t", "int16_t", "int32_t", "NULL", "ins"})


def check_code(code: Any, decls: Declarations, node: Node) -> str:
    """Return the C a node's ``emit_c`` hook wrote, once checked to be calls only.

    Why: a hook formats values it reads from the NodeQuant, which a state file supplies. The
    code may name only the runtime (``nn_*``, ``NN_*``), the constants declared for the graph
    and a few C words; any other identifier or character means a value that is not what the
    quantizer produced, and the node is refused instead of generating it.
    """
    if not isinstance(code, str) or not _CODE_CHARS.match(code):
        bad = next((c for c in str(code) if not _CODE_CHARS.match(c)), "?")
        raise CodegenError(
            f"{node.name}: its C kernel call would contain {shown(bad)} (corrupt or edited state?)",
            "quantize the model again (aquant) and save a new state",
        )
    for word in _WORD.findall(code):
        if word in decls.names or word in _C_WORDS or _RUNTIME_WORD.match(word):
            continue
        raise CodegenError(
            f"{node.name}: its C kernel call would name {shown(word)}, which is neither the "
            "runtime nor a declared constant (corrupt or edited state?)",
            "quantize the model again (aquant) and save a new state",
        )
    return code


class CContext:
    """The C side of one node: pointers into the arena, constants, descriptors."""

    def __init__(
        self,
        graph: Graph,
        qtypes: Mapping[str, QType],
        offsets: Mapping[str, int],
        decls: Declarations,
        step: int,
        node: Node,
    ) -> None:
        self.graph = graph
        self.qtypes = qtypes
        self.offsets = offsets
        self.decls = decls
        self.step = step
        self.node = node
        self.prefix = f"s{step}"
        #: (pool descriptor, pre-pool activations, post-pool activations) of a conv-headed fusion.
        self.tail: tuple[str, str, str] = ("NULL", NO_ACTS, NO_ACTS)

    # -- errors ----------------------------------------------------------------------------
    def unsupported(self, why: str) -> NoReturn:
        """Refuse to generate C for this node (never generate wrong C)."""
        raise CodegenError(
            f"{self.node.name} ({self.node.op}): {why}",
            "gen --target c supports the integer kernels of docs/SQ8.md §5-6 and docs/POW2.md",
        )

    # -- tensors -----------------------------------------------------------------------------
    def shape(self, name: str) -> tuple[int, ...]:
        """The tensor's shape (batch 1)."""
        return tuple(int(d) for d in self.graph.tensors[name].shape)

    def size(self, name: str) -> int:
        """Elements of the tensor."""
        return int(np.prod(self.shape(name)))

    def esize(self, name: str) -> int:
        """Bytes per element (1 for int8 codes, 2 for the Q15 softmax output)."""
        return int(np.dtype(self.qtypes[name].dtype).itemsize)

    def ptr(self, name: str) -> str:
        """Typed pointer into the arena (``int8_t *`` or ``int16_t *``)."""
        if name not in self.offsets:
            self.unsupported(f"tensor '{name}' is not an activation in the arena")
        macro = {1: "NN_A8", 2: "NN_A16"}.get(self.esize(name))
        if getattr(self.qtypes[name], "is_float", False):
            macro = "NN_A8"  # float32 values: the float kernels take byte pointers
        if macro is None:
            self.unsupported(f"tensor '{name}' has {self.qtypes[name].bits}-bit codes")
        return f"{macro}({self.offsets[name]})"

    def ptr8(self, name: str) -> str:
        """``int8_t *`` pointer; a kernel that computes on int8 codes refuses other widths."""
        if self.esize(name) != 1:
            self.unsupported(f"its kernel takes int8 codes but '{name}' is 16-bit")
        return self.ptr(name)

    def act_inputs(self) -> list[str]:
        """The node's non-constant inputs, in order."""
        g = self.graph
        return [i for i in self.node.inputs if i and not g.tensors[i].is_const]

    @staticmethod
    def c_hw(shape: Sequence[int]) -> tuple[int, int]:
        """(channels, values per channel) of a ``1×C×...`` tensor."""
        return int(shape[1]) if len(shape) > 1 else 1, int(np.prod(shape[2:]))

    def chw(self, shape: Sequence[int]) -> tuple[int, int, int]:
        """(C, H, W) of a 1-D (``1×C×L`` -> ``C×1×L``) or 2-D map."""
        if len(shape) == 4:
            return int(shape[1]), int(shape[2]), int(shape[3])
        if len(shape) == 3:
            return int(shape[1]), 1, int(shape[2])
        self.unsupported(f"a {len(shape) - 2}-D window (only 1-D and 2-D are generated)")

    def window(
        self, kernel: Sequence[int], strides: Sequence[int], dil: Sequence[int], pads: Sequence[int]
    ) -> list[int]:
        """``kh, kw, sh, sw, dh, dw, pt, pl`` of a 1-D or 2-D window."""
        if len(kernel) == 1:
            return [1, kernel[0], 1, strides[0], 1, dil[0], 0, pads[0]]
        if len(kernel) != 2:
            self.unsupported(f"a {len(kernel)}-D window (only 1-D and 2-D are generated)")
        return [*kernel, *strides, *dil, pads[0], pads[1]]

    # -- declarations --------------------------------------------------------------------------
    def _unique(self, key: str) -> str:
        name = c_ident(f"{self.prefix}_{key}", "constant name")
        if name in self.decls.names:
            raise ValueError(f"C name {name} declared twice")
        self.decls.names.add(name)
        return name

    def const(self, key: str, values: Any, ctype: str) -> str:
        """Declare ``static const <ctype> s<step>_<key>[]``; returns its name."""
        arr = np.asarray(values).reshape(-1)
        if arr.dtype.kind not in "iub":
            self.unsupported(f"constant {key} holds {arr.dtype} values, not integers")
        lo, hi = _RANGES.get(ctype, (-(1 << 31), (1 << 31) - 1))
        if arr.size and (int(arr.min()) < lo or int(arr.max()) > hi):
            self.unsupported(f"constant {key} does not fit {ctype}")
        name = self._unique(key)
        self.decls.arrays.append(ConstArray(name, ctype, arr.astype(np.int64)))
        return name

    def struct(self, ctype: str, key: str, fields: Sequence[Any]) -> str:
        """Declare ``static const <ctype> s<step>_<key> = {...}``; returns ``&name``."""
        name = self._unique(key)
        self.decls.structs.append(
            f"static const {ctype} {name} = {{{_fmt_struct(ctype, fields)}}};"
        )
        return f"&{name}"

    def struct_array(self, ctype: str, key: str, rows: Sequence[Sequence[Any]]) -> str:
        """Declare ``static const <ctype> s<step>_<key>[] = {{...}, ...}``; returns the name."""
        name = self._unique(key)
        body = ", ".join(f"{{{_fmt_struct(ctype, r)}}}" for r in rows)
        self.decls.structs.append(f"static const {ctype} {name}[] = {{{body}}};")
        return name

    # -- fused activations and pools -----------------------------------------------------------
    def acts(self, key: str, parts: Sequence[Any], q: QType, entry: QType | None = None) -> str:
        """``name, n`` of the activations of a fused layer with output qtype ``q`` (or NULL, 0).

        ``entry`` is the qtype of the codes reaching the first activation (the head's, a
        function activation's intermediate qtype; default ``q``). Each row is the op class's
        own ``fused_sq8_row`` (``ops/fused_act.py``), the C twin of its ``fused_sq8_int``.
        """
        from nnshell.ops.fused_act import SQ8, SQ8_ROW_LEN, fused_act, pad_row

        if not parts:
            return NO_ACTS
        cur = q if entry is None else entry
        rows: list[list[Any]] = []
        for p in parts:
            act = fused_act(p.op, SQ8)
            if act is None:
                self.unsupported(f"{p.op} inside a fused layer has no integer kernel")
            rows.append(pad_row(act.fused_sq8_row(p.attrs, cur, q, self), SQ8_ROW_LEN, "NULL"))
            cur = q
        return f"{self.struct_array('nn_act_t', key, rows)}, {len(rows)}"

    def pool(
        self,
        kind: str,
        x_shape: Sequence[int],
        geometry: tuple[Sequence[int], ...],
        include_pad: bool,
        pad: int = 0,
    ) -> str:
        """``&name`` of an ``nn_pool_t`` (``kind`` NN_POOL_MAX / NN_POOL_AVG) over ``x_shape``.

        An average divides by the window positions inside the map, or with ``include_pad``
        inside the map widened by the explicit pads (not by a ceil_mode overhang) — the count
        of ``ops.pool._count`` — and sums ``pad`` (the SQ8 input zero point) for each counted
        position outside the map.
        """
        kernel, strides, dil, pads, outs = geometry
        _, h, w = self.chw(x_shape)
        win = self.window(kernel, strides, dil, pads)
        oh, ow = (1, outs[0]) if len(outs) == 1 else (outs[0], outs[1])
        nd = len(kernel)
        if include_pad:
            pe = (0, pads[1]) if nd == 1 else (pads[2], pads[3])
            bounds = [-win[6], h + pe[0], -win[7], w + pe[1]]
        else:
            bounds = [0, h, 0, w]
        return self.struct("nn_pool_t", "pool", [kind, *win, oh, ow, *bounds, int(pad)])

    def p2_acts(self, key: str, parts: Sequence[Any], q: QType, entry: int | None = None) -> str:
        """``name, n`` of POW2 activations (``nn_p2_act_t``) ending at qtype ``q``, or NULL, 0.

        ``entry`` is the Q of the codes reaching the first activation (default ``q``'s). Each
        row is the op class's own ``fused_pow2_row`` (``ops/fused_act.py``).
        """
        from nnshell.ops.fused_act import POW2, POW2_ROW_LEN, fused_act, pad_row
        from nnshell.quant.fixed_pow2 import q_of

        if not parts:
            return NO_ACTS
        qq, bits = q_of(q), q.bits
        cur = qq if entry is None else int(entry)
        rows: list[list[Any]] = []
        for p in parts:
            act = fused_act(p.op, POW2)
            if act is None:
                self.unsupported(f"{p.op} inside a fused layer has no POW2 kernel")
            rows.append(pad_row(act.fused_pow2_row(p.attrs, cur, qq, bits), POW2_ROW_LEN, 0))
            cur = qq
        return f"{self.struct_array('nn_p2_act_t', key, rows)}, {len(rows)}"

    # -- calls shared by several ops -----------------------------------------------------------
    def rescale(self, consts: Mapping[str, np.ndarray], name: str, prefix: str = "rescale") -> str:
        """An in-place ``nn_rescale`` of ``name`` when the quantizer gave the op one, else ''."""
        if f"{prefix}_mul" not in consts:
            return ""
        args = [int(consts[f"{prefix}_{k}"]) for k in ("zin", "mul", "shift", "zout")]
        return f"\nnn_rescale({self.ptr8(name)}, {self.size(name)}, {_fmt_row(args)});"

    def copy(self, consts: Mapping[str, np.ndarray] | None = None) -> str:
        """Copy the input codes to the output (reshapes, identities), then any rescale."""
        x, y = self.node.inputs[0], self.node.outputs[0]
        nbytes = self.size(x) * self.esize(x)
        return f"nn_copy({self.ptr(x)}, {self.ptr(y)}, {nbytes});" + self.rescale(consts or {}, y)

    def affine(self, consts: Mapping[str, np.ndarray]) -> str:
        """``nn_affine``: ``clip8(rnorm((x·Wq[c] + bias_total[c])·M[c], N[c]))``."""
        x, y = self.act_inputs()[0], self.node.outputs[0]
        c, inner = self.c_hw(self.shape(y))
        args = [
            self.const("weights", consts["weights"], "int8_t"),
            self.const("bias", consts["bias_total"], "int32_t"),
            self.const("mul", consts["mul"], "int32_t"),
            self.const("shift", consts["shift"], "int8_t"),
        ]
        return f"nn_affine({self.ptr8(x)}, {self.ptr8(y)}, {c}, {inner}, {_fmt_row(args)});"

    def matadd(self, consts: Mapping[str, np.ndarray]) -> str:
        """``nn_matadd`` over the node's inputs (same shapes: no broadcasting in C)."""
        ins, y = self.act_inputs(), self.node.outputs[0]
        if any(self.shape(i) != self.shape(y) for i in ins):
            self.unsupported("a broadcasting add has no C kernel")
        mul = self.const("in_mul", consts["in_mul"], "uint8_t")
        shift = self.const("in_shift", consts["in_shift"], "int8_t")
        ptrs = _join(self.ptr8(i) for i in ins)
        call = (
            f"nn_matadd(ins, {len(ins)}, {self.ptr8(y)}, {int(consts['ref_input'])}, {mul}, "
            f"{shift}, {int(consts['mul'])}, {int(consts['shift'])}, {self.size(y)});"
        )
        return f"{{\n    const int8_t *const ins[{len(ins)}] = {{{ptrs}}};\n    {call}\n}}"

    def transpose(self, perm: Sequence[int]) -> str:
        """``nn_transpose`` of a tensor of rank <= 5."""
        x, y = self.node.inputs[0], self.node.outputs[0]
        shape = self.shape(x)
        pad = 5 - len(shape)
        if pad < 0:
            self.unsupported("a transpose of rank > 5")
        shape5 = self.const("shape", np.array((1,) * pad + shape), "int32_t")
        perm5 = self.const("perm", np.array([*range(pad), *(p + pad for p in perm)]), "int32_t")
        return f"nn_transpose({self.ptr(x)}, {self.ptr(y)}, {shape5}, {perm5}, {self.esize(y)});"

    def concat(self, axis: int, consts: Mapping[str, np.ndarray]) -> str:
        """``nn_concat`` along ``axis`` (a memcpy of blocks; rescaled inputs when asked)."""
        ins, y = self.act_inputs(), self.node.outputs[0]
        if len(ins) != len([i for i in self.node.inputs if i]):
            self.unsupported("a concatenation of constants")
        shape = self.shape(y)
        inner = int(np.prod(shape[axis + 1 :]))
        blocks = [self.shape(i)[axis] * inner for i in ins]
        rows = []
        for k in range(len(ins)):
            if f"in{k}_mul" in consts:
                if self.esize(y) != 1:
                    self.unsupported("a rescaled concatenation of 16-bit codes")
                keys = ("zin", "mul", "shift", "zout")
                rows.append([1, *(int(consts[f"in{k}_{p}"]) for p in keys)])
            else:
                rows.append([0, 0, 0, 0, 0])
        bl = self.const("blocks", np.array(blocks), "int32_t")
        rs = self.struct_array("nn_rescale_t", "rescale", rows)
        ptrs = _join(self.ptr(i) for i in ins)
        outer = int(np.prod(shape[:axis]))
        call = f"nn_concat(ins, {len(ins)}, {self.ptr(y)}, {bl}, {rs}, {outer}, {self.esize(y)});"
        return f"{{\n    const void *const ins[{len(ins)}] = {{{ptrs}}};\n    {call}\n}}"
