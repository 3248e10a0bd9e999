"""How many images one batch may hold so that a pass's activations stay within a fixed budget.

Calibration, ``qerror``, ``astats``, ``aquant --compare`` and ``gen --verify`` keep every
activation of a batch at once (the float reference's, often the integer executor's too). With
the ``batch_size`` setting alone (64 by default) their memory grows with the model *and* with
the number of images up to 64: ResNet-50 holds ~44 MB of float activations per 224×224 image,
so 64 images would need ~2.8 GB. The batch is therefore capped so that ``images × bytes per
image`` stays within :data:`ACTIVATION_BUDGET` bytes; the number of images only changes how many
batches run, never the peak. Results do not depend on the batch size (every statistic is
streamed per batch in file order).
"""

from __future__ import annotations

import math
import os

from nnshell.ir import Graph

#: Bytes of kept activations one batch may hold (``NNSHELL_ACTIVATION_BUDGET`` overrides). The
#: process holds several times this at its peak (onnxruntime's arena and the copies it returns,
#: the next batch in flight, the statistics' temporaries): ResNet-50's aquant measured 1.24 GiB
#: peak RSS with 4 images a batch and 0.36 GiB with 1.
ACTIVATION_BUDGET = 128 << 20


def _budget() -> int:
    raw = os.environ.get("NNSHELL_ACTIVATION_BUDGET", "")
    try:
        value = int(raw)
    except ValueError:
        return ACTIVATION_BUDGET
    return value if value > 0 else ACTIVATION_BUDGET


def activation_bytes_per_image(graph: Graph, bytes_per_element: int = 4) -> int:
    """Bytes of every non-constant tensor of one image (the graph input included)."""
    total = 0
    for t in graph.tensors.values():
        if t.is_const or not t.shape:
            continue
        total += math.prod(int(d) for d in t.shape[1:]) * bytes_per_element
    return total


def images_per_batch(graph: Graph, requested: int, bytes_per_element: int = 4) -> int:
    """``requested`` (the batch_size setting), lowered so one batch of every activation at
    ``bytes_per_element`` bytes each fits the budget; at least 1."""
    per_image = activation_bytes_per_image(graph, bytes_per_element)
    if per_image <= 0:
        return max(1, requested)
    return max(1, min(int(requested), _budget() // per_image))
