"""Photos and scans: `photos` renders a character as a user hands it in, `ink` finds it again."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
from PIL import Image

from charlib import images, ink, photos, preprocess
from charlib.strokes import SCRIPTED, Strokes, rasterize


def glyph28(char: str) -> np.ndarray:
    """A scripted drawing as a 28 px white-on-black image, like a training image."""
    return preprocess.canonical(rasterize(SCRIPTED[char]), size=28)


def seen(x) -> np.ndarray | None:
    """What the model would see of any input (the Predictor's path, default fill and width)."""
    return preprocess.model_view(x, size=28)


def overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two 28 px images' ink."""
    ma, mb = a > 100, b > 100
    return float((ma & mb).sum() / max((ma | mb).sum(), 1))


DEGRADATIONS = [
    (),
    ("paper",),
    ("shadow",),
    ("noise",),
    ("blur", "jpeg"),
    ("small",),
    ("blue_pen",),
    ("thin_pen",),
    ("thick_pen",),
    ("rotation",),
    ("lined",),
    ("squared",),
    ("paper", "shadow", "noise", "blue_pen", "lined"),
]


@pytest.mark.parametrize("degradations", DEGRADATIONS, ids=lambda d: "+".join(d) or "scan")
def test_a_photo_is_seen_like_the_clean_drawing(degradations):
    for i, char in enumerate("A7LO"):
        clean = glyph28(char)
        got = seen(photos.render(clean, np.random.default_rng(i), degradations))
        assert got is not None, char
        others = [overlap(got, glyph28(c)) for c in "A7LO" if c != char]
        # the photo's ink matches its own drawing, and better than any other drawing
        if "rotation" not in degradations:  # a turned page moves the ink, by design
            assert overlap(got, clean) > 0.45, char
        assert overlap(got, clean) > max(others), char


def test_render_is_seeded_and_checks_its_arguments():
    g = glyph28("A")
    one = photos.render(g, np.random.default_rng(3), ("paper", "noise"))
    assert one == photos.render(g, np.random.default_rng(3), ("paper", "noise"))
    assert one != photos.render(g, np.random.default_rng(4), ("paper", "noise"))
    with Image.open(io.BytesIO(one)) as img:
        assert img.format == "PNG" and img.size == photos.FRAME and img.mode == "RGB"
    with Image.open(io.BytesIO(photos.render(g, np.random.default_rng(0), ("jpeg",)))) as img:
        assert img.format == "JPEG"
    with pytest.raises(ValueError, match="unknown degradation.*'smudge'"):
        photos.render(g, np.random.default_rng(0), ("smudge",))
    with pytest.raises(ValueError, match="one pen"):
        photos.render(g, np.random.default_rng(0), ("thin_pen", "thick_pen"))


def test_a_large_photo_is_decoded_small_and_read():
    data = photos.render(glyph28("7"), np.random.default_rng(0), ("large", "paper", "noise"))
    with Image.open(io.BytesIO(data)) as img:
        assert img.size == photos.LARGE_FRAME
    decoded = images.decode(data, max_side=ink.WORK_SIDE)[0]
    # the JPEG decodes at a quarter of its size, never under WORK_SIDE on the longer side
    assert ink.WORK_SIDE <= max(decoded.shape) < 2 * ink.WORK_SIDE
    assert overlap(seen(data), glyph28("7")) > 0.45
    start = time.perf_counter()
    preprocess.to_image(data)
    assert time.perf_counter() - start < 5  # generous: a full-size decode path would be slower


def test_blank_paper_uniform_colour_and_noise_have_no_ink():
    rng = np.random.default_rng(0)
    blank = np.zeros((28, 28), np.uint8)
    pages = [
        photos.render(blank, np.random.default_rng(s), d)
        for s in range(4)
        for d in ((), ("paper",), ("noise",), ("paper", "noise"), ("paper", "noise", "jpeg"))
    ]
    uniform = [np.full((480, 640, 3), c, np.uint8) for c in (0, 128, 255, (200, 60, 40))]
    noise = [
        rng.integers(0, 256, (480, 640), dtype=np.uint8),
        rng.integers(0, 256, (300, 300, 3), dtype=np.uint8),
    ]
    for i, x in enumerate(pages + uniform + noise):
        assert seen(x) is None, i


def test_the_polarity_survives_a_shadow_over_most_of_the_frame():
    """Dark ink in a shadow that covers two thirds of the page: the frame's median is dark."""
    clean = glyph28("L")
    ink_mask = np.asarray(Image.fromarray(clean).resize((240, 240), Image.Resampling.BICUBIC))
    page = np.full((480, 640), 230.0)
    page[:, 200:] = 100.0  # shadowed paper, most of the frame
    page[120:360, 300:540] -= (page[120:360, 300:540] - 20) * (ink_mask / 255.0)
    decoded_as_is = images.to_white_on_black(page.astype(np.uint8))[1] is False
    assert decoded_as_is  # the frame's median alone would keep dark ink on light paper
    assert overlap(seen(page.astype(np.uint8)), clean) > 0.6


def test_ruling_needs_several_long_thin_lines():
    flat = np.zeros((480, 640), np.float32)
    flat[40::40, :] = 60.0  # 11 ruled lines
    assert ink.ruling(flat)[40::40].mean() > 50 and ink.ruling(flat)[20::40].max() == 0
    one = np.zeros((480, 640), np.float32)
    one[:, 300:305] = 200.0  # a tall thin "1" is a character, not a ruled page
    assert ink.ruling(one).max() == 0


def test_specks_and_dust_are_dropped_but_an_i_keeps_its_dot():
    mask = np.zeros((300, 300), bool)
    mask[100:250, 140:150] = True  # the stem of an i
    mask[70:82, 139:151] = True  # its dot, close above
    mask[10:13, 10:13] = True  # dust far away
    mask[290:292, 200:202] = True
    kept = ink.drop_specks(mask)
    assert kept[75, 145] and kept[150, 145] and not kept[11, 11] and not kept[291, 201]


def test_thin_strokes_are_brought_to_the_training_width():
    thin = Strokes([[(140, 30), (140, 250)], [(60, 250), (220, 250)]], pen=0.01)
    mask = rasterize(thin) > 127
    from scipy import ndimage

    evened = ink.even_strokes(mask, 0.165) > 127
    width = ink.measure(ndimage.distance_transform_edt(evened), evened)
    own = ink.at_stroke_side(mask.astype(np.uint8) * 255)
    before = ink.measure(ndimage.distance_transform_edt(own), own)
    assert before < ink.THIN * 0.165 and 0.12 < width < 0.22


def test_stroke_width_of_training_images():
    stack = np.stack([glyph28(c) for c in "A7LO"])
    width = ink.stroke_width(stack)
    assert 0.05 < width < 0.4
    assert ink.stroke_width(stack[:0]) == ink.DEFAULT_WIDTH
