"""The JSON documents of ``qshow --json``, ``validate --json`` and ``footprint --json``.

Each function turns a command's plain result into the document as text; the field names are a
public interface (scripts read them), so they change only with the docs.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nnshell.quant.sq8 import QuantState


def qshow_json(graph: Any, qstate: QuantState, steps: list[int], calib_inputs: Any) -> str:
    """The quantization of the selected layers, with the scheme and calibration inputs."""
    from nnshell.report.quant_tables import qshow_rows

    doc = {
        "scheme": qstate.scheme,
        "options": qstate.options.describe(),
        "input_options": calib_inputs.to_dict() if calib_inputs is not None else None,
        "layers": qshow_rows(graph, qstate, steps),
    }
    return json.dumps(doc, indent=1, default=float)


def validate_json(res: Any) -> str:
    """Top-1 float and quantized, the flipped images and the paired test of the drop."""
    doc = {
        "images": len(res.files),
        "float_top1": res.float_acc,
        "quant_top1": res.quant_acc,
        "flips": [
            dict(zip(("file", "label", "float", "quant"), f, strict=True)) for f in res.flips()
        ],
    }
    paired = res.paired()
    if paired is not None:
        doc["paired"] = paired.to_dict()
    return json.dumps(doc, indent=1)


def footprint_json(fp: Any, place: Any) -> str:
    """Parameter and peak activation bytes, float and quantized, and the GAP8 placement."""
    doc = {
        "float_param_bytes": fp.float_params,
        "quant_param_bytes": fp.quant_params,
        "float_peak_act_bytes": fp.float_act_peak,
        "quant_peak_act_bytes": fp.quant_act_peak,
        "unfused_float_peak_act_bytes": (
            fp.unfused_peak.bytes if fp.unfused_peak is not None else None
        ),
        "peaks": {
            k: asdict(p) if p is not None else None
            for k, p in (
                ("unfused_float", fp.unfused_peak),
                ("float", fp.float_peak),
                ("quant", fp.quant_peak),
            )
        },
        "gap8": {**asdict(place), "consts_fit_l2": place.consts_fit_l2},
        "layers": [vars(r) for r in fp.layers],
    }
    return json.dumps(doc, indent=1)
