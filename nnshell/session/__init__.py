"""The Session, nnshell's one mutable object and its Python API (``core``), with its parts:
the analysis commands (``analysis``), fquant / qtune (``tuning``) and graph edits (``edits``)."""

from nnshell.session.core import AquantOutcome, FormatterOutcome, FusionOutcome, Session

__all__ = ["AquantOutcome", "FormatterOutcome", "FusionOutcome", "Session"]
