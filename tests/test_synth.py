import hashlib

import numpy as np
import pytest

from charlib.common.codes import UNKNOWN
from charlib.data import synth
from charlib.data.loading import load_dataset

TINY = {"train": 3, "validation": 1, "test": 1}


def digests(folder):
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.zip"))
    }


def test_generation_is_deterministic_by_seed(tmp_path):
    a = digests(synth.generate(tmp_path / "a", counts=TINY, seed=1, workers=1, progress=False))
    b = digests(synth.generate(tmp_path / "b", counts=TINY, seed=1, workers=2, progress=False))
    c = digests(synth.generate(tmp_path / "c", counts=TINY, seed=2, workers=2, progress=False))
    assert a == b  # same bytes whatever the number of workers
    assert a["train.zip"] != c["train.zip"]


def test_loader_reads_it_as_alphanum(tmp_path):
    root = synth.generate(tmp_path / "s", counts=TINY, seed=0, progress=False)
    ds = load_dataset(root, progress=False)
    assert ds.classes == (*range(33, 127), UNKNOWN)
    assert ds.report.layout == "split zips" and ds.report.image_size == synth.SIZE
    train = 85 * 3 + 10 * round(3 * synth.DIGITS)  # digits weighted in training (synth.DIGITS)
    assert len(ds.train) == train and len(ds.test) == 95
    # Stored dark on light like AlphaNum, so every image was inverted to white on black.
    assert ds.report.inverted == {"train": train, "validation": 95, "test": 95}
    letters = ds.train.images[ds.train.codes != UNKNOWN]
    assert letters[:, 0, :].mean() < 20  # black frame
    assert (letters.reshape(len(letters), -1).max(axis=1) > 200).all()  # every glyph has ink


def test_samples_vary_within_a_class():
    rng = np.random.default_rng(0)
    fonts = synth.fonts()
    a, b = (synth.render(65, rng, fonts) for _ in range(2))
    assert a.shape == (synth.SIZE, synth.SIZE) and np.abs(a.astype(int) - b).mean() > 5


def test_fonts_cover_ascii_and_skip_symbol_fonts():
    names = [f.rsplit("/", 1)[-1] for f in synth.fonts()]
    assert any(n.startswith("DejaVuSans") for n in names)
    assert not any(n.startswith(("cmsy", "cmex", "LastResort")) for n in names)


def test_ensure_reuses_and_regenerates(monkeypatch):
    monkeypatch.setitem(synth.PRESETS, "synth-small", TINY)
    path = synth.ensure("synth-small", progress=False)
    before = (path / "train.zip").stat().st_mtime_ns
    assert synth.ensure("synth-small", progress=False) == path
    assert (path / "train.zip").stat().st_mtime_ns == before  # reused, not rebuilt
    synth.ensure("synth-small", seed=5, progress=False)
    assert (path / "train.zip").stat().st_mtime_ns != before  # other settings: rebuilt
    with pytest.raises(ValueError, match="unknown synthetic preset 'big'"):
        synth.ensure("big")


def test_thinning_finds_the_centre_line():
    bar = np.zeros((40, 60), bool)
    bar[16:23, 5:55] = True  # a 7-pixel-thick stroke
    line = synth._thin(bar)
    cols = line[:, 10:50].sum(axis=0)
    assert (cols == 1).all()  # one pixel wide along its length
    rows = np.flatnonzero(line[:, 30])
    assert rows.tolist() == [19]  # in the middle of the stroke


def test_monoline_pen_has_even_width():
    rng = np.random.default_rng(0)
    from PIL import Image

    bold = np.zeros((synth.CANVAS, synth.CANVAS), np.uint8)
    bold[30:66, 20:32] = 255  # a thick vertical stroke
    pen = np.asarray(synth._monoline(Image.fromarray(bold), rng))
    widths = (pen[35:60] > 128).sum(axis=1)
    assert widths.max() - widths.min() <= 2 and 2 <= widths.mean() < 10


# Pen strokes (`handwriting`) --------------------------------------------------------------------


def test_hershey_fonts_draw_every_printable_character():
    from charlib.data import handwriting

    for font in (*handwriting.FONTS, *handwriting.SCRIPT_FONTS):
        glyphs = handwriting.glyphs(font)
        assert sorted(glyphs) == list(range(33, 127))
        assert all(len(strokes) >= 1 for strokes in glyphs.values()), font
    assert not set(handwriting.FONTS) & set(handwriting.SCRIPT_FONTS)  # the script hand is unseen


def test_a_hand_drawn_glyph_is_deterministic_and_varies():
    from charlib.data import handwriting

    def one(seed):
        rng = np.random.default_rng(seed)
        return synth.render(65, rng, synth.fonts(), hand=1.0)

    a, b, c = one(3), one(3), one(4)
    assert np.array_equal(a, b)  # same seed, same drawing
    assert np.abs(a.astype(int) - c).mean() > 5  # another seed, another hand
    rng = np.random.default_rng(0)
    strokes = handwriting.drawing(ord("7"), rng)
    img = handwriting.ink(strokes, rng, canvas=96)
    assert img.shape == (96, 96) and img.dtype == np.uint8 and img.max() == 255
    ink_share = (img > 127).mean()
    assert 0.02 < ink_share < 0.3  # a pen line, not a blob or nothing


def test_hand_share_is_recorded_and_checked(tmp_path):
    import json

    root = synth.generate(tmp_path / "h", counts=TINY, seed=0, hand=1.0, progress=False)
    manifest = json.loads((root / "synth.json").read_text())
    assert manifest["hand"] == 1.0 and manifest["version"] == synth.VERSION
    fonts_only = synth.generate(tmp_path / "f", counts=TINY, seed=0, hand=0.0, progress=False)
    assert digests(root)["train.zip"] != digests(fonts_only)["train.zip"]
    with pytest.raises(ValueError, match="hand must be a share between 0 and 1"):
        synth.generate(tmp_path / "bad", counts=TINY, hand=1.5, progress=False)
    assert not (tmp_path / "bad").exists()


def test_as_strokes_makes_a_pad_drawing():
    from charlib.data import handwriting
    from charlib.vision.strokes import rasterize

    rng = np.random.default_rng(0)
    drawing = handwriting.as_strokes(handwriting.drawing(ord("b"), rng, handwriting.SCRIPT_FONTS))
    assert (drawing.width, drawing.height) == (280, 280) and not drawing.empty
    pts = np.concatenate([np.asarray(s) for s in drawing.strokes])
    assert pts.min() >= 0 and pts.max() <= 280
    assert rasterize(drawing).max() == 255


def test_hand_written_forms_replace_some_font_glyphs(monkeypatch):
    """Characters hands write unlike type ('1' as a plain stroke, an open '4', a '9' with a
    straight stem...) take those forms; the held-out script hand never does."""
    from charlib.data import handwriting

    assert set(handwriting.ALTERNATES) <= {chr(c) for c in range(33, 127)}
    monkeypatch.setattr(handwriting, "ALTERNATE", 1.0)
    monkeypatch.setattr(handwriting, "ALTERNATE_CHANCE", {})
    rng = np.random.default_rng(0)
    ones = [handwriting.drawing(ord("1"), rng) for _ in range(12)]
    assert {len(d) for d in ones} == {1, 2}  # plain or flagged (one stroke), or with a foot
    plain = min(ones, key=lambda d: np.ptp(d[0][:, 0]))
    assert np.ptp(plain[0][:, 0]) < 0.5 * np.ptp(plain[0][:, 1])  # upright: taller than wide
    glyph = handwriting.glyphs("scripts")[ord("1")]
    script = handwriting.drawing(ord("1"), np.random.default_rng(0), ("scripts",))
    assert len(script) == len(glyph)  # the script font's own strokes, not an alternate


def test_digit_weight_doubles_training_digits_only(tmp_path):
    import json

    root = synth.generate(tmp_path / "d", counts=TINY, seed=0, digits=2, progress=False)
    ds = load_dataset(root, progress=False)
    counts = dict(zip(ds.classes, ds.train.counts(), strict=True))
    assert counts[ord("5")] == 6 and counts[ord("A")] == 3  # train: digits twice
    assert set(ds.validation.counts()) == {1}  # validation and test stay balanced
    assert json.loads((root / "synth.json").read_text())["digits"] == 2
    with pytest.raises(ValueError, match="digits must be a weight"):
        synth.generate(tmp_path / "bad", counts=TINY, digits=0, progress=False)
