"""Regenerate docs/walkthrough.md from docs/walkthrough.template.md and nnshell's own output.

Every command of scripts/lab.nnscript runs through the real shell application, in process, in
one session; its output is captured (non-tty rendering: tables at their natural width, no ANSI,
``COLUMNS=100``) and embedded where the template says ``{{output:COMMAND}}``. The document also
lists every command in order (``{{commands:lab}}``), so a reader can type exactly what produced
it; tests/test_walkthrough.py types that listing and compares key figures. Every number quoted in
the prose is a ``{{value:NAME}}`` computed below from the objects the commands returned (the data
behind their ``--json`` output) or from library calls: no hand-typed figures. The template is
checked for stray figures (a number in the prose outside a placeholder or a code span fails).

GreenWaves' NNTool cannot run here; its header for the same flow is quoted from the committed
capture docs/data/nntool_cifar_header.txt (scripts/capture_nntool_header.py writes it). Without
the capture, the template's ``<!-- if:nntool -->`` ... ``<!-- end:nntool -->`` parts are dropped.

Placeholders:
  {{output:KEY}}        a ```text block: the prompt, the command and its output. KEY is a command
                        of lab.nnscript (exact text, or a unique prefix); a command that occurs
                        again is keyed ``TEXT#2``, ``TEXT#3``...
  {{commands:lab}}      a ```text block: every command of lab.nnscript, in order
  {{value:NAME}}        one formatted number or word
  {{table:NAME}}        a markdown table computed here
  {{file:PATH|TEXT}}    a ```c block: the lines of a generated file that contain TEXT
  {{nntool:TEXT}}       a ```text block: the capture's provenance lines and its lines with TEXT

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
import math
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

NNTOOL_CAPTURE = REPO / "docs" / "data" / "nntool_cifar_header.txt"

#: The deliberately poor calibration set of lab.nnscript: the calibration images of one class.
ONE_CLASS = 3
ONE_CLASS_GLOB = f"sample_images/calib/calib_*_{ONE_CLASS}.png"
#: Reference figures from outside this repository (the prose may not type numbers): the LeNet of
#: PyTorch's "Training a classifier" tutorial reaches about 54 % on CIFAR-10 after its two
#: epochs, and around 60 % trained longer; that is the model this sample copies the shape of.
CIFAR10_LENET_TOP1 = "60 %"
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
_PLACEHOLDER = re.compile(r"\{\{(output|commands|value|table|file|nntool):([^}]*)\}\}")
_IF_NNTOOL = re.compile(r"<!-- if:nntool -->.*?<!-- end:nntool -->\n?", re.S)


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
        if lines and line == lines[-1] and _TIMING.search(line):
            continue  # gen --verify's second timing line (onnxruntime's): one note is enough
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
    """The commands of lab.nnscript, each keyed by its own text (``TEXT#n`` when repeated)."""
    from nnshell.script import script_lines

    out: list[tuple[str, str]] = []
    seen: dict[str, int] = {}
    for s in script_lines(str(LAB), {}):
        seen[s.text] = seen.get(s.text, 0) + 1
        key = s.text if seen[s.text] == 1 else f"{s.text}#{seen[s.text]}"
        out.append((key, s.text))
    return out


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


def pval(p: float) -> str:
    """A p-value as printed: 1 when the test sees nothing at all."""
    return "1" if p >= 0.9995 else f"{p:.3g}"


def spts(x: float) -> str:
    """A signed difference in points."""
    return f"{100 * x:+.2f}"


def class_sweep(state: str, full_pred: Any) -> list[tuple[int, int, float, Any]]:
    """(class, images, quantized top-1, paired test against the whole set's quantization) of a
    calibration on each class alone: ``aquant sample_images/calib/calib_*_<c>.png`` then
    ``validate sample_images/test``, as library calls."""
    from nnshell.analysis.paired import compare_predictions
    from nnshell.session import Session

    rows = []
    calib = sorted(Path("sample_images/calib").glob("calib_*.png"))
    labels = sorted({int(p.stem.rsplit("_", 1)[1]) for p in calib})
    for label in labels:
        s = Session()
        s.open(state)
        s.aquant([f"sample_images/calib/calib_*_{label}.png"])
        res = s.validate(["sample_images/test"])
        pc = compare_predictions(res.labels, full_pred, res.quant_pred)
        n = len(list(Path("sample_images/calib").glob(f"calib_*_{label}.png")))
        rows.append((label, n, float(res.quant_acc), pc))
    return rows


def method_pairs(state: str, modes: list[str], base_pred: Any) -> dict[str, Any]:
    """Each range method's predictions against minmax's on the test images, paired: ``aquant
    --mode M`` (same statistics) then ``validate sample_images/test``, as library calls."""
    from nnshell.analysis.paired import compare_predictions
    from nnshell.session import Session

    s = Session()
    s.open(state)
    s.aquant(["sample_images/calib"])
    out = {}
    for mode in modes:
        s.aquant([], mode=mode)
        res = s.validate(["sample_images/test"])
        out[mode] = compare_predictions(res.labels, base_pred, res.quant_pred)
    return out


def raw_input_qtype() -> tuple[float, int, tuple[float, float]]:
    """The input's scale, zero point and range when ``input_norm_func`` is forgotten: the
    listed commands without the ``set`` line (library calls)."""
    from nnshell.session import Session

    s = Session()
    s.open("sample_models/cifar_net.onnx")
    s.adjust()
    s.fusions("scale8")
    s.aquant(["sample_images/calib"])
    name = s.graph.inputs[0]
    q = s.qstate.tensors[name]
    lo, hi = s.qstate.ranges[name]
    return float(q.scale), int(q.zero_point), (float(lo), float(hi))


def unfused_stats() -> dict[str, Any]:
    """Calibrated ranges of every node of the unfused graph (library call, for the header):
    ``open``, ``adjust``, ``set input_norm_func``, ``astats sample_images/calib``."""
    from nnshell.session import Session

    s = Session()
    s.open("sample_models/cifar_net.onnx")
    s.adjust()
    s.set("input_norm_func", "x: (x/255 - 0.5)/0.5")
    return {r.name: r for r in s.astats(["sample_images/calib"]).layers}


def header_defines(text: str) -> dict[str, str]:
    """``#define NAME VALUE`` lines of a C header, in order."""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "#define":
            out[parts[1]] = parts[2]
    return out


def nntool_capture() -> tuple[list[str], dict[str, str]] | None:
    """The committed NNTool header capture: (provenance comment lines, #defines), or None."""
    if not NNTOOL_CAPTURE.is_file():
        return None
    text = NNTOOL_CAPTURE.read_text()
    prov = [ln for ln in text.splitlines() if ln.startswith("# ")]
    return prov, header_defines(text)


def nntool_layers(defs: dict[str, str]) -> list[str]:
    """NNTool's header names of the activation tensors, in order: its header also lists the
    constant inputs (``..._weights``, ``..._bias(es)``) and repeats the last layer as
    ``Output_1``; those are left out so the list lines up with nnshell's."""
    heads = [k[: -len("_OUT_SCALE")] for k in defs if k.endswith("_OUT_SCALE")]
    return [
        h
        for h in heads
        if not h.endswith(("_weights", "_bias", "_biases")) and not h.endswith("_Output_1")
    ]


def compute(ran: dict[str, Ran]) -> tuple[dict[str, str], dict[str, str]]:
    """Every figure the prose quotes, and the computed tables."""
    from nnshell.analysis.footprint import GAP8_L1_BYTES, GAP8_L2_BYTES, gap8_placement
    from nnshell.analysis.paired import compare_predictions, mcnemar_exact
    from nnshell.input.images import label_from_name
    from nnshell.quant.fixed_point import header_qscale_qnorm, qtype_from_range
    from nnshell.settings import defaults

    v: dict[str, str] = {}
    t: dict[str, str] = {}
    state = "build/lab/autotiler/cifar_net.json"

    rows, totals = find(ran, "show").results["layers"]
    v["float_layers"] = str(len(rows))
    v["float_params"] = ints(totals.params)
    v["float_macs"] = ints(totals.macs)
    v["cifar10_lenet"] = CIFAR10_LENET_TOP1
    v["conf"] = "95 %"

    fus = find(ran, "fusions --scale8").results["fusions"].result
    v["n_fusions"] = str(len(fus.fusions))
    v["n_removed"] = str(len(fus.removed))
    v["removed"] = ", ".join(f"`{n}`" for n in fus.removed)

    # -- accuracy (first: the range section compares against these predictions) ------------
    val = find(ran, "validate sample_images/test").results["validate"]
    fa, qa = float(val.float_acc), float(val.quant_acc)
    nval = len(val.files)
    v["float_acc"] = pct(fa)
    v["quant_acc"] = pct(qa)
    v["drop_pts"] = pts(fa - qa)
    flips = val.flips()
    v["n_flips"] = str(len(flips))
    pc = val.paired()
    v["n_fixed"] = str(pc.fixed)
    v["n_broken"] = str(pc.broken)
    v["pair_disc"] = str(pc.discordant)
    v["pair_p"] = pval(pc.p_value)
    v["pair_wald_lo"], v["pair_wald_hi"] = (spts(x) for x in pc.wald)
    v["pair_newc_lo"], v["pair_newc_hi"] = (spts(x) for x in pc.newcombe)
    v["pair_wald_half"] = pts((pc.wald[1] - pc.wald[0]) / 2)
    v["pair_newc_up"] = pts(pc.newcombe[1])
    v["binom_std_pts"] = pts((fa * (1 - fa) / nval) ** 0.5)
    qe = find(ran, "qerror sample_images/test").results["qerror"].to_dict()
    out_q = qe["layers"][-1]["qsnr"]
    v["qsnr_out"] = f"{out_q:.2f}"
    v["qsnr_out_ratio"] = ints(round(10 ** (out_q / 10)))
    v["qsnr_first"] = f"{qe['layers'][0]['qsnr']:.2f}"
    worst = max(qe["layers"], key=lambda r: r["harm_db"])
    v["qsnr_worst_layer"] = f"`{worst['name']}`"
    v["qsnr_worst_lost"] = f"{worst['harm_db']:.2f}"

    # -- range comparison ----------------------------------------------------------------
    cmp = find(ran, "aquant sample_images/calib --compare").results["compare_modes"].to_dict()
    acc = cmp["quant_top1"]
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
    spread_img = round(spread * nval)
    v["cmp_top1_spread"] = pts(spread)
    v["cmp_top1_spread_img"] = str(spread_img)
    v["cmp_qsnr_spread"] = f"{max(last.values()) - min(last.values()):.2f}"
    v["one_image_pts"] = pts(1 / nval)
    v["cmp_minmax_gap_img"] = str(round((max(acc.values()) - acc["minmax"]) * nval))
    v["cmp_allone_p"] = pval(mcnemar_exact(spread_img, 0))
    others = [m for m in cmp["modes"] if m != "minmax"]
    pairs = method_pairs(state, others, val.quant_pred)
    v["m_pairs"] = "; ".join(
        f"{m.split(':')[0]} {p.fixed} / {p.broken}, p = {pval(p.p_value)}" for m, p in pairs.items()
    )
    v["m_min_p"] = pval(min(p.p_value for p in pairs.values()))

    aq = find(ran, "aquant sample_images/calib").results["aquant"]
    v["mode"] = str(aq.options.mode)
    raw_s, raw_z, (raw_lo, raw_hi) = raw_input_qtype()
    v["raw_in_scale"] = num(raw_s, 4)
    v["raw_in_zp"] = str(raw_z)
    v["raw_in_lo"], v["raw_in_hi"] = num(raw_lo, 4), num(raw_hi, 4)

    # -- footprint -------------------------------------------------------------------------
    fp = find(ran, "footprint").results["footprint"]
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
    v["fp_extra_pct"] = pct((b + m) / fp.quant_params)
    up, fpk, qpk = fp.unfused_peak, fp.float_peak, fp.quant_peak

    def parts(peak: Any) -> str:
        return " + ".join(f"{ints(size)} B (`{name}`)" for name, size in peak.tensors)

    v["fp_unf_peak"] = ints(up.bytes)
    v["fp_unf_parts"] = parts(up)
    v["fp_unf_node"] = f"`{up.node}`"
    v["fp_fused_parts"] = parts(fpk)
    v["fp_q_parts"] = parts(qpk)
    v["fp_fusion_saves"] = ints(up.bytes - fpk.bytes)
    v["fp_fusion_saves_pct"] = pct((up.bytes - fpk.bytes) / up.bytes)
    v["fp_int8_saves"] = ints(fpk.bytes - qpk.bytes)
    v["fp_q_of_unf"] = pct(qpk.bytes / up.bytes)
    v["fp_unf_x"] = f"{up.bytes / qpk.bytes:.2f}"
    total_f = fp.float_params + up.bytes
    total_q = fp.quant_params + fp.quant_act_peak
    v["fp_total_f"] = ints(total_f)
    v["fp_total_q"] = ints(total_q)
    v["fp_total_x"] = f"{total_f / total_q:.2f}"
    place = gap8_placement(fp, defaults())
    v["gap8_l1"] = f"{GAP8_L1_BYTES // 1024} KiB"
    v["gap8_l2"] = f"{GAP8_L2_BYTES // 1024} KiB"
    v["gap8_l1_budget"] = ints(place.l1_budget)
    v["gap8_l2_budget"] = ints(place.l2_budget)
    v["gap8_l2_needed"] = ints(place.l2_needed)
    v["gap8_consts_fit"] = "fit" if place.consts_fit_l2 else "do not fit"
    v["gap8_float_params"] = ints(fp.float_params)

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
        # accumulator: |Σ W·I| <= K·127·128 (symmetric int8 weights, int8 codes), plus |B'|
        prod = int(d["K"]) * 127 * 128
        bmax = max(abs(int(c["bias_total"])) for c in d["channels"])
        v[p + "acc_prod"] = ints(prod)
        v[p + "acc_bmax"] = ints(bmax)
        v[p + "acc_bound"] = ints(prod + bmax)
        v[p + "acc_pow"] = str((prod + bmax).bit_length())
        v[p + "acc_signed"] = str((prod + bmax).bit_length() + 1)
        v[p + "acc_spare"] = str(32 - (prod + bmax).bit_length() - 1)
    c1 = ran["qexplain _conv1_Conv_fusion"].results["qexplain"][0].data
    c2 = ran["qexplain _conv2_Conv_fusion"].results["qexplain"][0].data
    v["chain_equal"] = "equal" if c2["input"]["scale"] == c1["output"]["scale"] else "NOT equal"

    # -- calibration set -------------------------------------------------------------------
    conv = find(ran, "astats --convergence sample_images/calib").results["astats"].to_dict()
    pconv = find(ran, "astats --convergence --mode percentile").results["astats"].to_dict()
    one = find(ran, f"astats --convergence {ONE_CLASS_GLOB}").results["astats"].to_dict()
    v["one_class"] = str(ONE_CLASS)
    v["one_class_glob"] = f"`{ONE_CLASS_GLOB}`"
    for tag, doc in (("div", conv), ("one", one)):
        cov, cv = doc["coverage"], doc["convergence"]
        v[f"{tag}_images"] = str(doc["images"])
        v[f"{tag}_classes"] = str(len(cov["counts"]))
        v[f"{tag}_missing"] = str(len(cov["missing"]))
        v[f"{tag}_stable"] = str(cv["stable_at"])
        by = {r["name"]: r for r in doc["layers"]}
        v[f"{tag}_conv2_max"] = num(by["_conv2_Conv_fusion"]["chosen"][1], 3)
        v[f"{tag}_fc2_max"] = num(by["_fc2_Gemm_fusion"]["chosen"][1], 3)
    stable = {n: r["stable_from"] for n, r in conv["convergence"]["layers"].items()}
    v["div_slowest"] = str(max(stable.values()))
    v["div_classes_first"] = str(conv["convergence"]["classes_seen"][0])
    by_div = {r["name"]: r for r in conv["layers"]}
    c1_tensor = by_div["_conv1_Conv_fusion"]["tensor"]
    checkpoints = conv["convergence"]["checkpoints"]
    before = checkpoints[-2]
    v["conv_prev_cp"] = str(before)
    v["conv1_mm_prev"] = f"{conv['convergence']['layers'][c1_tensor]['pct_of_final'][-2]:.0f}%"
    v["conv1_pc_prev"] = f"{pconv['convergence']['layers'][c1_tensor]['pct_of_final'][-2]:.0f}%"
    v["conv1_pc_stable"] = str(pconv["convergence"]["layers"][c1_tensor]["stable_from"])
    v["pc_stable_at"] = str(pconv["convergence"]["stable_at"])
    c1_count = int(by_div["_conv1_Conv_fusion"]["count"])
    pctl = float(by_div["_conv1_Conv_fusion"]["percentile"])
    v["c1_count"] = ints(c1_count)
    v["c1_tail"] = ints(round(c1_count * (100 - pctl) / 100))
    # how much resolution a clipped range could buy: max / 99.99th percentile, in bits
    ratios = {}
    for r in conv["layers"]:
        if r["step"] is None:
            continue
        mm, pc_r = r["ranges"]["minmax"], r["ranges"]["percentile:99.99"]
        ratios[r["name"]] = (
            max(abs(x) for x in mm),
            max(abs(x) for x in pc_r),
        )
    c2max, c2p = ratios["_conv2_Conv_fusion"]
    v["ratio_c2_max"], v["ratio_c2_p"] = num(c2max, 3), num(c2p, 3)
    v["ratio_c2"] = f"{c2max / c2p:.2f}"
    v["ratio_c2_bits"] = f"{math.log2(c2max / c2p):.2f}"
    worst_r = max(ratios, key=lambda n: ratios[n][0] / ratios[n][1])
    wmax, wp = ratios[worst_r]
    v["ratio_worst_layer"] = f"`{worst_r}`"
    v["ratio_worst"] = f"{wmax / wp:.2f}"
    v["ratio_worst_bits"] = f"{math.log2(wmax / wp):.2f}"
    v["bits_db"] = f"{20 * math.log10(2):.2f}"
    v["ratio_worst_db"] = f"{20 * math.log10(wmax / wp):.2f}"
    # which of the whole set's extremes come from the one-class images
    from_one = []
    for r in conv["layers"]:
        if r["step"] is None:
            continue
        lo, hi = r["chosen"]
        ends = [r["argmax_file"]] + ([r["argmin_file"]] if lo < 0 else [])
        if all(label_from_name(f) == ONE_CLASS for f in ends):
            from_one.append(r)
    v["c3_layers"] = ", ".join(f"`{r['name']}`" for r in from_one)
    v["c3_files"] = ", ".join(sorted({f"`{os.path.basename(r['argmax_file'])}`" for r in from_one}))
    by_one = {r["name"]: r for r in one["layers"]}
    same = all(by_one[r["name"]]["chosen"] == r["chosen"] for r in from_one)
    v["c3_same"] = "the same" if same else "NOT the same"
    oval = find(ran, "validate sample_images/test#2").results["validate"]
    v["one_acc"] = pct(float(oval.quant_acc))
    v["one_drop_pts"] = pts(float(oval.float_acc) - float(oval.quant_acc))
    opc = compare_predictions(val.labels, val.quant_pred, oval.quant_pred)
    v["one_vs_full"] = f"{opc.broken} broken, {opc.fixed} fixed, p = {pval(opc.p_value)}"
    oqe = find(ran, "qerror sample_images/test#2").results["qerror"].to_dict()
    for tag, doc in (("div", qe), ("one", oqe)):
        by = {r["name"]: r for r in doc["layers"]}
        v[f"{tag}_conv2_maxerr"] = num(by["_conv2_Conv_fusion"]["max_abs"], 3)
        v[f"{tag}_conv2_qsnr"] = f"{by['_conv2_Conv_fusion']['qsnr']:.2f}"
        v[f"{tag}_out_qsnr"] = f"{doc['layers'][-1]['qsnr']:.2f}"
    sweep = class_sweep(state, val.quant_pred)
    lines = [
        "| Calibration set | Images | Quantized top-1 | Drop (points) "
        "| Against all classes: broken, fixed | McNemar p |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    lines.append(
        f"| all classes (`sample_images/calib`) | {v['div_images']} | {v['quant_acc']} "
        f"| {v['drop_pts']} | — | — |"
    )
    for label, n, a, spc in sweep:
        lines.append(
            f"| class {label} only | {n} | {pct(a)} | {pts(fa - a)} | {spc.broken}, {spc.fixed} "
            f"| {pval(spc.p_value)} |"
        )
    t["class_sweep"] = "\n".join(lines)
    drops = [fa - a for _, _, a, _ in sweep]
    worst_sweep = max(sweep, key=lambda row: fa - row[2])
    v["sweep_worst_drop"] = pts(max(drops))
    v["sweep_worst_img"] = str(round(max(drops) * nval))
    v["sweep_best_drop"] = pts(min(drops))
    v["sweep_worst_class"] = str(worst_sweep[0])
    v["sweep_worst_p"] = pval(worst_sweep[3].p_value)
    v["sweep_min_p"] = pval(min(row[3].p_value for row in sweep))

    # -- header constants ------------------------------------------------------------------
    defs = header_defines(Path("build/lab/autotiler/model.h").read_text())
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
    mant, expo = math.frexp(s1)
    v["h_c1_mant"] = f"{mant:.5f}"
    v["h_c1_mant128"] = f"{mant * 128:.2f}"
    v["h_c1_expo"] = str(expo)
    v["h_c1_qn_unrounded"] = str(7 - expo)
    v["h_in_scale"] = num(float(defs[heads[0] + "_OUT_SCALE"]), 6)
    out_head = heads[-1]
    lo5, hi5 = st[fused[-1]]["chosen"]
    v["h_out_scale"] = num(float(defs[out_head + "_OUT_SCALE"]), 6)
    v["h_out_lo"], v["h_out_hi"] = num(lo5, 4), num(hi5, 4)
    v["h_out_asym"] = num((hi5 - lo5) / 255, 4)
    v["h_out_sym127"] = num(max(abs(lo5), abs(hi5)) / 127, 4)
    v["h_out_sym"] = num(qtype_from_range(lo5, hi5, symmetric=True).scale, 6)
    v["n_header_scales"] = str(len(heads))

    # -- GreenWaves NNTool's header for the same flow (committed capture) -------------------
    cap = nntool_capture()
    if cap is not None:
        prov, ndefs = cap
        nheads = nntool_layers(ndefs)
        if len(nheads) != len(heads):
            raise SystemExit(
                f"make_walkthrough: NNTool's header has {len(nheads)} activation tensors, "
                f"nnshell's {len(heads)}: refresh docs/data/nntool_cifar_header.txt"
            )
        nprefix = os.path.commonprefix(nheads)
        nprefix = nprefix[: nprefix.rfind("_") + 1]
        lines = [
            "| Layer | nnshell's name | NNTool's name | `OUT_SCALE` (nnshell) | `OUT_SCALE` "
            "(NNTool) | nnshell `QSCALE, QNORM` | NNTool `QSCALE, QNORM` "
            "| NNTool's `QSCALE·2^-QNORM` / `OUT_SCALE` |",
            "|---|---|---|--:|--:|--:|--:|--:|",
        ]
        differ, scale_dev = [], 0.0
        for head, nhead, layer in zip(heads, nheads, fused, strict=True):
            ours = float(defs[head + "_OUT_SCALE"])
            theirs = float(ndefs[nhead + "_OUT_SCALE"])
            scale_dev = max(scale_dev, abs(theirs - ours) / ours)
            qs, qn = int(defs[head + "_OUT_QSCALE"]), int(defs[head + "_OUT_QNORM"])
            nqs, nqn = int(ndefs[nhead + "_OUT_QSCALE"]), int(ndefs[nhead + "_OUT_QNORM"])
            if (qs, qn) != (nqs, nqn):
                differ.append((layer, nqs, nqn, theirs))
            lines.append(
                f"| `{layer}` | `{head[len(prefix) :]}` | `{nhead[len(nprefix) :]}` "
                f"| {num(ours, 6)} | {num(theirs, 6)} | {qs}, {qn} | {nqs}, {nqn} "
                f"| {num(nqs * 2.0**-nqn / theirs, 4)} |"
            )
        t["nntool_header"] = "\n".join(lines)
        v["nnt_scale_dev"] = f"{scale_dev:.1e}"
        v["nnt_n_differ"] = str(len(differ))
        v["nnt_differ_layers"] = ", ".join(f"`{d[0]}`" for d in differ) or "none"
        nc1 = nheads[1]
        nqs1, nqn1 = int(ndefs[nc1 + "_OUT_QSCALE"]), int(ndefs[nc1 + "_OUT_QNORM"])
        v["nnt_c1_qs"], v["nnt_c1_qn"] = str(nqs1), str(nqn1)
        v["nnt_c1_approx"] = num(nqs1 * 2.0**-nqn1, 6)
        v["nnt_c1_factor"] = num(float(ndefs[nc1 + "_OUT_SCALE"]) / (nqs1 * 2.0**-nqn1), 4)
        v["nnt_c1_name"] = f"`{nc1}`"
        v["nnt_sdk"] = next(
            (ln.split("GAP SDK ", 1)[1].split(" (")[0] for ln in prov if "GAP SDK " in ln), "?"
        )

    ver = find(ran, "gen --target c").results["gen_verify"]
    v["verify_images"] = str(ver.images)
    v["verify_layers"] = str(ver.layers)
    v["verify_ok"] = "bit-exact" if ver.ok else "NOT bit-exact"
    v["c_arena"] = ints(ver.arena_bytes)
    v["c_const"] = ints(ver.const_bytes)
    v["c_mul_extra"] = ints(ver.const_bytes - fp.quant_params)
    return v, t


# -- the template ----------------------------------------------------------------------------
def check_prose(template: str) -> None:
    """Fail on a figure typed in the prose (outside placeholders, code spans and blocks)."""
    text = re.sub(r"```.*?```", "", template, flags=re.S)
    text = _PLACEHOLDER.sub("", text)
    text = re.sub(r"`[^`]*`", "", text)
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    # word sizes (8-bit), top-1, and names that end in a number
    text = re.sub(r"\b\d+-bit\b|\btop-1\b|\bCIFAR-10\b", "", text)
    bad = re.findall(r"(?<![\w.])\d+(?:[.,]\d+)*(?![\w])", text)
    if bad:
        raise SystemExit(f"make_walkthrough: figures typed in the template prose: {bad[:10]}")


#: The markers around the command listing: tests/test_walkthrough.py types what lies between.
COMMANDS_BEGIN = "<!-- commands:begin -->"
COMMANDS_END = "<!-- commands:end -->"


def render(
    template: str, ran: dict[str, Ran], values: dict[str, str], tables: dict[str, str]
) -> str:
    capture = nntool_capture()
    if capture is None:
        template = _IF_NNTOOL.sub("", template)
    else:
        template = template.replace("<!-- if:nntool -->\n", "").replace("<!-- end:nntool -->\n", "")

    def sub(m: re.Match[str]) -> str:
        kind, arg = m.group(1), m.group(2).strip()
        if kind == "output":
            r = find(ran, arg)
            return f"```text\n{r.prompt}{r.line}\n{r.output}\n```"
        if kind == "commands":
            lines = [r.line for r in ran.values()]
            return f"{COMMANDS_BEGIN}\n```text\n" + "\n".join(lines) + f"\n```\n{COMMANDS_END}"
        if kind == "nntool":
            assert capture is not None
            prov, _ = capture
            text = NNTOOL_CAPTURE.read_text().splitlines()
            lines = [ln for ln in text if ln.startswith("#define") and arg in ln]
            if not lines:
                raise SystemExit(f"make_walkthrough: no NNTool header line has '{arg}'")
            return "```text\n" + "\n".join([*prov, *lines]) + "\n```"
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
    ran = run_commands(lab_commands(), roots)
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
