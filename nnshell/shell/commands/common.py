"""Argument groups shared by several commands (the image input options of COMMANDS.md)."""

from __future__ import annotations

from typing import Any

from nnshell.shell.parser import NnArgumentParser


def add_input_options(parser: NnArgumentParser) -> None:
    """Add ``-T -D -O -N -H -W -M -F`` with NNTool's meanings, and ``--bgr``."""
    g = parser.add_argument_group("input options")
    g.add_argument(
        "-T",
        "--transpose",
        action="store_true",
        default=None,
        help="images are HWC: transpose to CHW",
    )
    g.add_argument("-D", "--divisor", type=float, help="divide pixels by this")
    g.add_argument("-O", "--offset", type=float, help="add this after dividing")
    g.add_argument(
        "-N",
        "--norm_func",
        metavar="EXPR",
        help='normalisation expression, e.g. "x: x/128-1" (safe arithmetic only)',
    )
    g.add_argument("-H", "--height", type=int, help="resize images to this height")
    g.add_argument("-W", "--width", type=int, help="resize images to this width")
    g.add_argument(
        "-M",
        "--image_mode",
        choices=["L", "RGB", "BGR"],
        help="convert images to this mode (BGR: RGB with the channels reversed, as Caffe/OpenCV)",
    )
    g.add_argument(
        "--bgr",
        action="store_true",
        default=None,
        help="same as -M BGR (for gen, whose -M is the model directory)",
    )
    g.add_argument(
        "-F",
        "--raw_dtype",
        "--nptype",
        metavar="DTYPE",
        help="dtype of .npy/.raw inputs (--nptype: NNTool's name)",
    )


def add_json_option(parser: NnArgumentParser, help: str = "machine-readable output") -> None:
    """``--json``: the command prints one JSON document instead of tables (same flag everywhere)."""
    parser.add_argument("--json", action="store_true", help=help)


def input_overrides(args: Any) -> dict[str, Any]:
    """The input options the user gave on this command line (None = not given)."""
    keys = ("transpose", "divisor", "offset", "norm_func", "height", "width", "raw_dtype")
    out = {k: getattr(args, k) for k in keys}
    out["mode"] = "BGR" if getattr(args, "bgr", None) else args.image_mode
    return out
