import functools
import io
import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile

from charlib.vision import images
from charlib.vision.images import (
    CORRUPT,
    EMPTY,
    NOT_IMAGE,
    TOO_LARGE,
    TRUNCATED,
    BadImage,
    decode,
    fit_square,
)

from conftest import glyph, png_bytes

LIGHT = glyph(65, dark_on_light=True)  # AlphaNum style
WHITE_ON_BLACK = 255 - LIGHT


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def bomb_png(width: int = 20000, height: int = 20000) -> bytes:
    """A valid all-black 8-bit grayscale PNG of width×height, built row by row (never in memory
    as pixels): 20000×20000 is 400 MB decoded but about 390 KB on disk, a decompression bomb."""
    return _png_of_black(width, height)


@functools.cache  # once per session and size (1.6 s for 20000×20000)
def _png_of_black(width: int, height: int) -> bytes:
    packer, row = zlib.compressobj(9), bytes(1 + width)  # filter byte 0, then black pixels
    body = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit gray, no interlace
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", body)
        + _chunk(b"IEND", b"")
    )


def save(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "BMP", "TIFF"])
@pytest.mark.parametrize("mode", ["L", "RGB", "P", "1"])
def test_formats_and_modes_become_white_on_black(fmt, mode):
    arr, inverted = decode(png_bytes(LIGHT, fmt, mode))
    assert arr.dtype == np.uint8 and arr.shape == LIGHT.shape
    assert inverted
    # Stroke pixels (dark in the file) are now bright; the frame is black.
    assert arr[LIGHT < 100].mean() > 200 and arr[0].max() < 60


def test_jpeg_is_close_to_source():
    arr, inverted = decode(png_bytes(LIGHT, "JPEG"))
    assert inverted
    assert np.abs(arr.astype(int) - WHITE_ON_BLACK).mean() < 12


def test_white_on_black_is_kept():
    arr, inverted = decode(png_bytes(WHITE_ON_BLACK))
    assert not inverted
    np.testing.assert_array_equal(arr, WHITE_ON_BLACK)


def test_16_bit_is_scaled_not_clipped():
    img = Image.fromarray(WHITE_ON_BLACK.astype(np.uint16) * 257)  # full 16-bit range
    assert img.mode.startswith("I;16")
    arr, _ = decode(save(img, "PNG"))
    np.testing.assert_array_equal(arr, WHITE_ON_BLACK)


def test_dark_ink_on_transparent_background():
    rgba = np.zeros((28, 28, 4), np.uint8)
    rgba[..., 3] = np.where(LIGHT < 128, 255, 0)  # opaque black strokes, clear elsewhere
    arr, _ = decode(save(Image.fromarray(rgba, "RGBA"), "PNG"))
    assert arr[LIGHT < 128].mean() > 200 and arr[LIGHT >= 128].mean() < 30


def test_white_ink_on_transparent_background():
    rgba = np.full((28, 28, 4), 255, np.uint8)
    rgba[..., 3] = np.where(LIGHT < 128, 255, 0)
    arr, _ = decode(save(Image.fromarray(rgba, "RGBA"), "PNG"))
    assert arr[LIGHT < 128].mean() > 200 and arr[LIGHT >= 128].mean() < 30


def test_exif_rotation_is_applied():
    wide = np.zeros((10, 30), np.uint8)
    wide[4:6, 2:28] = 255
    img = Image.fromarray(wide)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif)
    arr, _ = decode(buf.getvalue())
    assert arr.shape == (30, 10)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", EMPTY),
        (b"hello, this is a text file\n", NOT_IMAGE),
        (png_bytes(LIGHT)[:60], TRUNCATED),
    ],
)
def test_bad_files_have_reasons(data, reason):
    with pytest.raises(BadImage) as info:
        decode(data)
    assert info.value.reason == reason


def test_corrupt_png_body():
    data = bytearray(png_bytes(LIGHT))
    body = data.index(b"IDAT") + 8
    data[body : body + 20] = b"\x00" * 20  # damaged compressed data, intact header
    with pytest.raises(BadImage) as info:
        decode(bytes(data))
    assert info.value.reason in (CORRUPT, TRUNCATED)


def test_bomb_png_is_a_real_image():
    data = bomb_png(300, 200)
    arr, inverted = decode(data)
    assert arr.shape == (200, 300) and arr.max() == 0 and not inverted
    assert len(bomb_png()) < 1_000_000  # 20000×20000: small on disk, 400 MB as pixels


@pytest.mark.parametrize(
    "size",
    [
        (20000, 20000),  # past twice Pillow's limit: Image.open itself refuses it
        (10000, 10000),  # past Pillow's limit: Image.open warns
        (9000, 9000),  # under Pillow's limit, over ours
    ],
)
def test_huge_image_is_too_large_before_decoding(size, monkeypatch):
    loaded = []
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda img: loaded.append(img))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no DecompressionBombWarning may escape
        with pytest.raises(BadImage) as info:
            decode(bomb_png(*size))
    assert info.value.reason == TOO_LARGE and not loaded  # refused from the header alone


def test_own_limit_holds_without_pillows(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # e.g. another library switched it off
    with pytest.raises(BadImage, match=r"20000×20000 pixels, over the 64,000,000 limit") as info:
        decode(bomb_png())
    assert info.value.reason == TOO_LARGE


def test_a_48_megapixel_photo_passes():
    arr, _ = decode(bomb_png(8000, 6000))
    assert arr.shape == (6000, 8000)
    with pytest.raises(BadImage, match="8000×8001 pixels, over the 64,000,000 limit"):
        images.check_size((8000, 8001))


def test_fit_square_keeps_aspect_ratio():
    wide = np.zeros((10, 40), np.uint8)
    wide[3:7, :] = 255  # a full-width bar
    out = fit_square(wide, 20)
    assert out.shape == (20, 20)
    rows = np.flatnonzero(out.max(axis=1) > 100)
    cols = np.flatnonzero(out.max(axis=0) > 100)
    assert cols.min() == 0 and cols.max() == 19  # still full width
    assert 1 <= len(rows) <= 4 and abs(rows.mean() - 9.5) < 1.5  # thin and centred, not stretched


def test_fit_square_same_size_is_untouched():
    np.testing.assert_array_equal(fit_square(WHITE_ON_BLACK, 28), WHITE_ON_BLACK)
