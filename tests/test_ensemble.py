"""Ensembles and test-time augmentation: the averaging, the views, the refusals, and every place
that takes them (Predictor, evaluation, the command line, the drawing pad)."""

import json

import numpy as np
import pytest
import torch

from charlib.apps.canvas import DrawingPad
from charlib.cli import main
from charlib.data.loading import load_dataset
from charlib.inference import evaluate
from charlib.inference.infer import Predictor
from charlib.training import augment, checkpoint
from charlib.vision.strokes import SCRIPTED


@pytest.fixture(scope="module")
def second_run(isolated_dirs):
    """Another tiny run like `tiny_run`, with another seed."""
    from charlib.training import train

    run = isolated_dirs / "runs" / "tiny-seed1"
    if not (run / "best.pt").is_file():
        ds = load_dataset("synth-small", progress=False)
        train.fit(
            ds.train.subset(4, 1),
            ds.validation,
            run_dir=run,
            device="cpu",
            epochs=1,
            stem="imagenet",
            batch_size=32,
            seed=1,
            progress=False,
            data_source="synth-small",
        )
    return run


def test_tta_views_shift_and_scale_never_flip():
    x = torch.zeros(1, 1, 28, 28)
    x[0, 0, 10, 12] = 1.0
    views = augment.tta_views(x)
    assert len(views) == len(augment.TTA_VIEWS) and views[0] is x
    peaks = [divmod(int(v[0, 0].argmax()), 28) for v in views[1:5]]
    assert peaks == [(10, 13), (10, 11), (11, 12), (9, 12)]  # right, left, down, up by 1 px
    square = torch.zeros(1, 1, 28, 28)
    square[..., 10:18, 10:18] = 1.0  # an 8 px square in the middle
    *_, small, big = augment.tta_views(square)
    assert small.sum() < square.sum() < big.sum()  # 0.9 and 1.1 times its side


def test_an_ensemble_averages_its_members(tiny_run, second_run):
    test = load_dataset("synth-small").test.subset(2, 0).images
    one, two = Predictor.from_run(tiny_run), Predictor.from_run(second_run)
    both = Predictor.from_runs([tiny_run, second_run])
    expected = (one.probabilities(test) + two.probabilities(test)) / 2
    assert np.abs(both.probabilities(test) - expected).max() < 1e-5
    assert both.runs == [tiny_run, second_run]
    assert len(both.predict(SCRIPTED["A"], top_k=5)) == 5


def test_tta_averages_views_and_keeps_probabilities(tiny_run):
    test = load_dataset("synth-small").test.subset(2, 0).images
    plain, tta = Predictor.from_run(tiny_run), Predictor.from_run(tiny_run, tta=True)
    p = tta.probabilities(test)
    assert np.allclose(p.sum(1), 1, atol=1e-5) and not np.allclose(p, plain.probabilities(test))
    with pytest.raises(ValueError, match="test-time augmentation runs with backend='torch'"):
        Predictor.from_run(tiny_run, backend="onnx", tta=True)


def test_members_must_share_classes_and_input(tiny_run, tmp_path):
    ckpt = checkpoint.load(tiny_run / "best.pt")
    other = {**ckpt, "classes": ckpt["classes"][:-1]}
    with pytest.raises(ValueError, match="has other classes than .* must share classes"):
        checkpoint.check_members([ckpt, other], ["a", "b"])
    bigger = {**ckpt, "params": {**ckpt["params"], "img_size": 32}}
    with pytest.raises(ValueError, match="b has img_size 32, a 28; ensemble members must share"):
        checkpoint.check_members([ckpt, bigger], ["a", "b"])
    checkpoint.save(tmp_path / "odd" / "best.pt", bigger)
    with pytest.raises(ValueError, match="must share image size"):
        Predictor.from_runs([tiny_run, tmp_path / "odd"])


def test_evaluation_takes_an_ensemble_and_tta(tiny_run, second_run):
    single = evaluate.predict_split(tiny_run, "test", per_class=2)
    same = evaluate.predict_split([tiny_run, tiny_run], "test", per_class=2)
    assert np.abs(single.probs - same.probs).max() < 1e-5  # an ensemble of one model is it
    both = evaluate.predict_split([tiny_run, second_run], "test", per_class=2, tta=True)
    assert both.run["ensemble of"] == "tiny, tiny-seed1"
    assert both.run["test-time augmentation"] == "on"
    assert 0 <= evaluate.metrics(both)["accuracy"] <= 1


def test_cli_ensemble_evaluation_is_printed_not_written(tiny_run, second_run, capsys):
    before = {p.name: p.stat().st_mtime_ns for p in tiny_run.iterdir()}
    args = ["evaluate", "--ensemble", str(tiny_run), str(second_run), "--tta", "--per-class", "2"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert out.startswith("ensemble of 2 with TTA on synth test (") and "accuracy" in out
    assert {p.name: p.stat().st_mtime_ns for p in tiny_run.iterdir()} == before
    assert main(["predict", "--ensemble", str(tiny_run), str(second_run), "--image", "x"]) == 1


def test_the_pad_draws_with_an_ensemble(tiny_run, second_run):
    pad = DrawingPad(Predictor.from_runs([tiny_run, second_run], tta=True), top_k=5)
    pad.draw(SCRIPTED["7"])
    assert len(pad.predict()) == 5 and pad.results.value.count("charlib-prediction") == 5


@pytest.mark.slow
def test_reproduce_retrains_a_run_to_identical_metrics_on_the_cpu(isolated_dirs, capsys):
    from charlib.common import paths
    from charlib.data import loading
    from charlib.training import train

    ds = load_dataset("synth-small", progress=False)
    train_set, val_set = loading.smoke_subsets(ds, 3)
    source = paths.runs_dir() / "repro-src"
    train.fit(
        train_set,
        val_set,
        run_dir=source,
        device="cpu",
        epochs=2,
        batch_size=64,
        steps_per_epoch=8,  # as a time budget would plan it: a share of the data per epoch
        stem="imagenet",
        seed=3,
        smoke=True,
        data_source="synth-small",
        progress=False,
    )
    before = {p.name: p.read_bytes() for p in source.iterdir()}
    assert main(["reproduce", "repro-src"]) == 0
    out = capsys.readouterr().out
    assert "repro-src-reproduced" in out and out.strip().endswith("identical metrics")
    again = paths.runs_dir() / "repro-src-reproduced"
    history = [r["images"] for r in json.loads((again / "history.json").read_text())]
    assert history == [8 * 64, 8 * 64]  # the original's plan, not all the data
    assert {p.name: p.read_bytes() for p in source.iterdir()} == before  # measured, not rewritten
    assert main(["reproduce", "repro-src"]) == 1  # the reproduction is never overwritten
    assert "already holds a trained run" in capsys.readouterr().err


@pytest.mark.notebook
def test_notebook_04_shows_the_run_against_tta_and_an_ensemble(tiny_run, second_run, tmp_path):
    from notebook_outputs import errors, outputs

    from charlib.workflow import pipeline

    params = {"RUN_NAME": "tiny", "PER_CLASS": 2, "TTA": True, "ENSEMBLE": [str(second_run)]}
    [result] = pipeline.run_all(
        params, only=["04"], reports=tmp_path, progress=False, cell_timeout=300
    )
    assert not errors(outputs(result.executed))
    page = result.html.read_text()
    assert "tiny with TTA" in page and "tiny + tiny-seed1 with TTA" in page
    assert page.count("forward passes per image") == 2  # the heading's text and the table
