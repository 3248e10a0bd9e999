"""Stored tensor sets (``dump -S NAME``): look them up, slice a layer or a channel, compare two
sets layer by layer (QSNR, cosine, max error, the A − B differences) and write a selection.

The ``tensors`` command is a thin wrapper over these functions; the numbers are computed here so
tests can call them without a shell, and the shell never touches numpy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from nnshell.errors import UsageError

if TYPE_CHECKING:
    from nnshell.ir import Graph

TensorSet = Mapping[str, np.ndarray]

#: The comparison figures, in the order the table shows them.
METRICS = ("qsnr", "cosine", "max_abs")


def lookup(store: Mapping[str, TensorSet], names: list[str]) -> list[TensorSet]:
    """The named sets (one to show, two to compare); an unknown name is a usage error."""
    if len(names) > 2:
        raise UsageError("tensors -t takes one set to show or two to compare")
    for name in names:
        if name not in store:
            known = ", ".join(store) or "none"
            raise UsageError(f"no tensor set '{name}' (stored: {known})", "dump FILE -S NAME")
    return [store[n] for n in names]


def select_keys(tset: TensorSet, step: str | None, graph: Callable[[], Graph]) -> list[str]:
    """The tensors of ``tset`` a step selector names (all of them without one).

    ``graph`` is called only when ``step`` is no tensor name: a selector (step number, prefix*,
    range) needs the open graph to map steps to node names.
    """
    if step is None:
        return list(tset)
    if step in tset:
        return [step]
    from nnshell.selectors import select_steps

    g = graph()
    names = [g.nodes[s].name for s in select_steps(g, step)]
    keys = [n for n in names if n in tset]
    if not keys:
        raise UsageError(f"tensor set has no layer '{step}'", "tensors -t NAME lists them")
    return keys


def pick(a: np.ndarray, ch: int | None) -> np.ndarray:
    """Channel ``ch`` (the first axis) of ``a``, or ``a`` itself without one."""
    if ch is None:
        return a
    if a.ndim == 0 or not -a.shape[0] <= ch < a.shape[0]:
        raise UsageError(f"channel {ch} out of range for shape {a.shape}")
    return a[ch]


def pick_all(tset: TensorSet, keys: list[str], ch: int | None) -> dict[str, np.ndarray]:
    """:func:`pick` applied to every selected tensor."""
    return {k: pick(tset[k], ch) for k in keys}


def tensor_stats(a: np.ndarray) -> dict[str, float]:
    """min, max, mean and std of ``a`` computed in float64 (integer codes too)."""
    a64 = np.asarray(a).astype(np.float64)
    return {
        "min": float(a64.min()),
        "max": float(a64.max()),
        "mean": float(a64.mean()),
        "std": float(a64.std()),
    }


def set_summaries(store: Mapping[str, TensorSet]) -> list[dict[str, Any]]:
    """One entry per stored set: its name, tensor names, element types and value count."""
    return [
        {
            "name": k,
            "keys": list(v),
            "types": sorted({str(a.dtype) for a in v.values()}),
            "values": sum(a.size for a in v.values()),
        }
        for k, v in store.items()
    ]


@dataclass
class SetComparison:
    """Two tensor sets compared tensor by tensor (only tensors both hold)."""

    rows: list[dict[str, Any]]
    #: Why the figures may mislead (integer codes compared with real values), or None.
    note: str | None
    #: The differences A − B in float64, one per compared tensor.
    diffs: dict[str, np.ndarray] = field(default_factory=dict)


def compare_sets(
    a_set: TensorSet, b_set: TensorSet, keys: list[str], ch: int | None
) -> SetComparison:
    """QSNR, cosine and max abs error of B against A for every key both sets hold."""
    from nnshell.analysis.qerror import compare_arrays

    rows, diffs = [], {}
    both = [k for k in keys if k in b_set]
    for k in both:
        a, b = pick(a_set[k], ch), pick(b_set[k], ch)
        if a.shape != b.shape:
            raise UsageError(f"'{k}': shapes differ {a.shape} vs {b.shape}")
        rows.append({"name": k, **compare_arrays(a, b)})
        diffs[k] = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    kinds = {a_set[k].dtype.kind == "f" for k in both} | {b_set[k].dtype.kind == "f" for k in both}
    note = (
        "comparing integer codes with real values: store a dequantized dump (dump -d)"
        if len(kinds) > 1
        else None
    )
    return SetComparison(rows, note, diffs)


def metrics_for(qsnr: bool, cosine: bool, error: bool) -> list[str]:
    """The figures asked for (-Q, -C, -E) or all three."""
    if qsnr:
        return ["qsnr"]
    if cosine:
        return ["cosine"]
    if error:
        return ["max_abs"]
    return list(METRICS)


def write_arrays(path: str, arrays: Mapping[str, np.ndarray]) -> int:
    """Write one array as ``.npy`` (unless the path says ``.npz``), several as ``.npz``;
    return how many were written."""
    from nnshell.atomic import atomic_write_npz

    if len(arrays) == 1 and not path.endswith(".npz"):
        np.save(path, next(iter(arrays.values())))
    else:
        atomic_write_npz(path, dict(arrays))
    return len(arrays)
