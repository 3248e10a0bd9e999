"""The fused-activation protocol: how an activation runs at the end of a fused layer.

An activation is described **once**, on its own op class: which intermediate format the fused
head must produce for it, its integer kernel on the head's codes, the C row of that kernel
(``nn_act_t`` / ``nn_p2act_t``), its AutoTiler ``KOP_*`` code and a sentence for ``qexplain``.
Every consumer (the fusion passes, :class:`~nnshell.ops.fused.Fused`, the C context, the
AutoTiler mapping, ``qexplain``) looks those hooks up here instead of testing op names, so an
activation is fusable in a scheme **iff** its class overrides that scheme's hooks, and the
fusion passes cannot build a layer that ``aquant`` of the same scheme would refuse.

Two families (docs/activations.md):

* **scale-preserving** (ReLU, Clip / ReLU6, LeakyReLU): the head requantizes straight to the
  fused output's qtype / Q and the activation works on those codes (``*_mid`` returns None);
* **function** activations (Sigmoid, Tanh, HardSigmoid, HardSwish, Swish): the head requantizes
  to an intermediate qtype / Q fixed by the function's own interesting input range (its
  saturation points, or the output range for the unbounded side), then the activation maps
  intermediate codes to output codes — in SQ8 with a 256-entry table, in POW2 with integer
  arithmetic (the integer exp of :func:`~nnshell.quant.fixed_pow2.exp_neg_q15`).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from nnshell.errors import QuantizationError
from nnshell.ir import Node
from nnshell.quant.fixed_point import QType

SQ8 = "SQ8"
POW2 = "POW2"

#: The fields of one C activation row beyond the kind: ``nn_act_t`` (lo, hi, alpha, table) and
#: ``nn_p2act_t`` (lo, hi, alpha, beta). Rows are padded to full length (-Wextra).
SQ8_ROW_LEN = 5
POW2_ROW_LEN = 5


def act_node(op: str, attrs: Any) -> Node:
    """A stand-alone node for an activation part (its float kernel needs one)."""
    return Node("_", op, ["_"], ["_"], attrs)


class FusedAct:
    """Mixin of an activation op class; the default hooks say "not fusable".

    Subclasses override the SQ8 trio (``fused_sq8_mid`` optional, ``fused_sq8_int``,
    ``fused_sq8_row``) and / or the POW2 trio to become fusable in that scheme.
    """

    #: The AutoTiler activation operator, or None (the AutoTiler mapping refuses the node).
    at_kop: ClassVar[str | None] = None
    #: Non-decreasing: a max pool commutes with it (the conv may pool its accumulator first).
    monotonic: ClassVar[bool] = True

    # -- SQ8 -----------------------------------------------------------------------------------
    def fused_sq8_mid(self, attrs: Any, out_q: QType, asym: bool = False) -> QType | None:
        """The qtype the head must produce for this activation; None: the output's own.
        ``asym``: the head can produce codes with a zero point (a conv or linear head)."""
        return None

    def fused_sq8_int(
        self, attrs: Any, y: np.ndarray, in_q: QType, out_q: QType, name: str
    ) -> np.ndarray:
        """int8 codes at ``in_q`` (the head's output) to codes at ``out_q`` (int64)."""
        raise QuantizationError(f"{name}: this activation has no fused SQ8 kernel")

    def fused_sq8_row(self, attrs: Any, in_q: QType, out_q: QType, ctx: Any) -> list[Any]:
        """The ``nn_act_t`` row ``[kind, lo, hi, alpha, table]`` of the same kernel."""
        raise NotImplementedError

    # -- POW2 ----------------------------------------------------------------------------------
    def fused_pow2_mid(self, attrs: Any, q_out: int, bits: int) -> int | None:
        """The Q the head must produce for this activation; None: the output's own."""
        return None

    def fused_pow2_int(
        self, attrs: Any, y: np.ndarray, q_in: int, q_out: int, bits: int, name: str
    ) -> np.ndarray:
        """Codes at ``q_in`` to codes at ``q_out`` (int64, before the container clip)."""
        raise QuantizationError(f"{name}: this activation has no fused POW2 kernel")

    def fused_pow2_row(self, attrs: Any, q_in: int, q_out: int, bits: int) -> list[Any]:
        """The ``nn_p2act_t`` row ``[kind, lo, hi, alpha, beta]`` of the same kernel."""
        raise NotImplementedError

    # -- reports -------------------------------------------------------------------------------
    def fused_explain(self, attrs: Any, scheme: str) -> str:
        """One sentence for ``qexplain``: the integer form of the activation in ``scheme``."""
        return "activation"


def _overrides(op: Any, method: str) -> bool:
    return getattr(type(op), method, None) is not getattr(FusedAct, method)


def fused_act(op_name: str, scheme: str) -> FusedAct | None:
    """The op class instance of ``op_name`` when it is fusable in ``scheme``, else None."""
    from nnshell.ops.registry import all_ops

    op = all_ops().get(op_name)
    if not isinstance(op, FusedAct):
        return None
    hooks = {SQ8: ("fused_sq8_int", "fused_sq8_row"), POW2: ("fused_pow2_int", "fused_pow2_row")}
    return op if all(_overrides(op, h) for h in hooks[scheme]) else None


def is_activation(op_name: str) -> bool:
    """Whether ``op_name`` is an activation described by this protocol (fusable or not)."""
    from nnshell.ops.registry import all_ops

    return isinstance(all_ops().get(op_name), FusedAct)


def fusable_activations(scheme: str) -> frozenset[str]:
    """The op names fusable in ``scheme``: exactly those with that scheme's fused hooks."""
    from nnshell.ops.registry import all_ops

    return frozenset(n for n in all_ops() if fused_act(n, scheme) is not None)


def require(op_name: str, scheme: str, layer: str) -> FusedAct:
    """The fused activation ``op_name`` in ``scheme``, or a QuantizationError naming the layer."""
    act = fused_act(op_name, scheme)
    if act is None:
        raise QuantizationError(
            f"{layer}: {op_name} inside a fused layer has no {scheme} kernel",
            "fuse only what `fusions` builds for this scheme",
        )
    return act


def pad_row(row: list[Any], length: int, fill: Any) -> list[Any]:
    """A C struct row padded to all its fields (gcc -Wextra warns on missing initializers)."""
    return [*row, *([fill] * (length - len(row)))]
