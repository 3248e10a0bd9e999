"""The state's schema: format name and version, :class:`SavedState`, the attribute-class
whitelist and the small typed readers the decoder and the loader share."""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from typing import Any

from nnshell.errors import NnshellError
from nnshell.ir import Graph

FORMAT = "nnshell-state"
SCHEMA_VERSION = 1

_TAGS = ("__nd__", "__tuple__", "__float__", "__np__", "__slice__", "__map__", "__dc__")
#: Fixed zip entry time: the npz bytes (and so the hash recorded in the JSON) are reproducible.
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


@dataclass
class SavedState:
    """Everything :func:`load_state` restored, ready for ``Session._restore``."""

    path: str
    graph: Graph
    imported: Graph | None
    prefusion: Graph | None
    settings: dict[str, Any]
    history: list[str]
    adjusted: bool
    scheme: str | None
    stats: dict[str, Any] | None
    stats_files: list[str]
    qstate: Any
    tool_version: str
    schema_version: int = SCHEMA_VERSION
    source_sha256: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: The image input options of the calibration (InputOptions), None in older states.
    calib_inputs: Any = None


class _Malformed(Exception):
    """Internal: a structural problem found while decoding (becomes a ModelFileError)."""


# --------------------------------------------------------------------------------------------
# the attribute-class whitelist
# --------------------------------------------------------------------------------------------


def attr_classes() -> dict[str, type]:
    """Dataclasses allowed in a state: those defined in the modules of the registered ops.

    Keyed by class name; a name defined by two modules is keyed ``module.ClassName`` instead.
    """
    from nnshell.ops import all_ops
    from nnshell.ops.registry import NoAttrs

    found: dict[str, list[type]] = {}
    modules = {type(op).__module__ for op in all_ops().values()}
    modules.add(NoAttrs.__module__)
    for modname in sorted(modules):
        mod = sys.modules.get(modname)
        if mod is None:
            continue
        for obj in vars(mod).values():
            if (
                isinstance(obj, type)
                and dataclasses.is_dataclass(obj)
                and obj.__module__ == modname
                and obj not in found.get(obj.__name__, [])
            ):
                found.setdefault(obj.__name__, []).append(obj)
    out: dict[str, type] = {}
    for name, classes in found.items():
        if len(classes) == 1:
            out[name] = classes[0]
        else:
            for cls in classes:
                out[f"{cls.__module__}.{cls.__name__}"] = cls
    return out


def _class_tag(cls: type, whitelist: dict[str, type]) -> str:
    for tag, c in whitelist.items():
        if c is cls:
            return tag
    raise NnshellError(
        f"cannot save a {cls.__module__}.{cls.__name__} value: not an op attribute class"
    )


def _req(d: Any, key: str, types: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(d, dict):
        raise _Malformed(f"{where} is not an object")
    if key not in d:
        raise _Malformed(f"{where} has no '{key}'")
    v = d[key]
    if not isinstance(v, types) or (isinstance(v, bool) and bool not in _as_tuple(types)):
        raise _Malformed(f"{where}.{key} has the wrong type ({type(v).__name__})")
    return v


def _as_tuple(t: type | tuple[type, ...]) -> tuple[type, ...]:
    return t if isinstance(t, tuple) else (t,)


def _str_list(v: Any, where: str) -> list[str]:
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise _Malformed(f"{where} is not a list of strings")
    return list(v)
