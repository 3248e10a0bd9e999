"""The intermediate representation (no ONNX, shell or rendering imports here)."""

from nnshell.ir.graph import Graph, Node, Shape, TensorInfo, c_safe_name

__all__ = ["Graph", "Node", "Shape", "TensorInfo", "c_safe_name"]
