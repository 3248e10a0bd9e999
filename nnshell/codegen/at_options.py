"""Where ``nodeoption`` settings reach the AutoTiler model file (as NNTool writes them).

* Generator controls of a layer (``PARALLELFEATURES 0``) join the controls nnshell already sets
  for that generator call: a ``CNN_GenControl_T gen_ctrl_<kernel>`` block with one
  ``CNN_SetGenCtrl(..., "PARALLELFEATURES", AT_OPT_VAL(0))`` line each, passed instead of ``0``.
  A value the user gave replaces nnshell's own for the same key.
* ``ALLOCATE 1`` on a graph input or output makes its CreateGraph argument
  ``ARG_SCOPE_ARG_ALLOC`` (the AutoTiler allocates it) instead of ``ARG_SCOPE_ARG``.
* ``OUT_HOME_MEM_LOC`` / ``OUT_EXEC_MEM_LOC`` on a layer set the home / execution memory of the
  layer's output in the graph's locals.

Values were validated by :mod:`nnshell.codegen.node_options` (integers, ``AT_MEM_*`` names);
they are written through :mod:`nnshell.codegen.csafe` by the emitter all the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nnshell.codegen.node_options import GEN_CTRL, NOT_EMITTED, options_of
from nnshell.ir import Graph, Node


def apply_gen_ctrl(graph: Graph, kernels: Sequence[Any]) -> None:
    """Put each kernel's node options that are generator controls into ``k.gen_ctrl``.

    NNTool's order: the user's options first (in the order they were set), then the controls
    the generator adds itself (``PADTYPE``, ``ENABLEIM2COL``) unless the user set the same key.
    """
    for k in kernels:
        mine: list[tuple[str, str]] = []
        for key, val in options_of(graph, "node", k.node.name).items():
            if key in GEN_CTRL and key not in NOT_EMITTED and isinstance(val, int):
                mine.append((key, f"AT_OPT_VAL({int(val)})"))
        keys = {key for key, _ in mine}
        k.gen_ctrl = mine + [(a, b) for a, b in k.gen_ctrl if a not in keys]


def arg_scope(graph: Graph, kind: str, tensor: str) -> str:
    """``ARG_SCOPE_ARG_ALLOC`` for an input/output with ``ALLOCATE 1``, else ``ARG_SCOPE_ARG``."""
    return (
        "ARG_SCOPE_ARG_ALLOC"
        if options_of(graph, kind, tensor).get("ALLOCATE")
        else "ARG_SCOPE_ARG"
    )


def out_locations(graph: Graph, node: Node, default: str) -> tuple[str, str]:
    """(home, exec) memory of ``node``'s output among the locals."""
    opts = options_of(graph, "node", node.name)
    return str(opts.get("OUT_HOME_MEM_LOC", default)), str(opts.get("OUT_EXEC_MEM_LOC", default))
