"""The AutoTiler model's ``.tensor`` files: each constant's values, little-endian, in its C type."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nnshell.codegen.autotiler.common import Kernel
from nnshell.codegen.csafe import c_ident


def tensor_files(kernels: list[Kernel], tdir: Path) -> dict[Path, bytes]:
    """``{tdir/<name>.tensor: bytes}`` for every constant of every kernel, in CreateGraph order."""
    files: dict[Path, bytes] = {}
    for k in kernels:
        for c in k.consts:
            data = np.ascontiguousarray(c.data, dtype=np.dtype(c.ctype).newbyteorder("<"))
            files[tdir / f"{c_ident(c.name)}.tensor"] = data.tobytes()
    return files
