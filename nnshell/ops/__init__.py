"""Operator registry: importing this package registers every op module."""

from nnshell.ops import (  # noqa: F401 - registration
    activation,
    conv,
    conv_transpose,
    convert,
    elementwise,
    expression,
    fused,
    gemm,
    global_pool,
    linear,
    norm,
    pad,
    pool,
    reduce,
    relu,
    reshape,
    resize,
    shape_ops,
    softmax,
    unary,
)
from nnshell.ops.registry import (
    NoAttrs,
    OpDef,
    all_ops,
    get_op,
    op_for_onnx,
    register,
    supported_onnx_types,
)

__all__ = [
    "NoAttrs",
    "OpDef",
    "all_ops",
    "get_op",
    "op_for_onnx",
    "register",
    "supported_onnx_types",
]
