"""Bounded reads of files that come from other people (models, states, images, scripts).

Why this exists: a path a user names may be a device (``/dev/zero`` never ends), a FIFO (opening
or reading it blocks for ever), a socket, or a sparse multi-gigabyte file. Every reader of an
input file goes through :func:`open_regular` or :func:`read_bytes`, which

* open without blocking (``O_NONBLOCK``, so a FIFO cannot hang the open) and then check the
  *opened* descriptor with ``fstat`` (no race between the check and the read; a symbolic link to
  a device is refused like the device itself);
* accept regular files only;
* refuse a file larger than the limit of its kind *before* reading it, and never read more than
  the limit even if the file grows while it is read.

:func:`open_fd` is the same check for hot loops that read with ``os.read`` (images), and
:func:`check_regular` the ``stat``-only check for walking folders (never blocks).

The limits are generous for real work (a 2 GiB ONNX file is protobuf's own ceiling) and can be
raised with environment variables named in :data:`LIMITS` for the rare user who needs more.
"""

from __future__ import annotations

import io
import os
import stat
from dataclasses import dataclass
from typing import BinaryIO

from nnshell.errors import ModelFileError, NnshellError

MiB = 1 << 20
GiB = 1 << 30


@dataclass(frozen=True)
class Limit:
    """The largest file of one kind, and the environment variable that raises it."""

    kind: str
    default: int
    env: str

    @property
    def bytes(self) -> int:
        """The limit in force: the environment's value (bytes) if set and valid, else default."""
        raw = os.environ.get(self.env)
        if raw:
            try:
                value = int(raw)
            except ValueError:
                return self.default
            if value > 0:
                return value
        return self.default


MODEL = Limit("model", 2 * GiB, "NNSHELL_MAX_MODEL_BYTES")
STATE_JSON = Limit("state file", 512 * MiB, "NNSHELL_MAX_STATE_BYTES")
STATE_ARRAYS = Limit("state array file", 4 * GiB, "NNSHELL_MAX_STATE_ARRAY_BYTES")
IMAGE = Limit("image", 256 * MiB, "NNSHELL_MAX_IMAGE_BYTES")
SCRIPT = Limit("script", 16 * MiB, "NNSHELL_MAX_SCRIPT_BYTES")
TEXT = Limit("text file", 64 * MiB, "NNSHELL_MAX_TEXT_BYTES")
#: All the external data of one ONNX model together (the files next to it that hold weights).
EXTERNAL_DATA = Limit("model's external data", 4 * GiB, "NNSHELL_MAX_EXTERNAL_DATA_BYTES")

#: Every limit, for documentation and tests.
LIMITS: tuple[Limit, ...] = (MODEL, STATE_JSON, STATE_ARRAYS, IMAGE, SCRIPT, TEXT, EXTERNAL_DATA)


def _describe_mode(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def human_bytes(n: int) -> str:
    """A byte count for messages: GiB / MiB with one decimal, else bytes with separators."""
    if n >= GiB:
        return f"{n / GiB:.1f} GiB"
    if n >= MiB:
        return f"{n / MiB:.1f} MiB"
    return f"{n:,} bytes"


#: Read only, never blocking on a FIFO, not inherited by child processes (computed once: the
#: image loop opens thousands of files).
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)


def _article(kind: str) -> str:
    return "an" if kind[:1].lower() in "aeiou" else "a"


def open_fd(
    path: str | os.PathLike[str],
    what: str,
    limit: Limit,
    error: type[NnshellError] = ModelFileError,
) -> tuple[int, os.stat_result]:
    """The raw descriptor of ``path`` and its ``fstat``, if it is a regular file within ``limit``.

    For hot loops (one image after another) that read with ``os.read`` and cannot afford the
    buffered file object: one ``open`` and one ``fstat``, nothing else. The descriptor is left
    ``O_NONBLOCK``, which Linux and the BSDs ignore for regular files (the only kind returned);
    the caller closes it.
    """
    p = os.fspath(path)
    try:
        fd = os.open(p, _OPEN_FLAGS)
    except FileNotFoundError:
        raise error(f"{what} '{p}' not found", "check the path") from None
    except IsADirectoryError:
        raise error(f"{what} '{p}' is a folder, not a file", "name a file") from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        raise error(f"cannot open {what} '{p}': {getattr(exc, 'strerror', None) or exc}") from None
    try:
        st = os.fstat(fd)
        _check_stat(st, p, what, limit, error)
        return fd, st
    except BaseException:
        os.close(fd)
        raise


def _check_stat(
    st: os.stat_result, p: str, what: str, limit: Limit, error: type[NnshellError]
) -> None:
    """Raise ``error`` unless ``st`` is a regular file within ``limit``."""
    if not stat.S_ISREG(st.st_mode):
        raise error(
            f"{what} '{p}' is {_describe_mode(st.st_mode)}: only regular files are read",
            "name a regular file",
        )
    cap = limit.bytes
    if st.st_size > cap:
        raise error(
            f"{what} '{p}' is {human_bytes(st.st_size)}, over the {human_bytes(cap)} limit for "
            f"{_article(limit.kind)} {limit.kind}",
            f"set {limit.env} to a larger number of bytes if the file is genuine",
        )


def check_regular(
    path: str | os.PathLike[str],
    what: str,
    error: type[NnshellError] = ModelFileError,
) -> os.stat_result:
    """``stat`` of ``path`` (links followed) if it is a regular file, else ``error``.

    For walking folders and globs: ``stat`` never blocks, even on a FIFO, so a folder holding
    a FIFO, a device or a dangling link is refused naming that entry instead of hanging later
    when it is read. The size is checked when the file is opened (:func:`open_fd`).
    """
    p = os.fspath(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise error(f"{what} '{p}' not found (a dangling link?)", "check the path") from None
    except (OSError, ValueError) as exc:
        raise error(f"cannot read {what} '{p}': {getattr(exc, 'strerror', None) or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise error(
            f"{what} '{p}' is {_describe_mode(st.st_mode)}: only regular files are read",
            "remove it or name regular files only",
        )
    return st


def open_regular(
    path: str | os.PathLike[str],
    what: str,
    limit: Limit,
    error: type[NnshellError] = ModelFileError,
) -> BinaryIO:
    """Open ``path`` for binary reading if it is a regular file within ``limit``.

    ``what`` names the file in messages ("model", "image", ...). The returned file object is
    an ordinary buffered reader; callers that read it whole should use :func:`read_bytes`, which
    also caps the number of bytes read.
    """
    fd, _ = open_fd(path, what, limit, error)
    try:
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bytes(
    path: str | os.PathLike[str],
    what: str,
    limit: Limit,
    error: type[NnshellError] = ModelFileError,
) -> bytes:
    """The whole content of a regular file within ``limit`` (never more than the limit read)."""
    with open_regular(path, what, limit, error) as fh:
        cap = limit.bytes
        # Ask for what the file holds (plus one byte to see growth), never for the whole limit:
        # a read of ``cap + 1`` would reserve up to the limit in address space up front.
        want = min(os.fstat(fh.fileno()).st_size, cap) + 1
        chunks: list[bytes] = []
        total = 0
        try:
            while total <= cap:
                chunk = fh.read(min(want, cap + 1 - total))
                if not chunk:
                    break
                chunks.append(chunk)
                total += len(chunk)
                want = 1 << 20  # the file grew after fstat: go on in bounded steps
        except OSError as exc:
            raise error(f"cannot read {what} '{os.fspath(path)}': {exc.strerror or exc}") from None
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    if len(data) > cap:
        raise error(
            f"{what} '{os.fspath(path)}' grew beyond the {human_bytes(cap)} limit while being read",
            f"set {limit.env} to a larger number of bytes if the file is genuine",
        )
    return data


def read_text(
    path: str | os.PathLike[str],
    what: str,
    limit: Limit,
    error: type[NnshellError] = ModelFileError,
) -> str:
    """A UTF-8 text file within ``limit`` (a decoding failure is one error line)."""
    data = read_bytes(path, what, limit, error)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(
            f"{what} '{os.fspath(path)}' is not UTF-8 text (byte {exc.start})",
            "save it as UTF-8",
        ) from None


def bytes_stream(
    path: str | os.PathLike[str],
    what: str,
    limit: Limit,
    error: type[NnshellError] = ModelFileError,
) -> io.BytesIO:
    """An in-memory stream of a bounded file, for libraries that want a seekable file object."""
    return io.BytesIO(read_bytes(path, what, limit, error))


__all__ = [
    "EXTERNAL_DATA",
    "IMAGE",
    "LIMITS",
    "MODEL",
    "SCRIPT",
    "STATE_ARRAYS",
    "STATE_JSON",
    "TEXT",
    "Limit",
    "bytes_stream",
    "human_bytes",
    "check_regular",
    "open_fd",
    "open_regular",
    "read_bytes",
    "read_text",
]
