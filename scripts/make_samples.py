#!/usr/bin/env python3
"""Generate the committed sample data of nnshell: images, and a small trained LeNet.

The script builds a coloured 32x32 RGB digit data set from ``sklearn.datasets.load_digits``
(no download needed), writes calibration and test PNGs, trains the classic PyTorch
CIFAR-10 tutorial LeNet on it, exports it to ONNX and verifies the exported model with
onnxruntime on the written test PNGs.

Outputs (relative to ``--out``):

* ``sample_images/calib/calib_<index>_<label>.png`` -- calibration images (train split)
* ``sample_images/test/<index>_<label>.png`` -- test images (test split, disjoint from calib)
* ``sample_models/cifar_net.onnx`` -- float model, input ``input`` [N,3,32,32], output ``output``

Input convention of the model: RGB, NCHW, ``(pixel / 255 - 0.5) / 0.5`` per channel.

Rerun with ``python scripts/make_samples.py`` from the repository root.
"""

from __future__ import annotations

import argparse
import os
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

IMAGE_SIZE = 32
NUM_CALIB = 256
NUM_TEST = 540
MAX_SHIFT = 2
AUG_COPIES = 7
LEARNING_RATE = 2e-3
BATCH_SIZE = 64
DEFAULT_EPOCHS = 30
NOISE_SIGMA = 3.0
MIN_CONTRAST = 110.0
EXPECTED_NODES = [
    "/conv1/Conv",
    "/pool/MaxPool",
    "/Relu",
    "/conv2/Conv",
    "/pool_1/MaxPool",
    "/Relu_1",
    "/Flatten",
    "/fc1/Gemm",
    "/Relu_2",
    "/fc2/Gemm",
    "/Relu_3",
    "/fc3/Gemm",
]
REPO_ROOT = Path(__file__).resolve().parent.parent


class Net(nn.Module):
    """The LeNet of the PyTorch CIFAR-10 tutorial, with ReLU applied after pooling."""

    def __init__(self) -> None:
        """Create the layers."""
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Compute the class logits of a normalised NCHW batch."""
        x = F.relu(self.pool(self.conv1(x)))
        x = F.relu(self.pool(self.conv2(x)))
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


def upscale_digits(digits: np.ndarray) -> np.ndarray:
    """Upscale 8x8 digits (values 0..16) to float stroke masks of 32x32 in [0, 1].

    Args:
        digits: array of shape (N, 8, 8) with values 0..16.

    Returns:
        Float32 array of shape (N, 32, 32) with values in [0, 1] (bilinear via PIL).
    """
    masks = np.empty((len(digits), IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
    for i, digit in enumerate(digits):
        small = Image.fromarray(np.round(digit * (255.0 / 16.0)).astype(np.uint8))  # mode L
        big = small.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BILINEAR)
        masks[i] = np.asarray(big, dtype=np.float32) / 255.0
    return masks


def random_colours(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Draw a background and a stroke colour that differ by at least ``MIN_CONTRAST``.

    The contrast is measured as the Euclidean distance of the two RGB colours.
    """
    while True:
        background = rng.uniform(0.0, 255.0, size=3)
        stroke = rng.uniform(0.0, 255.0, size=3)
        if np.linalg.norm(stroke - background) >= MIN_CONTRAST:
            return background, stroke


def colourise(masks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Turn stroke masks into coloured, shifted, noisy RGB uint8 images.

    Each image gets its own random background and stroke colour, a random integer shift
    of up to ``MAX_SHIFT`` pixels (zero padded, no wrap-around) and Gaussian pixel noise.

    Args:
        masks: float array (N, 32, 32) in [0, 1].
        rng: seeded numpy generator; the result depends only on its state.

    Returns:
        uint8 array of shape (N, 32, 32, 3) (HWC, RGB).
    """
    n = len(masks)
    images = np.empty((n, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    padded = np.pad(masks, ((0, 0), (MAX_SHIFT, MAX_SHIFT), (MAX_SHIFT, MAX_SHIFT)))
    for i in range(n):
        dy, dx = rng.integers(0, 2 * MAX_SHIFT + 1, size=2)
        mask = padded[i, dy : dy + IMAGE_SIZE, dx : dx + IMAGE_SIZE][..., None]
        background, stroke = random_colours(rng)
        image = background * (1.0 - mask) + stroke * mask
        image = image + rng.normal(0.0, NOISE_SIGMA, size=image.shape)
        images[i] = np.clip(np.round(image), 0, 255).astype(np.uint8)
    return images


def normalise(images: np.ndarray) -> np.ndarray:
    """Convert uint8 NHWC RGB images to the float32 NCHW model input."""
    x = images.astype(np.float32) / 255.0
    x = (x - 0.5) / 0.5
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def clean_pngs(folder: Path) -> None:
    """Create ``folder`` if needed and delete the PNG files already in it."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()


def write_pngs(folder: Path, images: np.ndarray, labels: np.ndarray, prefix: str) -> None:
    """Write images as ``<prefix><index>_<label>.png`` (index zero padded to 4 digits)."""
    for index, (image, label) in enumerate(zip(images, labels, strict=True)):
        Image.fromarray(image).save(  # uint8 HxWx3 -> mode RGB
            folder / f"{prefix}{index:04d}_{int(label)}.png", optimize=True
        )


def evaluate(model: Net, x: torch.Tensor, y: torch.Tensor) -> float:
    """Return the accuracy (0..1) of ``model`` on the normalised batch ``x``."""
    model.eval()
    with torch.no_grad():
        predictions = model(x).argmax(dim=1)
    return float((predictions == y).float().mean())


def train(
    masks_train: np.ndarray,
    images_train: np.ndarray,
    labels_train: np.ndarray,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    epochs: int,
    seed: int,
) -> Net:
    """Train the LeNet on the train split.

    Each epoch uses the fixed train images (the calibration images are among them) plus
    ``AUG_COPIES`` freshly coloured and shifted copies of the train masks as augmentation.

    Args:
        masks_train: stroke masks of the train split, used for recolouring.
        images_train: the fixed coloured train images (uint8 NHWC).
        labels_train: labels of the train split.
        x_test: normalised test inputs (only for progress reporting).
        y_test: test labels.
        epochs: number of epochs.
        seed: seed of the augmentation RNG and of torch.

    Returns:
        The trained model in eval mode.
    """
    torch.manual_seed(seed)
    aug_rng = np.random.default_rng(seed + 1)
    model = Net()
    optimiser = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=epochs)
    x_fixed = torch.from_numpy(normalise(images_train))
    y_fixed = torch.from_numpy(labels_train.astype(np.int64))
    generator = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        x_aug = [
            torch.from_numpy(normalise(colourise(masks_train, aug_rng))) for _ in range(AUG_COPIES)
        ]
        x_epoch = torch.cat([x_fixed, *x_aug])
        y_epoch = y_fixed.repeat(AUG_COPIES + 1)
        order = torch.randperm(len(x_epoch), generator=generator)
        model.train()
        total_loss = 0.0
        for start in range(0, len(order), BATCH_SIZE):
            batch = order[start : start + BATCH_SIZE]
            optimiser.zero_grad()
            loss = F.cross_entropy(model(x_epoch[batch]), y_epoch[batch])
            loss.backward()
            optimiser.step()
            total_loss += loss.item() * len(batch)
        scheduler.step()
        accuracy = evaluate(model, x_test, y_test)
        print(
            f"epoch {epoch + 1:2d}/{epochs}: loss {total_loss / len(order):.4f}, "
            f"test accuracy (torch) {100.0 * accuracy:.2f} %"
        )
    model.eval()
    return model


def export_onnx(model: Net, path: Path) -> list[str]:
    """Export ``model`` with the legacy TorchScript exporter and return the node names.

    The weights are embedded in the file (no external data). The batch axis is dynamic.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    dummy = torch.zeros(1, 3, IMAGE_SIZE, IMAGE_SIZE)
    with warnings.catch_warnings():
        # dynamo=False (legacy TorchScript exporter) is deprecated but gives the wanted names.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model,
            (dummy,),
            str(path),
            input_names=["input"],
            output_names=["output"],
            dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
            opset_version=17,
            dynamo=False,
            export_params=True,
            do_constant_folding=True,
        )
    loaded = onnx.load(str(path))
    onnx.checker.check_model(loaded)
    return [node.name for node in loaded.graph.node]


def onnx_accuracy(model_path: Path, test_dir: Path) -> tuple[float, int]:
    """Accuracy of the ONNX model with onnxruntime on the PNGs of ``test_dir``.

    The label of each image is the last ``_``-separated field of its file stem.

    Returns:
        (accuracy in 0..1, number of images).
    """
    files = sorted(test_dir.glob("*.png"))
    images = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])
    labels = np.array([int(f.stem.rsplit("_", 1)[-1]) for f in files])
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    logits = session.run(["output"], {"input": normalise(images)})[0]
    return float((logits.argmax(axis=1) == labels).mean()), len(files)


def folder_size(paths: list[Path]) -> int:
    """Total size in bytes of the given files."""
    return sum(p.stat().st_size for p in paths)


def parse_args() -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="seed of all RNGs (default 0)")
    parser.add_argument(
        "--out", type=Path, default=REPO_ROOT, help="output root (default: repository root)"
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=DEFAULT_EPOCHS,
        help=f"training epochs (default {DEFAULT_EPOCHS})",
    )
    return parser.parse_args()


def main() -> int:
    """Build the data set, write the PNGs, train, export and verify. Return an exit code."""
    args = parse_args()
    started = time.perf_counter()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    torch.use_deterministic_algorithms(True)

    digits = load_digits()
    labels = digits.target.astype(np.int64)
    masks = upscale_digits(digits.images)
    rng = np.random.default_rng(args.seed)
    images = colourise(masks, rng)
    train_idx, test_idx = train_test_split(
        np.arange(len(labels)), test_size=NUM_TEST, stratify=labels, random_state=args.seed
    )
    calib_idx = rng.choice(train_idx, size=NUM_CALIB, replace=False)
    assert not set(calib_idx) & set(test_idx)

    out: Path = args.out
    calib_dir = out / "sample_images" / "calib"
    test_dir = out / "sample_images" / "test"
    model_path = out / "sample_models" / "cifar_net.onnx"
    for folder in (calib_dir, test_dir):
        clean_pngs(folder)
    write_pngs(calib_dir, images[calib_idx], labels[calib_idx], "calib_")
    write_pngs(test_dir, images[test_idx], labels[test_idx], "")
    print(f"wrote {len(calib_idx)} calibration PNGs to {calib_dir}")
    print(f"wrote {len(test_idx)} test PNGs to {test_dir}")

    x_test = torch.from_numpy(normalise(images[test_idx]))
    y_test = torch.from_numpy(labels[test_idx])
    model = train(
        masks[train_idx],
        images[train_idx],
        labels[train_idx],
        x_test,
        y_test,
        args.epochs,
        args.seed,
    )
    torch_accuracy = evaluate(model, x_test, y_test)

    node_names = export_onnx(model, model_path)
    print(f"exported {model_path} ({model_path.stat().st_size} bytes); nodes:")
    for name in node_names:
        print(f"  {name}")
    if node_names != EXPECTED_NODES:
        print(f"WARNING: node names differ from the expected {EXPECTED_NODES}")

    accuracy, count = onnx_accuracy(model_path, test_dir)
    outputs = [*calib_dir.glob("*.png"), *test_dir.glob("*.png"), model_path]
    print(f"total size of outputs: {folder_size(outputs) / 1e6:.2f} MB")
    print(f"runtime: {time.perf_counter() - started:.1f} s")
    print(f"test accuracy (torch): {100.0 * torch_accuracy:.2f} %")
    print(f"test accuracy (onnxruntime, PNGs): {100.0 * accuracy:.2f} % on {count} images")
    if accuracy < 0.95:
        print("ERROR: accuracy below 95 %")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
