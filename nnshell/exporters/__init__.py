"""Exporters from the IR to other formats (only ``onnx`` here)."""
