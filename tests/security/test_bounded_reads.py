"""Bounded reads of untrusted input files (issue 24): no hang, no unbounded memory, one line.

Every file a user names (model, external data, image, ``.npy``/``.raw`` input, ``dump`` input,
calibration folder entry, script, labels file) goes through :mod:`nnshell.safeio`. These tests
give each reader what used to hang it or fill memory:

* ``/dev/zero`` and a link to it (a device: read for ever, 17 GB RSS before the fix);
* a FIFO (opening or reading it blocks for ever);
* a sparse 3 GiB ``x.onnx`` (no disk used; must be refused by its size, without reading);
* external data pointing outside the model's folder (``../../etc/passwd``, ``/dev/zero``, links);
* a PNG whose header claims 100000x100000 pixels, and ``.npy`` headers claiming absurd shapes.

Subprocesses run with a timeout; in-process reads run under :func:`_deadline`, so a regression
fails the test instead of hanging the run.
"""

from __future__ import annotations

import ast
import contextlib
import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from nnshell import safeio
from nnshell.errors import ImageError, ModelFileError, NnshellError
from nnshell.importers.onnx_importer import load_onnx
from nnshell.input.images import InputOptions, expand_files, load_image
from nnshell.session import Session
from tests.conftest import CALIB_DIR, ROOT, SAMPLE_MODEL
from tests.helpers_models import tiny_conv_model

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX FIFOs")

#: Seconds any one refusal may take (they take well under one; a hang is caught by this).
TIMEOUT = 20
#: Peak RSS (KiB) a refused read may reach: the interpreter with numpy, onnx and cmd2 loaded.
#: Before the fix ``open /dev/zero`` grew to 17 GB and the sparse file to 3 GB.
MAX_RSS_KIB = 400 * 1024


# -- helpers -----------------------------------------------------------------------------------


@contextlib.contextmanager
def _deadline(seconds: int = TIMEOUT) -> Iterator[None]:
    """Fail (instead of hanging the test run) if the block takes longer than ``seconds``.

    SIGALRM interrupts a blocking ``open``/``read`` of a FIFO in the main thread, and the
    handler's exception ends it (PEP 475 retries only when the handler returns).
    """

    def expired(signum: int, frame: object) -> None:
        raise TimeoutError(f"still blocked after {seconds} s (a FIFO read hangs?)")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _one_line(exc: BaseException, *needles: str) -> str:
    """The error's text, checked to be one line that holds every needle."""
    text = str(exc)
    assert "\n" not in text and text.strip(), text
    for needle in needles:
        assert needle in text, text
    return text


#: Runs the command given as arguments and prints its peak RSS (KiB) as the last stdout line:
#: a fresh parent, so RUSAGE_CHILDREN holds that one child only (not earlier test children).
_MEASURE = (
    "import resource, subprocess, sys\n"
    f"p = subprocess.run(sys.argv[1:], timeout={TIMEOUT})\n"
    "sys.stdout.flush()\n"
    "print('MAXRSS', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, p.returncode)\n"
)


def _cli(*args: str, cwd: Path) -> tuple[subprocess.CompletedProcess[str], int, float]:
    """Run ``nnshell ARGS`` with a timeout; return the process, its peak RSS (KiB), seconds."""
    env = dict(os.environ, NO_COLOR="1", TERM="dumb", PYTHONPATH=str(ROOT))
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", _MEASURE, sys.executable, "-m", "nnshell", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=TIMEOUT + 10,
    )
    seconds = time.monotonic() - start
    *_, last = proc.stdout.strip().splitlines()
    tag, rss, code = last.split()
    assert tag == "MAXRSS"
    proc.returncode = int(code)
    return proc, int(rss), seconds


def _assert_one_error(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert proc.returncode == 1, proc
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and not ln.startswith("opened ")]
    assert len(lines) == 1 and "error:" in lines[0], proc.stderr
    for needle in needles:
        assert needle in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    return lines[0]


@pytest.fixture
def session() -> Session:
    s = Session()
    s.open(str(SAMPLE_MODEL))
    return s


# -- the model file, through the real CLI ------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("/dev/zero", "is a device"),
        ("zero.onnx", "is a device"),  # a symbolic link to /dev/zero
        ("fifo.onnx", "is a FIFO"),
        ("x.onnx", "over the 2.0 GiB limit"),  # sparse, 3 GiB
    ],
)
def test_open_refuses_devices_fifos_and_huge_files(tmp_path: Path, name: str, needle: str) -> None:
    (tmp_path / "zero.onnx").symlink_to("/dev/zero")
    os.mkfifo(tmp_path / "fifo.onnx")
    subprocess.run(["truncate", "-s", "3G", str(tmp_path / "x.onnx")], check=True)
    proc, rss, seconds = _cli("-c", f"open {name}", cwd=tmp_path)
    line = _assert_one_error(proc, "-c:1: error: model file", needle)
    assert seconds < TIMEOUT and rss < MAX_RSS_KIB, (line, rss, seconds)
    print(f"open {name}: {rss / 1024:.0f} MiB peak RSS, {seconds:.1f} s: {line}")


def test_sparse_model_limit_is_raisable_but_still_bounded(tmp_path: Path) -> None:
    """Above the default limit only by choice; the message names the variable that does it."""
    subprocess.run(["truncate", "-s", "3G", str(tmp_path / "x.onnx")], check=True)
    with pytest.raises(ModelFileError) as info:
        load_onnx(str(tmp_path / "x.onnx"))
    _one_line(info.value, "3.0 GiB", safeio.MODEL.env)


# -- external data -----------------------------------------------------------------------------


def _external_model(folder: Path, location: str = "w.bin", constant: bool = False) -> Path:
    """The tiny conv model with its weights in ``folder/w.bin``; tensor ``w`` (or, with
    ``constant``, an extra Constant node's value) points at ``location``."""
    folder.mkdir(parents=True, exist_ok=True)
    model = onnx.load(str(tiny_conv_model(folder / "inline.onnx")))
    tensors = list(model.graph.initializer)
    if constant:
        value = numpy_helper.from_array(np.arange(4, dtype=np.float32), "k")
        model.graph.node.append(helper.make_node("Constant", [], ["k"], value=value))
        tensors.append(model.graph.node[-1].attribute[0].t)
    blob = b""
    for t in tensors:
        raw = t.raw_data
        where = location if t.name == ("k" if constant else "w") else "w.bin"
        t.ClearField("raw_data")
        t.data_location = TensorProto.EXTERNAL
        for key, value in (("location", where), ("offset", len(blob)), ("length", len(raw))):
            entry = t.external_data.add()
            entry.key, entry.value = key, str(value)
        blob += raw
    (folder / "w.bin").write_bytes(blob)
    path = folder / "m.onnx"
    path.write_bytes(model.SerializeToString())
    return path


def test_external_data_inside_the_folder_loads(tmp_path: Path) -> None:
    path = _external_model(tmp_path / "m")
    got, want = load_onnx(str(path)), load_onnx(str(tmp_path / "m" / "inline.onnx"))
    for name in ("w", "b"):
        np.testing.assert_array_equal(got.tensors[name].const, want.tensors[name].const)
    # the layout onnx itself writes (one file, offsets and lengths) loads the same
    model = onnx.load(str(tmp_path / "m" / "inline.onnx"))
    saved = tmp_path / "o" / "m.onnx"
    saved.parent.mkdir()
    onnx.save_model(
        model, str(saved), save_as_external_data=True, location="d.bin", size_threshold=0
    )
    assert (saved.parent / "d.bin").exists()
    again = load_onnx(str(saved))
    np.testing.assert_array_equal(again.tensors["w"].const, want.tensors["w"].const)


def test_external_data_total_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _external_model(tmp_path / "m")
    size = (tmp_path / "m" / "w.bin").stat().st_size
    monkeypatch.setenv(safeio.EXTERNAL_DATA.env, str(size - 1))
    with pytest.raises(ModelFileError) as info:  # one file above the limit: by its size
        load_onnx(str(path))
    _one_line(info.value, "w.bin' is 448 bytes, over the 447 bytes limit", safeio.EXTERNAL_DATA.env)
    # every tensor reading the whole file: each range fits, their sum does not (no length =
    # to the end of the file, as onnx allows)
    model = onnx.load_model(str(path), load_external_data=False)
    for t in model.graph.initializer:
        for entry in list(t.external_data):
            if entry.key in ("offset", "length"):
                t.external_data.remove(entry)
    path.write_bytes(model.SerializeToString())
    monkeypatch.setenv(safeio.EXTERNAL_DATA.env, str(size))
    with pytest.raises(ModelFileError) as info:
        load_onnx(str(path))
    _one_line(info.value, "external data over the 448-byte limit", safeio.EXTERNAL_DATA.env)


@pytest.mark.parametrize(
    ("location", "needle"),
    [
        ("../../etc/passwd", "outside the model's folder"),
        ("sub/../../w.bin", "outside the model's folder"),
        ("/dev/zero", "absolute path '/dev/zero'"),
        ("/etc/passwd", "absolute path"),
        ("zero.bin", "a link that leads outside the model's folder"),  # link to /dev/zero
        ("out.bin", "a link that leads outside the model's folder"),  # link to ../secret
        ("fifo.bin", "is a FIFO"),
        ("missing.bin", "not found"),
        ("", "has no usable location"),
    ],
)
@pytest.mark.parametrize("constant", [False, True], ids=["initializer", "constant-node"])
def test_external_data_escaping_or_odd_is_refused(
    tmp_path: Path, location: str, needle: str, constant: bool
) -> None:
    folder = tmp_path / "models" / "m"
    path = _external_model(folder, location, constant)
    (tmp_path / "models" / "secret").write_bytes(b"s" * 4096)
    (folder / "zero.bin").symlink_to("/dev/zero")
    (folder / "out.bin").symlink_to("../secret")
    os.mkfifo(folder / "fifo.bin")
    with _deadline(), pytest.raises(ModelFileError) as info:
        load_onnx(str(path))
    _one_line(info.value, "external data of tensor", needle)


@pytest.mark.parametrize(
    ("offset", "length", "needle"),
    [(0, 10**12, "claims bytes 0..1000000000000"), (10**9, 4, "claims bytes"), (-1, 4, "offset")],
)
def test_external_data_range_must_lie_in_the_file(
    tmp_path: Path, offset: int, length: int, needle: str
) -> None:
    path = _external_model(tmp_path / "m")
    model = onnx.load_model(str(path), load_external_data=False)
    (w,) = [t for t in model.graph.initializer if t.name == "w"]
    for entry in w.external_data:
        entry.value = {"offset": str(offset), "length": str(length)}.get(entry.key, entry.value)
    path.write_bytes(model.SerializeToString())
    with pytest.raises(ModelFileError) as info:
        load_onnx(str(path))
    _one_line(info.value, "tensor 'w'", needle)


def test_external_data_refusal_through_cli(tmp_path: Path) -> None:
    path = _external_model(tmp_path / "a" / "b", "../../etc/passwd")
    proc, _, _ = _cli("-c", f"open {path}", cwd=tmp_path)
    _assert_one_error(proc, "tensor 'w'", "'../../etc/passwd', outside the model's folder")


# -- images, .npy, .raw and dump inputs --------------------------------------------------------


@pytest.mark.parametrize("name", ["f.png", "f.jpg", "f.npy", "f.raw"])
def test_fifo_as_dump_input(session: Session, tmp_path: Path, name: str) -> None:
    os.mkfifo(tmp_path / name)
    with _deadline(), pytest.raises(ImageError) as info:
        session.dump(str(tmp_path / name))
    _one_line(info.value, name, "is a FIFO (named pipe)")


@pytest.mark.parametrize("name", ["z.png", "z.bmp", "z.npy", "z.raw"])
def test_dev_zero_link_as_image(session: Session, tmp_path: Path, name: str) -> None:
    (tmp_path / name).symlink_to("/dev/zero")
    with _deadline(), pytest.raises(ImageError) as info:
        session.dump(str(tmp_path / name))
    _one_line(info.value, name, "is a device")


def test_sparse_image_refused_by_size(session: Session, tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    with open(path, "wb") as fh:
        fh.truncate(3 << 30)
    with _deadline(), pytest.raises(ImageError) as info:
        session.dump(str(path))
    _one_line(info.value, "big.png", "over the 256.0 MiB limit for an image")


def test_fifo_dump_through_cli(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "in.png")
    proc, _, _ = _cli("-c", f"open {SAMPLE_MODEL}", "-c", "dump in.png -P o.npz", cwd=tmp_path)
    _assert_one_error(proc, "-c:2: error: image 'in.png' is a FIFO")
    assert not (tmp_path / "o.npz").exists()


def _png_claiming(path: Path, width: int, height: int, depth: int = 8) -> str:
    """A 1x1 PNG whose IHDR claims ``width x height`` (CRC fixed): a decompression bomb header."""
    from PIL import Image

    Image.new("I;16" if depth == 16 else "L", (1, 1)).save(path)
    data = bytearray(path.read_bytes())
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))
    return str(path)


@pytest.mark.parametrize("side", [10_000, 100_000])  # PIL's warning band; far beyond its error
@pytest.mark.parametrize("depth", [8, 16])  # the fast plain-PNG path; PIL's own reader
def test_png_bomb_header_is_refused_without_allocating(
    session: Session, tmp_path: Path, side: int, depth: int
) -> None:
    path = _png_claiming(tmp_path / "bomb.png", side, side, depth)
    start = time.monotonic()
    with pytest.raises(ImageError) as info:
        session.dump(path)
    _one_line(info.value, "'bomb.png'", "decompression bomb")
    assert time.monotonic() - start < 5  # 10^10 pixels were neither allocated nor decoded


def _npy_with_header(path: Path, header: str, payload: bytes = b"") -> str:
    """An ``.npy`` file (format 1.0) with the given header dict text and data bytes."""
    text = header + " " * (-(10 + len(header) + 1) % 64) + "\n"
    path.write_bytes(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode() + payload)
    return str(path)


@pytest.mark.parametrize(
    ("header", "needle"),
    [
        ("{'descr': '<f8', 'fortran_order': False, 'shape': (100000, 100000, 100000), }", "claims"),
        ("{'descr': '<f4', 'fortran_order': False, 'shape': (2**70,), }", "not a readable .npy"),
        (f"{{'descr': '<f4', 'fortran_order': False, 'shape': ({2**70},), }}", "claims shape"),
        ("{'descr': '<f4', 'fortran_order': False, 'shape': (-5, 3), }", "claims shape (-5, 3)"),
        ("{'descr': '<f4', 'fortran_order': False, 'shape': (1e30,), }", "not a readable .npy"),
        ("{'descr': 'V99999999999999999999', 'fortran_order': False, 'shape': (1,), }", "'h.npy'"),
        ("{'descr': '|O', 'fortran_order': False, 'shape': (10,), }", "numeric array"),
        ("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 8, 8), }", "holds 0 bytes"),
    ],
)
def test_npy_absurd_headers(tmp_path: Path, header: str, needle: str) -> None:
    path = _npy_with_header(tmp_path / "h.npy", header, b"\0" * 16)
    with _deadline(), pytest.raises(ImageError) as info:
        load_image(path, InputOptions(), (3, 8, 8))
    _one_line(info.value, "'h.npy'", needle.replace("holds 0", "holds 16"))


def test_npy_header_size_is_capped(tmp_path: Path) -> None:
    path = _npy_with_header(tmp_path / "h.npy", "{'descr': '<f4', 'shape': (1,), " + " " * 20000)
    with pytest.raises(ImageError) as info:
        load_image(path, InputOptions(), (1,))
    _one_line(info.value, "'h.npy' is not a readable .npy array")


def test_npy_still_reads_every_layout(tmp_path: Path) -> None:
    """The header-first reader gives what np.load gives (C and Fortran order, big-endian)."""
    arr = np.arange(3 * 8 * 8, dtype=np.float32).reshape(3, 8, 8)
    for name, a in (("c", arr), ("f", np.asfortranarray(arr)), ("b", arr.astype(">f4"))):
        np.save(tmp_path / f"{name}.npy", a)
        np.testing.assert_array_equal(
            load_image(str(tmp_path / f"{name}.npy"), InputOptions(), (3, 8, 8)), arr
        )


# -- calibration folders, globs, labels and scripts --------------------------------------------


def _calib_with(tmp_path: Path, odd: str) -> Path:
    """A copy of three calibration images plus one non-regular entry ``zz_9.png``."""
    folder = tmp_path / "calib"
    folder.mkdir()
    for src in sorted(CALIB_DIR.iterdir())[:3]:
        (folder / src.name).write_bytes(src.read_bytes())
    odd_path = folder / "zz_9.png"
    if odd == "fifo":
        os.mkfifo(odd_path)
    elif odd == "device":
        odd_path.symlink_to("/dev/zero")
    else:
        odd_path.symlink_to(folder / "nowhere.png")
    return folder


@pytest.mark.parametrize("odd", ["fifo", "device", "dangling"])
def test_calibration_folder_with_odd_entry_is_refused_naming_it(tmp_path: Path, odd: str) -> None:
    """Refused like an unreadable image (not silently skipped: the data set would shrink)."""
    folder = _calib_with(tmp_path, odd)
    for spec in (str(folder), str(folder / "*.png"), str(folder / "zz_9.png")):
        with _deadline(), pytest.raises(ImageError) as info:
            expand_files([spec])
        _one_line(info.value, "zz_9.png")
    (folder / "sub.png").mkdir()  # a folder named like an image is still just skipped
    (folder / "zz_9.png").unlink()
    assert len(expand_files([str(folder)])) == 3


def test_fifo_in_calibration_folder_through_cli(tmp_path: Path) -> None:
    folder = _calib_with(tmp_path, "fifo")
    proc, _, _ = _cli(
        "-c", f"open {SAMPLE_MODEL}", "-c", "fusions --scale8", "-c", "aquant calib", cwd=tmp_path
    )
    _assert_one_error(proc, "-c:3: error: image", "zz_9.png", "is a FIFO")
    assert folder.exists()


def test_fifo_as_labels_file(session: Session, tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "labels.csv")
    with _deadline(), pytest.raises(ImageError) as info:
        session.validate([str(CALIB_DIR)], labels_csv=str(tmp_path / "labels.csv"))
    _one_line(info.value, "labels file", "is a FIFO")


@pytest.mark.parametrize("kind", ["fifo", "device", "huge"])
def test_script_file_through_cli(tmp_path: Path, kind: str) -> None:
    script = tmp_path / "s.nnscript"
    if kind == "fifo":
        os.mkfifo(script)
    elif kind == "device":
        script.symlink_to("/dev/zero")
    else:
        subprocess.run(["truncate", "-s", "1G", str(script)], check=True)
    proc, rss, _ = _cli("-s", str(script), cwd=tmp_path)
    needle = {"fifo": "is a FIFO", "device": "is a device", "huge": "over the 16.0 MiB limit"}
    _assert_one_error(proc, f"{script}:0: error: script", needle[kind])
    assert rss < MAX_RSS_KIB


# -- every reader goes through safeio ----------------------------------------------------------

#: Calls that open or read a path themselves. ``Image.open`` is allowed in images.py, where it
#: is given the descriptor safeio opened; ``os.open``/``os.fdopen`` in the modules that manage
#: descriptors. nnshell/state/, state_files.py and nnshell/codegen (C outputs and templates, never
#: user input) are bounded by their owners.
_READERS = {"open", "io.open", "builtins.open", "os.open", "os.fdopen", "Image.open"}
_READER_SUFFIXES = ("np.load", "np.fromfile", "np.memmap", "onnx.load", "onnx.load_model")
_ALLOWED = {
    ("nnshell/safeio.py", "os.open"),
    ("nnshell/safeio.py", "os.fdopen"),
    ("nnshell/atomic.py", "os.fdopen"),
    ("nnshell/input/images.py", "os.fdopen"),
    ("nnshell/input/images.py", "Image.open"),
    # the package's own attribute-type table (a fixed path inside nnshell, not a user's file)
    ("nnshell/importers/onnx_proto.py", "_ATTR_TABLE_PATH.read_text"),
}
#: Modules that open files only to write them (atomic.py) or manage their own bounded reads.
_EXEMPT = ("nnshell/state/", "nnshell/state/files.py", "nnshell/atomic.py", "nnshell/codegen/")


def _name(func: ast.expr) -> str:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return f"{_name(func.value)}.{func.attr}"
    return ""


def test_no_reader_bypasses_safeio() -> None:
    found = []
    for path in sorted((ROOT / "nnshell").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith(_EXEMPT):
            continue
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            name = _name(node.func)
            reads = name in _READERS or name.endswith(_READER_SUFFIXES)
            reads |= name.endswith((".read_bytes", ".read_text")) and not name.startswith("safeio")
            if reads and (rel, name) not in _ALLOWED:
                found.append(f"{rel}:{node.lineno}: {name}")
    assert not found, "\n".join(found)


def test_errors_are_nnshell_errors() -> None:
    """safeio raises the caller's error type, so the shell prints it as one line."""
    with pytest.raises(NnshellError):
        safeio.check_regular("/dev/null", "image", ImageError)
    with pytest.raises(ImageError, match="is a device"):
        safeio.open_fd("/dev/zero", "image", safeio.IMAGE, ImageError)
