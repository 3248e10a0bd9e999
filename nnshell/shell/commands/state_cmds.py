"""``save_state``: write the whole session to ``STATE.json`` + ``STATE.npz`` (``nnshell.state``).

``open STATE.json`` (or ``nnshell STATE.json``) restores it; ``nnshell -g STATE.json`` generates
the AutoTiler model from it without a shell.
"""

from __future__ import annotations

import os
from typing import Any

import cmd2

from nnshell.shell.commands.base import NnCommandSet
from nnshell.shell.parser import NnArgumentParser


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB"):
        if n < 1024 or unit == "MiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"


class StateCommands(NnCommandSet):
    """save_state."""

    DEFAULT_CATEGORY = "Model"

    save_state_parser = NnArgumentParser(
        description="Save the graph, its transforms, quantization, calibration statistics, "
        "settings and history to PATH.json plus PATH.npz (arrays), written atomically. "
        "Default: <folder of the opened model>/<graph name>.json; a folder: <graph name>.json "
        "in it. Reopen with 'open PATH.json' or 'nnshell PATH.json'."
    )
    save_state_parser.add_argument(
        "path", nargs="?", completer=cmd2.Cmd.path_complete, help="state file (.json) or folder"
    )

    @cmd2.with_argparser(save_state_parser)
    def do_save_state(self, args: Any) -> None:
        """Save the whole session to a .json + .npz state."""
        json_path, npz_path = self.app.session.save_state(args.path)
        self.app.poutput(
            f"saved state to {json_path} ({_size(os.path.getsize(json_path))}) and "
            f"{npz_path} ({_size(os.path.getsize(npz_path))})"
        )
        session = self.app.session
        if session.qstate is not None:
            from nnshell.shell.commands.quant_cmds import calibration_line

            self.app.poutput(f"  {session.qstate.options.describe()}; {calibration_line(session)}")
