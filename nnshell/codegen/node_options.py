"""Per-node AutoTiler generator options: NNTool's ``nodeoption [STEP [OPTION VALUE]]``.

Why here and like this. NNTool lets a script tune one layer's AutoTiler generator
(``nodeoption CONV_2D_0_1_fusion PARALLELFEATURES 0`` becomes a ``CNN_GenControl_T`` for that
layer's generator call) or one graph input's argument (``nodeoption 0 ALLOCATE 1`` makes input 0
an ``ARG_SCOPE_ARG_ALLOC`` argument). The options live in ``graph.meta['node_options']`` (a list
of ``{"kind", "name", "option", "value"}`` records) so that they travel with the graph through
``adjust``/``fusions`` copies and ``save_state`` like input formatters do, and are checked again
when a state is loaded (:func:`check_records`).

Targets and step numbers. NNTool numbers steps over every node of its graph — graph inputs,
constant nodes, layers, outputs (:func:`nnshell.codegen.at_names.nntool_steps`) — and a script's
``nodeoption 0`` means NNTool's step 0, the graph input. nnshell's own step numbers count
operators only and cannot name an input, so a bare number here is NNTool's step (the ``S<k>`` of
the generated kernel names); a name is a node name, a graph input/output name (its own,
``input_N``/``output_N``, the file's; :mod:`nnshell.ir.io_names`), and ``S<k>`` is NNTool's step
too.

Which options a target takes follows NNTool's node classes: every node the common five; inputs
and outputs ``ALLOCATE``/``FIXED_ORDER``/``EXTERN_*_POINTER``; convolution and linear layers (and
fusions holding one) the generator controls; binary elementwise layers ``PARALLELFEATURES`` and
``TILEORIENTATION``. RNN (``RNN_*``, ``LSTM_*``) and SSD (``NMS_*``) options belong to layers
nnshell does not import, so no nnshell node accepts them; the list is kept to say so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nnshell.errors import UsageError
from nnshell.settings import AT_MEMORIES

if TYPE_CHECKING:
    from nnshell.ir import Graph

META_KEY = "node_options"

#: AutoTiler memory areas an output may live in (NNTool's completion list plus L1/L2).
MEM_LOCATIONS = (
    *(m for m in AT_MEMORIES if m not in ("AT_MEM_UNDEF", "AT_MEM_L3_EMRAMFLASH")),
    "AT_MEM_UNDEF",
)

#: Options of every node (type: int, str, a tuple of allowed words, or "ident" for a C name).
COMMON: dict[str, Any] = {
    "VCD_TRACE_ON": int,
    "DUMP_TENSORS": int,
    "OUT_HOME_MEM_LOC": MEM_LOCATIONS,
    "OUT_EXEC_MEM_LOC": MEM_LOCATIONS,
    "NODE_CNAME": "ident",
}
IO_EXTRA: dict[str, Any] = {"ALLOCATE": int, "FIXED_ORDER": int}
INPUT_EXTRA: dict[str, Any] = {**IO_EXTRA, "EXTERN_INPUT_POINTER": int}
OUTPUT_EXTRA: dict[str, Any] = {**IO_EXTRA, "EXTERN_OUTPUT_POINTER": int}
CONST_EXTRA: dict[str, Any] = {"ALLOCATE": int, "RESET_NAME": "ident"}
#: The AutoTiler generator controls (CNN_SetGenCtrl keys) of convolution / linear layers.
GEN_CTRL: dict[str, Any] = {
    "TILEORIENTATION": int,
    "PARALLELFEATURES": int,
    "FORCEDPCONV": int,
    "USEHWCE": int,
    "PADTYPE": int,
    "ENABLEIM2COL": int,
    "RELUN": int,
    "MULBIASSCALAR": int,
    "RELUNNONORM": int,
    "RNN_USE_HARDACT": int,
    "RNN_SAME_INOUT_SCALE": int,
    "HWC": int,
    "INPUT_DATASIZE": int,
    "OUTPUT_DATASIZE": int,
    "GATE_PRENORM": int,
    "FLOAT_DUMP": int,
    "MFCC_LOG_OFFSET": int,
    "EXPLICIT_PAD_CONV": int,
    "EXPLICIT_PAD_POOL": int,
    "CUSTOM_ACTIVATION_NAME": "ident",
    "CUSTOM_ACTIVATION_INFOS": int,
}
ARITH_EXTRA: dict[str, Any] = {"PARALLELFEATURES": int, "TILEORIENTATION": int}
#: NNTool options of layer kinds nnshell has no importer for (named in the error).
FOREIGN = (
    "OUTPUT_H_STATE",
    "RNN_STATES_AS_INPUTS",
    "LSTM_OUTPUT_C_STATE",
    "OUTPUT_C_STATE",
    "QUANT_C_STATE_WITH_STAT",
    "NMS_SCORE_THRESHOLD",
    "NMS_IOU_THRESHOLD",
)
#: Options nnshell keeps (state, listing) but its generator does not write (docs/nntool-parity.md).
NOT_EMITTED = frozenset(
    {"VCD_TRACE_ON", "DUMP_TENSORS", "NODE_CNAME", "FIXED_ORDER", "RESET_NAME"}
    | {"CUSTOM_ACTIVATION_NAME", "CUSTOM_ACTIVATION_INFOS"}
    | {"EXTERN_INPUT_POINTER", "EXTERN_OUTPUT_POINTER"}
)
_INT_LIMIT = 1 << 31


@dataclass(frozen=True)
class Target:
    """What a nodeoption addresses: a layer, a graph input/output tensor or a constant."""

    kind: str  # "node" | "input" | "output" | "const"
    name: str
    step: int  # NNTool's step number


def _kinds(graph: Graph, name: str) -> set[str]:
    """The op-registry kinds of a layer, or of every part of a fusion."""
    from nnshell.ops import all_ops

    ops = all_ops()
    node = graph.node(name)
    fused = getattr(node.attrs, "parts", None)
    parts = [str(p.op) for p in fused] if fused else [node.op]
    return {ops[op].kind for op in parts if op in ops}


def valid_options(graph: Graph, target: Target) -> dict[str, Any]:
    """The options ``target`` accepts, with their value types."""
    opts = dict(COMMON)
    if target.kind == "input":
        opts.update(INPUT_EXTRA)
    elif target.kind == "output":
        opts.update(OUTPUT_EXTRA)
    elif target.kind == "const":
        opts.update(CONST_EXTRA)
    else:
        kinds = _kinds(graph, target.name)
        if kinds & {"conv", "linear"}:
            opts.update(GEN_CTRL)
        elif "elementwise" in kinds:
            opts.update(ARITH_EXTRA)
    return opts


def targets(graph: Graph) -> list[Target]:
    """Every addressable target in NNTool's step order."""
    from nnshell.codegen.at_names import nntool_steps

    steps = nntool_steps(graph)
    return [Target(kind, name, step) for (kind, name), step in sorted(steps.items(), key=_by_step)]


def layer_nntool_steps(graph: Graph) -> dict[str, int]:
    """NNTool's step number of every layer, by node name (``show --nntool_steps``)."""
    return {t.name: t.step for t in targets(graph) if t.kind == "node"}


def _by_step(item: tuple[tuple[str, str], int]) -> int:
    return item[1]


def resolve(graph: Graph, token: str) -> Target:
    """The target a STEP argument means: NNTool step number, ``S<k>``, node or input/output name."""
    from nnshell.ir.io_names import resolve_io

    all_t = targets(graph)
    text = token[1:] if token[:1] in "Ss" and token[1:].isdigit() else token
    if text.lstrip("-").isdigit():
        k = int(text)
        for t in all_t:
            if t.step == k:
                return t
        raise UsageError(
            f"NNTool step {k} is out of range (steps 0..{len(all_t) - 1})",
            "show --nntool_steps lists them",
        )
    for t in all_t:
        if t.kind == "node" and t.name == token:
            return t
    io = resolve_io(graph, token)
    if io is not None:
        kind = "input" if io in graph.inputs else "output"
        return next(t for t in all_t if t.kind == kind and t.name == io)
    import difflib

    names = [t.name for t in all_t if t.kind == "node"]
    close = difflib.get_close_matches(token, names, n=3)
    raise UsageError(
        f"no node or graph input/output named '{token}'",
        f"did you mean {', '.join(close)}?" if close else "run 'show' to list the node names",
    )


def parse_value(graph: Graph, target: Target, option: str, text: str) -> int | str:
    """Check ``option`` is valid for ``target``; convert ``text`` to its type (one-line errors)."""
    from nnshell.codegen.csafe import is_c_ident

    opts = valid_options(graph, target)
    key = option.upper()
    if key not in opts:
        why = " (an RNN/SSD option: nnshell imports no such layer)" if key in FOREIGN else ""
        raise UsageError(
            f"nodeoption: {option} is not an option of {target.name}{why}",
            f"valid: {', '.join(sorted(opts))}",
        )
    typ = opts[key]
    if typ is int:
        try:
            val = int(text, 0)
        except ValueError:
            raise UsageError(f"nodeoption: {key} takes an integer, not '{text}'") from None
        if not -_INT_LIMIT <= val < _INT_LIMIT:
            raise UsageError(f"nodeoption: {key} {val} does not fit in 32 bits")
        return val
    if typ == "ident":
        if not is_c_ident(text):
            raise UsageError(f"nodeoption: {key} takes a C identifier, not '{text}'")
        return text
    if text.upper() not in typ:
        raise UsageError(
            f"nodeoption: {key} takes a memory area, not '{text}'", f"one of: {', '.join(typ)}"
        )
    return text.upper()


def records(graph: Graph) -> list[dict[str, Any]]:
    """The options set on ``graph`` (copies of the meta records)."""
    return [dict(r) for r in graph.meta.get(META_KEY) or []]


def with_option(
    meta: dict[str, Any], target: Target, option: str, value: int | str | None
) -> dict[str, Any]:
    """A copy of ``meta`` with ``option`` of ``target`` set (None: removed)."""
    out = dict(meta)
    recs = [
        dict(r)
        for r in meta.get(META_KEY) or []
        if not (r["kind"] == target.kind and r["name"] == target.name and r["option"] == option)
    ]
    if value is not None:
        recs.append({"kind": target.kind, "name": target.name, "option": option, "value": value})
    if recs:
        out[META_KEY] = recs
    else:
        out.pop(META_KEY, None)
    return out


def options_of(graph: Graph, kind: str, name: str) -> dict[str, Any]:
    """The options set on one target; a fusion also inherits those set on its parts (NNTool)."""
    names = {name}
    if kind == "node":
        node = next((n for n in graph.nodes if n.name == name), None)
        parts = getattr(node.attrs, "parts", None) if node is not None else None
        names |= {str(p.name) for p in parts or []}
    out: dict[str, Any] = {}
    for r in graph.meta.get(META_KEY) or []:
        if r["name"] in names and r["kind"] == kind:
            out[r["option"]] = r["value"]
    return out


def check_records(graph: Graph, where: str) -> None:
    """Validate the node options of a loaded state: shape, names and value types.

    Raises ValueError with one line naming the record; the state loader makes it its error.
    """
    recs = graph.meta.get(META_KEY)
    if recs is None:
        return
    if not isinstance(recs, list):
        raise ValueError(f"{where}.meta.{META_KEY} is not a list")
    for i, r in enumerate(recs):
        w = f"{where}.meta.{META_KEY}[{i}]"
        if not isinstance(r, dict) or set(r) != {"kind", "name", "option", "value"}:
            raise ValueError(f"{w} is not {{kind, name, option, value}}")
        if r["kind"] not in ("node", "input", "output", "const") or not isinstance(r["name"], str):
            raise ValueError(f"{w} has a bad kind or name")
        if not isinstance(r["option"], str) or isinstance(r["value"], bool):
            raise ValueError(f"{w} has a bad option or value")
        ok = (
            r["name"] in graph.inputs
            if r["kind"] == "input"
            else r["name"] in graph.outputs
            if r["kind"] == "output"
            else r["name"] in graph.tensors
            if r["kind"] == "const"
            else any(n.name == r["name"] for n in graph.nodes)
        )
        if not ok:
            continue  # a part fused away keeps its options for its fusion (options_of)
        try:
            value = parse_value(
                graph, Target(r["kind"], r["name"], -1), r["option"], str(r["value"])
            )
        except UsageError as exc:
            raise ValueError(f"{w}: {exc.message}") from None
        if value != r["value"]:
            raise ValueError(f"{w}: value {r['value']!r} is not in canonical form")


@dataclass(frozen=True)
class OptionOutcome:
    """What ``nodeoption`` did or shows: the target, and its options after the command."""

    target: Target | None
    option: str | None
    value: int | str | None
    options: dict[str, Any]
    valid: tuple[str, ...] = ()


def set_node_option(
    session: Any, step: str, option: str, value: str | None = None
) -> OptionOutcome:
    """Set (``value`` None: remove) one option of one target on the session's graphs.

    The record goes into the working graph and the pre-fusion graph alike, so ``fusions`` run
    again keeps it (a fusion inherits its parts' options, as NNTool's do).
    """
    graph = session.require_graph()
    target = resolve(graph, step)
    key = option.upper()
    parsed = None if value is None else parse_value(graph, target, key, value)
    if value is None and key not in valid_options(graph, target):
        parse_value(graph, target, key, "0")  # the one-line 'not an option' error
    work = graph.copy()
    work.meta = with_option(graph.meta, target, key, parsed)
    if session.prefusion is not None:
        pre = session.prefusion.copy()
        pre.meta = with_option(session.prefusion.meta, target, key, parsed)
        session.prefusion = pre
    session.graph = work
    return OptionOutcome(target, key, parsed, options_of(work, target.kind, target.name))


def show_node_options(session: Any, step: str | None = None) -> list[OptionOutcome]:
    """Every target with options (no ``step``), or one target with its valid options."""
    graph = session.require_graph()
    if step is not None:
        t = resolve(graph, step)
        opts = options_of(graph, t.kind, t.name)
        return [OptionOutcome(t, None, None, opts, tuple(sorted(valid_options(graph, t))))]
    out = []
    for t in targets(graph):
        opts = options_of(graph, t.kind, t.name)
        if opts:
            out.append(OptionOutcome(t, None, None, opts))
    return out


def describe(graph: Graph, target: Target) -> str:
    """``S3 CONV_2D_0_1_fusion`` / ``S0 input_1 (data)``: NNTool's step and both names."""
    from nnshell.ir.io_names import io_label

    name = io_label(graph, target.name) if target.kind in ("input", "output") else target.name
    return f"S{target.step} {name}"
