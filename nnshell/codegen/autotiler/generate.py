"""``generate_autotiler``: plan, render every file, then write them as one atomic set."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nnshell.atomic import atomic_write_files, os_error_text
from nnshell.codegen.autotiler.common import AutoTilerError
from nnshell.codegen.autotiler.emitter import _Emitter
from nnshell.codegen.autotiler.header import header as header_text
from nnshell.codegen.autotiler.model_file import model_c
from nnshell.codegen.autotiler.tensors import tensor_files
from nnshell.codegen.checks import check_8bit_multipliers, check_shapes
from nnshell.codegen.csafe import plain_file_name
from nnshell.errors import CodegenError, GraphStateError, ModelFileError
from nnshell.ir import Graph
from nnshell.quant.scheme import POW2, SQ8


def generate_autotiler(
    graph: Graph,
    qstate: Any,
    settings: Mapping[str, Any],
    model_dir: str | os.PathLike[str],
    model_file: str | None,
    tensor_dir: str | os.PathLike[str],
    header: str | None,
    write_tensors: bool = True,
) -> list[Path]:
    """Write the AutoTiler model C file, one ``.tensor`` per constant and the header.

    ``model_file`` defaults to ``<G>Model.c`` and ``header`` to ``model.h`` (both inside
    ``model_dir``); a relative ``tensor_dir`` is inside ``model_dir``. Returns the written paths
    (model file, header, then the tensor files in CreateGraph order).
    """
    if qstate is None:
        raise GraphStateError("the graph is not quantized", "aquant <calibration images>")
    scheme = getattr(qstate, "scheme", "SQ8")
    if scheme == "FLOAT":  # docs/FLOAT16.md: the fp16 AutoTiler generators are not emitted
        first = graph.nodes[0].name if graph.nodes else "?"
        raise AutoTilerError(
            f"gen --target autotiler: {first} is a {qstate.options.float_type} float layer and "
            "nnshell emits no AutoTiler float (fp16) generator yet",
            "gen --target c runs float layers (gen --verify checks them); or qtune * scaled",
        )
    if scheme not in (SQ8.name, POW2.name):
        raise AutoTilerError(
            f"gen --target autotiler writes SQ8 and POW2 models only, not {scheme} ones",
            "fusions --scale8 and aquant -s SQ8, or fusions --pow2 and aquant -s POW2",
        )
    check_shapes(graph, qstate)
    check_8bit_multipliers(qstate)
    em = _Emitter(graph, qstate, settings, str(tensor_dir))
    mdir = Path(model_dir)
    model_name = plain_file_name(model_file or f"{em.g}Model.c", "model file name")
    header_name = plain_file_name(header or "model.h", "header file name")
    if model_name == header_name:
        raise CodegenError(f"gen autotiler: the model file and the header are both '{model_name}'")
    if "\0" in str(tensor_dir) or "\0" in str(model_dir):
        raise CodegenError("gen autotiler: a folder name holds a NUL character")
    tdir = Path(tensor_dir)
    if not tdir.is_absolute():
        tdir = mdir / tdir
    for d in (mdir, tdir) if write_tensors else (mdir,):
        if d.exists() and not d.is_dir():
            raise ModelFileError(f"gen autotiler: cannot write to '{d}': it is a file")
    # everything is rendered before anything is written; then one atomic set of files
    files: dict[Path, bytes] = {
        mdir / model_name: model_c(em, f"{em.g}.h").encode(),
        mdir / header_name: header_text(em, header_name).encode(),
    }
    if write_tensors:
        files.update(tensor_files(em.kernels, tdir))
    try:
        mdir.mkdir(parents=True, exist_ok=True)
        if write_tensors:
            tdir.mkdir(parents=True, exist_ok=True)
        return atomic_write_files(files)
    except OSError as exc:
        raise ModelFileError(
            f"gen autotiler: cannot write {os_error_text(exc, mdir)}",
            "free some space or choose another folder (-M)",
        ) from None
