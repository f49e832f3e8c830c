"""The shipped reference model: its file matches its card, it reads real handwriting, and it is
what every entry point uses when runs/ holds no trained run, without ever being written to."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from charlib.common import paths
from charlib.common.files import file_digest
from charlib.data.loading import load_split
from charlib.inference import real
from charlib.inference.infer import Predictor
from charlib.training import checkpoint, train

from conftest import hashes, snapshot, train_tiny

SHIPPED = paths.reference_dir()
pytestmark = pytest.mark.skipif(SHIPPED is None, reason="this checkout has no reference model")
MAX_MB = 25  # all the shipped files together
TARGET = 0.865  # top-1 on the whole shared EMNIST test split


@pytest.fixture
def empty_runs(tmp_path, monkeypatch) -> Path:
    """A runs/ folder with no trained run in it."""
    runs = tmp_path / "runs"
    monkeypatch.setenv("CHARLIB_RUNS_DIR", str(runs))
    paths._said.clear()
    return runs


def test_card_describes_the_shipped_file():
    card = paths.reference_card()
    assert file_digest(SHIPPED / "best.pt") == card["sha256"]
    total = sum(p.stat().st_size for p in SHIPPED.iterdir()) / 1e6
    assert total <= MAX_MB
    ckpt = checkpoint.load(SHIPPED / "best.pt")  # weights_only: a file that cannot carry code
    assert len(ckpt["classes"]) == card["classes"] == 62
    floats = [v for v in ckpt["model"].values() if v.is_floating_point()]
    assert floats and all(v.dtype == torch.float16 for v in floats)
    assert card["accuracy"] >= TARGET and card["top5_accuracy"] >= 0.99
    assert "EMNIST" in card["measured_on"] and card["test_images"] > 14_000
    text = (SHIPPED / "CARD.md").read_text()
    assert card["rebuild"] in text and f"{card['accuracy']:.2%}" in text


@pytest.mark.realdata
def test_reference_scores_as_its_card_says_on_real_handwriting(shared_data, empty_runs):
    """The whole shared test split through the run's evaluation path, then a seeded uniform
    sample through the Predictor (the pad's and the API's path) as the card says."""
    card = paths.reference_card()
    scored = real.score("reference", shared_data, split="test", device="cpu")
    assert scored["n_images"] == card["test_images"] and scored["classes_missing"] == []
    assert scored["accuracy"] == pytest.approx(card["accuracy"], abs=0.002)
    test = load_split(shared_data, "test", progress=False)
    pick = np.random.default_rng(0).choice(len(test), 300, replace=False)
    answers = Predictor.from_run("reference", device="cpu").predict_many(list(test.images[pick]))
    truth = np.asarray(test.classes)[test.labels[pick]]
    got = np.mean([a[0]["code"] == t for a, t in zip(answers, truth, strict=True)])
    assert got >= card["accuracy"] - 0.06  # 300 images: a few points of sampling noise


@pytest.mark.realdata
def test_a_real_emnist_A_reads_as_A(shared_data, empty_runs):
    test = load_split(shared_data, "test", progress=False)
    a = test.images[test.labels == test.classes.index(65)][:5]
    answers = Predictor.from_run(None, device="cpu").predict_many(list(a))
    assert sum(p[0]["code"] == 65 for p in answers) >= 4


def test_no_trained_run_means_the_reference_said_once(empty_runs, capsys):
    before = hashes(SHIPPED)
    assert paths.resolve_run(None) == empty_runs / paths.REFERENCE_RUN
    assert paths.resolve_run("latest") == paths.resolve_run("reference")
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "using the reference model" in err[0]
    assert f"{paths.reference_card()['accuracy']:.1%} on the EMNIST test" in err[0]
    copy = empty_runs / paths.REFERENCE_RUN / "best.pt"
    assert file_digest(copy) == paths.reference_card()["sha256"]
    assert hashes(SHIPPED) == before


def test_a_trained_run_wins_over_the_reference_copy(empty_runs):
    train_tiny(empty_runs / "mine")
    paths.reference_run()  # the copy is newer than the user's run
    assert paths.resolve_run(None) == empty_runs / "mine"


@pytest.mark.realdata
def test_evaluating_the_reference_writes_under_runs_never_into_the_package(shared_data, empty_runs):
    from charlib.inference.evaluate import evaluate_run

    before = snapshot(SHIPPED)
    result = evaluate_run("reference", data=shared_data, per_class=2, device="cpu")
    written = empty_runs / paths.REFERENCE_RUN
    assert all((written / name).is_file() for name in result["files"])
    assert snapshot(SHIPPED) == before
    assert not (SHIPPED / "metrics.json").exists()


def test_training_into_the_reference_is_refused(empty_runs):
    with pytest.raises(ValueError, match="copy of the shipped reference model; train into"):
        train.check_target(empty_runs / paths.REFERENCE_RUN, resume=False, overwrite=True)


def test_a_changed_copy_is_replaced_and_a_changed_shipped_file_refused(
    empty_runs, tmp_path, monkeypatch
):
    copy = paths.reference_run() / "best.pt"
    copy.write_bytes(b"not the model")
    assert file_digest(paths.reference_run() / "best.pt") == paths.reference_card()["sha256"]
    broken = tmp_path / "package"
    shutil.copytree(SHIPPED, broken)
    (broken / "best.pt").write_bytes(b"tampered")
    monkeypatch.setattr(paths, "reference_dir", lambda: broken)
    shutil.rmtree(empty_runs / paths.REFERENCE_RUN)
    with pytest.raises(ValueError, match="does not match its card's sha256; reinstall"):
        paths.reference_run()
    assert not (empty_runs / paths.REFERENCE_RUN / "best.pt").exists()


def test_saliency_explains_the_reference(empty_runs):
    from charlib.inference import explain
    from charlib.vision.strokes import SCRIPTED

    predictor = Predictor.from_run("reference", device="cpu")
    why = explain.saliency(predictor, SCRIPTED["A"], top=2, steps=8)
    assert why.maps.shape[0] == 2 and np.abs(why.maps).sum() > 0


@pytest.mark.realdata
def test_teach_it_fine_tunes_the_reference_into_a_new_run(shared_data, empty_runs, tmp_path):
    """Your drawings on top of the reference; the replayed originals come from the EMNIST at
    hand (the card's recorded folder is another machine's); the shipped files stay as they are."""
    from charlib.data import mine
    from charlib.training import finetune
    from charlib.vision.strokes import SCRIPTED

    for _ in range(mine.MIN_EXAMPLES):
        mine.save(SCRIPTED["A"], "A", dest=tmp_path / "mine")
    before = hashes(SHIPPED)
    summary = finetune.finetune(
        "reference", tmp_path / "mine", epochs=1, replay=1, device="cpu", progress=False
    )
    assert summary["run_dir"] == empty_runs / "reference-mine"
    ckpt = checkpoint.load(summary["run_dir"] / "best.pt")
    assert ckpt["classes"] == checkpoint.load(SHIPPED / "best.pt")["classes"]
    assert hashes(SHIPPED) == before


def test_serve_with_no_trained_run_answers_with_the_reference(empty_runs):
    from charlib.apps import serve
    from charlib.vision.strokes import SCRIPTED

    service = serve.load(None, "torch", device="cpu")
    health = service.health()
    assert health["run"] == paths.REFERENCE_RUN and health["classes"] == 62
    assert health["about"].startswith("the reference model: ResNet-18, ")
    assert "on the EMNIST test split" in health["about"]
    assert service.predictor.predict(SCRIPTED["A"])[0]["char"] == "A"
