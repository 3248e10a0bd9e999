#!/usr/bin/env python3
"""Lay out the GAP SDK's MNIST example for nnshell: an ONNX LeNet and an ``images/`` folder.

The SDK's ``examples/gap8/nn/nntool/mnist/model/nntool_script*`` run ``aquant images/*`` next
to the model and address the graph input as NNTool's ``input_1``. This script writes, into
``--out`` (default ``mnist_example/``):

* ``mnist_lenet.onnx`` -- the 1x28x28 LeNet of ``scripts/make_lenet_bw.py``
  (``sample_models/lenet_bw.onnx``) with its input renamed ``digits`` (anything but
  ``input_1``: the scripts must reach it through NNTool's input numbering) and its output
  ``logits``;
* ``images/`` -- ``--count`` sample digits (PNG, 28x28 grayscale) from
  ``sample_images/bw_calib``.

No training and no download: it takes a second. ``python scripts/make_mnist_example.py --out DIR``.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import onnx

REPO_ROOT = Path(__file__).resolve().parent.parent
SOURCE = REPO_ROOT / "sample_models" / "lenet_bw.onnx"
IMAGES = REPO_ROOT / "sample_images" / "bw_calib"
RENAMES = {"input_1": "digits", "output": "logits"}


def make(out: Path, count: int = 16) -> Path:
    """Write the model and ``images/`` into ``out``; return the model's path."""
    model = onnx.load(str(SOURCE))
    g = model.graph
    for vi in [*g.input, *g.output, *g.value_info]:
        vi.name = RENAMES.get(vi.name, vi.name)
    for node in g.node:
        node.input[:] = [RENAMES.get(n, n) for n in node.input]
        node.output[:] = [RENAMES.get(n, n) for n in node.output]
    onnx.checker.check_model(model)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "mnist_lenet.onnx"
    onnx.save(model, str(path))
    images = out / "images"
    images.mkdir(exist_ok=True)
    for src in sorted(IMAGES.glob("*.png"))[:count]:
        shutil.copyfile(src, images / src.name)
    return path


def main() -> None:
    """Command line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("mnist_example"))
    ap.add_argument("--count", type=int, default=16, help="sample digits to copy")
    args = ap.parse_args()
    print(make(args.out, args.count))


if __name__ == "__main__":
    main()
