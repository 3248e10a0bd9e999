"""Seeded generators of hostile inputs, shared by the CI fuzz tests and scripts/fuzz_campaign.py.

Every generator takes a ``random.Random`` (or a seed) so a failing case can be replayed from its
seed and index. Four input classes:

* ONNX models: byte-level mutations (bit flips, insertions, deletions, truncation) and
  protobuf-level mutations (a missing initializer, a garbage op type, a 10**12 or negative
  dimension, attributes of the wrong type, cycles, dangling inputs, duplicate outputs, an empty
  graph, a huge declared tensor, external data escaping the model folder, ...);
* command lines: random tokens drawn from the shell's own command names and options, paths,
  numbers, quotes, unicode and hostile ``-N`` expressions;
* image files: truncated, mislabelled, zero-size, 1x1, huge declared size, every PIL mode,
  text files named .png/.jpg, empty and pickled .npy files, plus byte mutations of real images;
* state files (``save_state`` JSON + ``.npz``): deleted keys, wrong types, huge numbers, a newer
  schema version, paths escaping the state folder, and byte mutations.

Nothing here asserts: :mod:`tests.fuzz.harness` runs the cases and classifies the outcomes.
"""

from __future__ import annotations

import copy
import io
import json
import random
import struct
import zlib
from collections.abc import Callable, Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_MODEL = ROOT / "sample_models" / "cifar_net.onnx"
CALIB_DIR = ROOT / "sample_images" / "calib"
TEST_DIR = ROOT / "sample_images" / "test"

HUGE = 10**12

# ------------------------------------------------------------------------------------------
# byte-level mutations (any file type)
# ------------------------------------------------------------------------------------------

_INTERESTING = [b"\x00", b"\xff", b"\x7f", b"\x80", b"\xff\xff\xff\xff\x0f", b"\xff" * 10]


def mutate_bytes(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """Apply one random byte-level mutation; return the new bytes and what was done."""
    buf = bytearray(data)
    n = len(buf)
    kind = rng.choice(["flip", "flip", "insert", "delete", "truncate", "overwrite", "duplicate"])
    if n == 0:
        kind = "insert"
    if kind == "flip":
        k = rng.choice([1, 1, 2, 8, 64])
        for _ in range(k):
            i = rng.randrange(n)
            buf[i] ^= 1 << rng.randrange(8)
        return bytes(buf), f"flip {k} bit(s)"
    if kind == "insert":
        i = rng.randrange(n + 1)
        chunk = (
            rng.choice(_INTERESTING) if rng.random() < 0.5 else rng.randbytes(rng.randint(1, 64))
        )
        return bytes(buf[:i] + chunk + buf[i:]), f"insert {len(chunk)} byte(s) at {i}"
    if kind == "delete":
        i = rng.randrange(n)
        k = rng.randint(1, max(1, min(256, n - i)))
        return bytes(buf[:i] + buf[i + k :]), f"delete {k} byte(s) at {i}"
    if kind == "truncate":
        i = rng.randrange(n)
        return bytes(buf[:i]), f"truncate to {i} byte(s)"
    if kind == "overwrite":
        i = rng.randrange(n)
        chunk = rng.choice(_INTERESTING)
        buf[i : i + len(chunk)] = chunk
        return bytes(buf[:n] if len(buf) > n else buf), f"overwrite at {i}"
    i = rng.randrange(n)
    k = rng.randint(1, max(1, min(512, n - i)))
    j = rng.randrange(n)
    return bytes(buf[:j] + buf[i : i + k] + buf[j:]), f"duplicate {k} byte(s) to {j}"


# ------------------------------------------------------------------------------------------
# ONNX models
# ------------------------------------------------------------------------------------------


def _model(nodes: list[Any], inputs: list[Any], outputs: list[Any], inits: list[Any]) -> bytes:
    import onnx
    from onnx import helper

    graph = helper.make_graph(nodes, "fuzz", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    del onnx  # the models are checked by importing them in the tests
    return model.SerializeToString()


@lru_cache(maxsize=1)
def base_models() -> dict[str, bytes]:
    """The seeds of the ONNX mutations: the sample LeNet and four small helper-built models."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)

    def arr(name: str, *shape: int) -> Any:
        return numpy_helper.from_array(rng.normal(size=shape).astype(np.float32), name)

    def ints(name: str, values: list[int]) -> Any:
        return numpy_helper.from_array(np.array(values, np.int64), name)

    def vi(name: str, shape: list[Any] | None) -> Any:
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)

    mk = helper.make_node
    models = {"cifar_net": SAMPLE_MODEL.read_bytes()}
    models["tiny_conv"] = _model(
        [mk("Conv", ["x", "w", "b"], ["c"], name="conv"), mk("Relu", ["c"], ["y"], name="relu")],
        [vi("x", ["N", 3, 8, 8])],
        [vi("y", None)],
        [arr("w", 4, 3, 3, 3), arr("b", 4)],
    )
    models["cnn_small"] = _model(
        [
            mk("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1], strides=[1, 1]),
            mk("BatchNormalization", ["c", "g", "be", "m", "v"], ["bn"], name="bn"),
            mk("Relu", ["bn"], ["r"], name="relu"),
            mk("MaxPool", ["r"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
            mk("Flatten", ["p"], ["f"], name="flat", axis=1),
            mk("Gemm", ["f", "fw", "fb"], ["g1"], name="fc", transB=1),
            mk("Softmax", ["g1"], ["y"], name="softmax", axis=1),
        ],
        [vi("x", [1, 3, 8, 8])],
        [vi("y", [1, 5])],
        [
            arr("w", 4, 3, 3, 3),
            arr("b", 4),
            arr("g", 4),
            arr("be", 4),
            arr("m", 4),
            numpy_helper.from_array(np.ones(4, np.float32), "v"),
            arr("fw", 5, 64),
            arr("fb", 5),
        ],
    )
    models["residual_reshape"] = _model(
        [
            mk("Relu", ["x"], ["r"], name="relu"),
            mk("Add", ["r", "x"], ["a"], name="add"),
            mk("Shape", ["a"], ["s"], name="shape"),
            mk("Gather", ["s", "i0"], ["g"], name="gather", axis=0),
            mk("Unsqueeze", ["g", "ax"], ["u"], name="unsq"),
            mk("Concat", ["u", "m1"], ["shp"], name="concat", axis=0),
            mk("Reshape", ["a", "shp"], ["f"], name="reshape"),
            mk("MatMul", ["f", "w"], ["y"], name="matmul"),
        ],
        [vi("x", ["N", 4, 4, 4])],
        [vi("y", None)],
        [
            numpy_helper.from_array(np.array(0, np.int64), "i0"),
            ints("ax", [0]),
            ints("m1", [-1]),
            arr("w", 64, 3),
        ],
    )
    models["const_of_shape"] = _model(
        [
            mk(
                "ConstantOfShape",
                ["shp"],
                ["c"],
                name="cos",
                value=numpy_helper.from_array(np.array([0.5], np.float32)),
            ),
            mk("Add", ["x", "c"], ["a"], name="add"),
            mk("Transpose", ["a"], ["t"], name="tr", perm=[0, 2, 3, 1]),
            mk("Slice", ["t", "st", "en", "axs"], ["s"], name="slice"),
            mk("GlobalAveragePool", ["x"], ["gp"], name="gap"),
            mk("Mul", ["s", "k"], ["y"], name="mul"),
        ],
        [vi("x", ["N", 3, 8, 8])],
        [vi("y", None), vi("gp", None)],
        [
            ints("shp", [1, 3, 8, 8]),
            ints("st", [0, 0]),
            ints("en", [4, 4]),
            ints("axs", [1, 2]),
            numpy_helper.from_array(np.array(2.0, np.float32), "k"),
        ],
    )
    return models


def _value_infos(g: Any) -> list[Any]:
    return [*g.input, *g.output, *g.value_info]


def _pick(rng: random.Random, seq: Any) -> Any:
    seq = list(seq)
    return rng.choice(seq) if seq else None


def _m_remove_initializer(m: Any, rng: random.Random) -> str | None:
    g = m.graph
    if not g.initializer:
        return None
    i = rng.randrange(len(g.initializer))
    name = g.initializer[i].name
    del g.initializer[i]
    return f"remove initializer '{name}'"


def _m_garbage_op(m: Any, rng: random.Random) -> str | None:
    node = _pick(rng, m.graph.node)
    if node is None:
        return None
    node.op_type = rng.choice(["", "Garbage!", "conv", "Conv2D", "\u00e9\u00e8", "X" * 300, "Loop"])
    return f"op_type of '{node.name}' -> {node.op_type[:20]!r}"


def _m_dim(m: Any, rng: random.Random, value: int) -> str | None:
    g = m.graph
    cands: list[Any] = []
    for vinfo in _value_infos(g):
        cands.extend(vinfo.type.tensor_type.shape.dim)
    if rng.random() < 0.3 and g.initializer:
        init = rng.choice(list(g.initializer))
        if init.dims:
            k = rng.randrange(len(init.dims))
            init.dims[k] = value
            return f"initializer '{init.name}' dim {k} = {value}"
    if not cands:
        return None
    d = rng.choice(cands)
    d.dim_value = value
    return f"value_info dim = {value}"


def _m_huge_dim(m: Any, rng: random.Random) -> str | None:
    return _m_dim(m, rng, rng.choice([HUGE, 2**31, 2**40, 2**62, 100_000]))


def _m_negative_dim(m: Any, rng: random.Random) -> str | None:
    return _m_dim(m, rng, rng.choice([-1, -2, -(2**40), 0]))


def _m_wrong_attr_type(m: Any, rng: random.Random) -> str | None:
    from onnx import helper

    nodes = [n for n in m.graph.node if n.attribute]
    node = _pick(rng, nodes)
    if node is None:
        return None
    k = rng.randrange(len(node.attribute))
    name = node.attribute[k].name
    value = rng.choice(
        [
            "garbage",
            3.5,
            [1.5, 2.5],
            ["a", "b"],
            -7,
            HUGE,
            [0, 0],
            [HUGE, HUGE],
            [-5, -5, -5, -5],
            [],
            helper.make_tensor("t", 1, [2], [1.0, 2.0]),
        ]
    )
    try:
        attr = helper.make_attribute(name, value)
    except (ValueError, TypeError):
        return None
    del node.attribute[k]
    node.attribute.append(attr)
    return f"attribute {node.name}.{name} = {str(value)[:30]}"


def _m_extreme_attr_ints(m: Any, rng: random.Random) -> str | None:
    nodes = [n for n in m.graph.node if any(a.ints or a.type == 2 for a in n.attribute)]
    node = _pick(rng, nodes)
    if node is None:
        return None
    attr = rng.choice([a for a in node.attribute if a.ints or a.type == 2])
    v = rng.choice([0, -1, 99, HUGE, -HUGE, 2**31])
    if attr.ints:
        attr.ints[rng.randrange(len(attr.ints))] = v
    else:
        attr.i = v
    return f"attribute {node.name}.{attr.name} element = {v}"


def _m_cycle(m: Any, rng: random.Random) -> str | None:
    nodes = list(m.graph.node)
    if not nodes:
        return None
    i = rng.randrange(len(nodes))
    j = rng.randrange(i, len(nodes))
    if not nodes[i].input or not nodes[j].output:
        return None
    nodes[i].input[0] = nodes[j].output[0]
    return f"{nodes[i].name} reads the output of {nodes[j].name} (cycle/forward edge)"


def _m_dangling(m: Any, rng: random.Random) -> str | None:
    node = _pick(rng, [n for n in m.graph.node if n.input])
    if node is None:
        return None
    k = rng.randrange(len(node.input))
    node.input[k] = rng.choice(["does_not_exist", "", " ", "\x00", "../x"])
    return f"{node.name} input {k} -> {node.input[k]!r}"


def _m_duplicate_output(m: Any, rng: random.Random) -> str | None:
    nodes = list(m.graph.node)
    if len(nodes) < 2:
        return None
    a, b = rng.sample(nodes, 2)
    if not a.output or not b.output:
        return None
    b.output[0] = a.output[0]
    return f"{b.name} writes {a.name}'s output too"


def _m_empty_graph(m: Any, rng: random.Random) -> str | None:
    del m.graph.node[:]
    if rng.random() < 0.5:
        del m.graph.output[:]
    return "empty graph"


def _m_huge_tensor(m: Any, rng: random.Random) -> str | None:
    from onnx import TensorProto

    t = TensorProto()
    t.name = rng.choice([i.name for i in m.graph.initializer] or ["huge"])
    t.data_type = TensorProto.FLOAT
    t.dims.extend(rng.choice([[HUGE], [10**6, 10**6], [2**20, 2**20, 4], [1, 2**31]]))
    t.raw_data = b"\x00" * rng.choice([0, 4, 64])
    for k, init in enumerate(m.graph.initializer):
        if init.name == t.name:
            m.graph.initializer[k].CopyFrom(t)
            break
    else:
        m.graph.initializer.append(t)
    return f"initializer '{t.name}' declares {list(t.dims)}"


def _m_int_initializer_values(m: Any, rng: random.Random) -> str | None:
    from onnx import numpy_helper

    inits = [i for i in m.graph.initializer if i.data_type == 7]  # INT64
    init = _pick(rng, inits)
    if init is None:
        return None
    try:
        arr = numpy_helper.to_array(init).copy()
    except Exception:  # noqa: BLE001 - an earlier mutation broke the tensor: skip
        return None
    if arr.size == 0:
        return None
    flat = arr.reshape(-1)
    flat[rng.randrange(flat.size)] = rng.choice([HUGE, -HUGE, 0, -5, 2**31, 10**6])
    init.CopyFrom(numpy_helper.from_array(flat.reshape(arr.shape), init.name))
    return f"int initializer '{init.name}' = {flat.tolist()[:6]}"


def _m_drop_attribute(m: Any, rng: random.Random) -> str | None:
    node = _pick(rng, [n for n in m.graph.node if n.attribute])
    if node is None:
        return None
    k = rng.randrange(len(node.attribute))
    name = node.attribute[k].name
    del node.attribute[k]
    return f"drop attribute {node.name}.{name}"


def _m_unknown_attribute(m: Any, rng: random.Random) -> str | None:
    from onnx import helper

    node = _pick(rng, m.graph.node)
    if node is None:
        return None
    node.attribute.append(helper.make_attribute(rng.choice(["bogus", "", "axis"]), 1))
    return f"extra attribute on {node.name}"


def _m_graph_outputs(m: Any, rng: random.Random) -> str | None:
    g = m.graph
    choice = rng.randrange(3)
    if choice == 0 or not g.output:
        from onnx import TensorProto, helper

        g.output.append(helper.make_tensor_value_info("nowhere", TensorProto.FLOAT, None))
        return "graph output that nothing produces"
    if choice == 1:
        del g.output[:]
        return "no graph outputs"
    g.output.append(copy.deepcopy(g.output[0]))
    return "duplicate graph output"


def _m_graph_inputs(m: Any, rng: random.Random) -> str | None:
    g = m.graph
    if rng.random() < 0.5:
        del g.input[:]
        return "no graph inputs"
    if g.initializer:
        from onnx import TensorProto, helper

        name = rng.choice(list(g.initializer)).name
        g.input.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [1]))
        return f"initializer '{name}' also listed as a graph input with a wrong shape"
    return None


def _m_elem_type(m: Any, rng: random.Random) -> str | None:
    vinfo = _pick(rng, m.graph.input)
    if vinfo is None:
        return None
    vinfo.type.tensor_type.elem_type = rng.choice([0, 2, 7, 8, 9, 10, 16, 22, 999])
    return f"input '{vinfo.name}' elem_type {vinfo.type.tensor_type.elem_type}"


def _m_opset(m: Any, rng: random.Random) -> str | None:
    choice = rng.randrange(4)
    if choice == 0:
        del m.opset_import[:]
        return "no opset_import"
    if choice == 1:
        for o in m.opset_import:
            o.version = rng.choice([0, 1, 6, 999, -1])
        return "opset version changed"
    if choice == 2:
        node = _pick(rng, m.graph.node)
        if node is None:
            return None
        node.domain = rng.choice(["com.microsoft", "ai.onnx.ml", "x" * 50, "ai.onnx"])
        return f"{node.name} domain {node.domain[:20]}"
    m.ir_version = rng.choice([0, 1, 3, 99, -1])
    return f"ir_version {m.ir_version}"


def _m_rank(m: Any, rng: random.Random) -> str | None:
    vinfo = _pick(rng, m.graph.input)
    if vinfo is None:
        return None
    dims = vinfo.type.tensor_type.shape.dim
    if rng.random() < 0.5 and len(dims):
        del dims[rng.randrange(len(dims))]
        return f"input '{vinfo.name}' loses a dimension"
    d = dims.add()
    if rng.random() < 0.5:
        d.dim_param = "H"
    else:
        d.dim_value = rng.choice([1, 3, 7])
    return f"input '{vinfo.name}' gains a dimension"


def _m_dim_param(m: Any, rng: random.Random) -> str | None:
    vinfo = _pick(rng, m.graph.input)
    if vinfo is None:
        return None
    dims = vinfo.type.tensor_type.shape.dim
    if not dims:
        return None
    d = dims[rng.randrange(len(dims))]
    d.dim_param = rng.choice(["H", "", "\u00e9"])
    return f"input '{vinfo.name}' has a symbolic dimension"


def _m_initializer_data(m: Any, rng: random.Random) -> str | None:
    init = _pick(rng, m.graph.initializer)
    if init is None:
        return None
    choice = rng.randrange(4)
    if choice == 0 and init.raw_data:
        init.raw_data = init.raw_data[: rng.randrange(len(init.raw_data))]
        return f"initializer '{init.name}' raw data truncated"
    if choice == 1:
        init.data_type = rng.choice([0, 8, 9, 14, 16, 99])
        return f"initializer '{init.name}' data_type {init.data_type}"
    if choice == 2 and init.dims:
        dims = list(init.dims)
        dims[rng.randrange(len(dims))] += rng.choice([1, -1, 7])
        del init.dims[:]
        init.dims.extend(dims)
        return f"initializer '{init.name}' dims {dims} no longer match its data"
    init.ClearField("raw_data")
    del init.float_data[:]
    return f"initializer '{init.name}' without data"


def _m_external_data(m: Any, rng: random.Random) -> str | None:
    from onnx import TensorProto

    init = _pick(rng, m.graph.initializer)
    if init is None:
        return None
    init.ClearField("raw_data")
    init.data_location = TensorProto.EXTERNAL
    del init.external_data[:]
    e = init.external_data.add()
    e.key = "location"
    e.value = rng.choice(["../../etc/passwd", "/etc/passwd", "missing.bin", "a/../../../x"])
    if rng.random() < 0.5:
        e2 = init.external_data.add()
        e2.key, e2.value = "length", str(rng.choice([HUGE, 16, -1]))
    return f"initializer '{init.name}' external data at {e.value}"


def _m_node_io(m: Any, rng: random.Random) -> str | None:
    node = _pick(rng, m.graph.node)
    if node is None:
        return None
    choice = rng.randrange(4)
    if choice == 0:
        del node.input[:]
        return f"{node.name} has no inputs"
    if choice == 1:
        del node.output[:]
        return f"{node.name} has no outputs"
    if choice == 2:
        node.input.extend(node.input[:1] * rng.randint(1, 5))
        return f"{node.name} has extra inputs"
    node.output.append(rng.choice(["", "extra_out", node.output[0] if node.output else "o"]))
    return f"{node.name} has an extra output"


def _m_swap_nodes(m: Any, rng: random.Random) -> str | None:
    nodes = list(m.graph.node)
    if len(nodes) < 2:
        return None
    i, j = sorted(rng.sample(range(len(nodes)), 2))
    a, b = copy.deepcopy(nodes[i]), copy.deepcopy(nodes[j])
    m.graph.node[i].CopyFrom(b)
    m.graph.node[j].CopyFrom(a)
    return f"nodes {i} and {j} swapped (not topological)"


def _m_names(m: Any, rng: random.Random) -> str | None:
    nodes = list(m.graph.node)
    if not nodes:
        return None
    name = rng.choice(["", "same", "/", "a" * 5000, "\u202e\u00e9", "../../x", "0", "_"])
    for n in rng.sample(nodes, min(len(nodes), rng.randint(1, 3))):
        n.name = name
    return f"node names {name[:10]!r}"


def _m_subgraph(m: Any, rng: random.Random) -> str | None:
    from onnx import TensorProto, helper

    node = _pick(rng, m.graph.node)
    if node is None or not node.input or not node.output:
        return None
    body = helper.make_graph(
        [helper.make_node("Identity", [node.input[0]], ["z"])],
        "body",
        [],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, None)],
    )
    new = helper.make_node("If", [node.input[0]], list(node.output), then_branch=body)
    new.attribute.append(helper.make_attribute("else_branch", body))
    node.CopyFrom(new)
    return "an If node with subgraphs"


def _m_string_tensor(m: Any, rng: random.Random) -> str | None:
    from onnx import helper

    init = _pick(rng, m.graph.initializer)
    if init is None or not 0 < int(np.prod(init.dims, dtype=np.float64)) < 100_000:
        return None
    t = helper.make_tensor(init.name, 8, list(init.dims), [b"x"] * int(np.prod(init.dims)))
    init.CopyFrom(t)
    return f"initializer '{init.name}' holds strings"


ONNX_MUTATORS: dict[str, Callable[[Any, random.Random], str | None]] = {
    "remove_initializer": _m_remove_initializer,
    "garbage_op_type": _m_garbage_op,
    "huge_dim": _m_huge_dim,
    "negative_dim": _m_negative_dim,
    "wrong_attr_type": _m_wrong_attr_type,
    "extreme_attr_ints": _m_extreme_attr_ints,
    "cycle": _m_cycle,
    "dangling_input": _m_dangling,
    "duplicate_output": _m_duplicate_output,
    "empty_graph": _m_empty_graph,
    "huge_tensor": _m_huge_tensor,
    "int_initializer_values": _m_int_initializer_values,
    "drop_attribute": _m_drop_attribute,
    "unknown_attribute": _m_unknown_attribute,
    "graph_outputs": _m_graph_outputs,
    "graph_inputs": _m_graph_inputs,
    "elem_type": _m_elem_type,
    "opset": _m_opset,
    "rank": _m_rank,
    "dim_param": _m_dim_param,
    "initializer_data": _m_initializer_data,
    "external_data": _m_external_data,
    "node_io": _m_node_io,
    "swap_nodes": _m_swap_nodes,
    "names": _m_names,
    "subgraph": _m_subgraph,
    "string_tensor": _m_string_tensor,
}


def mutate_model(data: bytes, rng: random.Random, n: int = 1) -> tuple[bytes, str]:
    """Apply ``n`` protobuf-level mutations to a serialized model."""
    import onnx

    m = onnx.ModelProto()
    m.ParseFromString(data)
    done = []
    names = list(ONNX_MUTATORS)
    for _ in range(n):
        for _attempt in range(8):
            name = rng.choice(names)
            what = ONNX_MUTATORS[name](m, rng)
            if what is not None:
                done.append(what)
                break
    return m.SerializeToString(), "; ".join(done) or "unchanged"


def onnx_cases(seed: int, count: int) -> Iterator[tuple[str, bytes, str]]:
    """Yield ``(base model, mutated bytes, description)``: structural, byte-level or both."""
    rng = random.Random(seed)
    bases = base_models()
    names = list(bases)
    mutators = list(ONNX_MUTATORS)
    for i in range(count):
        base = rng.choice(names)
        data = bases[base]
        kind = rng.random()
        if i < len(mutators) * 2:  # every structural mutator at least twice, first
            import onnx

            m = onnx.ModelProto()
            m.ParseFromString(data)
            what = ONNX_MUTATORS[mutators[i % len(mutators)]](m, rng) or "unchanged"
            data = m.SerializeToString()
        elif kind < 0.45:
            data, what = mutate_model(data, rng, rng.choice([1, 1, 2, 3]))
        elif kind < 0.9:
            parts = []
            for _ in range(rng.choice([1, 1, 1, 2, 4])):
                data, w = mutate_bytes(data, rng)
                parts.append(w)
            what = "bytes: " + ", ".join(parts)
        else:
            data, what = mutate_model(data, rng, 1)
            data, w = mutate_bytes(data, rng)
            what += "; bytes: " + w
        yield base, data, what


# ------------------------------------------------------------------------------------------
# command lines
# ------------------------------------------------------------------------------------------

#: Commands never fuzzed: they run other programs, edit files or replay history.
EXCLUDED_COMMANDS = frozenset(
    {"shell", "!", "history", "alias", "macro", "edit", "run_pyscript", "run_script", "py", "ipy"}
)

VALUES = [
    "0", "1", "-1", "3", "7", "64", "1e308", "-1e308", "nan", "inf", "-inf", "10**12",
    "99999999999999999999999", "0x10", "-0", "3.5", "1_000", "", "true", "none", "None",
    "minmax", "mse", "kl", "percentile:99.9", "percentile:", "percentile:200", "percentile:-1",
    "SQ8", "sq8", "POW2", "L", "RGB", "P", "uint8", "int16", "float32", "object", "complex64",
    "U10", "fuse_gemm", "fold_batchnorm", "nosuchpass",
]  # fmt: skip
PATHS = [
    "model.onnx", "calib", "calib/*.png", "calib/*.nothing", "test", "bad.png", "missing.onnx",
    "nodir/x.npz", "out.npz", "/", ".", "..", "~", "text.onnx", "calib/calib_0000_3.png",
    "empty", "labels.csv", "model.onnx.npz", "./calib/", "*", "**", "[", "a b", "/dev/null",
    "/proc/self/mem", "/etc/passwd",
]  # fmt: skip
QUOTES = ['"', "'", '"unterminated', "'x: x/255'", '"x: x/128-1"', '""', "''", '"a b"', "\\"]
UNICODE = ["é", "模型", "🙂", "\u202e", "\u200b", "Ω≈ç√", "\ufeff", "ß" * 50, "\t"]
EXPRESSIONS = [
    '"x: x/128-1"', "\"__import__('os').system('id')\"", '"x.__class__"', '"lambda: 0"',
    '"x: x/0"', '"x: x**x"', '"x: (x/255 - 0.5)/0.5"', '"x: [x]"', '"open(\'/etc/passwd\')"',
    '"x: x ** 10**9"', '"(" * 200', '"x: sqrt(-1)"', '"x: y"', '"x: exec(\'1\')"',
    '"x: eval(\'1\')"', '"x: globals()"', '"lambda x, y: x"', '"x: x if x else 1"', "x:x/255",
]  # fmt: skip
SELECTORS = ["0", "0:3", "_conv1_Conv", "_fc*", "99", "-1", "a:b", ",", "0,2", "3:1", "*", "_"]
SETTINGS = [
    "input_norm_func", "input_divisor", "input_offset", "input_transpose", "graph_name",
    "model_directory", "tensor_directory", "model_file", "batch_size", "float_backend",
    "nosuch", "echo", "quiet", "timing", "max_completion_table_items",
]  # fmt: skip


def command_vocabulary(app: Any) -> dict[str, list[str]]:
    """Map each fuzzable command of ``app`` to its option strings (from its argparse parser)."""
    vocab: dict[str, list[str]] = {}
    for name in app.get_visible_commands():
        if name in EXCLUDED_COMMANDS:
            continue
        opts: list[str] = []
        func = app.get_command_func(name)
        parser = app.command_parsers.get(func) if func is not None else None
        if parser is not None:
            opts = [s for a in parser._actions for s in a.option_strings if s not in ("-h",)]
        vocab[name] = opts
    return vocab


def _token(rng: random.Random, opts: list[str], cmd: str) -> str:
    r = rng.random()
    if cmd == "set" and r < 0.3:
        return rng.choice(SETTINGS)
    if cmd in ("show", "qshow") and r < 0.3:
        return rng.choice(SELECTORS)
    if opts and r < 0.5:
        return rng.choice(opts)
    pool = rng.choice([VALUES, VALUES, PATHS, PATHS, QUOTES, UNICODE, EXPRESSIONS, SELECTORS])
    return rng.choice(pool)


def command_lines(seed: int, count: int, vocab: dict[str, list[str]]) -> Iterator[str]:
    """Yield random command lines built from the shell's vocabulary (seeded)."""
    rng = random.Random(seed)
    names = sorted(vocab)
    for _ in range(count):
        r = rng.random()
        if r < 0.85:
            cmd = rng.choice(names)
        elif r < 0.95:
            cmd = rng.choice(["opn", "aquant2", "@", "@@", "?", "", "SHOW", "é", "quit", "eof"])
        else:
            cmd = rng.choice(UNICODE + QUOTES)
        opts = vocab.get(cmd, [])
        toks = [cmd] + [_token(rng, opts, cmd) for _ in range(rng.choice([0, 1, 1, 2, 2, 3, 4, 6]))]
        line = " ".join(toks)
        if rng.random() < 0.05:
            line = line + " ; show"  # two commands in one line (cmd2 terminator)
        if rng.random() < 0.03:
            line = line.replace(" ", "\t")
        yield line


# ------------------------------------------------------------------------------------------
# image files
# ------------------------------------------------------------------------------------------


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares ``width x height`` pixels but holds almost no data (a bomb header)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def _pil_bytes(img: Any, fmt: str, **kw: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _npy_bytes(arr: Any, allow_pickle: bool = False) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=allow_pickle)
    return buf.getvalue()


def fixed_image_cases() -> list[tuple[str, bytes]]:
    """Handcrafted hostile inputs: ``(file name, bytes)``; names carry a label for validate."""
    from PIL import Image

    good_png = sorted(CALIB_DIR.glob("*.png"))[0].read_bytes()
    rgb = Image.open(io.BytesIO(good_png)).convert("RGB")
    arr = np.asarray(rgb)
    cases: list[tuple[str, bytes]] = [
        ("truncated_half_1.png", good_png[: len(good_png) // 2]),
        ("truncated_header_1.png", good_png[:20]),
        ("truncated_sig_1.png", good_png[:4]),
        ("wrong_header_1.png", b"GIF89a" + good_png[6:]),
        ("jpeg_named_png_1.png", _pil_bytes(rgb, "JPEG")),
        ("zero_size_1.png", b""),
        ("zero_size_1.jpg", b""),
        ("one_by_one_1.png", _pil_bytes(Image.new("RGB", (1, 1)), "PNG")),
        ("huge_declared_1.png", _png_header_only(100_000, 100_000)),
        ("huge_wide_1.png", _png_header_only(2**31 - 1, 1)),
        ("zero_dims_1.png", _png_header_only(0, 0)),
        ("gray_1.png", _pil_bytes(rgb.convert("L"), "PNG")),
        ("rgba_1.png", _pil_bytes(rgb.convert("RGBA"), "PNG")),
        ("palette_1.png", _pil_bytes(rgb.convert("P"), "PNG")),
        ("palette_transp_1.png", _pil_bytes(rgb.convert("P"), "PNG", transparency=0)),
        ("bilevel_1.png", _pil_bytes(rgb.convert("1"), "PNG")),
        ("la_1.png", _pil_bytes(rgb.convert("LA"), "PNG")),
        ("int16_1.png", _pil_bytes(Image.fromarray(arr[..., 0].astype(np.uint16) * 250), "PNG")),
        ("cmyk_1.jpg", _pil_bytes(rgb.convert("CMYK"), "JPEG")),
        ("big_1.png", _pil_bytes(rgb.resize((640, 480)), "PNG")),
        ("text_1.png", b"this is not an image\n"),
        ("text_1.jpg", b"<html>not a jpeg</html>\n"),
        ("text_1.bmp", b"BM" + b"\x00" * 10),
        ("bad_crc_1.png", good_png[:29] + bytes([good_png[29] ^ 0xFF]) + good_png[30:]),
        ("empty_1.npy", b""),
        ("header_only_1.npy", _npy_bytes(np.zeros((3, 32, 32), np.float32))[:128]),
        ("object_1.npy", _npy_bytes(np.array([{"a": 1}, None], dtype=object), allow_pickle=True)),
        ("object_str_1.npy", _npy_bytes(np.array(["rm -rf"], dtype=object), allow_pickle=True)),
        ("strings_1.npy", _npy_bytes(np.array(["abc", "def"]))),
        ("complex_1.npy", _npy_bytes(np.zeros((3, 32, 32), np.complex64))),
        ("nan_1.npy", _npy_bytes(np.full((3, 32, 32), np.nan, np.float32))),
        ("inf_1.npy", _npy_bytes(np.full((3, 32, 32), np.inf, np.float32))),
        ("zero_len_1.npy", _npy_bytes(np.zeros((0,), np.float32))),
        ("scalar_1.npy", _npy_bytes(np.float32(3.0))),
        ("wrong_shape_1.npy", _npy_bytes(np.zeros((5, 7), np.float32))),
        ("hwc_1.npy", _npy_bytes(arr.astype(np.float32))),
        ("chw_1.npy", _npy_bytes(arr.transpose(2, 0, 1).astype(np.uint8))),
        ("batched_1.npy", _npy_bytes(arr.transpose(2, 0, 1)[None].astype(np.float32))),
        ("bool_1.npy", _npy_bytes(np.ones((3, 32, 32), bool))),
        ("structured_1.npy", _npy_bytes(np.zeros(3, dtype=[("a", "f4"), ("b", "i4")]))),
        ("fortran_1.npy", _npy_bytes(np.asfortranarray(arr.transpose(2, 0, 1).astype(np.float32)))),
        (
            "huge_header_1.npy",
            b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, "
            b"'shape': (1000000000000,), }".ljust(118)
            + b"\n",
        ),
        ("raw_wrong_size_1.raw", b"\x00" * 100),
        ("raw_ok_1.raw", arr.transpose(2, 0, 1).astype(np.uint8).tobytes()),
        ("raw_empty_1.raw", b""),
    ]
    return cases


def image_cases(seed: int, count: int) -> list[tuple[str, bytes]]:
    """The fixed cases, then byte mutations of real PNG/JPEG/BMP/NPY files up to ``count``."""
    from PIL import Image

    rng = random.Random(seed)
    cases = fixed_image_cases()
    files = sorted(CALIB_DIR.glob("*.png"))[:8]
    rgb = Image.open(files[0]).convert("RGB")
    seeds = {
        "png": [f.read_bytes() for f in files],
        "jpg": [_pil_bytes(rgb, "JPEG")],
        "bmp": [_pil_bytes(rgb, "BMP")],
        "npy": [_npy_bytes(np.asarray(rgb).transpose(2, 0, 1).astype(np.float32))],
    }
    i = 0
    while len(cases) < count:
        ext = rng.choice(["png", "png", "png", "jpg", "bmp", "npy"])
        data = rng.choice(seeds[ext])
        for _ in range(rng.choice([1, 1, 2, 3])):
            data, _what = mutate_bytes(data, rng)
        cases.append((f"mut{i:04d}_{rng.randrange(10)}.{ext}", data))
        i += 1
    return cases[:count] if count >= len(fixed_image_cases()) else cases


# ------------------------------------------------------------------------------------------
# state files (save_state JSON + .npz)
# ------------------------------------------------------------------------------------------

ESCAPES = ["../../etc/passwd", "/etc/passwd", "..", "", "a/../../b.npz", "\x00.npz", "~/x.npz"]


def _json_paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.append((*prefix, k))
            out.extend(_json_paths(v, (*prefix, k)))
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:20]):
            out.append((*prefix, i))
            out.extend(_json_paths(v, (*prefix, i)))
    return out


def _get_parent(doc: Any, path: tuple[Any, ...]) -> tuple[Any, Any]:
    obj = doc
    for k in path[:-1]:
        obj = obj[k]
    return obj, path[-1]


_WRONG_VALUES: list[Any] = [
    None, "", "x", -1, 0, 1.5, 10**30, -(10**30), float("1e308"), [], {}, [1, 2], {"a": 1},
    True, "../../etc/passwd", "NaN", 2**63, "\u202e",
]  # fmt: skip


def mutate_state_json(doc: Any, rng: random.Random) -> tuple[Any, str]:
    """One structural mutation of a parsed state document (a deep copy is returned)."""
    doc = copy.deepcopy(doc)
    paths = _json_paths(doc)
    kind = rng.choice(
        ["delete", "delete", "wrong", "wrong", "huge", "version", "escape", "escape", "root"]
    )
    if kind == "root" or not paths:
        return rng.choice([[], None, "state", 1, {}]), "root replaced"
    if kind == "version":
        keys = [p for p in paths if "version" in str(p[-1]).lower()]
        if keys:
            parent, k = _get_parent(doc, rng.choice(keys))
            v = parent[k]
            parent[k] = (v + rng.choice([1, 100])) if isinstance(v, int) else rng.choice([99, "9"])
            return doc, f"{k} = {parent[k]!r}"
        kind = "wrong"
    if kind == "escape":
        strs = [p for p in paths if isinstance(_get_parent(doc, p)[0][p[-1]], str)]
        npz = [p for p in strs if str(_get_parent(doc, p)[0][p[-1]]).endswith(".npz")]
        target = rng.choice(npz or strs or paths)
        parent, k = _get_parent(doc, target)
        parent[k] = rng.choice(ESCAPES)
        return doc, f"{'/'.join(map(str, target))} = {parent[k]!r}"
    target = rng.choice(paths)
    parent, k = _get_parent(doc, target)
    where = "/".join(map(str, target))
    if kind == "delete":
        del parent[k]
        return doc, f"delete {where}"
    if kind == "huge":
        parent[k] = rng.choice([10**12, -(10**12), 2**64, 1e308, -1e308])
        return doc, f"{where} = huge"
    parent[k] = rng.choice(_WRONG_VALUES)
    return doc, f"{where} = {parent[k]!r}"


def npz_mutations(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """Byte mutations of an .npz, or hostile replacements (pickled object array, empty zip)."""
    r = rng.random()
    if r < 0.1:
        buf = io.BytesIO()
        np.savez(buf, a=np.array([{"x": 1}], dtype=object))
        return buf.getvalue(), "npz with a pickled object array"
    if r < 0.15:
        return b"", "empty npz"
    if r < 0.2:
        buf = io.BytesIO()
        np.savez(buf)
        return buf.getvalue(), "npz with no arrays"
    return mutate_bytes(data, rng)


def state_json_text_mutation(text: str, rng: random.Random) -> tuple[str, str]:
    """Mutate the JSON text itself (invalid JSON, duplicated keys, deep nesting)."""
    r = rng.random()
    if r < 0.2:
        return "[" * 100_000 + "]" * 100_000, "deeply nested JSON"
    if r < 0.3:
        return text.replace("{", '{"dup": 1, "dup": {},', 1), "extra keys"
    data, what = mutate_bytes(text.encode("utf-8"), rng)
    return data.decode("utf-8", errors="replace"), what


def json_dump(doc: Any) -> str:
    """Serialize a (possibly hostile) document the way a state file is written."""
    return json.dumps(doc, allow_nan=True)


def state_cases(
    seed: int, count: int, json_text: str, npz: bytes
) -> Iterator[tuple[str, bytes, str]]:
    """Yield ``(json text, npz bytes, description)`` mutations of a good saved state.

    Half of the npz mutations also fix the JSON's recorded SHA-256, as a hostile file would, so
    the array parser itself is exercised and not only the checksum.
    """
    import hashlib

    rng = random.Random(seed)
    doc = json.loads(json_text)
    for _ in range(count):
        r = rng.random()
        if r < 0.55:
            new, what = mutate_state_json(doc, rng)
            if rng.random() < 0.3:
                new, w2 = mutate_state_json(new, rng) if isinstance(new, dict) else (new, "")
                what += "; " + w2
            yield json_dump(new), npz, what
        elif r < 0.7:
            text, what = state_json_text_mutation(json_text, rng)
            yield text, npz, what
        else:
            data, what = npz_mutations(npz, rng)
            new = copy.deepcopy(doc)
            arrays = new.get("arrays") if isinstance(new, dict) else None
            if isinstance(arrays, dict) and rng.random() < 0.5:
                arrays["sha256"] = hashlib.sha256(data).hexdigest()
                what += " (checksum updated)"
            yield json_dump(new), data, "npz: " + what
