#!/usr/bin/env python3
"""Write the TFLite test models of issue 19 (the TFLite importer) with TensorFlow's converter.

Run it with a TensorFlow interpreter, never the product's (TensorFlow is far too heavy to be a
dependency of nnshell; only the files it writes are committed)::

    python -m venv /work/venv-tf && /work/venv-tf/bin/pip install tensorflow-cpu==2.18.1 onnx pillow
    /work/venv-tf/bin/python scripts/make_tflite_samples.py

Why these models: the two LeNets reuse the trained weights of ``sample_models/cifar_net.onnx``
and ``sample_models/lenet_bw.onnx`` (read from the ONNX initializers, kernels moved to HWIO and
the first dense layer's rows reordered for TensorFlow's NHWC flatten), so the TFLite and ONNX
imports of the same network can be compared image by image. Each is written float, int8 PTQ
(calibrated on the repository's calibration images, float input/output so QUANTIZE and
DEQUANTIZE appear) and fully-int8 (int8 input/output); the CIFAR LeNet also as 16x8, with uint8
input/output (int8 inside: all TF 2's post-training converter still writes) and as a legacy
fully-uint8 model (TF1 fake-quant graph, uint8 inference). The other models are small
random-weight graphs, one per operator group, so every supported operator is checked against the
interpreter.

Outputs (``tests/data/tflite/``): every file stays well under 300 KB.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import tensorflow as tf  # noqa: E402
from onnx import numpy_helper  # noqa: E402
from PIL import Image  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "data" / "tflite"
RNG = np.random.default_rng(19)


def _onnx_weights(path: Path) -> dict[str, np.ndarray]:
    model = onnx.load(str(path))
    return {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}


def _images(folder: str, gray: bool, norm: float, offset: float) -> np.ndarray:
    """Calibration images as an NHWC float batch, normalised as the model was trained."""
    files = sorted((ROOT / "sample_images" / folder).glob("*.png"))
    out = []
    for f in files:
        img = Image.open(f).convert("L" if gray else "RGB")
        a = np.asarray(img, dtype=np.float32)
        out.append(a[..., None] if gray else a)
    return np.stack(out) / norm - offset


def _lenet(
    weights: dict[str, np.ndarray], shape: tuple[int, int, int], fcs: list[str]
) -> tf.keras.Model:
    """The sample LeNet in Keras (NHWC) with the ONNX model's weights."""
    layers = tf.keras.layers
    inp = tf.keras.Input(shape=shape, batch_size=1, name="input_1")
    x = inp
    for conv in ("conv1", "conv2"):
        w = weights[f"{conv}.weight"]
        x = layers.Conv2D(w.shape[0], w.shape[2:], name=conv)(x)
        x = layers.MaxPool2D(2)(x)
        x = layers.ReLU()(x)
    c, h, wd = w.shape[0], int(x.shape[1]), int(x.shape[2])
    x = layers.Flatten()(x)
    for k, fc in enumerate(fcs):
        units = weights[f"{fc}.weight"].shape[0]
        last = k == len(fcs) - 1
        x = layers.Dense(units, activation=None if last else "relu", name=fc)(x)
    model = tf.keras.Model(inp, x)
    for conv in ("conv1", "conv2"):
        model.get_layer(conv).set_weights(
            [weights[f"{conv}.weight"].transpose(2, 3, 1, 0), weights[f"{conv}.bias"]]
        )
    for k, fc in enumerate(fcs):
        w = weights[f"{fc}.weight"]
        if k == 0:  # ONNX flattens C,H,W; Keras flattens H,W,C
            w = w.reshape(-1, c, h, wd).transpose(0, 2, 3, 1).reshape(w.shape[0], -1)
        model.get_layer(fc).set_weights([w.T, weights[f"{fc}.bias"]])
    return model


def _convert(
    model: tf.keras.Model,
    calib: np.ndarray | None = None,
    mode: str = "float",
) -> bytes:
    """Convert with TFLite's converter: float, int8 (float io), int8io, 16x8 or uint8."""
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if mode != "float":
        assert calib is not None

        def rep():
            for x in calib[:128]:
                yield [x[None].astype(np.float32)]

        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = rep
        if mode == "16x8":
            conv.target_spec.supported_ops = [
                tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
            ]
        else:
            conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if mode == "int8io":
            conv.inference_input_type = tf.int8
            conv.inference_output_type = tf.int8
        if mode == "uint8":
            conv.inference_input_type = tf.uint8
            conv.inference_output_type = tf.uint8
    return conv.convert()


_ONLY: list[str | None] = [None]


def _write(name: str, blob: bytes) -> None:
    if _ONLY[0] is not None and not name.startswith(_ONLY[0]):
        return
    path = OUT / name
    path.write_bytes(blob)
    print(f"{path.relative_to(ROOT)}: {len(blob):,} bytes")
    assert len(blob) < 300_000, name


def _uint8_legacy(model: tf.keras.Model, calib: np.ndarray) -> bytes:
    """The LeNet as a legacy fully-uint8 model: TF1 graph with fake-quant nodes, uint8 inference.

    TF 2's post-training converter no longer writes uint8 internals (its ``uint8`` mode only
    changes the interface), but the TF1 quantization-aware path still does: every tensor gets a
    ``FakeQuantWithMinMaxArgs`` with the range measured on the calibration images (weights per
    tensor, asymmetric, as legacy uint8 files are), and the converter runs with
    ``inference_type = uint8``. ReLU is moved before the max pool (they commute) so it fuses into
    the conv and the conv output carries the pooled tensor's range, as the old toolchain did.
    """
    g = tf.Graph()
    ranges: dict[str, tuple[float, float]] = {}
    x = calib.astype(np.float32)
    names = [layer.name for layer in model.layers if layer.get_weights()]
    weights = {n: model.get_layer(n).get_weights() for n in names}
    for layer in model.layers[1:]:
        x = layer(x).numpy()
        if layer.name in names:
            act = np.maximum(x, 0) if layer.name != names[-1] else x
            ranges[layer.name] = (min(0.0, float(act.min())), max(0.0, float(act.max())))

    def fq(t, lo: float, hi: float, name: str | None = None):
        return tf.quantization.fake_quant_with_min_max_args(t, lo, hi, name=name)

    def fq_w(w: np.ndarray):
        return fq(tf.constant(w), min(0.0, float(w.min())), max(0.0, float(w.max())))

    with g.as_default():
        inp = tf.compat.v1.placeholder(tf.float32, (1, *calib.shape[1:]), name="input_1")
        h = fq(inp, -1.0, 1.0)
        for conv in names[:2]:
            w, b = weights[conv]
            h = tf.nn.conv2d(h, fq_w(w), 1, "VALID") + tf.constant(b)
            h = fq(tf.nn.relu(h), *ranges[conv])
            h = tf.nn.max_pool2d(h, 2, 2, "VALID")
        h = tf.reshape(h, (1, -1))
        for fc in names[2:]:
            w, b = weights[fc]
            h = tf.matmul(h, fq_w(w)) + tf.constant(b)
            last = fc == names[-1]
            h = fq(h if last else tf.nn.relu(h), *ranges[fc], name="logits" if last else None)
        with tf.compat.v1.Session(graph=g) as sess:
            conv = tf.compat.v1.lite.TFLiteConverter.from_session(sess, [inp], [h])
            conv.inference_type = tf.uint8
            conv.quantized_input_stats = {"input_1": (127.5, 127.5)}  # real = (q - 127.5)/127.5
            return conv.convert()


def _conv(x, cout: int, k: int, stride: int = 1, padding: str = "SAME", act=None):
    """A conv with constant random weights (folded by the converter into CONV_2D)."""
    w = tf.constant(RNG.normal(0, 0.4, (k, k, int(x.shape[-1]), cout)).astype(np.float32))
    b = tf.constant(RNG.normal(0, 0.1, (cout,)).astype(np.float32))
    y = tf.nn.conv2d(x, w, stride, padding) + b
    return act(y) if act is not None else y


def _dwconv(x, k: int, stride: int = 1, padding: str = "SAME", mult: int = 1, act=None):
    w = tf.constant(RNG.normal(0, 0.4, (k, k, int(x.shape[-1]), mult)).astype(np.float32))
    b = tf.constant(RNG.normal(0, 0.1, (int(x.shape[-1]) * mult,)).astype(np.float32))
    y = tf.nn.depthwise_conv2d(x, w, [1, stride, stride, 1], padding) + b
    return act(y) if act is not None else y


def _hswish(x):
    return x * tf.nn.relu6(x + 3.0) / 6.0


def _mobile_block_fn(x):
    """A MobileNet-style block: conv s2 + relu6, depthwise + relu6, 1x1 conv, residual add,
    depthwise s2 with multiplier 2, hard-swish, global mean, dense, softmax."""
    x = _conv(x, 8, 3, 2, act=tf.nn.relu6)
    y = _dwconv(x, 3, act=tf.nn.relu6)
    y = _conv(y, 8, 1)
    x = tf.nn.relu6(x + y)
    x = _dwconv(x, 3, 2, "VALID", mult=2)
    x = _hswish(x)
    x = tf.reduce_mean(x, axis=[1, 2])
    w = tf.constant(RNG.normal(0, 0.3, (16, 5)).astype(np.float32))
    x = tf.matmul(x, w) + tf.constant(RNG.normal(0, 0.1, (5,)).astype(np.float32))
    return tf.nn.softmax(x)


def _dw_block_fn(x):
    """Depthwise-separable layers with the activations SQ8 fuses (so ``-q`` runs end to end):
    conv s2 + relu6, depthwise + relu6, pointwise + relu, global mean, dense."""
    x = _conv(x, 8, 3, 2, act=tf.nn.relu6)
    x = _dwconv(x, 3, act=tf.nn.relu6)
    x = _conv(x, 12, 1, act=tf.nn.relu)
    x = _dwconv(x, 3, 2, "VALID", mult=2, act=tf.nn.relu6)
    x = tf.reduce_mean(x, axis=[1, 2])
    w = tf.constant(RNG.normal(0, 0.3, (24, 5)).astype(np.float32))
    return tf.matmul(x, w) + tf.constant(RNG.normal(0, 0.1, (5,)).astype(np.float32))


def _const(*shape: int) -> np.ndarray:
    return RNG.uniform(-1, 1, shape).astype(np.float32)


def _shapes_fn(x):
    """PAD, RESHAPE, TRANSPOSE, STRIDED_SLICE, CONCATENATION, SPLIT, SQUEEZE, EXPAND_DIMS."""
    x = _conv(x, 4, 3)
    x = tf.pad(x, [[0, 0], [1, 2], [2, 1], [0, 0]])  # 11x12x4
    a, b = tf.split(x, 2, axis=3)
    c = tf.concat([b, a, b], axis=3)  # 11x12x6
    c = c[:, 1:9:2, ::2, 1:5]  # 4x6x4
    t = tf.transpose(c, [0, 2, 1, 3])  # 6x4x4
    r = tf.reshape(t, [1, 24, 4])
    r = tf.expand_dims(r, 2)  # 1,24,1,4
    s = tf.squeeze(r, 2)
    return tf.nn.relu(s)


def _elementwise_fn(x):
    """ADD, SUB, MUL with constants and between activations, fused activations."""
    a = _conv(x, 4, 3)
    b = _conv(x, 4, 1)
    y = tf.nn.relu(a + b)
    z = tf.nn.relu6((a - b) * _const(4))
    w = (y * z) + _const(1, 1, 4)
    w = w - 0.5
    return tf.concat([w, y], axis=-1)


def _activations_fn(x):
    """LOGISTIC, TANH, RELU, RELU6, RELU_N1_TO_1, LEAKY_RELU, HARD_SWISH, SOFTMAX."""
    a = _conv(x, 6, 3)
    parts = [
        tf.sigmoid(a),
        tf.tanh(a),
        tf.nn.relu(a),
        tf.nn.relu6(a),
        tf.clip_by_value(a, -1.0, 1.0),
        tf.nn.leaky_relu(a, 0.1),
        _hswish(a),
    ]
    y = tf.concat(parts, axis=-1)
    y = tf.reshape(y, [1, -1, 42])
    return tf.nn.softmax(y, axis=-1)


def _pool_resize_fn(x):
    """AVERAGE_POOL_2D, MAX_POOL_2D (same/valid), MEAN, RESIZE_NEAREST_NEIGHBOR, RESIZE_BILINEAR."""
    a = _conv(x, 4, 3)
    p = tf.nn.avg_pool2d(a, 2, 2, "VALID")  # 6x6
    q = tf.nn.max_pool2d(a, 3, 2, "SAME")  # 6x6
    r = tf.image.resize(p, [12, 12], method="nearest")
    s = tf.image.resize(q, [9, 9], method="bilinear")
    m = tf.reduce_mean(s, axis=[1, 2], keepdims=True)
    u = tf.image.resize(r + tf.image.resize(s, [12, 12], method="bilinear"), [6, 6])
    return u * m


def _convert_fn(fn, shape: tuple[int, ...], calib: np.ndarray | None = None) -> bytes:
    """Convert a function of one NHWC input (constants as weights): float or int8 PTQ."""
    module = tf.Module()
    module.f = tf.function(fn, input_signature=[tf.TensorSpec((1, *shape), tf.float32, "input_1")])
    concrete = module.f.get_concrete_function()
    conv = tf.lite.TFLiteConverter.from_concrete_functions([concrete], module)
    if calib is not None:

        def rep():
            for x in calib:
                yield [x[None]]

        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = rep
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return conv.convert()


def main() -> None:
    """Write every model (with an argument: only the files whose name starts with it)."""
    OUT.mkdir(parents=True, exist_ok=True)
    tf.keras.utils.set_random_seed(19)

    cifar = _lenet(
        _onnx_weights(ROOT / "sample_models" / "cifar_net.onnx"), (32, 32, 3), ["fc1", "fc2", "fc3"]
    )
    calib = _images("calib", gray=False, norm=127.5, offset=1.0)
    _write("cifar_net.tflite", _convert(cifar))
    _write("cifar_net_int8.tflite", _convert(cifar, calib, "int8"))
    _write("cifar_net_int8io.tflite", _convert(cifar, calib, "int8io"))
    _write("cifar_net_16x8.tflite", _convert(cifar, calib, "16x8"))
    _write("cifar_net_uint8.tflite", _convert(cifar, calib, "uint8"))
    _write("cifar_net_uint8_legacy.tflite", _uint8_legacy(cifar, calib))

    bw = _lenet(
        _onnx_weights(ROOT / "sample_models" / "lenet_bw.onnx"), (28, 28, 1), ["fc1", "fc2"]
    )
    bw_calib = _images("bw_calib", gray=True, norm=128.0, offset=1.0)
    _write("lenet_bw.tflite", _convert(bw))
    _write("lenet_bw_int8.tflite", _convert(bw, bw_calib, "int8"))

    small = {
        "mobile_block": (_mobile_block_fn, (16, 16, 3)),
        "dw_block": (_dw_block_fn, (16, 16, 3)),
        "ops_shapes": (_shapes_fn, (8, 8, 4)),
        "ops_elementwise": (_elementwise_fn, (8, 8, 3)),
        "ops_activations": (_activations_fn, (6, 6, 3)),
        "ops_pool_resize": (_pool_resize_fn, (12, 12, 3)),
    }
    for name, (fn, shape) in small.items():
        data = RNG.uniform(-1, 1, (64, *shape)).astype(np.float32)
        state = RNG.bit_generator.state
        _write(f"{name}.tflite", _convert_fn(fn, shape))
        RNG.bit_generator.state = state  # the same weights in the int8 model
        _write(f"{name}_int8.tflite", _convert_fn(fn, shape, data))


if __name__ == "__main__":
    import sys

    _ONLY[0] = sys.argv[1] if len(sys.argv) > 1 else None
    main()
