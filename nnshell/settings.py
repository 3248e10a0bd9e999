"""Session settings changed with ``set NAME VALUE`` (NNTool's names and defaults).

Each setting is declared once with its type, default and help; values typed by the user are
parsed here so a wrong type is one clear error. Unknown names get close-match suggestions.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
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
        SettingDef("model_directory", str, ".", "where gen writes the model C file"),
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
        SettingDef(
            "float_backend",
            str,
            "auto",
            "auto: onnxruntime runs the float graph (checked against numpy); numpy: reference",
            choices=("auto", "numpy"),
        ),
    ]
}

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def parse_value(name: str, text: str) -> Any:
    """Parse the text the user typed into the setting's type."""
    sd = lookup(name)
    if sd.optional and text.lower() in ("none", ""):
        return None
    try:
        if sd.type is bool:
            low = text.lower()
            if low not in _TRUE | _FALSE:
                raise ValueError(text)
            return low in _TRUE
        if sd.type is int:
            return int(text, 0)
        if sd.type is float:
            return float(text)
        if sd.choices and text not in sd.choices:
            raise SettingError(f"set {name}: '{text}' is not one of {', '.join(sd.choices)}")
        return text
    except ValueError:
        raise SettingError(
            f"set {name}: '{text}' is not a valid {sd.type.__name__}", f"help: {sd.help}"
        ) from None


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
