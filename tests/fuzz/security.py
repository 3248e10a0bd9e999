"""Attacks from untrusted inputs (issue 24): generators and end-to-end checks.

Shared by the CI tests (``tests/fuzz/test_fuzz_security.py``, a small seeded subset) and
``scripts/fuzz_campaign.py`` (the full campaign, its table in ``docs/robustness.md``). Each attack
class plays the part of someone who hands the user a file:

* **hostile names** — a model whose tensor, node, input, output and graph names carry C comment
  terminators, newlines, quotes, backslashes, trigraphs, ``#include`` lines, shell syntax and
  path separators; the whole flow runs (open, fusions, aquant, ``gen --target c`` built with
  AddressSanitizer and UBSan and run, ``gen --target autotiler``). Passing means: the payload's
  ``system()`` never ran (its marker file is absent), no generated file lies outside the output
  folder, and once comments and string literals are stripped the C holds no injected call;
* **hostile settings** — a state whose settings carry the same payloads or name files elsewhere
  (``model_file="/…"``, ``tensor_directory="../.."``, ``l3_ram_device="AT_MEM_L3_HRAM\\n…"``):
  it is refused when opened, or generates only inside the folder and without the payload;
* **script injection** — ``.nnscript`` lines and ``-D`` values with pipes, redirections,
  ``shell``/``!``, ``alias``/``macro``, ``;`` and ``#``: no command of the host shell runs and no
  file changes;
* **interrupted saves** — ``save_state`` killed (SIGKILL) or interrupted (SIGINT) at a random
  moment: the previous or the new state always reopens;
* **special files** — devices, FIFOs, sockets, folders, a link to ``/dev/zero`` and a sparse
  multi-gigabyte file given as model, state, image, script or calibration entry: one error line,
  quickly, in bounded memory.

Nothing here asserts: each check returns ``None`` (passed) or a one-line failure description.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.fuzz.generators import CALIB_DIR, SAMPLE_MODEL, TEST_DIR

ROOT = Path(__file__).resolve().parents[2]

#: A call only injected code can contain (names become identifiers without parentheses).
SENTINEL = "nnshell_injected"
_INJECTED_CALL = re.compile(r"\b(system|popen|execl|" + SENTINEL + r"\w*)\s*\(")
_TRIGRAPHS = {
    "??=": "#",
    "??/": "\\",
    "??'": "^",
    "??(": "[",
    "??)": "]",
    "??!": "|",
    "??<": "{",
    "??>": "}",
    "??-": "~",
}


# ------------------------------------------------------------------------------------------
# C text: what the compiler sees as code
# ------------------------------------------------------------------------------------------


def c_code_only(text: str) -> str:
    """The C text with comments blanked and string/char literal contents removed.

    Applies C99's first translation phases first (trigraphs, which ``gcc -std=c99`` honours,
    then backslash-newline splicing), so a name ending in ``??/`` that would continue a ``//``
    comment onto the next line is seen exactly as the compiler sees it.
    """
    for tri, rep in _TRIGRAPHS.items():
        text = text.replace(tri, rep)
    text = text.replace("\\\r\n", "").replace("\\\n", "")
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
            out.append(" ")
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            if j < 0:
                out.append(" /*UNTERMINATED*/ ")
                break
            i = j + 2
            out.append(" ")
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                if text[j] == "\n":
                    break  # an unterminated literal: the compiler rejects it anyway
                j += 2 if text[j] == "\\" else 1
            body = text[i + 1 : j]
            # plain file names (``#include "x.h"``) stay; anything else is blanked
            out.append(c + (body if re.fullmatch(r"[\w.]*", body) else "") + c)
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def injected_code(text: str) -> str | None:
    """Why this generated C text shows injected code (None when it is clean)."""
    code = c_code_only(text)
    if "/*UNTERMINATED*/" in code:
        return "a comment is not terminated"
    m = _INJECTED_CALL.search(code)
    if m:
        start = max(0, m.start() - 60)
        return f"injected call in the code: {code[start : m.end() + 40]!r}"
    for line in code.splitlines():
        s = line.strip()
        if s.startswith("#") and not re.fullmatch(
            r'#\s*(include\s*(<[\w./]+>|"[\w.]+")|ifndef \w+|define \w+(\(.*?\))?(\s.*)?|'
            r"endif|ifdef \w+|if .*|else|pragma .*|undef \w+)\s*",
            s,
        ):
            return f"unexpected preprocessor line: {s[:120]!r}"
    return None


# ------------------------------------------------------------------------------------------
# hostile names
# ------------------------------------------------------------------------------------------


def name_payloads(marker: Path) -> list[str]:
    """Names that break out of a comment, a string or a line, or name a path."""
    m = str(marker)
    call = f'system("touch {m}")'
    return [
        f"r */ {{ extern int system(const char *); {call}; }} /* ",
        f'x"; {call}; char *y = "',
        f"x\n{call};\n",
        f'x\r\n#include "/etc/passwd"\r\n{call};',
        f"a ??/\n{SENTINEL}_1();",
        f"b \\\n{SENTINEL}_2();",
        "c */ int " + SENTINEL + "_3(void); /*",
        "../../../tmp/" + SENTINEL,
        "/tmp/" + SENTINEL + "_abs",
        f"$(touch {m})`touch {m}`",
        "%s%n%x%p",
        "é中文\u202e\u0000z",
        "*/" * 40,
        "/*" * 40,
        "x" * 3000,
        "int",
        "main",
        "",
    ]


def rename_model(data: bytes, names: list[str], rng: random.Random) -> bytes:
    """The model with its graph, node, tensor, input and output names drawn from ``names``.

    Every name gets a distinct numeric suffix so the graph stays valid; initializers, nodes and
    the graph name are renamed consistently.
    """
    import onnx

    model = onnx.load_from_string(data)
    g = model.graph
    mapping: dict[str, str] = {}
    k = 0

    def new_name() -> str:
        nonlocal k
        k += 1
        return f"{rng.choice(names)}{k}"

    tensor_names = (
        [i.name for i in g.input]
        + [o.name for o in g.output]
        + [t.name for t in g.initializer]
        + [x for node in g.node for x in [*node.input, *node.output] if x]
    )
    for t in tensor_names:
        if t not in mapping:
            mapping[t] = new_name()
    for coll in (g.input, g.output, g.value_info):
        for v in coll:
            v.name = mapping.get(v.name, v.name)
    for t in g.initializer:
        t.name = mapping[t.name]
    for node in g.node:
        node.name = new_name()
        node.input[:] = [mapping.get(x, x) if x else x for x in node.input]
        node.output[:] = [mapping.get(x, x) for x in node.output]
    g.name = new_name()
    return model.SerializeToString()


@dataclass
class CaseResult:
    """One case: ``ok`` (accepted and safe), ``error`` (refused in one line) or ``FAIL``."""

    kind: str
    detail: str = ""

    @property
    def failed(self) -> bool:
        return self.kind == "FAIL"


def _files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*")}


def _sanitizer_flags() -> tuple[str, ...]:
    """AddressSanitizer and UBSan flags if this gcc links them (probed once), else none."""
    global _SAN
    if _SAN is None:
        cc = shutil.which("gcc") or shutil.which("cc")
        flags = ("-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-g")
        ok = False
        if cc:
            import tempfile

            with tempfile.TemporaryDirectory() as tmp:
                src = Path(tmp) / "t.c"
                src.write_text("int main(void){return 0;}\n")
                proc = subprocess.run(
                    [cc, *flags, "-o", str(Path(tmp) / "t"), str(src)],
                    capture_output=True,
                    check=False,
                )
                ok = proc.returncode == 0
        _SAN = flags if ok else ()
    return _SAN


_SAN: tuple[str, ...] | None = None


def run_name_case(work: Path, model: bytes, marker: Path, images: int = 4) -> CaseResult:
    """The whole flow on a model with hostile names; see the module docstring for the checks."""
    from nnshell.codegen import verify as verify_mod
    from nnshell.errors import NnshellError
    from nnshell.session import Session

    case = work / "case"
    if case.exists():
        shutil.rmtree(case)
    case.mkdir()
    path = case / "model.onnx"
    path.write_bytes(model)
    before = _files_under(work)
    session = Session()
    calib = [str(p) for p in sorted(CALIB_DIR.glob("*.png"))[:images]]
    test = [str(p) for p in sorted(TEST_DIR.glob("*.png"))[:images]]
    old_flags = verify_mod.CFLAGS
    verify_mod.CFLAGS = (*old_flags, *_sanitizer_flags())
    try:
        session.open(str(path))
        session.fusions("scale8")
        session.aquant(calib)
        c_dir, at_dir = case / "c", case / "at"
        session.gen_c(str(c_dir))
        result = session.gen_verify(test, out_dir=str(case / "verify"))
        session.gen_autotiler(str(at_dir))
    except NnshellError as exc:
        text = str(exc)
        if "\n" in text:
            return CaseResult("FAIL", f"multi-line error: {text[:200]!r}")
        if marker.exists():
            return CaseResult("FAIL", f"marker created although refused: {text[:200]}")
        if "does not compile" in text:
            return CaseResult("FAIL", f"generated C broken by a name: {text[:200]}")
        why = _scan_generated(case)
        if why:
            return CaseResult("FAIL", why)
        return CaseResult("error", text[:200])
    except Exception as exc:  # noqa: BLE001 - anything else is the failure we look for
        return CaseResult("FAIL", f"{type(exc).__name__}: {str(exc)[:300]}")
    finally:
        verify_mod.CFLAGS = old_flags
    if marker.exists():
        return CaseResult("FAIL", "the payload's system() ran: marker file created")
    if not result.ok:
        return CaseResult("FAIL", f"gen --verify not bit-exact: {result.summary()[:200]}")
    outside = [p for p in _files_under(work) - before if not str(p).startswith(str(case) + os.sep)]
    if outside:
        return CaseResult("FAIL", f"file written outside the output folder: {outside[0]}")
    why = _scan_generated(case)
    return CaseResult("FAIL", why) if why else CaseResult("ok")


def _scan_generated(case: Path) -> str | None:
    """The first generated C or header file under ``case`` that shows injected code."""
    for p in sorted(case.rglob("*")):
        if p.is_file() and p.suffix in (".c", ".h"):
            why = injected_code(p.read_text(encoding="utf-8", errors="replace"))
            if why:
                return f"{p.relative_to(case)}: {why}"
    return None


def name_cases(seed: int, count: int, marker: Path) -> Iterator[tuple[int, bytes]]:
    """``count`` renamed copies of the sample model (seeded)."""
    rng = random.Random(seed)
    data = SAMPLE_MODEL.read_bytes()
    payloads = name_payloads(marker)
    for i in range(count):
        pool = rng.sample(payloads, k=rng.randint(1, len(payloads)))
        yield i, rename_model(data, pool, rng)


# ------------------------------------------------------------------------------------------
# hostile settings in a state
# ------------------------------------------------------------------------------------------


def hostile_settings(marker: Path, outside: Path) -> list[tuple[str, Any]]:
    """(setting, value) pairs a state from someone else might carry."""
    call = f'system("touch {marker}")'
    inj = f"AT_MEM_UNDEF); }} {call}; {{ (0"
    return [
        ("model_file", str(outside / "victim.c")),
        ("model_file", "../victim.c"),
        ("model_file", "x.c\n" + call),
        ("graph_name", f"g */ {call}; /*"),
        ("graph_name", "../../g"),
        ("model_directory", str(outside)),
        ("model_directory", "../.."),
        ("tensor_directory", str(outside)),
        ("tensor_directory", "../../t"),
        ("l3_ram_device", "AT_MEM_L3_HRAM\n" + call),
        ("l3_flash_device", inj),
        ("default_local_location", inj),
        ("default_input_home_location", "AT_MEM_L2 */ " + call),
        ("default_global_exec_location", "AT_MEM_UNDEF\r#include </etc/passwd>"),
        ("l2_size", 10**30),
        ("l1_size", -1),
        ("graph_warm_construct", 2**70),
        ("input_norm_func", f"x: __import__('os').system('touch {marker}')"),
    ]


def run_settings_case(
    work: Path, state_json: Path, setting: str, value: Any, marker: Path, outside: Path
) -> CaseResult:
    """Open a state carrying ``setting=value`` and generate both targets from it."""
    from nnshell.errors import NnshellError
    from nnshell.session import Session

    # two levels deep, so that "../.." still lands inside ``work``, where it is seen
    case = work / "d1" / "d2" / "case"
    if case.exists():
        shutil.rmtree(case)
    case.mkdir(parents=True)
    doc = json.loads(state_json.read_text(encoding="utf-8"))
    doc["settings"][setting] = value
    npz_name = doc["arrays"]["file"]
    shutil.copy(state_json.parent / npz_name, case / npz_name)
    js = case / "s.json"
    js.write_text(json.dumps(doc), encoding="utf-8")
    before_out = _files_under(work)
    old = os.getcwd()
    os.chdir(case)
    session = Session()
    try:
        session.open(str(js))
        written = []
        written += list(session.gen_autotiler())
        written += list(session.gen_c())
    except NnshellError as exc:
        text = str(exc)
        if "\n" in text:
            return CaseResult("FAIL", f"multi-line error: {text[:200]!r}")
        return _settings_aftermath(case, marker, work, before_out) or CaseResult(
            "error", text[:200]
        )
    except Exception as exc:  # noqa: BLE001
        return CaseResult("FAIL", f"{type(exc).__name__}: {str(exc)[:300]}")
    finally:
        os.chdir(old)
    bad = _settings_aftermath(case, marker, work, before_out)
    if bad:
        return bad
    why = _scan_generated(case)
    return CaseResult("FAIL", f"{setting}: {why}") if why else CaseResult("ok")


def _settings_aftermath(
    case: Path, marker: Path, work: Path, before: set[Path]
) -> CaseResult | None:
    if marker.exists():
        return CaseResult("FAIL", "marker file created")
    new = [p for p in _files_under(work) - before if case not in p.parents]
    if new:
        return CaseResult("FAIL", f"file written outside the state's folder: {sorted(new)[0]}")
    return None


# ------------------------------------------------------------------------------------------
# script injection
# ------------------------------------------------------------------------------------------


def script_cases(seed: int, count: int, marker: Path) -> Iterator[tuple[str, list[str]]]:
    """(script text, -D definitions) pairs trying to run a host command or write a file."""
    rng = random.Random(seed)
    touch = f"touch {marker}"
    lines = [
        f"shell {touch}",
        f"!{touch}",
        f"show | {touch}",
        f"show | tee {marker}",
        f"show > {marker}",
        f"show >> {marker}",
        f"alias create a shell {touch}",
        f"macro create m shell {touch}",
        f"run_script {marker}.txt",
        f"@{marker}.txt",
        f"py import os; os.system('{touch}')",
        f"run_pyscript {marker}.py",
        f"set input_norm_func \"x: __import__('os').system('{touch}')\"",
    ]
    values = [
        f"{SAMPLE_MODEL} | {touch}",
        f"{SAMPLE_MODEL} > {marker}",
        f"{SAMPLE_MODEL}; shell {touch}",
        f"{SAMPLE_MODEL} # ; shell {touch}",
        f"{SAMPLE_MODEL}\nshell {touch}",
        f'{SAMPLE_MODEL}" ; shell {touch} ; echo "',
        f"{SAMPLE_MODEL}' ; shell {touch} ; echo '",
        f"$(touch {marker})",
        f"`{touch}`",
    ]
    for _ in range(count):
        if rng.random() < 0.5:
            yield rng.choice(lines) + "\n", []
        else:
            template = rng.choice(
                ["open $(M)\n", "open ${M}\nshow\n", 'open "$(M)"\n', "show $(M)\n"]
            )
            yield template, [f"M={rng.choice(values)}"]


def run_script_case(work: Path, text: str, defines: list[str], marker: Path) -> CaseResult:
    """Run one script with the real ``nnshell -s`` in ``work``; the marker must never appear."""
    script = work / "attack.nnscript"
    script.write_text(text, encoding="utf-8")
    (work / f"{marker.name}.txt").write_text(f"shell touch {marker}\n", encoding="utf-8")
    (work / f"{marker.name}.py").write_text(
        f"import os\nos.system('touch {marker}')\n", encoding="utf-8"
    )
    before = {p: p.stat().st_mtime_ns for p in work.iterdir() if p.is_file()}
    cmd = [sys.executable, "-m", "nnshell", "-s", str(script)]
    for d in defines:
        cmd += ["-D", d]
    try:
        proc = subprocess.run(
            cmd, cwd=work, capture_output=True, text=True, timeout=60, check=False
        )
    except subprocess.TimeoutExpired:
        return CaseResult("FAIL", f"time limit: {text!r} {defines}")
    if marker.exists():
        marker.unlink()
        return CaseResult("FAIL", f"host command ran or file written: {text!r} {defines}")
    changed = [
        p.name
        for p, t in before.items()
        if p.exists() and p.stat().st_mtime_ns != t and p != script
    ]
    if changed:
        return CaseResult("FAIL", f"file changed: {changed[0]} by {text!r} {defines}")
    if "Traceback" in proc.stderr:
        return CaseResult("FAIL", f"traceback: {text!r}")
    if proc.returncode != 0:
        errors = [ln for ln in proc.stderr.splitlines() if "error:" in ln]
        if len(errors) != 1:
            return CaseResult("FAIL", f"{len(errors)} error lines: {proc.stderr[-300:]!r}")
        return CaseResult("error", errors[0][:200])
    return CaseResult("ok")


# ------------------------------------------------------------------------------------------
# interrupted saves
# ------------------------------------------------------------------------------------------

_SAVER = r"""
import sys, time
from nnshell.session import Session
s = Session()
s.open(sys.argv[1])
s.fusions("scale8")
import glob
files = sorted(glob.glob(sys.argv[3] + "/*.png"))
s.aquant(files[:2])
print("ready", flush=True)
i = 0
while True:
    s.set("graph_name", f"g{i % 2}")
    s.save_state(sys.argv[2])
    i += 1
"""


def run_interrupted_save(work: Path, delay: float, sig: int) -> CaseResult:
    """Kill a process that saves the same state in a loop; the state must still reopen."""
    from nnshell.errors import NnshellError
    from nnshell.state import load_state

    state = work / "saved.json"
    proc = subprocess.Popen(
        [sys.executable, "-c", _SAVER, str(SAMPLE_MODEL), str(state), str(CALIB_DIR)],
        cwd=work,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            return CaseResult("FAIL", f"saver did not start: {proc.stderr.read()[-300:]}")
        while not state.exists():
            time.sleep(0.01)
        time.sleep(delay)
        proc.send_signal(sig)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            if sig == signal.SIGINT:
                return CaseResult("FAIL", "SIGINT did not stop the saving process")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    try:
        saved = load_state(state)
    except NnshellError as exc:
        return CaseResult("FAIL", f"state lost after {signal.Signals(sig).name}: {exc}")
    if saved.settings.get("graph_name") not in ("g0", "g1"):
        return CaseResult("FAIL", f"unexpected graph_name {saved.settings.get('graph_name')!r}")
    return CaseResult("ok")


# ------------------------------------------------------------------------------------------
# special files
# ------------------------------------------------------------------------------------------


def special_files(work: Path) -> list[tuple[str, Path]]:
    """(description, path) of files that are not what a reader expects."""
    out: list[tuple[str, Path]] = [("/dev/zero", Path("/dev/zero"))]
    if Path("/dev/urandom").exists():
        out.append(("/dev/urandom", Path("/dev/urandom")))
    fifo = work / "fifo"
    if not fifo.exists():
        os.mkfifo(fifo)
    out.append(("a FIFO", fifo))
    link = work / "zero_link"
    if not link.exists():
        link.symlink_to("/dev/zero")
    out.append(("a link to /dev/zero", link))
    sparse = work / "sparse"
    if not sparse.exists():
        with open(sparse, "wb") as fh:
            fh.truncate(3 << 30)
    out.append(("a sparse 3 GiB file", sparse))
    sock = work / "sock"
    if not sock.exists():
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(str(sock))
        s.close()
    out.append(("a socket", sock))
    folder = work / "folder.onnx"
    folder.mkdir(exist_ok=True)
    out.append(("a folder", folder))
    return out


def special_file_commands(path: Path, work: Path) -> list[tuple[str, list[str]]]:
    """(reader, nnshell arguments) that hand ``path`` to each reader of user files."""
    model = str(SAMPLE_MODEL)
    folder = work / "calib_with_special"
    folder.mkdir(exist_ok=True)
    for p in sorted(CALIB_DIR.glob("*.png"))[:2]:
        if not (folder / p.name).exists():
            shutil.copy(p, folder / p.name)
    entry = folder / "zz_special.png"
    if entry.is_symlink() or entry.exists():
        entry.unlink()
    entry.symlink_to(path)
    state = work / "special_state.json"
    if state.is_symlink() or state.exists():
        state.unlink()
    state.symlink_to(path)
    cases = [
        ("open (model)", ["-c", f"open {path}"]),
        ("open (state .json)", ["-c", f"open {state}"]),
        ("nnshell -s (script)", ["-s", str(path)]),
        ("aquant (image)", [model, "-c", f"fusions --scale8; aquant {path}"]),
        ("aquant (folder entry)", [model, "-c", f"fusions --scale8; aquant {folder}"]),
        ("dump (input)", [model, "-c", f"dump {path}"]),
    ]
    if path.is_dir():  # a sub-folder of a calibration folder is skipped, as it should be
        cases = [c for c in cases if c[0] != "aquant (folder entry)"]
    return cases


def run_special_case(work: Path, args: list[str], limit: float = 60.0) -> CaseResult:
    """Run nnshell with ``args``: it must fail with one error line, quickly, in bounded memory.

    The child's address space is capped at 4 GiB, so reading a device or a sparse file whole
    fails the case instead of exhausting the machine.
    """
    import resource

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))

    t0 = time.monotonic()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "nnshell", *args],
            cwd=work,
            capture_output=True,
            text=True,
            timeout=limit,
            check=False,
            preexec_fn=cap,  # noqa: PLW1509 - the child only execs python
        )
    except subprocess.TimeoutExpired:
        return CaseResult("FAIL", f"hung for {limit:g} s: {args}")
    took = time.monotonic() - t0
    if "Traceback" in proc.stderr or "internal error" in proc.stderr:
        return CaseResult("FAIL", f"{args}: {proc.stderr.strip().splitlines()[-1][:200]}")
    if proc.returncode == 0:
        return CaseResult("FAIL", f"{args}: accepted")
    errors = [ln for ln in proc.stderr.splitlines() if "error:" in ln]
    if len(errors) != 1:
        return CaseResult("FAIL", f"{args}: {len(errors)} error lines: {proc.stderr[-300:]!r}")
    return CaseResult("error", f"{errors[0][:160]} ({took:.1f} s)")


__all__ = [
    "CaseResult",
    "c_code_only",
    "hostile_settings",
    "injected_code",
    "name_cases",
    "name_payloads",
    "rename_model",
    "run_interrupted_save",
    "run_name_case",
    "run_script_case",
    "run_settings_case",
    "run_special_case",
    "script_cases",
    "special_file_commands",
    "special_files",
]
