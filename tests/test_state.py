"""save_state / open STATE.json: exact round trips, a new process, and every corruption refused."""

from __future__ import annotations

import io
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nnshell.errors import ModelFileError
from nnshell.exec.int_exec import run_int
from nnshell.input.images import InputOptions, expand_files, iter_batches
from nnshell.session import Session
from nnshell.state import load_state, save_state
from tests.conftest import CALIB_DIR, ROOT, SAMPLE_MODEL, TEST_DIR

NORM = "x: (x/255 - 0.5)/0.5"


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[Session, Path]:
    """The quantized sample, opened from a copy of the .onnx that is deleted after the save."""
    work = tmp_path_factory.mktemp("state")
    model = work / "cifar_net.onnx"
    shutil.copy(SAMPLE_MODEL, model)
    s = Session()
    s.open(str(model))
    s.record(f"open {model}")
    s.set("input_norm_func", NORM)
    s.record(f'set input_norm_func "{NORM}"')
    s.adjust()
    s.record("adjust")
    s.fusions("scale8")
    s.record("fusions --scale8")
    s.aquant([str(CALIB_DIR)])
    s.record(f"aquant {CALIB_DIR}")
    (work / "saved").mkdir()
    json_path, npz_path = s.save_state(str(work / "saved" / "cifar.json"))
    assert json_path.is_file() and npz_path.is_file()
    model.unlink()  # every reopen below works without the source model
    return s, json_path


@pytest.fixture(scope="module", autouse=False)
def test_images() -> np.ndarray:
    files = expand_files([str(TEST_DIR)])
    opts = InputOptions(norm_func=NORM)
    return np.concatenate([b for _, b in iter_batches(files, opts, (3, 32, 32), 256)])


def _qshow_json(session: Session) -> str:
    from nnshell.shell.app import make_app, run_command

    buf = io.StringIO()
    app = make_app(session=session, stdout=buf)
    ok, _ = run_command(app, "qshow --json")
    assert ok, app.last_error
    return buf.getvalue()


def _reopen(path: Path) -> Session:
    s = Session()
    s.open(str(path))
    return s


# -- round trips ------------------------------------------------------------------------------


def test_save_writes_json_and_npz_with_hash(saved: tuple[Session, Path]) -> None:
    _, path = saved
    doc = json.loads(path.read_text())
    assert doc["format"] == "nnshell-state" and doc["schema_version"] == 1
    assert re.fullmatch(r"cifar\.[0-9a-f]{16}\.npz", doc["arrays"]["file"])
    assert doc["arrays"]["sha256"].startswith(doc["arrays"]["file"].split(".")[1])
    assert doc["source_model"]["sha256"] == saved[0].graph.meta["sha256"]
    assert doc["session"] == {
        "adjusted": True,
        "scheme": "scale8",
        "history": saved[0].history,
    }
    assert doc["settings"]["input_norm_func"] == NORM
    assert len(doc["calibration"]["files"]) == len(os.listdir(CALIB_DIR))


def test_new_process_qshow_json_identical(saved: tuple[Session, Path]) -> None:
    session, path = saved
    proc = subprocess.run(
        [sys.executable, "-m", "nnshell", str(path), "-c", "qshow --json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == _qshow_json(session)
    assert json.loads(proc.stdout)["layers"]


def test_everything_restored(saved: tuple[Session, Path]) -> None:
    orig, path = saved
    s = _reopen(path)
    assert s.model_path == str(path)
    assert (s.adjusted, s.scheme, s.history) == (orig.adjusted, orig.scheme, orig.history)
    assert s.settings == orig.settings
    assert s.stats_files == orig.stats_files
    for g1, g2 in ((orig.graph, s.graph), (orig.imported, s.imported)):
        assert g2 is not None and g1 is not None
        assert [(n.name, n.op, n.inputs, n.outputs, n.attrs, n.meta) for n in g1.nodes] == [
            (n.name, n.op, n.inputs, n.outputs, n.attrs, n.meta) for n in g2.nodes
        ]
        assert g1.meta == g2.meta and list(g1.tensors) == list(g2.tensors)
        for name, t in g1.tensors.items():
            u = g2.tensors[name]
            assert (t.shape, t.dtype) == (u.shape, u.dtype)
            if t.const is not None:
                assert u.const is not None and u.const.dtype == t.const.dtype
                np.testing.assert_array_equal(t.const, u.const)
    # nested attribute dataclasses and tuples come back as the same types
    fused = s.graph.nodes[0].attrs
    assert type(fused).__name__ == "FusedAttrs" and isinstance(fused.parts, tuple)
    assert fused == orig.graph.nodes[0].attrs
    assert s.qstate.options == orig.qstate.options
    assert s.qstate.tensors == orig.qstate.tensors and s.qstate.ranges == orig.qstate.ranges
    for name, nq in orig.qstate.nodes.items():
        nq2 = s.qstate.nodes[name]
        assert nq2.in_q == nq.in_q and nq2.out_q == nq.out_q
        assert set(nq2.consts) == set(nq.consts)
        for k, a in nq.consts.items():
            assert nq2.consts[k].dtype == a.dtype
            np.testing.assert_array_equal(nq2.consts[k], a)
        geo = nq.info.get("geometry")
        if geo is not None:
            assert nq2.info["geometry"] == geo and isinstance(nq2.info["geometry"], tuple)
    for name, st1 in orig.stats.items():
        st2 = s.stats[name]
        assert st2.to_dict() == st1.to_dict()
        np.testing.assert_array_equal(st2.hist, st1.hist)


def test_integer_outputs_identical(saved: tuple[Session, Path], test_images: np.ndarray) -> None:
    orig, path = saved
    s = _reopen(path)
    g1, g2 = orig.graph, s.graph
    keep = [n.outputs[0] for n in g1.nodes]
    a = run_int(g1, orig.qstate, {g1.inputs[0]: test_images}, keep=keep)
    b = run_int(g2, s.qstate, {g2.inputs[0]: test_images}, keep=keep)
    assert len(test_images) == len(os.listdir(TEST_DIR))
    for name in keep:
        assert a[name].dtype == b[name].dtype
        np.testing.assert_array_equal(a[name], b[name])


def test_requantize_from_restored_statistics(saved: tuple[Session, Path]) -> None:
    orig, path = saved
    s = _reopen(path)
    out = s.aquant([], mode="minmax")  # no images: the restored statistics are reused
    assert out.reused
    assert s.qstate.tensors == orig.qstate.tensors


def test_fusions_pow2_after_reopen(saved: tuple[Session, Path]) -> None:
    _, path = saved
    s = _reopen(path)
    outcome = s.fusions("pow2")
    assert outcome.rederived == "scale8" and s.scheme == "pow2"
    assert s.qstate is None  # the quantization named the scale8 graph


def test_save_load_save_is_byte_identical(saved: tuple[Session, Path], tmp_path: Path) -> None:
    _, path = saved
    s = _reopen(path)
    j2, n2 = s.save_state(str(tmp_path / "cifar.json"))
    assert j2.read_bytes() == path.read_bytes()
    assert n2 == tmp_path / _npz_of(path).name  # the npz name follows from its content
    assert n2.read_bytes() == _npz_of(path).read_bytes()


def test_shell_save_state_and_default_path(saved: tuple[Session, Path], tmp_path: Path) -> None:
    from nnshell.shell.app import make_app, run_command

    _, path = saved
    buf = io.StringIO()
    app = make_app(session=_reopen(path), stdout=buf)
    ok, _ = run_command(app, f"save_state {tmp_path}")  # a folder: <graph name>.json in it
    assert ok, app.last_error
    assert (tmp_path / "cifar_net.json").is_file() and _npz_of(
        tmp_path / "cifar_net.json"
    ).is_file()
    assert "saved state to" in buf.getvalue() and "KiB" in buf.getvalue()
    s = _reopen(tmp_path / "cifar_net.json")
    assert s.default_state_path() == str(tmp_path / "cifar_net.json")
    j, _ = s.save_state()
    assert j == tmp_path / "cifar_net.json"


# -- refusals ---------------------------------------------------------------------------------


def _npz_of(path: Path) -> Path:
    """The npz a state's JSON names (``<stem>.<16 hex>.npz``)."""
    return path.parent / json.loads(path.read_text())["arrays"]["file"]


def _copy_state(path: Path, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, dest / path.name)
    shutil.copy(_npz_of(path), dest / _npz_of(path).name)
    return dest / path.name


def _edit(path: Path, fn: Any) -> None:
    doc = json.loads(path.read_text())
    fn(doc)
    path.write_text(json.dumps(doc))


def _corrupt_json(p: Path) -> None:
    p.write_text("{ this is not json")


def _truncate_json(p: Path) -> None:
    p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2])


def _deep_json(p: Path) -> None:
    p.write_text("[" * 100_000 + "]" * 100_000)


def _newer(p: Path) -> None:
    _edit(p, lambda d: d.update(schema_version=99, tool_version="9.9.9"))


def _missing_npz(p: Path) -> None:
    _npz_of(p).unlink()


def _wrong_hash(p: Path) -> None:
    npz = _npz_of(p)
    data = bytearray(npz.read_bytes())
    data[len(data) // 2] ^= 0xFF
    npz.write_bytes(bytes(data))


def _truncated_npz(p: Path) -> None:
    npz = _npz_of(p)
    npz.write_bytes(npz.read_bytes()[:1000])


def _escaping_name(p: Path) -> None:
    _edit(p, lambda d: d["arrays"].update(file="../cifar.npz"))


def _absolute_name(p: Path) -> None:
    _edit(p, lambda d: d["arrays"].update(file=str(p.with_suffix(".npz"))))


def _unknown_op(p: Path) -> None:
    _edit(p, lambda d: d["graphs"]["current"]["nodes"][0].update(op="EvilOp"))


def _bad_class(p: Path) -> None:
    _edit(p, lambda d: d["graphs"]["current"]["nodes"][0]["attrs"].update(__dc__="Popen"))


def _missing_key(p: Path) -> None:
    _edit(p, lambda d: d["graphs"]["current"].pop("nodes"))


def _wrong_type(p: Path) -> None:
    _edit(p, lambda d: d["session"].update(adjusted="yes"))


def _bad_array_ref(p: Path) -> None:
    _edit(p, lambda d: d["graphs"]["current"]["tensors"][0].update(const="a99999"))


CASES = {
    "corrupt JSON": (_corrupt_json, "not valid JSON"),
    "truncated JSON": (_truncate_json, "not valid JSON"),
    "deeply nested JSON": (_deep_json, "nested too deeply"),
    "newer schema": (_newer, "schema version 99"),
    "missing npz": (_missing_npz, "missing"),
    "npz wrong hash": (_wrong_hash, "SHA-256"),
    "npz truncated": (_truncated_npz, "SHA-256"),
    "path escaping npz": (_escaping_name, "not a plain .npz file name"),
    "absolute npz": (_absolute_name, "not a plain .npz file name"),
    "unregistered op": (_unknown_op, "'EvilOp' is not registered"),
    "class not whitelisted": (_bad_class, "'Popen' is not an op attribute class"),
    "missing key": (_missing_key, "has no 'nodes'"),
    "wrong type": (_wrong_type, "adjusted has the wrong type"),
    "dangling array": (_bad_array_ref, "a99999"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_state_is_one_error_and_session_unchanged(
    case: str, saved: tuple[Session, Path], tmp_path: Path
) -> None:
    _, path = saved
    bad = _copy_state(path, tmp_path / "sub")
    mutate, needle = CASES[case]
    mutate(bad)
    s = _reopen(path)
    before = (s.graph, s.imported, s.prefusion, s.qstate, s.stats, s.model_path, s.scheme)
    settings_before, history_before = dict(s.settings), list(s.history)
    with pytest.raises(ModelFileError) as err:
        s.open(str(bad))
    msg = str(err.value)
    assert "\n" not in msg and needle in msg, msg
    after = (s.graph, s.imported, s.prefusion, s.qstate, s.stats, s.model_path, s.scheme)
    assert all(a is b for a, b in zip(before, after, strict=True))
    assert s.settings == settings_before and s.history == history_before


def test_newer_schema_names_both_versions(saved: tuple[Session, Path], tmp_path: Path) -> None:
    bad = _copy_state(saved[1], tmp_path)
    _newer(bad)
    with pytest.raises(ModelFileError) as err:
        load_state(bad)
    assert "schema version 99" in str(err.value) and "schema version 1" in str(err.value)


def test_bad_state_from_the_command_line(saved: tuple[Session, Path], tmp_path: Path) -> None:
    bad = _copy_state(saved[1], tmp_path)
    _missing_npz(bad)
    proc = subprocess.run(
        [sys.executable, "-m", "nnshell", str(bad), "-c", "qshow"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    errors = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(errors) == 1 and "error:" in errors[0] and "missing" in errors[0]
    assert "Traceback" not in proc.stderr


def test_unwritable_folder_keeps_previous_state(
    saved: tuple[Session, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = _reopen(saved[1])
    folder = tmp_path / "ro"
    folder.mkdir()
    j, n = s.save_state(str(folder / "m.json"))
    old_j, old_n = j.read_bytes(), n.read_bytes()
    s.history.append("a change that must not reach the disk")
    folder.chmod(0o500)
    try:
        if os.access(folder, os.W_OK):  # root ignores the mode: fail like a read-only folder
            import nnshell.atomic as atomic_mod

            def denied(*args: Any, **kwargs: Any) -> Any:
                raise PermissionError(13, "Permission denied")

            monkeypatch.setattr(atomic_mod.tempfile, "mkstemp", denied)
        with pytest.raises(ModelFileError) as err:
            s.save_state(str(folder / "m.json"))
        assert "Permission denied" in str(err.value) and "\n" not in str(err.value)
    finally:
        folder.chmod(0o700)
    assert j.read_bytes() == old_j and n.read_bytes() == old_n
    assert sorted(p.name for p in folder.iterdir()) == sorted(["m.json", n.name])  # no temp left
    load_state(j)


def test_failed_rename_leaves_no_temp_and_old_state(
    saved: tuple[Session, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = _reopen(saved[1])
    j, n = s.save_state(str(tmp_path / "m.json"))
    old = j.read_bytes()
    import nnshell.state as state_mod

    def boom(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(state_mod.os, "replace", boom)
    s.history.append("more")
    with pytest.raises(ModelFileError):
        s.save_state(str(tmp_path / "m.json"))
    assert j.read_bytes() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["m.json", n.name])


# -- property: save -> load -> save is byte-identical ---------------------------------------

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**62), 2**62),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.sampled_from([np.int64(3), np.float32(0.5), np.uint8(200), np.bool_(True)]),
    st.builds(slice, st.integers(-5, 5), st.none() | st.integers(-5, 5)),
)
_arrays = st.sampled_from(
    [np.arange(6, dtype=np.int8).reshape(2, 3), np.linspace(0, 1, 5), np.zeros(0, np.int32)]
)
_values = st.recursive(
    st.one_of(_scalars, _arrays),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(st.text(max_size=6), inner, max_size=4),
        st.dictionaries(st.integers(-3, 3), inner, max_size=3),
    ),
    max_leaves=12,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    meta=st.dictionaries(st.text(min_size=1, max_size=8), _values, max_size=4),
    history=st.lists(st.text(max_size=20), max_size=5),
    batch=st.integers(1, 4096),
    norm=st.none() | st.text(max_size=20),
)
def test_property_save_load_save_identical(
    saved: tuple[Session, Path], meta: dict[str, Any], history: list[str], batch: int, norm: Any
) -> None:
    import tempfile

    base = saved[0]
    graph = base.graph.copy()
    graph.meta.update({f"x_{k}": v for k, v in meta.items()})
    graph.nodes[0].meta["extra"] = meta
    src = SimpleNamespace(
        graph=graph,
        imported=None,
        prefusion=base.prefusion,
        settings={**base.settings, "batch_size": batch, "input_norm_func": norm},
        history=history,
        adjusted=True,
        scheme="scale8",
        stats=base.stats,
        stats_files=base.stats_files,
        qstate=base.qstate,
    )
    with tempfile.TemporaryDirectory() as d1, tempfile.TemporaryDirectory() as d2:
        j1, n1 = save_state(src, Path(d1) / "s.json")
        loaded = load_state(j1)
        j2, n2 = save_state(loaded, Path(d2) / "s.json")
        assert j1.read_bytes() == j2.read_bytes()
        assert n1.read_bytes() == n2.read_bytes()
    assert loaded.history == history and loaded.settings["batch_size"] == batch
    _assert_same(loaded.graph.nodes[0].meta["extra"], meta)


def _assert_same(a: Any, b: Any) -> None:
    """Equal values of the same types (NaN equals NaN, arrays compared by content and dtype)."""
    assert type(a) is type(b), (a, b)
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _assert_same(x, y)
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            _assert_same(a[k], b[k])
    elif isinstance(a, (float, np.floating)) and math.isnan(a):
        assert math.isnan(b)
    else:
        assert a == b
