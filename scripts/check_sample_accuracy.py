#!/usr/bin/env python3
"""Print the float accuracy of the sample ONNX model on the sample test images.

Uses only onnxruntime, numpy and pillow (no torch). The label of each PNG is the last
``_``-separated field of its file stem (``0000_7.png`` -> 7). Model input: RGB, NCHW,
``(pixel / 255 - 0.5) / 0.5``.

Usage: ``python scripts/check_sample_accuracy.py [--model M] [--images DIR]``
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parent.parent


def load_images(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """Load the PNGs of ``folder`` as a normalised float32 NCHW batch and their labels."""
    files = sorted(folder.glob("*.png"))
    if not files:
        raise SystemExit(f"no PNG files in {folder}")
    pixels = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])
    x = (pixels.astype(np.float32) / 255.0 - 0.5) / 0.5
    labels = np.array([int(f.stem.rsplit("_", 1)[-1]) for f in files])
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2)), labels


def accuracy(model: Path, folder: Path) -> tuple[float, int]:
    """Return (accuracy in percent, number of images) of ``model`` on ``folder``."""
    x, labels = load_images(folder)
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    logits = session.run(None, {input_name: x})[0]
    return 100.0 * float((logits.argmax(axis=1) == labels).mean()), len(labels)


def main() -> None:
    """Parse the command line and print the accuracy."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", type=Path, default=REPO_ROOT / "sample_models" / "cifar_net.onnx"
    )
    parser.add_argument("--images", type=Path, default=REPO_ROOT / "sample_images" / "test")
    args = parser.parse_args()
    percent, count = accuracy(args.model, args.images)
    print(f"float accuracy (onnxruntime): {percent:.2f} % on {count} images")


if __name__ == "__main__":
    main()
