"""Model importers (only this package imports ``onnx``)."""
