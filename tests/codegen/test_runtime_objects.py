"""gen --verify compiles the runtime files once per process: an object is reused only for the
same compiler, flags and source/header bytes (gcc, real files)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from nnshell.codegen.verify import CFLAGS, _RuntimeObjects
from nnshell.errors import CodegenError

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")


def _write(folder: Path, value: int) -> None:
    folder.mkdir(exist_ok=True)
    (folder / "nn_t.h").write_text(f"#define NN_T_VALUE {value}\nint nn_t(void);\n")
    (folder / "nn_t.c").write_text('#include "nn_t.h"\nint nn_t(void) { return NN_T_VALUE; }\n')


def test_object_reused_only_for_the_same_bytes_and_flags(tmp_path: Path) -> None:
    cache = _RuntimeObjects()
    cc = shutil.which("gcc") or "gcc"
    a, b = tmp_path / "a", tmp_path / "b"
    _write(a, 1)
    _write(b, 1)
    first = cache.get(cc, CFLAGS, a, "nn_t.c")
    stamp = first.stat().st_mtime_ns
    assert cache.get(cc, CFLAGS, b, "nn_t.c") == first  # same bytes in another model folder
    assert first.stat().st_mtime_ns == stamp  # not compiled again
    _write(b, 2)  # a header the source includes changed
    changed = cache.get(cc, CFLAGS, b, "nn_t.c")
    assert changed != first and changed.is_file()
    flagged = cache.get(cc, [*CFLAGS, "-DNN_EXTRA=1"], a, "nn_t.c")
    assert flagged not in (first, changed)
    assert len({first, changed, flagged}) == 3


def test_a_runtime_that_does_not_compile_is_one_error(tmp_path: Path) -> None:
    _write(tmp_path, 1)
    (tmp_path / "nn_t.c").write_text("int nn_t(void) { return }\n")
    with pytest.raises(CodegenError, match="does not compile"):
        _RuntimeObjects().get(shutil.which("gcc") or "gcc", CFLAGS, tmp_path, "nn_t.c")
