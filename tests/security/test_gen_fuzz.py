"""Seeded fuzzing of ``gen`` with hostile names and hostile settings from a state file.

Each round renames every activation tensor, every node and the graph of a saved state with
random hostile text (comment and string breakers, ``??/``, backslashes, NUL, newlines,
``#include``, non-ASCII, very long) and sets random hostile or valid values on every setting.
Either loading refuses in one line (a SettingError naming the setting), or both targets generate
C that lexes cleanly with no payload word as code; the portable C is built with
AddressSanitizer/UBSan and checked bit for bit by ``gen --verify``, the AutoTiler model is
compiled against the stub API. No injected command ever runs.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from nnshell.codegen.verify import verify_arrays
from nnshell.errors import SettingError
from nnshell.session import Session
from nnshell.settings import AT_MEMORIES, INT_BOUNDS, SETTINGS
from tests.conftest import SAMPLE_MODEL
from tests.security.csource import (
    SANITIZE,
    check_generated,
    compile_autotiler_model,
    has_gcc,
)
from tests.security.test_gen_injection import (
    AT_INCLUDES,
    _check_c_folder,
    _images,
    _rename_everywhere,
    _session,
    rewrite_state,
)

pytestmark = pytest.mark.skipif(not has_gcc(), reason="the generated C is compiled: needs gcc")

PIECES = [
    "*/",
    "/*",
    "//",
    "\\",
    "??/",
    "??=",
    '"',
    "'",
    "\n",
    "\r",
    "\t",
    "\x00",
    "\x1b",
    "#include <stdlib.h>",
    "#define X",
    "é",
    "🙂",
    "\u202e",
    "\ud800",
    " ",
    "a",
    "_",
    ".",
    "-",
    "0",
    "$(touch {m})",
    'system("touch {m}");',
    "extern int system(const char *);",
]


def _hostile(rng: random.Random, marker: Path) -> str:
    n = rng.choice([1, 3, 8, 20])
    text = "".join(rng.choice(PIECES) for _ in range(n)).replace("{m}", str(marker))
    if rng.random() < 0.1:
        text += "L" * rng.choice([300, 3000])
    return text


def _setting_value(rng: random.Random, name: str, marker: Path, hostile: bool) -> Any:
    """A value for setting ``name``: valid (odd but accepted) or hostile."""
    sd = SETTINGS[name]
    if not hostile:
        if name.endswith(("_device", "_location")):
            return rng.choice(AT_MEMORIES)
        if sd.type is int:
            lo, hi = INT_BOUNDS.get(name, (0, 2))
            return rng.choice([lo, hi, (lo + hi) // 2])
        if sd.type is bool:
            return rng.choice([True, False])
        if name == "tensor_directory":  # relative, no '..': any other text is allowed
            return rng.choice(["t", 'we*/ird"dir??/', "a/b", "x y"])
        if name == "graph_name":
            return rng.choice(["net", "int", "my-net.v2", "_x"])
        return sd.default
    if sd.type is int:
        return rng.choice([-1, 1 << 40, 2**31, -(2**63)])
    if sd.type is bool:
        return rng.choice([True, False])
    if sd.type is float:
        return rng.choice([1.0, -3.5, 2.0])
    return rng.choice([_hostile(rng, marker), "/abs/path", "../up", "AT_MEM_L2\n"])


def _editor(
    rng: random.Random, marker: Path, hostile: bool, names: dict[str, Any]
) -> Callable[[dict[str, Any]], None]:
    """A state edit: hostile names everywhere, random settings (recorded in ``names``)."""

    def edit(doc: dict[str, Any]) -> None:
        g = doc["graphs"]["current"]
        acts = [t["name"] for t in g["tensors"] if t["const"] is None]
        nodes = [n["name"] for n in g["nodes"]]
        ren = {old: f"{k}{_hostile(rng, marker)}" for k, old in enumerate(acts)}
        ren |= {old: f"n{k}{_hostile(rng, marker)}" for k, old in enumerate(nodes)}
        for key in ("graphs", "quantization", "calibration"):
            doc[key] = _rename_everywhere(doc[key], ren)
        doc["graphs"]["current"]["name"] = _hostile(rng, marker)
        for name in SETTINGS:
            if name not in ("input_norm_func", "float_backend") and rng.random() < 0.5:
                value = _setting_value(rng, name, marker, hostile)
                doc["settings"][name] = names[name] = value

    return edit


@pytest.fixture(scope="module")
def base_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fuzzstate")
    json_path, _ = _session(SAMPLE_MODEL).save_state(str(folder / "lenet.json"))
    return Path(json_path)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fuzz_hostile_names_and_settings(base_state: Path, tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    marker = tmp_path / "pwned"
    outcomes = {"refused": 0, "generated": 0}
    for round_ in range(6):
        names: dict[str, Any] = {}
        hostile = round_ % 2 == 1  # odd rounds: hostile settings, even: odd but valid
        state = rewrite_state(
            base_state, tmp_path / f"r{round_}", _editor(rng, marker, hostile, names)
        )
        s = Session()
        try:
            s.open(str(state))
        except SettingError as exc:
            assert "\n" not in str(exc)
            assert any(n in str(exc) for n in names), (str(exc), names)
            outcomes["refused"] += 1
            continue
        outcomes["generated"] += 1
        c_dir = tmp_path / f"c{round_}"
        paths = s.gen_c(str(c_dir), "fz")
        _check_c_folder(c_dir, "fz")
        assert {p.parent for p in paths} == {c_dir}
        at_dir = tmp_path / f"at{round_}"
        s.settings["model_directory"] = str(at_dir)  # not the state's: keep it in tmp_path
        at = s.gen_autotiler()
        assert all(p.resolve().is_relative_to(at_dir.resolve()) for p in at), at
        check_generated(at[0].read_text(), AT_INCLUDES)
        check_generated(at[1].read_text(), set())
        compile_autotiler_model(at_dir, at[0], AT_MEMORIES)
        if outcomes["generated"] == 1:  # one sanitizer build per seed keeps the test fast
            res = verify_arrays(s.graph, s.qstate, _images(2), tmp_path / "v", "fz", SANITIZE)
            assert res.ok, res.summary()
    assert outcomes["generated"] >= 3, outcomes
    assert not marker.exists()
