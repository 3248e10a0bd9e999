#!/usr/bin/env python3
"""Train and export the second sample model: a tiny MobileNet-style CNN on the sample digits.

The data are those of ``scripts/make_samples.py`` (same generator, same seed, same split, so the
committed ``sample_images/test`` PNGs are this model's test set too); nothing but the model is
written. The network exercises the kernels the LeNet does not: a depthwise convolution, ReLU6
(exported as Clip), residual adds, global average pooling::

    stem   conv 3x3/2 3->16 + BN + ReLU6                       16x16
    block  dw 3x3 16 + BN + ReLU6, pw 1x1 16->16 + BN, + input  16x16
    down   conv 3x3/2 16->32 + BN + ReLU6                       8x8
    block  dw 3x3 32 + BN + ReLU6, pw 1x1 32->32 + BN, + input  8x8
    head   global average pool, linear 32->10

Output: ``sample_models/mobile_net_tiny.onnx`` (input ``input`` [N,3,32,32], output ``output``,
legacy TorchScript exporter, opset 17, dynamic batch). Input convention as the LeNet:
``(pixel / 255 - 0.5) / 0.5``. Rerun with ``python scripts/make_sample2.py``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_samples as samples  # noqa: E402 - the data pipeline of the first sample model

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_EPOCHS = 20
LEARNING_RATE = 4e-3
AUG_COPIES = 7
BATCH_SIZE = 64


def conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    """Convolution (no bias) followed by batch norm; padding keeps ``k // 2``."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)
    )


class Block(nn.Module):
    """Depthwise 3x3 + ReLU6, pointwise 1x1 (linear), residual add."""

    def __init__(self, c: int) -> None:
        """Create the layers of a ``c``-channel block."""
        super().__init__()
        self.dw = conv_bn(c, c, 3, groups=c)
        self.pw = conv_bn(c, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``x + pw(relu6(dw(x)))``."""
        return x + self.pw(F.relu6(self.dw(x)))


class MobileNetTiny(nn.Module):
    """The second sample model (see the module docstring)."""

    def __init__(self) -> None:
        """Create the layers."""
        super().__init__()
        self.stem = conv_bn(3, 16, 3, 2)
        self.block1 = Block(16)
        self.down = conv_bn(16, 32, 3, 2)
        self.block2 = Block(32)
        self.fc = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits of a normalised NCHW batch."""
        x = self.block1(F.relu6(self.stem(x)))
        x = self.block2(F.relu6(self.down(x)))
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Accuracy (0..1) of ``model`` on the normalised batch ``x``."""
    model.eval()
    with torch.no_grad():
        return float((model(x).argmax(dim=1) == y).float().mean())


def train(masks: np.ndarray, images: np.ndarray, labels: np.ndarray, epochs: int, seed: int):  # noqa: ANN201
    """Train on the fixed train images plus ``AUG_COPIES`` recoloured copies per epoch."""
    torch.manual_seed(seed)
    aug_rng = np.random.default_rng(seed + 1)
    model = MobileNetTiny()
    optimiser = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=epochs)
    x_fixed = torch.from_numpy(samples.normalise(images))
    y_fixed = torch.from_numpy(labels.astype(np.int64))
    generator = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        x_aug = [
            torch.from_numpy(samples.normalise(samples.colourise(masks, aug_rng)))
            for _ in range(AUG_COPIES)
        ]
        x_epoch = torch.cat([x_fixed, *x_aug])
        y_epoch = y_fixed.repeat(AUG_COPIES + 1)
        order = torch.randperm(len(x_epoch), generator=generator)
        model.train()
        total = 0.0
        for start in range(0, len(order), BATCH_SIZE):
            batch = order[start : start + BATCH_SIZE]
            optimiser.zero_grad()
            loss = F.cross_entropy(model(x_epoch[batch]), y_epoch[batch])
            loss.backward()
            optimiser.step()
            total += loss.item() * len(batch)
        scheduler.step()
        print(f"epoch {epoch + 1:2d}/{epochs}: loss {total / len(order):.4f}")
    model.eval()
    return model


def export_onnx(model: nn.Module, path: Path) -> list[str]:
    """Export with the legacy TorchScript exporter (dynamic batch); return the op types."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model,
            (torch.zeros(1, 3, samples.IMAGE_SIZE, samples.IMAGE_SIZE),),
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
    return [node.op_type for node in loaded.graph.node]


def main() -> int:
    """Rebuild the digits, train, export and check the accuracy with onnxruntime."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="seed (must match make_samples.py)")
    parser.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS)
    parser.add_argument("--out", type=Path, default=REPO_ROOT, help="output root")
    args = parser.parse_args()
    started = time.perf_counter()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    torch.use_deterministic_algorithms(True)

    digits = load_digits()
    labels = digits.target.astype(np.int64)
    masks = samples.upscale_digits(digits.images)
    rng = np.random.default_rng(args.seed)
    images = samples.colourise(masks, rng)  # the same draws as make_samples.py
    train_idx, test_idx = train_test_split(
        np.arange(len(labels)), test_size=samples.NUM_TEST, stratify=labels, random_state=args.seed
    )
    model = train(masks[train_idx], images[train_idx], labels[train_idx], args.epochs, args.seed)
    x_test = torch.from_numpy(samples.normalise(images[test_idx]))
    torch_acc = evaluate(model, x_test, torch.from_numpy(labels[test_idx]))

    path = args.out / "sample_models" / "mobile_net_tiny.onnx"
    ops = export_onnx(model, path)
    accuracy, count = samples.onnx_accuracy(path, REPO_ROOT / "sample_images" / "test")
    print(f"exported {path} ({path.stat().st_size} bytes): {' '.join(ops)}")
    print(f"runtime: {time.perf_counter() - started:.1f} s")
    print(f"test accuracy (torch): {100.0 * torch_acc:.2f} %")
    print(f"test accuracy (onnxruntime, PNGs): {100.0 * accuracy:.2f} % on {count} images")
    return 0 if accuracy >= 0.9 else 1


if __name__ == "__main__":
    raise SystemExit(main())
