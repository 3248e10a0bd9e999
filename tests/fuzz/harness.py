"""Run fuzz cases against the library and the real shell and classify each outcome.

An outcome is ``ok`` (the input was accepted), ``error`` (one typed NnshellError, one line, the
session exactly as before) or ``FAIL`` (anything else: another exception, a traceback on the
terminal, a multi-line or empty message, a session changed by a failing command, a shell that no
longer runs ``show``, a time limit exceeded). Shared by the CI tests and the campaign script.
"""

from __future__ import annotations

import contextlib
import io
import math
import re
import signal
import sys
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from nnshell.errors import NnshellError

ERROR_LINE = re.compile(r"^(\S.*:\d+: )?error: ")


@dataclass
class Outcome:
    """The classification of one case."""

    kind: str  # "ok" | "error" | "FAIL"
    detail: str = ""

    @property
    def failed(self) -> bool:
        return self.kind == "FAIL"


class CaseTimeout(BaseException):  # noqa: N818 - BaseException so `except Exception` misses it
    """A case ran longer than its time limit (raised from SIGALRM in the main thread)."""


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise CaseTimeout in the main thread after ``seconds`` (no-op off the main thread)."""
    if seconds <= 0 or not hasattr(signal, "setitimer"):
        yield
        return

    def on_alarm(signum: int, frame: Any) -> None:
        raise CaseTimeout(f"time limit of {seconds:g} s exceeded")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def snapshot(session: Any) -> tuple[Any, ...]:
    """What a failing command must not change: object identities and copies of plain values."""
    return (
        id(session.graph),
        id(session.imported),
        id(session.prefusion),
        id(session.qstate),
        id(session.stats),
        session.model_path,
        session.scheme,
        session.adjusted,
        tuple(session.history),
        tuple(sorted((k, repr(v)) for k, v in session.settings.items())),
        len(session.graph.nodes) if session.graph is not None else -1,
    )


def _short_tb(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)[-3:]
    where = " <- ".join(f"{f.filename.split('/nnshell/')[-1]}:{f.lineno}" for f in reversed(frames))
    return f"{type(exc).__name__}: {str(exc)[:200]} at {where}"


def check_message(msg: str) -> str | None:
    """Why an error message breaks the contract (None if it is fine)."""
    if not msg.strip():
        return "empty error message"
    if "\n" in msg:
        return f"multi-line error message: {msg[:200]!r}"
    if "Traceback" in msg:
        return "traceback in the error message"
    return None


def run_library_case(
    session: Any, fn: Callable[..., Any], *args: Any, limit: float = 20.0, **kw: Any
) -> tuple[Outcome, Any]:
    """Call ``fn(*args)`` (a Session method); return its outcome and result."""
    before = snapshot(session)
    try:
        with time_limit(limit):
            result = fn(*args, **kw)
    except NnshellError as exc:
        bad = check_message(str(exc))
        if bad:
            return Outcome("FAIL", bad), None
        if snapshot(session) != before:
            return Outcome("FAIL", f"session changed by a failing call ({exc})"), None
        return Outcome("error", str(exc)[:200]), None
    except CaseTimeout as exc:
        return Outcome("FAIL", str(exc)), None
    except Exception as exc:  # noqa: BLE001 - every other exception is the bug we look for
        return Outcome("FAIL", _short_tb(exc)), None
    return Outcome("ok"), result


def check_quantization(session: Any) -> Outcome | None:
    """A quantization must hold finite ranges (NaN/inf inputs must not poison it)."""
    q = session.qstate
    if q is None:
        return None
    for name, (lo, hi) in q.ranges.items():
        if not (math.isfinite(lo) and math.isfinite(hi)):
            return Outcome("FAIL", f"non-finite range for '{name}': {lo}, {hi}")
    return None


def open_and_exercise(session: Any, path: str, limit: float = 20.0) -> list[Outcome]:
    """``open`` a (mutated) model; when it opens, also ``show``, ``adjust`` and ``fusions``."""
    out, _ = run_library_case(session, session.open, path, limit=limit)
    outcomes = [out]
    if out.kind == "ok":
        for fn, args in (
            (session.layers, ()),
            (session.adjust, ()),
            (session.fusions, ("scale8",)),
            (session.layers, ()),
        ):
            o, _ = run_library_case(session, fn, *args, limit=limit)
            outcomes.append(o)
            if o.failed:
                break
    return outcomes


class ShellDriver:
    """A real NnShell whose stdout and stderr are captured per command line."""

    def __init__(self) -> None:
        from nnshell.shell.app import make_app

        self.out = io.StringIO()
        self.app = make_app(stdout=self.out)

    def run(self, line: str, limit: float = 20.0) -> tuple[bool, str, str]:
        """Run one line; return (succeeded, stdout, stderr). Timeouts propagate."""
        from nnshell.shell.app import run_command

        self.out.seek(0)
        self.out.truncate()
        err = io.StringIO()
        with contextlib.redirect_stderr(err), time_limit(limit):
            ok, _ = run_command(self.app, line)
        return ok, self.out.getvalue(), err.getvalue()


def check_shell_result(ok: bool, out: str, err: str) -> str | None:
    """Why a command's terminal output breaks the contract (None if it keeps it)."""
    text = out + err
    if "Traceback" in text:
        return "traceback printed"
    if "internal error" in err:
        line = next(ln for ln in err.splitlines() if "internal error" in ln)
        return line[:300]
    errors = [ln for ln in err.splitlines() if ERROR_LINE.match(ln)]
    if not ok and len(errors) != 1:
        return f"{len(errors)} error lines for a failing command: {err[:300]!r}"
    if ok and errors:
        return f"error line from a succeeding command: {errors[0][:200]!r}"
    return None


def run_shell_case(driver: ShellDriver, line: str, limit: float = 20.0) -> Outcome:
    """Run one command line through the real shell and check the contract, then ``show``."""
    session = driver.app.session
    before = snapshot(session)
    try:
        ok, out, err = driver.run(line, limit)
    except CaseTimeout as exc:
        return Outcome("FAIL", f"{exc}: {line!r}")
    except BaseException as exc:  # noqa: BLE001 - run_command must not raise anything
        return Outcome("FAIL", f"{line!r} raised {_short_tb(exc)}")
    bad = check_shell_result(ok, out, err)
    if bad:
        return Outcome("FAIL", f"{line!r}: {bad}")
    if not ok and snapshot(driver.app.session) != before:
        return Outcome("FAIL", f"{line!r}: session changed by a failing command")
    q = check_quantization(session)
    if q is not None:
        return Outcome("FAIL", f"{line!r}: {q.detail}")
    if session.graph is not None:
        try:
            ok2, out2, err2 = driver.run("show --json", limit)
        except BaseException as exc:  # noqa: BLE001
            return Outcome("FAIL", f"after {line!r}: show raised {_short_tb(exc)}")
        if not ok2:
            return Outcome("FAIL", f"after {line!r}: show failed: {err2.strip()[:200]}")
    return Outcome("ok" if ok else "error", line)


def print_failures(name: str, failures: list[str], stream: Any = None) -> None:
    """List failures (for the campaign script and pytest messages)."""
    stream = stream or sys.stdout
    for f in failures[:50]:
        stream.write(f"  [{name}] {f}\n")


def make_workspace(folder: Any, n_images: int = 8) -> None:
    """Fill ``folder`` with the files the command-line fuzzer's path tokens name.

    Commands that write (``dump -P``, ``save_state``, ``gen``) can only reach this folder:
    every path token is relative and the fuzzer runs with this folder as the working directory.
    """
    import shutil
    from pathlib import Path

    from tests.fuzz.generators import CALIB_DIR, SAMPLE_MODEL, TEST_DIR

    root = Path(folder)
    shutil.copy(SAMPLE_MODEL, root / "model.onnx")
    for sub, src in (("calib", CALIB_DIR), ("test", TEST_DIR)):
        (root / sub).mkdir(exist_ok=True)
        for f in sorted(src.glob("*.png"))[:n_images]:
            shutil.copy(f, root / sub / f.name)
    (root / "empty").mkdir(exist_ok=True)
    (root / "bad.png").write_text("not an image\n")
    (root / "text.onnx").write_text("not a model\n")
    names = sorted(p.name for p in (root / "test").iterdir())
    (root / "labels.csv").write_text("".join(f"{n},{i % 10}\n" for i, n in enumerate(names)))


def prepared_shell(folder: Any) -> ShellDriver:
    """A shell in ``folder`` (see make_workspace) with the model open, fused and quantized."""
    driver = ShellDriver()
    for line in ("open model.onnx", "fusions --scale8", "aquant calib"):
        ok, _, err = driver.run(line)
        if not ok:
            raise RuntimeError(f"setting up the fuzz shell: {line}: {err}")
    return driver


def saved_state(folder: Any) -> tuple[Any, Any]:
    """A good state of the quantized sample model; returns (json path, npz path)."""
    from nnshell.session import Session
    from tests.fuzz.generators import CALIB_DIR, SAMPLE_MODEL

    session = Session()
    session.open(str(SAMPLE_MODEL))
    session.fusions("scale8")
    session.aquant([str(p) for p in sorted(CALIB_DIR.glob("*.png"))[:4]])
    paths = session.save_state(str(folder / "good.json"))
    from pathlib import Path

    return Path(paths[0]), Path(paths[1])


def run_state_cases(
    session: Any, folder: Any, cases: Any, limit: float = 10, kinds: Any = None
) -> list[str]:
    """Write each (json, npz) pair as case.json + its .npz and open it; return the failures.

    ``kinds`` (a Counter), when given, counts the outcomes.
    """
    import json
    from pathlib import Path

    folder = Path(folder)
    failures = []
    for i, (text, npz, what) in enumerate(cases):
        try:
            doc = json.loads(text)
            name = doc["arrays"]["file"]
        except Exception:  # noqa: BLE001 - the JSON itself is what is broken
            name = None
        case_json = folder / "case.json"
        case_json.write_text(text, encoding="utf-8", errors="replace")
        npz_target = folder / (name if isinstance(name, str) and _plain(name) else "good.npz")
        original = npz_target.read_bytes() if npz_target.exists() else None
        npz_target.write_bytes(npz)
        try:
            out, _ = run_library_case(session, session.open, str(case_json), limit=limit)
        finally:
            if original is None:
                npz_target.unlink(missing_ok=True)
            else:
                npz_target.write_bytes(original)
        if kinds is not None:
            kinds[out.kind] += 1
        if out.failed:
            failures.append(f"case {i} ({what}): {out.detail}")
    return failures


def _plain(name: str) -> bool:
    return (
        bool(name)
        and "/" not in name
        and "\\" not in name
        and "\0" not in name
        and name
        not in (
            ".",
            "..",
        )
    )
