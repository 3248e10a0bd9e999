"""SQ8 accuracy, per-layer QSNR and footprint of the sample model, beside onnxruntime (issue 5).

Everything runs through the nnshell library API (:class:`nnshell.session.Session`), the way the
shell's ``aquant``/``validate``/``footprint`` commands do, on the committed sample data:
``sample_models/cifar_net.onnx``, calibration on ``sample_images/calib`` (256 images), top-1 on
``sample_images/test`` (540 labelled images), normalisation ``x: (x/255 - 0.5)/0.5``.

Rows: float (onnxruntime and nnshell), nnshell int8 with the default options (minmax, asymmetric
activations, per-channel weights), ``--symmetric``, ``--per_tensor`` and each ``--mode``; and the
peer figure, onnxruntime's ``quantize_static`` (QDQ, per-channel, MinMax, activations and weights
QInt8; the QUInt8-activation variant too) calibrated on the same 256 images with the same
normalisation and run by onnxruntime. Then the QSNR of every fused layer (float executor against
the dequantized integer executor, per image, averaged over the test images) and the footprint.

The tables are printed and written to ``docs/quantization.md`` (section "SQ8 accuracy on the
sample model (issue 5)"; other sections are kept).

    python scripts/quant_report.py [--no-write]
"""

from __future__ import annotations

import argparse
import datetime
import logging
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from doc_sections import write_section  # noqa: E402, F401 - re-exported to the benchmarks

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_models" / "cifar_net.onnx"
CALIB = ROOT / "sample_images" / "calib"
TEST = ROOT / "sample_images" / "test"
NORM = "x: (x/255 - 0.5)/0.5"
DOC = ROOT / "docs" / "quantization.md"
SECTION = "## SQ8 accuracy on the sample model (issue 5)"

#: nnshell aquant variants: (label, mode, symmetric, per_tensor).
VARIANTS: list[tuple[str, str, bool, bool]] = [
    ("int8 default (minmax, asymmetric, per-channel)", "minmax", False, False),
    ("int8 --symmetric", "minmax", True, False),
    ("int8 --per_tensor", "minmax", False, True),
    ("int8 --mode percentile:99.99", "percentile:99.99", False, False),
    ("int8 --mode mse", "mse", False, False),
    ("int8 --mode kl", "kl", False, False),
]


# --------------------------------------------------------------------------- onnxruntime peer


def image_files(folder: Path) -> list[str]:
    """The PNG files of ``folder`` in sorted order (what ``aquant``/``validate`` expand to)."""
    return sorted(str(folder / n) for n in os.listdir(folder) if n.lower().endswith(".png"))


def load_pngs(files: Sequence[str]) -> np.ndarray:
    """Decode PNGs with PIL and normalise like ``-N "x: (x/255 - 0.5)/0.5"``: NCHW float32.

    The arithmetic is float64 with one final cast to float32, as nnshell's ``-N`` evaluator does.

    Written independently of nnshell's loader so the onnxruntime side does its own work;
    :func:`check_same_inputs` verifies both loaders give the same arrays.
    """
    from PIL import Image

    out = np.empty((len(files), 3, 32, 32), np.float32)
    for i, f in enumerate(files):
        with Image.open(f) as img:
            arr = np.asarray(img.convert("RGB"), dtype=np.float64)
        out[i] = ((arr / 255 - 0.5) / 0.5).transpose(2, 0, 1)  # float64, cast once, like -N
    return out


def label_of(path: str) -> int:
    """``<idx>_<label>.png`` -> label."""
    return int(Path(path).stem.rsplit("_", 1)[1])


class PngReader:
    """onnxruntime ``CalibrationDataReader`` over PNG files, ``batch`` images per feed."""

    def __init__(self, files: Sequence[str], input_name: str, batch: int = 64) -> None:
        self.files, self.input_name, self.batch, self.pos = list(files), input_name, batch, 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.pos >= len(self.files):
            return None
        chunk = self.files[self.pos : self.pos + self.batch]
        self.pos += len(chunk)
        return {self.input_name: load_pngs(chunk)}

    def rewind(self) -> None:
        self.pos = 0


def ort_quantize(out_path: Path, files: Sequence[str], activation: str = "QInt8") -> None:
    """``quantize_static`` the sample: QDQ, per-channel, MinMax, int8 weights; reads the PNGs."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(PngReader, CalibrationDataReader):  # type: ignore[misc]
        pass

    logging.getLogger().setLevel(logging.ERROR)  # the "consider pre-processing" warnings
    quantize_static(
        str(SAMPLE),
        str(out_path),
        Reader(files, "input"),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=getattr(QuantType, activation),
        weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax,
    )


def ort_session(path: Path | str, threads: int = 0):  # noqa: ANN201 - ort.InferenceSession
    """A CPU session; ``threads`` > 0 sets intra_op_num_threads (0: onnxruntime's default)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    if threads:
        so.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


# --------------------------------------------------------------------------- nnshell side


def make_session():  # noqa: ANN201 - nnshell.session.Session
    """Open, adjust and fuse the sample; set the normalisation (no calibration yet)."""
    from nnshell.session import Session

    s = Session()
    s.open(str(SAMPLE))
    s.set("input_norm_func", NORM)
    s.adjust()
    s.fusions("scale8")
    return s


def check_same_inputs(session, files: Sequence[str], xs: np.ndarray) -> float:  # noqa: ANN001
    """Largest difference between nnshell's loader and :func:`load_pngs` on ``files``."""
    from nnshell.input.images import iter_batches

    g = session.graph
    ys = [b for _, b in iter_batches(files, session.input_options(), g.tensors[g.inputs[0]].dims)]
    return float(np.abs(np.concatenate(ys) - xs).max())


def layer_qsnr(session, xs: np.ndarray) -> list[tuple[str, str, float, float]]:  # noqa: ANN001
    """(layer, op, mean QSNR dB, worst-image QSNR dB) of each node output, float vs int."""
    from nnshell.exec import run_float
    from nnshell.exec.int_exec import run_int
    from nnshell.ops.fused import op_label

    g, qs = session.graph, session.qstate
    names = [n.outputs[0] for n in g.nodes]
    fl = run_float(g, {g.inputs[0]: xs}, keep=names)
    it = run_int(g, qs, {g.inputs[0]: xs}, keep=names)
    rows = []
    for node, name in zip(g.nodes, names, strict=True):
        ref = fl[name].reshape(len(xs), -1).astype(np.float64)
        deq = qs.tensors[name].dequantize(it[name]).reshape(len(xs), -1)
        err = np.maximum(((ref - deq) ** 2).sum(1), 1e-30)
        db = 10 * np.log10(np.maximum((ref**2).sum(1), 1e-30) / err)
        rows.append((node.name, op_label(node), float(db.mean()), float(db.min())))
    return rows


# --------------------------------------------------------------------------- report


@dataclass
class Report:
    rows: list[tuple[str, str, float, str]]  # (configuration, runtime, top-1, note)
    qsnr: list[tuple[str, str, float, float]]
    footprint: object
    images: int
    input_diff: float
    agreement: float  # nnshell default int8 vs ORT QDQ QInt8: same top-1 prediction


def run() -> Report:
    session = make_session()
    test_files, calib_files = image_files(TEST), image_files(CALIB)
    labels = np.array([label_of(f) for f in test_files])
    xs = load_pngs(test_files)
    diff = max(
        check_same_inputs(session, test_files, xs),
        check_same_inputs(session, calib_files, load_pngs(calib_files)),
    )
    rows: list[tuple[str, str, float, str]] = []

    def acc(pred: np.ndarray) -> float:
        return float((pred == labels).mean())

    float_ort = ort_session(SAMPLE).run(None, {"input": xs})[0]
    rows.append(("float32", "onnxruntime", acc(float_ort.argmax(1)), ""))
    session.aquant([str(CALIB)])
    res = session.validate([str(TEST)])
    rows.append(("float32", "nnshell", res.float_acc, ""))
    preds: dict[str, np.ndarray] = {}
    for label, mode, sym, pt in VARIANTS:
        session.aquant([], mode=mode, symmetric=sym, per_tensor=pt)
        res = session.validate([str(TEST)])
        assert res.quant_acc is not None and res.quant_pred is not None
        preds[label] = res.quant_pred
        rows.append((label, "nnshell", res.quant_acc, session.qstate.options.describe()))
    with tempfile.TemporaryDirectory() as d:
        for act in ("QInt8", "QUInt8"):
            path = Path(d) / f"qdq_{act}.onnx"
            ort_quantize(path, calib_files, act)
            out = ort_session(path).run(None, {"input": xs})[0]
            preds[act] = out.argmax(1)
            note = f"QDQ, per-channel, MinMax; activations {act}, weights QInt8"
            conf = f"int8 quantize_static ({act} act.)"
            rows.append((conf, "onnxruntime", acc(preds[act]), note))
    agreement = float((preds[VARIANTS[0][0]] == preds["QInt8"]).mean())
    session.aquant([])  # back to the defaults for QSNR and footprint
    qsnr = layer_qsnr(session, xs)
    return Report(rows, qsnr, session.footprint(), len(xs), diff, agreement)


def tables(rep: Report) -> list[str]:
    """The Markdown tables (also what is printed)."""
    float_nn = next(a for c, r, a, _ in rep.rows if c == "float32" and r == "nnshell")
    lines = [
        f"Top-1 on `sample_images/test` ({rep.images} images):",
        "",
        "| configuration | runtime | top-1 | drop vs float (points) |",
        "|---|---|---:|---:|",
    ]
    for conf, runtime, a, _ in rep.rows:
        drop = "" if conf == "float32" else f"{100 * (float_nn - a):+.2f}"
        lines.append(f"| {conf} | {runtime} | {100 * a:.2f}% | {drop} |")
    lines += [
        "",
        f"nnshell default int8 and onnxruntime QDQ (QInt8) agree on {100 * rep.agreement:.2f}% "
        "of the test images' top-1.",
        "",
        "Per-layer QSNR of the default quantization (float executor against the dequantized "
        "integer executor; 10·log10(Σref²/Σerr²) per image):",
        "",
        "| step | layer | op | mean QSNR (dB) | worst image (dB) |",
        "|---:|---|---|---:|---:|",
    ]
    for i, (name, op, mean, worst) in enumerate(rep.qsnr):
        lines.append(f"| {i} | {name} | {op} | {mean:.1f} | {worst:.1f} |")
    fp = rep.footprint
    lines += [
        "",
        "Footprint (default quantization):",
        "",
        "| | float32 | SQ8 | ratio |",
        "|---|---:|---:|---:|",
        f"| parameter bytes | {fp.float_params:,} | {fp.quant_params:,} "
        f"| {fp.quant_params / fp.float_params:.1%} |",
        f"| peak activation RAM (bytes) | {fp.float_act_peak:,} | {fp.quant_act_peak:,} "
        f"| {fp.quant_act_peak / fp.float_act_peak:.1%} |",
    ]
    return lines


def markdown(rep: Report) -> str:
    """The whole section."""
    lines = [
        SECTION,
        "",
        f"Produced by `python scripts/quant_report.py` ({datetime.date.today().isoformat()}). "
        "Calibration on `sample_images/calib` (256 images), normalisation "
        f'`-N "{NORM}"`, nnshell through its Session API (open, adjust, fusions --scale8, '
        "aquant, validate, footprint; the other modes re-quantize from the same statistics). "
        "The onnxruntime peer is `quantize_static(quant_format=QDQ, per_channel=True, "
        "calibrate_method=MinMax, weight_type=QInt8)` on the same 256 PNGs, with activations "
        "QInt8 (the row to compare, SQ8 being int8 throughout) and, for reference, QUInt8 "
        "(onnxruntime's default), run by onnxruntime's CPU provider. Both sides read the same "
        "PNGs with the same normalisation (largest difference between the two loaders: "
        f"{rep.input_diff:.1e}).",
        "",
        *tables(rep),
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--no-write", action="store_true", help=f"do not update {DOC.name}")
    args = ap.parse_args()
    rep = run()
    print("\n".join(tables(rep)))
    if not args.no_write:
        write_section(markdown(rep), SECTION, DOC, "Quantization")
        print(f"\nwrote {DOC.relative_to(ROOT)}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
