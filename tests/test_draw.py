"""draw: PNG (pillow), SVG, DOT and the terminal text drawing, without graphviz."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nnshell.errors import GraphStateError, UsageError
from nnshell.report.draw import draw_graph
from nnshell.session import Session
from tests.conftest import ROOT, SAMPLE_MODEL

RESIDUAL = ROOT / "tests" / "data" / "tflite" / "mobile_block.tflite"


def _fused() -> Session:
    s = Session()
    s.open(str(SAMPLE_MODEL))
    s.adjust()
    s.fusions("scale8")
    return s


def test_png_of_the_fused_sample(tmp_path: Path) -> None:
    s = _fused()
    path = draw_graph(s.graph, None, None, True, False, str(tmp_path / "g.png"))
    img = Image.open(path).convert("RGB")
    w, h = img.size
    assert 200 < w < 1200 and 600 < h < 3000  # a readable page-size picture
    px = np.asarray(img)
    # the group frames (fusions) are drawn in their own colour: 4 fusions -> that colour exists
    assert (np.abs(px.astype(int) - (190, 140, 40)).sum(axis=2) < 30).sum() > 400
    assert (px < 100).all(axis=2).sum() > 1000  # text and edges are drawn


def test_svg_and_dot_name_every_node(tmp_path: Path) -> None:
    s = _fused()
    svg = Path(draw_graph(s.graph, None, None, True, False, str(tmp_path / "g.svg"))).read_text()
    texts = {t.text for t in ET.fromstring(svg).iter("{http://www.w3.org/2000/svg}text")}
    for n in s.graph.nodes:
        for p in n.attrs.parts if hasattr(n.attrs, "parts") else [n]:
            assert any(t == p.name or t.endswith(f": {p.name}") for t in texts)
    assert "input_1 (input)" in texts and "output_1 (output)" in texts
    dot = Path(draw_graph(s.graph, None, None, True, False, str(tmp_path / "g.dot"))).read_text()
    assert dot.startswith("digraph ") and dot.count("subgraph ") == 4 and dot.rstrip().endswith("}")


def test_hostile_names_stay_text(tmp_path: Path) -> None:
    s = Session()
    s.open(str(SAMPLE_MODEL))
    s.graph.nodes[0].name = '</text><script>alert(1)</script>"x'
    svg = Path(draw_graph(s.graph, None, None, False, False, str(tmp_path / "h.svg"))).read_text()
    root = ET.fromstring(svg)  # still well-formed
    assert not list(root.iter("{http://www.w3.org/2000/svg}script"))
    dot = Path(draw_graph(s.graph, None, None, False, False, str(tmp_path / "h.dot"))).read_text()
    assert '\\"x' in dot


def test_text_drawing_fits_80_columns_and_shows_skips() -> None:
    s = Session()
    s.open(str(RESIDUAL))
    text = draw_graph(s.graph, None, None, False, False, None, 80)
    assert all(len(line) <= 80 for line in text.splitlines())
    g = s.graph
    k = next(i for i, n in enumerate(g.nodes) if n.name == "ADD_0_3")
    skip = [
        g.nodes.index(g.producer(t)) for t in g.nodes[k].inputs if t not in g.nodes[k - 1].outputs
    ]
    add = next(line for line in text.splitlines() if "ADD_0_3  Add" in line)
    assert add.endswith(f"<- {skip[0]}") and skip[0] < k - 1  # the residual branch's source
    with pytest.raises(GraphStateError, match="aquant"):
        draw_graph(s.graph, None, None, False, True, None)
    with pytest.raises(UsageError, match="unknown picture type"):
        draw_graph(s.graph, None, None, False, False, "g.jpg")


def test_shell_draw(shell, tmp_path: Path) -> None:  # noqa: ANN001
    assert shell.run(f"open {SAMPLE_MODEL}")[0]
    assert shell.run("fusions --scale8")[0]
    ok, _, err = shell.run(f"draw -F -f {tmp_path / 'g.png'}")
    assert ok and "draw: wrote" in err
    assert Image.open(tmp_path / "g.png").size[1] > 600
    ok, out, _ = shell.run("draw 0:1 -F")
    assert ok and out.splitlines()[0] == "cifar_net: 2 of 5 layers" and "├ MaxPool" in out


def test_quant_labels_hand_checked() -> None:
    from nnshell.quant.fixed_point import QType
    from nnshell.report.draw import _qlabel

    assert _qlabel(QType(scale=2.0**-7, zero_point=0, bits=16)) == "int16 Q8.7"  # POW2 Q8.7
    assert _qlabel(QType(scale=0.02, zero_point=-3, bits=8, symmetric=False)) == "int8 S=0.02 Z=-3"
    assert _qlabel(None) == "float"
