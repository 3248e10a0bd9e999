"""``gen --verify``: build the generated C on the host and compare it with the integer executor.

The images are quantized by Python with the graph input's qtype and written as one raw int8 file
(a formatted input, ``imageformat``: the raw uint8/uint16 HWC pixels, which the generated
formatter turns into int8 codes; those codes are compared too);
the harness runs the generated network on each and writes every step's output bytes; every byte
is compared with ``run_int(..., keep=every node output)``. The first difference is reported by
layer, image, channel and position with both values. Both sides are timed per image (the
harness without its file output, the executor batched over all the images).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nnshell.atomic import os_error_text
from nnshell.codegen.c_emitter import CModel, Step, render_c, write_model
from nnshell.codegen.checks import verify_bytes
from nnshell.codegen.csafe import plain_file_name
from nnshell.errors import CodegenError
from nnshell.ir import Graph

if TYPE_CHECKING:
    from nnshell.quant.sq8 import QuantState

#: The flags gen --verify builds with, the ones a user's release build would use: -O3 lets gcc
#: vectorise the kernels' contiguous int8 multiply-add loops (gcc 12's -O2 cost model does not
#: vectorise loops of unknown trip count; -O2 -ftree-vectorize -fvect-cost-model=dynamic does).
CFLAGS = ("-std=c99", "-Wall", "-Wextra", "-Werror", "-O3")


@dataclass(frozen=True)
class Mismatch:
    """The first byte where the C and the Python integer executor disagree."""

    step: int
    node: str
    image: int
    channel: int
    position: tuple[int, ...]
    c_value: int
    py_value: int

    def describe(self) -> str:
        """One line naming the layer, image, channel and position, with both values."""
        pos = ",".join(map(str, self.position)) or "-"
        return (
            f"step {self.step} ({self.node}) differs on image {self.image}, channel "
            f"{self.channel}, position ({pos}): C {self.c_value}, Python {self.py_value}"
        )


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of ``gen --verify``."""

    images: int
    layers: int
    mismatch: Mismatch | None
    c_us_per_image: float
    py_us_per_image: float
    arena_bytes: int
    peak_live_bytes: int
    const_bytes: int
    files: list[Path]

    @property
    def ok(self) -> bool:
        """True when every byte of every layer matched."""
        return self.mismatch is None

    def summary(self) -> str:
        """``bit-exact on N images, L layers`` or the first difference."""
        if self.mismatch is not None:
            return f"NOT bit-exact: {self.mismatch.describe()}"
        images = f"{self.images} image" + ("s" if self.images != 1 else "")
        layers = f"{self.layers} layer" + ("s" if self.layers != 1 else "")
        return f"bit-exact on {images}, {layers}"


def find_compiler() -> str:
    """Path of the host C compiler (gcc, else cc); a clear error when there is none."""
    for name in ("gcc", "cc"):
        path = shutil.which(name)
        if path:
            return path
    raise CodegenError(
        "gen --verify needs a host C compiler and none was found (gcc or cc on PATH)",
        "install gcc (e.g. apt-get install gcc), or use gen --target c alone",
    )


class _RuntimeObjects:
    """The hand-written runtime files compiled once per process and reused by every later
    ``gen --verify`` (at -O3 they are ~2 s of gcc, most of a small model's verification).

    An object is keyed by the compiler, the flags and the bytes of the runtime sources and
    headers as written next to the model, so a changed file or flag compiles again. The objects
    live in a private temporary folder removed when the process exits.
    """

    def __init__(self) -> None:
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._lock = threading.Lock()

    def get(self, cc: str, flags: Sequence[str], build_dir: Path, source: str) -> Path:
        """The object file of runtime ``source`` (in ``build_dir``), compiled if new."""
        key = hashlib.sha256("\0".join([cc, *flags, source]).encode())
        for name in sorted(p.name for p in build_dir.iterdir() if p.suffix in (".c", ".h")):
            if name == source or (name.startswith("nn_") and name.endswith(".h")):
                key.update(name.encode() + b"\0" + (build_dir / name).read_bytes())
        with self._lock:
            if self._dir is None:
                self._dir = tempfile.TemporaryDirectory(prefix="nnshell-rt-")
            obj = Path(self._dir.name) / f"{key.hexdigest()[:32]}.o"
            if not obj.exists():
                part = obj.with_suffix(".part")
                cmd = [cc, *flags, "-c", source, "-o", str(part)]
                _run_compiler(cmd, build_dir)
                part.replace(obj)
        return obj


_RUNTIME_OBJECTS = _RuntimeObjects()


def _run_compiler(cmd: list[str], build_dir: Path) -> None:
    proc = subprocess.run(cmd, cwd=build_dir, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        first = (proc.stderr.strip().splitlines() or ["(no message)"])[0]
        raise CodegenError(f"the generated C does not compile: {first}", f"see {build_dir}")


def compile_model(model: CModel, build_dir: Path, extra: Sequence[str] = ()) -> Path:
    """Compile the generated model and its harness with ``-Wall -Wextra -Werror`` (``extra``:
    more flags, e.g. ``-DNN_MAX_ROW=4`` to test the kernels' narrow-stack paths); the runtime
    files come from the per-process object cache."""
    cc = find_compiler()
    exe = build_dir / plain_file_name(f"{model.name}_harness")
    # no shell: a list of plain file names (none starts with '-', so none reads as an option)
    sources = [plain_file_name(s, "source file") for s in model.sources]
    runtime = {f for f in model.runtime if f.endswith(".c")}
    flags = [*CFLAGS, *extra]
    objects = [str(_RUNTIME_OBJECTS.get(cc, flags, build_dir, s)) for s in sources if s in runtime]
    rest = [s for s in sources if s not in runtime]
    _run_compiler([cc, *flags, "-o", exe.name, *rest, *objects], build_dir)
    return exe


def _run_harness(exe: Path, inputs: Path, out_dir: Path) -> float:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CodegenError(f"gen --verify cannot create {os_error_text(exc, out_dir)}") from None
    proc = subprocess.run(
        [str(exe), str(out_dir), str(inputs)], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise CodegenError(f"the generated harness failed: {proc.stderr.strip()[:200]}")
    for line in proc.stdout.splitlines():
        if line.startswith("us_per_image "):
            return float(line.split()[1])
    raise CodegenError("the generated harness printed no timing")


def _first_difference(step: Step, c: np.ndarray, py: np.ndarray, first: int = 0) -> Mismatch:
    bad = np.argwhere(c != py)[0]
    image, rest = first + int(bad[0]), tuple(int(v) for v in bad[1:])
    channel, position = (rest[0], rest[1:]) if rest else (0, ())
    return Mismatch(
        step.index, step.node, image, channel, position, int(c[tuple(bad)]), int(py[tuple(bad)])
    )


def compare_steps(
    model: CModel, values: dict[str, np.ndarray], out_dir: Path, n: int, first: int = 0
) -> Mismatch | None:
    """First difference between the harness's step files (``n`` images) and the executor's
    values of images ``first, first + 1, ...`` (one chunk: only its bytes are read)."""
    for step in [*model.formatted, *model.steps]:
        py = np.ascontiguousarray(values[step.output])
        fname = f"S{step.index}.bin" if step.index >= 0 else f"I{-1 - step.index}.bin"
        path = out_dir / fname
        size = path.stat().st_size if path.is_file() else 0
        if size != n * step.nbytes:
            raise CodegenError(
                f"step {step.index} ({step.node}): the harness wrote {size} bytes, "
                f"expected {n * step.nbytes}"
            )
        count = len(py) * step.nbytes
        raw = np.fromfile(path, dtype=np.uint8, count=count, offset=first * step.nbytes)
        c = raw.view(py.dtype.newbyteorder("<")).reshape(py.shape).astype(py.dtype)
        if not np.array_equal(c, py):
            return _first_difference(step, c, py, first)
    return None


def verify_arrays(
    graph: Graph,
    qstate: QuantState,
    xs: np.ndarray,
    build_dir: str | Path,
    name: str | None = None,
    cflags: Sequence[str] = (),
    phase: Callable[[str], None] | None = None,
) -> VerifyResult:
    """Generate, compile and run the C on a batch (float, or int8 codes of the input qtype;
    a formatted input: raw ``(N, H, W, C)`` pixels 0..255)."""
    if len(graph.inputs) != 1:
        raise CodegenError("gen --verify feeds images: the graph must have exactly one input")
    if len(xs) == 0:
        raise CodegenError("gen --verify needs at least one image")
    build = Path(build_dir)
    model = render_c(graph, qstate, name)
    return _verify_model(graph, qstate, model, xs, build, cflags, phase)


def _check_data_size(model: CModel, n_images: int) -> None:
    """Refuse before anything is loaded or written when the images' inputs and every step's
    outputs would exceed the ``gen --verify`` data cap (a huge recorded input shape)."""
    per_image = [*model.input_bytes, *(s.nbytes for s in model.formatted)]
    verify_bytes(n_images, [*per_image, *(s.nbytes for s in model.steps)])


def _verify_model(
    graph: Graph,
    qstate: QuantState,
    model: CModel,
    xs: np.ndarray,
    build: Path,
    cflags: Sequence[str],
    phase: Callable[[str], None] | None = None,
) -> VerifyResult:
    """Write, build and run ``model`` on ``xs``; compare every step with the executor."""
    from nnshell.exec.budget import images_per_batch
    from nnshell.exec.int_exec import quantize_inputs, run_int

    n = len(next(iter(xs.values()))) if isinstance(xs, dict) else len(xs)
    _check_data_size(model, n)
    files = write_model(model, build)
    say = phase or (lambda text: None)  # compiling and running take seconds: say which
    say("compiling")
    exe = compile_model(model, build, cflags)
    inp = graph.inputs[0]
    inputs = build / "inputs.bin"
    try:
        if isinstance(xs, dict):  # several inputs: each sample's inputs back to back
            feed = quantize_inputs(graph, qstate, xs)
            qs = [
                np.ascontiguousarray(feed[k]).astype(np.dtype(qstate.tensors[k].dtype))
                for k in graph.inputs
            ]
            feed = dict(zip(graph.inputs, qs, strict=True))
            q = qs[0]
            np.concatenate([a.reshape(len(a), -1).view(np.uint8) for a in qs], axis=1).tofile(
                inputs
            )
        elif model.formatted:
            feed = _raw_feed(graph, inp, xs)
            q = quantize_inputs(graph, qstate, {inp: feed})[inp]
            _raw_bytes(graph, inp, feed).tofile(inputs)
        else:
            dtype = np.dtype(qstate.tensors[inp].dtype)  # int8 (SQ8, POW2-8) or int16 (POW2-16)
            q = np.ascontiguousarray(quantize_inputs(graph, qstate, {inp: xs})[inp]).astype(dtype)
            feed = q
            q.tofile(inputs)
    except OSError as exc:
        raise CodegenError(
            f"gen --verify cannot write {os_error_text(exc, inputs)}", "free some space"
        ) from None
    say(f"running on {len(q)} image(s)")
    c_us = _run_harness(exe, inputs, build / "steps")
    say("comparing every layer")
    keep = [s.output for s in model.steps]
    # a chunk of images at a time: memory stays within the activation budget (exec.budget)
    chunk = images_per_batch(graph, len(q), bytes_per_element=8)
    feeds = feed if isinstance(feed, dict) else {inp: feed}
    codes = feed if isinstance(feed, dict) else {inp: q}
    mismatch, py_s, done = None, 0.0, 0
    for lo in range(0, len(q), chunk):
        t0 = time.perf_counter()
        part = {k: v[lo : lo + chunk] for k, v in feeds.items()}
        values = run_int(graph, qstate, part, keep=keep)
        py_s += time.perf_counter() - t0
        values.update({k: v[lo : lo + chunk] for k, v in codes.items()})
        done += len(values[inp])
        mismatch = compare_steps(model, values, build / "steps", len(q), lo)
        if mismatch is not None:
            break
    py_us = py_s * 1e6 / max(done, 1)
    return VerifyResult(
        len(q),
        len(model.steps),
        mismatch,
        c_us,
        py_us,
        model.arena.size,
        model.arena.peak_live,
        model.const_bytes,
        files,
    )


def _raw_feed(graph: Graph, inp: str, xs: np.ndarray) -> np.ndarray:
    """The raw ``(N, H, W, C)`` pixels of a formatted input, checked (int64)."""
    from nnshell.input.formatter import get_formatter, raw_shape

    fmt = get_formatter(graph, inp)
    want = raw_shape(graph, inp, fmt)
    if tuple(np.shape(xs)[1:]) != want:
        raise CodegenError(
            f"gen --verify: the {fmt.fmt} formatter of {inp} reads raw pixels of shape {want} "
            f"(H, W, C), got {tuple(np.shape(xs)[1:])}"
        )
    fmt.pixels(xs)  # 0..255 integers, else a clear ImageError
    return np.asarray(xs).astype(np.int64)


def _raw_bytes(graph: Graph, inp: str, raw: np.ndarray) -> np.ndarray:
    """The bytes the generated formatter reads: uint8, little-endian uint16 or 565 words."""
    from nnshell.input.formatter import get_formatter

    fmt = get_formatter(graph, inp)
    if fmt.fmt == "rgb565_rgb888":
        r, g, b = raw[..., 0] >> 3, raw[..., 1] >> 2, raw[..., 2] >> 3
        return np.ascontiguousarray(((r << 11) | (g << 5) | b).astype("<u2"))
    return np.ascontiguousarray(raw.astype(np.uint8 if fmt.ctype == "unsigned char" else "<u2"))


def _load_raw(path: str, opts: Any, expected: tuple[int, ...]) -> np.ndarray:
    """One image as the raw HWC pixels of a formatted input (``load_formatted`` without its
    float transform)."""
    from nnshell.input.images import read_raw_pixels

    return read_raw_pixels(path, opts, expected)


def verify(
    graph: Graph,
    qstate: QuantState,
    images: list[str],
    opts: Any,
    build_dir: str | Path,
    name: str | None = None,
    phase: Callable[[str], None] | None = None,
) -> VerifyResult:
    """Load ``images`` with ``opts`` and :func:`verify_arrays` them (``phase(text)`` hears
    of each step: loading, compiling, running, comparing)."""
    from nnshell.ops.expression import expanded

    graph, qstate = expanded(graph, qstate)
    if not images:
        raise CodegenError("gen --verify needs at least one image")
    # render (and check) first: a corrupt graph or a huge input is refused before any image
    # is loaded at its size or any byte is written
    model = render_c(graph, qstate, name)
    _check_data_size(model, len(images))
    if phase is not None:
        phase(f"loading {len(images)} image(s)")
    xs = load_images(graph, images, opts)
    return _verify_model(graph, qstate, model, xs, Path(build_dir), (), phase)


def load_images(graph: Graph, images: Sequence[str], opts: Any) -> Any:
    """The images as the C reads them: float network inputs, the raw HWC pixels of a formatted
    input, or one array per input of a multi-input graph (a dict)."""
    from nnshell.input.images import iter_batches

    expected = graph.tensors[graph.inputs[0]].dims
    if len(graph.inputs) > 1:  # one file per input and sample (nnshell/input/multi_input.py)
        from nnshell.input.multi_input import input_batches

        _, batches = input_batches(graph, [str(p) for p in images], opts, 256)
        parts = [b for _, b in batches]
        return {k: np.concatenate([b[k] for b in parts]) for k in graph.inputs}
    if getattr(opts, "formatter", None) is not None:  # the C reads the raw pixels
        shape = tuple(int(d) for d in expected)
        return np.stack([_load_raw(str(p), opts, shape) for p in images])
    return np.concatenate([b for _, b in iter_batches(list(images), opts, expected, 256)])
