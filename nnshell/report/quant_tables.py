"""Rich renderings of quantization results: qshow, validate, footprint, aquant summaries."""

from __future__ import annotations

from typing import Any

import numpy as np
from rich.table import Table

from nnshell.report.tables import human_bytes


def _qt(q: Any, rng: tuple[float, float] | None = None, pow2: bool = False) -> str:
    if q is None:
        return ""
    if getattr(q, "is_float", False):  # a float layer (qtune * float): its storage type
        return str(q.describe()) + (f" [{rng[0]:.3g}, {rng[1]:.3g}]" if rng else "")
    if pow2:  # POW2: the Qm.n format and the container width
        from nnshell.quant.fixed_pow2 import qmn

        return f"{qmn(q)} {q.bits}b" + (f" [{rng[0]:.3g}, {rng[1]:.3g}]" if rng else "")
    s = f"{float(q.scale):.4g}" if not q.per_channel else "per-ch"
    text = f"S={s} Z={q.zero_point}"
    if q.bits != 8:
        text += f" {q.bits}b"
    if rng is not None:
        text += f" [{rng[0]:.3g}, {rng[1]:.3g}]"
    return text


def _mult_summary(nq: Any) -> str:
    c = nq.consts
    if "mul" not in c:
        return ""
    m, n = np.asarray(c["mul"]).reshape(-1), np.asarray(c["shift"]).reshape(-1)
    if m.size == 1 or (np.all(m == m[0]) and np.all(n == n[0])):
        return f"8b>>{int(n[0])} M={int(m[0])}"
    return f"M {int(m.min())}..{int(m.max())} >>{int(n.min())}..{int(n.max())} ({m.size} ch)"


def qshow_rows(graph: Any, qstate: Any, steps: list[int]) -> list[dict[str, Any]]:
    """Plain data for qshow (also the --json document)."""
    rows = []
    for step in steps:
        node = graph.nodes[step]
        nq = qstate.nodes[node.name]
        ins = [i for i in node.inputs if i and not graph.tensors[i].is_const]
        out = node.outputs[0]
        oq = qstate.tensors[out]
        row: dict[str, Any] = {
            "step": step,
            "name": node.name,
            "inputs": [
                {"tensor": i, **qstate.tensors[i].to_dict(), "range": qstate.ranges.get(i)}
                for i in ins
            ],
            "output": {"tensor": out, **oq.to_dict(), "range": qstate.ranges.get(out)},
            "forced_by": oq.forced_by,
        }
        if len(node.outputs) > 1:  # an expression: every output (NNTool lists them all)
            row["outputs"] = [
                {"tensor": o, **qstate.tensors[o].to_dict(), "range": qstate.ranges.get(o)}
                for o in node.outputs
            ]
        c = nq.consts
        if qstate.scheme == "POW2":  # Qm.n per tensor, the node's Q figures and warnings
            from nnshell.quant.fixed_pow2 import qmn

            for d, t in [*zip(row["inputs"], ins, strict=True), (row["output"], out)]:
                d["qmn"] = qmn(qstate.tensors[t])
            row["pow2"] = {k: v for k, v in nq.info.items() if k not in ("geometry", "scheme")}
        if "weights_scale" in c:
            sw = np.asarray(c["weights_scale"])
            row["weights"] = {
                "scale_min": float(sw.min()),
                "scale_max": float(sw.max()),
                "channels": int(sw.size),
                "bits": 8,
            }
            row["bias_bits"] = 32
            row["multiplier"] = {"M": c["mul"].tolist(), "N": c["shift"].tolist()}
            row["acc_bits"] = nq.info.get("acc_bits")
            row["mult_bits"] = nq.info.get("mult_bits")
        rows.append(row)
    return rows


def qshow_table(graph: Any, qstate: Any, steps: list[int], title: str) -> Table:
    """The qshow table: qtypes in and out, weights, multipliers, accumulator, forced qtypes."""
    table = Table(title=title, header_style="bold")
    for col in ("Step", "Name", "In", "Out", "Weights", "Bias", "Mult/shift", "Acc", "Forced by"):
        table.add_column(col, justify="right" if col in ("Step", "Acc") else "left")
    for step in steps:
        node = graph.nodes[step]
        nq = qstate.nodes[node.name]
        ins = [i for i in node.inputs if i and not graph.tensors[i].is_const]
        out = node.outputs[0]
        c = nq.consts
        w = ""
        if "weights_scale" in c:
            sw = np.asarray(c["weights_scale"])
            w = f"int8 S {sw.min():.3g}..{sw.max():.3g}"
        acc = nq.info.get("acc_bits")
        mb = nq.info.get("mult_bits")
        p2 = qstate.scheme == "POW2"
        mult = _mult_summary(nq) + (f" ({mb}-bit M)" if mb is not None and mb < 8 else "")
        bias = "int32" if "biases" in c else ""
        if p2 and "weights" in c:  # POW2: weight / bias formats and the shifts, no multipliers
            w = f"int{c['weights'].dtype.itemsize * 8} Q{nq.info['q_w']}"
            bias = f"int{c['biases'].dtype.itemsize * 8} Q{nq.info['q_b']}"
            mult = f"acc Q{nq.info['q_acc']} >>{int(c['out_shift'])}"
            mult += f" (-{nq.info['lost_bits']}b)" if nq.info.get("lost_bits") else ""
        table.add_row(
            str(step),
            node.name,
            "\n".join(_qt(qstate.tensors[i], qstate.ranges.get(i), p2) for i in ins),
            "\n".join(_qt(qstate.tensors[o], qstate.ranges.get(o), p2) for o in node.outputs),
            w,
            bias,
            mult,
            f"{acc}b" if acc else "",
            qstate.tensors[out].forced_by or "",
        )
    return table


def footprint_table(fp: Any) -> Table:
    """Per-layer parameter bytes, totals, peak activation RAM and the ratio."""
    scheme = getattr(fp, "scheme", "SQ8")
    wide = scheme == "POW2-16"
    table = Table(
        title=f"Memory footprint: float32 vs {scheme}", header_style="bold", show_footer=True
    )
    fq = fp.quant_params / fp.float_params if fp.float_params else 0.0
    table.add_column("Layer", footer="Parameters total")
    table.add_column("Float bytes", justify="right", footer=f"{fp.float_params:,}")
    table.add_column(
        "Int16 weights" if wide else "Int8 weights",
        justify="right",
        footer=f"{sum(r.weight_bytes for r in fp.layers):,}",
    )
    table.add_column(
        "Biases (bytes)" if scheme != "SQ8" else "Int32 biases",
        justify="right",
        footer=f"{sum(r.bias_bytes for r in fp.layers):,}",
    )
    table.add_column(
        "Mult+shift", justify="right", footer=f"{sum(r.mult_bytes for r in fp.layers):,}"
    )
    table.add_column("Quant bytes", justify="right", footer=f"{fp.quant_params:,} ({fq:.1%})")
    for r in fp.layers:
        if r.float_bytes or r.quant_bytes:
            table.add_row(
                r.name,
                f"{r.float_bytes:,}",
                f"{r.weight_bytes:,}",
                f"{r.bias_bytes:,}",
                f"{r.mult_bytes:,}",
                f"{r.quant_bytes:,}",
            )
    return table


def footprint_summary(fp: Any) -> list[str]:
    """The lines under the footprint table."""
    pr = fp.quant_params / fp.float_params if fp.float_params else 0.0
    ar = fp.quant_act_peak / fp.float_act_peak if fp.float_act_peak else 0.0
    total_f = fp.float_params + fp.float_act_peak
    total_q = fp.quant_params + fp.quant_act_peak
    return [
        f"parameters: {human_bytes(fp.float_params)} float -> {human_bytes(fp.quant_params)} "
        f"quantized ({pr:.1%})",
        f"peak activation RAM: {human_bytes(fp.float_act_peak)} float -> "
        f"{human_bytes(fp.quant_act_peak)} quantized ({ar:.1%})",
        f"total: {human_bytes(total_f)} -> {human_bytes(total_q)} "
        f"({total_q / total_f:.1%}, {total_f / max(total_q, 1):.2f}x smaller)",
        *peak_lines(fp),
    ]


def _peak_line(label: str, peak: Any) -> str:
    """One peak with the tensors that make it up, in bytes (a reader can add them up)."""
    parts = " + ".join(f"'{name}' {size:,}" for name, size in peak.tensors)
    return f"  {label} {peak.bytes:>8,} B at step {peak.step} {peak.node}: {parts}"


def peak_lines(fp: Any) -> list[str]:
    """Where the activation peak comes from: unfused float, fused float, quantized.

    Fusion and quantization are separate savings (a fused layer never writes its conv output
    out; int8 then divides the rest by four), so the lines show each step and its share.
    """
    fpk, qpk, upk = (getattr(fp, k, None) for k in ("float_peak", "quant_peak", "unfused_peak"))
    if fpk is None or qpk is None:
        return []
    lines = ["peak activation RAM, step by step (whole tensors live at the worst step):"]
    rows = [("float, as imported:", upk)] if upk is not None else []
    rows += [("float, fused:", fpk), (f"{fp.scheme}, fused:", qpk)]
    width = max(len(label) for label, _ in rows)
    lines += [_peak_line(label.ljust(width), peak) for label, peak in rows]
    if upk is not None and upk.bytes:
        lines.append(
            f"  fusion saves {upk.bytes - fpk.bytes:,} B, quantization "
            f"{fpk.bytes - qpk.bytes:,} B more: {qpk.bytes:,} B is "
            f"{qpk.bytes / upk.bytes:.1%} of the float model's {upk.bytes:,} B"
        )
    lines += [
        "note: peak: whole tensors only; no tiles (the AutoTiler streams them through L1), "
        "no int32",
        "  accumulators, no constants (parameters), no AutoTiler Infos arrays (C target: none)",
    ]
    return lines


def gap8_lines(place: Any) -> list[str]:
    """Where the quantized model lives on GAP8 (no FPU: the float model is not a candidate)."""
    act = "fits" if place.act_fits_l2 else "does not fit: spills to L3 RAM"
    if place.consts_fit_l2:
        const = f"promotable to L2 ({place.l2_needed:,} B with the activations fits the budget)"
    else:
        const = f"read from L3 tile by tile ({place.l2_needed:,} B with the activations: over)"
    return [
        "GAP8 (gen --target autotiler): no FPU, so only the quantized model runs there",
        f"  budgets: L1 {place.l1_budget:,} B (l1_size), L2 {place.l2_budget:,} B (l2_size); "
        "the chip: 64 KiB L1, 512 KiB L2, external L3",
        f"  activations: {place.act_bytes:,} B peak, in L2 ({act}), each layer tiled through L1",
        f"  constants: {place.const_bytes:,} B, home in L3 flash; {const}",
    ]


def validate_lines(res: Any, show_flips: int = 20) -> list[str]:
    """Accuracy lines of validate."""
    n = len(res.files)
    lines = [f"float     top-1: {res.float_acc:.2%} ({int(round(res.float_acc * n))}/{n})"]
    if res.quant_acc is not None:
        qa = res.quant_acc
        lines.append(f"quantized top-1: {qa:.2%} ({int(round(qa * n))}/{n})")
        lines.append(f"drop: {100 * (res.float_acc - qa):+.2f} points")
        flips = res.flips()
        lines.append(f"{len(flips)} image(s) changed prediction")
        for f, lab, fp, qp in flips[:show_flips]:
            lines.append(f"  {f}: label {lab}, float {fp}, quantized {qp}")
        if len(flips) > show_flips:
            lines.append(f"  ... and {len(flips) - show_flips} more (--json lists all)")
        lines += paired_lines(res.paired())
    return lines


def paired_lines(
    pc: Any, what: str = "drop", first: str = "float", second: str = "quantized"
) -> list[str]:
    """The paired test of a drop: McNemar on the discordant images, two intervals.

    Both accuracies are measured on the same images, so the noise of their difference comes
    from the discordant images only (see :mod:`nnshell.analysis.paired`), not from each
    accuracy's own standard error.
    """
    if pc is None:
        return []
    conf = f"{pc.confidence:.0%}"

    def iv(lo_hi: tuple[float, float]) -> str:
        return f"[{100 * lo_hi[0]:+.2f}, {100 * lo_hi[1]:+.2f}]"

    return [
        f"paired: {pc.discordant} of {pc.n} images right in only one version: {pc.broken} "
        f"broken (right in {first}), {pc.fixed} fixed (right {second}); exact McNemar "
        f"p = {pc.p_value:.3g}",
        f"{what} {conf} interval: {iv(pc.wald)} points (paired Wald), {iv(pc.newcombe)} (Newcombe)",
    ]


def confusion_table(m: np.ndarray, title: str) -> Table:
    """A confusion matrix: rows are labels, columns predictions."""
    table = Table(title=title, header_style="bold")
    table.add_column("label \\ pred", justify="right")
    for j in range(m.shape[1]):
        table.add_column(str(j), justify="right")
    for i in range(m.shape[0]):
        table.add_row(str(i), *[str(int(v)) if v else "." for v in m[i]])
    return table
