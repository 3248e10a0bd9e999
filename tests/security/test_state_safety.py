"""Untrusted or interrupted states must not lose data or exhaust the machine (nnshell.state.files).

* A save killed (SIGKILL) or interrupted (SIGINT, SIGTERM) at every rename/unlink step, in a
  real subprocess: the old or the new state always reopens, Ctrl-C is delivered only after the
  commit, and the next successful save leaves no temporary, orphan or lock file behind. With
  ``strace`` installed the kill is also injected at the ``rename`` system call itself.
* Two writers: the second is refused in one line naming the first one's pid.
* Loading checks the graph like an ONNX import: an edited activation shape, nodes out of order,
  two writers of a tensor, duplicate node names and duplicate JSON keys are one error line.
* Devices, FIFOs and sparse multi-gigabyte files are refused without reading them; an npz with an
  extra 2 GiB member is refused with a small peak RSS; array headers claiming absurd shapes or
  sizes are refused before anything is allocated.
* Numbers out of range are one ModelFileError line, never an internal error.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from nnshell.errors import ModelFileError
from nnshell.session import Session
from nnshell.state import load_state
from tests.conftest import CALIB_DIR, ROOT, SAMPLE_MODEL

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX signals and flock")

# -- fixtures and helpers -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A quantized state of the sample model (4 calibration images) in its own folder."""
    folder = tmp_path_factory.mktemp("good")
    s = Session()
    s.open(str(SAMPLE_MODEL))
    s.fusions("scale8")
    s.aquant([str(p) for p in sorted(CALIB_DIR.glob("*.png"))[:4]])
    json_path, _ = s.save_state(str(folder / "m.json"))
    return json_path


def _npz_of(json_path: Path) -> Path:
    return json_path.parent / json.loads(json_path.read_text())["arrays"]["file"]


def _copy(good: Path, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(good, dest / good.name)
    shutil.copy(_npz_of(good), dest / _npz_of(good).name)
    return dest / good.name


def _edit(json_path: Path, fn: Callable[[dict[str, Any]], Any]) -> None:
    doc = json.loads(json_path.read_text())
    fn(doc)
    json_path.write_text(json.dumps(doc))


def _refused(json_path: Path) -> str:
    """The one-line ModelFileError that loading ``json_path`` gives."""
    with pytest.raises(ModelFileError) as err:
        load_state(json_path)
    msg = str(err.value)
    assert "\n" not in msg and "internal error" not in msg, msg
    return msg


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _assert_clean(json_path: Path) -> None:
    """Exactly the state's two files in its folder: no temporary, orphan npz or lock."""
    assert _listing(json_path.parent) == sorted([json_path.name, _npz_of(json_path).name])


# -- interrupted saves --------------------------------------------------------------------------

#: Reopen ``state``, change it (new history and a new array, so a new npz), then save it over
#: ``target``; at the k-th call of os.replace/rename/unlink/remove send ``signal`` to itself
#: first (k = 0: never). Prints SAVED or INTERRUPTED and the number of calls.
SAVE_SCRIPT = r"""
import os, signal, sys
import numpy as np
from nnshell.session import Session

state, target, k, signame = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
s = Session()
s.open(state)
s.history.append("second save")
s.graph.meta["second_save"] = np.arange(7)
calls = [0]

def wrap(real):
    def step(*args, **kwargs):
        calls[0] += 1
        if calls[0] == k:
            os.kill(os.getpid(), getattr(signal, signame))
        return real(*args, **kwargs)
    return step

for name in ("replace", "rename", "unlink", "remove"):
    setattr(os, name, wrap(getattr(os, name)))
try:
    s.save_state(target)
except KeyboardInterrupt:
    print(f"INTERRUPTED {calls[0]}", flush=True)
    sys.exit(3)
print(f"SAVED {calls[0]}", flush=True)
"""


def _run_save(
    state: Path, target: Path, k: int, sig: str, prefix: list[str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}  # no .pyc renames under strace
    return subprocess.run(
        [*(prefix or []), sys.executable, "-c", SAVE_SCRIPT, str(state), str(target), str(k), sig],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=180,
    )


def _which(json_path: Path) -> str:
    """'old' or 'new': which save the state at ``json_path`` is (it must reopen)."""
    loaded = load_state(json_path)
    return "new" if loaded.history[-1:] == ["second save"] else "old"


def _resave(json_path: Path) -> None:
    s = Session()
    s.open(str(json_path))
    s.save_state(str(json_path))


@pytest.fixture(scope="module")
def steps(good: Path, tmp_path_factory: pytest.TempPathFactory) -> int:
    """How many rename/unlink calls an uninterrupted save over an existing state makes."""
    target = _copy(good, tmp_path_factory.mktemp("count"))
    proc = _run_save(target, target, 0, "SIGINT")
    assert proc.returncode == 0, proc.stderr
    n = int(proc.stdout.split()[-1])
    assert n >= 3  # npz into place, JSON into place, old npz removed (+ the lock file)
    assert _which(target) == "new"
    _assert_clean(target)
    return n


def test_sigkill_at_every_step_leaves_old_or_new(good: Path, steps: int, tmp_path: Path) -> None:
    seen = []
    for k in range(1, steps + 1):
        target = _copy(good, tmp_path / f"k{k}")
        proc = _run_save(target, target, k, "SIGKILL")
        assert proc.returncode == -signal.SIGKILL, (k, proc.stdout, proc.stderr)
        seen.append(_which(target))  # reopens: the old state or the new one
        _resave(target)  # the next save cleans what the kill left behind
        _assert_clean(target)
        _which(target)
    # the JSON rename is the one commit point: before it the old state, after it the new one
    assert seen[0] == "old" and seen[-1] == "new", seen
    assert seen == sorted(seen, key=["old", "new"].index), seen


def test_sigint_at_every_step_is_deferred_until_the_commit(
    good: Path, steps: int, tmp_path: Path
) -> None:
    for k in range(1, steps + 1):
        target = _copy(good, tmp_path / f"k{k}")
        proc = _run_save(target, target, k, "SIGINT")
        # Ctrl-C still interrupts the program, but only once the new state is complete
        assert proc.returncode == 3 and proc.stdout.startswith("INTERRUPTED"), (k, proc.stderr)
        assert _which(target) == "new", k
        _assert_clean(target)


def test_sigterm_mid_save_terminates_after_the_commit(
    good: Path, steps: int, tmp_path: Path
) -> None:
    target = _copy(good, tmp_path / "t")
    proc = _run_save(target, target, 2, "SIGTERM")  # between the npz and the JSON renames
    assert proc.returncode == -signal.SIGTERM, proc.stderr
    assert _which(target) == "new"
    _assert_clean(target)


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
@pytest.mark.parametrize("when", [1, 2])
def test_sigkill_injected_at_the_rename_syscall(good: Path, tmp_path: Path, when: int) -> None:
    target = _copy(good, tmp_path / "s")
    inject = ["strace", "-f", "-qq", "-o", os.devnull]
    inject += ["-e", f"inject=rename,renameat,renameat2:signal=SIGKILL:when={when}"]
    proc = _run_save(target, target, 0, "SIGINT", prefix=inject)
    if "ptrace" in proc.stderr.lower() or "operation not permitted" in proc.stderr.lower():
        pytest.skip(f"strace cannot trace here: {proc.stderr.strip()[:120]}")
    assert proc.returncode != 0 and "SAVED" not in proc.stdout, proc.stdout + proc.stderr
    assert _which(target) == "old"  # killed before the JSON rename: the old state
    assert len(list(target.parent.iterdir())) > 2  # the kill left temporaries behind...
    _resave(target)
    _assert_clean(target)  # ...which the next save removes


# -- two writers ----------------------------------------------------------------------------------

#: Save ``state`` over itself, pausing inside the commit until ``go`` exists (``ready`` says so).
HOLD_SCRIPT = r"""
import os, sys, time
from nnshell.session import Session

state, ready, go = sys.argv[1:4]
s = Session()
s.open(state)
s.history.append("first writer")
real = os.replace

def slow(*args, **kwargs):
    open(ready, "w").close()
    deadline = time.time() + 120
    while not os.path.exists(go) and time.time() < deadline:
        time.sleep(0.05)
    return real(*args, **kwargs)

os.replace = slow
s.save_state(state)
print("SAVED", flush=True)
"""


def test_second_writer_is_refused_while_the_first_saves(good: Path, tmp_path: Path) -> None:
    target = _copy(good, tmp_path / "w")
    ready, go = tmp_path / "ready", tmp_path / "go"
    first = subprocess.Popen(
        [sys.executable, "-c", HOLD_SCRIPT, str(target), str(ready), str(go)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        deadline = time.time() + 120
        while not ready.exists() and first.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert ready.exists(), first.communicate()[1] if first.poll() is not None else "timeout"
        second = Session()
        second.open(str(good))
        with pytest.raises(ModelFileError) as err:
            second.save_state(str(target))
        msg = str(err.value)
        assert "\n" not in msg
        assert f"is being saved by another nnshell (pid {first.pid})" in msg, msg
    finally:
        go.touch()
        out, errs = first.communicate(timeout=120)
    assert first.returncode == 0 and "SAVED" in out, errs
    assert load_state(target).history[-1] == "first writer"  # the refused writer changed nothing
    second.save_state(str(target))  # the lock is gone with the first writer
    _assert_clean(target)


# -- what a save writes ---------------------------------------------------------------------------


def test_npz_name_follows_content_and_old_npz_goes(good: Path, tmp_path: Path) -> None:
    target = _copy(good, tmp_path / "n")
    old_npz = _npz_of(target)
    assert re.fullmatch(r"m\.[0-9a-f]{16}\.npz", old_npz.name)
    s = Session()
    s.open(str(target))
    s.save_state(str(target))
    assert _npz_of(target) == old_npz  # same arrays, same name: saving is deterministic
    s.graph.meta["more"] = np.ones(3)
    _, new_npz = s.save_state(str(target))
    assert new_npz != old_npz and not old_npz.exists()
    _assert_clean(target)


def test_file_modes_follow_the_umask(good: Path, tmp_path: Path) -> None:
    s = Session()
    s.open(str(good))
    old = os.umask(0o022)
    try:
        j, n = s.save_state(str(tmp_path / "a.json"))
        assert (j.stat().st_mode & 0o777, n.stat().st_mode & 0o777) == (0o644, 0o644)
        os.umask(0o077)
        j, n = s.save_state(str(tmp_path / "b.json"))
        assert (j.stat().st_mode & 0o777, n.stat().st_mode & 0o777) == (0o600, 0o600)
    finally:
        os.umask(old)


def test_missing_folder_is_refused_not_created(good: Path, tmp_path: Path) -> None:
    s = Session()
    s.open(str(good))
    with pytest.raises(ModelFileError) as err:
        s.save_state(str(tmp_path / "no" / "such" / "x.json"))
    assert "folder" in str(err.value) and "does not exist" in str(err.value)
    assert not (tmp_path / "no").exists()


def test_old_fixed_npz_name_still_reads_and_is_replaced(good: Path, tmp_path: Path) -> None:
    target = _copy(good, tmp_path / "legacy")
    hashed = _npz_of(target)
    hashed.rename(target.with_suffix(".npz"))  # what nnshell wrote before: m.json + m.npz
    _edit(target, lambda d: d["arrays"].update(file="m.npz"))
    s = Session()
    s.open(str(target))
    assert s.qstate is not None
    s.save_state(str(target))
    assert _npz_of(target).name == hashed.name and not target.with_suffix(".npz").exists()
    _assert_clean(target)


def test_unnamed_legacy_npz_is_kept(good: Path, tmp_path: Path) -> None:
    """``m.npz`` that the state does not name may be the user's own (``dump -P m.npz``)."""
    target = _copy(good, tmp_path / "keep")
    mine = target.with_suffix(".npz")
    np.savez(mine, x=np.arange(3))
    _resave(target)
    assert mine.exists()


def test_leftovers_of_this_state_are_cleaned_and_nothing_else(good: Path, tmp_path: Path) -> None:
    target = _copy(good, tmp_path / "c")
    folder = target.parent
    ours = [
        ".m.json.json.abc_1234.tmp",  # temporaries of this nnshell
        ".m.json.npz.zz99zz99.tmp",
        ".m.json.k2j4h5g6.tmp",  # temporaries of the previous nnshell
        ".m.npz.k2j4h5g6.tmp",
        "m.0123456789abcdef.npz",  # an npz an interrupted save renamed but never committed
        "m.json.lock",  # a kill -9 after the commit
    ]
    theirs = [
        ".other.json.json.abc_1234.tmp",
        ".m.json.json.toolong123.tmp",
        "m.npz",
        "m.0123456789abcdeg.npz",
        "m.fedcba9876543210.json",  # a state of that name: its legacy npz is its own
        "m.fedcba9876543210.npz",
        "notes.txt",
    ]
    for name in ours + theirs:
        (folder / name).write_bytes(b"x")
    _resave(target)
    assert _listing(folder) == sorted([target.name, _npz_of(target).name, *theirs])


# -- strict validation --------------------------------------------------------------------------


def _shape_edit(doc: dict[str, Any]) -> None:
    for t in doc["graphs"]["current"]["tensors"]:
        if t["shape"] == [1, 6, 14, 14]:
            t["shape"] = [1, 6, 1, 1]
            return
    raise AssertionError("no [1, 6, 14, 14] tensor in the sample")


def test_edited_activation_shape_is_refused(good: Path, tmp_path: Path) -> None:
    bad = _copy(good, tmp_path / "shape")
    _edit(bad, _shape_edit)
    msg = _refused(bad)
    node = load_state(good).graph.nodes[0].name  # the conv that writes [1, 6, 14, 14]
    assert f"node '{node}'" in msg and "[1, 6, 1, 1]" in msg and "[1, 6, 14, 14]" in msg, msg


def _swap_nodes(doc: dict[str, Any]) -> None:
    nodes = doc["graphs"]["current"]["nodes"]
    nodes[0], nodes[1] = nodes[1], nodes[0]


def _dup_node_name(doc: dict[str, Any]) -> None:
    nodes = doc["graphs"]["current"]["nodes"]
    nodes[1]["name"] = nodes[0]["name"]


def _two_writers(doc: dict[str, Any]) -> None:
    nodes = doc["graphs"]["current"]["nodes"]
    nodes[2]["outputs"] = list(nodes[1]["outputs"])


def _dup_tensor(doc: dict[str, Any]) -> None:
    tensors = doc["graphs"]["current"]["tensors"]
    tensors.append(dict(tensors[0]))


GRAPH_CASES = {
    "nodes out of order": (_swap_nodes, "before any node writes it"),
    "duplicate node name": (_dup_node_name, "two nodes are called"),
    "two writers": (_two_writers, "already written by"),
    "tensor declared twice": (_dup_tensor, "declared twice"),
}


@pytest.mark.parametrize("case", list(GRAPH_CASES))
def test_graph_structure_is_checked(good: Path, tmp_path: Path, case: str) -> None:
    bad = _copy(good, tmp_path / "g")
    mutate, needle = GRAPH_CASES[case]
    _edit(bad, mutate)
    assert needle in _refused(bad)


def test_duplicate_json_keys_are_refused(good: Path, tmp_path: Path) -> None:
    bad = _copy(good, tmp_path / "dup")
    text = bad.read_text()
    bad.write_text(text.replace('"adjusted": false', '"adjusted": false, "adjusted": true', 1))
    assert "key 'adjusted' appears twice" in _refused(bad)


def _set(path: list[Any], value: Any) -> Callable[[dict[str, Any]], None]:
    def fn(doc: dict[str, Any]) -> None:
        obj: Any = doc
        for k in path[:-1]:
            obj = obj[k] if not callable(k) else k(obj)
        obj[path[-1]] = value

    return fn


def _first(d: dict[str, Any]) -> Any:
    return next(iter(d.values()))


NUMBER_CASES: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "int beyond int64/uint64": (_set(["calibration", "tensors", _first, "count"], 10**30), "range"),
    "huge activation shape": (
        _set(["graphs", "current", "tensors", 0, "shape"], [1, 1 << 20, 1 << 20, 4]),
        "elements",
    ),
    "negative dimension": (
        _set(["graphs", "current", "tensors", 0, "shape"], [1, -3, 32, 32]),
        "negative",
    ),
    "numpy scalar overflow": (
        _set(["graphs", "current", "meta", "x"], {"__np__": "int8", "v": 1000}),
        "is not a int8",
    ),
    "zero scale": (_set(["quantization", "tensors", _first, "scale"], 0.0), "scale"),
    "negative scale": (_set(["quantization", "tensors", _first, "scale"], -1.0), "scale"),
    "zero point outside int8": (
        _set(["quantization", "tensors", _first, "zero_point"], 1000),
        "zero point",
    ),
    "64-bit qtype": (_set(["quantization", "tensors", _first, "bits"], 64), "bit width"),
    "percentile": (_set(["quantization", "options", "mode", "percentile"], 1e300), "percentile"),
    "negative count": (_set(["calibration", "tensors", _first, "count"], -5), "negative count"),
}


@pytest.mark.parametrize("case", list(NUMBER_CASES))
def test_numbers_out_of_range_are_one_line(good: Path, tmp_path: Path, case: str) -> None:
    bad = _copy(good, tmp_path / "num")
    mutate, needle = NUMBER_CASES[case]
    _edit(bad, mutate)
    assert needle in _refused(bad)


@pytest.mark.parametrize("literal", ["1e999", "-1e999", "NaN", "Infinity"])
def test_non_finite_literals_are_refused(good: Path, tmp_path: Path, literal: str) -> None:
    bad = _copy(good, tmp_path / "lit")
    _edit(bad, _set(["graphs", "current", "meta", "x"], "@@"))
    bad.write_text(bad.read_text().replace('"@@"', literal))
    msg = _refused(bad)
    assert "range" in msg or "not JSON" in msg, msg


def test_overflow_from_the_command_line_is_not_an_internal_error(
    good: Path, tmp_path: Path
) -> None:
    bad = _copy(good, tmp_path / "cli")
    huge = '"schema_version": 1' + "0" * 5000  # Python's int() refuses 5000 digits
    bad.write_text(bad.read_text().replace('"schema_version": 1', huge))
    proc = subprocess.run(
        [sys.executable, "-m", "nnshell", str(bad), "-c", "qshow"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr
    assert "internal error" not in proc.stderr and "out of range" in lines[0]


@pytest.mark.parametrize("exc", [MemoryError, RecursionError, OverflowError])
def test_resource_errors_while_decoding_are_one_line(
    good: Path, monkeypatch: pytest.MonkeyPatch, exc: type[BaseException]
) -> None:
    import nnshell.state.load as load_mod

    def boom(*args: Any) -> Any:
        raise exc("simulated")

    monkeypatch.setattr(load_mod, "_decode", boom)
    assert str(good) in _refused(good)


# -- files that are not files, and files too big to read ------------------------------------------

PROBE = r"""
import sys
from nnshell.state import load_state
try:
    load_state(sys.argv[1])
except Exception as exc:
    print(type(exc).__name__, str(exc))
"""


def _probe(path: Path) -> str:
    """Load ``path`` in a subprocess (a hang is a failure, not a stuck test run)."""
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, str(path)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_dev_zero_and_fifo_as_state_file(tmp_path: Path) -> None:
    (tmp_path / "zero.json").symlink_to("/dev/zero")
    os.mkfifo(tmp_path / "fifo.json")
    assert _probe(tmp_path / "zero.json").startswith("ModelFileError")
    assert "is a device" in _probe(tmp_path / "zero.json")
    assert "FIFO" in _probe(tmp_path / "fifo.json")
    proc = subprocess.run(  # the command line as a user would run it
        [sys.executable, "-m", "nnshell", str(tmp_path / "fifo.json"), "-c", "qshow"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1 and "FIFO" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("kind", ["device", "fifo"])
def test_dev_zero_and_fifo_as_array_file(good: Path, tmp_path: Path, kind: str) -> None:
    bad = _copy(good, tmp_path / kind)
    if kind == "device":
        (bad.parent / "evil.npz").symlink_to("/dev/zero")
    else:
        os.mkfifo(bad.parent / "evil.npz")
    _edit(bad, lambda d: d["arrays"].update(file="evil.npz"))
    out = _probe(bad)
    assert out.startswith("ModelFileError") and ("device" in out or "FIFO" in out), out


def _sparse(path: Path, size: int) -> bool:
    with open(path, "wb") as fh:
        fh.truncate(size)
    return path.stat().st_blocks * 512 < (1 << 20)  # really sparse on this file system


def test_sparse_huge_json_and_npz_are_refused_unread(good: Path, tmp_path: Path) -> None:
    if not _sparse(tmp_path / "big.json", 3 << 30):
        pytest.skip("no sparse files here")
    t0 = time.monotonic()
    assert "over the" in _refused(tmp_path / "big.json")
    bad = _copy(good, tmp_path / "bignpz")
    _sparse(bad.parent / "big.npz", 5 << 30)
    _edit(bad, lambda d: d["arrays"].update(file="big.npz"))
    assert "over the" in _refused(bad)
    assert time.monotonic() - t0 < 10  # refused from the size, not read


# -- npz bombs ------------------------------------------------------------------------------------


def _npy(shape: tuple[int, ...], dtype: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": dtype, "fortran_order": False, "shape": shape}
    )
    return buf.getvalue() + data


def _rewrite_npz(json_path: Path, members: dict[str, tuple[bytes, int]]) -> None:
    """Replace/add npz members (name -> (bytes, zip method)) and record the new hash."""
    npz = _npz_of(json_path)
    with zipfile.ZipFile(npz) as zf:
        old = {i.filename: zf.read(i) for i in zf.infolist()}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in old.items():
            if name not in members:
                zf.writestr(name, data, zipfile.ZIP_STORED)
        for name, (data, method) in members.items():
            zf.writestr(name, data, method)
    npz.write_bytes(buf.getvalue())
    sha = hashlib.sha256(buf.getvalue()).hexdigest()
    _edit(json_path, lambda d: d["arrays"].update(sha256=sha))


def _first_member(json_path: Path) -> str:
    with zipfile.ZipFile(_npz_of(json_path)) as zf:
        return zf.namelist()[0]


def test_npy_header_with_absurd_shape_is_refused(good: Path, tmp_path: Path) -> None:
    bad = _copy(good, tmp_path / "shape")
    _rewrite_npz(bad, {_first_member(bad): (_npy((1 << 40,), "<f4", bytes(16)), 0)})
    msg = _refused(bad)
    assert "(1099511627776,)" in msg and "elements" in msg, msg


def test_npy_header_disagreeing_with_its_entry_is_refused(good: Path, tmp_path: Path) -> None:
    bad = _copy(good, tmp_path / "size")
    _rewrite_npz(bad, {_first_member(bad): (_npy((1000, 1000), "<f4", bytes(16)), 0)})
    assert "its entry holds 16 bytes" in _refused(bad)


def test_object_dtype_member_is_refused(good: Path, tmp_path: Path) -> None:
    bad = _copy(good, tmp_path / "obj")
    _rewrite_npz(bad, {_first_member(bad): (_npy((1,), "|O", b"\x80\x04N."), 0)})
    assert "dtype object" in _refused(bad)


def test_deflate_bomb_is_capped_from_the_zip_header(
    good: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = _copy(good, tmp_path / "bomb")
    member = _npy((64 << 20,), "|u1", bytes(64 << 20))  # 64 MiB of zeros, ~64 KiB deflated
    _rewrite_npz(bad, {_first_member(bad): (member, zipfile.ZIP_DEFLATED)})
    size = _npz_of(bad).stat().st_size
    monkeypatch.setenv("NNSHELL_MAX_STATE_ARRAY_BYTES", str(size + (1 << 20)))
    assert "unpacks beyond" in _refused(bad)


def test_unreferenced_member_is_refused_unread(good: Path, tmp_path: Path) -> None:
    bad = _copy(good, tmp_path / "extra")
    _rewrite_npz(bad, {"a99999.npy": (_npy((4,), "<f4", bytes(16)), 0)})
    assert "entries; the state names" in _refused(bad)


def _append_sparse_member(npz: Path, name: str, data_len: int) -> None:
    """Rewrite ``npz`` as a stored zip plus ``name`` holding a .npy of ``data_len`` zero bytes
    that the file system keeps as a hole (so a 2 GiB member costs no disk)."""
    with zipfile.ZipFile(npz) as zf:
        old = [(i.filename, zf.read(i)) for i in zf.infolist()]
    header = _npy((data_len,), "|u1", b"")
    crc = zlib.crc32(header)
    zeros = bytes(1 << 20)
    for _ in range(data_len >> 20):
        crc = zlib.crc32(zeros, crc)
    crc = zlib.crc32(bytes(data_len & ((1 << 20) - 1)), crc)
    entries, central = [], b""
    with open(npz, "wb") as fh:
        for fname, data in [*old, (name, None)]:
            size = len(data) if data is not None else len(header) + data_len
            c = zlib.crc32(data) if data is not None else crc
            raw = fname.encode()
            offset = fh.tell()
            fh.write(b"PK\x03\x04" + _le(20, 2, 0, 2, 0, 2, 0, 2, 0, 2, c, 4, size, 4, size, 4))
            fh.write(_le(len(raw), 2, 0, 2) + raw)
            if data is not None:
                fh.write(data)
            else:
                fh.write(header)
                fh.seek(data_len, os.SEEK_CUR)  # the hole
            entries.append((raw, c, size, offset))
        cd_offset = fh.tell()
        for raw, c, size, offset in entries:
            central += b"PK\x01\x02" + _le(20, 2, 20, 2, 0, 2, 0, 2, 0, 2, 0, 2, c, 4, size, 4)
            central += _le(size, 4, len(raw), 2, 0, 2, 0, 2, 0, 2, 0, 2, 0, 4, offset, 4) + raw
        fh.write(central)
        fh.write(b"PK\x05\x06" + _le(0, 2, 0, 2, len(entries), 2, len(entries), 2))
        fh.write(_le(len(central), 4, cd_offset, 4, 0, 2))


def _le(*pairs: int) -> bytes:
    """Little-endian fields from (value, width) pairs."""
    return b"".join(pairs[i].to_bytes(pairs[i + 1], "little") for i in range(0, len(pairs), 2))


RSS_PROBE = r"""
import resource, sys
from nnshell.state import load_state
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    load_state(sys.argv[1])
    print("LOADED")
except Exception as exc:
    print(type(exc).__name__, str(exc))
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(before, after)
"""


def test_extra_2gib_member_with_recomputed_hash_keeps_rss_small(good: Path, tmp_path: Path) -> None:
    bad = _copy(good, tmp_path / "huge")
    npz = _npz_of(bad)
    _append_sparse_member(npz, "a99999.npy", 2 << 30)
    if npz.stat().st_blocks * 512 > (256 << 20):
        pytest.skip("no sparse files here")
    with zipfile.ZipFile(npz) as zf:  # a valid zip: the member is there, 2 GiB big
        assert zf.getinfo("a99999.npy").file_size > 2 << 30
    h = hashlib.sha256()
    with open(npz, "rb") as fh:
        while chunk := fh.read(16 << 20):
            h.update(chunk)
    _edit(bad, lambda d: d["arrays"].update(sha256=h.hexdigest()))
    proc = subprocess.run(
        [sys.executable, "-c", RSS_PROBE, str(bad)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    verdict, rss = proc.stdout.strip().splitlines()
    before, after = (int(x) for x in rss.split())  # KiB
    assert verdict.startswith("ModelFileError") and "entries; the state names" in verdict
    assert after - before < 64 << 10, (before, after)  # < 64 MiB more than before the load
