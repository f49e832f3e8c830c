"""Saliency maps (integrated gradients) for a prediction, their figure, and the pad's toggle."""

import re

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from scipy.ndimage import binary_dilation, uniform_filter

from charlib.apps.canvas import DrawingPad
from charlib.common.codes import INK_LEVEL
from charlib.inference import evaluate, explain
from charlib.inference.infer import Predictor
from charlib.inference.plots import AGAINST, TOWARD, saliency_figure, saliency_overlay
from charlib.training import checkpoint
from charlib.training.augment import model_input
from charlib.vision.strokes import SCRIPTED, Strokes


@pytest.fixture(scope="module")
def predictor(tiny_run):
    return Predictor.from_run(tiny_run, device="cpu")


@pytest.fixture(scope="module")
def why_a(predictor):
    return explain.saliency(predictor, SCRIPTED["A"])


def logits(predictor, images: np.ndarray) -> np.ndarray:
    """The model's logits for uint8 N×H×W images, computed without Captum."""
    with torch.no_grad():
        return predictor.model(predictor.model_input(images)).numpy()


def test_shapes_dtypes_and_titles(predictor, why_a):
    size = predictor.size
    assert why_a.image.dtype == np.uint8 and why_a.image.shape == (size, size)
    assert np.array_equal(why_a.image, why_a.prediction.image)
    assert why_a.maps.dtype == np.float32 and why_a.maps.shape == (2, size, size)
    assert why_a.delta.shape == (2,) and not why_a.blank
    top, second = (g["code"] for g in why_a.prediction[:2])
    assert why_a.codes == (top, second) and why_a.against == (None, top)
    first, other = why_a.titles
    assert re.fullmatch(r".+ \d+% — why .+", first)
    assert re.fullmatch(r".+ \d+% — what would make it .+", other)
    assert other.endswith(why_a.prediction[1]["char"])
    assert explain.saliency(predictor, SCRIPTED["A"], top=3).maps.shape == (3, size, size)


def test_integrated_gradients_are_complete(predictor, why_a):
    """Each map sums to score(drawing) - score(blank), the score taken from the model itself."""
    z = logits(predictor, np.stack([why_a.image, np.zeros_like(why_a.image)]))
    gain = z[0] - z[1]
    index = [predictor.classes.index(c) for c in why_a.codes]
    wanted = np.array([gain[index[0]], gain[index[1]] - gain[index[0]]])
    sums = why_a.maps.sum(axis=(1, 2))
    assert np.allclose(sums - wanted, why_a.delta, atol=1e-3)  # Captum's delta is that gap
    assert np.all(np.abs(sums - wanted) <= 0.1 * np.abs(wanted) + 0.05), (sums, wanted)
    assert abs(wanted[0]) > 0.1  # the check above is not one of two zeros


def test_attribution_lies_on_the_ink(why_a):
    """Blank paper is the baseline: pixels far from any ink get nothing, the ink gets the mass."""
    ink = why_a.image > INK_LEVEL
    far = ~binary_dilation(why_a.image > 0, iterations=2)
    assert far.sum() > 100 and ink.sum() > 20
    for m in np.abs(why_a.maps):
        assert m[ink].sum() > 0.5 * m.sum() and m[far].sum() == 0
        assert m[ink].mean() > 10 * m[far].mean() + 1e-9


def test_occlusion_agrees(predictor, why_a):
    """Cross-check with Captum's Occlusion (6×6 patches set to no ink): the drop in the top
    score where a patch is hidden follows the integrated gradients summed over such patches."""
    from captum.attr import Occlusion

    def score(x):
        return predictor.model(model_input(x, predictor.params))

    x = torch.from_numpy(why_a.image).float().div(255)[None, None]
    drop = (
        Occlusion(score)
        .attribute(
            x,
            sliding_window_shapes=(1, 6, 6),
            strides=(1, 1, 1),
            baselines=0.0,
            target=predictor.classes.index(why_a.codes[0]),
            perturbations_per_eval=128,  # 529 patch positions in 5 batches
        )[0, 0]
        .numpy()
    )
    patches = uniform_filter(why_a.maps[0], 6)
    near = binary_dilation(why_a.image > 0, iterations=3)
    assert np.corrcoef(patches[near], drop[near])[0, 1] > 0.3  # 0.85 here; 0.4-0.8 on EMNIST


def test_the_second_map_is_second_rather_than_first(predictor, why_a):
    """IG is linear in the score: map(second - first) = map(second) - map(first)."""
    top, second = why_a.codes
    toward_second, _ = explain.attribute(predictor, why_a.image, second)
    toward_top, _ = explain.attribute(predictor, why_a.image, top)
    assert np.allclose(toward_top, why_a.maps[0], atol=1e-5)
    assert np.allclose(toward_second - toward_top, why_a.maps[1], atol=1e-4)
    assert not np.allclose(toward_second, why_a.maps[1], atol=1e-3)


def test_blank_drawing_and_bad_arguments(predictor):
    blank = explain.saliency(predictor, Strokes())
    assert blank.blank and blank.image is None and blank.maps.shape[0] == 0 and blank.titles == []
    fig = saliency_figure(blank.image, blank.maps, blank.titles)
    assert "nothing drawn" in fig.axes[0].texts[0].get_text()
    black = np.zeros((predictor.size, predictor.size), np.uint8)
    maps, delta = explain.attribute(predictor, black, predictor.classes[0])
    assert not maps.any() and not delta.any()
    with pytest.raises(ValueError, match="not one of the model's"):
        explain.attribute(predictor, black, 12345)
    with pytest.raises(ValueError, match="uint8"):
        explain.attribute(predictor, black.astype(float), predictor.classes[0])
    with pytest.raises(ValueError, match="steps"):
        explain.attribute(predictor, black, predictor.classes[0], steps=1)
    maps, delta = explain.attribute(predictor, np.zeros((0, 28, 28), np.uint8), [])
    assert maps.shape == (0, 28, 28) and delta.shape == (0,)
    with pytest.raises(ValueError, match="one code"):
        explain.attribute(predictor, np.stack([black, black]), [predictor.classes[0]])


def test_onnx_predictor_is_explained_with_its_torch_weights(tiny_run, predictor, why_a):
    onnx = Predictor.from_run(tiny_run, backend="onnx")
    assert onnx.model is None
    e = explain.saliency(onnx, SCRIPTED["A"])
    assert e.codes == why_a.codes and np.allclose(e.maps, why_a.maps, atol=1e-4)
    # one built from a checkpoint alone has no run to take best.pt from: one clear line
    bare = Predictor(
        checkpoint.load(tiny_run / "best.pt"), backend="onnx", onnx=tiny_run / "model.onnx"
    )
    with pytest.raises(ValueError, match=r"needs its run's torch weights.*Predictor.from_run"):
        explain.saliency(bare, SCRIPTED["A"])


def test_an_ensemble_is_explained_by_its_mean_logits(tiny_run, why_a):
    twice = Predictor.from_runs([tiny_run, tiny_run], device="cpu")
    assert np.allclose(explain.saliency(twice, SCRIPTED["A"]).maps, why_a.maps, atol=1e-5)


def test_figure_and_overlay(why_a):
    fig = saliency_figure(why_a.image, why_a.maps, why_a.titles, title="scripted 'A'")
    assert isinstance(fig, Figure) and len(fig.axes) == 3
    assert fig.axes[0].get_title() == "model input" and "why" in fig.axes[1].get_title()
    fig.savefig(__import__("io").BytesIO(), format="png")
    image = np.zeros((8, 8), np.uint8)
    signed = np.zeros((8, 8), np.float32)
    signed[1, 1], signed[6, 6] = 1.0, -1.0
    rgb = saliency_overlay(image, signed, smooth=0)
    assert np.allclose(rgb[1, 1], TOWARD) and np.allclose(rgb[6, 6], AGAINST)
    assert np.allclose(rgb[4, 4], 0)  # no ink, no attribution: black


def test_gallery_of_explanations_leaves_blanks_out(predictor, why_a):
    blank = explain.saliency(predictor, Strokes())
    shown = explain.gallery([why_a, blank, why_a], ["a", "blank", "again"])
    assert shown["image"].shape == (2, predictor.size, predictor.size)
    assert shown["maps"].shape == (2, 2, predictor.size, predictor.size)
    assert shown["rows"] == ["a", "again"] and shown["titles"][0] == why_a.titles
    fig = saliency_figure(**shown)
    assert len(fig.axes) == 6 and fig.axes[3].get_title() == "again"
    nothing = saliency_figure(**explain.gallery([blank], ["blank"]))
    assert "no images to explain" in nothing.axes[0].texts[0].get_text()


def test_mistakes_gallery(tiny_run, predictor):
    preds = evaluate.predict_split(tiny_run, "validation", device="cpu", per_class=1)
    assert (preds.predicted != preds.labels).sum() >= 3  # a 1-epoch model: mistakes to show
    shown = explain.mistakes(predictor, preds, n=3)
    assert shown["image"].shape == (3, predictor.size, predictor.size)
    assert shown["maps"].shape == (3, 2, predictor.size, predictor.size)
    wrong = np.flatnonzero(preds.predicted != preds.labels)
    first = wrong[np.argmax(preds.confidence[wrong])]
    guess, true = (preds.classes[k] for k in (preds.predicted[first], preds.labels[first]))
    toward_guess, _ = explain.attribute(predictor, preds.images[first], guess)
    toward_true, _ = explain.attribute(predictor, preds.images[first], true, against=guess)
    assert np.allclose(shown["maps"][0, 0], toward_guess, atol=1e-5)
    assert np.allclose(shown["maps"][0, 1], toward_true, atol=1e-5)
    assert shown["titles"][0][1].startswith("what would make it") and "→" in shown["rows"][0]
    assert len(saliency_figure(**shown).axes) == 9


def test_pad_shows_why_when_ticked(predictor):
    pad = DrawingPad(predictor)
    assert {"charlib-why"} <= set(pad.why_box._dom_classes)
    assert {"charlib-saliency"} <= set(pad.saliency._dom_classes)
    pad.draw(SCRIPTED["A"])
    pad.predict()
    assert pad.saliency.value == "" and pad.saliency.layout.display == "none"
    pad.why_box.value = True  # ticking after a guess shows that guess's maps at once
    assert "data:image/png;base64," in pad.saliency.value and pad.saliency.layout.display != "none"
    pad.clear()
    assert pad.saliency.value == "" and pad.saliency.layout.display == "none"
    assert pad.predict().blank and pad.saliency.value == ""  # nothing drawn: nothing to explain
    pad.draw(SCRIPTED["7"])
    pad.predict()
    assert "<img" in pad.saliency.value
    pad.why_box.value = False
    assert pad.saliency.value == "" and pad.saliency.layout.display == "none"
