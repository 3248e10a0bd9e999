#!/usr/bin/env python3
"""Generate the 1-channel LeNet of the NNTool-compatibility tests (issue 12) and its images.

Grayscale 28x28 digits from ``sklearn.datasets.load_digits`` (no download), upscaled
bilinearly and shifted by up to two pixels; a small LeNet trained on CPU with the
normalisation ``x / 128 - 1`` (so NNTool's ``imageformat ... bw8 offset_int8`` matches it),
exported to ONNX with the legacy exporter and a dynamic batch axis.

Outputs (relative to ``--out``, default the repository root):

* ``sample_images/bw_calib/calib_<index>_<label>.png`` -- calibration images (train split)
* ``sample_images/bw_test/<index>_<label>.png`` -- test images (disjoint test split)
* ``sample_models/lenet_bw.onnx`` -- input ``input_1`` [N,1,28,28], output ``output``

Rerun with ``python scripts/make_lenet_bw.py`` from the repository root.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

SIZE = 28
NUM_CALIB = 128
NUM_TEST = 300
MAX_SHIFT = 2
AUG_COPIES = 5
EPOCHS = 12
REPO_ROOT = Path(__file__).resolve().parent.parent


class LeNetBW(nn.Module):
    """LeNet-5 shaped network for 1x28x28 inputs."""

    def __init__(self) -> None:
        """Create the layers."""
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 4 * 4, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits of a normalised NCHW batch."""
        x = F.relu(self.pool(self.conv1(x)))
        x = F.relu(self.pool(self.conv2(x)))
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        return self.fc2(x)


def make_images(digits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Upscale 8x8 digits (0..16) to shifted uint8 28x28 images (white strokes on black)."""
    out = np.empty((len(digits), SIZE, SIZE), dtype=np.uint8)
    inner = SIZE - 2 * MAX_SHIFT - 2
    for i, d in enumerate(digits):
        small = Image.fromarray(np.round(d * (255.0 / 16.0)).astype(np.uint8))
        big = np.asarray(small.resize((inner, inner), Image.Resampling.BILINEAR))
        dy, dx = rng.integers(0, 2 * MAX_SHIFT + 3, size=2)
        img = np.zeros((SIZE, SIZE), dtype=np.uint8)
        img[dy : dy + inner, dx : dx + inner] = big
        out[i] = img
    return out


def normalise(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) -> float32 (N, 1, 28, 28) with ``x / 128 - 1``."""
    return (images.astype(np.float32) / 128.0 - 1.0)[:, None]


def write_pngs(folder: Path, images: np.ndarray, labels: np.ndarray, prefix: str) -> None:
    """Write grayscale PNGs ``<prefix><index>_<label>.png`` (old PNGs removed first)."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    for i, (img, lab) in enumerate(zip(images, labels, strict=True)):
        Image.fromarray(img, mode="L").save(folder / f"{prefix}{i:04d}_{int(lab)}.png")


def main() -> None:
    """Build the data, train, export and check the model."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(REPO_ROOT), help="repository root to write into")
    ap.add_argument("--epochs", type=int, default=EPOCHS)
    ap.add_argument("--seed", type=int, default=12)
    args = ap.parse_args()
    out = Path(args.out)
    rng = np.random.default_rng(args.seed)
    torch.manual_seed(args.seed)
    torch.set_num_threads(2)

    digits = load_digits()
    x_tr, x_te, y_tr, y_te = train_test_split(
        digits.images, digits.target, test_size=NUM_TEST, random_state=args.seed
    )
    train = np.concatenate([make_images(x_tr, rng) for _ in range(AUG_COPIES)])
    ytrain = np.concatenate([y_tr] * AUG_COPIES)
    calib, ycalib = make_images(x_tr[:NUM_CALIB], rng), y_tr[:NUM_CALIB]
    test, ytest = make_images(x_te, rng), y_te

    model = LeNetBW()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    xt, yt = torch.from_numpy(normalise(train)), torch.from_numpy(ytrain).long()
    t0 = time.time()
    for epoch in range(args.epochs):
        perm = torch.randperm(len(xt))
        model.train()
        for s in range(0, len(xt), 64):
            idx = perm[s : s + 64]
            opt.zero_grad()
            loss = F.cross_entropy(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            pred = model(torch.from_numpy(normalise(test))).argmax(1).numpy()
        print(f"epoch {epoch + 1}: test accuracy {100 * np.mean(pred == ytest):.1f}%")
    print(f"trained in {time.time() - t0:.1f}s")

    write_pngs(out / "sample_images/bw_calib", calib, ycalib, "calib_")
    write_pngs(out / "sample_images/bw_test", test, ytest, "")
    path = out / "sample_models/lenet_bw.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            torch.zeros(1, 1, SIZE, SIZE),
            str(path),
            input_names=["input_1"],
            output_names=["output"],
            dynamic_axes={"input_1": {0: "batch"}, "output": {0: "batch"}},
            opset_version=13,
            dynamo=False,
        )
    onnx.checker.check_model(onnx.load(str(path)))
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"input_1": normalise(test)})[0].argmax(1)
    print(f"onnxruntime test accuracy {100 * np.mean(got == ytest):.1f}% -> {path}")


if __name__ == "__main__":
    main()
