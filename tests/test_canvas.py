"""Stroke recorder, rasteriser, the pad's logic without a browser, and notebook 05 headless."""

import html

import numpy as np
import pytest
from matplotlib.figure import Figure
from notebook_outputs import errors, figures, outputs, text_of

from charlib.apps.canvas import DrawingPad, StrokeRecorder, results_html
from charlib.inference.infer import BLANK, Prediction, Predictor
from charlib.inference.plots import prediction_figure
from charlib.vision.strokes import SCRIPTED, Strokes, rasterize


@pytest.fixture(scope="module")
def predictor(tiny_run):
    return Predictor.from_run(tiny_run, device="cpu")


def test_recorder_mouse_strokes():
    rec = StrokeRecorder()
    assert rec.move(5, 5) is None  # hovering with the pen up draws nothing
    assert rec.down(10, 20) == (10.0, 20.0)
    assert rec.move(30, 40) == ((10.0, 20.0), (30.0, 40.0))
    assert rec.move(30, 40) is None  # the same point again adds nothing
    assert rec.up(50, 40) == ((30.0, 40.0), (50.0, 40.0))
    assert rec.move(60, 60) is None
    rec.down(100, 100)
    rec.up(100, 100)  # a click is a one-point stroke: a dot
    assert rec.strokes.strokes == [[(10, 20), (30, 40), (50, 40)], [(100, 100)]]
    assert not rec.pen_down and not rec.strokes.empty


def test_recorder_leaving_the_canvas_ends_the_stroke():
    rec = StrokeRecorder(width=100, height=80)
    rec.down(50, 40)
    assert rec.out(120, 40) == ((50.0, 40.0), (99.0, 40.0))  # clamped to the edge
    assert rec.move(60, 60) is None  # re-entering with the button held does not draw
    rec.down(10, -5)
    assert rec.strokes.strokes == [[(50, 40), (99, 40)], [(10, 0)]]


def test_recorder_touch_and_clear():
    rec = StrokeRecorder()
    assert rec.touch_start([]) is None
    assert rec.touch_start([(10, 10), (200, 200)]) == (10.0, 10.0)  # the first finger draws
    assert rec.touch_move([(20, 15)]) == ((10.0, 10.0), (20.0, 15.0))
    rec.touch_end([])  # the browser reports the fingers still down: none
    assert rec.touch_move([(40, 40)]) is None
    rec.touch_start([(1, 1)])
    rec.touch_cancel([])
    assert len(rec.strokes.strokes) == 2
    rec.clear()
    assert rec.strokes.empty and not rec.pen_down


def test_recorder_copies_and_pen():
    rec = StrokeRecorder(pen=0.05)
    rec.down(1, 1)
    copy = rec.strokes
    copy.strokes.append([(5, 5)])
    assert len(rec.strokes.strokes) == 1  # callers cannot change the recording
    rec.set_pen(0.1)
    assert rec.strokes.pen == 0.1 and rec.strokes.strokes == [[(1, 1)]]
    with pytest.raises(ValueError, match="pen must be a share"):
        rec.set_pen(0)
    small = StrokeRecorder(width=140, height=140)
    small.load(Strokes([[(280, 140)]], pen=0.08))
    assert small.strokes.strokes == [[(140, 70)]] and small.strokes.pen == 0.08


def test_rasterize_blank_and_dot():
    assert not rasterize(Strokes()).any()
    img = rasterize(Strokes([[(140, 140)]]))  # one point: a round dot one pen wide
    ys, xs = np.nonzero(img)
    side = Strokes().pen_px
    assert abs((ys.max() - ys.min() + 1) - side) <= 2 and abs((xs.max() - xs.min() + 1) - side) <= 2
    area = (img > 0).sum()
    assert 0.7 * np.pi * (side / 2) ** 2 < area < 1.3 * np.pi * (side / 2) ** 2
    assert img[140, 140] == 255 and img.dtype == np.uint8 and img.shape == (280, 280)


@pytest.mark.parametrize("size", [140, 280, 560])
def test_rasterize_pen_is_relative_to_the_canvas(size):
    d = Strokes([[(0.25 * size, 0.5 * size), (0.75 * size, 0.5 * size)]], size, size, pen=0.1)
    img = rasterize(d)
    column = img[:, size // 2] > 0
    assert abs(column.sum() - 0.1 * size) <= 2
    # round caps reach half a pen beyond each end point
    row = np.flatnonzero(img[size // 2] > 0)
    assert abs(row[0] - (0.25 * size - 0.05 * size)) <= 2
    assert abs(row[-1] - (0.75 * size + 0.05 * size)) <= 2


def test_scripted_strokes_cover_several_characters():
    assert {"A", "7", "L", "O", "1"} <= set(SCRIPTED)
    for char, drawing in SCRIPTED.items():
        img = rasterize(drawing)
        assert img.shape == (280, 280) and (img > 0).mean() > 0.03, char


def test_results_html():
    guesses = [
        {"char": "<", "code": 60, "confidence": 0.25},
        {"char": "A", "code": 65, "confidence": 0.2},
    ]
    text = results_html(
        Prediction(guesses, "unsure", np.zeros((28, 28), np.uint8)), seconds=0.012, device="cpu"
    )
    assert text.count("class='charlib-prediction'") == 2
    assert "25.0%" in text and "&lt;" in text and "unsure" in text and "12 ms on cpu" in text
    assert "nothing drawn" in results_html(Prediction([], BLANK, None))
    assert "charlib-prediction" not in results_html(None)


def test_scripted_a_and_blank_through_the_predictor(predictor):
    prediction = predictor.predict(SCRIPTED["A"], top_k=5)
    assert len(prediction) == 5 and prediction.status in ("ok", "unsure")
    assert prediction.image.shape == (predictor.size, predictor.size)
    confidences = [g["confidence"] for g in prediction]
    assert confidences == sorted(confidences, reverse=True) and 0 < sum(confidences) <= 1.0001
    blank = predictor.predict(Strokes(), top_k=5)
    assert blank.blank and blank.status == "nothing drawn" and list(blank) == []
    assert isinstance(prediction_figure(SCRIPTED["A"], prediction), Figure)
    assert len(prediction_figure(Strokes(), blank).axes) == 3
    # a 2-D white-on-black array in gray as before; an RGB photo in colour, aspect kept
    gray = prediction_figure(rasterize(SCRIPTED["A"]), prediction).axes[0]
    assert gray.images[0].get_array().ndim == 2 and gray.get_title() == "input (280×280 px)"
    photo = prediction_figure(np.full((640, 480, 3), 200, np.uint8), prediction).axes[0]
    assert photo.images[0].get_array().shape == (640, 480, 3) and photo.get_aspect() == 1.0
    assert photo.get_title() == "photo (480×640 px)"


def test_pad_without_a_browser(predictor):
    pad = DrawingPad(predictor, top_k=5)
    assert {"charlib-pad"} <= set(pad.widget._dom_classes)
    c = pad.canvas
    c._mouse_down_callbacks(50, 50)
    c._mouse_move_callbacks(100, 200)
    c._mouse_up_callbacks(150, 50)
    c._touch_start_callbacks([(200, 50)])
    c._touch_move_callbacks([(200, 250)])
    c._touch_end_callbacks([])
    assert len(pad.strokes.strokes) == 2 and pad.strokes_label.value == "2 strokes"
    prediction = pad.predict()
    assert len(prediction) == 5
    assert pad.results.value.count("charlib-prediction") == 5 and "%" in pad.results.value
    pad.clear()
    assert (
        pad.strokes.empty
        and pad.prediction is None
        and "charlib-prediction" not in pad.results.value
    )
    assert pad.predict().blank and "nothing drawn" in pad.results.value
    pad.auto_box.value = True  # predict when a stroke ends
    pad.draw(SCRIPTED["7"])
    c._mouse_down_callbacks(10, 10)
    c._mouse_up_callbacks(12, 12)
    assert pad.prediction is not None and len(pad.prediction) == 5
    pad.pen_slider.value = 0.1
    assert pad.strokes.pen == 0.1


@pytest.mark.notebook
def test_notebook_05_headless(smoke_reports):
    result = smoke_reports["05_interactive_demo"]
    assert result.ok
    outs = outputs(result.executed)
    assert not errors(outs)
    text = text_of(outs)
    assert "smoke" in text and "validation accuracy" in text
    assert "INTERACTIVE=False" in text and "status: nothing drawn" in text
    # four photos of characters on paper, each read by the same predictor
    assert all(f"photo {i}/4: " in text for i in range(1, 5))
    # scripted 'A' and '7' (SMOKE), the empty pad and the four photos, each a static PNG figure,
    # then "why it answered": saliency maps of the drawings and of the photos
    assert figures(outs) == 9 and "ms a drawing on " in text
    # teach it: six script-hand drawings saved, a fine-tuned copy, both scored on them
    assert "saved in " in text and "7 ×3, A ×3 (6 examples)" in text
    assert "before: " in text and "after: " in text and "of your saved drawings read right" in text
    assert not any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outs)
    report = result.html.read_text()
    assert report.count('<img alt="') == 9 and html.escape("scripted") in report
