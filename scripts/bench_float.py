"""Benchmark nnshell's float executor beside onnxruntime, in the same process (issue 3).

Cases: the sample model (cifar_net, batch 256), and the onnx wheel's light_squeezenet and
light_resnet50 (batch 1 and 8) with their constant-filled weights replaced by seeded random ones.
Each case is warmed up once, then timed ``--repeat`` times; the medians (ms) and the ratio
nnshell / onnxruntime are printed, together with how far the outputs are apart (max |diff|
divided by the range of onnxruntime's output). The same table is written to
``docs/performance.md`` (section "Float inference (issue 3)"; other sections are kept).

Targets: at most 2x onnxruntime's time on the sample model and 3x on resnet50. This is a
measurement script, not a test: nothing asserts on the timings.

    python scripts/bench_float.py [--repeat 5] [--quick] [--no-write]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parent))

import doc_sections  # noqa: E402 - sibling script module

from nnshell.exec.float_exec import run_float
from nnshell.exec.ort_backend import make_runner
from nnshell.importers.onnx_importer import load_onnx

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_models" / "cifar_net.onnx"
LIGHT = Path(os.path.dirname(onnx.__file__)) / "backend" / "test" / "data" / "light"
DOC = ROOT / "docs" / "performance.md"
SECTION = "## Float inference (issue 3)"
TARGETS = {"cifar_net": 2.0, "light_resnet50": 3.0}


# --------------------------------------------------------------------------- model preparation


def _weight_roles(model: onnx.ModelProto) -> dict[str, tuple[str, int, bool]]:
    """Map each tensor to (first consumer op, input index, Gemm transB) for weight drawing."""
    roles: dict[str, tuple[str, int, bool]] = {}
    for n in model.graph.node:
        trans_b = n.op_type == "Gemm" and any(a.name == "transB" and a.i for a in n.attribute)
        for i, name in enumerate(n.input):
            roles.setdefault(name, (n.op_type, i, trans_b))
    return roles


def _draw(shape: tuple[int, ...], role: tuple[str, int, bool], rng: np.random.Generator):
    """Return a random weight of ``shape`` scaled so activations stay in a sane range."""
    op, idx, trans_b = role
    normal = rng.standard_normal(shape, dtype=np.float32)
    if op == "Conv" and idx == 1:
        return normal * np.float32(np.sqrt(2.0 / int(np.prod(shape[1:]))))
    if op in ("Gemm", "MatMul") and idx == 1 and len(shape) == 2:
        return normal * np.float32(np.sqrt(2.0 / (shape[1] if trans_b else shape[0])))
    if op == "BatchNormalization" and idx in (1, 4):  # scale, variance: positive
        return rng.random(shape, dtype=np.float32) + np.float32(0.5)
    return normal * np.float32(0.1)


def randomized(model: onnx.ModelProto, seed: int = 0) -> onnx.ModelProto:
    """Return a copy whose float initializers and ConstantOfShape fills are seeded random."""
    rng = np.random.default_rng(seed)
    m = onnx.ModelProto()
    m.CopyFrom(model)
    roles = _weight_roles(m)
    inits = {t.name: t for t in m.graph.initializer}
    for t in m.graph.initializer:
        arr = numpy_helper.to_array(t)
        if arr.dtype == np.float32:
            val = _draw(arr.shape, roles.get(t.name, ("", -1, False)), rng)
            t.CopyFrom(numpy_helper.from_array(val, t.name))
    kept, added = [], []
    for n in m.graph.node:
        if n.op_type == "ConstantOfShape" and n.input[0] in inits:
            shape = tuple(int(v) for v in numpy_helper.to_array(inits[n.input[0]]))
            val = _draw(shape, roles.get(n.output[0], ("", -1, False)), rng)
            added.append(numpy_helper.from_array(val, n.output[0]))
        else:
            kept.append(n)
    del m.graph.node[:]
    m.graph.node.extend(kept)
    m.graph.initializer.extend(added)
    return m


def batch_free(model: onnx.ModelProto) -> onnx.ModelProto:
    """Return a copy onnxruntime accepts at any batch: dim 0 of inputs/outputs symbolic and
    constant Reshape targets with a leading 1 turned into -1."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    inits = {t.name for t in m.graph.initializer}
    for vi in [*m.graph.input, *m.graph.output]:
        if vi.name in inits:
            continue
        dims = vi.type.tensor_type.shape.dim
        if len(dims):
            dims[0].Clear()
            dims[0].dim_param = "N"
    del m.graph.value_info[:]
    targets = {n.input[1] for n in m.graph.node if n.op_type == "Reshape"}
    for t in m.graph.initializer:
        if t.name in targets:
            arr = numpy_helper.to_array(t).copy()
            if arr.size and arr[0] == 1:
                arr[0] = -1
                t.CopyFrom(numpy_helper.from_array(arr, t.name))
    return m


# --------------------------------------------------------------------------- measurement


@dataclass
class Case:
    label: str
    model: str
    batch: int
    ms_nn: float
    ms_ort: float
    rel_err: float
    ms_fast: float = float("nan")

    @property
    def ratio(self) -> float:
        """The ratio of the path nnshell uses by default (the fast path when it validated)."""
        return self.ms_default / self.ms_ort

    @property
    def ms_default(self) -> float:
        return self.ms_fast if self.ms_fast == self.ms_fast else self.ms_nn

    @property
    def ratio_numpy(self) -> float:
        return self.ms_nn / self.ms_ort


def _median_ms_pair(
    fa: Callable[[], object], fb: Callable[[], object], repeat: int
) -> tuple[float, float]:
    """Warm both up once, then time them alternately ``repeat`` times; return median ms each.

    Alternating makes a burst of load from other processes hit both sides alike.
    """
    fa()
    fb()
    ta, tb = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fa()
        t1 = time.perf_counter()
        fb()
        t2 = time.perf_counter()
        ta.append(t1 - t0)
        tb.append(t2 - t1)
    return statistics.median(ta) * 1e3, statistics.median(tb) * 1e3


#: BLAS thread limit applied around nnshell's runs (0: leave numpy's default alone).
BLAS_THREADS = 0


def _limited(fn: Callable[[], object]) -> object:
    if not BLAS_THREADS:
        return fn()
    from threadpoolctl import threadpool_limits

    with threadpool_limits(BLAS_THREADS, user_api="blas"):
        return fn()


def _rel_err(got: np.ndarray, want: np.ndarray) -> float:
    rng = max(float(want.max() - want.min()), float(np.abs(want).max()), 1e-12)
    return float(np.max(np.abs(got.astype(np.float64) - want))) / rng


def bench_model(
    name: str, model: onnx.ModelProto, batches: list[int], repeat: int, tmp: Path
) -> list[Case]:
    """Time one model at each batch size with nnshell and onnxruntime."""
    path = tmp / f"{name}.onnx"
    onnx.save(model, str(path))
    graph = load_onnx(str(path))
    (inp,) = graph.inputs
    out = graph.outputs[0]
    # a softmax output saturates with random weights, so the logits are compared as well
    last = model.graph.node[-1]
    logits = last.input[0] if last.op_type == "Softmax" and last.input[0] in graph.tensors else None
    ort_model = batch_free(model)
    if logits is not None:
        ort_model.graph.output.append(onnx.helper.make_empty_tensor_value_info(logits))
    sess = ort.InferenceSession(ort_model.SerializeToString(), providers=["CPUExecutionProvider"])
    ort_in = sess.get_inputs()[0].name
    ort_out = sess.get_outputs()[0].name
    cases = []
    for b in batches:
        x = np.random.default_rng(1).standard_normal((b, *graph.tensor(inp).shape[1:]))
        x = x.astype(np.float32)
        ms_nn, ms_ort = _median_ms_pair(
            lambda x=x: _limited(lambda: run_float(graph, {inp: x})),
            lambda x=x: sess.run([ort_out], {ort_in: x}),
            repeat,
        )
        fast = make_runner(graph, x[:2])
        ms_fast = float("nan")
        if fast is not None:
            ms_fast, _ = _median_ms_pair(
                lambda x=x, f=fast: f.run({inp: x}),
                lambda x=x: sess.run([ort_out], {ort_in: x}),
                repeat,
            )
        got = run_float(graph, {inp: x}, keep=[logits] if logits else None)
        names = [o.name for o in sess.get_outputs()]
        want = dict(zip(names, sess.run(None, {ort_in: x}), strict=True))
        err = _rel_err(got[out].reshape(want[ort_out].shape), want[ort_out])
        if logits is not None:
            err = max(err, _rel_err(got[logits].reshape(want[logits].shape), want[logits]))
        cases.append(Case(f"{name} b{b}", name, b, ms_nn, ms_ort, err, ms_fast))
        print(
            f"  {name:16s} b{b:<4d} numpy {ms_nn:9.2f} ms  fast {ms_fast:9.2f} ms  "
            f"onnxruntime {ms_ort:9.2f} ms   ratio numpy {ms_nn / ms_ort:5.2f} "
            f"fast {ms_fast / ms_ort:5.2f}   max|diff|/range {err:.1e}",
            flush=True,
        )
    return cases


# --------------------------------------------------------------------------- machine and report


def machine_info() -> list[tuple[str, str]]:
    """Return (key, value) lines describing the machine and libraries."""
    cpu = platform.processor() or platform.machine()
    try:
        text = Path("/proc/cpuinfo").read_text()
        found = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
        if found:
            cpu = found.group(1).strip()
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    info = [
        ("CPU", cpu),
        ("cores", f"{os.cpu_count()} logical, {usable} usable by this process"),
        ("python", platform.python_version()),
        ("numpy", np.__version__),
        ("onnxruntime", ort.__version__),
    ]
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        info.append(("BLAS", "threadpoolctl not installed"))
    else:
        for p in threadpool_info():
            if p.get("user_api") == "blas":
                info.append(
                    (
                        "BLAS",
                        f"{p.get('internal_api')} {p.get('version')} "
                        f"({p.get('architecture')}, {p.get('num_threads')} threads)",
                    )
                )
    if hasattr(os, "getloadavg"):
        info.append(("load average (1/5/15 min)", " / ".join(f"{v:.2f}" for v in os.getloadavg())))
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        info.append((var, os.environ.get(var, "not set")))
    return info


def markdown(cases: list[Case], info: list[tuple[str, str]], repeat: int) -> str:
    """Return the "Float inference (issue 3)" section as Markdown."""
    lines = [
        SECTION,
        "",
        "Produced by `python scripts/bench_float.py` "
        f"({datetime.date.today().isoformat()}, median of {repeat} runs after one warm-up, "
        "nnshell and onnxruntime timed alternately; "
        "onnxruntime CPUExecutionProvider with default session options, in the same process). "
        "The light models' constant weights are replaced by seeded random ones. "
        "Targets: ratio ≤ 2 on the sample model, ≤ 3 on light_resnet50. Two nnshell paths are "
        "timed: the numpy reference executor, and the fast path nnshell uses by default for "
        "calibration and validation (the IR exported to ONNX and run by onnxruntime, validated "
        "against numpy on a probe batch when built; `set float_backend numpy` turns it off). "
        "The target column judges the default (fast) path.",
        "",
        "| case | numpy (ms) | fast path (ms) | onnxruntime (ms) | ratio numpy | ratio fast "
        "| target | max abs diff / range¹ |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in cases:
        tgt = TARGETS.get(c.model)
        mark = "" if tgt is None else (f"≤ {tgt:g} ✓" if c.ratio <= tgt else f"≤ {tgt:g} ✗")
        lines.append(
            f"| {c.label} | {c.ms_nn:.2f} | {c.ms_fast:.2f} | {c.ms_ort:.2f} | "
            f"{c.ratio_numpy:.2f} | {c.ms_fast / c.ms_ort:.2f} | {mark} | {c.rel_err:.1e} |"
        )
    lines += [
        "",
        "¹ Largest |nnshell − onnxruntime| over the output (and over the logits feeding a final "
        "Softmax), divided by the range of onnxruntime's values.",
        "",
        "Machine (load average read after the runs; the machine may be shared, so figures vary "
        "from run to run):",
        "",
    ]
    lines += [f"- {k}: {v}" for k, v in info]
    return "\n".join(lines) + "\n"


def write_section(text: str, doc: Path = DOC) -> None:
    """Replace (or append) this script's section of ``doc``."""
    doc_sections.write_section(text, SECTION, doc, "Performance")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=5, help="timed runs per case (median kept)")
    ap.add_argument("--quick", action="store_true", help="repeat 1 and skip batch 8")
    ap.add_argument(
        "--blas-threads",
        type=int,
        default=0,
        help="limit numpy's BLAS to N threads while nnshell runs (threadpoolctl; 0 = default)",
    )
    ap.add_argument("--no-write", action="store_true", help=f"do not update {DOC.name}")
    args = ap.parse_args()
    repeat = 1 if args.quick else args.repeat
    global BLAS_THREADS
    BLAS_THREADS = args.blas_threads
    big = [1] if args.quick else [1, 8]

    ort.set_default_logger_severity(3)  # unused-initializer warnings of the light models
    info = machine_info()
    for k, v in info:
        print(f"{k:26s} {v}")
    print()
    cases: list[Case] = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        cases += bench_model("cifar_net", onnx.load(str(SAMPLE)), [256], repeat, tmp)
        for name in ("light_squeezenet", "light_resnet50"):
            model = randomized(onnx.load(str(LIGHT / f"{name}.onnx")), seed=0)
            cases += bench_model(name, model, big, repeat, tmp)
    print()
    verdicts = []
    for c in cases:
        tgt = TARGETS.get(c.model)
        if tgt is not None:
            verdicts.append(
                f"{c.label}: {c.ratio:.2f} (target ≤ {tgt:g}) "
                f"{'met' if c.ratio <= tgt else 'MISSED'}"
            )
    print("\n".join(verdicts))
    if not args.no_write:
        write_section(markdown(cases, machine_info(), repeat))
        print(f"\nwrote {DOC.relative_to(ROOT)}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
