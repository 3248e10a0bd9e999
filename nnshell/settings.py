"""Session settings changed with ``set NAME VALUE`` (NNTool's names and defaults).

Each setting is declared once with its type, default and help; values typed by the user are
parsed here so a wrong type is one clear error. Unknown names get close-match suggestions.

Values are also *validated* (:func:`validate`), for ``set`` and for every value a state file
brings (:func:`validate_loaded`), because several settings end up in generated code or name the
files gen writes: an ``AT_MEM_*`` setting is one of the AutoTiler's memory names and nothing
else, sizes are bounded non-negative integers, ``graph_name`` and ``model_file`` are plain names.
A state file is someone else's text, so it may not point gen's output anywhere:
``model_directory`` and ``tensor_directory`` loaded from a state are relative paths without
``..`` (typed by the user, any folder is fine).
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from nnshell.errors import SettingError


@dataclass(frozen=True)
class SettingDef:
    """One setting: its value type, default and one-line help."""

    name: str
    type: type
    default: Any
    help: str
    optional: bool = False
    choices: tuple[str, ...] = ()


SETTINGS: dict[str, SettingDef] = {
    s.name: s
    for s in [
        SettingDef(
            "input_norm_func",
            str,
            None,
            'normalisation expression, e.g. "x: x/128-1"',
            optional=True,
        ),
        SettingDef("input_divisor", float, None, "divide input pixels by this (-D)", optional=True),
        SettingDef("input_offset", float, None, "add this after dividing (-O)", optional=True),
        SettingDef("input_transpose", bool, False, "images are HWC: transpose to CHW (-T)"),
        SettingDef(
            "graph_name",
            str,
            None,
            "C name of the generated graph (default: model name)",
            optional=True,
        ),
        SettingDef(
            "model_directory",
            str,
            "",
            "where gen writes (empty: a folder GRAPH_c for --target c, . for autotiler)",
        ),
        SettingDef("tensor_directory", str, "tensors", "where gen writes the constant tensors"),
        SettingDef("model_file", str, None, "name of the generated model file", optional=True),
        SettingDef("batch_size", int, 64, "images per batch when walking a folder"),
        SettingDef("l1_size", int, 64000, "L1 memory (bytes) given to the AutoTiler"),
        SettingDef("l2_size", int, 300000, "L2 memory (bytes) given to the AutoTiler"),
        SettingDef("l3_size", int, 8000000, "L3 RAM (bytes) given to the AutoTiler"),
        SettingDef("l3_flash_mb", int, 64, "L3 flash (MB) given to the AutoTiler"),
        SettingDef("l3_ram_device", str, "AT_MEM_L3_HRAM", "AutoTiler L3 RAM device (AT_MEM_L3_*)"),
        SettingDef(
            "l3_flash_device", str, "AT_MEM_L3_HFLASH", "AutoTiler L3 flash device (AT_MEM_L3_*)"
        ),
        # AutoTiler generation (gen --target autotiler): where the graph's arguments live
        SettingDef("default_input_home_location", str, "AT_MEM_L2", "home of graph inputs"),
        SettingDef("default_input_exec_location", str, "AT_MEM_L2", "exec place of inputs"),
        SettingDef("default_output_home_location", str, "AT_MEM_L2", "home of graph outputs"),
        SettingDef("default_output_exec_location", str, "AT_MEM_L2", "exec place of outputs"),
        SettingDef(
            "default_global_home_location", str, "AT_MEM_L3_HFLASH", "home of the constants"
        ),
        SettingDef(
            "default_global_exec_location", str, "AT_MEM_UNDEF", "exec place of the constants"
        ),
        SettingDef("default_local_location", str, "AT_MEM_UNDEF", "place of the activations"),
        # AutoTiler graph controls: AT_SetGraphCtrl(AT_GRAPH_<NAME>, ...) when not the default
        SettingDef(
            "l2_ram_ext_managed",
            bool,
            True,
            "L2 memory allocated by the application (true) or by the generated code (false)",
        ),
        SettingDef("graph_monitor_cycles", bool, False, "count cycles per node"),
        SettingDef("graph_produce_node_names", bool, False, "node names in the generated code"),
        SettingDef("graph_produce_operinfos", bool, False, "operation counts per node"),
        SettingDef("graph_reorder_constant_in", bool, True, "reorder constants in flash"),
        SettingDef("graph_warm_construct", int, 0, "construct the graph ahead (0: off, 1, 2)"),
        SettingDef("graph_dump_tensor", int, 0, "dump tensors at run time (bit mask, 0: off)"),
        SettingDef("graph_trace_exec", bool, False, "trace the graph's execution"),
        SettingDef("graph_const_exec_from_flash", bool, False, "run constants from flash"),
        SettingDef("graph_size_opt", int, 0, "optimise the generated code for size (0..2)"),
        SettingDef("graph_noinline_node", bool, False, "do not inline the node functions"),
        SettingDef("graph_checksum", bool, False, "checksum the tensors at run time"),
        SettingDef(
            "relun_range",
            str,
            "bound",
            "SQ8 range of an asymmetric ReLU6/ReLU-N output: bound ([0, N], NNTool's rule) or "
            "calibrated",
            choices=("bound", "calibrated"),
        ),
        SettingDef(
            "file_mult_bits",
            int,
            30,
            "open -q: conv/linear multiplier width from the file's scales (30: TFLite's "
            "precision, same codes as its interpreter; 8: GAP's SQ8 kernels, for the AutoTiler)",
        ),
        SettingDef(
            "float_backend",
            str,
            "auto",
            "auto: onnxruntime runs the float graph (checked against numpy); numpy: reference",
            choices=("auto", "numpy"),
        ),
    ]
}

#: The GAP AutoTiler memory names (``AutoTilerLibTypes.h``): what an ``AT_MEM_*`` setting may be.
AT_MEMORIES = (
    "AT_MEM_UNDEF",
    "AT_MEM_L1",
    "AT_MEM_L2",
    "AT_MEM_L3_HRAM",
    "AT_MEM_L3_QSPIRAM",
    "AT_MEM_L3_OSPIRAM",
    "AT_MEM_L3_DEFAULTRAM",
    "AT_MEM_L3_HFLASH",
    "AT_MEM_L3_QSPIFLASH",
    "AT_MEM_L3_OSPIFLASH",
    "AT_MEM_L3_MRAMFLASH",
    "AT_MEM_L3_DEFAULTFLASH",
    "AT_MEM_L3_EMRAMFLASH",
)
#: The settings whose value is written into the AutoTiler model as a memory name.
MEMORY_SETTINGS = (
    "l3_ram_device",
    "l3_flash_device",
    "default_input_home_location",
    "default_input_exec_location",
    "default_output_home_location",
    "default_output_exec_location",
    "default_global_home_location",
    "default_global_exec_location",
    "default_local_location",
)
#: Largest memory size in bytes (a C ``int`` literal in the model's ``main``).
MAX_MEMORY_BYTES = (1 << 31) - 1
#: Largest L3 flash in MB (``MB*1024*1024`` must stay a C ``int``).
MAX_FLASH_MB = 2047
#: Inclusive bounds of the integer settings.
INT_BOUNDS: dict[str, tuple[int, int]] = {
    "batch_size": (1, 1 << 16),
    "l1_size": (0, MAX_MEMORY_BYTES),
    "l2_size": (0, MAX_MEMORY_BYTES),
    "l3_size": (0, MAX_MEMORY_BYTES),
    "l3_flash_mb": (0, MAX_FLASH_MB),
    "graph_warm_construct": (0, 2),
    "graph_dump_tensor": (0, 255),
    "graph_size_opt": (0, 2),
    "file_mult_bits": (8, 30),
}
#: A graph name: what ``set graph_name`` takes (made C-safe by gen: ``my-net.v2``).
_GRAPH_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}\Z")
#: A plain file name (the model file gen writes inside ``model_directory``).
_FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,127}\Z")
_DIRECTORIES = ("model_directory", "tensor_directory")

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def parse_value(name: str, text: str) -> Any:
    """Parse the text the user typed into the setting's type."""
    sd = lookup(name)
    if sd.optional and text.lower() in ("none", ""):
        return None
    value: Any = text
    try:
        if sd.type is bool:
            low = text.lower()
            if low not in _TRUE | _FALSE:
                raise ValueError(text)
            value = low in _TRUE
        elif sd.type is int:
            value = int(text, 0)
        elif sd.type is float:
            value = float(text)
        elif sd.choices and text not in sd.choices:
            raise SettingError(f"set {name}: '{text}' is not one of {', '.join(sd.choices)}")
    except ValueError:
        raise SettingError(
            f"set {name}: '{text}' is not a valid {sd.type.__name__}", f"help: {sd.help}"
        ) from None
    return validate(name, value)


def validate(name: str, value: Any, source: str = "set") -> Any:
    """Return ``value`` if setting ``name`` may hold it; a one-line SettingError otherwise.

    Why here: settings reach generated C (memory names, sizes) and name files gen writes, so a
    value is checked once, where every way of setting it passes (``set``, a state file).
    ``source`` words the message (``set`` or ``state file 'x.json'``).
    """
    sd = lookup(name)
    if value is None and sd.optional:
        return None

    def bad(why: str, hint: str | None = None) -> SettingError:
        where = f"set {name}" if source == "set" else f"{source}: setting {name}"
        return SettingError(f"{where}: {value!r:.80} {why}", hint or f"help: {sd.help}")

    if sd.choices and value not in sd.choices:
        raise bad(f"is not one of {', '.join(sd.choices)}")
    if name in MEMORY_SETTINGS and value not in AT_MEMORIES:
        raise bad("is not an AutoTiler memory", f"one of {', '.join(AT_MEMORIES)}")
    if name in INT_BOUNDS and not isinstance(value, bool) and isinstance(value, int):
        lo, hi = INT_BOUNDS[name]
        if not lo <= value <= hi:
            raise bad(f"is outside {lo}..{hi}")
    if sd.type is float and isinstance(value, float) and not math.isfinite(value):
        raise bad("is not a finite number")
    if name == "graph_name" and not (isinstance(value, str) and _GRAPH_NAME.match(value)):
        raise bad("is not a plain name (letters, digits, _ . -, at most 64 characters)")
    if name == "model_file" and not (
        isinstance(value, str) and _FILE_NAME.match(value) and value not in (".", "..")
    ):
        raise bad(
            "is not a plain file name (letters, digits, _ . + -, no folder)",
            "put the folder in model_directory",
        )
    if name in _DIRECTORIES and isinstance(value, str):
        # empty model_directory is its default: gen picks GRAPH_c/ (C) or . (AutoTiler)
        empty_ok = name == "model_directory" and SETTINGS[name].default == ""
        if (not value and not empty_ok) or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
            raise bad("is not a folder name (empty, or control characters)")
        if source != "set" and _escapes(value):
            raise bad(
                "leaves the state's working folder (absolute or with ..); a state may only "
                "name a folder below the current one",
                f"set {name} <folder> after loading it",
            )
    return value


def _escapes(path: str) -> bool:
    """Whether ``path`` is absolute (any OS) or climbs with ``..``."""
    parts = re.split(r"[\\/]+", path)
    return (
        path.startswith(("/", "\\", "~"))
        or PurePosixPath(path).is_absolute()
        or re.match(r"[A-Za-z]:", path) is not None
        or ".." in parts
    )


def validate_loaded(name: str, value: Any, source: str = "state file") -> Any:
    """:func:`validate` a value a state file brings (stricter for folders: never absolute,
    never ``..``). Raises a one-line SettingError naming the state and the setting."""
    return validate(name, value, source if source != "set" else "state file")


def lookup(name: str) -> SettingDef:
    """Return the definition of a setting; unknown names suggest close ones."""
    try:
        return SETTINGS[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(SETTINGS), n=3)
        hint = f"did you mean {', '.join(close)}?" if close else "run 'set' to list the settings"
        raise SettingError(f"unknown setting '{name}'", hint) from None


def defaults() -> dict[str, Any]:
    """Return a fresh dict of every setting at its default."""
    return {name: sd.default for name, sd in SETTINGS.items()}
