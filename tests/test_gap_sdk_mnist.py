"""The GAP SDK's five MNIST NNTool scripts, unchanged (issue 20 acceptance).

``tests/data/gap_sdk_mnist/`` holds byte-for-byte copies (ORIGIN.md); they run on the ONNX LeNet
of ``scripts/make_mnist_example.py`` (input ``digits``: the scripts' ``input_1`` resolves by
NNTool's numbering) with ``-D MODEL_L3_RAM=... -D MODEL_L3_FLASH=...`` and an ``images/`` folder,
as a new user would run them; each saved state reopens and its generated C matches the Python
executor bit for bit (gcc), the bfloat16 one included (docs/FLOAT16.md: the bound is 0).
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path

import pytest

from nnshell.session import Session

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "gap_sdk_mnist"
SCRIPTS = {
    "nntool_script": "SQ8",
    "nntool_script16": "POW2",
    "nntool_script_emul": "SQ8",
    "nntool_script_emul16": "POW2",
    "nntool_script_fp16": "FLOAT",
}


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = importlib.util.spec_from_file_location("mk", ROOT / "scripts" / "make_mnist_example.py")
    assert spec is not None and spec.loader is not None
    mk = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mk)
    out = tmp_path_factory.mktemp("mnist")
    mk.make(out, count=8)
    return out


def test_the_copies_are_the_sdk_files() -> None:
    sdk = Path("/work/.mirror/GreenWaves-Technologies+gap_sdk/repo")
    if not sdk.exists():
        pytest.skip("no GAP SDK mirror on this machine")
    for name in SCRIPTS:
        blob = subprocess.run(
            ["git", "-C", str(sdk), "show", f"HEAD:examples/gap8/nn/nntool/mnist/model/{name}"],
            capture_output=True,
            check=True,
        ).stdout
        assert (DATA / name).read_bytes() == blob, name


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
@pytest.mark.parametrize("name", list(SCRIPTS))
def test_sdk_script_runs_unchanged_and_its_c_verifies(
    name: str, example: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = example / name
    work.mkdir()
    shutil.copy(example / "mnist_lenet.onnx", work)
    (work / "images").symlink_to(example / "images")
    from nnshell.shell.cli import main

    monkeypatch.chdir(work)  # the scripts' `aquant images/*` and save_state are relative
    argv = ["mnist_lenet.onnx", "-s", str(DATA / name)]
    argv += ["-D", "MODEL_L3_RAM=AT_MEM_L3_HRAM", "-D", "MODEL_L3_FLASH=AT_MEM_L3_HFLASH"]
    assert main(argv) == 0
    s = Session()
    s.open(str(work / "mnist_lenet.json"))
    assert s.qstate.scheme == SCRIPTS[name]
    assert s.settings["l3_ram_device"] == "AT_MEM_L3_HRAM"
    if name.endswith("16") and "fp16" not in name:
        assert s.graph.meta.get("input_formatter")  # imageformat input_1 bw16 out_int16
    images = sorted(str(p) for p in (example / "images").glob("*.png"))
    res = s.gen_verify(images)
    assert res.ok, res.summary()
    assert res.images == 8 and res.layers == 4
