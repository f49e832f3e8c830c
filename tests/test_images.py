import io

import numpy as np
import pytest
from PIL import Image

from charlib.images import CORRUPT, EMPTY, NOT_IMAGE, TRUNCATED, BadImage, decode, fit_square

from conftest import glyph, png_bytes

LIGHT = glyph(65, dark_on_light=True)  # AlphaNum style
WHITE_ON_BLACK = 255 - LIGHT


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
