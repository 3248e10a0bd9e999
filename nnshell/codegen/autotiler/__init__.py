"""``gen --target autotiler``: the GAP AutoTiler *model* C file, its ``.tensor`` files and header.

The model file is a C program that calls the AutoTiler's SQ8 generators (GEN.md §A), or its POW2
fixed-point generators for a POW2 graph (below); it is built later against the GAP SDK, so here
it is checked for structure, not executed. Layout, in order:
includes, ``<G>Model(L1, L2, L3, L3Flash)`` (symbol dynamics, file names, memory devices from the
``l1_size``/``l2_size``/``l3_size``/``l3_flash_mb``/``l3_ram_device``/``l3_flash_device``
settings, library load, one generator call per kernel node in execution order, ``CreateGraph``
with the globals and locals, the ``AddNode`` bindings, ``CloseGraph``) and ``main``.
``AT_SetGraphCtrl`` lines come from the ``graph_*`` settings that differ from their defaults;
argument homes from the ``default_*_location`` settings. An input formatter (``imageformat``,
:mod:`nnshell.input.formatter`) makes ``Input_<i>`` the raw ``unsigned char``/``unsigned short`` HWC
pixels, adds a ``CNN_Norm`` generator ``S0_Op_Input_<i>_Formatter`` and its node writing the
local ``S0_Output_<i>`` that the first kernels read.

Names and steps are NNTool's (:mod:`nnshell.codegen.at_names`): ``<G>`` is the C-safe graph
name (``set graph_name`` overrides it); steps number every node of NNTool's graph — inputs,
constants, layers, outputs — in its depth-first topological order (the LeNet's layers are S3,
S6, S9, S12, S15) and the generators come in that order; data-moving reshapes are no kernels
(their output is the same buffer). Layers are named after what they do
(``S3_Conv2d_6x3x5x5_MaxPool_2x2_Relu``, ``S15_Linear_10x84``, ``S9_Op__fc1_Gemm_fusion`` for a
linear layer with its activation); graph inputs/outputs are ``Input_<i>``/``Output_<i>``,
intermediate activations ``S<k>_Output``, weights ``<layer>_weights`` and biases
``Constant_<initializer>`` or ``<layer>_biases`` capitalised as NNTool does
(``_conv1_conv_weights``), per-node constants ``S<k>_Mul_scale``, ``S<k>_Mul_shift`` and
``S<k>_Infos``.

Tensor files (raw little-endian, C order): weights int8 ``out_c, in_c, h, w`` (the adjusted
order), biases int32, ``Mul_scale`` uint8 (the SQ8 multiplier ``M``), ``Mul_shift`` int8 (``N``),
``Infos`` int8 (below).

Biases: the file holds the SDK's single int32 bias per channel, ``Bq + off`` (NodeQuant's
``bias_total``): the int32 bias at the accumulator scale plus the zero-point offset of SQ8 §4,
``-Zi·ΣWq + round_half_up(Zo·So/(Si·Sw))``. The input zero point is thus undone and the output
zero point pre-added inside the accumulator, so the kernel computes exactly
``act(clip8(rnorm((Σ Wq·Xq + B)·M, N)))`` — the integers of nnshell's executor.

``Infos``: ``INFOS_SIZE`` = 13 signed bytes per kernel in the layout of the GAP SDK's
``CNN_Infos_SQ8.h``, and the activation operators NNTool emits (``KOP_RELUM`` for an asymmetric
ReLU/ReLU6 output): :mod:`nnshell.codegen.at_infos`.

Header ``<model dir>/<header>`` (default ``model.h``): for the graph input and every kernel
node's output, ``<G>_<name>_OUT_SCALE/_OUT_QSCALE/_OUT_QNORM/_OUT_ZERO_POINT`` with
``So ≈ QS·2^-QN`` from :func:`nnshell.quant.fixed_point.header_qscale_qnorm` (SQ8.md §8).

POW2 (``aquant -s POW2 -f 16|8``, POW2.md; every tensor a Qm.n code, ``real = code·2^-q``): the
same layout with ``#include "CNN_Generators.h"``, ``"CNN_BasicKernels.h"`` in
``SetUsedFilesNames`` and ``LoadCNNLibrary();``, calling the GAP SDK's current POW2 generators
(those of NNTool's ``at_ver 3`` models): each call carries the Q of its tensors and the kernels
derive their normalisation shifts from them, so an ``AddNode`` binds tensors only — ``(In,
Filter, Bias, Out)`` for a conv or linear layer, ``(In, Out)`` or ``(In1, In2, Out)`` otherwise.
Data sizes are in bytes (2 for POW2-16, 1 for POW2-8; the bias in its NodeQuant container); the Qs
are ``q_of`` of the NodeQuant's tensors, ``info["q_w"]`` and ``info["q_b"]`` for the constants.
Every ``*_InL3`` flag is 1, as in NNTool's POW2 models and the SDK examples: the homes are the
ones CreateGraph declares from the ``default_*_location`` settings (constants in L3 flash by
default), like the SQ8 generators, which have no such flags; 1 lets a kernel stage an argument
from L3 through L2.

* conv (+ pool + activation fusions): ``CNN_ConvolutionPoolReLU(Name, Ctrl, In_DataSize,
  Filter_DataSize, Bias_DataSize, Out_DataSize, In_Q, Filter_Q, Bias_Q, Out_Q, In_InL3,
  Filter_InL3, Bias_InL3, Out_InL3, InFeat, OutFeat, Width, Height, ConvOper, Fcx, Fcy, Dcx, Dcy,
  Scx, Scy, ConvPad, PoolOper, Fpx, Fpy, Dpx, Dpy, Spx, Spy, PoolPad, ReLUOper)``;
  ``CNN_GroupedConvolutionPoolReLU(Name, Ctrl, GroupIn, GroupOut, ...)`` for other groups.
  ConvOper is ``KOP_CONV_DP`` (NNTool's choice too): the bias enters a 32-bit accumulator as
  ``Bias << (In_Q + Filter_Q - Bias_Q)`` and the sum is normalised once by ``In_Q + Filter_Q -
  Out_Q`` under the activation's clamp — NodeQuant's ``acc + (b << bias_shift)`` and
  ``shift_round(., out_shift)``. Plain ``KOP_CONV`` would not compute that: it copies the bias
  into the output unshifted (as if ``Bias_Q == Out_Q``) and rounds the running sum to Out_Q after
  every tile of input channels. A depthwise conv is ``KOP_CONV_DWDP``, as NNTool writes it: per
  channel, a 32-bit accumulator, bias shifted by ``In_Q + Filter_Q - Bias_Q``, one normalisation
  — the same integers;
* linear: ``CNN_LinearReLU(Name, Ctrl, In_DataSize, Filter_DataSize, Bias_DataSize,
  Out_DataSize, In_Q, Filter_Q, Bias_Q, Out_Q, In_InL3, Filter_InL3, Bias_InL3, Out_InL3, InDim,
  OutDim, KOP_LINEAR, ReLUOper)``, normalised like a conv. For both, NodeQuant's shifts must be the
  kernels': ``out_shift == In_Q + Filter_Q - Out_Q``, ``bias_shift == In_Q + Filter_Q - Bias_Q``;
* pool: ``CNN_PoolReLU(Name, Ctrl, In_DataSize, Out_DataSize, In_Q, Out_Q, In_InL3, Out_InL3,
  InFeat, OutFeat, Width, Height, PoolOper, Fpx, Fpy, Dpx, Dpy, Spx, Spy, PoolPad, ReLUOper)``
  with ``In_Q == Out_Q``: its kernels take no Q (Out_Q only scales the ReLUN bound), so a pool
  keeps its input's Q;
* global pool: ``CNN_GlobalPool(Name, Ctrl, In_DataSize, Out_DataSize, In_Q, Out_Q, In_InL3,
  Out_InL3, InFeat, OutFeat, Width, Height, KOP_GLOBAL_AVGPOOL|KOP_GLOBAL_MAXPOOL)`` with
  ``In_Q == Out_Q`` too: the max kernel takes no Q and the average one computes
  ``rnorm(trunc((Σx << Out_Q)/HW), Out_Q)``, the mean at the *input's* Q with Out_Q guard bits.
  That is nnshell's ``shift_round(trunc((Σx << 7)/HW), Qin + 7 - Qout)`` when ``Qout == Qin``
  (``out_shift`` 7): equal for a non-negative sum, a negative mean may round one LSB apart (7
  guard bits against Out_Q);
* add: ``CNN_MatAdd(Name, Ctrl, In1_DataSize, In2_DataSize, Out_DataSize, In1_Q, In2_Q, Out_Q,
  In1_InL3, In2_InL3, Out_InL3, InFeat, OutFeat, Width, Height, KOP_MATADD)`` when the three Qs are
  equal (codes added and saturated, as nnshell does), else ``CNN_MatAddDynAdjust(`` the same
  parameters ``, KOP_MATADD_DYNADJUST)``, each Q in ``[0, 8·DataSize - 1]``. Both compute the sum
  of the two inputs at Out_Q from the same Qs. nnshell aligns the inputs to ``q_common = max(In1_Q,
  In2_Q)`` by exact left shifts (NodeQuant's ``in_shifts``), adds, and moves the sum to Out_Q by
  ``shift_round(., q_common - Out_Q)`` (``out_shift``); the SDK kernel aligns the finer input down
  to ``min(In1_Q, In2_Q)`` by an arithmetic right shift, adds, and shifts the sum to Out_Q
  (truncating when it shifts right). The codes are therefore equal when ``In1_Q == In2_Q <=
  Out_Q``, otherwise the SDK's may be below nnshell's by one LSB at ``min(In1_Q, In2_Q)`` (it
  truncates where nnshell rounds half up: mobile_net_tiny's Q12 ``a`` + Q11 ``b`` into Q11 is
  ``b + floor(a/2)`` there, ``b + floor((a+1)/2)`` in nnshell);
* softmax: ``CNN_SoftMax(Name, Ctrl, In_DataSize, Out_DataSize, In_Q, Out_Q, In_InL3, Out_InL3,
  Dim, KOP_SOFTMAX)``; the kernel reads its input at In_Q and writes int16 Q15 (Out_Q 15).

ReLUOper: ``KOP_NONE``, ``KOP_RELU`` (ReLU, or a Clip(0, hi) whose bound saturates the output
container, Clip(0, inf) included) or ``KOP_RELUN`` for ReLU6: the generators clamp at ``6 <<
Out_Q`` themselves (their default ReluN is 6; no binding), and the node's comment keeps that bound.
A ReLU6 whose ``6 << Out_Q`` does not fit the container is ``KOP_RELU`` (nnshell's bound saturates
to the top code there, and the SDK rejects such a ReLUN). The globals are the weights and biases
only (no ``Mul_scale``/``Mul_shift``/``Infos``): ``.tensor`` files in their container type (int16
``signed short``, int8 ``signed char``; same names and order as SQ8) with ``ConstInfo(..., 1, 1,
<bits>, <q>)`` carrying their real Q (``q_w``, ``q_b``); activations are ``signed short`` (16-bit)
or ``signed char`` (8-bit). Each ``AddNode`` is preceded by the Qm.n of its input(s), weights, bias
and output. What the kernels cannot compute raises one :class:`AutoTilerError` naming the node
(``gen --target c`` handles all of it): an input pre-shift (``in_shift != 0``, left by the
accumulator precision-reduction rule only when the input's Q is one an op imposes: softmax, sigmoid,
tanh outputs; any other producer writes the lower Q itself); a negative ``out_shift``/``bias_shift``
(the kernels' ``In_Q + Filter_Q - Out_Q`` is an unsigned right-shift count: an Out_Q finer than the
accumulator is no left shift there); NodeQuant shifts other than the ones the kernels derive; a
pool, global pool or data-moving node that moves Q; an Add whose Qs are outside the dynamic-adjust
range, or that broadcasts; an activation after an Add or a global pool; an activation after an
average pool fused in a conv (the double-precision reduction applies it before the pool); ReLU6 with
a pool in a depthwise conv or a pool layer (their pool kernels take ``KOP_RELU`` only); a Clip other
than ReLU6 or the container's saturation; a LeakyReLU or any other activation. The header gains
``<G>_<name>_Q`` (``real = code·2^-Q``) per output; ``OUT_SCALE`` is then exactly ``2^-Q``.

Paths: a relative ``tensor_dir`` is relative to ``model_dir`` (written there, and written as given
in the ``ConstInfo`` paths, so run the generated tiler from the model directory); the output holds
no timestamps and no absolute path unless one was given, so generating twice gives the same bytes.
Every file is written atomically (temporary file in the same folder, then rename).
"""

from __future__ import annotations

from nnshell.codegen.at_infos import INFOS_SIZE
from nnshell.codegen.autotiler.common import ALIAS_OPS, POW2_FIX, AutoTilerError, ConstArg, Kernel
from nnshell.codegen.autotiler.emitter import GRAPH_CONTROLS, graph_c_name, graph_controls
from nnshell.codegen.autotiler.generate import generate_autotiler
from nnshell.codegen.autotiler.plan_pow2 import _activation_pow2
from nnshell.codegen.autotiler.planner import _Planner

__all__ = [
    "ALIAS_OPS",
    "GRAPH_CONTROLS",
    "INFOS_SIZE",
    "POW2_FIX",
    "AutoTilerError",
    "ConstArg",
    "Kernel",
    "_Planner",
    "_activation_pow2",
    "generate_autotiler",
    "graph_c_name",
    "graph_controls",
]
