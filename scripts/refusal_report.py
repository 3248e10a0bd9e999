"""Count the layers of an ONNX model that SQ8 / POW2 refuse, trying every node (issue 17).

``aquant`` stops at the first layer it cannot quantize; this script quantizes each node on its
own (qtypes from one calibration pass on seeded smooth pseudo-images) and lists every refusal,
so a real model's remaining gaps are measured at once::

    python scripts/refusal_report.py ch_PP-OCRv4_det_infer.onnx x=3,160,160

The models are not in the repository (PP-OCR comes in the rapidocr_onnxruntime wheel).
"""

from __future__ import annotations

import argparse
import collections

import numpy as np

from nnshell.exec import run_float
from nnshell.importers.onnx_importer import load_onnx
from nnshell.ops import get_op
from nnshell.passes import run_scheme
from nnshell.quant import pow2 as p2
from nnshell.quant.fixed_pow2 import Pow2Context
from nnshell.quant.qrecord import QuantContext
from nnshell.quant.ranges import RangeMode
from nnshell.quant.sq8 import QuantOptions, assign_qtypes
from nnshell.quant.stats import TensorStats


def pseudo_images(shape: list[int], n: int = 4) -> np.ndarray:
    """Seeded low-frequency noise in [-1, 1] (white noise leaves deep layers nearly constant)."""
    rng = np.random.default_rng(0)
    c, h, w = shape
    base = rng.uniform(-1, 1, (n, c, -(-h // 8), -(-w // 8)))
    up = np.repeat(np.repeat(base, 8, axis=2), 8, axis=3)[:, :, :h, :w]
    return (up + 0.1 * rng.standard_normal((n, c, h, w))).astype(np.float32)


def refusals(path: str, name: str, shape: list[int], scheme: str, bits: int) -> list[tuple]:
    """``(node, op, message)`` of every node the scheme refuses."""
    g = load_onnx(path, {name: shape})
    run_scheme(g, "pow2" if scheme == "POW2" else "scale8")
    stats: dict[str, TensorStats] = {}
    run_float(
        g,
        {name: pseudo_images(shape)},
        observer=lambda n, v, s=stats: s.setdefault(n, TensorStats()).update(v),
    )
    bad = []
    if scheme == "SQ8":
        qt, _ = assign_qtypes(g, stats, QuantOptions())
    else:
        try:
            opts = p2.Pow2Options(RangeMode("minmax"), True, True, bits)
            qt, ranges = p2.assign_q(g, stats, opts)
        except Exception as e:  # noqa: BLE001 - a tensor no Q fits stops the whole scheme
            return [(len(g.nodes),), ("(qtypes)", "-", str(e).splitlines()[0])]
    for node in g.nodes:
        in_q = [qt.get(i) if i and not g.tensors[i].is_const else None for i in node.inputs]
        out_q = qt[node.outputs[0]]
        try:
            if scheme == "SQ8":
                get_op(node.op).quantize_sq8(QuantContext(g, node, in_q, out_q, False))
            else:
                rng = ranges[node.outputs[0]]
                ctx = Pow2Context(g, node, in_q, out_q, True, bits, rng, ranges)
                get_op(node.op).quantize_pow2(ctx)
        except Exception as e:  # noqa: BLE001 - every refusal is reported, whatever its kind
            bad.append((node.name, node.op, (str(e) or repr(e)).splitlines()[0]))
    return [(len(g.nodes),), *bad]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("input", help="NAME=C,H,W")
    args = ap.parse_args()
    name, dims = args.input.split("=")
    shape = [int(v) for v in dims.split(",")]
    for scheme, bits in (("SQ8", 8), ("POW2", 16), ("POW2", 8)):
        head, *bad = refusals(args.model, name, shape, scheme, bits)
        label = scheme if scheme == "SQ8" else f"POW2-{bits}"
        kinds = dict(collections.Counter(op for _, op, _ in bad))
        print(f"{label}: {len(bad)} of {head[0]} layers refused {kinds}")
        for node, op, msg in bad:
            print(f"    {node} ({op}): {msg[:160]}")


if __name__ == "__main__":
    main()
