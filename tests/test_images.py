"""Tests of input loading with NNTool's options (nnshell.input.images)."""

from __future__ import annotations

import dataclasses
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nnshell.errors import ExpressionError, ImageError, SettingError, UsageError
from nnshell.input import images
from nnshell.input.images import (
    InputOptions,
    LoadReport,
    expand_files,
    iter_batches,
    label_from_name,
    load_image,
)

NORM = "x: (x/255-0.5)/0.5"


def _rgb(seed: int = 0, h: int = 32, w: int = 32) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _save(path: Path, arr: np.ndarray) -> str:
    Image.fromarray(arr).save(path)
    return str(path)


# --- InputOptions -----------------------------------------------------------------------------


def test_options_are_plain_frozen_json_data() -> None:
    opts = InputOptions(transpose=True, divisor=255.0, offset=-0.5, norm_func=NORM, mode="RGB")
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.divisor = 2.0  # type: ignore[misc]
    text = json.dumps(opts.to_dict())
    assert InputOptions.from_dict(json.loads(text)) == opts
    for value in opts.to_dict().values():
        assert value is None or isinstance(value, (str, int, float, bool))


def test_with_overrides_skips_none_and_rejects_unknown() -> None:
    base = InputOptions(divisor=255.0, mode="L")
    new = base.with_overrides(divisor=None, offset=-1.0, transpose=True)
    assert new == InputOptions(divisor=255.0, offset=-1.0, mode="L", transpose=True)
    assert base.with_overrides() is base
    with pytest.raises(SettingError, match="bogus"):
        base.with_overrides(bogus=1)
    with pytest.raises(SettingError, match="bogus"):
        InputOptions.from_dict({"bogus": 1})


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"divisor": 0}, UsageError, "-D 0"),
        ({"height": 0}, UsageError, "-H 0"),
        ({"width": -3}, UsageError, "-W -3"),
        ({"mode": "XYZ"}, UsageError, "-M XYZ"),
        ({"raw_dtype": "notatype"}, UsageError, "-F notatype"),
        ({"raw_dtype": "U4"}, UsageError, "-F U4"),
        ({"norm_func": "x.__class__"}, ExpressionError, "attribute access"),
    ],
)
def test_bad_options_fail_on_construction(kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        InputOptions(**kwargs)


# --- load_image -------------------------------------------------------------------------------


def test_rgb_png_is_auto_transposed_and_normalised(tmp_path: Path) -> None:
    arr = _rgb()
    path = _save(tmp_path / "img_3.png", arr)
    report = LoadReport()
    out = load_image(path, InputOptions(norm_func=NORM), (3, 32, 32), report)
    assert out.shape == (3, 32, 32) and out.dtype == np.float32
    want = ((arr.astype(np.float32) / 255 - 0.5) / 0.5).transpose(2, 0, 1)
    np.testing.assert_allclose(out, want, rtol=1e-6, atol=1e-6)
    assert report.loaded == 1 and report.auto_transposed == 1
    assert report.first_auto_transposed == path


def test_explicit_transpose_is_not_reported_as_auto(tmp_path: Path) -> None:
    arr = _rgb()
    path = _save(tmp_path / "a.png", arr)
    report = LoadReport()
    out = load_image(path, InputOptions(transpose=True), (3, 32, 32), report)
    np.testing.assert_array_equal(out, arr.transpose(2, 0, 1).astype(np.float32))
    assert report.auto_transposed == 0 and report.loaded == 1


def test_default_is_raw_pixels_and_hwc_model_is_left_alone(tmp_path: Path) -> None:
    arr = _rgb()
    path = _save(tmp_path / "a.png", arr)
    report = LoadReport()
    out = load_image(path, InputOptions(), (32, 32, 3), report)
    np.testing.assert_array_equal(out, arr.astype(np.float32))
    assert report.auto_transposed == 0


def test_transpose_on_hwc_model_is_an_error(tmp_path: Path) -> None:
    path = _save(tmp_path / "a.png", _rgb())
    with pytest.raises(ImageError, match="drop -T") as info:
        load_image(path, InputOptions(transpose=True), (32, 32, 3))
    assert "'a.png'" in info.value.message


def test_divisor_offset_then_norm_func(tmp_path: Path) -> None:
    arr = _rgb()
    path = _save(tmp_path / "a.png", arr)
    opts = InputOptions(divisor=128.0, offset=-1.0, norm_func="x: x*2")
    out = load_image(path, opts, (32, 32, 3))
    np.testing.assert_allclose(out, (arr / 128.0 - 1.0) * 2, rtol=1e-6, atol=1e-6)


def test_grayscale_layouts(tmp_path: Path) -> None:
    arr = _rgb()[..., 0]
    path = _save(tmp_path / "g.pgm", arr)
    want = arr.astype(np.float32)
    np.testing.assert_array_equal(load_image(path, InputOptions(), (1, 32, 32)), want[None])
    np.testing.assert_array_equal(load_image(path, InputOptions(), (32, 32, 1)), want[..., None])
    np.testing.assert_array_equal(load_image(path, InputOptions(), (32, 32)), want)
    # -T has nothing to do on a grayscale image and is not an error
    out = load_image(path, InputOptions(transpose=True), (1, 32, 32))
    np.testing.assert_array_equal(out, want[None])


def test_rgb_into_grayscale_model_needs_mode(tmp_path: Path) -> None:
    arr = _rgb()
    path = _save(tmp_path / "c.png", arr)
    with pytest.raises(ImageError) as info:
        load_image(path, InputOptions(), (1, 32, 32))
    msg = info.value.message
    assert "'c.png'" in msg and "(32, 32, 3)" in msg and "(1, 32, 32)" in msg
    assert info.value.hint is not None and "-M" in info.value.hint
    out = load_image(path, InputOptions(mode="L"), (1, 32, 32))
    want = np.asarray(Image.fromarray(arr).convert("L"), dtype=np.float32)[None]
    np.testing.assert_array_equal(out, want)


def test_wrong_size_names_file_and_shapes(tmp_path: Path) -> None:
    path = _save(tmp_path / "big.png", _rgb(h=40, w=48))
    with pytest.raises(ImageError) as info:
        load_image(path, InputOptions(), (3, 32, 32))
    msg = info.value.message
    assert "'big.png'" in msg and "(40, 48, 3)" in msg and "(3, 32, 32)" in msg
    assert "-H/-W" in (info.value.hint or "")


def test_resize_with_height_and_width(tmp_path: Path) -> None:
    arr = _rgb(h=40, w=48)
    path = _save(tmp_path / "big.png", arr)
    out = load_image(path, InputOptions(height=32, width=32), (3, 32, 32))
    want = np.asarray(
        Image.fromarray(arr).resize((32, 32), Image.Resampling.BILINEAR), dtype=np.float32
    ).transpose(2, 0, 1)
    np.testing.assert_array_equal(out, want)
    # only -H given: the width comes from the model input
    assert load_image(path, InputOptions(height=32), (3, 32, 16)).shape == (3, 32, 16)
    # a resize that still does not fit is an error
    with pytest.raises(ImageError, match="big.png"):
        load_image(path, InputOptions(height=20, width=20), (3, 32, 32))


def test_palette_image_becomes_rgb(tmp_path: Path) -> None:
    arr = _rgb()
    path = tmp_path / "p.png"
    Image.fromarray(arr).convert("P").save(path)
    out = load_image(str(path), InputOptions(), (32, 32, 3))
    want = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)
    np.testing.assert_array_equal(out, want)


def test_npy_layouts(tmp_path: Path) -> None:
    hwc = np.random.default_rng(1).random((8, 8, 3)).astype(np.float32)
    np.save(tmp_path / "hwc.npy", hwc)
    np.save(tmp_path / "chw.npy", hwc.transpose(2, 0, 1))
    np.save(tmp_path / "batched.npy", hwc.transpose(2, 0, 1)[None])
    report = LoadReport()
    for name in ("hwc.npy", "chw.npy", "batched.npy"):
        out = load_image(str(tmp_path / name), InputOptions(divisor=2.0), (3, 8, 8), report)
        np.testing.assert_allclose(out, hwc.transpose(2, 0, 1) / 2)
    assert report.loaded == 3 and report.auto_transposed == 1


def test_npy_int_dtype_check_and_pickle_refused(tmp_path: Path) -> None:
    np.save(tmp_path / "i.npy", np.zeros((1, 4, 4), np.int16))
    out = load_image(str(tmp_path / "i.npy"), InputOptions(raw_dtype="int16"), (1, 4, 4))
    assert out.dtype == np.float32
    with pytest.raises(ImageError, match="holds int16"):
        load_image(str(tmp_path / "i.npy"), InputOptions(raw_dtype="uint8"), (1, 4, 4))
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ImageError, match="'obj.npy'"):
        load_image(str(tmp_path / "obj.npy"), InputOptions(), (1,))


def test_raw_file(tmp_path: Path) -> None:
    data = np.arange(2 * 3 * 4, dtype=np.int16).reshape(2, 3, 4)
    data.tofile(tmp_path / "d.raw")
    out = load_image(str(tmp_path / "d.raw"), InputOptions(raw_dtype="int16"), (2, 3, 4))
    np.testing.assert_array_equal(out, data.astype(np.float32))
    with pytest.raises(ImageError, match="'d.raw' has 48 bytes"):
        load_image(str(tmp_path / "d.raw"), InputOptions(), (2, 3, 4))


def test_truncated_png(tmp_path: Path) -> None:
    good = tmp_path / "good.png"
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (64, 64, 3), np.uint8)).save(good)
    data = good.read_bytes()
    bad = tmp_path / "half.png"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match=r"'half.png' is not a readable image"):
        load_image(str(bad), InputOptions(), (3, 64, 64))


def test_text_file_named_png(tmp_path: Path) -> None:
    path = tmp_path / "x.png"
    path.write_text("hello, not an image\n")
    with pytest.raises(ImageError, match=r"'x.png' is not a readable image"):
        load_image(str(path), InputOptions(), (3, 32, 32))


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    out, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        out.append((data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return out


def _png_bytes(chunks: list[tuple[bytes, bytes]], bad_crc: bytes = b"") -> bytes:
    out = b"\x89PNG\r\n\x1a\n"
    for cid, body in chunks:
        crc = 0 if cid == bad_crc else zlib.crc32(cid + body)
        out += struct.pack(">I", len(body)) + cid + body + struct.pack(">I", crc)
    return out


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA"])
def test_plain_png_reader_gives_pil_pixels(tmp_path: Path, mode: str) -> None:
    rng = np.random.default_rng(3)
    shape = (5, 7) if mode == "L" else (5, 7, len(mode))
    path = tmp_path / "a.png"
    Image.fromarray(rng.integers(0, 256, shape, np.uint8), mode).save(path)
    chunks = _png_chunks(path.read_bytes())
    (z,) = [body for cid, body in chunks if cid == b"IDAT"]
    split = tmp_path / "split.png"  # the image data over three IDAT chunks, a gAMA before them
    split.write_bytes(
        _png_bytes(
            [chunks[0], (b"gAMA", struct.pack(">I", 45455))]
            + [(b"IDAT", z[:3]), (b"IDAT", z[3:9]), (b"IDAT", z[9:])]
            + [chunks[-1]]
        )
    )
    pil = images._pil()
    for p in (path, split):
        plain = images._plain_png(str(p), pil)
        with Image.open(p) as ref:
            assert plain is not None and plain.mode == ref.mode == mode
            np.testing.assert_array_equal(np.asarray(plain), np.asarray(ref))


def test_other_pngs_are_left_to_pil(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    rgb = Image.fromarray(rng.integers(0, 256, (6, 6, 3), np.uint8))
    rgb.save(tmp_path / "rgb.png")
    chunks = _png_chunks((tmp_path / "rgb.png").read_bytes())
    rgb.convert("P").save(tmp_path / "palette.png")
    Image.fromarray(rng.integers(0, 65535, (6, 6), np.uint16)).save(tmp_path / "deep.png")
    rgb.save(tmp_path / "trns.png", transparency=(1, 2, 3))
    (tmp_path / "late_text.png").write_bytes(
        _png_bytes(chunks[:-1] + [(b"tEXt", b"k\x00v"), chunks[-1]])
    )
    (tmp_path / "idat_crc.png").write_bytes(_png_bytes(chunks, bad_crc=b"IDAT"))
    (tmp_path / "no_iend.png").write_bytes(_png_bytes(chunks[:-1]))
    pil = images._pil()
    for name in ("palette", "deep", "trns", "late_text", "idat_crc", "no_iend"):
        path = str(tmp_path / f"{name}.png")
        assert images._plain_png(path, pil) is None, name
        with Image.open(path) as ref:  # PIL's reader still decodes every one of them
            want = np.asarray(ref.convert("RGB") if ref.mode == "P" else ref, np.float32)
        np.testing.assert_array_equal(images._read_pil(path, InputOptions(), (6, 6)), want)


def _png_claiming(path: Path, width: int, height: int) -> str:
    """A valid 1x1 PNG whose IHDR is patched (with a correct CRC) to claim ``width x height``."""
    Image.new("L", (1, 1)).save(path)
    data = bytearray(path.read_bytes())
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))
    return str(path)


@pytest.mark.parametrize("side", [9000, 40000])  # above our limit; above PIL's own limit
def test_decompression_bomb_header(tmp_path: Path, side: int) -> None:
    path = _png_claiming(tmp_path / "bomb.png", side, side)
    with pytest.raises(ImageError, match="'bomb.png'.*decompression bomb"):
        load_image(path, InputOptions(), (1, side, side))


def test_pixel_limit_is_checked_before_decoding(tmp_path: Path, monkeypatch) -> None:
    path = _save(tmp_path / "a.png", _rgb())
    monkeypatch.setattr(images, "MAX_PIXELS", 32 * 32 - 1)
    with pytest.raises(ImageError, match="'a.png' is 32x32 pixels"):
        load_image(path, InputOptions(), (3, 32, 32))


def test_non_finite_normalisation_names_file(tmp_path: Path) -> None:
    arr = np.zeros((4, 4), np.uint8)
    path = _save(tmp_path / "z.png", arr)
    with pytest.raises(ExpressionError, match="'z.png'"):
        load_image(path, InputOptions(norm_func="x: log(x)"), (4, 4))


# --- expand_files -----------------------------------------------------------------------------


def test_directory_is_sorted_non_recursive_and_filtered(tmp_path: Path) -> None:
    for name in ("b_1.png", "a_2.JPG", "c.npy", "notes.txt", "d.bmp"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "e.png").write_bytes(b"")
    got = expand_files([str(tmp_path)])
    assert [Path(p).name for p in got] == ["a_2.JPG", "b_1.png", "c.npy", "d.bmp"]


def test_glob_and_spec_order(tmp_path: Path) -> None:
    for name in ("img_10.png", "img_2.png", "img_1.png", "other.png"):
        (tmp_path / name).write_bytes(b"")
    got = expand_files([str(tmp_path / "img_*.png"), str(tmp_path / "other.png")])
    assert [Path(p).name for p in got] == ["img_1.png", "img_10.png", "img_2.png", "other.png"]
    assert expand_files([str(tmp_path / "img_*.png")]) == got[:3]  # deterministic


def test_expand_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ImageError, match="no image files in '.*empty'"):
        expand_files([str(empty)])
    with pytest.raises(ImageError, match="'.*missing.png' does not exist"):
        expand_files([str(tmp_path / "missing.png")])
    with pytest.raises(ImageError, match="no image files match"):
        expand_files([str(tmp_path / "*.jpg")])
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ImageError, match="'.*notes.txt' is not a supported input file"):
        expand_files([str(tmp_path / "notes.txt")])
    with pytest.raises(ImageError, match="no input files"):
        expand_files([])


# --- iter_batches / labels --------------------------------------------------------------------


@pytest.mark.parametrize("workers", [1, None])
def test_iter_batches_order_and_sizes(tmp_path: Path, workers: int | None) -> None:
    files = [_save(tmp_path / f"{i:03d}_{i % 3}.png", _rgb(i, 8, 8)) for i in range(10)]
    opts = InputOptions(norm_func=NORM)
    report = LoadReport()
    batches = list(iter_batches(files, opts, (3, 8, 8), 4, report=report, workers=workers))
    assert [len(names) for names, _ in batches] == [4, 4, 2]
    assert [n for names, _ in batches for n in names] == files
    for names, batch in batches:
        assert batch.dtype == np.float32 and batch.shape == (len(names), 3, 8, 8)
        for name, item in zip(names, batch, strict=True):
            np.testing.assert_array_equal(item, load_image(name, opts, (3, 8, 8)))
    assert report.loaded == 10 and report.auto_transposed == 10


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"norm_func": NORM},
        {"divisor": 255.0, "offset": -0.5},
        {"norm_func": "x: clip(round(x/3), 5, 60) - sqrt(x)"},
        {"norm_func": "x: exp(x/255) - x**2"},  # computed batch by batch, not by table
        {"norm_func": "x: 1/x"},  # inf for 0: computed batch by batch, names the file
    ],
)
def test_batches_of_8bit_images_normalise_like_one_image(tmp_path: Path, kwargs: dict) -> None:
    arrays = [_rgb(i, 8, 8) for i in range(3)]
    arrays[0][arrays[0] == 0] = 1
    arrays[1][0, 0] = (0, 128, 255)  # 1/x is inf here: the error names 1.png
    files = [_save(tmp_path / f"{i}.png", a) for i, a in enumerate(arrays)]
    opts = InputOptions(**kwargs)
    try:
        want = np.stack([load_image(f, opts, (3, 8, 8)) for f in files])
    except ExpressionError as exc:
        assert "'1.png'" in exc.message
        with pytest.raises(ExpressionError) as got:
            list(iter_batches(files, opts, (3, 8, 8), 3))
        assert got.value.message == exc.message
        return
    (batch,) = [b for _, b in iter_batches(files, opts, (3, 8, 8), 3)]
    assert batch.dtype == np.float32
    np.testing.assert_array_equal(batch, want)


def test_iter_batches_errors(tmp_path: Path) -> None:
    good = _save(tmp_path / "a.png", _rgb(0, 8, 8))
    bad = tmp_path / "b.png"
    bad.write_text("nope")
    with pytest.raises(ImageError, match="'b.png'"):
        list(iter_batches([good, str(bad)], InputOptions(), (3, 8, 8), 2))
    with pytest.raises(UsageError):
        list(iter_batches([good], InputOptions(), (3, 8, 8), 0))
    assert list(iter_batches([], InputOptions(), (3, 8, 8))) == []


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("0123_7.png", 7),
        ("dir/cat_dog_12.jpg", 12),
        ("a_b_0.npy", 0),
        ("0123.png", None),
        ("img_x.png", None),
        ("img_.png", None),
        ("img_-1.png", None),
    ],
)
def test_label_from_name(name: str, label: int | None) -> None:
    assert label_from_name(name) == label


def test_decode_cache_reuses_and_notices_edits(tmp_path: Path) -> None:
    import os

    from nnshell.input.images import DecodeCache

    p = tmp_path / "a.png"
    Image.fromarray(np.full((8, 8, 3), 10, np.uint8)).save(p)
    cache = DecodeCache(max_bytes=1 << 20)
    opts = InputOptions()
    first = next(iter_batches([str(p)], opts, (3, 8, 8), cache=cache))[1]
    assert cache.nbytes > 0 and len(cache._items) == 1
    again = next(iter_batches([str(p)], opts, (3, 8, 8), cache=cache))[1]
    np.testing.assert_array_equal(first, again)
    Image.fromarray(np.full((8, 8, 3), 200, np.uint8)).save(p)  # edited: decoded again
    os.utime(p, ns=(os.stat(p).st_atime_ns, os.stat(p).st_mtime_ns + 1_000_000))
    edited = next(iter_batches([str(p)], opts, (3, 8, 8), cache=cache))[1]
    assert edited.min() == 200.0
    tiny = DecodeCache(max_bytes=3 * 8 * 8)  # room for exactly one image (8-bit pixels)
    for k in range(3):
        q = tmp_path / f"b{k}.png"
        Image.fromarray(np.full((8, 8, 3), k, np.uint8)).save(q)
        next(iter_batches([str(q)], opts, (3, 8, 8), cache=tiny))
    assert len(tiny._items) == 1 and tiny.nbytes <= tiny.max_bytes
