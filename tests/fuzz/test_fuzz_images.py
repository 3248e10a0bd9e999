"""Corrupt images through aquant, validate and dump: one clear error, the session unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest

from nnshell.errors import ImageError
from nnshell.session import Session
from tests.fuzz.generators import CALIB_DIR, SAMPLE_MODEL, fixed_image_cases, image_cases
from tests.fuzz.harness import check_quantization, run_library_case

CI_SEED = 7
CI_CASES = 90


@pytest.fixture(scope="module")
def quantized() -> Session:
    session = Session()
    session.open(str(SAMPLE_MODEL))
    session.fusions("scale8")
    session.aquant([str(p) for p in sorted(CALIB_DIR.glob("*.png"))[:8]])
    return session


def _run_all(session: Session, folder: Path, cases: list[tuple[str, bytes]]) -> list[str]:
    failures = []
    for name, data in cases:
        path = folder / name
        path.write_bytes(data)
        calls = (
            ("aquant", session.aquant, ([str(path)],)),
            ("validate", session.validate, ([str(path)],)),
            ("dump", session.dump, (str(path),)),
        )
        for cmd, fn, args in calls:
            qstate = session.qstate
            out, _ = run_library_case(session, fn, *args, limit=10)
            if out.kind == "ok" and cmd == "aquant":
                out = check_quantization(session) or out
            if out.failed:
                failures.append(f"{cmd} {name}: {out.detail}")
            elif out.kind == "error":
                assert session.qstate is qstate
        path.unlink()
    return failures


def test_corrupt_images_library(quantized: Session, tmp_path: Path) -> None:
    failures = _run_all(quantized, tmp_path, image_cases(CI_SEED, CI_CASES))
    assert not failures, "\n".join(failures[:20])


@pytest.mark.parametrize(
    "name", ["object_1.npy", "empty_1.npy", "huge_declared_1.png", "text_1.jpg", "nan_1.npy"]
)
def test_hostile_files_are_image_errors(quantized: Session, tmp_path: Path, name: str) -> None:
    data = dict(fixed_image_cases())[name]
    path = tmp_path / name
    path.write_bytes(data)
    qstate = quantized.qstate
    with pytest.raises(ImageError, match=name.replace(".", r"\.")):
        quantized.aquant([str(path)])
    assert quantized.qstate is qstate


@pytest.mark.parametrize("cmd", ["aquant", "validate", "dump"])
def test_corrupt_images_through_shell(shell, tmp_path: Path, cmd: str) -> None:  # noqa: ANN001
    calib = sorted(CALIB_DIR.glob("*.png"))[:4]
    for line in (f"open {SAMPLE_MODEL}", "fusions --scale8", f"aquant {' '.join(map(str, calib))}"):
        ok, _, err = shell.run(line)
        assert ok, err
    cases = dict(fixed_image_cases())
    for name in ("truncated_half_1.png", "object_1.npy", "zero_size_1.png", "huge_declared_1.png"):
        path = tmp_path / name
        path.write_bytes(cases[name])
        qstate = shell.app.session.qstate
        ok, out, err = shell.run(f"{cmd} {path}")
        assert not ok
        assert "Traceback" not in out + err and "internal error" not in err
        errors = [ln for ln in err.splitlines() if ln.startswith("error: ")]
        assert len(errors) == 1 and name in errors[0], err
        assert shell.app.session.qstate is qstate
    ok, _, err = shell.run("qshow")
    assert ok, err
