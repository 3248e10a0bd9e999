"""Benchmark nnshell's calibration and integer executor beside onnxruntime (issue 5).

(a) Calibration of the sample model on the 256 images of ``sample_images/calib``:
    ``Session.aquant`` (read the PNGs, run the float graph collecting every tensor's statistics,
    quantize) against ``onnxruntime.quantization.quantize_static`` (QDQ, per-channel, MinMax, int8
    activations and weights; its data reader decodes the same PNGs with the same normalisation,
    64 per feed like nnshell's default batch). Both are timed as whole calls, image loading
    included. Targets: nnshell at least 10x faster than NNTool's ~30 ms per image (so at most
    3 ms per image) and faster than ``quantize_static``.
(b) Integer inference on the 540 test images (one batch of 540, and the first 256): nnshell's
    integer executor (``run_int`` from float inputs, input quantization included) against
    onnxruntime running the QDQ model of (a) on the same float inputs. Target: ratio <= 2.

Each pair is warmed up once, then timed ``--repeat`` times alternately; medians are reported
with the ratios of the same run. The table is printed and written to ``docs/performance.md``
(section "Quantization speed (issue 5)"; other sections are kept). A measurement script: nothing
asserts on the timings.

    python scripts/bench_quant.py [--repeat 5] [--quick] [--no-write] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import io
import pstats
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_float  # noqa: E402
from bench_float import _limited, _median_ms_pair, machine_info  # noqa: E402
from quant_report import (  # noqa: E402
    CALIB,
    TEST,
    image_files,
    label_of,
    load_pngs,
    make_session,
    ort_quantize,
    ort_session,
    write_section,
)

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "performance.md"
SECTION = "## Quantization speed (issue 5)"
NNTOOL_MS_PER_IMAGE = 30.0
CALIB_TARGET_MS = NNTOOL_MS_PER_IMAGE / 10  # 10x faster than NNTool
INFER_TARGET = 2.0
#: Threads for both sides (nnshell's BLAS through threadpoolctl, onnxruntime's intra-op pool);
#: 0 leaves both libraries' defaults.
THREADS = 0


@dataclass
class Pair:
    label: str
    images: int
    ms_nn: float
    ms_ort: float
    note: str = ""

    @property
    def ratio(self) -> float:
        return self.ms_nn / self.ms_ort


def bench_calibration(repeat: int, tmp: Path) -> tuple[Pair, object]:
    """Time ``Session.aquant`` and ``quantize_static`` on the calibration folder."""
    session = make_session()
    calib = image_files(CALIB)
    qdq = tmp / "cifar_net_qdq.onnx"
    ms_nn, ms_ort = _median_ms_pair(
        lambda: _limited(lambda: session.aquant([str(CALIB)])),
        lambda: ort_quantize(qdq, calib, "QInt8"),
        repeat,
    )
    return Pair("calibration + quantization", len(calib), ms_nn, ms_ort), session


def bench_decode(session, repeat: int) -> tuple[float, float]:  # noqa: ANN001
    """Decoding alone: nnshell's ``iter_batches`` with its default thread pool, and serially."""
    from nnshell.input.images import expand_files, iter_batches

    files = expand_files([str(CALIB)])
    opts, dims = session.input_options(), session.graph.tensors[session.graph.inputs[0]].dims
    return _median_ms_pair(
        lambda: list(iter_batches(files, opts, dims, 64)),
        lambda: list(iter_batches(files, opts, dims, 64, workers=1)),
        repeat,
    )


def bench_inference(session, repeat: int, qdq: Path) -> list[Pair]:  # noqa: ANN001
    """Time the integer executor and onnxruntime's QDQ model on the test images."""
    from nnshell.exec.int_exec import run_int

    files = image_files(TEST)
    labels = np.array([label_of(f) for f in files])
    xs = load_pngs(files)
    g, qs = session.graph, session.qstate
    inp, out = g.inputs[0], g.outputs[0]
    sess = ort_session(qdq, THREADS)
    pairs = []
    for n in (len(xs), 256):
        x = xs[:n]
        ms_nn, ms_ort = _median_ms_pair(
            lambda x=x: _limited(lambda: run_int(g, qs, {inp: x})),
            lambda x=x: sess.run(None, {"input": x}),
            repeat,
        )
        p_nn = run_int(g, qs, {inp: x})[out].reshape(n, -1).argmax(1)
        p_ort = sess.run(None, {"input": x})[0].argmax(1)
        note = (
            f"top-1 {100 * (p_nn == labels[:n]).mean():.2f}% vs "
            f"{100 * (p_ort == labels[:n]).mean():.2f}%, "
            f"same prediction on {100 * (p_nn == p_ort).mean():.1f}%"
        )
        pairs.append(Pair(f"integer inference, batch {n}", n, ms_nn, ms_ort, note))
    return pairs


def profile(session) -> str:  # noqa: ANN001
    """cProfile of one ``aquant`` and one ``run_int`` (the top entries by own time)."""
    from nnshell.exec.int_exec import run_int

    xs = load_pngs(image_files(TEST))
    g = session.graph
    text = io.StringIO()
    for what, fn in (
        ("Session.aquant(calib)", lambda: session.aquant([str(CALIB)])),
        ("run_int(540 images)", lambda: run_int(g, session.qstate, {g.inputs[0]: xs})),
    ):
        prof = cProfile.Profile()
        prof.runcall(fn)
        text.write(f"--- {what}\n")
        pstats.Stats(prof, stream=text).sort_stats("tottime").print_stats(12)
    return text.getvalue()


def verdicts(calib: Pair, infer: list[Pair]) -> list[str]:
    per = calib.ms_nn / calib.images
    per_ort = calib.ms_ort / calib.images
    out = [
        f"calibration: {per:.2f} ms/image (target ≤ {CALIB_TARGET_MS:g}, "
        f"{NNTOOL_MS_PER_IMAGE / per:.0f}x faster than NNTool's ~{NNTOOL_MS_PER_IMAGE:g} ms) "
        f"{'met' if per <= CALIB_TARGET_MS else 'MISSED'}",
        f"calibration vs quantize_static: {per:.2f} vs {per_ort:.2f} ms/image, ratio "
        f"{calib.ratio:.2f} {'met' if calib.ratio < 1 else 'MISSED'}",
    ]
    for p in infer:
        out.append(
            f"{p.label}: ratio {p.ratio:.2f} (target ≤ {INFER_TARGET:g}) "
            f"{'met' if p.ratio <= INFER_TARGET else 'MISSED'}"
        )
    return out


def markdown(
    calib: Pair,
    infer: list[Pair],
    decode: tuple[float, float],
    info: list[tuple[str, str]],
    repeat: int,
) -> str:
    """The "Quantization speed (issue 5)" section."""
    per, per_ort = calib.ms_nn / calib.images, calib.ms_ort / calib.images
    ok_c = per <= CALIB_TARGET_MS and calib.ratio < 1
    lines = [
        SECTION,
        "",
        "Produced by `python scripts/bench_quant.py` "
        f"({datetime.date.today().isoformat()}, median of {repeat} runs after one warm-up, "
        "nnshell and onnxruntime timed alternately in the same process; onnxruntime "
        "CPUExecutionProvider). Sample model, normalisation "
        '`-N "x: (x/255 - 0.5)/0.5"` on both sides (the onnxruntime reader decodes the same '
        "PNGs itself, 64 per feed). "
        + (
            f"Both sides limited to {THREADS} thread(s) (nnshell's BLAS via threadpoolctl, "
            "onnxruntime's intra_op_num_threads; `--threads`)."
            if THREADS
            else "Thread counts: each library's default."
        ),
        "",
        "Calibration: the whole call, image decoding included — `Session.aquant` on the 256 "
        "calibration images (float run with streaming statistics of every tensor, then SQ8 "
        "quantization) against `quantize_static(QDQ, per_channel=True, MinMax, QInt8/QInt8)` "
        "(which also writes the quantized model). Target: ≤ 3 ms/image (10x NNTool's ~30 ms) "
        "and faster than `quantize_static`.",
        "",
        "| | images | nnshell (ms) | quantize_static (ms) | nnshell ms/image "
        "| quantize_static ms/image | ratio | vs NNTool ~30 ms/image | target |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {calib.label} | {calib.images} | {calib.ms_nn:.1f} | {calib.ms_ort:.1f} "
        f"| {per:.2f} | {per_ort:.2f} | {calib.ratio:.2f} "
        f"| {NNTOOL_MS_PER_IMAGE / per:.0f}x faster | {'✓' if ok_c else '✗'} |",
        "",
        f"Of nnshell's time, decoding the 256 PNGs alone takes {decode[0]:.1f} ms with "
        f"`iter_batches`' default thread pool and {decode[1]:.1f} ms decoding serially "
        "(`workers=1`): for 32x32 PNGs the threads cost more than they save.",
        "",
        "Integer inference: nnshell's integer executor (`run_int` on float inputs, input "
        "quantization included; bit-exact SQ8 arithmetic) against onnxruntime running the QDQ "
        "model above on the same inputs. Target: ratio ≤ 2.",
        "",
        "| case | nnshell (ms) | onnxruntime QDQ (ms) | ratio | target | predictions |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for p in infer:
        mark = f"≤ {INFER_TARGET:g} {'✓' if p.ratio <= INFER_TARGET else '✗'}"
        lines.append(
            f"| {p.label} | {p.ms_nn:.2f} | {p.ms_ort:.2f} | {p.ratio:.2f} | {mark} | {p.note} |"
        )
    lines += [
        "",
        "Machine (load average read after the runs; the machine may be shared, so figures vary "
        "from run to run):",
        "",
    ]
    lines += [f"- {k}: {v}" for k, v in info]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=5, help="timed runs per case (median kept)")
    ap.add_argument("--quick", action="store_true", help="repeat 1")
    ap.add_argument("--profile", action="store_true", help="print a cProfile of aquant/run_int")
    ap.add_argument(
        "--threads",
        type=int,
        default=0,
        help="limit nnshell's BLAS and onnxruntime's intra-op pool to N threads (0 = defaults)",
    )
    ap.add_argument("--no-write", action="store_true", help=f"do not update {DOC.name}")
    args = ap.parse_args()
    repeat = 1 if args.quick else args.repeat
    global THREADS
    THREADS = bench_float.BLAS_THREADS = args.threads

    import onnxruntime as ort

    ort.set_default_logger_severity(3)
    for k, v in machine_info():
        print(f"{k:26s} {v}")
    print()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        calib, session = bench_calibration(repeat, tmp)
        print(
            f"  aquant {calib.ms_nn:8.1f} ms ({calib.ms_nn / calib.images:.2f} ms/img)   "
            f"quantize_static {calib.ms_ort:8.1f} ms ({calib.ms_ort / calib.images:.2f} ms/img)"
            f"   ratio {calib.ratio:.2f}",
            flush=True,
        )
        decode = bench_decode(session, repeat)
        print(f"  PNG decode alone: thread pool {decode[0]:.1f} ms, serial {decode[1]:.1f} ms")
        infer = bench_inference(session, repeat, tmp / "cifar_net_qdq.onnx")
        for p in infer:
            print(
                f"  {p.label:28s} nnshell {p.ms_nn:8.2f} ms   onnxruntime {p.ms_ort:8.2f} ms   "
                f"ratio {p.ratio:5.2f}   {p.note}",
                flush=True,
            )
        if args.profile:
            print()
            print(profile(session))
    print()
    print("\n".join(verdicts(calib, infer)))
    if not args.no_write:
        text = markdown(calib, infer, decode, machine_info(), repeat)
        write_section(text, SECTION, DOC, "Performance")
        print(f"\nwrote {DOC.relative_to(ROOT)}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
