"""Atomic file writes: a temporary file in the target folder, then ``os.replace``.

An interrupted or failing write (a full disk, a quota, a signal) never leaves a half-written
file where a good one was: the old file stays until the new one is complete. A set of files
(the ``.c`` and ``.h`` of one model) is written in two phases, every temporary file first and
the renames only when all of them are complete, so a full disk keeps the whole previous set.
New files get the mode the user's umask gives (0644 under umask 022), not ``mkstemp``'s 0600.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from nnshell.errors import NnshellError


def umask() -> int:
    """The process umask, read without changing it where Linux allows (``/proc``), else by
    setting it and putting it back (the only other way in Python; not thread-safe)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode of a new ordinary file under the current umask (0644 under umask 022)."""
    return 0o666 & ~umask()


def os_error_text(exc: OSError, fallback: str | os.PathLike[str]) -> str:
    """``'<file>': <reason>`` of an OSError, on one line (the reason without errno noise)."""
    where = exc.filename if exc.filename is not None else fallback
    return f"'{where}': {exc.strerror or exc}"


def _write_fd(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd`` (``os.write`` may write less than asked)."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _temp_for(path: Path, mode: int) -> str:
    """Create and fill nothing yet: a temporary file next to ``path`` with ``mode``."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:64]}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
    finally:
        os.close(fd)
    return tmp


def write_temp(folder: Path, prefix: str, data: bytes, mode: int, durable: bool = False) -> str:
    """A complete temporary file ``<prefix>*.tmp`` in ``folder`` holding ``data`` with ``mode``.

    ``durable`` fsyncs it before returning (a state's commit protocol needs the bytes on disk
    before the rename). On any error the temporary file is removed and the error propagates.
    """
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=folder)
    try:
        try:
            if hasattr(os, "fchmod"):  # mkstemp creates 0600; these are ordinary files
                os.fchmod(fd, mode)
            _write_fd(fd, data)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return tmp


def fsync_dir(folder: Path) -> None:
    """Make the renames in ``folder`` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_files(files: Mapping[Path, bytes]) -> list[Path]:
    """Write every ``path -> bytes`` of ``files`` atomically as one set; return the paths.

    Each folder must exist. Every temporary file is written completely before any is renamed
    over its target; on any error all temporary files are removed and the OSError propagates
    (the caller turns it into its one-line error), so the targets keep their previous bytes.
    """
    mode = file_mode()
    temps: list[tuple[str, Path]] = []
    current = Path(".")
    try:
        for target, data in files.items():
            current = Path(target)
            tmp = write_temp(current.parent, f".{current.name[:64]}.", data, mode)
            temps.append((tmp, current))
        for tmp, current in temps:
            os.replace(tmp, current)
    except BaseException as exc:
        for tmp, _ in temps:
            with contextlib.suppress(FileNotFoundError):  # already renamed into place
                os.remove(tmp)
        if isinstance(exc, OSError) and exc.errno is not None:
            # name the file the user asked for, not the temporary one (or none, for os.write)
            raise OSError(exc.errno, exc.strerror, str(current)) from None
        raise
    return [Path(p) for p in files]


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write_files`)."""
    atomic_write_files({Path(path): data})


def atomic_write_npz(path: str, arrays: Mapping[str, np.ndarray]) -> None:
    """Write ``arrays`` as an uncompressed .npz at ``path`` atomically.

    A failure to write (full disk, no permission) is one :class:`NnshellError` line naming the
    file; the previous file at ``path``, if any, is kept.
    """
    folder = os.path.dirname(os.path.abspath(path)) or "."
    if not os.path.isdir(folder):
        raise NnshellError(f"cannot write '{path}': folder '{folder}' does not exist")
    tmp = ""
    try:
        tmp = _temp_for(Path(path).absolute(), file_mode())
        with open(tmp, "wb") as fh:
            np.savez(fh, **dict(arrays))
        os.replace(tmp, path)
    except OSError as exc:
        if tmp and os.path.exists(tmp):
            os.remove(tmp)
        raise NnshellError(
            f"cannot write {os_error_text(exc, path)}", "free some space or choose another path"
        ) from None
    except BaseException:
        if tmp and os.path.exists(tmp):
            os.remove(tmp)
        raise


__all__ = [
    "atomic_write_bytes",
    "atomic_write_files",
    "atomic_write_npz",
    "fsync_dir",
    "os_error_text",
    "write_temp",
]
