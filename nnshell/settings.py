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
