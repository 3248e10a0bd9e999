"""``gen``: generate code for the quantized graph (docs/GEN.md).

``--target c`` (default) writes the portable C99 implementation; ``--verify IMAGES`` also builds
it on the host and checks it against the integer executor, layer by layer. ``--target
autotiler`` writes NNTool's AutoTiler model file. The image input options keep their long forms
only (``--transpose``, ``--height``, ``--image_mode``): ``-T -H -M`` are gen's own, as in NNTool.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import cmd2

from nnshell.errors import CodegenError, UsageError
from nnshell.shell.commands.base import NnCommandSet
from nnshell.shell.commands.common import add_input_options
from nnshell.shell.parser import NnArgumentParser


def _verify_lines(res: Any, ort: Any) -> list[str]:
    lines = [
        f"gen --verify: {res.summary()}",
        f"  time per image: C harness {res.c_us_per_image:.1f} us, "
        f"Python integer executor {res.py_us_per_image:.1f} us (batched)",
    ]
    if ort is not None:
        lines.append(f"  time per image: {ort.describe()} (batch 1, median)")
    return [
        *lines,
        f"  arena {res.arena_bytes} bytes (peak of live tensors {res.peak_live_bytes}), "
        f"constants {res.const_bytes} bytes",
    ]


def _check_flag_meanings(args: Any) -> None:
    """Refuse gen's -M / -H given the image commands' meaning (image mode, image height)."""
    if args.model_directory in ("L", "RGB") and not Path(args.model_directory).is_dir():
        # -M is gen's model folder (NNTool); elsewhere it is the image mode: a user who
        # meant the image mode would get a folder named RGB
        raise UsageError(
            f"gen: -M {args.model_directory} names the output folder, not the image mode",
            f"gen --image_mode {args.model_directory}; an existing folder of that name works",
        )
    if args.header_file is not None and args.header_file.isdigit():
        raise UsageError(  # -H is the image height in the image commands
            f"gen: -H {args.header_file} names the header file, not the image height",
            f"gen --height {args.header_file}",
        )


class GenCommands(NnCommandSet):
    """gen."""

    DEFAULT_CATEGORY = "Generation"

    gen_parser = NnArgumentParser(
        description="Generate code for the quantized graph: portable C99 (--target c, the "
        "default) or NNTool's AutoTiler model (--target autotiler). --verify IMAGES compiles the "
        "C with the host compiler and compares every layer's bytes with the integer executor.",
        conflict_handler="resolve",
    )
    add_input_options(gen_parser)  # first: gen's -T -H -M below take over the short forms
    gen_parser.add_argument("--target", choices=["c", "autotiler"], default="c")
    gen_parser.add_argument(
        "-M",
        "--model_directory",
        metavar="DIR",
        completer=cmd2.Cmd.path_complete,
        help="output folder (default: set model_directory; unset: GRAPH_c for --target c)",
    )
    gen_parser.add_argument(
        "-m", "--model_file", metavar="FILE", help="model file (c: its stem names the C files)"
    )
    gen_parser.add_argument(
        "-T", "--tensor_directory", metavar="DIR", help="autotiler: folder of the .tensor files"
    )
    gen_parser.add_argument(
        "-H", "--header_file", metavar="HEADER", help="autotiler: header with the scales"
    )
    gen_parser.add_argument(
        "-t", "--output_tensors", action="store_true", help="autotiler: write the .tensor files"
    )
    gen_parser.add_argument(
        "--verify",
        nargs="*",
        metavar="IMAGES",
        completer=cmd2.Cmd.path_complete,
        help="c: build on the host, run on these images, compare with the integer executor",
    )

    @cmd2.with_argparser(gen_parser)
    def do_gen(self, args: Any) -> None:
        """Generate the C implementation (or the AutoTiler model) of the quantized graph."""
        session = self.app.session
        _check_flag_meanings(args)
        if args.target == "autotiler":
            if importlib.util.find_spec("nnshell.codegen.autotiler") is None:
                raise CodegenError("gen --target autotiler is not available in this build")
            paths = session.gen_autotiler(
                args.model_directory,
                args.model_file,
                args.tensor_directory,
                args.header_file,
                args.output_tensors,
            )
            self.app.poutput(f"gen: wrote {len(paths)} file(s): {', '.join(str(p) for p in paths)}")
            return
        if args.verify is not None:
            self._gen_verify(args)
            return
        name = Path(args.model_file).stem if args.model_file else None
        paths = session.gen_c(args.model_directory, name)
        folder = paths[0].parent if paths else "."
        self.app.poutput(f"gen: wrote {', '.join(p.name for p in paths)} to {folder}")

    def _gen_verify(self, args: Any) -> None:
        """``gen --verify``: build and run the C on images, compare with the executor."""
        session = self.app.session
        if not args.verify:
            raise CodegenError("gen --verify needs images", "gen --verify sample_images/test")
        from nnshell.exec.ort_timing import ort_times_on_images
        from nnshell.input.images import expand_files
        from nnshell.shell.progress import image_progress

        opts = self.image_options(args)
        with image_progress("gen --verify", after="") as progress:
            res = session.gen_verify(
                args.verify,
                opts,
                args.model_directory,
                phase=progress.phase,  # type: ignore[attr-defined]
                sources_only=True,
            )
            ort = None
            if res.ok:  # onnxruntime's float and int8 QDQ time beside the C's (issue 21)
                progress.phase("timing onnxruntime float and int8 QDQ")  # type: ignore[attr-defined]
                ort = ort_times_on_images(session.graph, expand_files(args.verify), opts)
        if args.model_directory is not None:
            self.app.poutput(
                f"gen: wrote {', '.join(p.name for p in res.files)} to {args.model_directory}"
            )
        self.app.poutput("\n".join(_verify_lines(res, ort)))
        if not res.ok:
            raise CodegenError(f"the generated C differs: {res.summary()}")
