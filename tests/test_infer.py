"""Predictor: every input kind through one preprocessing path, blank and unsure results, ONNX."""

import io
import os

import numpy as np
import pytest
import torch
from PIL import Image

from charlib.common.paths import resolve_run
from charlib.data.loading import load_dataset
from charlib.inference.export import onnx as export_onnx
from charlib.inference.infer import Predictor
from charlib.training import checkpoint
from charlib.training.model import predict_logits
from charlib.vision import preprocess
from charlib.vision.strokes import Strokes, rasterize

from conftest import write_evil_checkpoint

A = Strokes([[(140, 40), (80, 240)], [(140, 40), (200, 240)], [(100, 160), (180, 160)]])


@pytest.fixture(scope="module")
def predictor(tiny_run):
    return Predictor.from_run(tiny_run, device="cpu")


def check_guesses(prediction, classes, k=5):
    assert prediction.status in ("ok", "unsure") and len(prediction) == k
    conf = [g["confidence"] for g in prediction]
    assert conf == sorted(conf, reverse=True) and 0 < sum(conf) <= 1 + 1e-6
    for g in prediction:
        assert g["code"] in classes and g["char"] == (
            chr(g["code"]) if g["code"] != 999 else "unknown"
        )
    assert prediction.image.shape == (28, 28) and prediction.image.dtype == np.uint8


def test_every_input_kind_gives_the_same_answer(predictor, tmp_path):
    drawn = rasterize(A)  # white on black, 280×280
    path = tmp_path / "a.png"
    Image.fromarray(255 - drawn).save(path)  # saved dark on light, like a scan
    inputs = {
        "strokes": A,
        "list of strokes": A.strokes,
        "path": path,
        "str path": str(path),
        "bytes": path.read_bytes(),
        "PIL": Image.open(path),
        "uint8 array": drawn,
        "float array": drawn / 255.0,
        "bool array": drawn > 127,
        "RGB array": np.repeat(drawn[..., None], 3, axis=2),
        "RGBA PIL": Image.fromarray(drawn).convert("RGBA"),
    }
    reference = predictor.predict(A)
    check_guesses(reference, predictor.classes)
    for name, x in inputs.items():
        got = predictor.predict(x)
        check_guesses(got, predictor.classes)
        assert [g["code"] for g in got][:3] == [g["code"] for g in reference][:3], name
        assert got[0]["confidence"] == pytest.approx(reference[0]["confidence"], abs=0.02), name


def test_prediction_is_the_training_eval_transform(predictor, tiny_run):
    """A test image through the Predictor gives exactly what evaluation computes for it."""
    test = load_dataset("synth-small").test.subset(1, 0)
    ckpt = checkpoint.load(tiny_run / "best.pt")
    model = checkpoint.model_from_checkpoint(ckpt, "cpu")
    logits = predict_logits(model, test.images, ckpt["params"], torch.device("cpu"))
    expected = torch.softmax(logits, 1).numpy()
    assert np.allclose(predictor.probabilities(test.images), expected, atol=1e-5)


def test_ink_is_cropped_and_framed_like_the_training_images(predictor):
    small = np.zeros((400, 400), np.uint8)
    small[300:340, 40:60] = 255  # a small mark in a corner of a big frame
    img = predictor.prepare(small)
    box = preprocess.ink_box(img)
    assert box is not None
    height = box[1] - box[0]
    assert abs(height / 28 - predictor.fill) <= 2 / 28  # fills the frame as training ink does
    assert abs((box[0] + box[1]) / 2 - 14) <= 1  # centred
    assert img.max() == 255


@pytest.mark.parametrize(
    "blank",
    [
        Strokes([]),
        [],
        np.zeros((280, 280), np.uint8),
        np.full((280, 280), 255, np.uint8),  # white paper, nothing on it
        Image.new("RGB", (64, 64), "white"),
    ],
    ids=["no strokes", "empty list", "black", "white", "white PIL"],
)
def test_blank_input_is_nothing_drawn_not_a_guess(predictor, blank):
    prediction = predictor.predict(blank)
    assert prediction.blank and prediction.status == "nothing drawn"
    assert list(prediction) == [] and prediction.image is None


def test_a_stray_pixel_is_nothing_drawn(predictor):
    speck = np.zeros((280, 280), np.uint8)
    speck[10, 10] = 255
    assert predictor.predict(speck).blank


def test_unsure_flag_and_top_k(predictor):
    assert predictor.predict(A, unsure_below=1.01).unsure
    assert predictor.predict(A, unsure_below=0.0).status == "ok"
    assert len(predictor.predict(A, top_k=1)) == 1
    assert len(predictor.predict(A, top_k=1000)) == len(predictor.classes)
    with pytest.raises(ValueError, match="top_k must be a positive integer"):
        predictor.predict(A, top_k=0)


def test_predict_many_mixes_blank_and_drawn(predictor):
    out = predictor.predict_many([A, Strokes([]), A])
    assert [p.status != "nothing drawn" for p in out] == [True, False, True]
    assert out[0] == out[2]


def test_bad_inputs_fail_with_one_line_naming_the_thing(predictor, tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.png: no such image file"):
        predictor.predict(tmp_path / "nope.png")
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    with pytest.raises(ValueError, match="broken.png: unreadable image"):
        predictor.predict(broken)
    with pytest.raises(TypeError, match="cannot read a int as a drawing"):
        predictor.predict(3)
    with pytest.raises(ValueError, match="NaN"):
        predictor.predict(np.full((28, 28), np.nan))
    with pytest.raises(ValueError, match="expected an H×W or H×W×3/4 image array"):
        predictor.predict(np.zeros((2, 3, 4, 5)))
    with pytest.raises(ValueError, match="pen must be a share"):
        Strokes([[(1, 1)]], pen=3)


def test_onnx_matches_torch(tiny_run, predictor):
    path = export_onnx(tiny_run)
    assert path == tiny_run / "model.onnx" and path.stat().st_size > 1_000_000
    onnx = Predictor.from_run(tiny_run, backend="onnx")
    test = load_dataset("synth-small").test.subset(2, 0)
    for batch in (test.images[:1], test.images[:7], test.images):  # dynamic batch size
        assert np.abs(onnx.probabilities(batch) - predictor.probabilities(batch)).max() < 1e-4
    assert [g["code"] for g in onnx.predict(A)] == [g["code"] for g in predictor.predict(A)]
    with pytest.raises(ValueError, match="unknown backend 'tf'"):
        Predictor.from_run(tiny_run, backend="tf")


def test_resolve_run(tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    monkeypatch.setenv("CHARLIB_RUNS_DIR", str(runs))
    monkeypatch.setattr("charlib.common.paths.reference_dir", lambda: None)  # a build without one
    with pytest.raises(
        FileNotFoundError,
        match=r"no trained run in .*; train one first \(make run",
    ):
        resolve_run(None)
    for age, name in enumerate(["new", "old"]):
        (runs / name).mkdir(parents=True)
        (runs / name / "best.pt").write_bytes(b"")
        os.utime(runs / name / "best.pt", (1e9 - age, 1e9 - age))
    (runs / "untrained").mkdir()  # no best.pt: never "the latest run"
    assert resolve_run(None) == resolve_run("latest") == resolve_run("new") == runs / "new"
    assert resolve_run(str(runs / "old")) == resolve_run("old") == runs / "old"
    with pytest.raises(FileNotFoundError, match="untrained: no best.pt there; train first"):
        resolve_run("untrained")


def test_malicious_checkpoint_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    run = write_evil_checkpoint(tmp_path / "evil" / "best.pt", marker).parent
    with pytest.raises(ValueError) as info:
        Predictor.from_run(run)
    message = str(info.value)
    assert message.startswith(f"{run / 'best.pt'}: refused: loading this file would run code")
    assert "\n" not in message and "weights_only" not in message
    assert not marker.exists()


def test_mismatched_checkpoint_is_one_line_error(tiny_run, tmp_path):
    ckpt = checkpoint.load(tiny_run / "best.pt")
    ckpt["classes"] = ckpt["classes"][:10]  # weights still have 95 outputs
    run = tmp_path / "mismatch"
    buffer = io.BytesIO()
    torch.save(ckpt, buffer)
    run.mkdir()
    (run / "best.pt").write_bytes(buffer.getvalue())
    with pytest.raises(ValueError, match="checkpoint weights do not fit its own description"):
        Predictor.from_run(run)


@pytest.mark.parametrize("inverted", [False, True])
def test_saved_pad_drawing_reads_exactly_like_its_strokes(tiny_run, inverted):
    """A PNG of the pad's drawing (either polarity) is digital: it takes the strokes' path."""
    from charlib.data import photos
    from charlib.vision.strokes import SCRIPTED

    predictor = Predictor.from_run(tiny_run)
    for drawing in SCRIPTED.values():
        raster = rasterize(drawing)
        buffer = io.BytesIO()
        Image.fromarray(255 - raster if inverted else raster).save(buffer, format="PNG")
        assert preprocess.is_digital(preprocess.decode_any(buffer.getvalue())[0])
        assert np.array_equal(predictor.prepare(buffer.getvalue()), predictor.prepare(drawing))
    glyph = np.asarray(Image.fromarray(rasterize(SCRIPTED["A"])).resize((28, 28)))
    for degradations in [(), ("noise",), ("jpeg",), ("lined",)]:  # photos keep ink.find
        photo = photos.render(glyph, np.random.default_rng(0), degradations)
        assert not preprocess.is_digital(preprocess.decode_any(photo)[0]), degradations
