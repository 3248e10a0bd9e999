"""The two files of a saved state on disk: committing a save in one step, reading arrays in bounds.

A state is ``<stem>.json`` plus the npz its ``arrays.file`` names (see :mod:`nnshell.state`).
This module owns everything that touches those files as files; :mod:`nnshell.state` owns what
is in them.

**Saving** (:func:`commit_state`). Two files cannot be renamed together, so the save is arranged
so that only one rename matters: the npz gets a name of its own, ``<stem>.<16 hex>.npz`` (the
start of its SHA-256: deterministic, so saving the same session twice gives the same bytes, and
different for different contents, so the new npz never overwrites the one the current JSON
needs). The sequence is

1. take ``<stem>.json.lock`` with ``flock`` (non-blocking): a second nnshell saving the same state
   is refused in one line naming the holder's pid instead of interleaving its renames;
2. remove what earlier interrupted saves of this stem left: temporary files of our own pattern
   (``.<stem>.json.{json,npz}.XXXXXXXX.tmp``, and the older ``.<stem>.json.XXXXXXXX.tmp`` /
   ``.<stem>.npz.XXXXXXXX.tmp``) and ``<stem>.<16 hex>.npz`` files the current JSON does not
   name (a file of that pattern belongs to ``<stem>.json``; one is kept if a state of that very
   name exists, e.g. ``<stem>.<16 hex>.json``);
3. write both files to temporary names in the target folder (mode ``0666 & ~umask``, like any
   new file), ``fsync`` each;
4. with SIGINT and SIGTERM deferred (recorded and re-delivered afterwards, main thread only):
   rename the npz into place, ``fsync`` the folder, replace the JSON (**the commit**: before it
   the old state is complete, after it the new one), ``fsync`` the folder, then remove the npz
   the old JSON named (only ``<stem>.<16 hex>.npz`` or the old fixed name ``<stem>.npz``).

A kill -9 at any point therefore leaves the old or the new state reopenable, and the next save
cleans whatever the kill left behind. (Without ``fcntl``, on Windows, saves are not locked; the
rest holds.)

**Reading** (:func:`read_arrays`). The npz is opened through :mod:`nnshell.safeio` (regular files
only, size limit), hashed in 1 MiB chunks (never held whole in memory), then only the members the
state refers to are read, each after checking its zip header (stored or deflated, not encrypted,
declared size within the limit, no overlapping entries) and its ``.npy`` header (a plain numeric
or string dtype, at most :data:`MAX_RANK` dimensions, at most :data:`MAX_ELEMENTS` elements, and
exactly as many bytes as the zip entry holds). A member the state does not name is refused
before anything is decompressed. Nothing is unpickled.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import signal
import stat
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from nnshell import safeio
from nnshell.atomic import file_mode, fsync_dir, write_temp
from nnshell.errors import ModelFileError

try:  # POSIX only; on Windows saves are not locked (see the module docstring)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

#: Largest tensor (elements) a state may declare or hold: the ONNX importer's bound.
MAX_ELEMENTS = 1 << 31
#: Most dimensions an array of a state may have.
MAX_RANK = 64
#: Hex digits of the npz's SHA-256 in its file name.
HASH_CHARS = 16
_CHUNK = 1 << 20
#: Temporary-name randomness of ``tempfile.mkstemp``: 8 characters of this set.
_RAND = r"[a-z0-9_]{8}"
#: npz members: dtypes that can hold what a session stores (no objects, records or voids).
_ARRAY_KINDS = "biufcSU"


# --------------------------------------------------------------------------------------------
# names
# --------------------------------------------------------------------------------------------


def npz_name(stem: str, sha256_hex: str) -> str:
    """``<stem>.<first 16 hex digits of the npz's SHA-256>.npz``: the npz of one save."""
    return f"{stem}.{sha256_hex[:HASH_CHARS]}.npz"


def _own_npz_re(stem: str) -> re.Pattern[str]:
    return re.compile(re.escape(stem) + r"\.[0-9a-f]{" + str(HASH_CHARS) + r"}\.npz")


def _temp_re(json_name: str, stem: str) -> re.Pattern[str]:
    """Temporary files of saves of this state, ours and those of the previous writer."""
    return re.compile(
        r"\."
        + re.escape(json_name)
        + r"\.(?:(?:json|npz)\.)?"
        + _RAND
        + r"\.tmp"
        + r"|\."
        + re.escape(stem)
        + r"\.npz\."
        + _RAND
        + r"\.tmp"
    )


# --------------------------------------------------------------------------------------------
# saving
# --------------------------------------------------------------------------------------------


class _SaveLock:
    """``<state>.lock`` held with ``flock`` for the whole save (removed again afterwards).

    The file is removed while still locked, so a writer that opened it just before must notice
    that the path now names another file (or none) and start over: the inode check in
    :meth:`acquire`.
    """

    def __init__(self, json_path: Path) -> None:
        self.path = json_path.with_name(json_path.name + ".lock")
        self.json_path = json_path
        self.fd: int | None = None

    def acquire(self) -> None:
        if fcntl is None:  # pragma: no cover - Windows
            return
        for _ in range(20):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pid = _read_pid(fd)
                os.close(fd)
                raise ModelFileError(
                    f"state '{self.json_path}' is being saved by another nnshell (pid {pid})",
                    "wait until that save ends, or save under another name",
                ) from None
            except OSError:  # a file system without locks (some network mounts): go unlocked
                os.close(fd)
                return
            try:
                same = os.path.samestat(os.stat(self.path), os.fstat(fd))
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
                self.fd = fd
                return
            os.close(fd)  # the previous holder removed it as we opened it: try the new one
        raise ModelFileError(f"cannot lock state '{self.json_path}' (its lock file keeps changing)")

    def release(self) -> None:
        """Remove the lock file, then unlock (by closing); idempotent, the fd is always closed."""
        fd, self.fd = self.fd, None
        if fd is None:
            return
        try:
            with contextlib.suppress(OSError):
                os.unlink(self.path)
        finally:
            os.close(fd)


def _read_pid(fd: int) -> str:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return "unknown"
    return text if text.isdigit() else "unknown"


@contextlib.contextmanager
def deferred_signals() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back for the block, then deliver them (main thread only).

    A Ctrl-C between the two renames of a save would otherwise abandon it half-way; deferring
    it costs at most the few milliseconds of the renames.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []

    def record(signum: int, frame: Any) -> None:
        pending.append(signum)

    previous: dict[int, Any] = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[sig] = signal.signal(sig, record)
        except (ValueError, OSError):  # not settable here: leave it alone
            continue
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)
        for sig in dict.fromkeys(pending):
            signal.raise_signal(sig)


_ARRAYS_FILE = re.compile(rb'"arrays"\s*:\s*\{\s*"file"\s*:\s*("(?:[^"\\]|\\.){1,1000}")')


def current_npz_name(json_path: Path) -> str | None:
    """The npz the JSON at ``json_path`` names, if it is a state written by save_state.

    Only the first 64 KiB are read (``arrays`` is the fourth key of a state), through safeio:
    the old file may be anything, and it is never trusted beyond a plain file name.
    """
    try:
        with safeio.open_regular(json_path, "state file", safeio.STATE_JSON) as fh:
            head = fh.read(1 << 16)
    except (ModelFileError, OSError):
        return None
    m = _ARRAYS_FILE.search(head)
    if m is None:
        return None
    import json

    try:
        name = json.loads(m.group(1).decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(name, str) or os.path.basename(name) != name or name in ("", ".", ".."):
        return None
    return name


def _clean_leftovers(folder: Path, json_path: Path, keep: set[str]) -> None:
    """Remove temporaries and unnamed own npz files that interrupted saves left (see module)."""
    stem = json_path.stem
    temp = _temp_re(json_path.name, stem)
    own = _own_npz_re(stem)
    try:
        names = os.listdir(folder)
    except OSError:
        return
    present = set(names)
    for name in names:
        if name in keep:
            continue
        if temp.fullmatch(name):
            pass
        elif own.fullmatch(name):
            if name[:-4] + ".json" in present:  # the npz of a state called <stem>.<hex>.json
                continue
        else:
            continue
        with contextlib.suppress(OSError):
            if stat.S_ISREG(os.lstat(folder / name).st_mode):
                os.unlink(folder / name)


def _is_removable_old_npz(name: str | None, stem: str, new_name: str) -> bool:
    if name is None or name == new_name:
        return False
    return name == f"{stem}.npz" or _own_npz_re(stem).fullmatch(name) is not None


def commit_state(json_path: Path, text: bytes, npz: str, blob: bytes) -> tuple[Path, Path]:
    """Write ``blob`` as ``npz`` and ``text`` as ``json_path`` with the protocol of the module.

    Returns ``(json path, npz path)``. An OSError is one ModelFileError line; the previous state
    is then untouched.
    """
    folder = json_path.parent
    npz_path = folder / npz
    mode = file_mode()
    lock = _SaveLock(json_path)
    tmps: list[str] = []
    try:
        lock.acquire()
        old = current_npz_name(json_path)
        _clean_leftovers(folder, json_path, {npz, old} if old else {npz})
        tmps.append(write_temp(folder, f".{json_path.name}.npz.", blob, mode, durable=True))
        tmps.append(write_temp(folder, f".{json_path.name}.json.", text, mode, durable=True))
        with deferred_signals():
            os.replace(tmps[0], npz_path)
            tmps.pop(0)
            fsync_dir(folder)
            os.replace(tmps[0], json_path)  # the commit
            tmps.pop(0)
            fsync_dir(folder)
            if _is_removable_old_npz(old, json_path.stem, npz):
                with contextlib.suppress(OSError):
                    os.unlink(folder / str(old))
            lock.release()
    except OSError as exc:
        raise ModelFileError(
            f"cannot save state '{json_path}': {exc.strerror or exc}",
            "choose a writable folder",
        ) from None
    finally:
        for tmp in tmps:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        lock.release()
    return json_path, npz_path


# --------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------


def _npz_error(state: Path, npz_path: Path, what: str) -> ModelFileError:
    return ModelFileError(
        f"state file '{state}': '{npz_path.name}' {what}", "save the state again from the model"
    )


def _hash_file(fh: IO[bytes], limit: safeio.Limit, npz_path: Path) -> str:
    h = hashlib.sha256()
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    total = 0
    while True:
        n = fh.readinto(view)  # type: ignore[attr-defined]
        if not n:
            break
        total += n
        if total > limit.bytes:
            raise ModelFileError(
                f"state array file '{npz_path}' grew beyond the limit while being read",
                f"set {limit.env} to a larger number of bytes if the file is genuine",
            )
        h.update(view[:n])
    return h.hexdigest()


def _entries_declared(fh: IO[bytes]) -> int | None:
    """Entries the zip's end record declares, read before zipfile builds one object per entry."""
    end_rec = getattr(zipfile, "_EndRecData", None)
    if end_rec is None:  # pragma: no cover - a Python without the helper: zipfile decides
        return None
    try:
        rec = end_rec(fh)
    except (OSError, ValueError, zipfile.BadZipFile):
        return None
    if not rec:
        return None
    return int(rec[getattr(zipfile, "_ECD_ENTRIES_TOTAL", 4)])


def _check_dtype(descr: np.dtype[Any], key: str) -> str | None:
    if descr.hasobject or descr.names is not None or descr.subdtype is not None:
        return f"array '{key}' has dtype {descr}, which a state never holds"
    if descr.kind not in _ARRAY_KINDS or descr.itemsize == 0:
        return f"array '{key}' has dtype {descr}, which a state never holds"
    return None


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, key: str) -> np.ndarray | str:
    """One checked array, or the reason it is refused."""
    with zf.open(info) as fh:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, fortran, descr = np.lib.format.read_array_header_1_0(fh)
        elif version == (2, 0):
            shape, fortran, descr = np.lib.format.read_array_header_2_0(fh)
        else:
            return f"array '{key}' has .npy format version {version}"
        why = _check_dtype(descr, key)
        if why:
            return why
        if len(shape) > MAX_RANK or not all(isinstance(d, int) and d >= 0 for d in shape):
            return f"array '{key}' declares shape {shape}"
        count = 1
        for d in shape:
            count *= d
        if count > MAX_ELEMENTS:
            return f"array '{key}' declares shape {shape}: more than {MAX_ELEMENTS:,} elements"
        nbytes = count * descr.itemsize
        if fh.tell() + nbytes != info.file_size:
            return (
                f"array '{key}' declares shape {shape} of {descr} ({nbytes:,} bytes) but its "
                f"entry holds {info.file_size - fh.tell():,} bytes of data"
            )
        flat = np.empty(count, dtype=descr)
        raw = flat.view(np.uint8) if nbytes else None
        done = 0
        while done < nbytes:
            chunk = fh.read(min(_CHUNK, nbytes - done))
            if not chunk:
                return f"array '{key}' is truncated"
            assert raw is not None
            raw[done : done + len(chunk)] = np.frombuffer(chunk, dtype=np.uint8)
            done += len(chunk)
    return flat.reshape(shape, order="F" if fortran else "C")


def read_arrays(
    npz_path: Path, sha256_hex: str, keys: set[str], state: Path
) -> dict[str, np.ndarray]:
    """The arrays ``keys`` of the state ``state`` from ``npz_path``, checked as the module says."""
    limit = safeio.STATE_ARRAYS
    with safeio.open_regular(npz_path, "state array file", limit) as fh:
        size = os.fstat(fh.fileno()).st_size
        if _hash_file(fh, limit, npz_path) != sha256_hex:
            raise _npz_error(
                state,
                npz_path,
                "does not match the state (SHA-256 differs: modified, truncated or from another "
                "save)",
            )
        fh.seek(0)
        declared = _entries_declared(fh)
        if declared is not None and declared > len(keys):
            raise _npz_error(
                state, npz_path, f"holds {declared} entries; the state names {len(keys)} arrays"
            )
        fh.seek(0)
        try:
            return _read_zip(fh, size, keys, state, npz_path)
        except ModelFileError:
            raise
        except Exception as exc:  # noqa: BLE001 - zipfile/zlib/numpy raise many types for bad data
            raise _npz_error(state, npz_path, f"is not readable ({type(exc).__name__})") from None


def _read_zip(
    fh: IO[bytes], size: int, keys: set[str], state: Path, npz_path: Path
) -> dict[str, np.ndarray]:
    with zipfile.ZipFile(fh) as zf:
        infos = zf.infolist()
        by_name: dict[str, zipfile.ZipInfo] = {}
        for info in infos:
            if info.filename in by_name:
                raise _npz_error(state, npz_path, f"holds '{info.filename}' twice")
            by_name[info.filename] = info
        for key in sorted(keys):
            if f"{key}.npy" not in by_name:
                raise _npz_error(
                    state, npz_path, f"does not hold array {key!r}, which the state refers to"
                )
        wanted = {f"{k}.npy" for k in keys}
        extra = sorted(n for n in by_name if n not in wanted)
        if extra:
            raise _npz_error(state, npz_path, f"holds '{extra[0]}', which the state never names")
        if sum(i.compress_size for i in infos) > size:
            raise _npz_error(state, npz_path, "has overlapping entries")
        cap = safeio.STATE_ARRAYS.bytes
        total = 0
        for info in infos:
            if info.flag_bits & 0x1:
                raise _npz_error(state, npz_path, f"entry '{info.filename}' is encrypted")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise _npz_error(
                    state,
                    npz_path,
                    f"entry '{info.filename}' uses compression method {info.compress_type}",
                )
            if info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size:
                raise _npz_error(state, npz_path, f"entry '{info.filename}' has inconsistent sizes")
            total += info.file_size
            if total > cap:
                raise _npz_error(
                    state,
                    npz_path,
                    f"entry '{info.filename}' unpacks beyond the {cap:,}-byte limit of a state's "
                    f"arrays (set {safeio.STATE_ARRAYS.env} if the state is genuine)",
                )
        out: dict[str, np.ndarray] = {}
        for key in sorted(keys):
            arr = _read_member(zf, by_name[f"{key}.npy"], key)
            if isinstance(arr, str):
                raise _npz_error(state, npz_path, arr)
            out[key] = arr
        return out


__all__ = [
    "HASH_CHARS",
    "MAX_ELEMENTS",
    "MAX_RANK",
    "commit_state",
    "current_npz_name",
    "deferred_signals",
    "npz_name",
    "read_arrays",
]
