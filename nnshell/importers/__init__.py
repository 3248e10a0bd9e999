"""Model importers (only this package imports ``onnx``)."""


def is_tflite(path: str) -> bool:
    """Whether ``path`` names a TFLite file (by extension: opening never sniffs a FIFO).

    Here rather than in the TFLite importer so that opening an ONNX file never imports it.
    """
    return str(path).lower().endswith(".tflite")
