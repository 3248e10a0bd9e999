"""Validation of a state from anyone: strict JSON, shapes, graphs, statistics, the npz name."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from nnshell.errors import ModelFileError, NnshellError
from nnshell.ir import Graph, Node
from nnshell.state import files as state_files
from nnshell.state.schema import (
    _Malformed,
)

#: Element types a tensor of a state may declare (what the importer and the passes create).
_TENSOR_DTYPES = frozenset(
    {
        "bool",
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "float16",
        "float32",
        "float64",
    }
)


def _check_shape(shape: list[int] | tuple[int, ...], where: str) -> None:
    """Non-negative dimensions, a sane rank, at most ``MAX_ELEMENTS`` elements (the importer's)."""
    if len(shape) > state_files.MAX_RANK:
        raise _Malformed(f"{where}: shape of rank {len(shape)}")
    count = 1
    for dim in shape:
        if dim < 0:
            raise _Malformed(f"{where}: shape {tuple(shape)} has a negative dimension")
        count *= dim
    if count > state_files.MAX_ELEMENTS:
        raise _Malformed(
            f"{where}: shape {tuple(shape)} is more than {state_files.MAX_ELEMENTS:,} elements"
        )


def _check_graph(g: Graph, where: str) -> None:
    """The checks of an ONNX import, on a graph read from a state.

    Unique node names; topological order (every input is a graph input, a constant or an output
    of an earlier node); one writer per tensor, never a graph input or a constant; every graph
    output produced; and every node's output shapes re-inferred with its op's shape rule and
    equal to the recorded ones, so an edited shape cannot reach the kernels or the generated C.
    """
    from nnshell.ops import get_op
    from nnshell.ops.registry import INFER_ERRORS

    names: set[str] = set()
    available = {t for t in g.inputs} | {k for k, t in g.tensors.items() if t.is_const}
    for t in g.inputs:
        if g.tensors[t].is_const:
            raise _Malformed(f"{where}: graph input '{t}' is a constant")
    writer: dict[str, str] = {}
    for node in g.nodes:
        label = f"{where}: node '{node.name}' ({node.op})"
        if node.name in names:
            raise _Malformed(f"{where}: two nodes are called '{node.name}'")
        names.add(node.name)
        for t in node.inputs:
            if t and t not in available:
                raise _Malformed(
                    f"{label} reads '{t}' before any node writes it (nodes out of order, "
                    "a cycle or a dangling input)"
                )
        for t in node.outputs:
            if not t:
                raise _Malformed(f"{label} has an unnamed output")
            if t in writer:
                raise _Malformed(f"{label} writes '{t}', already written by '{writer[t]}'")
            if t in available:
                raise _Malformed(f"{label} writes '{t}', a graph input or a constant")
            writer[t] = node.name
        probe = Node(node.name, node.op, list(node.inputs), list(node.outputs), node.attrs)
        probe.meta = dict(node.meta)  # shape rules may note things in meta: not in the state's
        try:
            shapes = get_op(node.op).infer(probe, g.in_infos(node))
        except (NnshellError, *INFER_ERRORS) as exc:
            msg = exc.message if isinstance(exc, NnshellError) else f"{type(exc).__name__} {exc}"
            raise _Malformed(
                f"{label}: its output shapes cannot be inferred ({_one_line(msg)[:160]})"
            ) from None
        if len(shapes) < len(node.outputs):
            raise _Malformed(
                f"{label} names {len(node.outputs)} outputs; its op produces {len(shapes)}"
            )
        for t, shape in zip(node.outputs, shapes, strict=False):
            inferred = tuple(int(s) for s in shape)
            recorded = g.tensors[t].shape
            if inferred != recorded:
                raise _Malformed(
                    f"{label}: output '{t}' is recorded as {list(recorded)} but its inputs "
                    f"give {list(inferred)} (the state was edited)"
                )
        available.update(node.outputs)
    for t in g.outputs:
        if t not in available:
            raise _Malformed(f"{where}: graph output '{t}' is never produced")


def _check_stats(st: Any, where: str) -> None:
    """Statistics a calibration can produce: finite figures (min/max too once a value was seen),
    a non-negative count, variance and histogram range, image indices >= -1."""
    if st.count < 0 or st.argmin < -1 or st.argmax < -1:
        raise _Malformed(f"{where}: negative count or image index")
    figures = [st.mean_, st.m2, st.hist_range]
    if st.count > 0:
        figures += [st.min, st.max]
        if st.min > st.max:
            raise _Malformed(f"{where}: min {st.min} > max {st.max}")
    if not all(math.isfinite(x) for x in figures) or st.m2 < 0 or st.hist_range < 0:
        raise _Malformed(f"{where}: statistics out of range")


#: numpy scalar types a state may hold: the tensor element types.
_NP_SCALARS = _TENSOR_DTYPES


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _check_npz_name(name: Any, json_path: Path) -> Path:
    """The npz next to the JSON; refuse anything that is not a plain file name in that folder."""
    if (
        not isinstance(name, str)
        or not name
        or name in (".", "..")
        or "/" in name
        or "\\" in name
        or "\0" in name
        or os.path.basename(name) != name
        or Path(name).is_absolute()
        or not name.endswith(".npz")
    ):
        raise ModelFileError(
            f"state file '{json_path}': array file name {name!r} is not a plain .npz file name "
            "in the state's folder"
        )
    return json_path.parent / name


class _JsonRefused(Exception):
    """Internal: the JSON text parses but breaks the state's stricter rules."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _JsonRefused(f"key '{_one_line(k)[:60]}' appears twice in one object")
        out[k] = v
    return out


def _bounded_int(text: str) -> int:
    # a state holds int64 / uint64 values at most; longer literals are refused before int()
    if len(text) > 21:
        raise _JsonRefused(f"integer {text[:24]}... is out of range")
    v = int(text)
    if not -(1 << 63) <= v < (1 << 64):
        raise _JsonRefused(f"integer {text} is out of range")
    return v


def _finite_float(text: str) -> float:
    v = float(text)
    if not math.isfinite(v):
        raise _JsonRefused(f"number {text[:24]} is out of range (non-finite values are tagged)")
    return v


def _no_constant(text: str) -> Any:
    raise _JsonRefused(f"'{text}' is not JSON (non-finite values are tagged)")


def _parse_json(raw: bytes, json_path: Path) -> Any:
    """Strict JSON: no duplicate keys, no NaN/Infinity literals, numbers within int64/float64."""
    try:
        return json.loads(
            raw.decode("utf-8"),
            object_pairs_hook=_unique_keys,
            parse_int=_bounded_int,
            parse_float=_finite_float,
            parse_constant=_no_constant,
        )
    except _JsonRefused as exc:
        raise ModelFileError(
            f"state file '{json_path}' is not a state written by nnshell ({exc})",
            "save the state again",
        ) from None
    except RecursionError:
        raise ModelFileError(
            f"state file '{json_path}' is not a state (JSON nested too deeply)"
        ) from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise ModelFileError(
            f"state file '{json_path}' is not valid JSON (corrupt or truncated: "
            f"{_one_line(getattr(exc, 'msg', str(exc)))} at byte {getattr(exc, 'pos', '?')})",
            "save the state again",
        ) from None


def _array_refs(doc: dict[str, Any]) -> set[str]:
    """Every npz key the document refers to: ``{"__nd__": key}`` anywhere, tensor constants.

    Only these members of the npz are ever read. Iterative: the JSON parser already bounded the
    nesting, this walk must not hit the recursion limit either.
    """
    refs: set[str] = set()
    graphs = doc.get("graphs")
    if isinstance(graphs, dict):
        for g in graphs.values():
            tensors = g.get("tensors") if isinstance(g, dict) else None
            for t in tensors if isinstance(tensors, list) else []:
                if isinstance(t, dict) and isinstance(t.get("const"), str):
                    refs.add(t["const"])
    stack: list[Any] = [doc]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            if isinstance(v.get("__nd__"), str):
                refs.add(v["__nd__"])
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return refs
