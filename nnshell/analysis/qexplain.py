"""``qexplain``: the integer formula of one layer, with its actual numbers (SQ8.md §3-§6).

For a conv / linear layer (alone or heading a fusion) at step ``i`` (symbols use the step
number, like show and qshow; ``layer_index`` is its rank among the weighted layers):

``Oiq = clip8(rnorm((Biq + Σ_k Wiq·Iq) · Mi, Ni))``, per output channel ``c``, where

- ``Biq[c]`` is the int32 bias ``round_half_up(B[c] / (sI·sWi[c]))`` plus the zero-point offset
  ``off[c] = −zI·Σ_k Wiq[c,k] + round_half_up(zO·sO/(sI·sWi[c]))`` (the input zero point taken out
  of the dot product, the output zero point pre-added at the accumulator scale);
- ``Mi[c]·2^-Ni[c]`` approximates the real multiplier ``mi[c] = sI·sWi[c]/sOi``;
- the fused pool / activation then run on the int8 codes.

The input scale ``sI`` of layer ``i`` is the output scale of its producer (layer ``i−1``), so
``mi[c] = sO(i−1)·sWi[c]/sOi`` and the scales chain back to the graph input. Everything is
returned as plain data plus text lines; the shell prints them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nnshell.analysis.qexplain_pow2 import explain_pow2
from nnshell.analysis.qexplain_record import QExplain
from nnshell.ir import Graph
from nnshell.ops import get_op
from nnshell.quant.fixed_point import round_half_up
from nnshell.quant.scheme import POW2, scheme_of

#: Per-channel tables longer than this are summarised (the worst channels are still listed).
MAX_CHANNEL_ROWS = 16


def _g(v: float) -> str:
    return f"{float(v):.6g}"


def _producer(graph: Graph, tensor: str) -> tuple[int, str] | None:
    for step, node in enumerate(graph.nodes):
        if tensor in node.outputs:
            return step, node.name
    return None


def _is_weighted(nq: Any) -> bool:
    return "weights" in nq.consts and "mul" in nq.consts


def _weighted_index(graph: Graph, qstate: Any, step: int) -> int:
    """1-based number of the step among the weighted (conv / linear) layers."""
    k = sum(1 for node in graph.nodes[: step + 1] if _is_weighted(qstate.nodes[node.name]))
    return k if _is_weighted(qstate.nodes[graph.nodes[step].name]) else 0


def _head_op(node: Any) -> str:
    return str(get_op(node.op).head(node).op)


def _tail_lines(node: Any, zo: int) -> list[str]:
    """What the fused parts after the head do to the codes."""
    from nnshell.ops.relu import Relu

    out = []
    for p in get_op(node.op).tail_parts(node):
        part_op = get_op(p.op)
        if part_op.kind == "pool":
            k = getattr(p.attrs, "kernel_shape", ())
            dims = "x".join(map(str, k)) if k else ""
            what = part_op.pool_reduce
            out.append(f"then {p.op} {dims}: {what} of the int8 codes (same scale and zero point)")
        elif isinstance(part_op, Relu):
            note = " — clip8 already floors at -128, so it costs nothing" if zo == -128 else ""
            out.append(f"then ReLU on codes: max(zO, y) = max({zo}, y){note}")
        else:
            from nnshell.ops.fused_act import SQ8, fused_act

            act = fused_act(p.op, SQ8)
            what = act.fused_explain(p.attrs, SQ8) if act is not None else p.op
            out.append(f"then {what} (SQ8.md §6, docs/activations.md)")
    return out


def _chain(graph: Graph, qstate: Any, step: int) -> list[dict[str, Any]]:
    """The scale chain from the graph input to this layer's output, through first inputs."""
    chain: list[dict[str, Any]] = []
    node = graph.nodes[step]
    tensor = node.outputs[0]
    seen: set[str] = set()
    while tensor not in seen:
        seen.add(tensor)
        prod = _producer(graph, tensor)
        q = qstate.tensors[tensor]
        if prod is None:
            chain.append(
                {"step": None, "name": "graph input", "tensor": tensor, "scale": float(q.scale)}
            )
            break
        pstep, pname = prod
        pnode = graph.nodes[pstep]
        entry = {
            "step": pstep,
            "name": pname,
            "tensor": tensor,
            "scale": float(q.scale),
            "zero_point": q.zero_point,
            "weighted": _is_weighted(qstate.nodes[pname]),
        }
        chain.append(entry)
        ins = [i for i in pnode.inputs if i and not graph.tensors[i].is_const]
        if not ins:
            break
        tensor = ins[0]
    return list(reversed(chain))


def _fmt_table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    fmt = "  ".join(f"{{:>{w}}}" for w in widths)
    return ["  " + fmt.format(*header)] + ["  " + fmt.format(*r) for r in rows]


def explain_weighted(graph: Graph, qstate: Any, step: int) -> QExplain:
    """The full explanation of a conv / linear (possibly fused) layer."""
    node = graph.nodes[step]
    nq = qstate.nodes[node.name]
    c = nq.consts
    # symbols carry the step number (O2q is step 2's output), as show / qshow count steps;
    # the rank among the weighted layers is reported separately ("layer_index")
    wi = _weighted_index(graph, qstate, step)
    i = step
    in_t = next(t for t in node.inputs if t and not graph.tensors[t].is_const)
    qi, qo = qstate.tensors[in_t], qstate.tensors[node.outputs[0]]
    si, zi, so, zo = float(qi.scale), qi.zero_point, float(qo.scale), qo.zero_point
    act_in = nq.info.get("act_in_scale")
    if act_in is not None:  # a fused function activation: the head requantizes to its input
        so, zo = float(act_in), 0
    sw = np.asarray(c["weights_scale"], np.float64).reshape(-1)
    mm = np.asarray(c["mul"]).astype(np.int64).reshape(-1)
    nn = np.asarray(c["shift"]).astype(np.int64).reshape(-1)
    if mm.size == 1 and sw.size > 1:
        mm, nn = np.repeat(mm, sw.size), np.repeat(nn, sw.size)
    wq = np.asarray(c["weights"]).astype(np.int64)
    wsum = wq.reshape(wq.shape[0], -1).sum(axis=1)
    k = int(nq.info.get("k", wq[0].size))
    m_real = si * sw / so
    approx = mm * np.exp2(-nn.astype(np.float64))
    rel = np.abs(approx - m_real) / np.where(m_real > 0, m_real, 1.0)
    bq = np.asarray(c["biases"]).astype(np.int64).reshape(-1)
    total = np.asarray(c["bias_total"]).astype(np.int64).reshape(-1)
    out_term = np.asarray(round_half_up(zo * so / (si * sw)), np.int64)
    off = -zi * wsum + out_term
    bias_t = node.inputs[2] if len(node.inputs) > 2 and node.inputs[2] else None
    bias_f = graph.tensors[bias_t].const if bias_t else None
    bias_f = np.zeros(sw.size) if bias_f is None else np.asarray(bias_f, np.float64).reshape(-1)
    prod = _producer(graph, in_t)
    producer = "graph input" if prod is None else f"{prod[1]} (step {prod[0]})"
    head = _head_op(node)
    op = get_op(node.op).label(node)
    channels = [
        {
            "channel": ch,
            "weight_scale": float(sw[ch]),
            "m_real": float(m_real[ch]),
            "M": int(mm[ch]),
            "N": int(nn[ch]),
            "approx": float(approx[ch]),
            "rel_err": float(rel[ch]),
            "bias": float(bias_f[ch]),
            "bias_q": int(bq[ch]),
            "weight_sum": int(wsum[ch]),
            "offset": int(off[ch]),
            "bias_total": int(total[ch]),
        }
        for ch in range(sw.size)
    ]
    worst = int(rel.argmax()) if rel.size else 0
    chain = _chain(graph, qstate, step)
    sym = f"{i}"
    formula = f"O{sym}q = clip8(rnorm((B{sym}q + Σ W{sym}q·Iq) · M{sym}, N{sym}))"
    data: dict[str, Any] = {
        "step": step,
        "name": node.name,
        "op": op,
        "head": head,
        "layer_index": wi,
        "formula": formula,
        "K": k,
        "acc_bits": nq.info.get("acc_bits"),
        "mult_bits": nq.info.get("mult_bits"),
        "input": {"tensor": in_t, "scale": si, "zero_point": zi, "producer": producer},
        "output": {"tensor": node.outputs[0], "scale": so, "zero_point": zo},
        "channels": channels,
        "rel_err_max": float(rel.max()) if rel.size else 0.0,
        "rel_err_mean": float(rel.mean()) if rel.size else 0.0,
        "worst_channel": worst,
        "chain": chain,
    }
    L: list[str] = []
    L.append(
        f"step {step} {node.name} ({op}): weighted layer {wi} of the graph (symbols indexed "
        f"by step: O{i}q is this step's output), K = {k} terms per output"
    )
    L.append("integer formula, per output channel c:")
    L.append(f"  {formula}")
    L.append(
        f"  = clip8(rnorm((B{sym}q[c] + Σ_k W{sym}q[c,k]·Iq[k]) · M{sym}[c], N{sym}[c])), "
        f"accumulator {nq.info.get('acc_bits')} bits, {nq.info.get('mult_bits')}-bit M"
    )
    L.extend("  " + t for t in _tail_lines(node, zo))
    L.append("real values: I = sI·(Iq − zI), W[c] = sW[c]·Wq[c], O = sO·(Oq − zO)")
    L.append(f"  sI = {_g(si)}, zI = {zi}  (input '{in_t}', from {producer})")
    if act_in is None:
        L.append(f"  sO{sym} = {_g(so)}, zO{sym} = {zo}  (output '{node.outputs[0]}')")
    else:
        L.append(
            f"  sO{sym} = {_g(so)}, zO{sym} = {zo}  (the fused activation's intermediate input; "
            f"output '{node.outputs[0]}' s = {_g(float(qo.scale))}, z = {qo.zero_point})"
        )
    L.append(f"  sW{sym}[c] = max|W[c]|/127 in {_g(sw.min())}..{_g(sw.max())} ({sw.size} channels)")
    L.append(
        f"real multiplier m{sym}[c] = sI·sW{sym}[c]/sO{sym} ≈ M{sym}[c]·2^-N{sym}[c] "
        f"(8-bit M, SQ8.md §4):"
    )
    ch0 = channels[0]
    L.append(
        f"  channel 0: {_g(si)} · {_g(ch0['weight_scale'])} / {_g(so)} = {_g(ch0['m_real'])} "
        f"≈ {ch0['M']}·2^-{ch0['N']} = {_g(ch0['approx'])} (rel. error {ch0['rel_err']:.2e})"
    )
    header = ["c", f"sW{sym}[c]", f"m{sym}[c]", "M", "N", "M·2^-N", "rel err"]

    def row(d: dict[str, Any]) -> list[str]:
        return [
            str(d["channel"]),
            _g(d["weight_scale"]),
            _g(d["m_real"]),
            str(d["M"]),
            str(d["N"]),
            _g(d["approx"]),
            f"{d['rel_err']:.2e}",
        ]

    if len(channels) <= MAX_CHANNEL_ROWS:
        L.extend(_fmt_table(header, [row(d) for d in channels]))
    else:
        order = np.argsort(-rel)[:5]
        L.append(
            f"  {len(channels)} channels: M {mm.min()}..{mm.max()}, N {nn.min()}..{nn.max()}, "
            f"rel. error mean {rel.mean():.2e}, max {rel.max():.2e} (channel {worst}); "
            "the 5 worst (--json lists all):"
        )
        L.extend(_fmt_table(header, [row(channels[int(j)]) for j in order]))
    L.append("zero points (folded into the int32 bias, no extra add in the kernel):")
    L.append(
        f"  B{sym}q[c] = round_half_up(B[c]/(sI·sW{sym}[c])) + off[c],  "
        f"off[c] = −zI·Σ_k W{sym}q[c,k] + round_half_up(zO·sO/(sI·sW{sym}[c]))"
    )
    L.append(
        f"  channel 0: round_half_up({_g(ch0['bias'])}/({_g(si)}·{_g(ch0['weight_scale'])})) "
        f"= {ch0['bias_q']}; off = −({zi})·({ch0['weight_sum']}) + "
        f"round_half_up({zo}·{_g(so)}/({_g(si)}·{_g(ch0['weight_scale'])})) = {ch0['offset']}; "
        f"B{sym}q[0] = {ch0['bias_total']}"
    )
    if zi == 0:
        L.append("  zI = 0: the input needs no correction (symmetric input)")
    if zo == -128:
        L.append("  zO = −128: the output uses all 256 codes over [0, max] (asymmetric ReLU)")
    L.append("scale chain (the input scale of each layer is its producer's output scale):")
    for e in chain:
        where = "graph input" if e["step"] is None else f"step {e['step']} {e['name']}"
        L.append(f"  {where}: '{e['tensor']}' s = {_g(e['scale'])}")
    if prod is None:
        L.append(f"  step {i} reads the graph input: sI is the input quantization scale")
    else:
        L.append(f"  sI of step {i} = sO of {prod[1]} = {_g(si)}")
    L.append(
        "general form for conv_i fed by conv_(i−1): "
        "O_iq = clip8(rnorm((B_iq + Σ W_iq·O_(i−1)q) · M_i, N_i)), "
        "M_i·2^-N_i ≈ sO_(i−1)·sW_i[c]/sO_i"
    )
    L.append(
        "  so O_i ≈ sO_i·(O_iq − zO_i) = act(B_i + Σ W_i·O_(i−1)) with every scale set by "
        "the calibrated range of that layer's output; sO_0 = sI of the graph input"
    )
    return QExplain(step, node.name, data, L)


def explain_other(graph: Graph, qstate: Any, step: int) -> QExplain:
    """A short explanation for layers without weights (pools, add, reshapes, softmax...)."""
    node = graph.nodes[step]
    nq = qstate.nodes[node.name]
    ins = [t for t in node.inputs if t and not graph.tensors[t].is_const]
    qo = qstate.tensors[node.outputs[0]]
    data: dict[str, Any] = {
        "step": step,
        "name": node.name,
        "op": node.op,
        "inputs": [
            {
                "tensor": t,
                "scale": float(qstate.tensors[t].scale),
                "zero_point": qstate.tensors[t].zero_point,
                "producer": (p[1] if (p := _producer(graph, t)) else "graph input"),
            }
            for t in ins
        ],
        "output": {
            "tensor": node.outputs[0],
            "scale": float(qo.scale),
            "zero_point": qo.zero_point,
        },
        "consts": {k: np.asarray(v).reshape(-1)[:16].tolist() for k, v in nq.consts.items()},
        "chain": _chain(graph, qstate, step),
    }
    L = [f"step {step} {node.name} ({node.op}): no weights"]
    for d in data["inputs"]:
        L.append(
            f"  input '{d['tensor']}': s = {_g(d['scale'])}, z = {d['zero_point']} "
            f"(from {d['producer']})"
        )
    L.append(f"  output '{node.outputs[0]}': s = {_g(qo.scale)}, z = {qo.zero_point}")
    if get_op(node.op).q_passthrough:
        L.append("  data movement only: the output keeps the input's codes and qtype")
    for k, v in nq.consts.items():
        a = np.asarray(v).reshape(-1)
        L.append(f"  {k}: {a[:8].tolist()}{' ...' if a.size > 8 else ''}")
    L.append("  integer kernels of this op: SQ8.md §5")
    return QExplain(step, node.name, data, L)


def qexplain(graph: Graph, qstate: Any, steps: list[int]) -> list[QExplain]:
    """Explain each selected step."""
    out = []
    for step in steps:
        nq = qstate.nodes[graph.nodes[step].name]
        fn = explain_weighted if _is_weighted(nq) else explain_other
        if scheme_of(qstate) is POW2:
            fn = explain_pow2
        out.append(fn(graph, qstate, step))
    return out


__all__ = ["QExplain", "explain_other", "explain_weighted", "qexplain"]
