"""Capture the header GreenWaves' NNTool writes for the sample LeNet (docs/data/, issue 23).

docs/walkthrough.md compares nnshell's ``model.h`` constants with the real NNTool's. The
walkthrough generator must not run NNTool (it needs the GAP SDK and an old Python stack), so
this script runs it once and commits what it wrote: the NNTool script, the SDK version and the
header's ``#define`` lines, verbatim. ``scripts/make_walkthrough.py`` reads the capture when it
exists and quotes it as measured text with the command that produced it.

The NNTool flow is the lab's: ``adjust``, ``fusions --scale8``, the training normalisation,
``aquant`` on the calibration images (SQ8), ``gen`` with ``--header_file``. It runs from the
repository root with relative paths, so the capture holds no machine-specific path.

    SDK_REPO=<git dir of the GAP SDK snapshot> python scripts/capture_nntool_header.py \\
        --nntool ../shared/tools/nntool.sh
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CAPTURE = REPO / "docs" / "data" / "nntool_cifar_header.txt"
MODEL = "sample_models/cifar_net.onnx"
WORK = "build/nntool_capture"
#: NNTool's own command language (not nnshell's): the lab's flow, outputs under WORK.
NNTOOL_SCRIPT = [
    "adjust",
    "fusions --scale8",
    'set input_norm_func "x: (x/255 - 0.5)/0.5"',
    "aquant sample_images/calib/* -s SQ8 -T",
    f"gen -M {WORK}/out -T {WORK}/out/tensors --header_file model.h model.c",
]


def sdk_version(sdk_repo: str | None) -> str:
    """``git describe`` and commit of the GAP SDK snapshot NNTool came from (or "unknown")."""
    if not sdk_repo:
        return "unknown"
    try:
        out = subprocess.run(
            ["git", "-C", sdk_repo, "log", "-1", "--format=%H %cs"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        tag = subprocess.run(
            ["git", "-C", sdk_repo, "describe", "--tags"], capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{tag or 'untagged'} (commit {out[0]}, {out[1]})"


def capture_text(header: str, version: str, command: str) -> str:
    """The capture file: provenance comments, then the header's ``#define`` lines verbatim."""
    lines = [
        f"# GreenWaves NNTool's model.h for {MODEL}, captured by scripts/capture_nntool_header.py",
        f"# NNTool: tools/nntool of the GAP SDK {version}",
        f"# command (repository root): {command}",
        f"# NNTool script ({WORK}/lab.nnt):",
        *(f"#   {line}" for line in NNTOOL_SCRIPT),
        "# the #define lines of the header it wrote, verbatim:",
    ]
    lines += [ln for ln in header.splitlines() if ln.startswith("#define")]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--nntool",
        default=os.environ.get("NNTOOL_SH", "../shared/tools/nntool.sh"),
        help="the script that runs NNTool (default: $NNTOOL_SH or ../shared/tools/nntool.sh)",
    )
    p.add_argument("--out", type=Path, default=CAPTURE, help="capture file to write")
    args = p.parse_args(argv)
    nntool = Path(args.nntool).resolve()
    if not nntool.is_file():
        sys.stderr.write(f"capture_nntool_header: no NNTool runner at {nntool}\n")
        return 2
    os.chdir(REPO)
    shutil.rmtree(WORK, ignore_errors=True)
    Path(WORK, "out", "tensors").mkdir(parents=True)
    Path(WORK, "lab.nnt").write_text("\n".join(NNTOOL_SCRIPT) + "\n")
    cmd = [str(nntool), MODEL, "-s", f"{WORK}/lab.nnt"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    header = Path(WORK, "out", "model.h")
    if proc.returncode != 0 or not header.is_file():
        sys.stderr.write(proc.stdout[-2000:] + proc.stderr[-2000:])
        sys.stderr.write("capture_nntool_header: NNTool did not write model.h\n")
        return 1
    command = f"nntool.sh {MODEL} -s {WORK}/lab.nnt"
    text = capture_text(header.read_text(), sdk_version(os.environ.get("SDK_REPO")), command)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    sys.stderr.write(f"wrote {args.out} ({text.count('#define')} #define lines)\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
