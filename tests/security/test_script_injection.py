"""Untrusted scripts must not run shell commands (security issue: shell escapes and -D injection).

Scripts, ``-c`` one-liners and ``-D`` values come from other people (NNTool scripts copied from
the GAP SDK, a CI job's parameters). Each attack below runs the real ``nnshell`` console script
in a temporary folder and must fail safely: exit status 1, exactly one ``FILE:LINE: error:``
line, no traceback, no file created and ``victim`` unchanged. Interactively the same commands are
refused by default and work only after ``set allow_shell true``, which scripts cannot set and
state files cannot carry.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CALIB_DIR, ROOT, SAMPLE_MODEL

VICTIM_TEXT = "precious\n"
#: Relative path of the sample model inside each test folder (the issue's spelling).
MODEL = "sample_models/cifar_net.onnx"


def _console_script() -> list[str]:
    """The ``nnshell`` console script of the running interpreter's environment."""
    exe = Path(sys.executable).parent / "nnshell"
    found = str(exe) if exe.is_file() else shutil.which("nnshell")
    if found is None:
        pytest.skip("the nnshell console script is not installed (pip install -e .)")
    return [found]


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A folder with the sample model, a ``victim`` file and scripts an attack may name."""
    (tmp_path / "sample_models").mkdir()
    shutil.copy(SAMPLE_MODEL, tmp_path / MODEL)
    (tmp_path / "victim").write_text(VICTIM_TEXT)
    (tmp_path / "other.txt").write_text("shell touch pwned_by_other\n")
    (tmp_path / "other.py").write_text("open('pwned_by_py', 'w').close()\n")
    return tmp_path


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def run_nnshell(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the console script in ``folder`` with this checkout first on the import path."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1", "TERM": "dumb"}
    return subprocess.run(
        [*_console_script(), *args],
        cwd=folder,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def assert_failed_safely(
    proc: subprocess.CompletedProcess[str], folder: Path, before: set[str], where: str, needle: str
) -> None:
    """Exit 1, one ``WHERE: error:`` line holding ``needle``, no traceback, no file touched."""
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and not ln.startswith("opened ")]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"{where}: error: "), lines[0]
    assert needle in lines[0], lines[0]
    assert "Traceback" not in proc.stderr + proc.stdout
    assert _files(folder) == before, _files(folder) ^ before
    assert (folder / "victim").read_text() == VICTIM_TEXT


# -- shell escapes written in a script or a one-liner ---------------------------------------------
SCRIPT_ATTACKS = [
    ("shell touch x", "'shell' is not allowed in scripts"),
    ("!touch x", "'!' (shell) is not allowed in scripts"),
    ("! touch x", "'!' (shell) is not allowed in scripts"),
    ("show | tee x", "'|' (a pipe) is not allowed in scripts"),
    ("show|tee x", "'|' (a pipe) is not allowed in scripts"),
    ("show > x", "'>' (a redirection) is not allowed in scripts"),
    ("show >> victim", "'>' (a redirection) is not allowed in scripts"),
    ("show 0>victim", "'>' (a redirection) is not allowed in scripts"),
    ("alias create a shell touch x", "'alias' is not allowed in scripts"),
    ("macro create m shell touch {1}", "'macro' is not allowed in scripts"),
    ("run_script other.txt", "'run_script' is not allowed in scripts"),
    ("@other.txt", "'@' (run_script) is not allowed in scripts"),
    ("@@other.txt", "'@@' (_relative_run_script) is not allowed in scripts"),
    ("run_pyscript other.py", "'run_pyscript' is not allowed in scripts"),
    ("edit x", "'edit' is not allowed in scripts"),
    ("py open('x', 'w')", "'py' is not allowed in scripts"),
    ("ipy", "'ipy' is not allowed in scripts"),
    ("history -o x", "'history' is not allowed in scripts"),
    ("set allow_shell true", "'allow_shell' cannot be set in scripts or -c"),
    # a quote inside a word hides the ';' from the script reader but not from cmd2
    ("show it's; shell touch x", "'; shell touch x' would be ignored"),
]


@pytest.mark.parametrize(("attack", "needle"), SCRIPT_ATTACKS, ids=[a for a, _ in SCRIPT_ATTACKS])
def test_script_shell_escape_is_refused(workdir: Path, attack: str, needle: str) -> None:
    script = workdir / "attack.nnscript"
    # line 4 would show a later command running after the refusal
    script.write_text(f"# from someone else\nopen {MODEL}\n{attack}\nshell touch after\n")
    before = _files(workdir)
    proc = run_nnshell(workdir, "-s", "attack.nnscript")
    assert_failed_safely(proc, workdir, before, "attack.nnscript:3", needle)


@pytest.mark.parametrize(
    ("command", "needle"),
    [
        (f"open {MODEL}; shell touch x", "'shell' is not allowed in scripts"),
        ("!touch x", "'!' (shell) is not allowed in scripts"),
        ("show | tee x", "'|' (a pipe) is not allowed in scripts"),
        ("show > x", "'>' (a redirection) is not allowed in scripts"),
        ("alias create a shell touch x", "'alias' is not allowed in scripts"),
    ],
)
def test_one_liner_shell_escape_is_refused(workdir: Path, command: str, needle: str) -> None:
    before = _files(workdir)
    proc = run_nnshell(workdir, MODEL, "-c", "show 0", "-c", command)
    assert_failed_safely(proc, workdir, before, "-c:2", needle)


# -- -D values are data: they cannot add syntax ---------------------------------------------------
DEFINE_ATTACKS = [
    f"M={MODEL} | touch x",
    f"M={MODEL} > victim",
    f"M={MODEL} >> victim",
    "M=x; shell touch y",
    "M=x # comment",
    f"M={MODEL}; !touch y",
    'M=x" ; shell touch y ; "',
    "M=x' | touch y '",
    f"M={MODEL} --help",
]


@pytest.mark.parametrize("define", DEFINE_ATTACKS)
def test_define_value_cannot_inject(workdir: Path, define: str) -> None:
    script = workdir / "open.nnscript"
    script.write_text("# open the model given with -D\nopen $(M)\nshow\n")
    before = _files(workdir)
    proc = run_nnshell(workdir, "-s", "open.nnscript", "-D", define)
    value = define.partition("=")[2]
    # the whole value, with its ;, #, | or >, is one file name that does not exist
    assert_failed_safely(proc, workdir, before, "open.nnscript:2", f"model file '{value}'")


def test_define_value_cannot_inject_in_a_one_liner(workdir: Path) -> None:
    before = _files(workdir)
    proc = run_nnshell(workdir, "-c", "open $(M)", "-D", f"M={MODEL} > victim")
    assert_failed_safely(proc, workdir, before, "-c:1", f"model file '{MODEL} > victim'")


@pytest.mark.parametrize(
    ("define", "needle"),
    [
        ("M=--help", "would be read as an option"),
        ("M=-o", "would be read as an option"),
        ("M=a\nshell touch x", "control character"),
        ("M=a'b\"c", "cannot be one argument"),
    ],
)
def test_define_values_refused_before_anything_runs(
    workdir: Path, define: str, needle: str
) -> None:
    script = workdir / "s.nnscript"
    script.write_text(f"open {MODEL}\nshow $(M)\n")
    before = _files(workdir)
    proc = run_nnshell(workdir, "-s", "s.nnscript", "-D", define)
    assert_failed_safely(proc, workdir, before, "s.nnscript:2", needle)
    assert "opened" not in proc.stderr  # expansion errors are found before line 1 runs


def test_variable_cannot_name_the_command(workdir: Path) -> None:
    script = workdir / "s.nnscript"
    script.write_text("$(CMD) touch x\n")
    before = _files(workdir)
    proc = run_nnshell(workdir, "-s", "s.nnscript", "-D", "CMD=shell")
    assert_failed_safely(proc, workdir, before, "s.nnscript:1", "cannot name the command")


def test_values_with_spaces_stay_one_argument_and_globs_work(workdir: Path) -> None:
    """What scripts need keeps working: NORM with spaces, a glob under a folder with a space."""
    images = workdir / "my images"
    images.mkdir()
    for png in sorted(CALIB_DIR.glob("*.png"))[:4]:
        shutil.copy(png, images / png.name)
    script = workdir / "q.nnscript"
    script.write_text(
        f"open {MODEL}\nadjust\nfusions --scale8\n"
        "set input_norm_func $(NORM)\n"
        'set input_norm_func "$(NORM)"; set input_norm_func\n'
        "set l3_ram_device $(RAM)\n"
        "aquant $(IMAGES)/* -s SQ8\n"
        "qshow --json\n"
    )
    proc = run_nnshell(
        workdir,
        "-s",
        "q.nnscript",
        "-D",
        "NORM=x: x/128-1",
        "-D",
        "RAM=AT_MEM_L3_HRAM",
        "-D",
        "IMAGES=my images",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "input_norm_func = 'x: x/128-1'" in proc.stdout
    assert "l3_ram_device = 'AT_MEM_L3_HRAM'" in proc.stdout
    assert json.loads(proc.stdout[proc.stdout.index("{") :])  # quantized: qshow has a report


# -- the expansion itself -------------------------------------------------------------------------
def test_expansion_quotes_each_value_as_one_token() -> None:
    from cmd2.parsing import shlex_split

    from nnshell.script import command_lines, tokens_of
    from nnshell.shell.parser import NnStatementParser

    defines = {
        "N": "x: x/128-1",
        "M": "a;b|c>d#e",
        "I": "/tmp/img dir",
        "Q": 'say "hi"',
        "E": "",
        "R": "$(N)",
        "NEG": "-1",
    }
    lines = command_lines(
        [
            "set input_norm_func $(N); open '$(N)'",
            "x $(M)x",
            "aquant $(I)/* -s SQ8",
            "set a x$(Q)",
            "show $(E) ${R} $(NEG)",
        ],
        defines,
    )
    parser = NnStatementParser()  # what the shell makes of the expanded lines
    argvs = [parser.parse(ln.text).argv for ln in lines]
    assert argvs == [
        ["set", "input_norm_func", "x: x/128-1"],
        ["open", "x: x/128-1"],
        ["x", "a;b|c>d#ex"],
        ["aquant", "/tmp/img dir/*", "-s", "SQ8"],
        ["set", "a", 'xsay "hi"'],
        ["show", "", "$(N)", "-1"],  # a value is never expanded again
    ]
    # the script tokeniser is cmd2's, so the shell sees the tokens expand_vars wrote
    for text in ('a "b c" \'d e\' f"g h"', "x 'it''s'", 'p "q;r" s|t'):
        assert tokens_of(text) == shlex_split(text)


# -- interactive: off by default, on only by an explicit, interactive-only setting --------------
INTERACTIVE_ATTACKS = [
    ("shell touch x", "'shell' is off"),
    ("!touch x", "'!' (shell) is off"),
    ("show | tee x", "'|' (a pipe) is off"),
    ("show > x", "'>' (a redirection) is off"),
    ("show >> x", "'>' (a redirection) is off"),
    ("alias create a shell touch x", "'alias' is off"),
    ("macro create m shell touch x", "'macro' is off"),
    ("run_script other.txt", "'run_script' is not available"),
    ("@other.txt", "'@' (run_script) is not available"),
    ("run_pyscript other.py", "'run_pyscript' is not available"),
    ("edit x", "'edit' is not available"),
    ("history -e", "not available in nnshell"),
]


def _app(**kwargs: object):  # noqa: ANN202 - an NnShell with a capturing stdout
    import cmd2

    from nnshell.shell.app import make_app

    return make_app(stdout=cmd2.utils.StdSim(io.StringIO()), **kwargs)


def test_interactive_refuses_shell_escapes_by_default(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from nnshell.shell.app import run_command

    monkeypatch.chdir(workdir)
    app = _app()
    assert run_command(app, f"open {MODEL}")[0]
    before = _files(workdir)
    for attack, needle in INTERACTIVE_ATTACKS:
        capsys.readouterr()
        ok, _ = run_command(app, attack)
        err = capsys.readouterr().err
        assert not ok, attack
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], err
        assert "set allow_shell true" in err or "not available" in err
    assert _files(workdir) == before
    assert (workdir / "victim").read_text() == VICTIM_TEXT
    assert run_command(app, "show 'a|b'")[0] is False  # quoted: plain text (no such node)
    assert "shell" not in app.get_visible_commands()  # not offered in help either


def test_interactive_opt_in_turns_shell_escapes_on_and_off(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nnshell.shell.app import run_command

    monkeypatch.chdir(workdir)
    app = _app()
    assert app.allow_shell is False
    assert run_command(app, "set allow_shell true")[0]
    assert run_command(app, "shell echo hi")[0]
    assert "hi" in app.stdout.getvalue()
    assert run_command(app, "!true")[0]
    assert run_command(app, "shell touch made")[0]
    assert (workdir / "made").is_file()
    assert run_command(app, f"open {MODEL}")[0]
    assert run_command(app, "show 0 > shown.txt")[0]
    assert "_conv1_Conv" in (workdir / "shown.txt").read_text()
    assert run_command(app, "alias create mk shell touch aliased")[0]
    assert run_command(app, "mk")[0] and (workdir / "aliased").is_file()
    assert run_command(app, "set allow_shell false")[0]
    assert not run_command(app, "shell touch again")[0]
    assert not run_command(app, "mk")[0]  # the alias expands to a refused shell command
    assert not run_command(app, "show 0 > again.txt")[0]
    assert not (workdir / "again").exists() and not (workdir / "again.txt").exists()


def test_allow_shell_cannot_come_from_a_script_app_or_a_state_file(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nnshell.errors import NnshellError
    from nnshell.shell.app import run_command

    monkeypatch.chdir(workdir)
    scripted = _app(scripted=True)
    assert not run_command(scripted, "set allow_shell true")[0]
    with pytest.raises(NnshellError, match="cannot be set in scripts"):
        scripted.allow_shell = True
    assert scripted.allow_shell is False and "allow_shell" not in scripted.settables
    # a state file naming allow_shell does not turn it on (it is not an nnshell setting)
    app = _app()
    assert run_command(app, f"open {MODEL}")[0]
    assert run_command(app, "save_state state.json")[0]
    doc = json.loads((workdir / "state.json").read_text())
    assert "allow_shell" not in doc["settings"]
    doc["settings"]["allow_shell"] = True
    (workdir / "state.json").write_text(json.dumps(doc))
    fresh = _app()
    assert run_command(fresh, "open state.json")[0]
    assert fresh.allow_shell is False
    assert not run_command(fresh, "shell touch x")[0]
    assert not (workdir / "x").exists()
