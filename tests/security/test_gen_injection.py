"""Untrusted models and states must not run code through ``gen`` (both targets).

The attack: tensor, node and graph names from an ONNX file or a state file, and settings from a
state file, used to land unescaped in comments and strings of the generated C; ``gen --verify``
then compiled and ran ``system("touch ...")``. Each test feeds such names or settings and checks
that the injected code never runs (no marker file), the generated C has every comment and string
closed where it should be and no payload word as code, it compiles with ``-Werror`` (the
AutoTiler model against a stub of the AutoTiler API), and ``gen --verify`` built with
AddressSanitizer/UBSan is clean. Edited shapes and geometries are refused in one line naming the
node, before any C exists; sizes are capped.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

from nnshell.codegen.autotiler import generate_autotiler
from nnshell.codegen.c_emitter import render_c
from nnshell.codegen.verify import verify_arrays
from nnshell.errors import CodegenError, ModelFileError, NnshellError, SettingError
from nnshell.session import Session
from nnshell.settings import AT_MEMORIES, MEMORY_SETTINGS
from tests.conftest import CALIB_DIR, SAMPLE_MODEL, TEST_DIR
from tests.security.csource import (
    SANITIZE,
    STRICT,
    check_generated,
    compile_autotiler_model,
    compile_c,
    has_gcc,
)

pytestmark = pytest.mark.skipif(not has_gcc(), reason="the generated C is compiled: needs gcc")

NORM = "x: x/128-1"
C_INCLUDES = {"<stdio.h>", "<stdlib.h>", "<string.h>", "<time.h>", "<stdint.h>", "<stddef.h>"}
AT_INCLUDES = {
    "<stdint.h>",
    "<stdio.h>",
    '"AutoTilerLib.h"',
    '"CNN_Generators_SQ8.h"',
    '"CNN_Generators.h"',
    '"CNN_Copy_Generators.h"',
}


def payloads(marker: Path) -> list[str]:
    """Hostile names; each would create ``marker`` if it ever became code."""
    touch = f'system("touch {marker}")'
    return [
        f"r */ {{ extern int system(const char *); {touch}; }} /* ",
        f'a"); {touch}; //',
        f"b\n#include <stdlib.h>\nstatic int x = {touch};\n",
        "c\\",
        "d??/",
        "e*/*/",
        "f/*",
        "g\x01\x7f\r",
        "h\u00e9\u6a21\U0001f642\u202e",
        "i" * 3000,
        "j\"'`$(touch x)",
    ]


def _session(model: Path) -> Session:
    s = Session()
    s.open(str(model))
    s.set("input_norm_func", NORM)
    s.adjust()
    s.fusions("scale8")
    s.aquant([str(CALIB_DIR)])
    return s


def _hostile_onnx(path: Path, marker: Path) -> Path:
    """cifar_net with every activation tensor and node renamed to a hostile name."""
    m = onnx.load(str(SAMPLE_MODEL))
    g = m.graph
    inits = {i.name for i in g.initializer}
    acts = sorted(
        {o for n in g.node for o in n.output}
        | {i.name for i in g.input if i.name not in inits}
        | {o.name for o in g.output}
    )
    names = payloads(marker)
    ren = {old: f"{k}{names[k % len(names)]}" for k, old in enumerate(acts)}
    for k, n in enumerate(g.node):
        n.input[:] = [ren.get(x, x) for x in n.input]
        n.output[:] = [ren.get(x, x) for x in n.output]
        n.name = f"n{k}{names[(k + 3) % len(names)]}"
    for coll in (g.value_info, g.input, g.output):
        for vi in coll:
            vi.name = ren.get(vi.name, vi.name)
    g.name = names[0]
    onnx.save(m, str(path))
    return path


def _images(n: int = 8) -> np.ndarray:
    """A few real test images as the float batch ``verify_arrays`` takes."""
    from nnshell.input.images import InputOptions, iter_batches

    files = [str(p) for p in sorted(TEST_DIR.glob("*.png"))[:n]]
    opts = InputOptions(norm_func=NORM)
    return np.concatenate([b for _, b in iter_batches(files, opts, (3, 32, 32), 64)])


def _check_c_folder(folder: Path, name: str) -> None:
    for f in sorted(folder.glob("*.[ch]")):
        includes = C_INCLUDES | {f'"{name}.h"', '"nn_kernels.h"', '"nn_pow2.h"'}
        check_generated(f.read_text(), includes)
    sources = [f.name for f in sorted(folder.glob("*.c"))]
    proc = compile_c(folder, sources, (*STRICT, "-pedantic"))
    assert proc.returncode == 0, proc.stderr[-2000:]


# --------------------------------------------------------------------------------- from ONNX


def test_hostile_onnx_names_generate_inert_c_and_verify_under_sanitizers(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    s = _session(_hostile_onnx(tmp_path / "evil.onnx", marker))
    out = tmp_path / "c"
    s.gen_c(str(out), "evil")
    _check_c_folder(out, "evil")
    res = verify_arrays(s.graph, s.qstate, _images(), tmp_path / "v", "evil", SANITIZE)
    assert res.ok, res.summary()
    at = tmp_path / "at"
    paths = s.gen_autotiler(model_dir=str(at))
    check_generated(paths[0].read_text(), AT_INCLUDES)
    check_generated(paths[1].read_text(), set())
    compile_autotiler_model(at, paths[0], AT_MEMORIES)
    assert all(p.resolve().is_relative_to(at.resolve()) for p in paths)
    assert not marker.exists()


# --------------------------------------------------------------------------------- from a state


@pytest.fixture(scope="module")
def saved_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A plain SQ8 cifar_net state (json + npz)."""
    folder = tmp_path_factory.mktemp("state")
    s = _session(SAMPLE_MODEL)
    json_path, _ = s.save_state(str(folder / "lenet.json"))
    return Path(json_path)


def rewrite_state(
    src: Path,
    dst_dir: Path,
    edit: Callable[[dict[str, Any]], None],
    arrays: Callable[[dict[str, np.ndarray], dict[str, Any]], None] | None = None,
) -> Path:
    """A copy of the state ``src`` in ``dst_dir`` after ``edit(doc)`` (and ``arrays(npz,
    doc)``), with the npz hash updated: what someone editing a state by hand produces."""
    doc = json.loads(src.read_text())
    edit(doc)
    npz_src = src.parent / doc["arrays"]["file"]
    blob = npz_src.read_bytes()
    if arrays is not None:
        with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
            data = {k: npz[k] for k in npz.files}
        arrays(data, doc)
        buf = io.BytesIO()
        np.savez(buf, **data)
        blob = buf.getvalue()
    dst_dir.mkdir(parents=True, exist_ok=True)
    (dst_dir / doc["arrays"]["file"]).write_bytes(blob)
    doc["arrays"]["sha256"] = hashlib.sha256(blob).hexdigest()
    out = dst_dir / src.name
    out.write_text(json.dumps(doc))
    return out


def _rename_everywhere(doc: Any, ren: dict[str, str]) -> Any:
    """Replace every string value and key of the JSON document that is a key of ``ren``."""
    if isinstance(doc, dict):
        return {ren.get(k, k): _rename_everywhere(v, ren) for k, v in doc.items()}
    if isinstance(doc, list):
        return [_rename_everywhere(v, ren) for v in doc]
    if isinstance(doc, str):
        return ren.get(doc, doc)
    return doc


def test_hostile_state_names_generate_inert_c_and_verify_under_sanitizers(
    saved_state: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    names = payloads(marker) + ["k\ud800", "l\x00m"]  # JSON can carry lone surrogates and NUL

    def edit(doc: dict[str, Any]) -> None:
        g = doc["graphs"]["current"]
        acts = [t["name"] for t in g["tensors"] if t["const"] is None]
        nodes = [n["name"] for n in g["nodes"]]
        ren = {old: f"{k}{names[k % len(names)]}" for k, old in enumerate(acts)}
        ren |= {old: f"n{k}{names[(k + 5) % len(names)]}" for k, old in enumerate(nodes)}
        for key in ("graphs", "quantization", "calibration"):
            doc[key] = _rename_everywhere(doc[key], ren)
        doc["graphs"]["current"]["name"] = names[0]

    state = rewrite_state(saved_state, tmp_path / "s", edit)
    s = Session()
    s.open(str(state))
    out = tmp_path / "c"
    s.gen_c(str(out), "evil")
    _check_c_folder(out, "evil")
    res = verify_arrays(s.graph, s.qstate, _images(4), tmp_path / "v", "evil", SANITIZE)
    assert res.ok, res.summary()
    at = tmp_path / "at"
    paths = s.gen_autotiler(model_dir=str(at))
    check_generated(paths[0].read_text(), AT_INCLUDES)
    compile_autotiler_model(at, paths[0], AT_MEMORIES)
    assert not marker.exists()


def test_state_graph_name_is_not_code(saved_state: Path, tmp_path: Path) -> None:
    """The graph's own name (not the setting) names the C files and functions: C-safe."""

    def edit(doc: dict[str, Any]) -> None:
        doc["graphs"]["current"]["name"] = '../../x"); system("id'

    s = Session()
    s.open(str(rewrite_state(saved_state, tmp_path / "s", edit)))
    paths = s.gen_c(str(tmp_path / "c"))
    assert sorted(p.name for p in paths)[0] == "nn_kernels.c"
    assert {p.parent for p in paths} == {tmp_path / "c"}
    _check_c_folder(tmp_path / "c", "x_system_id")
    at = s.gen_autotiler(model_dir=str(tmp_path / "at"))
    assert {p.parent for p in at} <= {tmp_path / "at", tmp_path / "at" / "tensors"}
    compile_autotiler_model(tmp_path / "at", at[0], AT_MEMORIES)


HOSTILE_MEMORY = [
    "AT_MEM_L3_HRAM\n#include </etc/passwd>",
    'AT_MEM_UNDEF); } system("id"); {(',
    "AT_MEM_L2 /*",
    "",
    "at_mem_l2",
    "AT_MEM_L4",
]


@pytest.mark.parametrize("setting", MEMORY_SETTINGS)
def test_state_memory_settings_only_autotiler_names(
    saved_state: Path, tmp_path: Path, setting: str
) -> None:
    for k, value in enumerate(HOSTILE_MEMORY):

        def edit(doc: dict[str, Any], value: str = value) -> None:
            doc["settings"][setting] = value

        state = rewrite_state(saved_state, tmp_path / f"s{k}", edit)
        with pytest.raises(SettingError) as info:
            Session().open(str(state))
        msg = str(info.value)
        assert "\n" not in msg and setting in msg and "AutoTiler memory" in msg
    s = Session()
    with pytest.raises(SettingError):
        s.set(setting, HOSTILE_MEMORY[1])
    assert s.set(setting, "AT_MEM_L3_OSPIRAM") == "AT_MEM_L3_OSPIRAM"


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("l1_size", -1),
        ("l2_size", 1 << 40),
        ("l3_flash_mb", 4096),
        ("batch_size", 0),
        ("graph_size_opt", 99),
        ("graph_name", 'x"); system("id'),
        ("graph_name", "a" * 65),
        ("model_file", "/tmp/anywhere.c"),
        ("model_file", "../x.c"),
        ("model_file", "sub/x.c"),
        ("model_directory", "/tmp"),
        ("model_directory", "a/../../b"),
        ("tensor_directory", "/etc"),
        ("tensor_directory", ".."),
        ("tensor_directory", "C:\\x"),
        ("float_backend", "onnxruntime; rm -rf"),
    ],
)
def test_state_settings_are_validated(
    saved_state: Path, tmp_path: Path, setting: str, value: object
) -> None:
    def edit(doc: dict[str, Any]) -> None:
        doc["settings"][setting] = value

    with pytest.raises(SettingError) as info:
        Session().open(str(rewrite_state(saved_state, tmp_path / "s", edit)))
    assert "\n" not in str(info.value) and setting in str(info.value)


def test_set_keeps_absolute_folders_but_refuses_paths_as_file_names(tmp_path: Path) -> None:
    s = Session()
    assert s.set("model_directory", str(tmp_path)) == str(tmp_path)
    assert s.set("tensor_directory", "../tensors") == "../tensors"
    assert s.set("graph_name", "my-net.v2") == "my-net.v2"
    for name, value in (("model_file", "/tmp/x.c"), ("l3_ram_device", "X"), ("l1_size", "-5")):
        with pytest.raises(SettingError):
            s.set(name, value)


def test_cli_generate_from_state_cannot_write_outside(saved_state: Path, tmp_path: Path) -> None:
    """``nnshell -g s.json`` with ``model_file`` pointing elsewhere: refused, nothing written."""
    target = tmp_path / "elsewhere" / "owned.c"
    target.parent.mkdir()

    def edit(doc: dict[str, Any]) -> None:
        doc["settings"]["model_file"] = str(target)

    state = rewrite_state(saved_state, tmp_path / "s", edit)
    proc = subprocess.run(
        [sys.executable, "-m", "nnshell", "-g", str(state), "-M", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 1
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "model_file" in err[0]
    assert not target.exists() and not (tmp_path / "out").exists()


def test_autotiler_file_names_must_be_plain(saved_state: Path, tmp_path: Path) -> None:
    s = Session()
    s.open(str(saved_state))
    for kwargs in ({"model_file": "../x.c"}, {"model_file": "/tmp/x.c"}, {"header": "a/b.h"}):
        with pytest.raises(NnshellError):
            s.gen_autotiler(model_dir=str(tmp_path / "at"), **kwargs)
    assert not (tmp_path / "at").exists()
    # defence in depth: a settings mapping that never went through validation
    bad = dict(s.settings, default_local_location='AT_MEM_UNDEF); system("id"); (')
    with pytest.raises(NnshellError, match="default_local_location"):
        generate_autotiler(s.graph, s.qstate, bad, tmp_path / "at2", None, "tensors", None)
    assert not (tmp_path / "at2").exists()


# ------------------------------------------------------------------ edited shapes and geometry


def _conv1(doc: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    g = doc["graphs"]["current"]
    node = g["nodes"][0]
    tensor = next(t for t in g["tensors"] if t["name"] == node["outputs"][0])
    return node, tensor


def test_edited_activation_shape_is_refused_naming_the_node(
    saved_state: Path, tmp_path: Path
) -> None:
    def edit(doc: dict[str, Any]) -> None:
        _, tensor = _conv1(doc)
        assert tensor["shape"] == [1, 6, 14, 14]
        tensor["shape"] = [1, 6, 1, 1]

    s = Session()
    s.open(str(saved_state))
    node = s.graph.nodes[0].name
    # first defence: the state loader re-infers every shape (one line, node and both shapes)
    with pytest.raises(ModelFileError) as info:
        s.open(str(rewrite_state(saved_state, tmp_path / "s", edit)))
    msg = str(info.value)
    assert "\n" not in msg and node in msg and "[1, 6, 1, 1]" in msg and "[1, 6, 14, 14]" in msg
    # second defence: gen checks again, whatever changed the graph in memory
    out = s.graph.nodes[0].outputs[0]
    s.graph.tensors[out] = dataclasses.replace(s.graph.tensors[out], shape=(1, 6, 1, 1))
    for gen in (
        lambda: s.gen_c(str(tmp_path / "c")),
        lambda: s.gen_autotiler(model_dir=str(tmp_path / "at")),
        lambda: s.gen_verify([str(TEST_DIR)], out_dir=str(tmp_path / "v")),
    ):
        with pytest.raises(CodegenError) as cinfo:
            gen()
        msg = str(cinfo.value)
        assert (
            "\n" not in msg
            and node in msg
            and "(1, 6, 1, 1)" in msg.replace("[", "(").replace("]", ")")
        )
    assert not any((tmp_path / d).exists() for d in ("c", "at", "v"))


def test_edited_geometry_and_constants_are_refused(saved_state: Path, tmp_path: Path) -> None:
    def geometry(doc: dict[str, Any]) -> None:
        node, _ = _conv1(doc)
        info = doc["quantization"]["nodes"][node["name"]]["info"]
        info["geometry"]["__tuple__"][4] = {"__tuple__": [56, 56]}

    def string_in_geometry(doc: dict[str, Any]) -> None:
        node, _ = _conv1(doc)
        info = doc["quantization"]["nodes"][node["name"]]["info"]
        info["geometry"]["__tuple__"][0] = {"__tuple__": ['5}; int x = system("id"); {5', 5]}

    def short_bias(data: dict[str, np.ndarray], doc: dict[str, Any]) -> None:
        node, _ = _conv1(doc)
        key = doc["quantization"]["nodes"][node["name"]]["consts"]["bias_total"]["__nd__"]
        data[key] = data[key][:1]

    cases: list[tuple[Any, Any, str]] = [
        (geometry, None, "geometry"),
        (string_in_geometry, None, "geometry"),
        (lambda doc: None, short_bias, "bias_total"),
    ]
    for k, (edit, arrays, word) in enumerate(cases):
        s = Session()
        s.open(str(rewrite_state(saved_state, tmp_path / f"s{k}", edit, arrays)))
        with pytest.raises(CodegenError, match=word) as info:
            render_c(s.graph, s.qstate)
        assert s.graph.nodes[0].name in str(info.value)
        with pytest.raises(CodegenError, match=word):
            s.gen_autotiler(model_dir=str(tmp_path / "at"))


def test_huge_input_shape_is_refused_before_loading_or_writing(
    saved_state: Path, tmp_path: Path
) -> None:
    def edit(doc: dict[str, Any]) -> None:
        g = doc["graphs"]["current"]
        t = next(t for t in g["tensors"] if t["name"] == g["inputs"][0])
        t["shape"] = [1, 3, 32000, 32000]

    s = Session()
    with pytest.raises(ModelFileError) as info:  # the state loader bounds every shape
        s.open(str(rewrite_state(saved_state, tmp_path / "s", edit)))
    assert "\n" not in str(info.value)
    s.open(str(saved_state))  # and gen --verify does too, before loading or writing
    inp = s.graph.inputs[0]
    s.graph.tensors[inp] = dataclasses.replace(s.graph.tensors[inp], shape=(1, 3, 32000, 32000))
    with pytest.raises(CodegenError) as cinfo:
        s.gen_verify([str(TEST_DIR)], out_dir=str(tmp_path / "v"))
    assert "\n" not in str(cinfo.value)
    assert not (tmp_path / "v").exists()


def test_size_caps_are_one_line_and_raisable(
    saved_state: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = Session()
    s.open(str(saved_state))
    monkeypatch.setenv("NNSHELL_MAX_ARENA_BYTES", "1000")
    with pytest.raises(CodegenError, match="NNSHELL_MAX_ARENA_BYTES") as info:
        s.gen_c(str(tmp_path / "c"))
    assert "\n" not in str(info.value)
    monkeypatch.delenv("NNSHELL_MAX_ARENA_BYTES")
    monkeypatch.setenv("NNSHELL_MAX_VERIFY_BYTES", "100000")
    with pytest.raises(CodegenError, match="NNSHELL_MAX_VERIFY_BYTES"):
        s.gen_verify([str(TEST_DIR)], out_dir=str(tmp_path / "v"))
    assert not (tmp_path / "c").exists() and not (tmp_path / "v").exists()


def test_runtime_file_names_are_not_graph_names(saved_state: Path, tmp_path: Path) -> None:
    s = Session()
    s.open(str(saved_state))
    for name in ("nn_kernels", "NN_POW2"):
        s.set("graph_name", name)
        with pytest.raises(CodegenError, match="runtime file"):
            s.gen_c(str(tmp_path / "c"))
    s.set("graph_name", "int")  # a keyword is fine once suffixed: int.c, int_run()
    s.gen_c(str(tmp_path / "k"))
    _check_c_folder(tmp_path / "k", "int")
