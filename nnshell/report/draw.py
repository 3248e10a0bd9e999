"""``draw``: a picture of the graph as PNG (pillow), SVG (plain text), DOT, or terminal text.

Why no graphviz: the README's install (pip) must be enough, and graphviz's layout engine is a
system package. The graph of a CNN is nearly a chain, so a layered layout is enough: every node
sits on the layer one below the deepest node it reads from, nodes of a layer side by side, and
an edge that skips layers runs down the right-hand side so it never crosses a box. Graph inputs
and outputs are drawn as rounded boxes with both their names (``input_1 (data)``). Edges carry
the tensor's shape, or its quantization with ``-q``. With ``-F`` a fused layer is a group: a
frame titled with the fusion's name around one box per fused operator. The DOT file (for users
who have graphviz) says the same with ``subgraph cluster_*``.

Names come from model files: SVG text is XML-escaped and DOT strings are quoted and escaped, so
a node name can never become markup or DOT syntax.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nnshell.ir import Graph, Node
from nnshell.ir.io_names import io_label

if TYPE_CHECKING:
    from nnshell.quant.sq8 import QuantState

PAD = 24
GAP_Y = 46
GAP_X = 36
LINE_H = 18
BOX_MIN_W = 150
FONT_SIZE = 14
COLORS = {
    "io": ((232, 244, 232), (60, 130, 60)),
    "node": ((230, 238, 250), (60, 90, 160)),
    "part": ((245, 248, 255), (110, 130, 180)),
    "group": ((255, 248, 230), (190, 140, 40)),
}


@dataclass
class Box:
    """One drawn element: a node, a graph input/output, or (with -F) a fusion group."""

    key: str
    lines: list[str]
    kind: str  # "io" | "node" | "group"
    parts: list[list[str]] = field(default_factory=list)  # -F: one label per fused operator
    x: int = 0
    y: int = 0
    w: int = 0
    h: int = 0
    layer: int = 0


@dataclass
class Edge:
    """A tensor from one box to another, with its label."""

    src: str
    dst: str
    label: str


@dataclass
class Drawing:
    """The laid-out picture: boxes with positions, edges, and the canvas size."""

    title: str
    boxes: dict[str, Box]
    edges: list[Edge]
    width: int = 0
    height: int = 0


def _parts(node: Node) -> list[Node] | None:
    parts = getattr(node.attrs, "parts", None)
    return list(parts) if parts else None


def _qlabel(q: Any) -> str:
    """A short text of a quantization type (SQ8 scale/zero point, or POW2 Qm.n)."""
    if q is None:
        return "float"
    bits = getattr(q, "bits", 8)
    scale = getattr(q, "scale", None)
    if scale is not None:
        zp = getattr(q, "zero_point", 0)
        try:
            value = float(scale)
        except (TypeError, ValueError):
            return f"int{bits} S=per-channel Z={zp}"
        mant, exp = math.frexp(value)
        if mant == 0.5 and zp == 0:  # a power of two: POW2's Qm.n
            n = 1 - exp
            return f"int{bits} Q{bits - 1 - n}.{n}"
        return f"int{bits} S={value:.3g} Z={zp}"
    frac = getattr(q, "q", None)
    return f"Q{bits - 1 - int(frac)}.{int(frac)}" if frac is not None else f"int{bits}"


def _dims(graph: Graph, t: str) -> str:
    return "x".join(str(d) for d in graph.tensors[t].dims) or "scalar"


def build(
    graph: Graph,
    steps: Sequence[int] | None,
    fusions: bool,
    qstate: QuantState | None = None,
    font: Any = None,
) -> Drawing:
    """Boxes and edges of the selected steps (all when None), laid out in layers."""
    chosen = [graph.nodes[k] for k in (range(len(graph.nodes)) if steps is None else steps)]
    idx = {n.name: k for k, n in enumerate(graph.nodes)}
    boxes: dict[str, Box] = {}
    edges: list[Edge] = []
    producer: dict[str, str] = {}
    for t in graph.inputs:
        if any(t in n.inputs for n in chosen):
            boxes[f"in:{t}"] = Box(f"in:{t}", [io_label(graph, t), _dims(graph, t)], "io")
            producer[t] = f"in:{t}"
    for n in chosen:
        parts = _parts(n)
        ops = "+".join(str(p.op) for p in parts) if parts else n.op
        key = f"n:{n.name}"
        if fusions and parts:
            labels = [[str(p.op), str(p.name)] for p in parts]
            boxes[key] = Box(key, [f"{idx[n.name]}: {n.name}"], "group", labels)
        else:
            boxes[key] = Box(key, [f"{idx[n.name]}: {n.name}", ops], "node")
        for o in n.outputs:
            producer[o] = key

    def label(t: str) -> str:
        if qstate is not None:
            return _qlabel(getattr(qstate, "tensors", {}).get(t))
        return _dims(graph, t)

    for n in chosen:
        for t in n.inputs:
            if t and t in producer:
                edges.append(Edge(producer[t], f"n:{n.name}", label(t)))
    for t in graph.outputs:
        if t in producer:
            key = f"out:{t}"
            boxes[key] = Box(key, [io_label(graph, t), _dims(graph, t)], "io")
            edges.append(Edge(producer[t], key, label(t)))
    title = f"{graph.name}: {len(chosen)} of {len(graph.nodes)} layers"
    d = Drawing(title, boxes, edges)
    _layout(d, font)
    return d


def _text_w(text: str, font: Any) -> int:
    if font is None:
        return 8 * len(text)
    left, _, right, _ = font.getbbox(text)
    return int(right - left)


def _layout(d: Drawing, font: Any) -> None:
    ins: dict[str, list[str]] = {}
    for e in d.edges:
        ins.setdefault(e.dst, []).append(e.src)
    for key in d.boxes:  # insertion order is topological
        d.boxes[key].layer = 1 + max((d.boxes[s].layer for s in ins.get(key, [])), default=-1)
    for b in d.boxes.values():
        texts = b.lines + [t for p in b.parts for t in p]
        b.w = max(BOX_MIN_W, max(_text_w(t, font) for t in texts) + 24 + (16 if b.parts else 0))
        b.h = LINE_H * len(b.lines) + 12
        if b.parts:
            b.h += sum(LINE_H * len(p) + 12 + 8 for p in b.parts) + 4
    layers: dict[int, list[Box]] = {}
    for b in d.boxes.values():
        layers.setdefault(b.layer, []).append(b)
    widths = {k: sum(b.w for b in v) + GAP_X * (len(v) - 1) for k, v in layers.items()}
    label_room = max((_text_w(e.label, font) for e in d.edges), default=0) + 40
    inner = max(widths.values(), default=0)
    title_w = _text_w(d.title, font)
    d.width = max(inner + 2 * PAD + label_room, title_w + 2 * PAD)
    y = PAD + LINE_H + 16
    for k in sorted(layers):
        x = PAD + (inner - widths[k]) // 2
        for b in layers[k]:
            b.x, b.y = x, y
            x += b.w + GAP_X
        y += max(b.h for b in layers[k]) + GAP_Y
    d.height = y - GAP_Y + PAD


def _route(d: Drawing, e: Edge) -> list[tuple[int, int]]:
    """The polyline of an edge: straight down, or down the right side when it skips layers."""
    a, b = d.boxes[e.src], d.boxes[e.dst]
    start = (a.x + a.w // 2, a.y + a.h)
    end = (b.x + b.w // 2, b.y)
    if b.layer - a.layer <= 1:
        return [start, end]
    right = max(x.x + x.w for x in d.boxes.values() if a.layer < x.layer < b.layer) + 16
    return [start, (start[0], start[1] + 10), (right, start[1] + 10), (right, end[1] - 10),
            (end[0], end[1] - 10), end]  # fmt: skip


def _part_rects(b: Box) -> list[tuple[int, int, int, int, list[str]]]:
    out = []
    y = b.y + LINE_H * len(b.lines) + 12
    for p in b.parts:
        h = LINE_H * len(p) + 12
        out.append((b.x + 8, y, b.w - 16, h, p))
        y += h + 8
    return out


def render_png(d: Drawing, font: Any) -> Any:
    """The drawing as a pillow image."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (d.width, d.height), "white")
    dr = ImageDraw.Draw(img)
    dr.text((PAD, PAD), d.title, fill=(0, 0, 0), font=font)
    for e in d.edges:
        pts = _route(d, e)
        dr.line(pts, fill=(90, 90, 90), width=2)
        x1, y1 = pts[-1]
        dr.polygon([(x1, y1), (x1 - 5, y1 - 9), (x1 + 5, y1 - 9)], fill=(90, 90, 90))
        lx, ly = pts[0][0] + 8, (pts[0][1] + pts[1][1]) // 2 - LINE_H // 2
        if len(pts) > 2:
            lx, ly = pts[2][0] + 6, (pts[2][1] + pts[3][1]) // 2
        dr.text((lx, ly), e.label, fill=(110, 60, 20), font=font)
    for b in d.boxes.values():
        fill, line = COLORS[b.kind]
        dr.rounded_rectangle(
            [b.x, b.y, b.x + b.w, b.y + b.h], radius=10 if b.kind == "io" else 4,
            fill=fill, outline=line, width=2,
        )  # fmt: skip
        for k, t in enumerate(b.lines):
            dr.text((b.x + 12, b.y + 6 + k * LINE_H), t, fill=(0, 0, 0), font=font)
        for x, y, w, h, p in _part_rects(b):
            pf, pl = COLORS["part"]
            dr.rectangle([x, y, x + w, y + h], fill=pf, outline=pl, width=1)
            for k, t in enumerate(p):
                dr.text((x + 8, y + 6 + k * LINE_H), t, fill=(0, 0, 0), font=font)
    return img


def render_svg(d: Drawing) -> str:
    """The drawing as SVG text (every model-provided string XML-escaped)."""
    from xml.sax.saxutils import escape

    def rgb(c: tuple[int, int, int]) -> str:
        return f"rgb({c[0]},{c[1]},{c[2]})"

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{d.width}" height="{d.height}" '
        f'font-family="sans-serif" font-size="{FONT_SIZE - 1}">',
        f'<rect width="{d.width}" height="{d.height}" fill="white"/>',
        f'<text x="{PAD}" y="{PAD + 12}">{escape(d.title)}</text>',
    ]
    for e in d.edges:
        pts = _route(d, e)
        path = " ".join(f"{x},{y}" for x, y in pts)
        out.append(
            f'<polyline points="{path}" fill="none" stroke="rgb(90,90,90)" stroke-width="2"/>'
        )
        x1, y1 = pts[-1]
        out.append(f'<polygon points="{x1},{y1} {x1 - 5},{y1 - 9} {x1 + 5},{y1 - 9}" fill="gray"/>')
        lx, ly = pts[0][0] + 8, (pts[0][1] + pts[1][1]) // 2 + 4
        if len(pts) > 2:
            lx, ly = pts[2][0] + 6, (pts[2][1] + pts[3][1]) // 2
        out.append(f'<text x="{lx}" y="{ly}" fill="rgb(110,60,20)">{escape(e.label)}</text>')
    for b in d.boxes.values():
        fill, line = COLORS[b.kind]
        r = 10 if b.kind == "io" else 4
        out.append(
            f'<rect x="{b.x}" y="{b.y}" width="{b.w}" height="{b.h}" rx="{r}" '
            f'fill="{rgb(fill)}" stroke="{rgb(line)}" stroke-width="2"/>'
        )
        for k, t in enumerate(b.lines):
            out.append(f'<text x="{b.x + 12}" y="{b.y + 19 + k * LINE_H}">{escape(t)}</text>')
        for x, y, w, h, p in _part_rects(b):
            pf, pl = COLORS["part"]
            out.append(
                f'<rect x="{x}" y="{y}" width="{w}" height="{h}" fill="{rgb(pf)}" '
                f'stroke="{rgb(pl)}"/>'
            )
            for k, t in enumerate(p):
                out.append(f'<text x="{x + 8}" y="{y + 19 + k * LINE_H}">{escape(t)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _dot_str(text: str) -> str:
    """A DOT double-quoted string: backslashes, quotes and newlines escaped."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def render_dot(d: Drawing) -> str:
    """The drawing as a graphviz DOT document (fusions as clusters)."""
    out = [f"digraph {_dot_str(d.title)} {{", "  node [shape=box, fontname=sans];"]
    for b in d.boxes.values():
        shape = "box, style=rounded" if b.kind == "io" else "box"
        if b.parts:
            out.append(f"  subgraph {_dot_str('cluster_' + b.key)} {{")
            out.append(f"    label={_dot_str(b.lines[0])};")
            for k, p in enumerate(b.parts):
                out.append(f"    {_dot_str(f'{b.key}#{k}')} [label={_dot_str(chr(10).join(p))}];")
            for k in range(len(b.parts) - 1):
                out.append(f"    {_dot_str(f'{b.key}#{k}')} -> {_dot_str(f'{b.key}#{k + 1}')};")
            out.append("  }")
        else:
            out.append(
                f"  {_dot_str(b.key)} [label={_dot_str(chr(10).join(b.lines))}, shape={shape}];"
            )

    def end(key: str, first: bool) -> str:
        b = d.boxes[key]
        return f"{b.key}#{0 if first else len(b.parts) - 1}" if b.parts else key

    for e in d.edges:
        src, dst = _dot_str(end(e.src, False)), _dot_str(end(e.dst, True))
        out.append(f"  {src} -> {dst} [label={_dot_str(e.label)}];")
    out.append("}")
    return "\n".join(out) + "\n"


def render_text(graph: Graph, d: Drawing, width: int = 80) -> str:
    """A compact terminal drawing: one line per box, ``│`` between consecutive ones, other
    sources named on the line (``<- 3``); fits ``width`` columns."""
    order = list(d.boxes)
    ins: dict[str, list[str]] = {}
    for e in d.edges:
        ins.setdefault(e.dst, []).append(e.src)
    lab = {(e.src, e.dst): e.label for e in d.edges}
    lines = [d.title[:width]]

    def short(key: str) -> str:
        b = d.boxes[key]
        return b.lines[0].split(":")[0] if b.kind != "io" else b.lines[0].split(" ")[0]

    for k, key in enumerate(order):
        b = d.boxes[key]
        srcs = ins.get(key, [])
        prev = order[k - 1] if k else None
        if prev in srcs:
            lines.append(f"  │ {lab[(prev, key)]}"[:width])
        head = b.lines[0] if b.kind != "io" else f"[{b.lines[0]}]"
        ops = b.lines[1] if b.kind == "node" else ("+".join(p[0] for p in b.parts) or "")
        if b.kind == "io":
            ops = b.lines[1]
        other = [short(s) for s in srcs if s != prev]
        tail = f"  <- {', '.join(other)}" if other else ""
        text = f"{head}  {ops}{tail}"
        if len(text) > width:
            text = text[: width - 1] + "…"
        lines.append(text)
        for p in b.parts if b.kind == "group" else []:
            lines.append(f"  ├ {p[0]}: {p[1]}"[:width])
    return "\n".join(lines)


def draw_font(size: int = FONT_SIZE) -> Any:
    """Pillow's built-in scalable font (no system font needed), or its bitmap font."""
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):
        return ImageFont.load_default()


FORMATS = (".png", ".svg", ".dot", ".gv")


def draw_graph(
    graph: Graph,
    qstate: QuantState | None = None,
    steps: Sequence[int] | None = None,
    fusions: bool = False,
    quant_labels: bool = False,
    path: str | None = None,
    width: int = 80,
) -> str:
    """Draw ``graph`` into ``path`` (.png, .svg, .dot) and return its path, or return the text
    drawing when ``path`` is None. ``quant_labels`` needs ``qstate`` (the quantized graph)."""
    import os

    from nnshell.errors import GraphStateError, UsageError

    if quant_labels and qstate is None:
        raise GraphStateError("draw -q labels edges with quantization", "aquant first")
    q = qstate if quant_labels else None
    if path is None:
        return render_text(graph, build(graph, steps, fusions, q), width)
    ext = os.path.splitext(path)[1].lower()
    if ext not in FORMATS:
        raise UsageError(f"draw -f '{path}': unknown picture type", "use .png, .svg or .dot")
    font = draw_font() if ext == ".png" else None
    d = build(graph, steps, fusions, q, font if font is not None else draw_font())
    if ext == ".png":
        import io

        buf = io.BytesIO()
        render_png(d, font).save(buf, format="PNG")
        data = buf.getvalue()
    else:
        data = (render_svg(d) if ext == ".svg" else render_dot(d)).encode("utf-8")
    from nnshell.atomic import atomic_write_bytes, os_error_text

    try:
        atomic_write_bytes(path, data)
    except OSError as exc:
        raise UsageError(f"draw: cannot write {os_error_text(exc, path)}") from None
    return path
