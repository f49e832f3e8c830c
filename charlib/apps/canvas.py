"""The drawing pad: pen events recorded as strokes, an ipycanvas widget with Predict and Clear.

The pad keeps what is drawn as `charlib.vision.strokes.Strokes` and hands those to the predictor,
which redraws them (`strokes.rasterize`): the browser's pixels are never read back.
"""

from __future__ import annotations

import base64
import html
import io
import time

from charlib.common.codes import code_to_char
from charlib.data import mine
from charlib.inference import explain
from charlib.inference.plots import saliency_figure
from charlib.vision.strokes import CANVAS_SIZE, PEN, Strokes


class StrokeRecorder:
    """Pen events -> Strokes: down starts a stroke, move extends it, up or leaving ends it.

    Each event returns what the pad must draw live: a point (down) or a segment (move), else
    None. Points outside the canvas are clamped to its edge.
    """

    def __init__(self, width: int = CANVAS_SIZE, height: int = CANVAS_SIZE, pen: float = PEN):
        self.drawing = Strokes([], width, height, pen)  # validates the size and the pen
        self.pen_down = False

    @property
    def strokes(self) -> Strokes:
        """A copy of what was drawn so far."""
        d = self.drawing
        return Strokes([list(s) for s in d.strokes], d.width, d.height, d.pen)

    def set_pen(self, pen: float) -> None:
        """Change the pen width (a share of the canvas side) for the whole drawing."""
        d = self.drawing
        self.drawing = Strokes(d.strokes, d.width, d.height, pen)

    def _clamp(self, x: float, y: float) -> tuple[float, float]:
        return (
            min(max(float(x), 0.0), self.drawing.width - 1.0),
            min(max(float(y), 0.0), self.drawing.height - 1.0),
        )

    def down(self, x: float, y: float) -> tuple[float, float]:
        """Pen down: a new stroke starting (and, until it moves, ending) at this point."""
        point = self._clamp(x, y)
        self.drawing.strokes.append([point])
        self.pen_down = True
        return point

    def move(self, x: float, y: float):
        """Pen moved: the new segment ((x0, y0), (x1, y1)) while the pen is down, else None."""
        if not self.pen_down:
            return None
        stroke = self.drawing.strokes[-1]
        point = self._clamp(x, y)
        if point == stroke[-1]:
            return None
        stroke.append(point)
        return stroke[-2], point

    def up(self, x: float | None = None, y: float | None = None):
        """Pen up (or left the canvas at x, y): ends the stroke; returns its last segment."""
        segment = self.move(x, y) if x is not None and y is not None else None
        self.pen_down = False
        return segment

    out = up  # leaving the canvas ends a stroke: re-entering with the button held does not draw

    def clear(self) -> None:
        """Forget every stroke."""
        self.drawing.strokes.clear()
        self.pen_down = False

    def load(self, drawing: Strokes) -> None:
        """Replace the drawing with a copy of `drawing` (strokes and pen), scaled to this canvas."""
        sx, sy = self.drawing.width / drawing.width, self.drawing.height / drawing.height
        strokes = [[(x * sx, y * sy) for x, y in s] for s in drawing.strokes]
        self.drawing = Strokes(strokes, self.drawing.width, self.drawing.height, drawing.pen)
        self.pen_down = False

    # Touch events carry a list of (x, y), one per finger; the first finger draws.
    def touch_start(self, touches):
        return self.down(*touches[0]) if touches else None

    def touch_move(self, touches):
        return self.move(*touches[0]) if touches else None

    def touch_end(self, touches=()):
        return self.up()

    touch_cancel = touch_end


def results_html(prediction, *, seconds: float | None = None, device: str = "") -> str:
    """The pad's results area: one row per guess (char, code, bar, %) and a status line."""
    if prediction is None:
        return "<div class='charlib-status'>Draw a character, then press Predict.</div>"
    if prediction.blank:
        return "<div class='charlib-status charlib-blank'>nothing drawn</div>"
    timing = f" · {seconds * 1000:.0f} ms on {html.escape(device)}" if seconds is not None else ""
    note = " (low confidence)" if prediction.unsure else ""
    rows = []
    for g in prediction:
        pct = 100 * g["confidence"]
        rows.append(
            f"<div class='charlib-prediction' data-char='{html.escape(g['char'], quote=True)}' "
            f"data-code='{g['code']}' data-confidence='{g['confidence']:.6f}' "
            "style='display:flex;align-items:center;gap:8px;margin:3px 0;font-family:monospace'>"
            f"<span class='charlib-char' style='width:5.5em;font-size:1.3em;font-weight:bold'>"
            f"{html.escape(g['char'])}</span>"
            f"<span class='charlib-code' style='width:3.5em;color:#666'>{g['code']}</span>"
            "<span style='flex:1;min-width:80px;background:#eee;height:14px;border-radius:3px'>"
            f"<span style='display:block;width:{pct:.1f}%;height:14px;border-radius:3px;"
            f"background:{'#d9822b' if prediction.unsure else '#2b7bd9'}'></span></span>"
            f"<span class='charlib-confidence' style='width:4.5em;text-align:right'>"
            f"{pct:.1f}%</span></div>"
        )
    status = f"charlib-status charlib-{prediction.status.replace(' ', '-')}"
    head = f"<div class='{status}'>{prediction.status}{note}{timing}</div>"
    return head + "".join(rows)


class DrawingPad:
    """An ipycanvas pad (white pen on black) with Predict and Clear; calls `predictor.predict`.

    Mouse and touch both draw. Widgets carry CSS classes (charlib-pad, charlib-canvas,
    charlib-predict, charlib-clear, charlib-pen, charlib-auto, charlib-results, charlib-why,
    charlib-saliency, charlib-teach, charlib-label, charlib-save, charlib-saved, charlib-counts)
    for browser tests. Ticking "show why" adds the saliency maps of the top two guesses
    (`explain.of_prediction`) under the results; the teach row saves a drawing with its right
    character into `save_to` (default data/mine, see `mine`).
    """

    def __init__(
        self,
        predictor,
        *,
        top_k: int = 5,
        width: int = CANVAS_SIZE,
        height: int = CANVAS_SIZE,
        pen: float = PEN,
        auto_predict: bool = False,
        save_to=None,
    ):
        self.predictor, self.top_k = predictor, top_k
        self.recorder = StrokeRecorder(width, height, pen)
        self.prediction = None
        self.teach = TeachRow(self, save_to)  # Save a wrong guess's drawing into data/mine
        self.widget = self._build(width, height, pen, auto_predict)
        self._connect()
        self.redraw()

    def _build(self, width: int, height: int, pen: float, auto_predict: bool):
        """The canvas and controls, each with its CSS class; returns the pad's outer box."""
        import ipywidgets as w
        from ipycanvas import Canvas

        self.canvas = Canvas(
            width=width, height=height, layout=w.Layout(width=f"{width}px", height=f"{height}px")
        )
        self.canvas.add_class("charlib-canvas")
        self.predict_button = w.Button(description="Predict", button_style="primary", icon="search")
        self.clear_button = w.Button(description="Clear", icon="trash")
        self.pen_slider = w.FloatSlider(
            value=pen, min=0.02, max=0.15, step=0.01, description="pen width", readout_format=".2f"
        )
        self.auto_box = w.Checkbox(value=auto_predict, description="predict when a stroke ends")
        self.results = w.HTML(results_html(None), layout=w.Layout(width="360px"))
        self.why_box = w.Checkbox(value=False, description="show why")
        self.saliency = w.HTML("", layout=w.Layout(width="360px", display="none"))
        self.strokes_label = w.Label("0 strokes")
        for widget, name in [
            (self.predict_button, "predict"),
            (self.clear_button, "clear"),
            (self.pen_slider, "pen"),
            (self.auto_box, "auto"),
            (self.results, "results"),
            (self.strokes_label, "strokes"),
            (self.why_box, "why"),
            (self.saliency, "saliency"),
        ]:
            widget.add_class(f"charlib-{name}")
        controls = w.VBox(
            layout=w.Layout(margin="0 0 0 16px"),
            children=[
                w.HBox([self.predict_button, self.clear_button]),
                self.pen_slider,
                self.auto_box,
                self.strokes_label,
                self.results,
                self.why_box,
                self.saliency,
                self.teach.widget,
            ],
        )
        box = w.HBox([self.canvas, controls], layout=w.Layout(width="max-content"))
        box.add_class("charlib-pad")
        return box

    def _connect(self) -> None:
        """Mouse and touch events to the recorder; buttons and the pen slider to their actions."""
        c = self.canvas
        c.on_client_ready(self._client_ready)
        c.on_mouse_down(lambda x, y: self._dot(self.recorder.down(x, y)))
        c.on_mouse_move(lambda x, y: self._segment(self.recorder.move(x, y)))
        c.on_mouse_up(lambda x, y: self._stroke_end(self.recorder.up(x, y)))
        c.on_mouse_out(lambda x, y: self._stroke_end(self.recorder.out(x, y)))
        c.on_touch_start(lambda t: self._dot(self.recorder.touch_start(t)))
        c.on_touch_move(lambda t: self._segment(self.recorder.touch_move(t)))
        c.on_touch_end(lambda t: self._stroke_end(self.recorder.touch_end(t)))
        c.on_touch_cancel(lambda t: self._stroke_end(self.recorder.touch_cancel(t)))
        self.predict_button.on_click(lambda _: self.predict())
        self.clear_button.on_click(lambda _: self.clear())
        self.pen_slider.observe(self._pen_changed, names="value")
        self.why_box.observe(lambda _: self.show_why(), names="value")

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    @property
    def strokes(self) -> Strokes:
        """What is on the pad, as the Predictor receives it."""
        return self.recorder.strokes

    def _style(self) -> None:
        c = self.canvas
        c.stroke_style = c.fill_style = "white"
        c.line_width = self.recorder.drawing.pen_px
        c.line_cap = c.line_join = "round"

    def _dot(self, point) -> None:
        if point is not None:
            self.canvas.fill_circle(*point, self.recorder.drawing.pen_px / 2)
            self._count()

    def _segment(self, segment) -> None:
        if segment is not None:
            (x0, y0), (x1, y1) = segment
            self.canvas.stroke_line(x0, y0, x1, y1)

    def _stroke_end(self, segment) -> None:
        self._segment(segment)
        if self.auto_box.value and not self.recorder.drawing.empty:
            self.predict()

    def _count(self) -> None:
        n = len(self.recorder.drawing.strokes)
        self.strokes_label.value = f"{n} stroke{'' if n == 1 else 's'}"

    def _pen_changed(self, change) -> None:
        self.recorder.set_pen(change["new"])
        self.redraw()

    def _client_ready(self) -> None:
        # A page that connects after the cell ran (a reload, Voila) missed ipycanvas's one-off
        # "switch to this canvas" message and would drop every later draw command: forget which
        # canvas was current so the next command names it again, then paint everything.
        self.canvas._canvas_manager._current_canvas = None
        self.redraw()

    def redraw(self) -> None:
        """Paint the canvas from the recorded strokes (black background, white round pen)."""
        from ipycanvas import hold_canvas

        c = self.canvas
        with hold_canvas():
            c.clear()
            c.fill_style = "black"
            c.fill_rect(0, 0, c.width, c.height)
            self._style()
            for stroke in self.recorder.drawing.strokes:
                for x, y in stroke:
                    c.fill_circle(x, y, self.recorder.drawing.pen_px / 2)
                if len(stroke) > 1:
                    c.stroke_lines(stroke)
        self._count()

    def draw(self, drawing: Strokes) -> None:
        """Put scripted strokes on the pad (scaled to its size), as if drawn by hand."""
        self.recorder.load(drawing)
        self.pen_slider.value = self.recorder.drawing.pen  # redraws when the pen changes
        self.redraw()

    def predict(self):
        """Run the model on the pad's strokes and show the top guesses; returns the Prediction."""
        start = time.perf_counter()
        try:
            self.prediction = self.predictor.predict(self.strokes, top_k=self.top_k)
        except Exception as e:  # shown where the user looks; a callback's traceback is hidden
            self.results.value = (
                f"<div class='charlib-error' style='color:#b42318'>prediction failed: "
                f"{html.escape(f'{type(e).__name__}: {e}')}</div>"
            )
            raise
        seconds = time.perf_counter() - start
        device = str(getattr(self.predictor, "device", ""))
        self.results.value = results_html(self.prediction, seconds=seconds, device=device)
        self.show_why()
        return self.prediction

    def show_why(self) -> None:
        """With "show why" ticked and a guess made, the saliency of the top two guesses as a
        PNG under the results; otherwise the area is empty and hidden."""
        shown = self.why_box.value and self.prediction is not None and not self.prediction.blank
        self.saliency.layout.display = None if shown else "none"
        if not shown:
            self.saliency.value = ""
            return
        try:
            why = explain.of_prediction(self.predictor, self.prediction, top=2)
        except ValueError as e:  # e.g. a predictor with no torch weights: said where one looks
            self.saliency.value = f"<div class='charlib-error'>{html.escape(str(e))}</div>"
            return
        buffer = io.BytesIO()
        saliency_figure(why.image, why.maps, why.titles).savefig(buffer, format="png", dpi=100)
        data = base64.b64encode(buffer.getvalue()).decode()
        self.saliency.value = f"<img src='data:image/png;base64,{data}' style='width:100%'>"

    def use(self, predictor) -> None:
        """Switch the pad to another model (a fine-tuned run): the drawing stays, the guesses
        are asked again."""
        self.predictor = predictor
        self.teach.refresh()
        if not self.recorder.drawing.empty:
            self.predict()

    def clear(self) -> None:
        """Forget the strokes, blank the canvas and the results."""
        self.recorder.clear()
        self.prediction = None
        self.results.value = results_html(None)
        self.show_why()
        self.redraw()


class TeachRow:
    """Under the pad: the right character (typed, or picked from the run's classes), Save, and
    how many drawings are saved per character (`mine.save`, `mine.counts`)."""

    def __init__(self, pad: DrawingPad, save_to=None):
        import ipywidgets as w

        self.pad, self.dest = pad, save_to
        self.label = w.Combobox(
            placeholder="the right character", ensure_option=False, layout=w.Layout(width="150px")
        )
        self.save_button = w.Button(description="Save", icon="save")
        self.message = w.HTML("")
        self.counts = w.HTML("")
        for widget, name in [
            (self.label, "label"),
            (self.save_button, "save"),
            (self.message, "saved"),
            (self.counts, "counts"),
        ]:
            widget.add_class(f"charlib-{name}")
        head = w.HTML("<b>Wrong?</b> Type or pick the right character, then Save.")
        self.widget = w.VBox(
            [head, w.HBox([self.label, self.save_button]), self.message, self.counts]
        )
        self.widget.add_class("charlib-teach")
        self.save_button.on_click(lambda _: self.save())
        self.refresh()

    @property
    def folder(self):
        return self.dest or mine.default_dir()

    def refresh(self) -> None:
        """The characters on offer (the pad's run's classes) and the counts saved so far."""
        self.label.options = [code_to_char(c) for c in self.pad.predictor.classes]
        found = mine.counts(self.folder)
        self.counts.value = (
            f"<span style='color:#666'>saved: {html.escape(mine.counts_line(found))}</span>"
        )

    def save(self):
        """Save the pad's drawing as an example of the chosen character; returns the PNG's path,
        or None with the reason shown (no character, not one of the run's, nothing drawn...)."""
        pad = self.pad
        guess = pad.prediction[0]["char"] if pad.prediction else None
        run = getattr(getattr(pad.predictor, "run_dir", None), "name", None)
        try:
            path = mine.save(
                pad.strokes, self.label.value, image=pad.predictor.prepare(pad.strokes),
                dest=self.dest, classes=pad.predictor.classes, note={"guess": guess, "run": run},
            )  # fmt: skip
        except (ValueError, OSError) as e:
            self.message.value = (
                f"<span style='color:#b42318'>not saved: {html.escape(str(e), quote=False)}</span>"
            )
            return None
        self.message.value = (
            f"<span style='color:#1f6f3a'>saved as {path.parent.name}/{path.name}</span>"
        )
        self.label.value = ""
        self.refresh()
        return path
