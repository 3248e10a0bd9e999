"""The issue-9 benchmark: nnshell beside onnxruntime, measured in one run on the same inputs.

Figures (medians of ``--repeat`` alternating runs; ratios nnshell / onnxruntime of the same run):

- float inference: the sample model (batch 1 and 256), light_squeezenet and light_resnet50 of the
  ``onnx`` wheel with seeded random weights (batch 1 and 8) — nnshell's default (fast) path and
  its numpy reference;
- integer inference: nnshell's integer executor against onnxruntime running the QDQ int8 model
  that ``quantize_static`` makes from the same model and calibration images (sample, batch 256);
- calibration: ``aquant`` against ``quantize_static`` (MinMax, per-channel) on the same 500
  sample images, and on 32 random images for light_resnet50;
- cold start (``nnshell -c quit`` above ``python -c pass``) and the whole quickstart flow without
  the ``gen --verify`` compilation;
- peak memory (max RSS of a fresh process) of ``aquant`` at 100 and 1,000 images.
Writes the table to ``docs/performance.md`` (section "Benchmark (issue 9)"). No test asserts on
timings: this script is the measurement.

    python scripts/bench.py [--repeat 5] [--quick] [--no-write]
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_float  # noqa: E402
from bench_float import LIGHT, SAMPLE, _median_ms_pair, machine_info, randomized  # noqa: E402
from quant_report import (  # noqa: E402
    CALIB,
    TEST,
    image_files,
    load_pngs,
    ort_quantize,
    ort_session,
    write_section,
)

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "performance.md"
SECTION = "## Benchmark (issue 9)"
NORM = "x: (x/255 - 0.5)/0.5"
Row = tuple[str, str, str, str, str]


def _fmt(ms: float) -> str:
    return f"{ms:.1f} ms" if ms >= 1 else f"{ms * 1000:.0f} µs"


def float_rows(repeat: int, tmp: Path, quick: bool) -> list[Row]:
    rows: list[Row] = []
    cases = bench_float.bench_model("cifar_net", onnx.load(str(SAMPLE)), [1, 256], repeat, tmp)
    for name in ("light_squeezenet", "light_resnet50"):
        model = randomized(onnx.load(str(LIGHT / f"{name}.onnx")), seed=0)
        cases += bench_float.bench_model(name, model, [1] if quick else [1, 8], repeat, tmp)
    for c in cases:
        target = {"cifar_net": "≤ 2", "light_resnet50": "≤ 3"}.get(c.model, "")
        rows.append(
            (
                f"float {c.label}",
                f"{_fmt(c.ms_default)} (numpy {_fmt(c.ms_nn)})",
                _fmt(c.ms_ort),
                f"{c.ratio:.2f} (numpy {c.ratio_numpy:.2f})",
                target,
            )
        )
    return rows


def _session(files: list[str] | None = None):  # noqa: ANN202 - nnshell Session
    from nnshell.session import Session

    s = Session()
    s.open(str(SAMPLE))
    s.set("input_norm_func", NORM)
    s.adjust()
    s.fusions("scale8")
    if files:
        s.aquant(files)
    return s


def calibration_rows(repeat: int, tmp: Path) -> tuple[list[Row], Path]:
    files = (image_files(CALIB) + image_files(TEST))[:500]
    s = _session()
    qdq = tmp / "qdq.onnx"
    ms_nn, ms_ort = _median_ms_pair(
        lambda: s.aquant(files), lambda: ort_quantize(qdq, files, "QInt8"), repeat
    )
    rows = [
        (
            "aquant (session's decoded-image cache warm) vs quantize_static, sample, 500 images",
            f"{_fmt(ms_nn)} ({ms_nn / 500:.2f} ms/img)",
            f"{_fmt(ms_ort)} ({ms_ort / 500:.2f} ms/img)",
            f"{ms_nn / ms_ort:.2f}",
            "≤ 1",
        )
    ]
    # a fresh session each time: no decoded-image cache, fast-path runner built from scratch
    colds = []
    for _ in range(max(1, repeat)):
        fresh = _session()
        t0 = time.perf_counter()
        fresh.aquant(files)
        colds.append((time.perf_counter() - t0) * 1000)
    cold = float(np.median(colds))
    rows.append(
        (
            "aquant (fresh session, images decoded) vs quantize_static, sample, 500 images",
            f"{_fmt(cold)} ({cold / 500:.2f} ms/img)",
            f"{_fmt(ms_ort)} ({ms_ort / 500:.2f} ms/img)",
            f"{cold / ms_ort:.2f}",
            "≤ 1",
        )
    )
    rows.append(_resnet_calibration(repeat, tmp))
    return rows, qdq


def _resnet_calibration(repeat: int, tmp: Path) -> Row:
    from ort_peer import quantize_qdq

    from nnshell.session import Session

    model = randomized(onnx.load(str(LIGHT / "light_resnet50.onnx")), seed=0)
    src = tmp / "resnet50.onnx"
    model = bench_float.batch_free(model)
    listed = {i.name for i in model.graph.input}
    for init in model.graph.initializer:  # this old IR version wants initializers as inputs too
        if init.name not in listed:
            model.graph.input.append(
                onnx.helper.make_tensor_value_info(init.name, init.data_type, list(init.dims))
            )
    onnx.save(model, str(src))
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((32, 3, 224, 224)).astype(np.float32)
    files = []
    for k, x in enumerate(xs):
        files.append(str(tmp / f"r{k:02d}.npy"))
        np.save(files[-1], x)
    s = Session()
    s.open(str(src))
    s.adjust()
    s.fusions("scale8")
    name = model.graph.input[0].name

    def ort_cal() -> None:
        batches = ({name: xs[k : k + 8]} for k in range(0, len(xs), 8))
        quantize_qdq(src, tmp / "r_qdq.onnx", batches)

    ms_nn, ms_ort = _median_ms_pair(lambda: s.aquant(files), ort_cal, max(1, repeat // 2))
    return (
        "aquant vs quantize_static, light_resnet50, 32 images",
        _fmt(ms_nn),
        _fmt(ms_ort),
        f"{ms_nn / ms_ort:.2f}",
        "≤ 1",
    )


def _median_ms_blocks(
    fa: Callable[[], object], fb: Callable[[], object], repeat: int, per_block: int = 3
) -> tuple[float, float]:
    """Median ms of each side timed in blocks (A A A, B B B, A A A, ...), ``repeat`` blocks
    each, the first call of every block untimed.

    For the integer row: onnxruntime's intra-op threads keep spinning for a while after a run,
    and on a 2-core machine that steals the cores numpy's BLAS threads need (nnshell's integer
    executor measured 18.6 ms alone and 32.8 ms when alternated call by call with the QDQ
    session). Blocks time each side in its own steady state; alternating the blocks still
    spreads bursts of outside load over both.
    """
    ta: list[float] = []
    tb: list[float] = []
    for _ in range(repeat):
        for f, out in ((fa, ta), (fb, tb)):
            f()
            for _ in range(per_block):
                t0 = time.perf_counter()
                f()
                out.append(time.perf_counter() - t0)
    return statistics.median(ta) * 1e3, statistics.median(tb) * 1e3


def integer_rows(repeat: int, qdq: Path) -> list[Row]:
    from nnshell.exec.int_exec import run_int

    s = _session([str(CALIB)])
    xs = load_pngs(image_files(TEST)[:256])
    g, qs = s.graph, s.qstate
    sess = ort_session(qdq)
    ms_nn, ms_ort = _median_ms_blocks(
        lambda: run_int(g, qs, {g.inputs[0]: xs}), lambda: sess.run(None, {"input": xs}), repeat
    )
    return [
        (
            "integer inference, sample, batch 256 (vs QDQ int8)",
            _fmt(ms_nn),
            _fmt(ms_ort),
            f"{ms_nn / ms_ort:.2f}",
            "≤ 2",
        )
    ]


def _wall(cmd: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT)
        times.append(time.perf_counter() - t0)
    return float(np.median(times)) * 1000


def process_rows(repeat: int, tmp: Path) -> list[Row]:
    bare = _wall([sys.executable, "-c", "pass"], repeat)
    cold = _wall([sys.executable, "-m", "nnshell", "-c", "quit"], repeat)
    script = tmp / "quickstart_no_gen.nnscript"
    lines = (ROOT / "scripts" / "quickstart.nnscript").read_text().splitlines()
    # without gen nothing creates build/quickstart, and save_state does not create folders
    lines = [ln.replace("save_state build/quickstart/", f"save_state {tmp}/") for ln in lines]
    script.write_text("\n".join(ln for ln in lines if not ln.startswith("gen ")) + "\n")
    flow = _wall([sys.executable, "-m", "nnshell", "-s", str(script)], max(1, repeat // 2))
    return [
        ("cold start above `python -c pass`", _fmt(cold - bare), "", "", "≤ 500 ms"),
        ("quickstart flow without gen --verify", _fmt(flow), "", "", "≤ 3 s"),
    ]


# VmHWM of the child's own address space: ru_maxrss would include the parent's high-water mark
# at fork time (Linux keeps it across execve), and this script's parent is large by then.
_PEAK = """
import json, sys
from nnshell.input.images import expand_files
from nnshell.session import Session
n = int(sys.argv[1]); files = (expand_files([sys.argv[2]]) * 8)[:n]
s = Session(); s.open(sys.argv[3]); s.set("input_norm_func", sys.argv[4]); s.fusions("scale8")
s.aquant(files)
hwm = [ln for ln in open("/proc/self/status") if ln.startswith("VmHWM:")][0]
print(json.dumps(int(hwm.split()[1])))
"""


def memory_rows() -> list[Row]:
    peaks = {}
    for n in (100, 1000, 2000):
        out = subprocess.run(
            [sys.executable, "-c", _PEAK, str(n), str(CALIB), str(SAMPLE), NORM],
            check=True,
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        peaks[n] = json.loads(out.stdout.strip().splitlines()[-1]) / 1024  # KiB -> MiB
    return [
        (
            "aquant peak RSS (VmHWM), 100 → 1,000 → 2,000 images",
            f"{peaks[100]:.0f} → {peaks[1000]:.0f} → {peaks[2000]:.0f} MiB",
            "",
            f"{peaks[1000] / peaks[100]:.2f} (2,000/1,000: {peaks[2000] / peaks[1000]:.2f})",
            "≤ 1.1",
        )
    ]


SECTION21 = "## Benchmark (issue 21: start-up, NNTool flow, ResNet-50 at real size)"
NOTE21 = (
    "ResNet-50 is open-nsfw from `scripts/real_models.py`'s cache (`--real-cache`), each figure "
    "from a fresh process (peak RSS = VmHWM); photos are the cache's 224×224 photos with seeded "
    "noise. onnxruntime float and int8 QDQ (`quantize_static`, MinMax, per-channel) run batch 1 "
    "in the same run. The NNTool row runs NNTool's CLI (`--nntool`) on the same script and "
    "images. Start-up is measured with byte-compiled modules, as an installed package has."
)


def issue21(nntool: str | None, cache: Path | None, repeat: int) -> list[Row]:
    """The issue-21 rows (scripts/bench_real.py)."""
    import bench_real
    from real_models import DEFAULT_CACHE

    return bench_real.real_rows(nntool, cache or DEFAULT_CACHE, repeat)


def markdown(rows: list[Row], repeat: int, section: str = SECTION, note: str = "") -> str:
    lines = [
        section,
        "",
        f"Produced by `python scripts/bench.py` ({datetime.date.today().isoformat()}, medians of "
        f"{repeat} alternating runs, nnshell and onnxruntime in the same process). The fast path "
        "is nnshell's default float backend (the IR exported to ONNX and run by onnxruntime, "
        "validated against the numpy reference executor when built). " + note,
        "",
        "| measurement | nnshell | onnxruntime | ratio | target |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [f"| {a} | {b} | {c} | {d} | {e} |" for a, b, c, d, e in rows]
    lines += ["", "Machine:", ""] + [f"- {k}: {v}" for k, v in machine_info()]
    return "\n".join(lines) + "\n"


def main() -> None:
    """Run every measurement, print the table and write it to docs/performance.md."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="repeat 1, fewer cases")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--nntool", help="NNTool's launcher (e.g. ../shared/tools/nntool.sh)")
    ap.add_argument(
        "--real-cache", type=Path, default=None, help="scripts/real_models.py's cache (ResNet-50)"
    )
    ap.add_argument("--issue21", action="store_true", help="only the issue-21 rows")
    args = ap.parse_args()
    repeat = 1 if args.quick else args.repeat
    import onnxruntime as ort

    ort.set_default_logger_severity(3)
    rows21 = issue21(args.nntool, args.real_cache, repeat)
    text21 = markdown(rows21, repeat, SECTION21, NOTE21)
    print(text21)
    if not args.no_write:
        write_section(text21, SECTION21, DOC, "Performance")
    if args.issue21:
        return
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        rows += float_rows(repeat, tmp, args.quick)
        cal, qdq = calibration_rows(repeat, tmp)
        rows += integer_rows(repeat, qdq)
        rows += cal
        rows += process_rows(max(3, repeat), tmp)
    rows += memory_rows()
    text = markdown(rows, repeat)
    print(text)
    if not args.no_write:
        write_section(text, SECTION, DOC, "Performance")
        print(f"wrote {DOC.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
