"""The fusions: chains of layers that one MCU kernel executes in one call.

- ``conv + [pool] + [act]``: ``conv_pool_active``, ``conv_active``, ``conv_pool``, and
  ``conv_active_pool`` (only a max pool may follow the activation);
- ``linear + act``: ``linear_active``;
- ``pool/global pool + act``: ``pool_active``;
- ``add + act``: ``add_active``.
A chain link must be the only reader of the previous output (a fan-out stops the fusion) and an
activation must be one the scheme's kernels implement: exactly the op classes with that scheme's
fused-activation hooks (``ops/fused_act.py``), so a fusion is never built that ``aquant`` of the
same scheme refuses. The fused node is named after the first
layer with ``_fusion`` appended and computes exactly what the chain computed.
"""

from __future__ import annotations

import numpy as np

from nnshell.ir import Graph, Node
from nnshell.ops.activation import ClipAttrs
from nnshell.ops.fused import FusedAttrs, FusedPart
from nnshell.ops.fused_act import POW2, SQ8, fusable_activations
from nnshell.passes._edit import act_inputs, const_of, prune_consts, sole_consumer
from nnshell.passes.base import FusionRecord, PassResult, register_pass

#: What each scheme fuses: the activations whose op class has that scheme's fused hooks.
SQ8_ACTIVATIONS = fusable_activations(SQ8)
POW2_ACTIVATIONS = fusable_activations(POW2)
ANY_FUSABLE = SQ8_ACTIVATIONS | POW2_ACTIVATIONS
POOLS = frozenset({"MaxPool", "AveragePool"})
GLOBAL_POOLS = frozenset({"GlobalAveragePool", "GlobalMaxPool"})


def _part(graph: Graph, node: Node) -> FusedPart | None:
    """Describe a node as a fusion part; Clip bounds become attributes. None if impossible."""
    attrs = node.attrs
    if node.op == "Clip":
        lo, hi = attrs.min, attrs.max
        for idx in (1, 2):
            if len(node.inputs) > idx and node.inputs[idx]:
                v = const_of(graph, node.inputs[idx])
                if v is None:
                    return None
                if idx == 1:
                    lo = float(np.asarray(v).reshape(-1)[0])
                else:
                    hi = float(np.asarray(v).reshape(-1)[0])
        attrs = ClipAttrs(min=lo, max=hi)
    meta = tuple(sorted((k, v) for k, v in node.meta.items() if k == "out_shape"))
    return FusedPart(node.op, attrs, node.name, meta)


def _next(graph: Graph, node: Node, ops: frozenset[str], pow2: bool = False) -> Node | None:
    nxt = sole_consumer(graph, node.outputs[0])
    if nxt is None or nxt.op not in ops or (pow2 and not _is_pow2_ok(graph, nxt)):
        return None
    if len(act_inputs(graph, nxt)) != 1 or act_inputs(graph, nxt)[0] != node.outputs[0]:
        return None
    return nxt


def _is_pow2_ok(graph: Graph, node: Node) -> bool:
    """POW2 kernels implement ReLU6 but no other Clip."""
    if node.op != "Clip":
        return True
    part = _part(graph, node)
    return part is not None and (part.attrs.min, part.attrs.max) in ((0.0, 6.0), (0.0, np.inf))


def _fuse(graph: Graph, chain: list[Node], kind: str) -> FusionRecord | None:
    parts = [_part(graph, n) for n in chain]
    if any(p is None for p in parts):
        return None
    first, last = chain[0], chain[-1]
    name = graph.unique_name(f"{first.name}_fusion")
    fused = Node(
        name,
        "Fused",
        list(first.inputs),
        [last.outputs[0]],
        FusedAttrs(tuple(p for p in parts if p is not None), kind),
        {"fused_nodes": [n.name for n in chain]},
    )
    idx = graph.nodes.index(first)
    for n in chain:
        graph.nodes.remove(n)
        for o in n.outputs[:1]:
            if o != last.outputs[0]:
                graph.tensors.pop(o, None)
    graph.nodes.insert(idx, fused)
    prune_consts(graph)
    return FusionRecord(tuple(n.name for n in chain), name, kind)


def _conv_chain(
    graph: Graph, conv: Node, acts: frozenset[str], pow2: bool
) -> tuple[list[Node], str]:
    chain = [conv]
    pool = _next(graph, conv, POOLS)
    if pool is not None:
        chain.append(pool)
        act = _next(graph, pool, acts, pow2)
        if act is not None:
            return [*chain, act], "conv_pool_active"
        return chain, "conv_pool"
    act = _next(graph, conv, acts, pow2)
    if act is None:
        return chain, ""
    chain.append(act)
    mpool = _next(graph, act, frozenset({"MaxPool"}))
    if mpool is not None:
        return [*chain, mpool], "conv_active_pool"
    return chain, "conv_active"


def _run(
    graph: Graph, heads: frozenset[str], acts: frozenset[str], conv_like: bool, pow2: bool
) -> PassResult:
    res = PassResult()
    for node in [n for n in graph.nodes if n.op in heads]:
        if node not in graph.nodes:
            continue
        if conv_like:
            chain, kind = _conv_chain(graph, node, acts, pow2)
        else:
            act = _next(graph, node, acts, pow2)
            chain = [node, act] if act is not None else [node]
            kind = {"Linear": "linear_active", "Add": "add_active"}.get(node.op, "pool_active")
        if len(chain) == 1:
            nxt = sole_consumer(graph, node.outputs[0])
            if nxt is not None and nxt.op in ANY_FUSABLE and nxt.op not in acts:
                res.notes.append(f"{node.name}: {nxt.op} is not fusable in this scheme; kept")
            elif nxt is not None and nxt.op == "Clip" and pow2 and not _is_pow2_ok(graph, nxt):
                res.notes.append(f"{node.name}: POW2 kernels clip to [0, 6] only; {nxt.name} kept")
            continue
        if node.op == "Add" and len(act_inputs(graph, node)) != 2:
            continue
        rec = _fuse(graph, chain, kind)
        if rec is None:
            res.notes.append(f"{node.name}: activation bounds are not constant; not fused")
            continue
        res.fusions.append(rec)
        res.changed += 1
    return res


def make_fusion_passes() -> None:
    """Register the fusion passes for both schemes (called once at import)."""
    for pow2 in (False, True):
        sfx = "_pow2" if pow2 else ""
        acts = POW2_ACTIVATIONS if pow2 else SQ8_ACTIVATIONS

        # Under POW2 a Clip fuses only as ReLU6 (checked per node, see _is_pow2_ok).
        def conv(g: Graph, acts: frozenset[str] = acts, pow2: bool = pow2) -> PassResult:
            return _run(g, frozenset({"Conv"}), acts, True, pow2)

        def linear(g: Graph, acts: frozenset[str] = acts, pow2: bool = pow2) -> PassResult:
            return _run(g, frozenset({"Linear"}), acts, False, pow2)

        def pool(g: Graph, acts: frozenset[str] = acts, pow2: bool = pow2) -> PassResult:
            return _run(g, POOLS | GLOBAL_POOLS, acts, False, pow2)

        def add(g: Graph, acts: frozenset[str] = acts, pow2: bool = pow2) -> PassResult:
            return _run(g, frozenset({"Add"}), acts, False, pow2)

        scheme = "POW2" if pow2 else "SQ8"
        register_pass(f"fuse_conv{sfx}", f"conv + [pool] + [activation] as one layer ({scheme})")(
            conv
        )
        register_pass(f"fuse_linear{sfx}", f"linear + activation as one layer ({scheme})")(linear)
        register_pass(f"fuse_pool{sfx}", f"pool / global pool + activation ({scheme})")(pool)
        register_pass(f"fuse_add{sfx}", f"add + activation as one layer ({scheme})")(add)


make_fusion_passes()
