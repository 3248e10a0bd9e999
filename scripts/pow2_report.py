"""SQ8 vs POW2-16 vs POW2-8 on the sample model (issue 10): accuracy, output QSNR, footprint.

Runs nnshell through its Session API: open ``sample_models/cifar_net.onnx``, the normalisation
``x: (x/255 - 0.5)/0.5``, adjust, then ``fusions --scale8`` + ``aquant sample_images/calib`` (SQ8)
and ``fusions --pow2`` + ``aquant sample_images/calib -s POW2 -f 16`` (POW2-16; POW2-8 re-quantizes
from the same statistics with ``-f 8``). Top-1 on ``sample_images/test``, the QSNR of the graph
output (float executor against the dequantized integer executor, mean and worst image), the
quantized parameter bytes, the peak activation RAM and ``gen --verify`` (the generated C99 built
with the host compiler, compared with the integer executor on every test image, plus its constant
and arena bytes). Prints the table and writes the section
"SQ8 vs POW2 (issue 10)" of ``docs/quantization.md`` (other sections are kept).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import doc_sections  # noqa: E402 - sibling script module

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "sample_models" / "cifar_net.onnx"
CALIB = ROOT / "sample_images" / "calib"
TEST = ROOT / "sample_images" / "test"
DOC = ROOT / "docs" / "quantization.md"
SECTION = "## SQ8 vs POW2 (issue 10)"
NORM = "x: (x/255 - 0.5)/0.5"


def _session(scheme: str):  # noqa: ANN202 - nnshell.session.Session
    from nnshell.session import Session

    s = Session()
    s.open(str(MODEL))
    s.set("input_norm_func", NORM)
    s.adjust()
    s.fusions(scheme)
    return s


def _output_qsnr(s, xs: np.ndarray) -> tuple[float, float]:  # noqa: ANN001
    from nnshell.exec import run_float
    from nnshell.exec.int_exec import run_int

    g, qs = s.graph, s.qstate
    out = g.outputs[0]
    ref = run_float(g, {g.inputs[0]: xs})[out].reshape(len(xs), -1).astype(np.float64)
    deq = qs.tensors[out].dequantize(run_int(g, qs, {g.inputs[0]: xs})[out]).reshape(len(xs), -1)
    err = np.maximum(((ref - deq) ** 2).sum(1), 1e-30)
    db = 10 * np.log10(np.maximum((ref**2).sum(1), 1e-30) / err)
    return float(db.mean()), float(db.min())


def _row(name: str, s, xs: np.ndarray) -> dict:  # noqa: ANN001
    res = s.validate([str(TEST)])
    fp = s.footprint()
    mean, worst = _output_qsnr(s, xs)
    ver = s.gen_verify([str(TEST)])
    return {
        "verify": "bit-exact" if ver.ok else "DIFFERS",
        "images": ver.images,
        "c_const": ver.const_bytes,
        "c_arena": ver.arena_bytes,
        "name": name,
        "float": res.float_acc,
        "top1": res.quant_acc,
        "qsnr": mean,
        "qsnr_worst": worst,
        "params": fp.quant_params,
        "float_params": fp.float_params,
        "act": fp.quant_act_peak,
        "float_act": fp.float_act_peak,
        "warnings": list(getattr(s.qstate, "warnings", [])),
    }


def run() -> list[dict]:
    from nnshell.input.images import InputOptions, expand_files, iter_batches

    files = expand_files([str(TEST)])
    xs = np.concatenate(
        [b for _, b in iter_batches(files, InputOptions(norm_func=NORM), (3, 32, 32), 256)]
    )
    sq8 = _session("scale8")
    sq8.aquant([str(CALIB)])
    rows = [_row("SQ8", sq8, xs)]
    p2 = _session("pow2")
    p2.aquant([str(CALIB)], scheme="POW2", bits=16)
    rows.append(_row("POW2-16", p2, xs))
    out = p2.aquant([], scheme="POW2", bits=8)  # the same statistics: no image read
    assert out.reused
    rows.append(_row("POW2-8", p2, xs))
    return rows


def table(rows: list[dict]) -> list[str]:
    f = rows[0]
    lines = [
        "| scheme | top-1 | drop vs float (points) | output QSNR mean (dB) | worst image (dB) "
        "| parameter bytes | peak activation bytes | gen --verify (C vs executor) "
        "| C constants / arena (bytes) |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|",
        f"| float32 | {f['float']:.2%} |  |  |  | {f['float_params']:,} | {f['float_act']:,} "
        "|  |  |",
    ]
    for r in rows:
        lines.append(
            f"| {r['name']} | {r['top1']:.2%} | {100 * (r['float'] - r['top1']):+.2f} "
            f"| {r['qsnr']:.1f} | {r['qsnr_worst']:.1f} | {r['params']:,} | {r['act']:,} "
            f"| {r['verify']} on {r['images']} images | {r['c_const']:,} / {r['c_arena']:,} |"
        )
    return lines


def markdown(rows: list[dict]) -> str:
    warn = next((r["warnings"] for r in rows if r["name"] == "POW2-16"), [])
    lines = [
        SECTION,
        "",
        "Produced by `python scripts/pow2_report.py`. Sample model `sample_models/cifar_net.onnx`, "
        f'normalisation `-N "{NORM}"`, calibration on `sample_images/calib`, top-1 on '
        f"`sample_images/test` ({len(expand_test())} images). SQ8: `fusions --scale8`, "
        "`aquant` defaults. POW2-16: `fusions --pow2`, `aquant sample_images/calib -s POW2 -f 16`; "
        "POW2-8: `aquant -s POW2 -f 8` from the same statistics (no image read). Output QSNR: "
        "graph output of the float executor against the dequantized integer executor, "
        "10·log10(Σref²/Σerr²) per image. Parameter bytes: weights, biases and SQ8 multipliers "
        "at their container width (POW2 has no multipliers: its shifts are compile-time). "
        "gen --verify: `gen --target c --verify sample_images/test` — the generated C99 (SQ8 "
        "kernels in `nn_kernels.c`, POW2 kernels in `nn_pow2.c`) built with "
        "`gcc -std=c99 -Wall -Wextra -Werror`, every layer's bytes compared with nnshell's "
        "integer executor on every image.",
        "",
        *table(rows),
        "",
        "POW2-16 precision-reduction warnings (31-bit accumulator budget, POW2.md):",
        "",
        *[f"- {w}" for w in warn],
        *(["- none"] if not warn else []),
        "",
    ]
    return "\n".join(lines)


def expand_test() -> list[str]:
    from nnshell.input.images import expand_files

    return expand_files([str(TEST)])


def write_section(text: str) -> None:
    """Replace (or append) this script's section of ``docs/quantization.md``."""
    doc_sections.write_section(text, SECTION, DOC, "Quantization")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--no-write", action="store_true", help=f"do not update {DOC.name}")
    args = ap.parse_args()
    rows = run()
    print("\n".join(table(rows)))
    if not args.no_write:
        write_section(markdown(rows))
        print(f"\nwrote {DOC.relative_to(ROOT)}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
