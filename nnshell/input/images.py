"""Loading calibration and validation inputs with NNTool's input options.

The pipeline for one file is fixed and mirrors NNTool so its command lines carry over:

1. decode (PIL for images, the ``.npy`` header then its data for ``.npy``, the bytes for
   ``.raw``), every file opened through :mod:`nnshell.safeio` (regular files within
   ``NNSHELL_MAX_IMAGE_BYTES`` only: a FIFO or device is refused, never waited on), refusing
   decompression bombs and truncated or corrupt files with one
   :class:`~nnshell.errors.ImageError` naming the file;
2. ``-M`` mode conversion and ``-H``/``-W`` bilinear resize (images only);
3. a float32 array, HWC or HW, holding the raw pixel values 0..255 unless told otherwise;
4. ``x = x / D + O`` (``-D``, ``-O``), then ``-N`` (a :mod:`nnshell.input.expr` expression);
5. layout: ``-T`` transposes HWC to CHW; without it an HWC image whose permuted shape is the
   expected CHW shape is transposed automatically and the caller is told through
   :class:`LoadReport` so it can say so once.

Nothing here prints; callers report.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import re
import struct
import warnings
import zlib
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from nnshell import safeio
from nnshell.errors import ExpressionError, ImageError, SettingError, UsageError
from nnshell.input.expr import NormFunc, compile_expression
from nnshell.input.formatter import Formatter

#: File name extensions :func:`expand_files` picks up (lower case, without the dot).
IMAGE_EXTENSIONS: tuple[str, ...] = ("png", "pgm", "ppm", "jpg", "jpeg", "bmp", "npy", "raw", "dat")
#: Largest image accepted, in pixels, checked on the header before any pixel is decoded.
MAX_PIXELS = 64 * 1024 * 1024
#: PIL modes ``-M`` accepts (the ones that give meaningful numbers per pixel).
PIL_MODES: tuple[str, ...] = ("1", "L", "LA", "RGB", "RGBA", "I", "F", "CMYK", "YCbCr", "HSV")
#: ``-M`` modes beyond PIL's: ``BGR`` is RGB with the channels reversed (Caffe-trained models
#: such as open-nsfw, OpenCV pipelines).
EXTRA_MODES: tuple[str, ...] = ("BGR",)

_FIT_HINT = "-H/-W to resize, -M L|RGB to convert"


@dataclass(frozen=True)
class InputOptions:
    """NNTool's input options as plain data (only str/int/float/bool/None, so JSON-friendly).

    ``transpose`` (-T) HWC->CHW; ``divisor`` (-D) and ``offset`` (-O) give ``x / D + O``;
    ``norm_func`` (-N) is applied after them; ``height``/``width`` (-H/-W) resize bilinearly;
    ``mode`` (-M) is a PIL mode such as ``"L"`` or ``"RGB"``; ``raw_dtype`` (-F) is the numpy
    dtype of ``.raw`` files (default uint8) and, if given, the dtype ``.npy`` files must hold.
    Values are checked on construction so a bad option fails before any file is read.
    """

    transpose: bool = False
    divisor: float | None = None
    offset: float | None = None
    norm_func: str | None = None
    height: int | None = None
    width: int | None = None
    mode: str | None = None
    raw_dtype: str | None = None
    #: ``FORMAT/NORM`` of an input formatter (``imageformat``): raw HWC pixels are read and
    #: turned into the network input by :mod:`nnshell.input.formatter`.
    formatter: str | None = None

    def __post_init__(self) -> None:
        if self.divisor is not None and self.divisor == 0:
            raise UsageError("-D 0: the divisor must not be zero")
        for flag, value in (("-H", self.height), ("-W", self.width)):
            if value is not None and (isinstance(value, bool) or int(value) != value or value < 1):
                raise UsageError(f"{flag} {value}: must be a positive integer")
        if self.mode is not None and self.mode not in PIL_MODES + EXTRA_MODES:
            raise UsageError(
                f"-M {self.mode}: not a supported image mode",
                hint=f"one of {', '.join(PIL_MODES + EXTRA_MODES)}",
            )
        if self.raw_dtype is not None:
            try:
                dt = np.dtype(self.raw_dtype)
            except TypeError:
                dt = None
            if dt is None or dt.kind not in "iuf":
                raise UsageError(
                    f"-F {self.raw_dtype}: not a numeric numpy dtype",
                    hint="e.g. uint8, int8, int16, float32",
                )
        if self.norm_func is not None:
            _norm(self.norm_func)
        if self.formatter is not None:
            Formatter.from_spec(self.formatter)

    def with_overrides(self, **changes: Any) -> InputOptions:
        """Return a copy with the given fields replaced; ``None`` values mean "not given".

        This is how per-command options are laid over the saved defaults. Unknown names raise
        :class:`SettingError`.
        """
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise SettingError(f"unknown input option(s): {', '.join(unknown)}")
        given = {k: v for k, v in changes.items() if v is not None}
        return dataclasses.replace(self, **given) if given else self

    def to_dict(self) -> dict[str, Any]:
        """The options as a JSON-ready dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InputOptions:
        """Rebuild options saved with :meth:`to_dict`; unknown keys raise SettingError."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise SettingError(f"unknown input option(s) in saved state: {', '.join(unknown)}")
        return cls(**data)


def describe_inputs(opts: InputOptions) -> str:
    """The options that differ from the defaults, with their flags (``-N 'x: x/128-1'``), or
    ``none (raw pixel values)``: short enough for a warning line that names two of them."""
    flags = {
        "transpose": "-T",
        "divisor": "-D",
        "offset": "-O",
        "norm_func": "-N",
        "height": "-H",
        "width": "-W",
        "mode": "-M",
        "raw_dtype": "-F",
        "formatter": "formatter",
    }
    parts = []
    for name, value in opts.to_dict().items():
        if value is None or value is False or value == "":
            continue
        flag = flags.get(name, name)
        parts.append(
            flag
            if value is True
            else f"{flag} {value!r}"
            if isinstance(value, str)
            else f"{flag} {value:g}"
            if isinstance(value, float)
            else f"{flag} {value}"
        )
    return ", ".join(parts) if parts else "none (raw pixel values)"


@dataclass
class LoadReport:
    """What the loader did on its own initiative, so the caller can mention it once.

    Pass one to :func:`load_image` / :func:`iter_batches`; it accumulates over files.
    """

    loaded: int = 0
    auto_transposed: int = 0
    first_auto_transposed: str | None = None

    def _add(self, path: str, transposed: bool) -> None:
        self.loaded += 1
        if transposed:
            self.auto_transposed += 1
            if self.first_auto_transposed is None:
                self.first_auto_transposed = path


@lru_cache(maxsize=32)
def _norm(text: str) -> NormFunc:
    return compile_expression(text)


def _ext(path: str) -> str:
    return os.path.splitext(path)[1].lower().lstrip(".")


def _is_input(path: str) -> bool:
    """Whether a folder or glob entry is an input file: a regular file with an image extension.

    A FIFO, device, socket or dangling link with such an extension is refused with one line
    naming it (reading it later would hang or never end, and a silently smaller data set is
    worse than an error: bad images are refused too); folders are skipped.
    """
    if _ext(path) not in IMAGE_EXTENSIONS or os.path.isdir(path):
        return False
    safeio.check_regular(path, "image", ImageError)
    return True


def _folder_inputs(folder: str) -> list[str]:
    """The input files of one folder, sorted; ``scandir`` knows most entries' type without a
    ``stat`` each, so only links and odd entries cost a system call."""
    found = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if _ext(entry.name) not in IMAGE_EXTENSIONS:
                continue
            if entry.is_file() or _is_input(entry.path):
                found.append(entry.path)
    return sorted(found)


def expand_files(specs: Sequence[str]) -> list[str]:
    """Expand files, directories (their image files, non-recursive) and globs, in sorted order.

    Each spec must contribute at least one file: an empty directory or a glob matching nothing
    is an error naming it rather than a silently smaller data set. Only regular files are
    inputs: a FIFO or device named directly or found in a folder is an error naming it.
    """
    if isinstance(specs, str):
        specs = [specs]
    if not specs:
        raise ImageError("no input files given", hint="give files, a directory or a glob")
    out: list[str] = []
    for spec in specs:
        path = os.path.expanduser(spec)
        if os.path.isdir(path):
            found = _folder_inputs(path)
            if not found:
                raise ImageError(
                    f"no image files in '{spec}'", hint=f"supported: {', '.join(IMAGE_EXTENSIONS)}"
                )
        elif os.path.isfile(path):
            if _ext(path) not in IMAGE_EXTENSIONS:
                raise ImageError(
                    f"'{spec}' is not a supported input file",
                    hint=f"supported: {', '.join(IMAGE_EXTENSIONS)}",
                )
            found = [path]
        elif os.path.lexists(path):  # a FIFO, device, socket or dangling link: refuse it
            safeio.check_regular(path, "image", ImageError)
            raise ImageError(f"'{spec}' is not a regular file")  # raced into something else
        elif glob.has_magic(path):
            found = sorted(p for p in glob.glob(path) if _is_input(p))
            if not found:
                raise ImageError(f"no image files match '{spec}'")
        else:
            raise ImageError(f"'{spec}' does not exist")
        out.extend(found)
    return out


_LABEL = re.compile(r"_(\d+)$", re.ASCII)


def label_from_name(path: str) -> int | None:
    """The class label encoded in a file name: the last ``_`` field of the stem, if an integer.

    ``0123_7.png`` -> 7. A stem without ``_`` (``0123.png``) has no label: a bare number is
    more often an index than a class.
    """
    m = _LABEL.search(Path(path).stem)
    return int(m.group(1)) if m else None


def _pil() -> Any:
    """Import PIL lazily and make its own decompression-bomb warning an error.

    The filter is (re)installed on every call because test runners and callers may reset the
    warning filters; installing an identical filter again is cheap and does not duplicate it.
    """
    from PIL import Image

    warnings.filterwarnings("error", category=Image.DecompressionBombWarning)
    return Image


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: Colour types of 8-bit PNGs :func:`_plain_png` reads, with their PIL mode (= raw mode).
_PLAIN_PNG_MODES = {0: "L", 2: "RGB", 4: "LA", 6: "RGBA"}
#: Chunks before the image data that change nothing PIL decodes (any other goes to PIL).
_PLAIN_PNG_CHUNKS = frozenset({b"gAMA", b"cHRM", b"sRGB", b"pHYs", b"tIME", b"tEXt"})


#: Largest file :func:`_plain_png` reads whole (larger ones are streamed by PIL).
_PLAIN_PNG_MAX_BYTES = 16 << 20


def _read_fd(fd: int, size: int) -> bytes | None:
    """``size`` bytes of an open regular file in one system call (None: a short read)."""
    try:
        data = os.read(fd, size)
    except OSError:
        return None
    return data if len(data) == size else None


def _small_file(path: str) -> bytes | None:
    """The whole file in two system calls (None: above the size limit or a short read).

    Opened through :func:`nnshell.safeio.open_fd`: a FIFO, device or missing file is an
    ImageError, never a hang.
    """
    fd, st = safeio.open_fd(path, "image", safeio.IMAGE, ImageError)
    try:
        return _read_fd(fd, st.st_size) if st.st_size <= _PLAIN_PNG_MAX_BYTES else None
    finally:
        os.close(fd)


def _plain_png(path: str, Image: Any) -> Any:
    """:func:`_plain_png_data` of the file at ``path`` (None: not a plain PNG)."""
    data = _small_file(path)
    return None if data is None else _plain_png_data(data, Image)


def _plain_png_data(data: bytes, Image: Any) -> Any:
    """A plain PNG decoded by PIL's own PNG decoder without its per-file Python parsing.

    Plain: 8-bit L, LA, RGB or RGBA, not interlaced, every chunk's CRC right, the image data in
    consecutive IDAT chunks followed by IEND, nothing else but :data:`_PLAIN_PNG_CHUNKS` (what
    small calibration images are). The same zlib stream goes through the same decoder as in
    ``Image.open(path).load()``, so the pixels are the same, in about two thirds of the time on
    small images. None for anything else, which PIL's full reader then decodes (or reports).
    """
    if not data.startswith(_PNG_SIGNATURE) or len(data) < 45:
        return None
    view = memoryview(data)
    length, cid = struct.unpack_from(">I4s", data, 8)
    if cid != b"IHDR" or length != 13:
        return None
    w, h, depth, ctype, compression, filtering, interlace = struct.unpack_from(">IIBBBBB", data, 16)
    mode = _PLAIN_PNG_MODES.get(ctype)
    limit = Image.MAX_IMAGE_PIXELS or MAX_PIXELS
    if mode is None or depth != 8 or compression or filtering or interlace:
        return None
    if not 0 < w * h <= min(MAX_PIXELS, limit):
        return None
    idat: list[memoryview] = []
    pos = 8
    while pos + 12 <= len(data):
        length, cid = struct.unpack_from(">I4s", data, pos)
        end = pos + 8 + length
        if end + 4 > len(data) or data[end : end + 4] != zlib.crc32(view[pos + 4 : end]).to_bytes(
            4, "big"
        ):
            return None
        if cid == b"IDAT":
            idat.append(view[pos + 8 : end])
        elif cid == b"IEND":
            break
        elif idat or (pos > 8 and cid not in _PLAIN_PNG_CHUNKS):
            return None  # a chunk after the image data, or one that may matter
        pos = end + 4
    else:
        return None  # no IEND
    if not idat:
        return None
    try:
        return Image.frombytes(mode, (w, h), b"".join(idat), "zip", mode)
    except Exception:  # noqa: BLE001 - PIL's full reader gives the verdict and the message
        return None


def _read_pil(path: str, opts: InputOptions, expected: tuple[int, ...]) -> np.ndarray:
    """The decoded pixels as float32 (the raw values: 0..255 for 8-bit images)."""
    return _decode_pil(path, opts, expected).astype(np.float32, copy=False)


def _decode_pil(path: str, opts: InputOptions, expected: tuple[int, ...]) -> np.ndarray:
    """The decoded pixels in the image's own dtype (uint8 for 8-bit modes): 4x smaller than
    float32 to cache and transpose; widening to float32 later gives the same numbers."""
    Image = _pil()
    name = os.path.basename(path)
    # one open and one fstat: a FIFO, device or oversized file is refused here, and PIL reads
    # this same descriptor (never the path again, which could meanwhile be swapped)
    fd, st = safeio.open_fd(path, "image", safeio.IMAGE, ImageError)
    fh = None
    try:
        plain = None
        if path[-4:].lower() == ".png" and st.st_size <= _PLAIN_PNG_MAX_BYTES:
            data = _read_fd(fd, st.st_size)
            plain = None if data is None else _plain_png_data(data, Image)
        if plain is None:
            os.lseek(fd, 0, os.SEEK_SET)
            fh = os.fdopen(fd, "rb", closefd=False)
        with plain if plain is not None else Image.open(fh) as img:
            w, h = img.size
            if w * h > MAX_PIXELS:
                raise ImageError(
                    f"'{name}' is {w}x{h} pixels, above the limit of {MAX_PIXELS} "
                    "(possible decompression bomb)"
                )
            if plain is None:
                img.load()
            if opts.mode is not None:
                img = img.convert("RGB" if opts.mode == "BGR" else opts.mode)
            elif img.mode == "P":
                img = img.convert("RGBA" if "transparency" in img.info else "RGB")
            elif img.mode in ("1", "PA"):
                img = img.convert("L" if img.mode == "1" else "LA")
            if opts.height is not None or opts.width is not None:
                size = _target_size(opts, expected, (h, w))
                if img.mode.startswith("I;16"):
                    img = img.convert("I")
                if size != (h, w):
                    img = img.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            arr = np.asarray(img)
            if opts.mode == "BGR":  # a view: the copy happens once, when the batch is stacked
                arr = arr[..., ::-1]
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(
            f"'{name}' claims more pixels than PIL allows (possible decompression bomb)"
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError):
        raise ImageError(f"'{name}' is not a readable image (truncated or corrupt)") from None
    finally:
        if fh is not None:
            fh.close()
        os.close(fd)
    return arr


def _target_size(
    opts: InputOptions, expected: tuple[int, ...], current: tuple[int, int]
) -> tuple[int, int]:
    """(height, width) to resize to: -H/-W, a missing one taken from the model input."""
    hw = _expected_hw(expected)
    h = opts.height if opts.height is not None else (hw[0] if hw else current[0])
    w = opts.width if opts.width is not None else (hw[1] if hw else current[1])
    return int(h), int(w)


def _expected_hw(expected: tuple[int, ...]) -> tuple[int, int] | None:
    if len(expected) == 2:
        return expected[0], expected[1]
    if len(expected) == 3:
        if expected[0] in (1, 2, 3, 4) and expected[2] not in (1, 2, 3, 4):
            return expected[1], expected[2]
        return expected[0], expected[1]
    return None


def _npy_header(fh: Any, name: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    """Shape, Fortran order and dtype from an ``.npy`` header (never the data, never pickles).

    numpy's own header readers cap the header at 10,000 bytes; whatever they raise on a
    hostile header (a malformed dict, a dtype too large to exist) is one ImageError line.
    """
    fmt = np.lib.format
    try:
        version = fmt.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(fh)
        elif version == (2, 0):
            shape, fortran, dtype = fmt.read_array_header_2_0(fh)
        else:  # 3.0 only differs for structured dtypes with non-Latin-1 names
            raise ValueError(f"version {version}")
    except (OSError, ValueError, EOFError, SyntaxError, TypeError, OverflowError, MemoryError):
        raise ImageError(f"'{name}' is not a readable .npy array (corrupt or pickled)") from None
    if any(d < 0 for d in shape):
        raise ImageError(f"'{name}' claims shape {shape} (corrupt .npy header)")
    return tuple(int(d) for d in shape), bool(fortran), dtype


def _read_exact(fh: BinaryIO, nbytes: int, name: str) -> bytes:
    """``nbytes`` already checked against the file's size: a read error or a file that shrank
    since is one clear ``ImageError`` naming the file."""
    try:
        data = fh.read(nbytes)
    except OSError as exc:
        raise ImageError(f"cannot read '{name}': {exc.strerror or exc}") from None
    if len(data) != nbytes:
        raise ImageError(f"'{name}' shrank while being read")
    return data


def _read_npy(path: str, opts: InputOptions) -> np.ndarray:
    """A ``.npy`` input read bounded: the header is checked against the file's size before a
    byte of data is read, so a header claiming a huge shape allocates nothing."""
    name = os.path.basename(path)
    fd, st = safeio.open_fd(path, "input file", safeio.IMAGE, ImageError)
    with os.fdopen(fd, "rb") as fh:
        shape, fortran, dtype = _npy_header(fh, name)
        if dtype.kind not in "biuf":
            raise ImageError(f"'{name}' does not hold a numeric array")
        if opts.raw_dtype is not None and dtype != np.dtype(opts.raw_dtype):
            raise ImageError(
                f"'{name}' holds {dtype}, but -F says {np.dtype(opts.raw_dtype)}",
                hint="drop -F for .npy files or convert the file",
            )
        count = 1
        for d in shape:  # Python ints: no overflow whatever the header claims
            count *= d
        nbytes = count * dtype.itemsize
        held = st.st_size - fh.tell()
        if nbytes > held:
            raise ImageError(
                f"'{name}' claims shape {shape} of {dtype} ({nbytes:,} bytes) but holds "
                f"{max(held, 0):,} bytes (corrupt or truncated)"
            )
        data = _read_exact(fh, nbytes, name)
    arr = np.frombuffer(data, dtype).reshape(shape, order="F" if fortran else "C")
    return arr.astype(np.float32)


def _read_raw(path: str, opts: InputOptions, expected: tuple[int, ...]) -> np.ndarray:
    """A headerless ``.raw`` file: ``prod(expected)`` values of ``-F`` (uint8 by default); a
    ``.dat`` file the same, float32 by default (NNTool reads other files with ``--nptype``,
    float32 by default, e.g. the GAP SDK expressions example's ``samples/input_N.dat``)."""
    name = os.path.basename(path)
    dt = np.dtype(opts.raw_dtype or ("float32" if _ext(path) == "dat" else "uint8"))
    want = int(np.prod(expected)) * dt.itemsize
    fd, st = safeio.open_fd(path, "input file", safeio.IMAGE, ImageError)
    with os.fdopen(fd, "rb") as fh:
        if st.st_size != want:
            raise ImageError(
                f"'{name}' has {st.st_size} bytes, the input {expected} of {dt} needs {want}",
                hint="-F to set the raw element type",
            )
        data = _read_exact(fh, want, name)
    return np.frombuffer(data, dt).astype(np.float32).reshape(expected)


def _normalise(arr: np.ndarray, opts: InputOptions, name: str) -> np.ndarray:
    if opts.divisor is not None:
        arr = arr / np.float32(opts.divisor)
    if opts.offset is not None:
        arr = arr + np.float32(opts.offset)
    if opts.norm_func is not None:
        try:
            arr = _norm(opts.norm_func)(arr, channel_axis=_channel_axis(arr, opts, name))
        except ExpressionError as exc:
            raise ExpressionError(f"{exc.message} ('{name}')", hint=exc.hint) from None
    return arr.astype(np.float32, copy=False)


def _channel_axis(arr: np.ndarray, opts: InputOptions, name: str) -> int | None:
    """The axis per-channel lists of ``-N`` apply to, or None when the expression has none.

    Normalisation runs before the layout step: decoded images are HWC (channels last); a
    ``.npy`` may be CHW. The last axis is taken when it has as many entries as the lists, else
    the third from last (CHW, with or without a batch axis)."""
    n = _norm(opts.norm_func).channels if opts.norm_func is not None else 0
    if not n:
        return None
    if arr.ndim >= 1 and arr.shape[-1] == n:
        return -1
    if arr.ndim >= 3 and arr.shape[-3] == n:
        return -3
    raise ExpressionError(
        f"-N '{opts.norm_func}': per-channel lists of {n} values, but '{name}' has shape "
        f"{tuple(arr.shape)} (no axis of {n} channels)",
        hint="give as many values as the image has channels (-M RGB converts to 3)",
    )


def _layout(
    arr: np.ndarray, opts: InputOptions, expected: tuple[int, ...], name: str, raw: bool
) -> tuple[np.ndarray, bool]:
    """Bring ``arr`` to ``expected``; return it and whether it was transposed unasked."""
    shape = tuple(arr.shape)
    if len(shape) == len(expected) + 1 and shape[0] == 1:
        arr, shape = arr[0], shape[1:]  # an .npy saved with its batch axis
    if raw or (shape == expected and (arr.ndim != 3 or not opts.transpose)):
        return arr, False
    if arr.ndim == 2:  # grayscale: -T has nothing to do
        if expected == (1, *shape):
            return arr[None], False
        if expected == (*shape, 1):
            return arr[..., None], False
    if arr.ndim == 3:
        chw = arr.transpose(2, 0, 1)
        if opts.transpose:
            if chw.shape == expected:
                return np.ascontiguousarray(chw), False
            raise ImageError(
                f"'{name}' has shape {shape}, after -T {chw.shape}, but the input expects "
                f"{expected}",
                hint="drop -T" if shape == expected else _FIT_HINT,
            )
        if chw.shape == expected:
            return np.ascontiguousarray(chw), True
    raise ImageError(f"'{name}' has shape {shape}, the input expects {expected}", hint=_FIT_HINT)


def _load(
    path: str, opts: InputOptions, expected: tuple[int, ...], normalise: bool = True
) -> tuple[np.ndarray, bool]:
    if opts.formatter is not None:
        return load_formatted(path, opts, expected), False
    name = os.path.basename(path)
    ext = _ext(path)
    if ext in ("npy", "raw", "dat"):
        arr = _read_npy(path, opts) if ext == "npy" else _read_raw(path, opts, expected)
        if not np.isfinite(arr).all():  # NaN/inf would poison calibration and integer rounding
            raise ImageError(f"'{name}' holds NaN or infinite values")
    else:
        arr = _decode_pil(path, opts, expected)
        if normalise or arr.dtype != np.uint8:
            arr = arr.astype(np.float32, copy=False)
    if normalise:
        arr = _normalise(arr, opts, name)
    return _layout(arr, opts, expected, name, raw=ext in ("raw", "dat"))


def load_image(
    path: str,
    opts: InputOptions,
    expected_shape: tuple[int, ...],
    report: LoadReport | None = None,
) -> np.ndarray:
    """Load one input file as a float32 array of exactly ``expected_shape`` (no batch axis).

    Without -D/-O/-N the values are the raw pixels (0..255 for 8-bit images), as in NNTool.
    ``.raw`` files are taken to be in the model's layout already. If ``report`` is given it
    records an automatic HWC->CHW transpose.
    """
    expected = tuple(int(d) for d in expected_shape)
    arr, transposed = _load(str(path), opts, expected)
    if report is not None:
        report._add(str(path), transposed)
    return arr


def _default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


class DecodeCache:
    """Decoded, normalised images kept between commands, bounded in bytes (oldest out first).

    Users run aquant, validate, qerror and astats over the same folders again and again; the
    session keeps one cache so a folder is decoded once. The key holds the path, the file's size
    and modification time, the input options and the expected shape: an edited file or other
    options decode again. Cached arrays are read-only.
    """

    def __init__(self, max_bytes: int = 256 << 20) -> None:
        self.max_bytes = max_bytes
        self.nbytes = 0
        self._items: OrderedDict[tuple[Any, ...], tuple[np.ndarray, bool]] = OrderedDict()

    def key(self, path: str, opts: InputOptions, expected: tuple[int, ...]) -> tuple[Any, ...]:
        """The cache key of one file (raises OSError for a missing file)."""
        st = os.stat(path)
        return (os.path.abspath(path), st.st_size, st.st_mtime_ns, opts, expected)

    def get(self, key: tuple[Any, ...]) -> tuple[np.ndarray, bool] | None:
        """The cached (array, auto-transposed) for ``key``, or None."""
        return self._items.get(key)

    def put(self, key: tuple[Any, ...], value: tuple[np.ndarray, bool]) -> None:
        """Keep ``value``; evict the oldest entries beyond the byte budget."""
        arr = value[0]
        if arr.nbytes > self.max_bytes or key in self._items:
            return
        arr.setflags(write=False)
        self._items[key] = value
        self.nbytes += arr.nbytes
        while self.nbytes > self.max_bytes:
            _, (old, _) = self._items.popitem(last=False)
            self.nbytes -= old.nbytes


def _cached_load(
    path: str,
    opts: InputOptions,
    expected: tuple[int, ...],
    cache: DecodeCache | None,
) -> tuple[np.ndarray, bool]:
    if cache is None:
        return _load(path, opts, expected, normalise=False)
    try:
        key = cache.key(path, opts, expected)
    except OSError:
        return _load(path, opts, expected, normalise=False)  # raises the ImageError naming it
    hit = cache.get(key)
    if hit is not None:
        return hit
    value = _load(path, opts, expected, normalise=False)
    cache.put(key, value)
    return value


#: ``-N`` operations whose float64 results might depend on where a value sits in the array
#: (SIMD kernels against scalar ones); the rest is IEEE arithmetic, exact per element.
_POSITION_DEPENDENT = re.compile(r"\*\*|//|%|\b(exp|log)\b")


@lru_cache(maxsize=8)
def _uint8_table(opts: InputOptions) -> np.ndarray | None:
    """The normalised values of every pair of pixel values, as 65,536 8-byte entries: entry
    ``k`` holds the float32 of the first then the second byte of the uint16 ``k`` in memory
    order (None: compute batch by batch). Looked up with the batch viewed as uint16, half as
    many lookups as pixels.

    Normalisation is elementwise, so the table gives every pixel exactly the float32 the batch
    computation gives it. Not used when a value normalises to inf/NaN (the batch computation
    names the file) or when the expression uses exp, log, ``**``, ``//`` or ``%``.
    """
    if opts.norm_func is not None and (
        _POSITION_DEPENDENT.search(opts.norm_func) or _norm(opts.norm_func).channels
    ):
        return None  # per-channel lists: a pixel's value depends on its channel
    try:
        table = _normalise(np.arange(256, dtype=np.float32), opts, "table")
    except ExpressionError:
        return None
    if table.shape != (256,) or not np.isfinite(table).all():
        return None
    pairs = np.take(table, np.arange(65536, dtype=np.uint16).view(np.uint8)).view(np.uint64)
    pairs.setflags(write=False)
    return pairs


def _normalise_batch(names: list[str], arrays: list[np.ndarray], opts: InputOptions) -> np.ndarray:
    """Stack decoded images and normalise the whole batch at once (elementwise: the same
    numbers as image by image, without a Python call per image). A failing expression is
    re-evaluated image by image so the error names the file."""
    batch = np.stack(arrays)
    if opts.formatter is not None:  # the formatter already produced the network input
        return batch.astype(np.float32, copy=False)
    if batch.dtype == np.uint8:
        pairs = _uint8_table(opts)
        if pairs is not None and batch.size % 2 == 0:
            flat = np.take(pairs, batch.reshape(-1).view(np.uint16))
            return flat.view(np.float32).reshape(batch.shape)
        batch = batch.astype(np.float32)
    try:
        return _normalise(batch, opts, "batch")
    except ExpressionError:
        for path, arr in zip(names, arrays, strict=True):
            _normalise(arr, opts, os.path.basename(path))
        raise


def iter_batches(
    files: Sequence[str],
    opts: InputOptions,
    expected_shape: tuple[int, ...],
    batch_size: int = 64,
    report: LoadReport | None = None,
    workers: int | None = None,
    cache: DecodeCache | None = None,
) -> Iterator[tuple[list[str], np.ndarray]]:
    """Yield ``(file names, float32 batch of shape (n, *expected_shape))`` in file order.

    Only one batch is decoded at a time, so memory does not grow with the number of files;
    the normalisation (-D/-O/-N) runs once per batch.
    Files of a batch are decoded by up to ``workers`` threads (PIL and zlib release the GIL);
    ``workers=1`` decodes serially. The first bad file raises its ImageError.
    """
    if batch_size < 1:
        raise UsageError(f"batch size {batch_size}: must be at least 1")
    expected = tuple(int(d) for d in expected_shape)
    if workers is None:
        # threads only pay off on large images: small PNGs decode faster serially (measured:
        # 32x32 calibration sets take about half the time without the pool)
        small = int(np.prod(expected)) <= 64 * 64 * 4
        nworkers = 1 if small else _default_workers()
    else:
        nworkers = max(1, workers)
    files = list(files)
    pool = ThreadPoolExecutor(nworkers) if nworkers > 1 else None
    try:
        for start in range(0, len(files), batch_size):
            chunk = [str(f) for f in files[start : start + batch_size]]
            if pool is not None and len(chunk) > 1:
                results = list(pool.map(lambda p: _cached_load(p, opts, expected, cache), chunk))
            else:
                results = [_cached_load(p, opts, expected, cache) for p in chunk]
            if report is not None:
                for p, (_, transposed) in zip(chunk, results, strict=True):
                    report._add(p, transposed)
            yield chunk, _normalise_batch(chunk, [a for a, _ in results], opts)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


# -- formatted inputs: raw pixels read here, normalised by the formatter ---------------------
def read_raw_pixels(path: str, opts: Any, expected: tuple[int, ...]) -> np.ndarray:
    """One image as the raw H x W x C pixels a formatted input takes (before any transform).

    ``opts.formatter`` is ``FORMAT/NORM``; ``expected`` is the network input (C, H, W). bw
    formats read grayscale, rgb formats RGB. The C harness is fed exactly these pixels.
    """
    fmt = Formatter.from_spec(opts.formatter)
    if len(expected) != 3 or expected[0] != fmt.channels:
        raise ImageError(f"imageformat {fmt.fmt}: the network input {expected} is not CHW")
    c, h, w = expected
    raw = (h, w, c)
    name = os.path.basename(path)
    ext = _ext(path)
    if ext == "npy":
        arr = _read_npy(path, opts)
    elif ext in ("raw", "dat"):
        arr = _read_raw(path, opts, raw)
    else:
        mode = "L" if c == 1 else "RGB"
        arr = _read_pil(path, dataclasses.replace(opts, mode=mode), raw)
    if arr.ndim == 2 and c == 1:
        arr = arr[..., None]
    if arr.ndim == 4 and arr.shape[0] == 1:
        arr = arr[0]
    if tuple(arr.shape) != raw:
        raise ImageError(
            f"'{name}' has shape {tuple(arr.shape)}, the raw input of the {fmt.fmt} formatter "
            f"is {raw} (H, W, C)",
            "-H/-W to resize",
        )
    return np.asarray(arr)


def load_formatted(path: str, opts: Any, expected: tuple[int, ...]) -> np.ndarray:
    """Load one raw image for a formatted input and return the float CHW network input.

    -D/-O/-N are refused by the session (the formatter normalises), -T is not needed.
    """
    fmt = Formatter.from_spec(opts.formatter)
    return fmt.to_float(read_raw_pixels(path, opts, expected))
