"""fold_pad: fold a constant zero Pad on spatial axes into the next Conv (or AveragePool).

``conv(pad(x, p), pads=q) = conv(x, pads=p+q)`` when the pad value is 0 and the batch and
channel axes are not padded. AveragePool takes it only with ``count_include_pad`` (the padded
zeros are then counted either way). MaxPool pads with -inf, so a zero Pad is not foldable.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from nnshell.ir import Graph, Node
from nnshell.passes._edit import const_of, remove_node, sole_consumer
from nnshell.passes.base import PassResult, register_pass


def _pad_amounts(graph: Graph, pad: Node) -> tuple[int, ...] | None:
    """Return the spatial pads (begins then ends) of a zero constant Pad, or None."""
    a = pad.attrs
    pads = const_of(graph, pad.inputs[1]) if len(pad.inputs) > 1 and pad.inputs[1] else None
    pads = np.asarray(pads if pads is not None else getattr(a, "pads", ()), np.int64).reshape(-1)
    value = const_of(graph, pad.inputs[2]) if len(pad.inputs) > 2 and pad.inputs[2] else None
    value = (
        float(np.asarray(value).reshape(-1)[0])
        if value is not None
        else float(getattr(a, "value", 0.0))
    )
    mode = getattr(a, "mode", "constant")
    if mode != "constant" or value != 0.0 or pads.size == 0 or (pads < 0).any():
        return None
    rank = pads.size // 2
    begins, ends = pads[:rank], pads[rank:]
    if begins[:2].any() or ends[:2].any():
        return None
    return tuple(int(v) for v in begins[2:]) + tuple(int(v) for v in ends[2:])


@register_pass("fold_pad", "Fold a zero Pad into the next conv (or count_include_pad avg pool)")
def fold_pad(graph: Graph) -> PassResult:
    """Fold Pad nodes in place."""
    res = PassResult()
    for pad in [n for n in graph.nodes if n.op == "Pad"]:
        nxt = sole_consumer(graph, pad.outputs[0])
        extra = _pad_amounts(graph, pad)
        if nxt is None or nxt.op not in ("Conv", "AveragePool") or extra is None:
            res.notes.append(f"{pad.name}: not a zero spatial pad before one conv; kept")
            continue
        a = nxt.attrs
        if nxt.op == "AveragePool" and not a.count_include_pad:
            res.notes.append(f"{pad.name}: next average pool excludes pads; kept")
            continue
        if a.auto_pad not in ("NOTSET", "VALID", ""):
            res.notes.append(f"{pad.name}: {nxt.name} uses auto_pad; kept")
            continue
        nd = len(extra) // 2
        old = tuple(a.pads) or (0,) * (2 * nd)
        if len(old) != 2 * nd:
            continue
        new = tuple(o + e for o, e in zip(old, extra, strict=True))
        nxt.attrs = dataclasses.replace(a, pads=new, auto_pad="NOTSET")
        remove_node(graph, pad)
        res.edits.append(f"{pad.name} folded into {nxt.name} (pads {new})")
        res.removed.append(pad.name)
        res.changed += 1
    return res
