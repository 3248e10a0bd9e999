"""Graph passes and the ordered pass lists of the two fusion schemes.

``run_scheme`` applies a scheme's list in order and re-runs it until nothing changes (a fold can
expose a new fusion), so the result does not depend on how the graph was exported.
"""

from __future__ import annotations

from nnshell.errors import UsageError
from nnshell.ir import Graph
from nnshell.passes import (  # noqa: F401 - registration
    const_last,
    div_to_mul,
    expression,
    fold_batchnorm,
    fold_const_bias,
    fold_pad,
    fuse,
    hardsigmoid,
    hardswish,
    move_up,
    remove_noops,
    sum_to_add,
    swish,
    to_linear,
)
from nnshell.passes._edit import reinfer
from nnshell.passes.base import PASSES, FusionRecord, PassDef, PassResult, register_pass

_COMMON = [
    "remove_noops",
    "sum_to_add",
    "const_last",  # pattern normalisation (issue 17): before the folds and fusions
    "minmax_to_clip",
    "div_to_mul",
    "hardswish",
    "hardsigmoid",
    "swish",
    "fold_batchnorm",
    "fold_pad",
    "to_linear",
    "fold_const_bias",
    "normalise_hardsigmoid",  # after the folds: it needs the conv right before the HardSigmoid
    "move_activations_up",
]
SCHEMES: dict[str, list[str]] = {
    "scale8": [*_COMMON, "fuse_conv", "fuse_linear", "fuse_pool", "fuse_add"],
    "pow2": [*_COMMON, "fuse_conv_pow2", "fuse_linear_pow2", "fuse_pool_pow2", "fuse_add_pow2"],
}
MAX_ROUNDS = 10


def get_pass(name: str) -> PassDef:
    """Return a registered pass; an unknown name lists the close ones."""
    if name in PASSES:
        return PASSES[name]
    import difflib

    close = difflib.get_close_matches(name, list(PASSES), n=3)
    hint = f"did you mean {', '.join(close)}?" if close else "fusions -l lists the passes"
    raise UsageError(f"unknown pass '{name}'", hint)


def run_passes(graph: Graph, names: list[str], until_stable: bool = True) -> PassResult:
    """Apply passes in order (repeating the list until nothing changes); return the summary."""
    passes = [get_pass(n) for n in names]
    total = PassResult()
    for _ in range(MAX_ROUNDS if until_stable else 1):
        round_result = PassResult()
        for p in passes:
            r = p.fn(graph)
            if r.changed:
                reinfer(graph)
            round_result.merge(r)
        total.merge(round_result)
        if not round_result.changed:
            break
    return total


def run_scheme(graph: Graph, scheme: str) -> PassResult:
    """Apply the ordered pass list of ``scale8`` or ``pow2``."""
    return run_passes(graph, SCHEMES[scheme])


__all__ = [
    "PASSES",
    "SCHEMES",
    "FusionRecord",
    "PassDef",
    "PassResult",
    "get_pass",
    "register_pass",
    "run_passes",
    "run_scheme",
]
