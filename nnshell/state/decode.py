"""Decoding a state's JSON into graphs, quantization and statistics, checking every structure."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from nnshell.errors import ModelFileError, NnshellError
from nnshell.ir import Graph, Node, TensorInfo
from nnshell.state.schema import (
    _TAGS,
    _Malformed,
    _req,
    _str_list,
    attr_classes,
)
from nnshell.state.validate import (
    _NP_SCALARS,
    _TENSOR_DTYPES,
    _check_graph,
    _check_shape,
    _check_stats,
)


class _Decoder:
    """The inverse of :class:`_Encoder`, checking every structure it reads."""

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self.arrays = arrays
        self.whitelist = attr_classes()

    def array(self, key: Any, where: str) -> np.ndarray:
        if not isinstance(key, str) or key not in self.arrays:
            raise _Malformed(f"{where} refers to array {key!r}, which the npz does not hold")
        return self.arrays[key]

    def number(self, v: Any, where: str) -> float:
        if isinstance(v, dict) and set(v) == {"__float__"}:
            t = v["__float__"]
            if t not in ("inf", "-inf", "nan"):
                raise _Malformed(f"{where}: bad float tag {t!r}")
            return float(t)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise _Malformed(f"{where} is not a number")
        return float(v)

    def value(self, v: Any, where: str) -> Any:
        if v is None or isinstance(v, (bool, int, float, str)):
            return v
        if isinstance(v, list):
            return [self.value(x, where) for x in v]
        if not isinstance(v, dict):
            raise _Malformed(f"{where}: unexpected {type(v).__name__}")
        tags = [k for k in v if k in _TAGS]
        if not tags:
            return {k: self.value(x, f"{where}.{k}") for k, x in v.items()}
        tag = tags[0]
        body = v[tag]
        if tag == "__dc__":
            return self.dataclass(v, where)
        if len(v) != (2 if tag == "__np__" else 1):
            raise _Malformed(f"{where}: malformed {tag} value")
        if tag == "__nd__":
            return self.array(body, where)
        if tag == "__tuple__":
            if not isinstance(body, list):
                raise _Malformed(f"{where}: __tuple__ is not a list")
            return tuple(self.value(x, where) for x in body)
        if tag == "__float__":
            return self.number(v, where)
        if tag == "__np__":
            if not isinstance(body, str) or body not in _NP_SCALARS:
                raise _Malformed(f"{where}: numpy scalar type {body!r} not allowed")
            raw = self.value(v.get("v"), where)
            try:
                return np.dtype(body).type(raw)
            except (OverflowError, ValueError, TypeError):
                raise _Malformed(f"{where}: {raw!r} is not a {body}") from None
        if tag == "__slice__":
            if not isinstance(body, list) or len(body) != 3:
                raise _Malformed(f"{where}: malformed slice")
            return slice(*(self.value(x, where) for x in body))
        # __map__
        if not isinstance(body, list) or not all(isinstance(p, list) and len(p) == 2 for p in body):
            raise _Malformed(f"{where}: malformed __map__")
        out = {}
        for k, x in body:
            key = self.value(k, where)
            if isinstance(key, list):
                raise _Malformed(f"{where}: unhashable map key")
            out[key] = self.value(x, where)
        return out

    def dataclass(self, v: dict[str, Any], where: str) -> Any:
        tag = v["__dc__"]
        cls = self.whitelist.get(tag) if isinstance(tag, str) else None
        if cls is None:
            raise _Malformed(f"{where}: attribute class {tag!r} is not an op attribute class")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        kwargs, late = {}, {}
        for k, x in v.items():
            if k == "__dc__":
                continue
            if k not in fields:
                raise _Malformed(f"{where}: {tag} has no field '{k}'")
            (kwargs if fields[k].init else late)[k] = self.value(x, f"{where}.{k}")
        try:
            obj = cls(**kwargs)
        except (TypeError, ValueError) as exc:
            raise _Malformed(f"{where}: cannot rebuild {tag} ({exc})") from None
        for k, x in late.items():
            object.__setattr__(obj, k, x)
        return obj

    def graph(self, d: Any, where: str) -> Graph:
        """Rebuild one graph and check it as strictly as an ONNX import (:func:`_check_graph`)."""
        from nnshell.ops import all_ops

        ops = all_ops()
        name = _req(d, "name", str, where)
        g = Graph(name)
        g.inputs = _str_list(_req(d, "inputs", list, where), f"{where}.inputs")
        g.outputs = _str_list(_req(d, "outputs", list, where), f"{where}.outputs")
        meta = self.value(_req(d, "meta", dict, where), f"{where}.meta")
        g.meta = meta
        for i, t in enumerate(_req(d, "tensors", list, where)):
            tw = f"{where}.tensors[{i}]"
            tname = _req(t, "name", str, tw)
            if tname in g.tensors:
                raise _Malformed(f"{tw}: tensor '{tname}' is declared twice")
            shape = _req(t, "shape", list, tw)
            if not all(isinstance(s, int) and not isinstance(s, bool) for s in shape):
                raise _Malformed(f"{tw}.shape is not a list of integers")
            _check_shape(shape, f"{tw} ('{tname}')")
            dtype = _req(t, "dtype", str, tw)
            if dtype not in _TENSOR_DTYPES:
                raise _Malformed(f"{tw}: tensor '{tname}' has dtype {dtype!r}")
            ref = _req(t, "const", (str, type(None)), tw)
            const = self.array(ref, tw) if ref is not None else None
            if const is not None and tuple(const.shape) != tuple(shape):
                raise _Malformed(f"{tw}: array shape {const.shape} is not {tuple(shape)}")
            if const is not None and str(const.dtype) != dtype:
                raise _Malformed(f"{tw}: array dtype {const.dtype} is not {dtype}")
            g.tensors[tname] = TensorInfo(tname, tuple(shape), dtype, const)
        for i, n in enumerate(_req(d, "nodes", list, where)):
            nw = f"{where}.nodes[{i}]"
            op = _req(n, "op", str, nw)
            if op not in ops:
                raise _Malformed(f"{nw}: operator '{op}' is not registered in this nnshell")
            node = Node(
                _req(n, "name", str, nw),
                op,
                _str_list(_req(n, "inputs", list, nw), f"{nw}.inputs"),
                _str_list(_req(n, "outputs", list, nw), f"{nw}.outputs"),
                self.value(n.get("attrs"), f"{nw}.attrs"),
                self.value(_req(n, "meta", dict, nw), f"{nw}.meta"),
            )
            expected = ops[op].Attrs
            wrong = node.attrs is not None and not isinstance(node.attrs, expected)
            if wrong and not ops[op].is_fusion:
                raise _Malformed(f"{nw}: attributes {type(node.attrs).__name__} are not {op}'s")
            for t in [*node.inputs, *node.outputs]:
                if t and t not in g.tensors:
                    raise _Malformed(f"{nw}: tensor '{t}' is not declared")
            g.nodes.append(node)
        for t in [*g.inputs, *g.outputs]:
            if t not in g.tensors:
                raise _Malformed(f"{where}: graph tensor '{t}' is not declared")
        _check_graph(g, where)
        from nnshell.codegen.node_options import check_records

        try:
            check_records(g, where)  # nodeoption records: as strict as the other fields
        except ValueError as exc:
            raise _Malformed(str(exc)) from None
        return g

    def qtype(self, d: Any, where: str) -> Any:
        from nnshell.quant.fixed_point import QType

        if not isinstance(d, dict):
            raise _Malformed(f"{where} is not a quantization type")
        if set(d) == {"float_type"}:  # a float layer's tensor (qtune, docs/FLOAT16.md)
            from nnshell.ops._float import FLOAT_TYPES, FloatType

            if d["float_type"] not in FLOAT_TYPES:
                raise _Malformed(f"{where}: unknown float type {d['float_type']!r}")
            return FloatType(str(d["float_type"]))
        try:
            return QType.from_dict(d)
        except ModelFileError as exc:
            raise _Malformed(f"{where}: {exc.message}") from None

    def qstate(self, d: Any, graph: Graph) -> Any:
        from nnshell.quant.qrecord import NodeQuant
        from nnshell.quant.ranges import MODES, RangeMode
        from nnshell.quant.sq8 import QuantOptions, QuantState

        w = "quantization"
        scheme = _req(d, "scheme", str, w)
        if scheme == "FLOAT":  # derived from the graph alone: no array of the file is read
            from nnshell.quant.float_q import load_float_state

            return load_float_state(graph, _req(d, "options", dict, w), _Malformed)
        if scheme not in ("SQ8", "POW2"):
            raise _Malformed(f"{w}.scheme: unknown scheme {scheme!r}")
        o = _req(d, "options", dict, w)
        m = _req(o, "mode", dict, f"{w}.options")
        mname = _req(m, "name", str, f"{w}.options.mode")
        if mname not in MODES:
            raise _Malformed(f"{w}.options.mode: unknown range mode '{mname}'")
        pct = self.number(m.get("percentile"), f"{w}.options.mode.percentile")
        if not 50.0 < pct <= 100.0:  # what parse_mode accepts
            raise _Malformed(f"{w}.options.mode.percentile: {pct} is not in (50, 100]")
        mode = RangeMode(mname, pct)
        relun = o.get("relun_range", "calibrated")  # states saved before the rule: calibrated
        if relun not in ("bound", "calibrated"):
            raise _Malformed(f"{w}.options.relun_range: '{relun}' is not bound or calibrated")
        mult_bits = o.get("mult_bits", 8)
        if type(mult_bits) is not int or not 8 <= mult_bits <= 30:
            raise _Malformed(f"{w}.options.mult_bits: {mult_bits!r} is not an integer in 8..30")
        # states saved before the option padded as NNTool does: absent means True
        nntool_padding = o.get("nntool_padding", True)
        if type(nntool_padding) is not bool:
            raise _Malformed(f"{w}.options.nntool_padding: {nntool_padding!r} is not true or false")
        opts = QuantOptions(
            mode,
            _req(o, "symmetric", bool, f"{w}.options"),
            _req(o, "per_tensor", bool, w),
            relun_range=relun,
            mult_bits=mult_bits,
            nntool_padding=nntool_padding,
        )
        if scheme == "POW2":
            from nnshell.quant.pow2 import POW2_BITS, Pow2Options

            bits = _req(o, "bits", int, f"{w}.options")
            if bits not in POW2_BITS:
                raise _Malformed(f"{w}.options.bits: POW2 width {bits} is not 8 or 16")
            opts = Pow2Options(opts.mode, opts.symmetric, opts.per_tensor, bits, relun_range=relun)
        # QType itself refuses a scale that is not finite and > 0, a zero point outside its
        # integer type and a width outside 2..32 bits (from_dict: one _Malformed line)
        tensors = {}
        for k, v in _req(d, "tensors", dict, w).items():
            if k not in graph.tensors:
                raise _Malformed(f"{w}.tensors: the graph has no tensor '{k}'")
            tensors[k] = self.qtype(v, f"{w}.tensors.{k}")
        ranges = {}
        for k, v in _req(d, "ranges", dict, w).items():
            if not isinstance(v, list) or len(v) != 2:
                raise _Malformed(f"{w}.ranges.{k} is not [lo, hi]")
            if k not in graph.tensors:
                raise _Malformed(f"{w}.ranges: the graph has no tensor '{k}'")
            lo, hi = (self.number(x, f"{w}.ranges.{k}") for x in v)
            if math.isnan(lo) or math.isnan(hi):
                raise _Malformed(f"{w}.ranges.{k}: [{lo}, {hi}] is not a range")
            ranges[k] = (lo, hi)
        nodes = {}
        names = {n.name for n in graph.nodes}
        for k, v in _req(d, "nodes", dict, w).items():
            nw = f"{w}.nodes.{k}"
            if k not in names:
                raise _Malformed(f"{nw}: the graph has no node '{k}'")
            in_q = [
                self.qtype(q, f"{nw}.in_q") if q is not None else None
                for q in _req(v, "in_q", list, nw)
            ]
            if len(in_q) != len(graph.node(k).inputs):
                raise _Malformed(
                    f"{nw}.in_q has {len(in_q)} entries for {len(graph.node(k).inputs)} inputs"
                )
            consts = {}
            for ck, ref in _req(v, "consts", dict, nw).items():
                if not isinstance(ref, dict) or set(ref) != {"__nd__"}:
                    raise _Malformed(f"{nw}.consts.{ck} is not an array reference")
                consts[ck] = self.array(ref["__nd__"], f"{nw}.consts.{ck}")
            info = self.value(_req(v, "info", dict, nw), f"{nw}.info")
            nodes[k] = NodeQuant(in_q, self.qtype(v.get("out_q"), f"{nw}.out_q"), consts, info)
        return QuantState(scheme, opts, tensors, nodes, ranges)

    def input_options(self, d: Any) -> Any:
        """The calibration's input options (absent in older states: None)."""
        from nnshell.input.images import InputOptions

        if d is None:
            return None
        w = "calibration.input_options"
        if not isinstance(d, dict) or not all(
            v is None or isinstance(v, str | int | float | bool) for v in d.values()
        ):
            raise _Malformed(f"{w} is not a mapping of plain values")
        try:
            return InputOptions.from_dict(d)
        except (NnshellError, TypeError) as exc:
            raise _Malformed(f"{w}: {exc}") from None

    def stats(self, d: Any) -> tuple[dict[str, Any], list[str]]:
        from nnshell.quant.stats import HIST_BINS, TensorStats

        w = "calibration"
        files = _str_list(_req(d, "files", list, w), f"{w}.files")
        out = {}
        for name, v in _req(d, "tensors", dict, w).items():
            sw = f"{w}.tensors.{name}"
            hist = self.value(_req(v, "hist", dict, sw), f"{sw}.hist")
            if not isinstance(hist, np.ndarray) or hist.shape != (HIST_BINS,):
                raise _Malformed(f"{sw}.hist is not a 1-D array of {HIST_BINS} bins")
            if hist.dtype.kind not in "iu" or (hist.size and int(hist.min()) < 0):
                raise _Malformed(f"{sw}.hist is not a histogram (counts must be integers >= 0)")
            st = TensorStats(
                min=self.number(v.get("min"), f"{sw}.min"),
                max=self.number(v.get("max"), f"{sw}.max"),
                count=_req(v, "count", int, sw),
                mean_=self.number(v.get("mean"), f"{sw}.mean"),
                m2=self.number(v.get("m2"), f"{sw}.m2"),
                hist_range=self.number(v.get("hist_range"), f"{sw}.hist_range"),
                hist=np.array(hist, dtype=np.int64),  # its own writable copy: update() adds to it
                argmin=_req(v, "argmin", int, sw),
                argmax=_req(v, "argmax", int, sw),
            )
            _check_stats(st, sw)
            out[name] = st
        return out, files
