"""Untrusted models, states and scripts must not run code, write elsewhere or hang (issue 24).

A small seeded subset of the campaign classes of ``tests/fuzz/security.py``; the full campaign
is ``python scripts/fuzz_campaign.py`` (its table is in docs/robustness.md).
"""

from __future__ import annotations

import shutil
import signal
from pathlib import Path

import pytest

from tests.fuzz import security as sec
from tests.fuzz.harness import saved_state

CI_SEED = 24
needs_gcc = pytest.mark.skipif(
    shutil.which("gcc") is None and shutil.which("cc") is None, reason="needs a C compiler"
)


def test_c_code_only_sees_what_the_compiler_sees() -> None:
    """The checker itself: comments, literals, trigraph and backslash continuations."""
    assert sec.injected_code('/* a */ int x; /* system("x") */ const char *s = "system(";') is None
    assert sec.injected_code('/* a */ system("x"); /* b */') is not None
    # a `??/` at the end of a // comment continues it onto the next line (C99 phase 1 and 2)
    assert sec.injected_code("// name ??/\nsystem(0);") is None
    assert sec.injected_code("/* name */ */ system(0); /* */") is not None
    assert sec.injected_code("/* never closed") is not None
    assert sec.injected_code('#include "/etc/passwd"\n') is not None
    assert sec.injected_code('#include "model.h"\n#define NN_A8(off) (a + (off))\n') is None


@needs_gcc
def test_hostile_names_generate_safe_c(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    failures = []
    for i, model in sec.name_cases(CI_SEED, 2, marker):
        res = sec.run_name_case(tmp_path, model, marker, images=2)
        if res.failed:
            failures.append(f"case {i}: {res.detail}")
    assert not failures, "\n".join(failures)


def test_hostile_settings_in_a_state(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "st").mkdir()
    js, _ = saved_state(tmp_path / "st")
    failures = []
    for setting, value in sec.hostile_settings(marker, outside):
        res = sec.run_settings_case(tmp_path, js, setting, value, marker, outside)
        if res.failed:
            failures.append(f"{setting}={value!r:.60}: {res.detail}")
    assert not failures, "\n".join(failures)


def test_script_injections(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    failures = []
    for text, defines in sec.script_cases(CI_SEED, 12, marker):
        res = sec.run_script_case(tmp_path, text, defines, marker)
        if res.failed:
            failures.append(res.detail)
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
@pytest.mark.parametrize("delay", [0.0, 0.05, 0.2])
def test_interrupted_save_keeps_a_state(tmp_path: Path, sig: int, delay: float) -> None:
    res = sec.run_interrupted_save(tmp_path, delay, sig)
    assert not res.failed, res.detail


def test_special_files_are_refused_quickly(tmp_path: Path) -> None:
    failures = []
    for desc, path in sec.special_files(tmp_path):
        for reader, args in sec.special_file_commands(path, tmp_path):
            res = sec.run_special_case(tmp_path, args, limit=30)
            if res.failed:
                failures.append(f"{desc} as {reader}: {res.detail}")
    assert not failures, "\n".join(failures)
