#!/usr/bin/env python3
"""Print the agreement of nnshell's ``open -q`` integer graphs with the TFLite interpreter.

The figures of docs/tflite.md: for each quantized test model, on the repository's test images,
how many images get the interpreter's top-1, each side's accuracy, and the share of int8 codes
equal (and within ±1) on every tensor whose qtype is the file's. Needs ``ai-edge-litert``
(the ``dev`` extra). Run from the repository root: ``python scripts/tflite_agreement.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.tflite_oracle import ROOT, TFLITE_DIR, load_images, quantized_agreement  # noqa: E402

MODELS = [
    ("cifar_net_int8", "test", False, lambda p: p / 127.5 - 1),
    ("cifar_net_int8io", "test", False, lambda p: p / 127.5 - 1),
    ("cifar_net_uint8", "test", False, lambda p: p / 127.5 - 1),
    ("cifar_net_uint8_legacy", "test", False, lambda p: p / 127.5 - 1),
    ("lenet_bw_int8", "bw_test", True, lambda p: p / 128 - 1),
]


def main() -> None:
    """One block per model."""
    for name, folder, gray, norm in MODELS:
        x, labels, _ = load_images(ROOT / "sample_images" / folder, gray, norm)
        ag = quantized_agreement(TFLITE_DIR / f"{name}.tflite", x, labels)
        print(
            f"{name}: {ag.images} images, same top-1 {ag.top1_same}/{ag.images}, "
            f"accuracy nnshell {ag.top1_nnshell} TFLite {ag.top1_tflite}; codes of "
            f"{len(ag.codes)} tensors: {100 * ag.exact():.2f} % exact, "
            f"{100 * ag.within1():.2f} % within ±1"
        )
        for t, (eq, w1, n) in ag.codes.items():
            print(f"  {t}: {100 * eq / n:.2f} % exact, {100 * w1 / n:.2f} % within ±1")


if __name__ == "__main__":
    main()
