"""nnshell: an interactive shell that takes a float ONNX CNN to an int8 microcontroller model.

The library API is the :class:`nnshell.session.Session` class; the shell is a thin layer on it.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
