"""Photos and scans: `photos` renders a character as a user hands it in, `ink` finds it again."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
from PIL import Image

from charlib.data import photos
from charlib.vision import images, ink, preprocess
from charlib.vision.strokes import SCRIPTED, Strokes, rasterize


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


# Real photos: borders, neighbours, faint pencil, thin pens and small characters in wide crops.


def on_paper(glyph, frame, top, left, side, *, paper=200.0, contrast=150.0, noise=0.0, seed=0):
    """A grey photo (dark ink on light paper) of a 28 px glyph drawn `side` px tall at top/left."""
    rng = np.random.default_rng(seed)
    page = np.full((frame[0] + side, frame[1] + side), paper, np.float32)  # a glyph may overhang
    big = np.asarray(Image.fromarray(glyph).resize((side, side), Image.Resampling.BICUBIC))
    page[top : top + side, left : left + side] -= contrast * (big / 255.0)
    page = page[: frame[0], : frame[1]] + (rng.normal(0, noise, frame) if noise else 0)
    return np.clip(page, 0, 255).astype(np.uint8)


def ring(side=28, thickness=3.0, radius=9.0):
    """A white-on-black 'O': a ring of the given stroke thickness."""
    yy, xx = np.mgrid[:side, :side] - (side - 1) / 2
    r = np.hypot(yy / 1.25, xx)
    return (np.clip(thickness / 2 - np.abs(r - radius) + 0.5, 0, 1) * 255).astype(np.uint8)


def holes(mask: np.ndarray) -> int:
    """How many enclosed holes a mask's ink has."""
    from scipy import ndimage

    return ndimage.label(ndimage.binary_fill_holes(mask) & ~mask)[1]


def test_cell_borders_at_the_edges_of_a_crop_are_not_ink():
    """A digit in a register's cell: the border lines at the crop's edges are the paper's."""
    seven = glyph28("7")
    photo = on_paper(seven, (300, 260), 60, 50, 170, noise=3)
    clean = seen(photo)
    bordered = photo.copy()
    bordered[278:284, :] = 70  # the cell's bottom border, across the whole crop
    bordered[:, 6:11] = 80  # its left border
    bordered[:3, :] = 90  # the top border, cut by the crop's edge
    got = seen(bordered)
    assert got is not None and overlap(got, clean) > 0.8


def test_a_border_the_character_touches_is_still_taken_away():
    one = glyph28("1")
    photo = on_paper(one, (300, 300), 30, 60, 240, noise=2)
    clean = seen(photo)
    touching = photo.copy()
    touching[262:268, :] = 60  # the bottom border, which the 1's foot reaches
    got = seen(touching)
    assert got is not None and overlap(got, clean) > 0.7


def test_a_neighbours_fragment_cut_by_the_edge_is_dropped():
    letter = glyph28("A")
    photo = on_paper(letter, (260, 260), 45, 45, 170)
    clean = seen(photo)
    nextdoor = photo.copy()
    neighbour = on_paper(glyph28("O"), (260, 260), 50, 150, 160)
    nextdoor[:, 225:] = neighbour[:, 225:]  # the left edge of the next character, cut by the crop
    got = seen(nextdoor)
    assert got is not None and overlap(got, clean) > 0.8


def test_faint_pencil_on_grey_paper_is_found():
    """A pale 0 on grey paper: little contrast, but far above the noise."""
    zero = ring()
    photo = on_paper(zero, (400, 300), 80, 40, 220, paper=170, contrast=20, noise=1.5)
    got = seen(photo)
    assert got is not None and overlap(got, seen(on_paper(zero, (400, 300), 80, 40, 220))) > 0.6


def test_a_stroke_fading_to_faint_stays_one_stroke():
    """An O whose left half is pressed lightly: it stays a whole O, not a ')' ."""
    zero = ring().astype(np.float32)
    zero[:, :14] *= 0.3
    photo = on_paper(zero.astype(np.uint8), (300, 300), 40, 40, 220, noise=1.5)
    got = seen(photo)
    assert got is not None and overlap(got, seen(on_paper(ring(), (300, 300), 40, 40, 220))) > 0.6


def test_thin_strokes_are_thickened_without_closing_loops_or_merging():
    """A thin 8 with small loops and two close strokes beside it, brought to the training width."""
    from scipy import ndimage

    mask = np.zeros((200, 200), bool)
    yy, xx = np.mgrid[:200, :200]
    for cy in (50, 66):  # an 8: two small loops, one pixel-thin stroke each
        r = np.hypot(yy - cy, xx - 60)
        mask |= np.abs(r - 7) < 1.2
    mask[30:130, 150:153] = True  # a pair of strokes close together
    mask[30:130, 160:163] = True
    evened = ink.even_strokes(mask, ink.DEFAULT_WIDTH) > 127
    assert holes(mask) == 2 and holes(evened) == 2
    assert ndimage.label(evened)[1] == ndimage.label(mask)[1]
    width = ink.measure(ndimage.distance_transform_edt(evened), evened)
    assert width > ink.measure(ndimage.distance_transform_edt(mask), mask) * 1.5


def test_a_small_character_in_a_wide_crop_keeps_its_shape():
    """A 0 a fortieth of the width of a long strip: found at a resolution that keeps its hole."""
    photo = on_paper(ring(thickness=2.0), (300, 4000), 100, 1900, 96, noise=2)
    got = seen(photo)
    assert got is not None and holes(got > 100) == 1
    assert overlap(got, preprocess.model_view(ring(), size=28)) > 0.5


def test_a_faint_scan_cut_to_28_px_is_stretched_and_framed_like_the_training_images():
    """A pale, thin 7 in a 28 px crop (a scanned form's box): read at full white, framed."""
    crop = (glyph28("7").astype(np.float32) * 0.45).astype(np.uint8)  # ink peaks at 115 of 255
    paper = 255 - crop  # as scanned: grey strokes on white
    got = seen(paper)
    assert got is not None and got.max() == 255
    assert overlap(got, glyph28("7")) > 0.6
    emnist_like = glyph28("L")  # a training image itself is taken exactly as it is
    assert np.array_equal(seen(emnist_like), emnist_like)


def test_a_faint_crop_keeps_its_faintest_strokes_and_loses_its_neighbours_fragment():
    """Pencil barely over the paper (peak 30 of 255) is a character; a fragment of the next
    character cut by the crop's right edge is not."""
    faint = (glyph28("O").astype(np.float32) * 30 / 255).astype(np.uint8)
    got = seen(255 - faint)
    assert got is not None and overlap(got, seen(255 - glyph28("O"))) > 0.6
    crop = (glyph28("L").astype(np.float32) * 0.6).astype(np.uint8)
    with_next = crop.copy()
    with_next[8:16, 25:] = 120  # the next character's bar, cut by the edge
    assert overlap(seen(255 - with_next), seen(255 - crop)) > 0.9


def test_a_heavy_glyph_filling_most_of_its_crop_is_taken_as_it_is():
    """A thick-penned 28 px training image whose ink covers more than half of it (EMNIST's test
    split has such an M) is still a crop on a black frame: fitted as it is, never "nothing
    drawn" because `ink.find` took its ink for paper."""
    heavy = np.zeros((28, 28), np.uint8)
    heavy[2:26, 2:12] = 255  # two thick legs and a thick bar: an H covering 64% of the crop
    heavy[2:26, 16:26] = 255
    heavy[11:17, 12:16] = 255
    assert np.count_nonzero(heavy == 0) * 2 < heavy.size
    assert np.array_equal(seen(heavy), images.fit_square(heavy, 28))
