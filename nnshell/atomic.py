"""Atomic file writes: a temporary file in the target folder, then ``os.replace``.

An interrupted or failing write never leaves a half-written file where a good one was.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping

import numpy as np

from nnshell.errors import NnshellError


def atomic_write_npz(path: str, arrays: Mapping[str, np.ndarray]) -> None:
    """Write ``arrays`` as an uncompressed .npz at ``path`` atomically."""
    folder = os.path.dirname(os.path.abspath(path)) or "."
    if not os.path.isdir(folder):
        raise NnshellError(f"cannot write '{path}': folder '{folder}' does not exist")
    fd, tmp = tempfile.mkstemp(prefix=".nnshell-", suffix=".npz", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **dict(arrays))
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
