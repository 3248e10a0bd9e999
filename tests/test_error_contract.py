"""The error contract of issue 8: Ctrl-C, ``-N`` injection, and what library code may not call.

* Ctrl-C (SIGINT) in the middle of ``aquant`` in an interactive shell: the shell lives on, says
  so in one line, and the previous quantization is intact; under ``-c`` the run stops with exit
  130 and one error line.
* ``-N`` expressions are arithmetic only, at ``set`` and at ``aquant -N``.
* No module of ``nnshell/`` calls ``print``, ``sys.exit`` (except ``__main__``), ``eval``,
  ``exec``, ``pickle.load(s)`` or ``np.load`` without ``allow_pickle=False``; every raised
  NnshellError has a non-empty message.
"""

from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import CALIB_DIR, ROOT, SAMPLE_MODEL

PACKAGE = ROOT / "nnshell"
PROMPT = r"nnshell \(cifar_net[^)]*\) > "  # the prompt also shows fused / SQ8
#: A calibration pass long enough to interrupt (> 10 s): numpy float backend, batches of 1, the
#: calib folder 40 times over.
LONG_CALIB = " ".join([str(CALIB_DIR)] * 40)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(NO_COLOR="1", TERM="dumb", COLUMNS="120", PYTHONUNBUFFERED="1")
    return env


# -- Ctrl-C ------------------------------------------------------------------------------------


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wait_cpu_seconds(pid: int, seconds: float) -> None:
    """Return once ``pid`` has used ``seconds`` more CPU time than now (a condition, not a
    clock: a loaded machine only makes the wait longer)."""
    if not Path(f"/proc/{pid}/stat").exists():
        pytest.skip("needs /proc to see the command running")
    start = _cpu_seconds(pid)
    deadline = time.time() + 240
    while _cpu_seconds(pid) - start < seconds:
        assert time.time() < deadline, "the command never started"
        time.sleep(0.02)


def _qshow_json(child) -> dict:  # noqa: ANN001
    child.sendline("qshow --json")
    child.expect(PROMPT, timeout=60)
    text = child.before
    start = text.index("{")
    end = text.rindex("}") + 1
    return json.loads(text[start:end])


def test_ctrl_c_mid_aquant_keeps_shell_and_quantization() -> None:
    pexpect = pytest.importorskip("pexpect")
    child = pexpect.spawn(
        sys.executable,
        ["-m", "nnshell", str(SAMPLE_MODEL)],
        cwd=str(ROOT),
        env=_env(),
        encoding="utf-8",
        timeout=60,
        dimensions=(50, 200),
    )
    try:
        child.expect(PROMPT)
        for line in (
            'set input_norm_func "x: (x/255 - 0.5)/0.5"',
            "fusions --scale8",
            f"aquant {CALIB_DIR}",
        ):
            child.sendline(line)
            child.expect(PROMPT)
            assert "error" not in child.before, child.before
        first = _qshow_json(child)
        child.sendline("set float_backend numpy")
        child.expect(PROMPT)
        child.sendline("set batch_size 1")
        child.expect(PROMPT)
        child.sendline(f"aquant {LONG_CALIB} --mode mse")
        # wait until the shell has spent a second of its own CPU time on the command: it is
        # then inside the pass (> 10 s of CPU), whatever the machine's load — no fixed sleep
        _wait_cpu_seconds(child.pid, 1.0)
        child.sendintr()
        child.expect(PROMPT, timeout=60)
        out = child.before
        assert "interrupted (Ctrl-C): the session is unchanged" in out, out
        assert "Traceback" not in out
        assert "aquant: SQ8" not in out  # the second quantization never completed
        second = _qshow_json(child)
        assert second == first  # same options, same scales: the first quantization is intact
        child.sendline("show 0 --json")
        child.expect(PROMPT)
        assert "_conv1_Conv" in child.before
        child.sendline("quit -f")  # the quantization is not saved: -f skips the question
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert "Traceback" not in (child.before or "")


def test_ctrl_c_under_dash_c_exits_130() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "nnshell",
            str(SAMPLE_MODEL),
            "-c",
            "fusions --scale8; set float_backend numpy; set batch_size 1",
            "-c",
            f"aquant {LONG_CALIB}",
        ],
        cwd=ROOT,
        env={**_env(), "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # wait until the first -c has run (its last line, "batch_size = 1", is on stdout), so the
        # interrupt lands in the second one whatever the machine's load, not at a fixed time
        deadline = time.time() + 120
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("batch_size"):
                break
        _wait_cpu_seconds(proc.pid, 1.0)  # inside the second command's pass, not between
        while proc.poll() is None and time.time() < deadline:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                continue
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, (proc.returncode, err)
    assert "Traceback" not in out + err
    errors = [ln for ln in err.splitlines() if "error:" in ln]
    assert len(errors) == 1 and errors[0].startswith("-c:2: error: interrupted"), err


# -- -N injection --------------------------------------------------------------------------------

INJECTIONS = [
    "__import__('os').system('echo pwned')",
    "x: __import__('os')",
    "lambda x: x.__class__.__bases__",
    "x: open('/etc/passwd')",
    "x: eval('1')",
    "x: exec('import os')",
    "x: [c for c in ().__class__.__base__.__subclasses__()]",
    "x: globals()",
    "x: (lambda: 1)()",
    "x: x.real",
    "x: x[0]",
    "x: 'a' * 10**9",
    "x: 9 ** 9 ** 9",
    "x: f'{x}'",
]


@pytest.mark.parametrize("expr", INJECTIONS)
def test_injection_refused_at_set(shell, expr: str) -> None:  # noqa: ANN001
    ok, out, err = shell.run(f'set input_norm_func "{expr}"')
    assert not ok
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: input_norm_func"), err
    assert "pwned" not in (out + err).splitlines()  # echo never ran
    assert "Traceback" not in out + err
    assert shell.app.session.settings["input_norm_func"] is None


@pytest.mark.parametrize("expr", INJECTIONS[:6])
def test_injection_refused_at_aquant(shell, expr: str) -> None:  # noqa: ANN001
    for line in (f"open {SAMPLE_MODEL}", "fusions --scale8"):
        assert shell.run(line)[0]
    ok, out, err = shell.run(f'aquant {CALIB_DIR} -N "{expr}"')
    assert not ok
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: input_norm_func"), err
    assert shell.app.session.qstate is None and shell.app.session.stats is None


def test_injection_refused_in_subprocess(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    expr = f"__import__('os').system('touch {marker}')"
    proc = subprocess.run(
        [sys.executable, "-m", "nnshell", "-c", f'set input_norm_func "{expr}"'],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith("-c:1: error: input_norm_func") and not marker.exists()


# -- what library code may call ---------------------------------------------------------------


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


#: Modules whose load/loads run arbitrary code from the data.
UNPICKLERS = ("pickle", "cPickle", "_pickle", "dill", "marshal", "joblib", "shelve")


def _call_name(func: ast.expr) -> str:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return f"{_call_name(func.value)}.{func.attr}"
    return ""


def _allow_pickle_false(call: ast.Call) -> bool:
    return any(
        k.arg == "allow_pickle" and isinstance(k.value, ast.Constant) and k.value.value is False
        for k in call.keywords
    )


def forbidden_calls(src: str, rel: Path) -> list[str]:
    """``file:line: what`` for every forbidden call in the source of module ``rel``."""
    tree = ast.parse(src, filename=str(rel))
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _call_name(node.func)
        head, last = name.split(".")[0], name.split(".")[-1]
        exits = ("sys.exit", "exit", "quit", "os._exit")
        plain = name in ("print", "eval", "exec", "builtins.eval", "builtins.exec")
        exiting = name in exits and rel != Path("nnshell/__main__.py")
        unpickling = last in ("load", "loads", "Unpickler") and head in UNPICKLERS
        bad = name if plain or exiting or unpickling else None
        if name in ("np.load", "numpy.load") and not _allow_pickle_false(node):
            bad = f"{name} without allow_pickle=False"
        if bad:
            found.append(f"{rel}:{node.lineno}: {bad}")
    return found


def test_no_forbidden_calls_in_the_package() -> None:
    found = [
        f for p in _modules() for f in forbidden_calls(p.read_text("utf-8"), p.relative_to(ROOT))
    ]
    assert not found, "\n".join(found)


def test_the_checker_catches_what_it_should() -> None:
    src = (
        "import sys, pickle\nimport numpy as np\nprint(1)\nsys.exit(2)\neval('1')\nexec('1')\n"
        "pickle.loads(b'')\nnp.load('a.npy')\nnp.load('b.npy', allow_pickle=False)\n"
    )
    found = [f.split(": ", 1)[1] for f in forbidden_calls(src, Path("nnshell/probe.py"))]
    assert found == [
        "print",
        "sys.exit",
        "eval",
        "exec",
        "pickle.loads",
        "np.load without allow_pickle=False",
    ]
    assert forbidden_calls("import sys\nsys.exit(0)\n", Path("nnshell/__main__.py")) == []


def _error_classes() -> set[str]:
    import nnshell.errors as errors_mod

    return {
        name
        for name, obj in vars(errors_mod).items()
        if isinstance(obj, type) and issubclass(obj, errors_mod.NnshellError)
    }


def _message_ok(arg: ast.expr) -> bool:
    if isinstance(arg, ast.Constant):
        return isinstance(arg.value, str) and bool(arg.value.strip())
    if isinstance(arg, ast.JoinedStr):
        return bool(arg.values)
    if isinstance(arg, ast.BinOp):  # "..." + "..." or f"..." + ...
        return _message_ok(arg.left) or _message_ok(arg.right)
    # a variable or a call (e.g. an exception's own message being re-raised with context)
    return isinstance(arg, (ast.Name, ast.Attribute, ast.Call, ast.IfExp))


def test_every_raised_error_has_a_message() -> None:
    classes = _error_classes()
    bad = []
    for path in _modules():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (
                not isinstance(node, ast.Call)
                or _call_name(node.func).split(".")[-1] not in classes
            ):
                continue
            msg = node.args[0] if node.args else None
            msg = msg or next((k.value for k in node.keywords if k.arg == "message"), None)
            if msg is None or not _message_ok(msg):
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not bad, "NnshellError raised without a message:\n" + "\n".join(bad)
