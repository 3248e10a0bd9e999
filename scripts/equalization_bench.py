"""Measure weight_equalization, bcorr and balance_filters (issue 20) and write docs/equalization.md.

For each model: open, adjust, ``fusions --scale8``; then

- float check: the largest |nnshell float − onnxruntime on the ORIGINAL model| over the outputs,
  as a fraction of the output's range over all the images, before and after ``weight_equalization``
  (and the equalized graph against the unequalized one, which isolates the transform's own
  rounding from the executors' differences);
- output QSNR (dB) of the SQ8 integer network against the float outputs of the original fused
  graph, per-tensor weights (``aquant --per_tensor``) and, for reference, per-channel: plain,
  after ``weight_equalization``, after ``bcorr``, after both, after ``balance_filters``.

Calibration and bcorr use one image set, the QSNR another (held out).

    python scripts/equalization_bench.py [--models sample,mobile,cls,det160,nsfw] [--out FILE]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
CACHE = Path("/work/cache/real")
SAMPLE_NORM = "x: (x/255 - 0.5)/0.5"


def _models() -> dict[str, dict[str, Any]]:
    """How each model is opened and fed (real models as scripts/real_models.py does)."""
    from nnshell.input.images import InputOptions, expand_files

    calib = sorted(expand_files([str(ROOT / "sample_images" / "calib")]))
    test = sorted(expand_files([str(ROOT / "sample_images" / "test")]))[:128]
    out: dict[str, dict[str, Any]] = {}
    for key, name in (("sample", "cifar_net"), ("mobile", "mobile_net_tiny")):
        out[key] = {
            "title": f"{name} (sample_models)",
            "path": ROOT / "sample_models" / f"{name}.onnx",
            "shapes": None,
            "opts": InputOptions(norm_func=SAMPLE_NORM),
            "calib": calib,
            "eval": test,
        }
    try:
        import real_models as rm
    except ImportError:  # pragma: no cover - the script runs from the repository
        return out
    for key in ("cls", "det160", "nsfw"):
        spec = rm.MODELS[key]
        path = CACHE / "models" / spec.member
        if not path.exists():
            continue
        photos = rm.write_photos(spec, CACHE)
        out[key] = {
            "title": spec.title,
            "path": path,
            "shapes": {spec.input_name: list(spec.shape)},
            "opts": rm.input_options(spec),
            "calib": photos[:8],
            "eval": photos[8:],
            "spec": spec,
        }
    return out


def _session(m: dict[str, Any]) -> Any:
    from nnshell.session import Session

    s = Session()
    s.open(str(m["path"]), m["shapes"])
    s.adjust()
    s.fusions("scale8")
    return s


def _batch(graph: Any, files: list[str], opts: Any) -> np.ndarray:
    from nnshell.input.images import load_image

    dims = graph.tensors[graph.inputs[0]].dims
    return np.stack([load_image(p, opts, dims) for p in files])


def _float(graph: Any, x: np.ndarray) -> dict[str, np.ndarray]:
    from nnshell.exec import run_float

    outs: dict[str, list[np.ndarray]] = {o: [] for o in graph.outputs}
    for i in range(0, len(x), 16):
        r = run_float(graph, {graph.inputs[0]: x[i : i + 16]})
        for o in graph.outputs:
            outs[o].append(np.asarray(r[o], np.float64))
    return {o: np.concatenate(v) for o, v in outs.items()}


def _rel(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    worst = 0.0
    for o in a:
        rng = float(b[o].max() - b[o].min()) or 1.0
        worst = max(worst, float(np.abs(a[o] - b[o]).max()) / rng)
    return worst


def _ort(m: dict[str, Any], x: np.ndarray, graph: Any) -> dict[str, np.ndarray]:
    """onnxruntime on the original file, fed in the file's own layout (NHWC for open-nsfw)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(str(m["path"]), so, providers=["CPUExecutionProvider"])
    feed = sess.get_inputs()[0]
    want_shape = tuple(m["shapes"][feed.name]) if m["shapes"] else tuple(x.shape[1:])
    xx = x if x.shape[1:] == want_shape else x.transpose(0, 2, 3, 1)
    names = [o.name for o in sess.get_outputs()]
    outs: dict[str, list[np.ndarray]] = {o: [] for o in graph.outputs}
    for i in range(len(xx)):  # one at a time: some exports fix the batch to 1
        r = sess.run(names, {feed.name: np.ascontiguousarray(xx[i : i + 1])})
        for o, v in zip(graph.outputs, r, strict=False):
            outs[o].append(np.asarray(v, np.float64).reshape(1, -1))
    return {o: np.concatenate(v) for o, v in outs.items()}


def _qsnr(s: Any, x: np.ndarray, ref: dict[str, np.ndarray]) -> float:
    from nnshell.exec.int_exec import dequantize, run_int

    g, qs = s.graph, s.qstate
    sig = noise = 0.0
    for i in range(0, len(x), 16):
        it = run_int(g, qs, {g.inputs[0]: x[i : i + 16]})
        for o in g.outputs:
            r = ref[o][i : i + 16].reshape(len(x[i : i + 16]), -1)
            q = np.asarray(dequantize(qs, o, it[o]), np.float64).reshape(r.shape)
            sig += float((r**2).sum())
            noise += float(((r - q) ** 2).sum())
    return math.inf if noise == 0 else 10 * math.log10(max(sig, 1e-30) / noise)


def measure(key: str, m: dict[str, Any]) -> dict[str, Any]:
    """Every figure of one model."""
    from nnshell.tune.bcorr import bcorr
    from nnshell.tune.equalization import balance_filters, weight_equalization

    t0 = time.perf_counter()
    row: dict[str, Any] = {"key": key, "title": m["title"]}
    base = _session(m)
    opts = m["opts"]
    xe = _batch(base.graph, m["eval"], opts)
    ref = _float(base.graph, xe)
    eq = _session(m)
    res = weight_equalization(eq, 0.1)
    row["pairs"], row["sweeps"] = len(res.pairs), res.sweeps
    # the float check runs on every image (calibration and held-out)
    xa = np.concatenate([_batch(base.graph, m["calib"], opts), xe])
    base_out, eq_out = _float(base.graph, xa), _float(eq.graph, xa)
    row["eq_vs_base"] = _rel(eq_out, base_out)
    ort_out = _ort(m, xa, base.graph)
    row["base_vs_ort"] = _rel({o: v.reshape(len(xa), -1) for o, v in base_out.items()}, ort_out)
    row["eq_vs_ort"] = _rel({o: v.reshape(len(xa), -1) for o, v in eq_out.items()}, ort_out)
    row["float_images"] = len(xa)
    for per_tensor in (True, False):
        tag = "pt" if per_tensor else "pc"
        for label, equalize, correct, balance in (
            ("plain", False, False, False),
            ("we", True, False, False),
            ("bcorr", False, True, False),
            ("we+bcorr", True, True, False),
            ("balance", False, False, True),
        ):
            if balance and not per_tensor:
                continue
            s = _session(m)
            if equalize:
                weight_equalization(s, 0.1)
            s.aquant(m["calib"], opts, per_tensor=per_tensor)
            if balance:
                balance_filters(s)
            if correct:
                bcorr(s, m["calib"], opts)
            row[f"{tag}:{label}"] = _qsnr(s, xe, ref)
    row["seconds"] = time.perf_counter() - t0
    return row


def render(rows: list[dict[str, Any]]) -> str:
    """The Markdown document."""
    lines = [
        "# Weight equalization, bias correction, filter balancing: measurements",
        "",
        "Generated by `python scripts/equalization_bench.py` (issue 20). Every model: open, "
        "`adjust`, `fusions --scale8`, then the tuning commands through their library functions "
        "(`nnshell.tune`), `aquant` on the calibration images, and the output QSNR of the SQ8 "
        "integer network against the float outputs of the ORIGINAL fused graph (so a bias "
        "correction that changes the float graph is judged against what the model should "
        "compute) on held-out images. Sample models: 256 calibration images "
        "(`sample_images/calib`), 128 test images; real models (issue 14, from "
        "`scripts/real_models.py`): 8 photos for calibration and bcorr, the other 4 for QSNR.",
        "",
        "## Float outputs after `weight_equalization` (threshold 0.1)",
        "",
        "Largest |difference| as a fraction of the output's range, over every image "
        "(calibration and held-out).",
        "",
        "| model | pairs | sweeps | equalized vs onnxruntime (original) | "
        "unequalized nnshell vs onnxruntime | equalized vs unequalized (nnshell) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['title']} | {r['pairs']} | {r['sweeps']} | {r.get('eq_vs_ort', math.nan):.2e} "
            f"| {r.get('base_vs_ort', math.nan):.2e} | {r['eq_vs_base']:.2e} |"
        )
    lines += [
        "",
        "## Output QSNR (dB), SQ8",
        "",
        "| model | weights | plain | weight_equalization | bcorr | both | balance_filters |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        for tag, name in (("pt", "per-tensor"), ("pc", "per-channel")):
            cells = [
                f"{r[f'{tag}:{k}']:.2f}" if f"{tag}:{k}" in r else "—"
                for k in ("plain", "we", "bcorr", "we+bcorr", "balance")
            ]
            lines.append(f"| {r['title']} | {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Measure the chosen models and write the document."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="sample,mobile,cls,det160,nsfw")
    ap.add_argument("--out", default=str(ROOT / "docs" / "equalization-figures.md"))
    args = ap.parse_args(argv)
    models = _models()
    rows = []
    for key in args.models.split(","):
        if key not in models:
            print(f"{key}: not available (real models need {CACHE})")
            continue
        rows.append(measure(key, models[key]))
        print({k: v for k, v in rows[-1].items() if k != "title"}, flush=True)
    Path(args.out).write_text(render(rows), encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
