"""The PNG pictures of ``qerror --png`` and ``astats --hist --png``, drawn with pillow.

Each picture is meant to be read at a glance in a report: a title saying what and on how many
images, both axes labelled with their unit (and "log scale" where it is), tick values on the
axes, labels beside the bars rather than over them, and a size a page can hold (about 1200
pixels wide, a few hundred high). The axis labels are also stored as PNG text chunks
(``Title``, ``XAxis``, ``YAxis``) so tools, and the tests, can read them back.
"""

from __future__ import annotations

import math
from typing import Any

WIDTH = 1200
BAR = (70, 120, 200)
CLIPPED = (210, 70, 60)
GRID = (225, 225, 225)


def _font(size: int) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # pillow without FreeType: the small bitmap font
        return ImageFont.load_default()


def _text_width(draw: Any, text: str, font: Any) -> int:
    left, _, right, _ = draw.textbbox((0, 0), text, font=font)
    return int(right - left)


def _vertical_label(img: Any, text: str, x: int, y_center: int, font: Any) -> None:
    """A y-axis label written bottom to top, centred on ``y_center``."""
    from PIL import Image, ImageDraw

    probe = ImageDraw.Draw(img)
    w = _text_width(probe, text, font) + 4
    h = int(font.size if hasattr(font, "size") else 12) + 6
    tile = Image.new("RGB", (w, h), "white")
    ImageDraw.Draw(tile).text((2, 1), text, fill="black", font=font)
    tile = tile.rotate(90, expand=True)
    img.paste(tile, (x, max(0, y_center - tile.height // 2)))


def nice_ticks(vmax: float, count: int = 6) -> list[float]:
    """Round tick values 0 .. >= vmax (1, 2 or 5 times a power of ten apart)."""
    if not math.isfinite(vmax) or vmax <= 0:
        return [0.0, 1.0]
    raw = vmax / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    n = int(math.ceil(vmax / step - 1e-9))
    return [i * step for i in range(n + 1)]


def _tick_text(v: float) -> str:
    return f"{v:g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.1e}"


def _save(img: Any, path: str, title: str, xaxis: str, yaxis: str) -> None:
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Title", title)
    info.add_text("XAxis", xaxis)
    info.add_text("YAxis", yaxis)
    img.save(path, pnginfo=info)


def png_hbars(path: str, title: str, labels: list[str], values: list[float], unit: str) -> None:
    """Horizontal bars, one per layer in execution order: the layer names on the left (the
    y axis), the value on a labelled x axis with ticks, each value printed after its bar."""
    from PIL import Image, ImageDraw

    font, small, big = _font(16), _font(14), _font(20)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    names = [lab if len(lab) <= 40 else lab[:19] + ".." + lab[-19:] for lab in labels]
    left = 20 + max([_text_width(probe, n, small) for n in names] + [260]) + 12
    right, top, row = 90, 90, 30
    height = max(240, top + row * max(1, len(labels)) + 70)
    img = Image.new("RGB", (WIDTH, height), "white")
    d = ImageDraw.Draw(img)
    d.text((20, 16), title, fill="black", font=big)
    finite = [v for v in values if math.isfinite(v)]
    ticks = nice_ticks(max(finite + [1e-9]))
    vmax = ticks[-1]
    span = WIDTH - left - right
    bottom = top + row * max(1, len(labels))
    for t in ticks:  # vertical grid lines and the tick values under the axis
        x = left + int(span * t / vmax)
        d.line([(x, top - 6), (x, bottom)], fill=GRID)
        d.line([(x, bottom), (x, bottom + 6)], fill="black")
        tw = _text_width(d, _tick_text(t), small)
        d.text((x - tw // 2, bottom + 8), _tick_text(t), fill="black", font=small)
    d.line([(left, top - 6), (left, bottom)], fill="black")
    d.line([(left, bottom), (left + span, bottom)], fill="black")
    for i, (name, v) in enumerate(zip(names, values, strict=True)):
        y = top + i * row
        tw = _text_width(d, name, small)
        d.text((left - 10 - tw, y + 6), name, fill="black", font=small)
        w = int(span * max(0.0, min(v, vmax)) / vmax) if math.isfinite(v) else 0
        d.rectangle([left, y + 5, left + max(w, 1), y + row - 5], fill=BAR)
        text = f"{v:.1f}" if math.isfinite(v) else str(v)
        d.text((left + w + 6, y + 6), text, fill="black", font=small)
    xaxis = f"{'QSNR' if unit == 'dB' else 'value'} ({unit}); higher is better"
    tw = _text_width(d, xaxis, font)
    d.text((left + (span - tw) // 2, bottom + 34), xaxis, fill="black", font=font)
    yaxis = "layer (execution order, top first)"  # above the names: they are the y axis
    tw = _text_width(d, yaxis, font)
    d.text((max(10, left - 10 - tw), top - 34), yaxis, fill="black", font=font)
    _save(img, path, title, xaxis, yaxis)


def png_histograms(path: str, title: str, panels: list[dict[str, Any]]) -> None:
    """One panel per layer: the histogram of |x| (x axis: |x| from 0 to the largest value,
    with ticks; y axis: count on a log scale, with ticks 1, 10, 100, ...), the bars beyond
    the chosen clip in red and the clip itself as a red line named in the panel's legend,
    above the plot (never over the bars)."""
    from PIL import Image, ImageDraw

    font, small, big = _font(15), _font(13), _font(20)
    left, right, pw_h, gap = 110, 40, 200, 96
    pw = WIDTH - left - right
    height = 60 + len(panels) * (pw_h + gap) + 10
    img = Image.new("RGB", (WIDTH, max(height, 300)), "white")
    d = ImageDraw.Draw(img)
    d.text((20, 16), title, fill="black", font=big)
    xaxis, yaxis = "|x| (activation magnitude)", "count (log scale)"
    for k, p in enumerate(panels):
        top = 60 + k * (pw_h + gap) + 28
        bottom = top + pw_h
        counts, edges = p["counts"], p["edges"]
        xmax = edges[-1] if edges[-1] > 0 else 1.0
        d.text((left, top - 26), p["title"], fill="black", font=font)
        legend = f"red line: clip at {p['clip']:.3g} (red bars: clipped values)"
        lw = _text_width(d, legend, small)
        d.text((left + pw - lw, top - 24), legend, fill=CLIPPED, font=small)
        decades = max(1, math.ceil(math.log10(max(max(counts, default=1), 1) + 1)))
        for e in range(decades + 1):  # y ticks 0, 10, 100, ... (heights are log10(count + 1))
            value = 0 if e == 0 else 10**e
            y = bottom - int(pw_h * math.log10(value + 1) / decades)
            d.line([(left, y), (left + pw, y)], fill=GRID)
            label = "0" if e == 0 else f"1e{e}" if e > 4 else f"{value:,}"
            tw = _text_width(d, label, small)
            d.text((left - 8 - tw, y - 8), label, fill="black", font=small)
        bw = pw / max(1, len(counts))
        for i, c in enumerate(counts):
            if c <= 0:
                continue
            h = int(pw_h * min(1.0, math.log10(c + 1) / decades))
            color = CLIPPED if edges[i] >= p["clip"] else BAR
            x0 = left + i * bw
            d.rectangle([x0, bottom - max(h, 1), max(x0, x0 + bw - 1), bottom], fill=color)
        d.rectangle([left, top, left + pw, bottom], outline="black")
        cx = left + pw * min(p["clip"], xmax) / xmax
        d.line([(cx, top), (cx, bottom)], fill=(200, 0, 0), width=2)
        for t in nice_ticks(xmax):
            if t > xmax * 1.0001:
                break
            x = left + int(pw * t / xmax)
            d.line([(x, bottom), (x, bottom + 5)], fill="black")
            tw = _text_width(d, _tick_text(t), small)
            d.text((x - tw // 2, bottom + 7), _tick_text(t), fill="black", font=small)
        tw = _text_width(d, xaxis, font)
        d.text((left + (pw - tw) // 2, bottom + 28), xaxis, fill="black", font=font)
        _vertical_label(img, yaxis, 6, (top + bottom) // 2, small)
    _save(img, path, title, xaxis, yaxis)
