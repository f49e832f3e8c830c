"""Find the ink in a photo or a scan: the character alone, white on black, at the training width.

`find(img)` takes a grayscale picture as it was taken (a photo, a scan, the pad's strokes, a
drawing larger than the training images) and returns only its ink, white on black:
1. reduce: at most WORK_SIDE pixels on the longer side (area-averaged), so a 12-megapixel photo
   costs what a small one does;
2. polarity: the paper is most of the picture; when its typical pixel is lighter than
   DARK_PAGE the ink is dark (a page in shadow stays above it, the pad's canvas is below);
3. background: the paper's level (a grey opening wider than any stroke: paper tone, lighting
   gradient, soft shadow), divided out, so ink reads as its contrast against the paper under it;
4. ruling: ruled or squared lines (thin, straight, at least RULE_LINES of them across the page)
   are subtracted;
5. threshold: Otsu's (scikit-image), never under INK_FLOOR of the ink's own contrast; an image
   whose best ink does not stand out from the noise is blank;
6. specks: dust and specks away from the character are dropped (an i's dot stays);
7. strokes: the ink's box at STROKE_SIDE px, strokes thickened or thinned when their width
   is far from the training images' (`stroke_width`, recorded when a run trains).
`drawn(img)` is steps 6 and 7 alone, for the pad's own raster. `preprocess.canonical` frames
the result as it frames every other input.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from charlib.codes import INK_LEVEL

# Photos are reduced to at most this many pixels on their long side before anything else.
WORK_SIDE = 640
# The paper's level is what is left after removing anything narrower than this share of the side.
PAPER_WINDOW = 0.25
# A picture whose typical pixel is darker than this is a dark page with light ink.
DARK_PAGE = 64
# Ink must stand out from the paper by this much (of 255) and by NOISE_RATIO × the noise.
MIN_CONTRAST, NOISE_RATIO = 40.0, 8.0
# Ink is at least this share of the ink's own contrast above the paper (ruled lines go first).
INK_FLOOR = 0.35
# Ruled lines: thinner than RULE_THICK of the image side, across RULE_SPAN of the page, and at
# least RULE_LINES of them (one long thin stroke is a character's, not the paper's).
RULE_THICK, RULE_SPAN, RULE_LINES = 0.012, 0.6, 3
# A separate blob under this share of the largest one, or farther from it than its size, is dust.
SPECK_SHARE = 0.04
# Less ink than this share of the image (and than MIN_PIXELS) is nothing drawn.
BLANK_SHARE, MIN_PIXELS = 2e-4, 4
# Stroke width: 4 × the ink's mean distance to the paper, over the ink's longer side, measured
# with that side at STROKE_SIDE px. DEFAULT_WIDTH is EMNIST's median, for runs that do not record
# their own; ink thinner than THIN× or thicker than THICK× the run's width is brought to it.
STROKE_SIDE, DEFAULT_WIDTH, THIN, THICK = 96, 0.165, 0.85, 1.6


def find(img: np.ndarray, *, width: float = DEFAULT_WIDTH) -> np.ndarray:
    """A grayscale photo or scan, as taken -> its ink alone, white on black (black when none)."""
    from scipy import ndimage
    from skimage.filters import threshold_otsu

    work = reduce(img, WORK_SIDE).astype(np.float32)
    if paper_is_light(work):
        work = 255.0 - work
    paper = paper_level(work)
    # Ink's contrast relative to the paper's brightness: a shadow dims paper and ink alike.
    flat = np.clip((work - paper) / np.maximum(255.0 - paper, 16.0), 0, None) * 255.0
    flat = np.clip(flat - ruling(flat), 0, None)
    sigma = max(1.0, max(flat.shape) / 640)
    smooth = ndimage.gaussian_filter(flat, sigma)
    contrast = float(smooth.max() - np.median(smooth[::3, ::3]))  # over the paper's typical level
    if contrast < max(MIN_CONTRAST, NOISE_RATIO * noise_level(flat) / (2 * np.sqrt(np.pi) * sigma)):
        return np.zeros(work.shape, np.uint8)
    level = max(float(threshold_otsu(smooth)), INK_FLOOR * contrast)
    return kept_strokes(drop_specks(smooth > level, np.clip(smooth - level, 0, None)), width)


def drawn(img: np.ndarray, *, width: float = DEFAULT_WIDTH) -> np.ndarray:
    """The pad's raster (white strokes on a black canvas): steps 6 and 7 alone, in ~1 ms.

    There is no paper, light or ruling to take away, so the ink is every pixel over half
    white; strokes are brought to the training width as a photo's are.
    """
    return kept_strokes(drop_specks(img > 127), width)


def kept_strokes(mask: np.ndarray, width: float) -> np.ndarray:
    """The ink left after the specks, at the training width; all black when too little is left."""
    if mask.sum() < max(MIN_PIXELS, BLANK_SHARE * mask.size):
        return np.zeros(mask.shape, np.uint8)
    return even_strokes(mask, width)


def noise_level(img: np.ndarray) -> float:
    """The pixel noise's standard deviation, from neighbours' differences (robust to edges)."""
    diff = np.diff(img[::2], axis=1).ravel()
    return 1.4826 * float(np.median(np.abs(diff - np.median(diff)))) / np.sqrt(2)


def reduce(img: np.ndarray, side: int) -> np.ndarray:
    """Shrink (area-averaged) so the longer side is at most `side` pixels; uint8 out."""
    h, w = img.shape
    if max(h, w) <= side:
        return img
    scale = side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(img).resize(size, Image.Resampling.BOX), np.uint8)


def paper_is_light(img: np.ndarray) -> bool:
    """Whether the page is light (dark ink on it): the paper is most of the picture, and even in
    shadow or poor light a page of paper stays above DARK_PAGE; a blackboard, a dark screen or
    the pad's black canvas do not."""
    return float(np.median(img[::2, ::2])) > DARK_PAGE


def paper_level(img: np.ndarray) -> np.ndarray:
    """The paper's level at every pixel of a white-on-black float image, ink removed.

    A grey opening (a minimum then a maximum over PAPER_WINDOW of the side) removes every
    stroke narrower than the window, however thick, and keeps the paper's tone, lighting
    gradients and soft shadows (an opening keeps a ramp as it is); at a quarter of the size.
    """
    from scipy import ndimage

    small = reduce_float(img, 4)
    window = max(3, round(max(small.shape) * PAPER_WINDOW))
    # Point-symmetric padding continues a gradient past the edge, so the opening keeps it there.
    padded = np.pad(small, window, mode="reflect", reflect_type="odd")
    level = ndimage.grey_opening(padded, size=(window, window))[window:-window, window:-window]
    return to_size(ndimage.gaussian_filter(level, 1.0, mode="nearest"), img.shape)


def reduce_float(img: np.ndarray, factor: int) -> np.ndarray:
    """A float image shrunk by an integer factor (area-averaged)."""
    h, w = img.shape
    size = (max(1, w // factor), max(1, h // factor))
    return np.asarray(Image.fromarray(img, "F").resize(size, Image.Resampling.BOX), np.float32)


def to_size(level: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A float map resized (bilinear) to `shape`."""
    full = Image.fromarray(np.ascontiguousarray(level, np.float32), "F")
    return np.asarray(full.resize((shape[1], shape[0]), Image.Resampling.BILINEAR), np.float32)


def ruling(flat: np.ndarray) -> np.ndarray:
    """The ruled or squared lines of the page in a flattened image (zero where there are none).

    A line is thin (under RULE_THICK of the side) and runs straight across most of the page
    (RULE_SPAN): a grey opening along it keeps long runs, minus an opening across it that keeps
    only thick ones (a character's bar); what remains, spans the page and comes with at least
    RULE_LINES - 1 others is the paper's ruling.
    """
    from scipy import ndimage

    out = np.zeros_like(flat)
    thick = max(3, round(max(flat.shape) * RULE_THICK))
    for axis in (1, 0):
        run = max(9, flat.shape[axis] // 8)
        along = ndimage.maximum_filter1d(ndimage.minimum_filter1d(flat, run, axis), run, axis)
        across = ndimage.maximum_filter1d(
            ndimage.minimum_filter1d(along, thick, 1 - axis), thick, 1 - axis
        )
        thin = along - across
        line = max(8.0, 0.3 * float(np.percentile(thin, 99.5)))
        labels, count = ndimage.label(thin > line)
        if not count:
            continue
        spans = [s[axis].stop - s[axis].start for s in ndimage.find_objects(labels)]
        keep = np.concatenate([[False], np.array(spans) >= RULE_SPAN * flat.shape[axis]])
        if keep.sum() >= RULE_LINES:
            near = ndimage.binary_dilation(keep[labels], iterations=1)
            out = np.maximum(out, np.where(near, thin, 0))
    return out


def drop_specks(mask: np.ndarray, strength: np.ndarray | None = None) -> np.ndarray:
    """Keep the main blob of ink and the blobs near it that are not dust (i's dot stays).

    A blob weighs the sum of its `strength` (how far over the threshold its pixels are; its
    area without one): a shadow's edge may pass the threshold over a wide area, but only
    just, while the character passes it by far.
    """
    from scipy import ndimage

    labels, count = ndimage.label(mask, structure=np.ones((3, 3)))
    if count <= 1:
        return mask
    weights = None if strength is None else strength.ravel()
    sizes = np.bincount(labels.ravel(), weights=weights, minlength=count + 1)[1:]
    boxes = ndimage.find_objects(labels)
    main = int(np.argmax(sizes))
    top, bottom = boxes[main][0].start, boxes[main][0].stop
    left, right = boxes[main][1].start, boxes[main][1].stop
    reach = max(bottom - top, right - left)
    keep = np.zeros(count + 1, bool)
    for i, (rows, cols) in enumerate(boxes):
        gap = max(top - rows.stop, rows.start - bottom, left - cols.stop, cols.start - right, 0)
        keep[i + 1] = i == main or (sizes[i] >= SPECK_SHARE * sizes[main] and gap <= reach)
    return keep[labels]


def even_strokes(mask: np.ndarray, width: float = DEFAULT_WIDTH) -> np.ndarray:
    """The ink's box at STROKE_SIDE px (uint8 0/255), strokes brought near `width` if far off."""
    from scipy import ndimage

    ink = at_stroke_side(mask.astype(np.uint8) * 255)
    if ink is None:
        return np.zeros(mask.shape, np.uint8)
    inside = ndimage.distance_transform_edt(ink)
    own = measure(inside, ink)
    change = (width - own) * STROKE_SIDE / 2  # pixels to add (or take) on each side
    if own < THIN * width:
        ink = ndimage.distance_transform_edt(~ink) <= change
    elif own > THICK * width:
        ink = inside > -change
    return ink.astype(np.uint8) * 255


def at_stroke_side(img: np.ndarray, level: int = INK_LEVEL) -> np.ndarray | None:
    """The ink's box (pixels over `level`) scaled to STROKE_SIDE px, as a padded bool mask."""
    rows, cols = np.flatnonzero((img > level).any(1)), np.flatnonzero((img > level).any(0))
    if not len(rows):
        return None
    crop = img[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    scale = STROKE_SIDE / max(crop.shape)
    size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
    return np.pad(
        np.asarray(Image.fromarray(crop).resize(size, Image.Resampling.BILINEAR)) > 127, 4
    )


def measure(inside: np.ndarray, ink: np.ndarray) -> float:
    """Stroke width over the ink's longer side, from the distance transform of its ink."""
    return 4 * float(inside[ink].mean()) / STROKE_SIDE if ink.any() else DEFAULT_WIDTH


def stroke_width(stack: np.ndarray, *, sample: int = 512, seed: int = 0) -> float:
    """Median stroke width of a sample of white-on-black N×H×W images (what a run trained on)."""
    from scipy import ndimage

    if len(stack) == 0:
        return DEFAULT_WIDTH
    rng = np.random.default_rng(seed)
    widths = []
    for img in stack[rng.choice(len(stack), size=min(sample, len(stack)), replace=False)]:
        ink = at_stroke_side(img)
        if ink is not None and ink.any():
            widths.append(measure(ndimage.distance_transform_edt(ink), ink))
    return round(float(np.median(widths)), 4) if widths else DEFAULT_WIDTH
