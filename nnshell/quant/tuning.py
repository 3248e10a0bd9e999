"""``fquant`` and ``qtune``: quantization chosen before (and kept through) adjust and fusions.

NNTool's float16 MNIST script runs ``fquant`` and ``qtune * float bfloat16`` *before*
``adjust`` and ``fusions --scale8``. nnshell keeps both as **settings of the graph** (in
``graph.meta``, so every copy, pass and saved state carries them) and derives the quantization
again whenever the graph changes: the fused and adjusted nodes get the quantization the user
chose for the nodes they came from.

* ``fquant`` (``meta["fquant"]``): statistics from random inputs instead of images — NNTool's
  normal(0, 0.2) per input value (or uniform(-U, U)), ``--num_inference`` batches, a seed
  (nnshell defaults to seed 0, so a state reproduces; NNTool's default draws new values each
  run). The graph's real weights are used (NNTool also fakes constants: here they exist).
* ``qtune`` (``meta["qtune"]``): a list of ``[selector, {key: value}]`` rules, applied in
  order. Keys: ``scheme`` (scaled | pow2 | float), ``float_type`` (bfloat16 | float16 |
  float32), ``bits`` (8 | 16), ``quantized_dimension`` (tensor | channel) and ``clip_type``
  (none | the nnshell range modes minmax, percentile:P, mse, kl). A rule names layers with the
  selector grammar of :mod:`nnshell.selectors`; a layer fused later still answers to the name of
  any of its parts.

A rule selecting some layers only makes them float and leaves the rest SQ8, with conversion
layers between (``quant.float_q.quantize_mixed``); integer options per layer, float mixed with
POW2 and two float types in one graph are refused in one line (docs/FLOAT16.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nnshell.errors import GraphStateError, UsageError
from nnshell.ir import Graph

#: qtune keys and the values each accepts (bare values in the positional form map to a key)
QTUNE_KEYS: dict[str, tuple[str, ...]] = {
    "scheme": ("scaled", "pow2", "float"),
    "float_type": ("bfloat16", "float16", "float32"),
    "bits": ("8", "16"),
    "quantized_dimension": ("tensor", "channel"),
    "clip_type": ("none", "minmax", "percentile", "mse", "kl"),
}
_BARE = {v: k for k, vals in QTUNE_KEYS.items() for v in vals if k != "clip_type"}


def parse_qtune(words: list[str]) -> tuple[str, dict[str, str]]:
    """``SEL key=value ...`` or the positional ``SEL float bfloat16`` -> (selector, options)."""
    if len(words) < 2:
        raise UsageError(
            "qtune needs a selector and at least one setting",
            "qtune --step * scheme=float float_type=bfloat16 (or: qtune * float bfloat16)",
        )
    sel, opts = words[0], {}
    for w in words[1:]:
        key, eq, value = w.partition("=")
        if not eq:
            if w.lower() not in _BARE:
                raise UsageError(
                    f"qtune: '{w}' is neither KEY=VALUE nor a known value",
                    f"keys: {', '.join(QTUNE_KEYS)}",
                )
            key, value = _BARE[w.lower()], w
        key, value = key.strip().lower(), value.strip().lower()
        if key not in QTUNE_KEYS:
            raise UsageError(f"qtune: unknown key '{key}'", f"keys: {', '.join(QTUNE_KEYS)}")
        if value.partition(":")[0] not in QTUNE_KEYS[key]:
            raise UsageError(
                f"qtune: {key}={value} is not valid", f"{key}: {' | '.join(QTUNE_KEYS[key])}"
            )
        opts[key] = value
    return sel, opts


def _names_of(node: Any) -> set[str]:
    """The node's name and, for a fusion, the names of its parts (the nodes it came from)."""
    names = {node.name}
    parts = getattr(node.attrs, "parts", None)
    if parts:
        names |= {str(p.name) for p in parts}
    return names


def select_layers(graph: Graph, selector: str) -> list[int]:
    """Steps a qtune selector names: the selector grammar, or any part name of a fusion."""
    from nnshell.selectors import select_steps

    items = [s.strip() for s in selector.split(",") if s.strip()]
    steps: set[int] = set()
    for item in items:
        hits = [k for k, n in enumerate(graph.nodes) if item in _names_of(n)]
        steps |= set(hits) if hits else set(select_steps(graph, item))
    return sorted(steps)


@dataclass
class Tuning:
    """What the qtune rules resolve to: whole-graph integer options and the float layers."""

    scheme: str | None = None  # "SQ8" or "POW2" when a rule set it for every layer
    float_nodes: dict[str, str] = field(default_factory=dict)  # node name -> float type
    bits: int | None = None
    per_tensor: bool | None = None
    mode: str | None = None

    def all_float(self, graph: Graph) -> str | None:
        """The float type when every layer is float (one type), else None."""
        kinds = set(self.float_nodes.values())
        if len(self.float_nodes) == len(graph.nodes) and len(kinds) == 1:
            return next(iter(kinds))
        return None


_SCHEMES = {"scaled": "SQ8", "pow2": "POW2", "float": "FLOAT"}
_INTEGER_KEYS = ("bits", "quantized_dimension", "clip_type")


def resolve(graph: Graph) -> Tuning:
    """Apply ``graph.meta["qtune"]`` rules, in order, to the current graph's layers."""
    tune = Tuning()
    n = len(graph.nodes)
    for sel, opts in graph.meta.get("qtune", []):
        steps = select_layers(graph, str(sel))
        names = [graph.nodes[k].name for k in steps]
        every = len(steps) == n
        partial = [k for k in _INTEGER_KEYS if k in opts]
        if partial and not every:
            raise UsageError(
                f"qtune {sel}: {', '.join(partial)} per layer is not supported yet (it selects "
                f"{len(steps)} of {n} layers)",
                "qtune * KEY=VALUE sets integer options for every layer (docs/FLOAT16.md)",
            )
        scheme = _SCHEMES.get(opts.get("scheme", ""))
        if scheme is None and "float_type" in opts:
            scheme = "FLOAT"
        if scheme == "FLOAT":
            ftype = opts.get("float_type") or next(iter(tune.float_nodes.values()), "bfloat16")
            tune.float_nodes.update({m: ftype for m in names})
        elif scheme is not None:
            for m in names:
                tune.float_nodes.pop(m, None)
            if every:
                tune.scheme = scheme
            elif scheme != (tune.scheme or "SQ8"):
                raise UsageError(
                    f"qtune {sel}: scheme={opts['scheme']} on {len(steps)} of {n} layers; one "
                    "integer scheme per graph",
                    "qtune * scheme=scaled (or pow2) for every layer",
                )
        if "bits" in opts:
            tune.bits = int(opts["bits"])
        if "quantized_dimension" in opts:
            tune.per_tensor = opts["quantized_dimension"] == "tensor"
        if "clip_type" in opts:
            tune.mode = "minmax" if opts["clip_type"] == "none" else opts["clip_type"]
    if tune.scheme == "SQ8" and tune.bits == 16:
        raise UsageError("qtune: scheme=scaled is 8-bit only", "qtune * scheme=pow2 bits=16")
    return tune


# -- fquant --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FakeOptions:
    """``fquant`` options (NNTool's flags)."""

    seed: int = 0
    normal: float = 0.2
    uniform: float = 0.0
    num_inference: int = 1
    #: "SQ8", "POW2", or "" (the scheme of the fusions applied; SQ8 before any)
    scheme: str = ""
    bits: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON form (``graph.meta["fquant"]``)."""
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FakeOptions:
        """Read back a saved form (unknown keys refused)."""
        known = set(cls.__dataclass_fields__)
        if not isinstance(d, dict) or set(d) - known:
            raise GraphStateError("the saved fquant options are not valid", "fquant again")
        return cls(**d)


def fake_stats(graph: Graph, opts: FakeOptions, batch: int = 8) -> dict[str, Any]:
    """Statistics of every tensor over random inputs (no image read)."""
    from nnshell.quant.stats import collect_stats

    if opts.num_inference < 1 or opts.num_inference > 4096:
        raise UsageError("fquant --num_inference must be 1..4096")
    rng = np.random.default_rng(opts.seed)

    def batches() -> Any:
        done = 0
        while done < opts.num_inference:
            k = min(batch, opts.num_inference - done)
            feeds = {}
            for name in graph.inputs:
                shape = (k, *graph.tensors[name].dims)
                if opts.uniform:
                    x = rng.uniform(-opts.uniform, opts.uniform, shape)
                else:
                    x = rng.normal(0.0, opts.normal, shape)
                feeds[name] = x.astype(np.float32)
            first = feeds[graph.inputs[0]]
            yield [f"random_{i}" for i in range(done, done + k)], first
            done += k

    if len(graph.inputs) != 1:
        raise UsageError("fquant: graphs with several inputs are not supported yet")
    stats, _ = collect_stats(graph, batches(), opts.num_inference, None, None)
    return stats


def retune(
    graph: Graph, fused: str | None, stats: dict[str, Any] | None, relun_range: str = "bound"
) -> tuple[Graph, dict[str, Any] | None, Any, str]:
    """The graph, statistics and quantization the fquant / qtune settings give now.

    ``fused``: the fusions applied (``scale8``, ``pow2`` or None); ``stats``: calibration
    statistics of this graph if any (fquant replaces them with random ones). A mixed graph
    comes back with its conversion layers. Returns ``(graph, stats, qstate or None, one line
    saying what happened)``."""
    from nnshell.quant.float_q import quantize_graph_float, strip_conversions

    graph = strip_conversions(graph)
    tune = resolve(graph)
    fq = graph.meta.get("fquant")
    fake = FakeOptions.from_dict(fq) if fq is not None else None
    if fake is not None:
        stats = fake_stats(graph, fake)
    every = tune.all_float(graph)
    if every is not None:
        qs = quantize_graph_float(graph, every, stats)
        return graph, stats, qs, f"every layer is a float layer ({qs.options.describe()})"
    if stats is None:
        return graph, None, None, "qtune settings kept: aquant (or fquant) quantizes with them"
    scheme = tune.scheme or (fake.scheme if fake is not None and fake.scheme else None)
    scheme = scheme or ("POW2" if fused == "pow2" else "SQ8")
    need = "scale8" if scheme == "SQ8" else "pow2"
    if fused != need:
        note = f"statistics ready: {scheme} quantization follows fusions --{need}"
        return graph, stats, None, note
    if tune.float_nodes:
        if scheme != "SQ8":
            raise UsageError(
                "qtune: float layers mix with SQ8 layers only, not POW2",
                "fusions --scale8 and aquant -s SQ8 (or every layer float)",
            )
        return _mixed(graph, stats, tune, relun_range)
    qs = quantize_tuned(graph, stats, scheme, tune, fake, relun_range)
    return graph, stats, qs, "quantized"


def _mixed(
    graph: Graph, stats: dict[str, Any], tune: Tuning, relun_range: str
) -> tuple[Graph, dict[str, Any], Any, str]:
    from nnshell.input.formatter import fixed_qtypes
    from nnshell.quant.float_q import quantize_mixed
    from nnshell.quant.ranges import parse_mode
    from nnshell.quant.sq8 import QuantOptions

    opts = QuantOptions(
        parse_mode(tune.mode or "minmax"),
        False,
        bool(tune.per_tensor),
        relun_range=relun_range,
    )
    work, qs = quantize_mixed(graph, stats, tune.float_nodes, opts, fixed_qtypes(graph))
    n_conv = len(work.nodes) - len(graph.nodes)
    kinds = ", ".join(sorted(set(tune.float_nodes.values())))
    note = (
        f"{len(tune.float_nodes)} float layer(s) ({kinds}), "
        f"{len(graph.nodes) - len(tune.float_nodes)} SQ8, {n_conv} conversion layer(s) inserted"
    )
    return work, stats, qs, note


def quantize_tuned(
    graph: Graph,
    stats: dict[str, Any],
    scheme: str,
    tune: Tuning,
    fake: FakeOptions | None,
    relun_range: str,
) -> Any:
    """SQ8 or POW2 quantization with the qtune options (defaults: aquant's)."""
    from nnshell.input.formatter import fixed_qtypes
    from nnshell.quant.pow2 import Pow2Options, quantize_graph_pow2
    from nnshell.quant.ranges import parse_mode
    from nnshell.quant.sq8 import QuantOptions, quantize_graph

    mode = parse_mode(tune.mode or "minmax")
    per_tensor = bool(tune.per_tensor)
    if scheme == "POW2":
        bits = tune.bits or (fake.bits if fake is not None and fake.bits else 16)
        return quantize_graph_pow2(graph, stats, Pow2Options(mode, True, True, bits))
    opts = QuantOptions(mode, False, per_tensor, relun_range=relun_range)
    return quantize_graph(graph, stats, opts, fixed_qtypes(graph))


__all__ = ["FakeOptions", "QTUNE_KEYS", "Tuning", "fake_stats", "parse_qtune", "resolve", "retune"]
