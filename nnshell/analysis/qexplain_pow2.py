"""``qexplain`` for a POW2 quantization: the Qm.n formats, the shifts and the integer formula."""

from __future__ import annotations

from typing import Any

import numpy as np

from nnshell.analysis.qexplain_record import QExplain
from nnshell.ir import Graph
from nnshell.ops.fused import op_label
from nnshell.quant.fixed_pow2 import qmn


def explain_pow2(graph: Graph, qstate: Any, step: int) -> QExplain:
    """One POW2 layer: input / output formats, weight / bias / accumulator Q, shifts, warnings."""
    node = graph.nodes[step]
    nq = qstate.nodes[node.name]
    info, c = nq.info, nq.consts
    ins = [t for t in node.inputs if t and not graph.tensors[t].is_const]
    out = node.outputs[0]
    data: dict[str, Any] = {
        "step": step,
        "name": node.name,
        "op": op_label(node),
        "scheme": "POW2",
        "inputs": [{"tensor": t, "format": qmn(qstate.tensors[t])} for t in ins],
        "output": {"tensor": out, "format": qmn(qstate.tensors[out])},
        "info": {k: v for k, v in info.items() if k != "geometry"},
        "consts": {k: np.asarray(v).reshape(-1)[:16].tolist() for k, v in c.items()},
    }
    bits = int(info.get("bits", qstate.tensors[out].bits))
    L = [f"step {step} {node.name} ({op_label(node)}): POW2 {bits}-bit, real = code·2^-Q"]
    for d in data["inputs"]:
        L.append(f"  input '{d['tensor']}': {d['format']}")
    L.append(f"  output '{out}': {data['output']['format']}")
    if "q_acc" in info:
        L.append(
            f"  weights Q{info['q_w']} int{bits}, bias Q{info['q_b']} int{bits}, accumulator "
            f"Q{info['q_acc']} ({info['acc_int_bits']} integer bits, {info['acc_bits']} of 31)"
        )
        pre = f"rnorm(x, {int(c['in_shift'])})" if int(c["in_shift"]) else "x"
        L.append(f"  acc = Σ w·{pre} + (b << {int(c['bias_shift'])})")
        L.append(f"  out = clip{bits}(rnorm(acc, {int(c['out_shift'])}))")
    else:
        for k, v in c.items():
            a = np.asarray(v).reshape(-1)
            L.append(f"  {k}: {a[:8].tolist()}{' ...' if a.size > 8 else ''}")
    for w in info.get("warnings", []):
        L.append(f"  warning: {w}")
    L.append("  integer kernels: POW2.md (rounding shifts, saturation to the container)")
    return QExplain(step, node.name, data, L)


__all__ = ["explain_pow2"]
