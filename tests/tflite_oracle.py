"""The TFLite interpreter as the oracle of the TFLite importer (issue 19).

Shared by ``tests/importers/test_tflite.py`` and ``scripts/tflite_agreement.py`` (which prints
the agreement figures of docs/tflite.md). The interpreter comes from ``ai-edge-litert`` (the
``dev`` extra); tests skip when it is missing.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TFLITE_DIR = ROOT / "tests" / "data" / "tflite"


def interpreter(path: Path | str) -> Any:
    """A TFLite interpreter that keeps every intermediate tensor."""
    from ai_edge_litert.interpreter import Interpreter

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        it = Interpreter(model_path=str(path), experimental_preserve_all_tensors=True)
    it.allocate_tensors()
    return it


def run_interpreter(it: Any, x: np.ndarray) -> dict[int, np.ndarray]:
    """Run one NHWC float sample (quantized first if the input is integer); every tensor."""
    d = it.get_input_details()[0]
    if d["dtype"] != np.float32:
        s, z = d["quantization"]
        info = np.iinfo(d["dtype"])
        x = np.clip(np.round(x / s + z), info.min, info.max).astype(d["dtype"])
    it.set_tensor(d["index"], x.astype(d["dtype"]))
    it.invoke()
    out = {}
    for t in it.get_tensor_details():
        try:
            out[t["index"]] = np.array(it.get_tensor(t["index"]))
        except ValueError:  # tensors the interpreter freed or never allocated
            continue
    return out


def real(it: Any, idx: int, value: np.ndarray) -> np.ndarray | None:
    """The real values of an interpreter tensor (dequantized; None when it is not numeric)."""
    det = next(t for t in it.get_tensor_details() if t["index"] == idx)
    if value.dtype == np.float32:
        return value
    s, z = det["quantization"]
    if not s:
        return None
    return (value.astype(np.float64) - z) * s


def float_errors(path: Path | str, samples: int = 3, seed: int = 0) -> dict[str, float]:
    """Worst |Δ| / range of every IR tensor against the interpreter's, float import, on
    ``samples`` random inputs in [-1, 1]. Keys are IR tensor names."""
    from nnshell.exec.float_exec import run_float
    from nnshell.importers.tflite_importer import import_tflite

    imp = import_tflite(str(path))
    g = imp.graph
    it = interpreter(path)
    rng = np.random.default_rng(seed)
    shape = tuple(it.get_input_details()[0]["shape"])
    errors: dict[str, float] = {}
    for _ in range(samples):
        x = rng.uniform(-1, 1, shape).astype(np.float32)
        d = it.get_input_details()[0]
        if d["dtype"] != np.float32:  # feed nnshell the real values the interpreter sees
            s, z = d["quantization"]
            info = np.iinfo(d["dtype"])
            x = ((np.clip(np.round(x / s + z), info.min, info.max) - z) * s).astype(np.float32)
        ref = run_interpreter(it, x)
        got = run_float(g, {g.inputs[0]: x}, keep=list(g.tensors))
        for idx, (name, chw) in imp.tensors.items():
            if name not in got or idx not in ref:
                continue
            r = real(it, idx, ref[idx])
            if r is None:
                continue
            v = got[name]
            if chw:
                v = v.transpose(0, 2, 3, 1)
            v = v.reshape(r.shape)
            span = max(float(np.abs(r).max()), 1e-6)
            err = float(np.abs(v - r).max()) / span
            errors[name] = max(errors.get(name, 0.0), err)
    return errors


def load_images(folder: Path, gray: bool, norm: Any) -> tuple[np.ndarray, list[int], list[str]]:
    """PNG images of a folder as an NHWC float batch ``norm(pixels)``, labels from the name."""
    from PIL import Image

    files = sorted(folder.glob("*.png"))
    xs = []
    for f in files:
        a = np.asarray(Image.open(f).convert("L" if gray else "RGB"), dtype=np.float32)
        xs.append(a[..., None] if gray else a)
    labels = [int(f.stem.rsplit("_", 1)[1]) for f in files]
    return norm(np.stack(xs)).astype(np.float32), labels, [str(f) for f in files]


@dataclass
class Agreement:
    """How nnshell's ``open -q`` integer graph agrees with the interpreter on a model."""

    images: int = 0
    top1_same: int = 0
    top1_nnshell: int = 0
    top1_tflite: int = 0
    #: tensor -> (elements equal, elements |Δ| <= 1, elements) over every image
    codes: dict[str, list[int]] = field(default_factory=dict)

    def exact(self) -> float:
        """Share of int8 codes equal to the interpreter's, over the compared tensors."""
        e = sum(v[0] for v in self.codes.values())
        n = sum(v[2] for v in self.codes.values())
        return e / n if n else 0.0

    def within1(self) -> float:
        """Share of codes within ±1 of the interpreter's."""
        e = sum(v[1] for v in self.codes.values())
        n = sum(v[2] for v in self.codes.values())
        return e / n if n else 0.0


def quantized_agreement(
    path: Path | str, images: np.ndarray, labels: list[int] | None = None
) -> Agreement:
    """Open ``path`` with ``-q``, adjust, fuse (scale8), run the integer executor on NHWC float
    ``images`` and compare with the interpreter: top-1 and the int8 codes of every tensor whose
    qtype is the file's."""
    from nnshell.exec.int_exec import run_int
    from nnshell.importers.tflite_importer import import_tflite
    from nnshell.session import Session

    s = Session()
    s.open(str(path), load_quantization=True)
    s.adjust()
    s.fusions("scale8")
    g, qs = s.graph, s.qstate
    assert g is not None and qs is not None
    imp = import_tflite(str(path))
    it = interpreter(path)
    dets = {t["index"]: t for t in it.get_tensor_details()}
    compared: dict[str, int] = {}
    for idx, (name, _chw) in imp.tensors.items():
        q = imp.graph.meta["tflite_quant"].get(name)
        det = dets.get(idx)
        if name not in qs.tensors or det is None or q is None or det["dtype"] == np.float32:
            continue
        s_, z_ = det["quantization"]
        zp = z_ - 128 if det["dtype"] == np.uint8 else z_
        mine = qs.tensors[name]
        if mine.bits == 8 and mine.zero_point == zp and np.isclose(float(mine.scale), s_):
            compared[name] = idx
    ag = Agreement()
    # Both sides get the same input codes: nnshell's, fed to the interpreter as their exact real
    # values (its QUANTIZE gives them back), so the figures measure the kernels, not the
    # rounding of ties in the input quantization.
    in_q = qs.tensors[g.inputs[0]]
    codes = in_q.quantize(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
    images = np.ascontiguousarray(in_q.dequantize(codes).transpose(0, 2, 3, 1)).astype(np.float32)
    ints = run_int(g, qs, {g.inputs[0]: codes}, keep=list(compared))
    out_name = g.outputs[0]
    for k in range(len(images)):
        ref = run_interpreter(it, images[k : k + 1])
        out_idx = it.get_output_details()[0]["index"]
        ref_out = real(it, out_idx, ref[out_idx])
        assert ref_out is not None
        mine_out = qs.tensors[out_name].dequantize(ints[out_name][k : k + 1])
        a, b = int(np.argmax(ref_out)), int(np.argmax(mine_out))
        ag.images += 1
        ag.top1_same += a == b
        if labels is not None:
            ag.top1_tflite += a == labels[k]
            ag.top1_nnshell += b == labels[k]
        for name, idx in compared.items():
            r = ref[idx].astype(np.int64)
            if dets[idx]["dtype"] == np.uint8:
                r = r - 128
            v = ints[name][k : k + 1].astype(np.int64)
            if v.ndim == 4:  # after adjust every 4-D activation is CHW
                v = v.transpose(0, 2, 3, 1)
            v = v.reshape(r.shape)
            d = np.abs(v - r)
            c = ag.codes.setdefault(name, [0, 0, 0])
            c[0] += int((d == 0).sum())
            c[1] += int((d <= 1).sum())
            c[2] += int(d.size)
    return ag
