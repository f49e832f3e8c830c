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
   and a single border along the frame's edge (a cell's, a table's, a sticky note's: long,
   straight, within EDGE_BAND of the edge) are subtracted, even where the character touches them;
5. threshold: Otsu's (scikit-image), never under INK_FLOOR of the ink's own contrast, with
   hysteresis: a stroke that fades (pencil pressed lightly) is followed down to FAINT_SHARE of
   that level as long as it stays joined to clear ink, each pixel held to half the strongest
   ink near it (so a dark stroke does not grow by its blurred edge); an image whose best ink
   does not stand out from the noise is blank;
6. strays: borders left as blobs hugging the edge, a neighbour's fragment cut by the
   frame's edge, and dust away from the character are dropped (an i's dot stays);
7. refine: a character under REFINE_SIDE px in the reduced picture (small in a wide crop) is
   found again in a crop of the picture as given, at up to WORK_SIDE px;
8. strokes: the ink's box at STROKE_SIDE px, strokes thickened or thinned when their width
   is far from the training images' (`stroke_width`, recorded when a run trains); thickening
   keeps every loop open and never joins two separate strokes.
`drawn(img)` is step 8 and step 6's dust alone, for the pad's own raster.
`preprocess.canonical` frames the result as it frames every other input.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from charlib.common.codes import INK_LEVEL

# Photos are reduced to at most this many pixels on their long side before anything else.
WORK_SIDE = 640
# The paper's level is what is left after removing anything narrower than this share of the side.
PAPER_WINDOW = 0.25
# A picture whose typical pixel is darker than this is a dark page with light ink.
DARK_PAGE = 64
# Ink must stand out from the paper by this much (of 255, relative to the paper's brightness:
# faint pencil on grey paper reaches ~30) and by NOISE_RATIO × the noise.
MIN_CONTRAST, NOISE_RATIO = 24.0, 8.0
# Ink is at least this share of the ink's own contrast above the paper (ruled lines go first);
# ink joined to it is followed down to FAINT_SHARE of that level (hysteresis).
INK_FLOOR, FAINT_SHARE = 0.35, 0.4
# Faint ink is judged against the strongest ink within this share of the side around it.
LOCAL_WINDOW = 0.03
# Ruled lines: thinner than RULE_THICK of the image side, across RULE_SPAN of the page, and at
# least RULE_LINES of them (one long thin stroke is a character's, not the paper's). A border
# is one such line (up to EDGE_THICK × as thick) within EDGE_BAND of the frame's edge.
RULE_THICK, RULE_SPAN, RULE_LINES = 0.012, 0.6, 3
EDGE_BAND, EDGE_THICK = 0.12, 3
# A character whose ink box is under this many pixels in the reduced picture is found again
# in a crop of the picture as given (REFINE_MARGIN × its box on every side, for the paper).
REFINE_SIDE, REFINE_MARGIN = 48, 1.5
# A separate blob under this share of the largest one, or farther from it than its size, is dust.
SPECK_SHARE = 0.04
# A blob cut by the frame's edge beside the character and under this share of it is a neighbour's.
FRAGMENT_SHARE = 0.5
# Less ink than this share of the image (and than MIN_PIXELS) is nothing drawn.
BLANK_SHARE, MIN_PIXELS = 2e-4, 4
# Stroke width: 4 × the ink's mean distance to the paper, over the ink's longer side, measured
# with that side at STROKE_SIDE px. DEFAULT_WIDTH is EMNIST's median, for runs that do not record
# their own; ink thinner than THIN× or thicker than THICK× the run's width is brought to it.
STROKE_SIDE, DEFAULT_WIDTH, THIN, THICK = 96, 0.165, 0.85, 1.6


def find(img: np.ndarray, *, width: float = DEFAULT_WIDTH) -> np.ndarray:
    """A grayscale photo or scan, as taken -> its ink alone, white on black (black when none)."""
    work = reduce(img, WORK_SIDE)
    found = ink_mask(work, light=paper_is_light(work))
    if found is None:
        return np.zeros(work.shape, np.uint8)
    mask = drop_strays(*found)
    crop = refine_box(mask, img.shape)
    if crop is not None:  # small in a large picture: look again, closer
        rows, cols = crop
        again = ink_mask(reduce(img[rows, cols], WORK_SIDE), light=paper_is_light(work))
        mask = mask if again is None else drop_strays(*again)
    return kept_strokes(mask, width)


def ink_mask(work: np.ndarray, *, light: bool) -> tuple[np.ndarray, np.ndarray] | None:
    """Steps 2-5 on a reduced grey picture: (ink mask, how far each pixel is over the threshold),
    or None when no ink stands out from the paper and its noise."""
    from scipy import ndimage
    from skimage.filters import apply_hysteresis_threshold, threshold_otsu

    work = work.astype(np.float32)
    if light:
        work = 255.0 - work
    paper = paper_level(work)
    # Ink's contrast relative to the paper's brightness: a shadow dims paper and ink alike.
    flat = np.clip((work - paper) / np.maximum(255.0 - paper, 16.0), 0, None) * 255.0
    lines = ruling(flat)
    flat = np.clip(flat - lines, 0, None)
    sigma = max(1.0, max(flat.shape) / 640)
    smooth = ndimage.gaussian_filter(flat, sigma)
    sample = smooth[::3, ::3]
    contrast = float(smooth.max() - np.median(sample))  # over the paper's typical level
    otsu = float(threshold_otsu(smooth)) if smooth.max() > smooth.min() else float(smooth.max())
    # The smoothed noise's deviation: from neighbours' differences, or from the paper's own
    # spread (the pixels under Otsu's level) where the noise is coarser than a pixel (JPEG's).
    paper_px = sample[sample <= otsu]
    paper_px = paper_px if paper_px.size else smooth.ravel()
    spread = 1.4826 * float(np.median(np.abs(paper_px - np.median(paper_px))))
    noise = max(noise_level(flat) / (2 * np.sqrt(np.pi) * sigma), spread)
    if contrast < max(MIN_CONTRAST, NOISE_RATIO * noise):
        return None
    level = max(otsu, INK_FLOOR * contrast)
    low = max(FAINT_SHARE * level, NOISE_RATIO / 2 * noise)
    # Each pixel against the ink around it: half the local peak, between `low` and `level`, so
    # a faint stroke is kept down to `low` while a dark one keeps its edges at `level`.
    window = max(5, round(max(smooth.shape) * LOCAL_WINDOW))
    local = np.clip(0.5 * ndimage.maximum_filter(smooth, window), low, level)
    mask = apply_hysteresis_threshold(smooth, low, level) & (smooth > local)
    # What is left of a line taken away is not followed: there, ink must be clear on its own.
    if lines.any():
        mask &= (smooth > level) | ~ndimage.binary_dilation(lines > 0, iterations=2)
    return mask, np.clip(smooth - low, 0, None)


def refine_box(mask: np.ndarray, shape: tuple[int, int]) -> tuple[slice, slice] | None:
    """Where to look again in the picture as given (`shape`) for ink found small in its reduced
    `mask`: its box with REFINE_MARGIN around it; None when the ink is large enough already or
    the picture was not reduced."""
    scale = max(shape) / max(mask.shape)
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if scale <= 1.0 or not len(rows):
        return None
    side = max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1
    if side >= REFINE_SIDE:
        return None
    pad = REFINE_MARGIN * side

    def span(lo: int, hi: int, limit: int) -> slice:
        return slice(max(0, int((lo - pad) * scale)), min(limit, int((hi + 1 + pad) * scale)))

    return span(rows[0], rows[-1], shape[0]), span(cols[0], cols[-1], shape[1])


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
    # Point-symmetric padding continues a gradient past the edge, so the opening keeps it there;
    # one reflection at most (a long strip is padded across by less than its height).
    pads = [max(1, min(window, n - 1)) for n in small.shape]
    padded = np.pad(small, [(p, p) for p in pads], mode="reflect", reflect_type="odd")
    # Ink near the edge reflects as dark "anti-ink" (2 × edge - ink): never below the page.
    padded = np.maximum(padded, small.min())
    level = ndimage.grey_opening(padded, size=(window, window))
    level = level[pads[0] : pads[0] + small.shape[0], pads[1] : pads[1] + small.shape[1]]
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
    """The ruled or squared lines of the page and the borders along its edges in a flattened
    image (zero where there are none).

    A line is thin (under RULE_THICK of the side) and runs straight across most of the page
    (RULE_SPAN): a grey opening along it keeps long runs, minus an opening across it that keeps
    only thick ones (a character's bar); what remains, spans the page and comes with at least
    RULE_LINES - 1 others is the paper's ruling. A single line up to EDGE_THICK × as thick
    whose middle lies within EDGE_BAND of the frame's edge is a border (a cell's, a table's).
    """
    out = np.zeros_like(flat)
    thick = max(3, round(max(flat.shape) * RULE_THICK))
    for axis in (1, 0):
        along = runs_along(flat, axis)
        lines = long_lines(along, axis, thick)
        if lines is not None and lines[-1] >= RULE_LINES:
            out = np.maximum(out, lines_at(*lines[:3]))
        size = flat.shape[1 - axis]
        band = max(3, round(EDGE_BAND * size))
        for strip in (slice(0, band), slice(size - band, size)):  # only the edges hold borders
            at = (slice(None), strip) if axis == 0 else (strip, slice(None))
            borders = long_lines(along[at], axis, EDGE_THICK * thick)
            if borders is not None:
                out[at] = np.maximum(out[at], lines_at(*borders[:3]))
    return out


def runs_along(flat: np.ndarray, axis: int) -> np.ndarray:
    """A grey opening along `axis` over an eighth of the side: what runs straight that far."""
    from scipy import ndimage

    run = max(9, flat.shape[axis] // 8)
    return ndimage.maximum_filter1d(ndimage.minimum_filter1d(flat, run, axis), run, axis)


def long_lines(along: np.ndarray, axis: int, thick: int):
    """Thin straight runs along `axis` (`runs_along`'s) that span RULE_SPAN of the frame: (their
    strength, which labels span it (index 0: none), the labels, each label's middle across the
    axis, how many lines span it), or None."""
    from scipy import ndimage

    across = ndimage.maximum_filter1d(
        ndimage.minimum_filter1d(along, thick, 1 - axis), thick, 1 - axis
    )
    thin = along - across
    line = max(8.0, 0.3 * float(np.percentile(thin, 99.5)))
    labels, count = ndimage.label(thin > line)
    if not count:
        return None
    boxes = ndimage.find_objects(labels)
    spans = np.array([s[axis].stop - s[axis].start for s in boxes], float)
    middles = np.array([(s[1 - axis].start + s[1 - axis].stop) / 2 for s in boxes])
    # Pieces in line with each other are one line, interrupted where a character's stroke
    # crosses it: the line's span is theirs together.
    order = np.argsort(middles)
    group = np.cumsum(np.concatenate([[0], np.diff(middles[order]) > thick / 2]))
    together = np.bincount(group, weights=spans[order])
    spans[order] = together[group]
    long = spans >= RULE_SPAN * along.shape[axis]
    keep = np.concatenate([[False], long])
    lines = len(np.unique(group[long[order]]))
    return thin, keep, labels, np.concatenate([[np.inf], middles]), lines


def lines_at(thin: np.ndarray, keep: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The strength of the kept lines (and a pixel around them), zero elsewhere."""
    from scipy import ndimage

    if not keep.any():
        return np.zeros_like(thin)
    near = ndimage.binary_dilation(keep[labels], iterations=1)
    return np.where(near, thin, 0)


def drop_strays(mask: np.ndarray, strength: np.ndarray | None = None) -> np.ndarray:
    """A photo's ink without what is not the character's: blobs hugging the frame's edge (a
    border left whole: within EDGE_BAND of an edge, along RULE_SPAN of it), fragments of a
    neighbour cut by the frame's edge, then dust (`drop_specks`).

    A fragment touches the edge, weighs under FRAGMENT_SHARE of the character (the heaviest
    blob left) and has most of its pixels beside the character's box: outside its columns when
    cut by a side edge; outside its rows and its columns when cut by the top or the bottom (an
    i's dot above its stem stays).
    """
    from scipy import ndimage

    labels, count = ndimage.label(mask, structure=np.ones((3, 3)))
    if count <= 1:
        return mask
    h, w = mask.shape
    weights = np.bincount(
        labels.ravel(), weights=None if strength is None else strength.ravel(), minlength=count + 1
    )
    areas = np.bincount(labels.ravel(), minlength=count + 1)
    boxes = [None] + ndimage.find_objects(labels)
    gone = np.zeros(count + 1, bool)
    for i in range(1, count + 1):
        rows, cols = boxes[i]
        gone[i] = (
            (rows.start == 0 and rows.stop <= EDGE_BAND * h)
            or (rows.stop == h and rows.start >= (1 - EDGE_BAND) * h)
        ) and cols.stop - cols.start >= RULE_SPAN * w
        gone[i] |= (
            (cols.start == 0 and cols.stop <= EDGE_BAND * w)
            or (cols.stop == w and cols.start >= (1 - EDGE_BAND) * w)
        ) and rows.stop - rows.start >= RULE_SPAN * h
    if gone[1:].all():
        return mask
    gone[0] = True  # the paper
    main = int(np.argmax(np.where(gone, -1.0, weights)))
    top, bottom = boxes[main][0].start, boxes[main][0].stop
    left, right = boxes[main][1].start, boxes[main][1].stop
    in_cols = np.bincount(labels[:, left:right].ravel(), minlength=count + 1)
    in_rows = np.bincount(labels[top:bottom].ravel(), minlength=count + 1)
    for i in range(1, count + 1):
        rows, cols = boxes[i]
        if i == main or gone[i] or weights[i] >= FRAGMENT_SHARE * weights[main]:
            continue
        beside = in_cols[i] * 2 < areas[i]
        side_cut = cols.start == 0 or cols.stop == w
        end_cut = rows.start == 0 or rows.stop == h
        gone[i] = beside and (side_cut or (end_cut and in_rows[i] * 2 < areas[i]))
    gone[0] = False
    kept = mask & ~gone[labels]
    return drop_specks(kept, None if strength is None else np.where(kept, strength, 0))


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
        ink = thickened(ink, change)
    elif own > THICK * width:
        ink = inside > -change
    return ink.astype(np.uint8) * 255


def thickened(ink: np.ndarray, change: float) -> np.ndarray:
    """Ink grown by `change` px on each side, its loops kept open and its strokes kept apart.

    Paper enclosed by ink (a loop: an 8's, an e's) gives up at most half of its depth, so every
    loop stays open; paper on the seam between two separate strokes (the pixels nearest to
    different strokes, and one pixel beside them) stays paper, so no two strokes join.
    """
    from scipy import ndimage

    paper = ~ink
    depth, nearest = ndimage.distance_transform_edt(paper, return_indices=True)
    grow = depth <= change
    loops, count = ndimage.label(ndimage.binary_fill_holes(ink) & paper)
    if count:
        deepest = ndimage.maximum(depth, loops, np.arange(1, count + 1))
        grow &= depth <= np.concatenate([[np.inf], np.asarray(deepest) / 2])[loops]
    strokes, count = ndimage.label(ink, structure=np.ones((3, 3)))
    if count > 1:
        owner = strokes[nearest[0], nearest[1]]
        seam = np.zeros_like(ink)
        seam[:, 1:] |= owner[:, 1:] != owner[:, :-1]
        seam[1:, :] |= owner[1:, :] != owner[:-1, :]
        grow &= ~ndimage.binary_dilation(seam & paper)
    return ink | grow


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
