"""Calibration and analysis data for graphs with several inputs.

NNTool's convention for ``.npy`` samples: ``aquant a.npy b.npy c.npy d.npy`` on a graph with
four inputs is ONE sample, the files in graph input order; more samples follow in the same
order (files ``k*N .. k*N+N-1`` are sample ``k``). nnshell also takes N folders, one per
input, whose sorted files pair up by position. Each file is read and normalised as a
single-input file is (``-F`` / ``--nptype`` checks the stored dtype; the input options apply
to every input). A multi-input batch is a ``{input name: array}`` mapping; a single-input graph
keeps plain arrays, so every other reader is unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from nnshell.errors import UsageError
from nnshell.ir import Graph

Batch = np.ndarray | Mapping[str, np.ndarray]


def feeds_of(graph: Graph, batch: Batch) -> dict[str, np.ndarray]:
    """The executor feeds of one batch (plain arrays go to the only input)."""
    if isinstance(batch, Mapping):
        return dict(batch)
    return {graph.inputs[0]: batch}


def first_input(graph: Graph, batch: Batch) -> np.ndarray:
    """The first graph input's array of a batch (probes, progress sizes)."""
    return batch[graph.inputs[0]] if isinstance(batch, Mapping) else batch


def per_input_files(graph: Graph, files: Sequence[str]) -> list[list[str]]:
    """Files of each graph input, in input order (module docstring)."""
    from nnshell.input.images import expand_files

    n = len(graph.inputs)
    if len(files) == n and all(os.path.isdir(os.path.expanduser(f)) for f in files):
        lists = [expand_files([f]) for f in files]
        if len({len(x) for x in lists}) != 1:
            counts = ", ".join(str(len(x)) for x in lists)
            raise UsageError(
                f"the {n} input folders hold different numbers of files ({counts})",
                "give each graph input a folder with one file per sample",
            )
        return lists
    paths = expand_files(files)
    if len(paths) % n:
        raise UsageError(
            f"the graph has {n} inputs ({', '.join(graph.inputs)}) but {len(paths)} file(s) "
            "were given",
            f"give {n} .npy files per sample, in input order (or {n} folders, one per input)",
        )
    return [paths[i::n] for i in range(n)]


def input_batches(
    graph: Graph, files: Sequence[str], opts: Any, batch_size: int, cache: Any = None
) -> tuple[list[str], Iterator[tuple[list[str], Batch]]]:
    """(sample names, iterator of ``(sample names, batch)``) for ``files``: the paths of a
    single-input graph; ``a.npy+b.npy`` (the files of one sample) with several inputs."""
    from nnshell.input.images import expand_files, iter_batches

    if len(graph.inputs) == 1:
        paths = expand_files(files)
        expected = graph.tensors[graph.inputs[0]].dims
        return paths, iter_batches(paths, opts, expected, batch_size, cache=cache)
    lists = per_input_files(graph, files)
    its = [
        iter_batches(lst, opts, graph.tensors[name].dims, batch_size, cache=cache)
        for name, lst in zip(graph.inputs, lists, strict=True)
    ]

    samples = ["+".join(os.path.basename(p) for p in group) for group in zip(*lists, strict=True)]

    def gen() -> Iterator[tuple[list[str], Batch]]:
        done = 0
        for parts in zip(*its, strict=True):
            n = len(parts[0][0])
            yield (
                samples[done : done + n],
                {name: b for name, (_, b) in zip(graph.inputs, parts, strict=True)},
            )
            done += n

    return samples, gen()
