"""The ``nnshell`` command: interactive shell, ``-s`` script replay and ``-c`` one-liners.

All three feed the same command lines to the same cmd2 application. In script and ``-c`` modes
the first failing command stops the run with ``FILE:LINE: error: ...`` on stderr and exit 1;
Ctrl-C stops it with exit 130. No traceback unless ``--debug``.

Scripts and ``-c`` run nnshell's commands only: the app is built ``scripted``, which refuses
cmd2's shell escapes (``shell``, ``!``, pipes, redirections, ``alias``, ``macro``, ...) with
``FILE:LINE: error:`` and exit 1, and ``-D`` values are substituted as data (see nnshell.script).
"""

from __future__ import annotations

import argparse
import os
import sys

from nnshell import __version__


def _arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="nnshell",
        description="Take a float ONNX CNN to an int8 model for a microcontroller.",
    )
    p.add_argument("file", nargs="?", help="model (.onnx, .tflite) to open first")
    p.add_argument(
        "-q",
        "--load_quantization",
        action="store_true",
        help="with a .tflite file: keep its quantization (open -q)",
    )
    p.add_argument(
        "--input_shapes",
        nargs="+",
        metavar="NAME=[d,..]",
        help="with FILE: static shape (without batch) of inputs with dynamic dimensions, as open's",
    )
    p.add_argument("-s", "--script", metavar="SCRIPT", help="run a .nnscript file, then exit")
    p.add_argument(
        "-c",
        dest="commands",
        action="append",
        metavar="CMD",
        help="run a command (repeatable; 'a; b' also splits), then exit",
    )
    p.add_argument(
        "-D",
        dest="defines",
        action="append",
        default=[],
        metavar="VAR=VALUE",
        help="define a script variable for $(VAR) / ${VAR}",
    )
    p.add_argument(
        "-g",
        dest="gen_state",
        metavar="STATE.json",
        help="generate the AutoTiler model from a saved state (no shell); with -M -m -T -H",
    )
    p.add_argument("-M", dest="gen_model_dir", metavar="DIR", help="-g: model directory")
    p.add_argument("-m", dest="gen_model_file", metavar="FILE", help="-g: model C file name")
    p.add_argument("-T", dest="gen_tensor_dir", metavar="DIR", help="-g: tensor directory")
    p.add_argument("-H", dest="gen_header", metavar="HEADER", help="-g: header (model.h)")
    p.add_argument("--debug", action="store_true", help="show Python tracebacks on errors")
    p.add_argument("--version", action="version", version=f"nnshell {__version__}")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    args = _arg_parser().parse_args(argv)
    if args.gen_state:
        return _generate_from_state(args)
    # Imported here so `nnshell --help` and `--version` stay instant.
    from nnshell.errors import NnshellError
    from nnshell.script import (
        ScriptLine,
        command_lines,
        parse_defines,
        quote_arg,
        script_lines,
    )
    from nnshell.shell.app import make_app, run_command

    batch = bool(args.script or args.commands)
    try:
        defines = parse_defines(args.defines)
        lines: list[ScriptLine] = []
        if args.script:
            lines += script_lines(args.script, defines)
        if args.commands:
            lines += command_lines(args.commands, defines)
    except NnshellError as exc:
        where = f"{exc.origin}:{exc.line}: " if hasattr(exc, "origin") else ""
        sys.stderr.write(f"{where}error: {exc}\n")
        return 1
    history = "" if batch else os.path.expanduser("~/.nnshell_history")
    # scripted: shell escapes are refused for good (the script is someone else's text)
    app = make_app(persistent_history_file=history, scripted=batch)
    app.debug = args.debug
    if args.input_shapes and not args.file:
        sys.stderr.write("error: --input_shapes needs a model FILE to open\n")
        return 1
    if args.file:
        try:  # quoted the way nnshell's parser reads it (shlex.quote is POSIX-shell quoting)
            opener = f"open {quote_arg(args.file)}"
            if args.load_quantization:
                opener += " -q"
            if args.input_shapes:
                from nnshell.shell.commands.model_cmds import parse_input_shapes

                parse_input_shapes(args.input_shapes)  # a malformed shape fails here, once
                opener += " --input_shapes " + " ".join(quote_arg(s) for s in args.input_shapes)
            lines.insert(0, ScriptLine("", 0, opener))
        except ValueError:
            sys.stderr.write(f"error: model path {args.file!r} holds both ' and \" quotes\n")
            return 1
        except NnshellError as exc:
            sys.stderr.write(f"error: {exc}\n")
            return 1
    if not batch:
        for line in lines:
            try:
                if not run_command(app, line.text)[1]:
                    continue
            except KeyboardInterrupt:
                sys.stderr.write("interrupted (Ctrl-C): the session is unchanged\n")
                continue
            return 0
        app.poutput(f"nnshell {__version__} — type help for the commands, quit to leave.")
        app.cmdloop()
        return 0
    for line in lines:
        app.error_prefix = f"{line.origin}:{line.line}: " if line.origin else ""
        try:
            ok, stop = run_command(app, line.text)
        except KeyboardInterrupt:
            sys.stderr.write(
                f"{line.origin}:{line.line}: error: interrupted (Ctrl-C); "
                "the session was left as it was before this command\n"
            )
            return 130
        if not ok:
            return 1
        if stop:
            break
    return 0


def _generate_from_state(args: argparse.Namespace) -> int:
    """``nnshell -g STATE.json [-M DIR] [-m FILE] [-T DIR] [-H HEADER]``: AutoTiler files."""
    from nnshell.errors import NnshellError
    from nnshell.session import Session

    try:
        session = Session()
        session.open(args.gen_state)
        written = session.gen_autotiler(
            args.gen_model_dir, args.gen_model_file, args.gen_tensor_dir, args.gen_header
        )
    except NnshellError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    sys.stderr.write(f"gen: wrote {len(written)} files; model {written[0]}\n")
    return 0
