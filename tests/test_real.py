"""Every accuracy names its data, and a run is scored on real handwriting whose classes may
differ from its own (an image of a character the run lacks is a miss, not left out)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from charlib.common import paths
from charlib.data.loading import load_split
from charlib.data.sources import data_name, split_label
from charlib.inference import real
from charlib.training import checkpoint
from charlib.workflow import pipeline


@pytest.mark.parametrize(
    ("source", "name"),
    [
        ("synth", "synth"),
        ("synth-small", "synth"),
        ("../shared/data/emnist-byclass", "EMNIST"),
        ("emnist", "EMNIST"),
        ("alphanum", "alphanum"),
        ("/home/me/data/alphanum/", "alphanum"),
        ("/home/me/my-letters", "my-letters"),
        ("/home/me/set.zip", "set"),
        (None, "unknown data"),
    ],
)
def test_data_names(source, name):
    assert data_name(source) == name
    assert split_label(source, "test") == f"{name} test"


def test_headline_names_each_figure_data():
    facts = {
        "best synth validation accuracy": "91.2%",
        "synth test accuracy": "90.0% (top-5 99.0%, 4,750 images)",
        "real (EMNIST) accuracy": "59.0% (top-5 80.0%, 14,525 images ...)",
    }
    assert pipeline.headline(facts) == "90.0% synth test · 59.0% real (EMNIST)"
    assert pipeline.headline({"best synth validation accuracy": "91.2%"}) == (
        "91.2% best synth validation"
    )
    shown = pipeline.headline({"test accuracy": "88.0% (...)"})  # a record from before
    assert shown == "88.0% test"


def test_run_summary_names_the_data_of_each_accuracy(tiny_run):
    saved = {
        n: (tiny_run / n).read_bytes()
        for n in ("metrics.json", real.RESULT)
        if (tiny_run / n).is_file()
    }
    try:
        (tiny_run / real.RESULT).unlink(missing_ok=True)  # another test may have scored it
        (tiny_run / "metrics.json").write_text(
            json.dumps({"accuracy": 0.5, "split": "test", "data": "synth-small"})
        )
        facts = pipeline.run_summary(tiny_run)
    finally:
        for name in ("metrics.json", real.RESULT):
            (tiny_run / name).unlink(missing_ok=True)
            if name in saved:
                (tiny_run / name).write_bytes(saved[name])
    keys = [k for k in facts if k.endswith("accuracy")]
    assert keys == ["best synth validation accuracy", "synth test accuracy"]
    assert not any(k.startswith("test") for k in facts)


def test_score_counts_classes_the_run_lacks_as_misses(tiny_run, make_dataset):
    classes = checkpoint.load(tiny_run / "best.pt")["classes"]
    assert 1000 not in classes
    source = make_dataset(codes=(65, 66, 1000), per_class=3)
    scored = real.score(tiny_run, source, device="cpu")
    test = load_split(source, "test", progress=False)
    assert scored["n_images"] == len(test) == 9
    assert scored["classes_missing"] == [1000]
    assert scored["accuracy"] <= 6 / 9  # the three images of 1000 cannot be right
    assert scored["restricted_accuracy"] >= scored["accuracy"]
    assert scored["label"] == f"real ({data_name(source)})"
    written = real.score_run(tiny_run, source, device="cpu")
    try:
        assert json.loads((tiny_run / real.RESULT).read_text())["accuracy"] == written["accuracy"]
        assert f"{written['label']} accuracy" in pipeline.run_summary(tiny_run)
    finally:
        (tiny_run / real.RESULT).unlink()


def test_score_agrees_with_its_definition(tiny_run, make_dataset):
    """Top-1 by hand from the model's own probabilities, classes open."""
    from charlib.training.model import predict_probs

    source = make_dataset(codes=(65, 66, 100), per_class=4)
    ckpt = checkpoint.load(tiny_run / "best.pt")
    test = load_split(source, "test", progress=False)
    model = checkpoint.model_from_checkpoint(ckpt)
    probs = predict_probs([model], test.images, ckpt["params"], next(model.parameters()).device)
    guessed = np.asarray(ckpt["classes"])[probs.numpy().argmax(1)]
    truth = np.asarray(test.classes)[test.labels]
    expected = float((guessed == truth).mean())
    assert real.score(tiny_run, source, device="cpu")["accuracy"] == pytest.approx(expected)


def test_resolve_real(tmp_path, monkeypatch):
    monkeypatch.setenv("CHARLIB_SHARED_DATA", str(tmp_path / "shared"))
    monkeypatch.setenv("CHARLIB_DATA_DIR", str(tmp_path / "data"))
    assert real.resolve_real("auto", "synth") is None  # none at hand
    found = tmp_path / "shared" / "emnist-byclass"
    found.mkdir(parents=True)
    (found / "test.zip").write_bytes(b"")
    assert real.resolve_real("auto", "synth") == found
    assert real.resolve_real("auto", str(found)) is None  # the run's own data
    assert real.resolve_real(None, "synth") is None
    assert real.resolve_real("/my/letters", "synth") == "/my/letters"


def test_recorded_emnist_elsewhere_reads_the_emnist_here(tmp_path, monkeypatch):
    monkeypatch.setenv("CHARLIB_SHARED_DATA", str(tmp_path / "shared"))
    monkeypatch.setenv("CHARLIB_DATA_DIR", str(tmp_path / "data"))
    elsewhere = "../far/away/emnist-byclass"
    assert paths.recorded_data(elsewhere) == elsewhere  # none here: as recorded (it says so)
    assert paths.recorded_data("synth") == "synth"
    here = tmp_path / "data" / "emnist"
    here.mkdir(parents=True)
    (here / "test.zip").write_bytes(b"")
    assert paths.recorded_data(elsewhere) == here
    assert paths.recorded_data(str(tmp_path / "other")) == str(tmp_path / "other")
