"""Typed errors of the nnshell library.

Every error a user can cause is an :class:`NnshellError`. Its message is one line that names the
thing at fault (node, file, option) and, where one exists, the command that fixes it. The shell
prints ``error: <message>`` and never a traceback unless debugging is on.
"""

from __future__ import annotations


class NnshellError(Exception):
    """Base class of every error a user can cause; the message is one actionable line."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        text = f"{self.message} [hint: {self.hint}]" if self.hint else self.message
        # one line whatever a file put in a name: control characters are shown escaped
        return text.replace("\r", "\\r").replace("\n", "\\n")


class UsageError(NnshellError):
    """A command line that does not parse (wrong option, missing argument)."""


class ModelFileError(NnshellError):
    """A model or state file that is missing, unreadable or not what it claims to be."""


class UnsupportedOpError(NnshellError):
    """One or more operators that nnshell cannot import; the message lists all of them."""


class ShapeError(NnshellError):
    """A tensor shape that is dynamic, inconsistent or outside what a kernel supports."""


class GraphStateError(NnshellError):
    """A command run out of order (no graph open, not quantized, ...)."""


class ImageError(NnshellError):
    """An input image that cannot be read or does not fit the model input."""


class ExpressionError(NnshellError):
    """A normalisation expression that is not plain arithmetic on ``x``."""


class SelectorError(NnshellError):
    """A node selector that matches nothing or does not parse."""


class SettingError(NnshellError):
    """An unknown setting name or a value of the wrong type."""


class QuantizationError(NnshellError):
    """A value the 8-bit scheme cannot represent (bias beyond int32, multiplier >= 256, ...)."""


class CodegenError(NnshellError):
    """A graph (or a node) that code generation cannot express, or a C build that failed."""
