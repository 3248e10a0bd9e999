"""The emitter: the planned kernels with their C names, shared by the model and header writers."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from nnshell.codegen.at_options import apply_gen_ctrl
from nnshell.codegen.autotiler.common import (
    _CTYPES,
    AutoTilerError,
    Kernel,
    _memory,
)
from nnshell.codegen.autotiler.planner import _Planner
from nnshell.codegen.csafe import (
    c_ident,
    c_int,
    c_string,
    c_token,
    is_c_ident,
    short_name,
)
from nnshell.ir import Graph, c_safe_name
from nnshell.quant.fixed_point import QType
from nnshell.quant.scheme import POW2, scheme_of
from nnshell.settings import (
    MEMORY_SETTINGS,
    SETTINGS,
)


def _ctype_of(q: QType) -> str:
    return _CTYPES["int8" if q.bits <= 8 else ("int16" if q.bits <= 16 else "int32")]


#: ``set graph_*`` settings -> AutoTiler graph controls (emitted when not at the default)
GRAPH_CONTROLS = (
    "graph_monitor_cycles",
    "graph_produce_node_names",
    "graph_produce_operinfos",
    "graph_reorder_constant_in",
    "graph_warm_construct",
    "graph_dump_tensor",
    "graph_trace_exec",
    "graph_const_exec_from_flash",
    "graph_size_opt",
    "graph_noinline_node",
    "graph_checksum",
)
_NORM_KOP = {
    "bw8": "KOP_NORM_BW",
    "bw16": "KOP_NORM_BW16",
    "rgb888": "KOP_NORM_RGB888",
    "rgb16": "KOP_NORM_RGB16",
    "rgb565_rgb888": "KOP_NORM_RGB565",
}
_NORM_TEXT = {"offset_int8": "q = p - 128", "shift_int8": "q = p >> 1", "out_int16": "q = p << 7"}


def graph_controls(settings: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(AT_GRAPH_<NAME>, AT_OPT_ON|AT_OPT_OFF|AT_OPT_VAL(n))`` for each ``graph_*`` setting
    that differs from its default (NNTool's names, see :mod:`nnshell.settings`)."""
    out = []
    for name in GRAPH_CONTROLS:
        sd = SETTINGS[name]
        val = settings.get(name, sd.default)
        if val == sd.default:
            continue
        ctrl = "AT_GRAPH_" + name[len("graph_") :].upper()
        if sd.type is bool:
            out.append((ctrl, "AT_OPT_ON" if val else "AT_OPT_OFF"))
        else:
            out.append((ctrl, f"AT_OPT_VAL({c_int(val, name, 0, 1 << 30)})"))
    return out


def graph_c_name(graph: Graph, settings: Mapping[str, Any]) -> str:
    """The ``<G>`` of the generated names: ``set graph_name``, else the C-safe graph name.

    A name longer than 64 characters is cut and tagged with a hash (:func:`short_name`), so
    the identifiers built from it stay short; a name C reserves (``__x``, ``_X``) is prefixed
    with ``m``; every identifier built from ``<G>`` (``<G>Model``, ``<G>_L1_Memory``) is then
    checked by :func:`c_ident`.
    """
    raw = str(settings.get("graph_name") or graph.name)
    g = short_name(c_safe_name(raw), source=raw)
    if not is_c_ident(g + "Model"):
        g = "m" + g
    c_ident(g + "Model", "graph name")
    return g


class _Emitter:
    def __init__(
        self, graph: Graph, qstate: Any, settings: Mapping[str, Any], tensor_dir: str
    ) -> None:
        self.graph = graph
        self.qstate = qstate
        self.settings = settings
        self.tensor_dir = tensor_dir.replace(os.sep, "/").rstrip("/") or "."
        self.g = graph_c_name(graph, settings)
        from nnshell.input.formatter import formatters

        self.memory = {
            name: _memory(settings, name, SETTINGS[name].default) for name in MEMORY_SETTINGS
        }
        self.formatters = formatters(graph)
        self.pow2 = scheme_of(qstate) is POW2
        planner = _Planner(graph, qstate)
        self.kernels = planner.plan()
        apply_gen_ctrl(self.graph, self.kernels)  # nodeoption's generator controls
        self.alias = planner.alias
        self.cnames = self._tensor_names()

    def root(self, t: str) -> str:
        while t in self.alias:
            t = self.alias[t]
        return t

    def _tensor_names(self) -> dict[str, str]:
        names: dict[str, str] = {}
        for i, t in enumerate(self.graph.inputs, start=1):
            # a formatted input: the kernels read the formatter's output (step 0)
            names[t] = f"S0_Output_{i}" if t in self.formatters else f"Input_{i}"
        for i, t in enumerate(self.graph.outputs, start=1):
            r = self.root(t)
            if r in names:
                raise AutoTilerError(f"graph output '{t}' is a graph input: nothing to generate")
            names[r] = f"Output_{i}"
        for k in self.kernels:
            names.setdefault(k.out, f"S{k.step}_Output")
        return names

    def cname(self, t: str) -> str:
        return self.cnames[self.root(t)]

    def qtype(self, t: str) -> QType:
        q = self.qstate.tensors.get(t)
        return q if q is not None else self.qstate.tensors[self.root(t)]

    @staticmethod
    def _tcarg(*fields: str, const: str = "0") -> str:
        ctype, name, *rest = fields
        args = ", ".join(c_token(r, "CreateGraph argument") for r in rest)
        return f"TCArgInfo({c_string(ctype)}, {c_string(c_ident(name))}, {args}, {const})"

    @staticmethod
    def _formatter_name(i: int) -> str:
        return f"S0_Op_Input_{i}_Formatter"

    def _pow2_bits(self) -> int:
        return int(getattr(self.qstate.options, "bits", 16))

    def _bindings(self, k: Kernel) -> list[str]:
        ins = iter(k.ins)
        consts = {c.name: c for c in k.consts}
        order = list(consts)
        cmap = {  # SQ8 (w, b, scale, scalen, infos) or (infos); POW2 (w, b) or ()
            "w": order[0] if len(order) > 1 else None,
            "b": order[1] if len(order) > 1 else None,
            "scale": order[2] if len(order) > 3 else None,
            "scalen": order[3] if len(order) > 3 else None,
            "infos": order[-1] if order else None,
        }
        out = []
        for role in k.binding:
            if role == "in":
                name = self.cname(next(ins))
            elif role == "out":
                name = self.cname(k.out)
            else:
                name = str(cmap[role])
            kind = "GNA_OUT" if role == "out" else "GNA_IN"
            out.append(f"GNodeArg({kind}, {c_string(c_ident(name))}, 0)")
        return out
