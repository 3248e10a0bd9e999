"""NNTool's input formatter (``imageformat INPUT FORMAT NORM``): raw camera pixels in, network
input out.

With a formatter on a graph input, that input is fed **raw unsigned pixels in HWC order**
(``H x W x C``, one byte per channel value 0..255) and the formatter produces the CHW tensor
the network was calibrated on. The record lives in ``graph.meta["input_formatter"]`` as
``{input name: {"format": FORMAT, "norm": NORM}}`` (plain JSON, saved by ``save_state``).

Formats (the raw pixel layout)::

    bw8            1 channel, one byte per pixel
    bw16           1 channel, one 16-bit word per pixel holding the value 0..255
    rgb888         3 channels, one byte per channel (R, G, B)
    rgb16          3 channels, one 16-bit word per channel holding 0..255
    rgb565_rgb888  3 channels packed in 16 bits (5-6-5); unpacked as R=r5<<3, G=g6<<2,
                   B=b5<<3. An 8-bit RGB image is first reduced to 565 (the camera's loss).

Norms (the integer transform of each channel value ``p`` and what its codes mean)::

    offset_int8  q = p - 128  (int8)   S = 2^-7,  Z = 0: x = p/128 - 1     in [-1, 0.9921875]
    shift_int8   q = p >> 1   (int8)   S = 2^-7,  Z = 0: x = (p>>1)/128    in [0, 0.9921875]
                                                          (= p/256 up to the dropped bit)
    out_int16    q = p << 7   (int16)  S = 2^-15, Z = 0: x = p/256          in [0, 0.99609375]

The **float path** is the real value of those codes, ``x = q * S`` (exact in float32), so
the float executor, calibration, validation and ``qerror`` see exactly what the integer path
quantizes: the integer executor gets ``q`` itself and ``quantize(q * S) == q`` bit for bit.

**Check** (NNTool assumes it silently): the formatter's codes must be the network's input
codes. That holds when the input is quantized as int8 with ``S = 2^-7``, ``Z = 0`` **and** the
input was calibrated on the formatter's real range (each end within a quarter of the range:
``x/128-1`` calibrates offset_int8's ``[-1, 1)``; shift_int8 needs ``[0, 1)``). ``aquant`` with a
formatter in place calibrates through it and fixes the input qtype to the formatter's, so the
check then always holds; a formatter added after ``aquant`` is checked and a mismatch raises
one :class:`FormatterError` saying what to change. ``out_int16`` produces int16 codes, which an
SQ8 network (int8 input) cannot take: it is refused once the graph is quantized.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from nnshell.errors import ImageError, NnshellError, UsageError

META_KEY = "input_formatter"

#: FORMAT -> (channels, bits of one raw element, C type of the raw input)
FORMATS: dict[str, tuple[int, int, str]] = {
    "bw8": (1, 8, "unsigned char"),
    "bw16": (1, 16, "unsigned short"),
    "rgb888": (3, 8, "unsigned char"),
    "rgb16": (3, 16, "unsigned short"),
    "rgb565_rgb888": (3, 16, "unsigned short"),
}
#: NORM -> (bits of the codes, log2 of the scale, the float normalisation it stands for)
NORMS: dict[str, tuple[int, int, str]] = {
    "offset_int8": (8, -7, "x: x/128-1"),
    "shift_int8": (8, -7, "x: x/256"),
    "out_int16": (16, -15, "x: x/256"),
}


class FormatterError(NnshellError):
    """An input formatter that does not fit the graph or its input quantization."""


@dataclass(frozen=True)
class Formatter:
    """One input formatter: the raw ``fmt`` and the integer ``norm``."""

    fmt: str
    norm: str

    def __post_init__(self) -> None:
        if self.fmt not in FORMATS:
            raise UsageError(
                f"imageformat: unknown format '{self.fmt}'", f"one of {', '.join(FORMATS)}"
            )
        if self.norm not in NORMS:
            raise UsageError(
                f"imageformat: unknown norm '{self.norm}'", f"one of {', '.join(NORMS)}"
            )

    @property
    def channels(self) -> int:
        """Channels of the raw pixels (1 or 3)."""
        return FORMATS[self.fmt][0]

    @property
    def ctype(self) -> str:
        """C element type of the raw input."""
        return FORMATS[self.fmt][2]

    @property
    def bits(self) -> int:
        """Bits of the formatter's output codes (8 or 16)."""
        return NORMS[self.norm][0]

    @property
    def scale(self) -> float:
        """Scale of the output codes (a power of two)."""
        return float(2.0 ** NORMS[self.norm][1])

    @property
    def norm_func(self) -> str:
        """The float normalisation the norm stands for (as ``set input_norm_func`` text)."""
        return NORMS[self.norm][2]

    @property
    def spec(self) -> str:
        """``FORMAT/NORM``: the compact form carried by
        :class:`nnshell.input.images.InputOptions`."""
        return f"{self.fmt}/{self.norm}"

    @classmethod
    def from_spec(cls, spec: str) -> Formatter:
        """Parse ``FORMAT/NORM``."""
        fmt, _, norm = str(spec).partition("/")
        return cls(fmt, norm)

    def real_range(self) -> tuple[float, float]:
        """The real values the formatter can produce (pixels 0 and 255)."""
        q = self.codes(np.array([0, 255], dtype=np.int64))
        return float(q[0]) * self.scale, float(q[1]) * self.scale

    def qtype(self) -> Any:
        """The QType of the formatter's output codes."""
        from nnshell.quant.fixed_point import QType

        return QType(scale=self.scale, zero_point=0, bits=self.bits, symmetric=True)

    # -- transforms --------------------------------------------------------------------------
    def pixels(self, raw: np.ndarray) -> np.ndarray:
        """Checked int64 channel values 0..255 of raw pixels (565 reduction applied)."""
        p = np.asarray(raw)
        if p.dtype.kind == "f" and not (np.all(np.isfinite(p)) and np.all(p == np.round(p))):
            raise ImageError(f"imageformat {self.fmt}: raw pixels must be integers 0..255")
        p = p.astype(np.int64)
        if p.size and (int(p.min()) < 0 or int(p.max()) > 255):
            raise ImageError(
                f"imageformat {self.fmt}: raw pixels must be 0..255, got "
                f"{int(p.min())}..{int(p.max())}",
                "feed raw images (no -D/-O/-N: the formatter normalises)",
            )
        if self.fmt == "rgb565_rgb888":
            p = p & np.array([0xF8, 0xFC, 0xF8], dtype=np.int64)  # last axis: R, G, B
        return p

    def codes(self, p: np.ndarray) -> np.ndarray:
        """The integer transform of channel values (int64, not yet cast)."""
        if self.norm == "offset_int8":
            return p - 128
        if self.norm == "shift_int8":
            return p >> 1
        return p << 7

    def to_codes(self, raw: np.ndarray) -> np.ndarray:
        """Raw ``(..., H, W, C)`` pixels -> ``(..., C, H, W)`` integer codes (int8 or int16)."""
        q = self.codes(self.pixels(raw))
        q = np.moveaxis(q, -1, -3)
        return np.ascontiguousarray(q.astype(np.int8 if self.bits == 8 else np.int16))

    def to_float(self, raw: np.ndarray) -> np.ndarray:
        """Raw ``(..., H, W, C)`` pixels -> ``(..., C, H, W)`` real values ``q * S`` (float32)."""
        q = np.moveaxis(self.codes(self.pixels(raw)), -1, -3)
        return np.ascontiguousarray(q.astype(np.float32) * np.float32(self.scale))


# -- graph-level record ---------------------------------------------------------------------
def formatters(graph: Any) -> dict[str, Formatter]:
    """The formatters of a graph by input name (empty when there is none)."""
    rec = graph.meta.get(META_KEY) or {}
    return {name: Formatter(str(v["format"]), str(v["norm"])) for name, v in rec.items()}


def get_formatter(graph: Any, name: str | None = None) -> Formatter | None:
    """The formatter of input ``name`` (default: the first graph input), or None."""
    if graph is None or not graph.inputs:
        return None
    return formatters(graph).get(name if name is not None else graph.inputs[0])


def raw_shape(graph: Any, name: str, fmt: Formatter) -> tuple[int, int, int]:
    """``(H, W, C)`` of the raw input the formatter reads for network input ``name``."""
    dims = tuple(int(d) for d in graph.tensors[name].dims)
    if len(dims) != 3 or dims[0] != fmt.channels:
        raise FormatterError(
            f"imageformat {fmt.fmt}: input '{name}' has shape {dims}, the format needs "
            f"({fmt.channels}, H, W) (CHW with {fmt.channels} channel"
            f"{'s' if fmt.channels > 1 else ''})",
            "bw8/bw16 for 1 channel, rgb888/rgb16/rgb565_rgb888 for 3; adjust first",
        )
    return dims[1], dims[2], dims[0]


def with_formatter(meta: Mapping[str, Any], name: str, fmt: Formatter | None) -> dict[str, Any]:
    """A copy of ``meta`` with the formatter of ``name`` set (or removed with None)."""
    out = dict(meta)
    rec = {k: dict(v) for k, v in (meta.get(META_KEY) or {}).items()}
    if fmt is None:
        rec.pop(name, None)
    else:
        rec[name] = {"format": fmt.fmt, "norm": fmt.norm}
    if rec:
        out[META_KEY] = rec
    else:
        out.pop(META_KEY, None)
    return out


def _int16_error(name: str, fmt: Formatter) -> FormatterError:
    return FormatterError(
        f"imageformat {name} {fmt.fmt} out_int16: the formatter gives int16 codes "
        "but SQ8 quantizes the network input as int8",
        f"imageformat {name} {fmt.fmt} shift_int8 (the same x = p/256 as int8), "
        "or offset_int8 for x/128-1",
    )


def fixed_qtypes(graph: Any) -> dict[str, Any]:
    """Input qtypes imposed by formatters (``aquant`` uses them); out_int16 is refused."""
    out = {}
    for name, fmt in formatters(graph).items():
        if fmt.bits != 8:
            raise _int16_error(name, fmt)
        out[name] = fmt.qtype()
    return out


def _fmt_scale(s: float) -> str:
    e = np.log2(s)
    return f"2^{int(e)}" if float(e).is_integer() else f"{s:.6g}"


def check_formatter(graph: Any, qstate: Any, name: str, fmt: Formatter) -> None:
    """Raise FormatterError unless ``fmt``'s codes are the quantized input codes of ``name``."""
    if qstate is None:
        return
    if getattr(qstate, "scheme", "SQ8") == "POW2":
        from nnshell.input.formatter_pow2 import check_pow2_formatter

        check_pow2_formatter(qstate, name, fmt)
        return
    if getattr(qstate, "scheme", "SQ8") != "SQ8":
        raise FormatterError(
            f"imageformat: the graph is quantized {qstate.scheme}; input formatters are checked "
            "against SQ8 and POW2 input codes only",
            "fusions --scale8 and aquant -s SQ8",
        )
    if fmt.bits != 8:
        raise _int16_error(name, fmt)
    q = qstate.tensors.get(name)
    if q is None:
        return
    lo, hi = qstate.ranges.get(name, (float("nan"), float("nan")))
    if _matches(q, lo, hi, fmt):
        return
    flo, fhi = fmt.real_range()
    what = {
        "offset_int8": "q = p-128, x = p/128-1",
        "shift_int8": "q = p>>1, x = p/256",
    }[fmt.norm]
    if q.per_channel:
        have = f"'{name}' is quantized per channel"
    else:
        have = (
            f"'{name}' was calibrated on [{lo:.4g}, {hi:.4g}] and quantized with "
            f"S={_fmt_scale(float(q.scale))} Z={q.zero_point}"
        )
    other = [
        n
        for n in ("offset_int8", "shift_int8")
        if n != fmt.norm and _matches(q, lo, hi, Formatter(fmt.fmt, n))
    ]
    before = "open the model again and run imageformat before aquant (calibration then runs "
    before += "through the formatter and fixes the input codes)"
    if other:
        fix = f"use 'imageformat {name} {fmt.fmt} {other[0]}' (it matches the input); or {before}"
    elif fmt.norm == "offset_int8":
        fix = f'set input_norm_func "{fmt.norm_func}" and re-run aquant, or {before}'
    else:
        fix = before
    raise FormatterError(
        f"imageformat {fmt.fmt} {fmt.norm} ({what}, S=2^-7 Z=0 on [{flo:g}, {fhi:g}]) does not "
        f"match the input quantization: {have}",
        fix,
    )


def _matches(q: Any, lo: float, hi: float, fmt: Formatter) -> bool:
    """Same codes (int8/16, S, Z = 0) and a calibrated range at the formatter's (±25%)."""
    flo, fhi = fmt.real_range()
    tol = 0.25 * (fhi - flo)
    known = bool(np.isfinite(lo) and np.isfinite(hi))
    return (
        not q.per_channel
        and q.bits == fmt.bits
        and q.zero_point == 0
        and abs(float(q.scale) - fmt.scale) <= 1e-9 * fmt.scale
        and (not known or (abs(lo - flo) <= tol and abs(hi - fhi) <= tol))
    )


# -- executors: raw feeds ----------------------------------------------------------------------
def _raw_feed(graph: Any, name: str, value: np.ndarray) -> Formatter | None:
    fmt = get_formatter(graph, name)
    if fmt is None:
        return None
    want = tuple(int(d) for d in graph.tensors[name].dims)
    shape = tuple(np.shape(value)[1:])
    if shape == want:
        return None
    try:
        return fmt if shape == raw_shape(graph, name, fmt) else None
    except FormatterError:
        return None


def format_feed(graph: Any, name: str, value: np.ndarray) -> np.ndarray:
    """A batched raw HWC feed of a formatted input -> the float CHW network input."""
    fmt = _raw_feed(graph, name, value)
    return value if fmt is None else fmt.to_float(value)


def format_feed_int(graph: Any, name: str, value: np.ndarray) -> np.ndarray | None:
    """A batched raw HWC feed of a formatted input -> its integer codes (None: not raw)."""
    fmt = _raw_feed(graph, name, value)
    return None if fmt is None else fmt.to_codes(value)


__all__ = [
    "FORMATS",
    "META_KEY",
    "NORMS",
    "Formatter",
    "FormatterError",
    "check_formatter",
    "fixed_qtypes",
    "format_feed",
    "format_feed_int",
    "formatters",
    "get_formatter",
    "raw_shape",
    "with_formatter",
]
