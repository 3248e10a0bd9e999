"""Rewrite the AutoTiler golden files in ``tests/golden/autotiler/`` (the only way they change).

The recipe: the sample LeNet, ``set input_norm_func "x: (x/255 - 0.5)/0.5"``, ``adjust``,
``fusions --scale8``, ``aquant sample_images/calib`` with the numpy float backend (no
onnxruntime: the statistics must not depend on another library's rounding), then
``gen --target autotiler`` with the default names and a relative tensor directory. The golden set
is the model C file, the header and a manifest (SHA-256, size, name) of the ``.tensor`` files.

    python scripts/update_golden.py           # rewrite the goldens
    python scripts/update_golden.py --check   # exit 1 when the goldens are stale
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOLDEN_DIR = ROOT / "tests" / "golden" / "autotiler"
SAMPLE_MODEL = ROOT / "sample_models" / "cifar_net.onnx"
CALIB_DIR = ROOT / "sample_images" / "calib"
NORM = "x: (x/255 - 0.5)/0.5"


def build_session():  # noqa: ANN201 - nnshell.session.Session (imported lazily)
    """The quantized sample session of the golden recipe."""
    from nnshell.session import Session

    s = Session()
    s.open(str(SAMPLE_MODEL))
    s.set("float_backend", "numpy")
    s.set("input_norm_func", NORM)
    s.adjust()
    s.fusions("scale8")
    s.aquant([str(CALIB_DIR)])
    return s


def golden_outputs(session, workdir: Path) -> dict[str, bytes]:  # noqa: ANN001
    """Generate into ``workdir``; return the golden files by name."""
    written = session.gen_autotiler(model_dir=str(workdir), tensor_dir="tensors", header="model.h")
    model, header, tensors = written[0], written[1], written[2:]
    manifest = "".join(
        f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.stat().st_size:>8}  "
        f"{p.relative_to(workdir).as_posix()}\n"
        for p in tensors
    )
    return {
        model.name: model.read_bytes(),
        header.name: header.read_bytes(),
        "tensors.sha256": manifest.encode(),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="compare only; exit 1 when stale")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        files = golden_outputs(build_session(), Path(tmp))
    stale = [
        name
        for name, data in files.items()
        if not (GOLDEN_DIR / name).is_file() or (GOLDEN_DIR / name).read_bytes() != data
    ]
    extra = sorted(
        q.name for q in GOLDEN_DIR.glob("*") if GOLDEN_DIR.is_dir() and q.name not in files
    )
    if args.check:
        for name in stale + extra:
            print(f"stale: {name}")
        return 1 if stale or extra else 0
    GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
    for name in extra:
        (GOLDEN_DIR / name).unlink()
    for name, data in files.items():
        (GOLDEN_DIR / name).write_bytes(data)
    print(f"wrote {len(files)} golden files to {GOLDEN_DIR.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
