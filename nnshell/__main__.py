"""``python -m nnshell`` and the ``nnshell`` console script run the shell.

The only module that may end the process (tests/test_error_contract.py): library code raises.
"""

import atexit
import os
import sys

from nnshell.shell.cli import main


def run() -> None:
    """The console script: :func:`main`, then leave without tearing the interpreter down.

    Python's orderly shutdown frees every module one by one (about 0.1 s for the ~700 that a
    session imports), which is a quarter of ``nnshell MODEL -c quit``. Nothing nnshell holds
    needs it: files are closed by ``with`` blocks, so the exit handlers (cmd2's history) run,
    the standard streams are flushed, and the process ends with the status.
    """
    try:
        status = main()
    except SystemExit as exc:  # argparse's --help / --version / usage errors
        status = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if exc.code is not None and not isinstance(exc.code, int):
            sys.stderr.write(f"{exc.code}\n")
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed or broken pipe: nothing left to deliver
            status = status or 1
    os._exit(status)


if __name__ == "__main__":
    run()
