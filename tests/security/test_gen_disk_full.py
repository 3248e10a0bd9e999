"""``gen`` writes its files atomically, as one set, with the user's umask.

A full disk (ENOSPC) during ``gen --target c -M DIR`` or ``gen --target autotiler`` keeps the
previous ``X.c`` and ``X.h`` byte for byte and leaves no temporary file; ``gen``, ``gen
--verify`` and ``dump -P`` on a full disk end in one error line, not an internal error. The
real full disk is a 640 KiB tmpfs (needs root; skipped otherwise) and the portable one an
``os.write`` that fails with ENOSPC for files under the test folder.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import nnshell.atomic as atomic_mod
from nnshell.atomic import atomic_write_npz
from nnshell.errors import CodegenError, ModelFileError, NnshellError
from nnshell.session import Session
from tests.conftest import CALIB_DIR, SAMPLE_MODEL, TEST_DIR
from tests.security.csource import has_gcc

NORM = "x: x/128-1"


@pytest.fixture(scope="module")
def sessions() -> tuple[Session, Session]:
    """Two quantizations of the sample model whose C differs (SQ8 and POW2-8)."""
    out = []
    for scheme in ("SQ8", "POW2"):
        s = Session()
        s.open(str(SAMPLE_MODEL))
        s.set("input_norm_func", NORM)
        s.adjust()
        if scheme == "SQ8":
            s.fusions("scale8")
            s.aquant([str(CALIB_DIR)])
        else:
            s.fusions("pow2")
            s.aquant([str(CALIB_DIR)], scheme="POW2", bits=8)
        out.append(s)
    return out[0], out[1]


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _no_temporaries(folder: Path) -> None:
    assert not [p for p in folder.rglob(".*") if p.is_file()], list(folder.rglob(".*"))


@contextlib.contextmanager
def _failing_writes(monkeypatch: pytest.MonkeyPatch, under: Path) -> Iterator[None]:
    """``os.write`` raises ENOSPC for files under ``under`` (Linux: fds resolved by /proc)."""
    real = os.write

    def write(fd: int, data: bytes) -> int:
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            target = ""
        if target.startswith(str(under)):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd, data)

    with monkeypatch.context() as m:
        m.setattr(atomic_mod.os, "write", write)
        yield


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="resolves fds through /proc")
def test_enospc_keeps_previous_c_files(
    sessions: tuple[Session, Session], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sq8, pow2 = sessions
    out = tmp_path / "c"
    sq8.gen_c(str(out), "net")
    before = _snapshot(out)
    with _failing_writes(monkeypatch, tmp_path), pytest.raises(CodegenError) as info:
        pow2.gen_c(str(out), "net")
    msg = str(info.value)
    assert "\n" not in msg and "No space left" in msg and str(out) in msg
    assert _snapshot(out) == before
    _no_temporaries(out)
    at = tmp_path / "at"
    sq8.gen_autotiler(model_dir=str(at))
    before = _snapshot(at)
    with _failing_writes(monkeypatch, tmp_path), pytest.raises(ModelFileError) as info:
        pow2.gen_autotiler(model_dir=str(at), model_file="cifar_netModel.c")
    assert "\n" not in str(info.value) and "No space left" in str(info.value)
    assert _snapshot(at) == before
    _no_temporaries(at)


def test_files_get_the_umask_mode(sessions: tuple[Session, Session], tmp_path: Path) -> None:
    sq8, _ = sessions
    old = os.umask(0o022)
    try:
        paths = sq8.gen_c(str(tmp_path / "a"), "net")
        paths += sq8.gen_autotiler(model_dir=str(tmp_path / "at"))
        atomic_write_npz(str(tmp_path / "x.npz"), {"a": np.zeros(3)})
        paths.append(tmp_path / "x.npz")
        assert {stat.S_IMODE(p.stat().st_mode) for p in paths} == {0o644}
        os.umask(0o027)
        paths = sq8.gen_c(str(tmp_path / "b"), "net")
        assert {stat.S_IMODE(p.stat().st_mode) for p in paths} == {0o640}
    finally:
        os.umask(old)


@contextlib.contextmanager
def _tmpfs(folder: Path, size: str) -> Iterator[Path]:
    """A small tmpfs at ``folder`` (root only), unmounted afterwards."""
    folder.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root")
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
        capture_output=True,
        check=False,
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {proc.stderr.decode(errors='replace').strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True, check=False)


def _fill(folder: Path) -> None:
    """Fill the file system of ``folder`` to the last byte (unbuffered, shrinking writes)."""
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        size = 1 << 16
        while size:
            try:
                os.write(fd, b"\0" * size)
            except OSError:
                size //= 2
    finally:
        os.close(fd)


def test_real_full_disk(sessions: tuple[Session, Session], tmp_path: Path, shell) -> None:  # noqa: ANN001
    sq8, pow2 = sessions
    with _tmpfs(tmp_path / "disk", "640k") as disk:
        out = disk / "c"
        sq8.gen_c(str(out), "net")
        before = _snapshot(out)
        _fill(disk)
        with pytest.raises(CodegenError) as info:
            pow2.gen_c(str(out), "net")
        assert "\n" not in str(info.value) and "No space left" in str(info.value)
        assert _snapshot(out) == before
        _no_temporaries(out)
        if has_gcc():
            with pytest.raises(NnshellError) as info:
                sq8.gen_verify([str(TEST_DIR)], out_dir=str(disk / "v"))
            assert "\n" not in str(info.value)
        # the shell: one error line each, never "internal error"
        for line in (
            f"open {SAMPLE_MODEL}",
            f"set input_norm_func '{NORM}'",
            "adjust",
        ):
            ok, _, err = shell.run(line)
            assert ok, err
        image = next(iter(sorted(TEST_DIR.glob("*.png"))))
        ok, _, err = shell.run(f"dump {image} -P {disk / 'd.npz'}")
        assert not ok
        lines = err.strip().splitlines()
        assert len(lines) == 1 and "internal" not in err and "No space left" in err, err
        assert not (disk / "d.npz").exists()
        _no_temporaries(disk)
