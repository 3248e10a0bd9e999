"""Graph executors (float reference now; the integer executor joins later)."""

from nnshell.exec.float_exec import Observer, run_float

__all__ = ["Observer", "run_float"]
