"""Run one flow in nnshell and in the real NNTool and compare what ``gen`` writes, layer by layer.

    SDK_REPO=<GAP SDK git dir> python scripts/nntool_parity.py MODEL IMAGES NORM [--scheme SQ8]

The flow, in both tools: open MODEL, ``adjust``, ``fusions --scale8`` (``--pow2``), ``set
input_norm_func NORM``, ``aquant IMAGES -s SQ8`` (``-s POW2``; ``-T`` for image files: they are
HWC; nnshell adds ``--nntool_padding``, NNTool's rule), ``gen`` with the tensors. NNTool runs
through ``../shared/tools/nntool.sh`` (``--nntool`` overrides), which needs ``SDK_REPO``:
without it the script prints one line and exits 0. IMAGES is a folder or a glob.

Printed: per layer (NNTool's step order) the fused node, the generator and its ``KOP_*``
operators in both tools, the output scale and zero point (from the two headers), then every
``.tensor`` file NNTool wrote — byte-identical, a bias within ±1 (tolerated: the two tools round
the zero-point offset differently), different, or missing in nnshell — with the multipliers and
shifts among them, and a summary. Exit status 0 when every file is equal (biases ±1) and every
layer's operators match, 1 otherwise.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
NNTOOL_SH = ROOT.parent / "shared" / "tools" / "nntool.sh"
IMAGE_EXT = (".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".ppm")


@dataclass
class Call:
    """One generator call of a model file."""

    generator: str
    name: str
    args: list[str]
    node: str  # the graph node from the "// generator for" comment

    @property
    def kops(self) -> list[str]:
        """Its ``KOP_*`` operators, in order."""
        return [a for a in self.args if a.startswith("KOP_")]


def parse_calls(text: str) -> list[Call]:
    """Generator calls (``CNN_*("S<k>_...", ...)``) with the node of their comment."""
    calls = []
    pattern = (
        r"// generator for (\S+)\s*(?:CNN_GenControl_T[^;]*;\s*CNN_InitGenCtrl[^;]*;\s*"
        r"(?:CNN_SetGenCtrl[^;]*;\s*)*(?://[^\n]*\n\s*)?)?(CNN_\w+)\(\s*\"([^\"]+)\"(.*?)\);"
    )
    for m in re.finditer(pattern, text, re.S):
        args = [" ".join(a.split()) for a in m.group(4).split(",")[1:]]
        calls.append(Call(m.group(2), m.group(3), args, m.group(1)))
    return calls


#: Where a POW2 generator takes its Q formats (indices into Call.args): in, weights, bias, out
#: for conv / linear; in(s) and out for the others.
POW2_Q_ARGS = {
    "CNN_ConvolutionPoolReLU": slice(5, 9),
    "CNN_GroupedConvolutionPoolReLU": slice(7, 11),
    "CNN_LinearReLU": slice(5, 9),
    "CNN_PoolReLU": slice(3, 5),
    "CNN_GlobalPool": slice(3, 5),
    "CNN_MatAddDynAdjust": slice(4, 7),
}


def call_qs(call: Call) -> list[int] | None:
    """The Q formats a POW2 generator call sets, or None for a generator without them."""
    sl = POW2_Q_ARGS.get(call.generator)
    return [int(a) for a in call.args[sl]] if sl is not None else None


def node_qs(nq: object) -> list[int]:
    """nnshell's Q formats of a layer in the generator's order (in..., weights, bias, out)."""
    info = nq.info  # type: ignore[attr-defined]
    qs = [int(q) for q in info.get("q_in", []) if q is not None]
    if "q_w" in info:
        qs += [int(info["q_w"]), int(info["q_b"])]
    return [*qs, int(info["q_out"])]


def parse_header(text: str) -> dict[str, tuple[float, int]]:
    """``{layer name: (OUT_SCALE, OUT_ZERO_POINT)}`` of a ``*_OUT_SCALE`` header."""
    scales = dict(re.findall(r"#define \w*?_(S\d+_\w+|Input_\d+)_OUT_SCALE\s+(\S+)", text))
    zps = dict(re.findall(r"#define \w*?_(S\d+_\w+|Input_\d+)_OUT_ZERO_POINT\s+(\S+)", text))
    return {k: (float(v), int(zps.get(k, 0))) for k, v in scales.items()}


def _images(spec: str) -> list[str]:
    path = Path(spec)
    files = sorted(str(p) for p in path.iterdir()) if path.is_dir() else sorted(glob.glob(spec))
    if not files:
        sys.exit(f"nntool_parity: no images match '{spec}'")
    return files


def run_nntool(model: Path, images: list[str], norm: str, scheme: str, out: Path, sh: Path) -> Path:
    """Run NNTool's CLI on a script of the flow; return its model directory."""
    transpose = " -T" if images[0].lower().endswith(IMAGE_EXT) else ""
    quant = "-s SQ8" if scheme == "SQ8" else "-s POW2"
    script = out / "flow.nnt"
    script.write_text(
        "adjust\n"
        f"fusions {'--scale8' if scheme == 'SQ8' else '--pow2'}\n"
        f'set input_norm_func "{norm}"\n'
        f"aquant {' '.join(images)} {quant}{transpose}\n"
        f"gen -M {out}/nt -T {out}/nt/tensors -t --header_file model.h model.c\n"
    )
    proc = subprocess.run(
        ["bash", str(sh), str(model), "-s", str(script)], capture_output=True, text=True
    )
    if proc.returncode != 0 or not (out / "nt" / "model.c").is_file():
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
        sys.exit(f"nntool_parity: NNTool failed: {' | '.join(tail)}")
    return out / "nt"


def run_nnshell(
    model: Path, images: list[str], norm: str, scheme: str, out: Path
) -> tuple[Path, dict[str, list[int]], str]:
    """The same flow through nnshell's Session; return its model directory, every layer's Q
    formats (POW2) and, when gen refused the model, its message (the folder is then empty)."""
    sys.path.insert(0, str(ROOT))
    from nnshell.session import Session

    s = Session()
    s.open(str(model))
    s.set("input_norm_func", norm)
    s.set("input_transpose", "true" if images[0].lower().endswith(IMAGE_EXT) else "false")
    s.adjust()
    s.fusions("scale8" if scheme == "SQ8" else "pow2")
    # NNTool's padding rule (padded-layer inputs symmetric): what its AutoTiler kernels take
    s.aquant(images, scheme=scheme, bits=16, nntool_padding=scheme == "SQ8")
    qs = {}
    if scheme == "POW2":
        qs = {name: node_qs(nq) for name, nq in s.qstate.nodes.items()}
    try:
        s.gen_autotiler(str(out / "nn"), "model.c", "tensors", "model.h", True)
    except Exception as e:  # noqa: BLE001 - reported, and the Q formats still compared
        refused = f"{type(e).__name__}: {e}"
        real, s.qstate = s.qstate, _gap_keeps_input_q(s)
        try:
            s.gen_autotiler(str(out / "nn"), "model.c", "tensors", "model.h", True)
            refused += (
                " -- the files below come from a copy in which each global average pool keeps "
                "its input's Q, as NNTool's kernel does (the other layers are unchanged)"
            )
        except Exception:  # noqa: BLE001
            (out / "nn" / "tensors").mkdir(parents=True, exist_ok=True)
            (out / "nn" / "model.c").write_text("")
            (out / "nn" / "model.h").write_text("")
        s.qstate = real
        return out / "nn", qs, refused
    return out / "nn", qs, ""


def _gap_keeps_input_q(s: object) -> object:
    """A copy of the session's POW2 quantization in which every global average pool writes its
    input's Q (``out_shift`` 7: the 7 guard bits of the mean only), what ``CNN_GlobalPool``
    computes. nnshell's own quantization moves the mean to its output's Q, which that kernel
    cannot: gen refuses it, and this copy lets the other layers' files be compared."""
    import copy

    import numpy as np

    qstate = copy.deepcopy(s.qstate)  # type: ignore[attr-defined]
    for node in s.graph.nodes:  # type: ignore[attr-defined]
        nq = qstate.nodes.get(node.name)
        if node.op == "GlobalAveragePool" and nq is not None and nq.in_q[0] != nq.out_q:
            nq.out_q = nq.in_q[0]
            nq.consts["out_shift"] = np.array(7, np.int64)
    return qstate


def int32_globals(text: str) -> set[str]:
    """Names of the ``signed int`` constants of a model file: the biases."""
    return set(re.findall(r'TCArgInfo\("signed int \* __restrict__", "(\w+)"', text))


def compare_tensor(a: Path, b: Path, bias: bool) -> str:
    """``equal``, ``bias ±1``, ``differs (...)`` or ``missing``."""
    if not b.is_file():
        return "MISSING in nnshell"
    x, y = a.read_bytes(), b.read_bytes()
    if x == y:
        return "equal"
    if len(x) == len(y) and len(x) % 4 == 0 and bias:
        d = np.frombuffer(x, "<i4").astype(np.int64) - np.frombuffer(y, "<i4")
        if np.abs(d).max() <= 1:
            return f"bias ±1 ({int(np.count_nonzero(d))} of {d.size} differ by 1)"
    if len(x) != len(y):
        return f"DIFFERS ({len(x)} vs {len(y)} bytes)"
    i = next(k for k in range(len(x)) if x[k] != y[k])
    n = sum(1 for p, q in zip(x, y, strict=True) if p != q)
    return f"DIFFERS ({n} of {len(x)} bytes; first at {i}: {x[i]:02x} vs {y[i]:02x})"


def report(
    nt: Path, nn: Path, qs: dict[str, list[int]] | None = None, refused: str = ""
) -> tuple[list[str], bool]:
    """The printed lines and whether everything matched. With ``qs`` (POW2: nnshell's Q formats
    per layer), each layer's Q formats are compared with the ones NNTool's call sets."""
    lines: list[str] = []
    if refused:
        lines.append(f"nnshell's gen refused the model: {refused}")
    q_ok = q_total = 0
    if qs:
        lines.append("Q formats (in..., weights, bias, out) NNTool / nnshell:")
        for c in parse_calls((nt / "model.c").read_text()):
            theirs, mine = call_qs(c), qs.get(c.node)
            if theirs is None:
                continue
            q_total += 1
            q_ok += theirs == mine
            verdict = "same" if theirs == mine else "DIFFER"
            lines.append(f"  {c.name} ({c.node}): {theirs} / {mine} [{verdict}]")
        lines.append(f"Q formats agree on {q_ok}/{q_total} layers")
    nt_text = (nt / "model.c").read_text()
    nt_calls = parse_calls(nt_text)
    biases = int32_globals(nt_text)
    nn_calls = {c.node: c for c in parse_calls((nn / "model.c").read_text())}  # by graph node
    nt_h = parse_header((nt / "model.h").read_text())
    nn_h = parse_header((nn / "model.h").read_text())
    lines.append(
        "Layers (NNTool's order): node | generator | KOPs NNTool / nnshell"
        + ("" if qs else " | out scale, Z")
    )
    kop_ok = 0
    for c in nt_calls:
        mine = nn_calls.get(c.node)
        if mine is None:
            lines.append(f"  {c.name} ({c.node}): {c.generator} {' '.join(c.kops)} | MISSING")
            continue
        same = mine.kops == c.kops and mine.generator == c.generator and mine.name == c.name
        kop_ok += same
        args = "args equal" if mine.args == c.args else "ARGS DIFFER"
        s1, z1 = nt_h.get(c.name, (float("nan"), 0))
        s2, z2 = nn_h.get(mine.name, (float("nan"), 0))
        q = "same" if abs(s1 - s2) <= 1e-6 * abs(s1) and z1 == z2 else "DIFFER"
        scale = "" if qs else f" | S={s1:.6g} Z={z1} / S={s2:.6g} Z={z2} [{q}]"  # SQ8 only
        lines.append(
            f"  {c.name} ({c.node}): {c.generator} {' '.join(c.kops)} / "
            + ("" if mine.name == c.name else f"{mine.name} ")
            + f"{' '.join(mine.kops)} [{'match' if same else 'MISMATCH'}, {args}]"
            + scale
        )
    extra = sorted(set(nn_calls) - {c.node for c in nt_calls})
    for node in extra:
        lines.append(f"  {nn_calls[node].name} ({node}): only in nnshell")
    lines.append("Tensor files (NNTool's):")
    counts = {"equal": 0, "bias": 0, "other": 0}
    for f in sorted((nt / "tensors").glob("*.tensor"), key=lambda p: p.name.lower()):
        verdict = compare_tensor(f, nn / "tensors" / f.name, f.stem in biases)
        counts["equal" if verdict == "equal" else "bias" if "±1" in verdict else "other"] += 1
        lines.append(f"  {f.name}: {verdict}")
    total = sum(counts.values())
    ok = counts["other"] == 0 and kop_ok == len(nt_calls) and not extra and q_ok == q_total
    lines.append(
        f"Summary: {counts['equal']}/{total} tensor files byte-identical, {counts['bias']} "
        f"bias(es) within ±1, {counts['other']} different or missing; KOP operators match on "
        f"{kop_ok}/{len(nt_calls)} layers"
        + (f"; {len(extra)} layer(s) only in nnshell" if extra else "")
    )
    return lines, ok


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, run both tools, print the comparison."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", type=Path)
    p.add_argument("images", help="folder or glob of calibration images")
    p.add_argument("norm", help='input_norm_func, e.g. "x: x/127.5-1"')
    p.add_argument("--scheme", choices=["SQ8", "POW2"], default="SQ8")
    p.add_argument("--nntool", type=Path, default=Path(os.environ.get("NNTOOL_SH", NNTOOL_SH)))
    p.add_argument("--keep", type=Path, help="write both generated folders here")
    args = p.parse_args(argv)
    if not os.environ.get("SDK_REPO"):
        print("nntool_parity: SDK_REPO is not set (the GAP SDK git dir NNTool runs from); skipped")
        return 0
    images = _images(args.images)
    with tempfile.TemporaryDirectory() as tmp:
        out = args.keep or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        nt = run_nntool(args.model.resolve(), images, args.norm, args.scheme, out, args.nntool)
        nn, qs, refused = run_nnshell(args.model.resolve(), images, args.norm, args.scheme, out)
        lines, ok = report(nt, nn, qs, refused)
    print(f"nntool_parity: {args.model.name}, {len(images)} image(s), {args.norm!r}, {args.scheme}")
    print("\n".join(lines))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
