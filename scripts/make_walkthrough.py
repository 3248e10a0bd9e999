"""Regenerate docs/walkthrough.md from docs/walkthrough.template.md and nnshell's own output.

Every command of scripts/lab.nnscript runs through the real shell application, in process, in
one session; its output is captured (non-tty rendering: tables at their natural width, no ANSI,
``COLUMNS=100``) and embedded where the template says ``{{output:COMMAND}}``. A few extra
commands (the one-class calibration experiment) follow in the same session. Every number quoted
in the prose is a ``{{value:NAME}}`` computed below from the objects the commands returned (the
data behind their ``--json`` output) or from library calls: no hand-typed figures. The template
is checked for stray figures (a number in the prose outside a placeholder or a code span fails).

Placeholders:
  {{output:KEY}}        a ```text block: the prompt, the command and its output. KEY is a command
                        of lab.nnscript (exact text, or a unique prefix) or an extra command's key
  {{value:NAME}}        one formatted number or word
  {{table:NAME}}        a markdown table computed here
  {{file:PATH|TEXT}}    a ```c block: the lines of a generated file that contain TEXT

Outputs are deterministic: timings are masked, absolute paths replaced, status bars dropped.

    python scripts/make_walkthrough.py            # rewrites docs/walkthrough.md
    python scripts/make_walkthrough.py --check    # exit 1 if the committed document is stale
    python scripts/make_walkthrough.py --out F --workdir D   # another output / build folder
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import io
import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
LAB = REPO / "scripts" / "lab.nnscript"
TEMPLATE = REPO / "docs" / "walkthrough.template.md"
OUTPUT = REPO / "docs" / "walkthrough.md"
WIDTH = "100"

#: The deliberately poor calibration set: the calibration images of one class only.
ONE_CLASS = 3
ONE_CLASS_DIR = f"build/lab/calib_class{ONE_CLASS}"
#: Commands run after lab.nnscript in the same session: (key, command).
EXTRA = [
    ("one-class aquant", f"aquant {ONE_CLASS_DIR}"),
    ("one-class astats", f"astats --convergence {ONE_CLASS_DIR}"),
    ("one-class validate", "validate sample_images/test"),
    ("one-class qerror", "qerror sample_images/test"),
]
#: Session methods whose results are recorded (the data behind the commands' --json output).
RECORDED = (
    "layers",
    "adjust",
    "fusions",
    "aquant",
    "compare_modes",
    "qexplain",
    "qerror",
    "validate",
    "footprint",
    "astats",
    "gen_verify",
)

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")
_TIMING = re.compile(r"(time per image: ).*")
#: The state file records the model's absolute path, so its size depends on the folder.
_STATE_SIZE = re.compile(r"(\.json) \([\d.]+ [KMG]?i?B\)")
_PLACEHOLDER = re.compile(r"\{\{(output|value|table|file):([^}]*)\}\}")


@dataclass
class Ran:
    """One command run through the shell: what it printed and what the session returned."""

    key: str
    line: str
    prompt: str
    output: str
    results: dict[str, Any] = field(default_factory=dict)


def clean(text: str, roots: list[str]) -> str:
    """Strip ANSI codes, progress lines and trailing blanks; hide absolute paths and timings."""
    text = _ANSI.sub("", text).replace("\r", "\n")
    for root in roots:
        text = text.replace(root + os.sep, "").replace(root, ".")
    lines = []
    for line in text.split("\n"):
        line = line.rstrip()
        if "img/s" in line or "ETA" in line:  # a progress bar left on a non-terminal
            continue
        line = _TIMING.sub(r"\1(timings vary from run to run: not shown)", line)
        lines.append(_STATE_SIZE.sub(r"\1 (size not shown: it records the model's path)", line))
    return "\n".join(lines).strip("\n")


def record_session(session: Any, current: list[dict[str, Any]]) -> None:
    """Wrap the session's methods so each call's result lands in ``current[0]``."""
    for name in RECORDED:
        method = getattr(session, name)

        def spy(*args: Any, _method: Any = method, _name: str = name, **kwargs: Any) -> Any:
            result = _method(*args, **kwargs)
            current[0][_name] = result
            return result

        setattr(session, name, spy)


def run_commands(commands: list[tuple[str, str]], roots: list[str]) -> dict[str, Ran]:
    """Run ``(key, line)`` commands in one shell; stop at the first failure."""
    from nnshell.shell.app import make_app, run_command

    app = make_app(stdout=io.StringIO())
    current: list[dict[str, Any]] = [{}]
    record_session(app.session, current)
    ran: dict[str, Ran] = {}
    for key, line in commands:
        out, err, calls = io.StringIO(), io.StringIO(), {}
        current[0] = calls
        app.stdout = out
        prompt = app.prompt
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            ok, _ = run_command(app, line)
        if not ok:
            raise SystemExit(f"make_walkthrough: '{line}' failed:\n{err.getvalue()}")
        status = [s for s in clean(err.getvalue(), roots).split("\n") if s.strip()]
        text = "\n".join([*status, clean(out.getvalue(), roots)]).strip("\n")
        if key in ran:
            raise SystemExit(f"make_walkthrough: two commands have the key '{key}'")
        ran[key] = Ran(key, line, prompt, text, calls)
    return ran


def lab_commands() -> list[tuple[str, str]]:
    """The commands of lab.nnscript, each keyed by its own text."""
    from nnshell.script import script_lines

    return [(s.text, s.text) for s in script_lines(str(LAB), {})]


def find(ran: dict[str, Ran], key: str) -> Ran:
    """A command by its key, or by a unique prefix of it."""
    if key in ran:
        return ran[key]
    hits = [r for k, r in ran.items() if k.startswith(key)]
    if len(hits) != 1:
        raise SystemExit(f"make_walkthrough: '{key}' names {len(hits)} commands, not one")
    return hits[0]


# -- numbers ---------------------------------------------------------------------------------
def pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def pts(x: float) -> str:
    return f"{100 * x:.2f}"


def num(x: float, sig: int = 4) -> str:
    return f"{x:.{sig}g}"


def ints(n: int) -> str:
    return f"{n:,}"


def class_sweep(state: str) -> list[tuple[int, int, float]]:
    """(class, images, quantized top-1) of a calibration on each class alone (library calls)."""
    from nnshell.session import Session

    rows = []
    calib = sorted(Path("sample_images/calib").glob("calib_*.png"))
    labels = sorted({int(p.stem.rsplit("_", 1)[1]) for p in calib})
    for label in labels:
        files = [str(p) for p in calib if p.stem.endswith(f"_{label}")]
        s = Session()
        s.open(state)
        s.aquant(files)
        res = s.validate(["sample_images/test"])
        rows.append((label, len(files), float(res.quant_acc)))
    return rows


def unfused_stats() -> dict[str, Any]:
    """Calibrated ranges of every node of the unfused graph (library call, for the header)."""
    from nnshell.session import Session

    s = Session()
    s.open("sample_models/cifar_net.onnx")
    s.adjust()
    s.set("input_norm_func", "x: (x/255 - 0.5)/0.5")
    return {r.name: r for r in s.astats(["sample_images/calib"]).layers}


def header_defines(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "#define":
            out[parts[1]] = parts[2]
    return out


def compute(ran: dict[str, Ran]) -> tuple[dict[str, str], dict[str, str]]:
    """Every figure the prose quotes, and the computed tables."""
    from nnshell.fixed_point import header_qscale_qnorm, qtype_from_range

    v: dict[str, str] = {}
    t: dict[str, str] = {}

    rows, totals = find(ran, "show").results["layers"]
    v["float_layers"] = str(len(rows))
    v["float_params"] = ints(totals.params)
    v["float_macs"] = ints(totals.macs)

    fus = find(ran, "fusions --scale8").results["fusions"].result
    v["n_fusions"] = str(len(fus.fusions))
    v["n_removed"] = str(len(fus.removed))
    v["removed"] = ", ".join(f"`{n}`" for n in fus.removed)

    # -- range comparison ----------------------------------------------------------------
    cmp = find(ran, "aquant sample_images/calib --compare").results["compare_modes"].to_dict()
    acc = cmp["quant_top1"]
    nval = cmp["validate_images"]
    v["calib_images"] = str(cmp["calib_images"])
    v["test_images"] = str(nval)
    for m, a in acc.items():
        v[f"cmp_top1_{m}"] = pct(a)
    last = cmp["layers"][-1]["qsnr"]
    for m, q in last.items():
        v[f"cmp_qsnr_out_{m}"] = f"{q:.2f}"
    v["cmp_best_top1"] = cmp["best"]
    v["cmp_best_qsnr"] = max(last, key=last.get)
    spread = max(acc.values()) - min(acc.values())
    v["cmp_top1_spread"] = pts(spread)
    v["cmp_top1_spread_img"] = str(round(spread * nval))
    v["cmp_qsnr_spread"] = f"{max(last.values()) - min(last.values()):.2f}"
    v["one_image_pts"] = pts(1 / nval)
    v["cmp_minmax_gap_img"] = str(round((max(acc.values()) - acc["minmax"]) * nval))

    aq = find(ran, "aquant sample_images/calib").results["aquant"]
    v["mode"] = str(aq.options.mode)

    # -- accuracy --------------------------------------------------------------------------
    val = find(ran, "validate sample_images/test").results["validate"]
    fa, qa = float(val.float_acc), float(val.quant_acc)
    v["float_acc"] = pct(fa)
    v["quant_acc"] = pct(qa)
    v["drop_pts"] = pts(fa - qa)
    flips = val.flips()
    v["n_flips"] = str(len(flips))
    v["n_fixed"] = str(sum(1 for f in flips if f[3] == f[1]))
    v["n_broken"] = str(sum(1 for f in flips if f[2] == f[1]))
    v["binom_std_pts"] = pts((fa * (1 - fa) / len(val.files)) ** 0.5)
    qe = find(ran, "qerror sample_images/test").results["qerror"].to_dict()
    out_q = qe["layers"][-1]["qsnr"]
    v["qsnr_out"] = f"{out_q:.2f}"
    v["qsnr_out_ratio"] = ints(round(10 ** (out_q / 10)))
    v["qsnr_first"] = f"{qe['layers'][0]['qsnr']:.2f}"
    worst = max(qe["layers"], key=lambda r: r["harm_db"])
    v["qsnr_worst_layer"] = f"`{worst['name']}`"
    v["qsnr_worst_lost"] = f"{worst['harm_db']:.2f}"

    # -- footprint -------------------------------------------------------------------------
    fp = ran["footprint"].results["footprint"]
    w = sum(r.weight_bytes for r in fp.layers)
    b = sum(r.bias_bytes for r in fp.layers)
    m = sum(r.mult_bytes for r in fp.layers)
    v["fp_float"] = ints(fp.float_params)
    v["fp_quant"] = ints(fp.quant_params)
    v["fp_ratio"] = pct(fp.quant_params / fp.float_params)
    v["fp_weights"] = ints(w)
    v["fp_biases"] = ints(b)
    v["fp_n_biases"] = ints(b // 4)
    v["fp_mult"] = ints(m)
    v["fp_mult_per_ch"] = str(m // (b // 4))
    v["fp_act_float"] = ints(fp.float_act_peak)
    v["fp_act_quant"] = ints(fp.quant_act_peak)
    v["fp_act_ratio"] = pct(fp.quant_act_peak / fp.float_act_peak)
    v["fp_bytes_per_float"] = str(fp.float_params // totals.params)
    total_f = fp.float_params + fp.float_act_peak
    total_q = fp.quant_params + fp.quant_act_peak
    v["fp_total_x"] = f"{total_f / total_q:.2f}"
    v["fp_extra_pct"] = pct((b + m) / fp.quant_params)

    # -- formulas --------------------------------------------------------------------------
    for i, sel in ((1, "qexplain _conv1_Conv_fusion"), (2, "qexplain _conv2_Conv_fusion")):
        d = ran[sel].results["qexplain"][0].data
        ch = d["channels"][0]
        p = f"c{i}_"
        v[p + "K"] = str(d["K"])
        v[p + "acc_bits"] = str(d["acc_bits"])
        v[p + "sI"] = num(d["input"]["scale"], 6)
        v[p + "zI"] = str(d["input"]["zero_point"])
        v[p + "sO"] = num(d["output"]["scale"], 6)
        v[p + "zO"] = str(d["output"]["zero_point"])
        v[p + "n_ch"] = str(len(d["channels"]))
        v[p + "sW_min"] = num(min(c["weight_scale"] for c in d["channels"]), 6)
        v[p + "sW_max"] = num(max(c["weight_scale"] for c in d["channels"]), 6)
        v[p + "sW0"] = num(ch["weight_scale"], 6)
        v[p + "m0"] = num(ch["m_real"], 6)
        v[p + "M0"] = str(ch["M"])
        v[p + "N0"] = str(ch["N"])
        v[p + "approx0"] = num(ch["approx"], 6)
        v[p + "relerr_max"] = f"{d['rel_err_max']:.2%}"
        v[p + "bias0"] = num(ch["bias"], 6)
        v[p + "biasq0"] = ints(ch["bias_q"])
        v[p + "wsum0"] = ints(ch["weight_sum"])
        v[p + "offset0"] = ints(ch["offset"])
        v[p + "bias_total0"] = ints(ch["bias_total"])
    c1 = ran["qexplain _conv1_Conv_fusion"].results["qexplain"][0].data
    c2 = ran["qexplain _conv2_Conv_fusion"].results["qexplain"][0].data
    v["chain_equal"] = "equal" if c2["input"]["scale"] == c1["output"]["scale"] else "NOT equal"

    # -- calibration set -------------------------------------------------------------------
    conv = find(ran, "astats --convergence sample_images/calib").results["astats"].to_dict()
    one = ran["one-class astats"].results["astats"].to_dict()
    v["one_class"] = str(ONE_CLASS)
    v["one_class_dir"] = f"`{ONE_CLASS_DIR}`"
    for tag, doc in (("div", conv), ("one", one)):
        cov, cv = doc["coverage"], doc["convergence"]
        v[f"{tag}_images"] = str(doc["images"])
        v[f"{tag}_classes"] = str(len(cov["counts"]))
        v[f"{tag}_missing"] = str(len(cov["missing"]))
        v[f"{tag}_stable"] = str(cv["stable_at"])
        by = {r["name"]: r for r in doc["layers"]}
        v[f"{tag}_conv2_max"] = num(by["_conv2_Conv_fusion"]["chosen"][1], 3)
        v[f"{tag}_fc2_max"] = num(by["_fc2_Gemm_fusion"]["chosen"][1], 3)
    v["div_outliers_max"] = f"{max(r['outlier_pct'] for r in conv['layers']):.3f}%"
    ones = conv["convergence"]["layers"]
    stable = {n: r["stable_from"] for n, r in ones.items()}
    v["div_slowest"] = str(max(stable.values()))
    v["div_classes_first"] = str(conv["convergence"]["classes_seen"][0])
    oval = ran["one-class validate"].results["validate"]
    v["one_acc"] = pct(float(oval.quant_acc))
    v["one_drop_pts"] = pts(float(oval.float_acc) - float(oval.quant_acc))
    oqe = ran["one-class qerror"].results["qerror"].to_dict()
    for tag, doc in (("div", qe), ("one", oqe)):
        by = {r["name"]: r for r in doc["layers"]}
        v[f"{tag}_conv2_maxerr"] = num(by["_conv2_Conv_fusion"]["max_abs"], 3)
        v[f"{tag}_conv2_qsnr"] = f"{by['_conv2_Conv_fusion']['qsnr']:.2f}"
        v[f"{tag}_out_qsnr"] = f"{doc['layers'][-1]['qsnr']:.2f}"
    sweep = class_sweep("build/lab/cifar_net.json")
    lines = ["| Calibration set | Images | Quantized top-1 | Drop (points) |", "|---|--:|--:|--:|"]
    lines.append(
        f"| all classes (`sample_images/calib`) | {v['div_images']} | {v['quant_acc']} "
        f"| {v['drop_pts']} |"
    )
    for label, n, a in sweep:
        lines.append(f"| class {label} only | {n} | {pct(a)} | {pts(fa - a)} |")
    t["class_sweep"] = "\n".join(lines)
    drops = [fa - a for _, _, a in sweep]
    v["sweep_worst_drop"] = pts(max(drops))
    v["sweep_worst_img"] = str(round(max(drops) * nval))
    v["sweep_best_drop"] = pts(min(drops))

    # -- header constants ------------------------------------------------------------------
    defs = header_defines(Path("build/lab/autotiler/model.h"))
    st = {r["name"]: r for r in conv["layers"]}
    raw = unfused_stats()
    heads = [k[: -len("_OUT_SCALE")] for k in defs if k.endswith("_OUT_SCALE")]
    prefix = os.path.commonprefix(heads)
    prefix = prefix[: prefix.rfind("_") + 1]  # the graph's name, e.g. CIFAR_NET_
    fused = ["graph input", *[r["name"] for r in conv["layers"] if r["step"] is not None]]
    unfused_of = {
        "_conv1_Conv_fusion": "_conv1_Conv",
        "_conv2_Conv_fusion": "_conv2_Conv",
        "_fc1_Gemm_fusion": "_fc1_Gemm",
        "_fc2_Gemm_fusion": "_fc2_Gemm",
        "_fc3_Gemm": "_fc3_Gemm",
    }
    lines = [
        "| Header name | Layer | `OUT_SCALE` | `ZERO_POINT` | Calibrated range | (max−min)/255 "
        "| max\\|x\\|/127 | Unfused op's range | its max\\|x\\|/127 | `QSCALE·2^-QNORM` (error) |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for head, layer in zip(heads, fused, strict=True):
        scale = float(defs[head + "_OUT_SCALE"])
        qs, qn = int(defs[head + "_OUT_QSCALE"]), int(defs[head + "_OUT_QNORM"])
        assert (qs, qn) == header_qscale_qnorm(scale)
        lo, hi = st[layer]["chosen"]
        approx = qs * 2.0**-qn
        if layer in unfused_of:
            r = raw[unfused_of[layer]]
            unf = f"`{r.name}` [{num(r.min, 4)}, {num(r.max, 4)}]"
            unf_s = num(max(abs(r.min), abs(r.max)) / 127, 4)
        else:
            unf, unf_s = "—", "—"
        short = head[len(prefix) :]
        lines.append(
            f"| `{short}` | `{layer}` | {num(scale, 4)} | {defs[head + '_OUT_ZERO_POINT']} "
            f"| [{num(lo, 4)}, {num(hi, 4)}] | {num((hi - lo) / 255, 4)} "
            f"| {num(max(abs(lo), abs(hi)) / 127, 4)} | {unf} | {unf_s} "
            f"| {qs}·2^-{qn} = {num(approx, 4)} ({(approx - scale) / scale:+.2%}) |"
        )
    t["out_scales"] = "\n".join(lines)
    c1h = heads[1]
    s1 = float(defs[c1h + "_OUT_SCALE"])
    lo1, hi1 = st["_conv1_Conv_fusion"]["chosen"]
    r1 = raw["_conv1_Conv"]
    v["h_c1_scale"] = num(s1, 6)
    v["h_c1_max"] = num(hi1, 4)
    v["h_c1_sym"] = num(hi1 / 127, 4)
    v["h_c1_sym_x"] = f"{(hi1 / 127) / s1:.2f}"
    v["h_c1_raw_min"] = num(r1.min, 4)
    v["h_c1_raw_sym"] = num(max(abs(r1.min), abs(r1.max)) / 127, 4)
    v["h_c1_raw_x"] = f"{max(abs(r1.min), abs(r1.max)) / 127 / s1:.2f}"
    qs1, qn1 = int(defs[c1h + "_OUT_QSCALE"]), int(defs[c1h + "_OUT_QNORM"])
    v["h_c1_qs"], v["h_c1_qn"] = str(qs1), str(qn1)
    v["h_c1_approx"] = num(qs1 * 2.0**-qn1, 6)
    v["h_in_scale"] = num(float(defs[heads[0] + "_OUT_SCALE"]), 6)
    out_head = heads[-1]
    lo5, hi5 = st[fused[-1]]["chosen"]
    v["h_out_scale"] = num(float(defs[out_head + "_OUT_SCALE"]), 6)
    v["h_out_lo"], v["h_out_hi"] = num(lo5, 4), num(hi5, 4)
    v["h_out_asym"] = num((hi5 - lo5) / 255, 4)
    v["h_out_sym127"] = num(max(abs(lo5), abs(hi5)) / 127, 4)
    v["h_out_sym"] = num(qtype_from_range(lo5, hi5, symmetric=True).scale, 6)
    v["n_header_scales"] = str(len(heads))

    ver = find(ran, "gen --target c").results["gen_verify"]
    v["verify_images"] = str(ver.images)
    v["verify_layers"] = str(ver.layers)
    v["verify_ok"] = "bit-exact" if ver.ok else "NOT bit-exact"
    v["c_arena"] = ints(ver.arena_bytes)
    v["c_const"] = ints(ver.const_bytes)
    return v, t


# -- the template ----------------------------------------------------------------------------
def check_prose(template: str) -> None:
    """Fail on a figure typed in the prose (outside placeholders, code spans and blocks)."""
    text = re.sub(r"```.*?```", "", template, flags=re.S)
    text = _PLACEHOLDER.sub("", text)
    text = re.sub(r"`[^`]*`", "", text)
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    text = re.sub(r"\b\d+-bit\b|\btop-1\b", "", text)  # word sizes (8-bit), top-1
    bad = re.findall(r"(?<![\w.])\d+(?:[.,]\d+)*(?![\w])", text)
    if bad:
        raise SystemExit(f"make_walkthrough: figures typed in the template prose: {bad[:10]}")


def render(
    template: str, ran: dict[str, Ran], values: dict[str, str], tables: dict[str, str]
) -> str:
    def sub(m: re.Match[str]) -> str:
        kind, arg = m.group(1), m.group(2).strip()
        if kind == "output":
            r = find(ran, arg)
            return f"```text\n{r.prompt}{r.line}\n{r.output}\n```"
        if kind == "value":
            if arg not in values:
                raise SystemExit(f"make_walkthrough: unknown value '{arg}'")
            return values[arg]
        if kind == "table":
            if arg not in tables:
                raise SystemExit(f"make_walkthrough: unknown table '{arg}'")
            return tables[arg]
        path, _, needle = arg.partition("|")
        lines = [ln for ln in Path(path).read_text().splitlines() if needle in ln]
        return "```c\n" + "\n".join(lines) + "\n```"

    body = _PLACEHOLDER.sub(sub, template)
    note = (
        "<!-- Generated by scripts/make_walkthrough.py from docs/walkthrough.template.md and "
        "scripts/lab.nnscript: edit those, not this file. -->\n"
    )
    return note + body.rstrip("\n") + "\n"


def link_inputs(workdir: Path) -> None:
    """A build folder elsewhere sees the sample model and images under the same relative paths."""
    for name in ("sample_models", "sample_images"):
        dst = workdir / name
        if not dst.exists():
            dst.symlink_to(REPO / name, target_is_directory=True)


def generate(workdir: Path) -> str:
    """Run everything in ``workdir`` and return the document."""
    os.environ["COLUMNS"] = WIDTH
    os.environ["NO_COLOR"] = "1"
    os.environ.pop("FORCE_COLOR", None)
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    if workdir != REPO:
        link_inputs(workdir)
    os.chdir(workdir)
    shutil.rmtree("build/lab", ignore_errors=True)
    template = TEMPLATE.read_text()
    check_prose(template)
    roots = sorted({str(workdir), str(REPO)}, key=len, reverse=True)
    one = Path(ONE_CLASS_DIR)
    one.mkdir(parents=True)
    for p in sorted(Path("sample_images/calib").glob(f"calib_*_{ONE_CLASS}.png")):
        shutil.copy(p, one / p.name)
    ran = run_commands(lab_commands() + EXTRA, roots)
    values, tables = compute(ran)
    if os.environ.get("WALKTHROUGH_VALUES"):  # for template authors: every value and table
        for k, val in values.items():
            sys.stderr.write(f"{k} = {val}\n")
        sys.stderr.write("\n\n".join(tables.values()) + "\n")
    return render(template, ran, values, tables)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=OUTPUT, help="document to write")
    p.add_argument("--workdir", type=Path, default=REPO, help="where build/lab/ is written")
    p.add_argument("--check", action="store_true", help="compare with the committed document")
    args = p.parse_args(argv)
    start = time.perf_counter()
    if args.check:
        with tempfile.TemporaryDirectory(prefix="walkthrough_") as tmp:
            doc = generate(Path(tmp))
        old = OUTPUT.read_text() if OUTPUT.exists() else ""
        if doc != old:
            diff = difflib.unified_diff(old.splitlines(), doc.splitlines(), "committed", "new")
            sys.stdout.write("\n".join(list(diff)[:80]) + "\n")
            sys.stderr.write(
                "docs/walkthrough.md is stale: run python scripts/make_walkthrough.py\n"
            )
            return 1
        sys.stderr.write("docs/walkthrough.md is current\n")
        return 0
    out = args.out.resolve()
    doc = generate(args.workdir)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(doc)
    sys.stderr.write(f"wrote {out} in {time.perf_counter() - start:.1f} s\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
