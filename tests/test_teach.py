"""Teach it your hand: saving drawings into data/mine (`mine`), fine-tuning a run on them
(`finetune`, `charlib finetune`), and the served page's save endpoint (`POST /mine`)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image

from charlib import cli
from charlib.apps import serve
from charlib.data import handwriting, mine
from charlib.data.loading import load_dataset
from charlib.training import checkpoint, finetune
from charlib.vision.strokes import SCRIPTED, Strokes

from conftest import hashes, write_evil_checkpoint

A = SCRIPTED["A"]


def script(char: str, seed: int) -> Strokes:
    """A drawing of `char` in a script hand (the Hershey script fonts, not in the built-in data)."""
    rng = np.random.default_rng([seed, ord(char)])
    return handwriting.as_strokes(handwriting.drawing(ord(char), rng, handwriting.SCRIPT_FONTS))


def save_examples(dest, chars: str, n: int) -> None:
    for char in chars:
        for i in range(n):
            mine.save(script(char, i), char, dest=dest)


# Saving ---------------------------------------------------------------------------------------


def test_save_writes_png_and_strokes_under_the_code(tmp_path):
    png = mine.save(A, "A", dest=tmp_path, note={"guess": "H"})
    assert png == tmp_path / "65" / "00001.png"
    record = json.loads(png.with_suffix(".json").read_text())
    assert record["label"] == "A" and record["code"] == 65 and record["note"] == {"guess": "H"}
    assert Strokes.from_dict(record["drawing"]) == A  # the strokes come back exactly
    img = np.asarray(Image.open(png))
    assert img.shape == (28, 28) and img[0, 0] == 255 and img.min() == 0  # dark on light
    assert mine.counts(tmp_path) == {65: 1}
    assert mine.counts_line(mine.counts(tmp_path)) == "A ×1 (1 examples)"


def test_save_never_overwrites(tmp_path):
    first = mine.save(A, "A", dest=tmp_path)
    before = first.read_bytes()
    (tmp_path / "65" / "00002.png").write_bytes(b"the user's own file")  # a gap filled by hand
    (tmp_path / "65" / "00003.json").write_text("{}")
    second = mine.save(SCRIPTED["7"], "A", dest=tmp_path)
    assert second.name == "00004.png"  # 2 holds a PNG, 3 a JSON: both kept as they were
    assert first.read_bytes() == before
    assert (tmp_path / "65" / "00002.png").read_bytes() == b"the user's own file"
    assert (tmp_path / "65" / "00003.json").read_text() == "{}"
    assert not (tmp_path / "65" / "00002.json").exists()
    assert mine.counts(tmp_path) == {65: 3}


@pytest.mark.parametrize(
    ("label", "words"),
    [
        (None, "choose the right character"),
        ("", "choose the right character"),
        ("  ", "choose the right character"),
        ("AB", "one character"),
        ("\x07", "not a printable character"),
        (" ", "choose the right character"),
        ("\u200b", "not a printable character"),
        ("é", "not one of the run's 3 classes"),
    ],
)
def test_bad_labels_are_refused_and_nothing_is_written(tmp_path, label, words):
    with pytest.raises(ValueError, match=words):
        mine.save(A, label, dest=tmp_path, classes=(65, 66, 999))
    assert not any(tmp_path.iterdir())


def test_label_codes():
    assert mine.label_code("A") == 65 and mine.label_code(66) == 66
    assert mine.label_code("unknown") == 999
    with pytest.raises(ValueError, match="not one of the run's"):
        mine.label_code("C", classes=(65, 66))


def test_nothing_drawn_is_not_saved(tmp_path):
    with pytest.raises(ValueError, match="nothing drawn"):
        mine.save(Strokes(), "A", dest=tmp_path)
    assert not any(tmp_path.iterdir())


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_unwritable_folder_is_one_line(tmp_path):
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(PermissionError, match="cannot save into .*writable"):
            mine.save(A, "A", dest=tmp_path / "mine")
    finally:
        tmp_path.chmod(0o700)


def test_folder_in_the_way_is_one_line(tmp_path):
    (tmp_path / "mine").write_text("a file where the folder should be")
    with pytest.raises(PermissionError, match="cannot save into"):
        mine.save(A, "A", dest=tmp_path / "mine")
    assert (tmp_path / "mine").read_text() == "a file where the folder should be"


def test_the_loader_reads_saved_drawings_and_skips_their_strokes(tmp_path):
    save_examples(tmp_path, "Ab", 3)
    ds = load_dataset(tmp_path, val_fraction=0, test_fraction=0, progress=False)
    assert len(ds.train) == 6 and ds.classes == (65, 98)
    assert not ds.report.skipped  # the .json files are not "unreadable images"


# Fine-tuning ----------------------------------------------------------------------------------


def test_finetune_makes_a_new_run_and_leaves_the_old_one(tiny_run, tmp_path):
    save_examples(tmp_path / "mine", "A7", 3)
    before = hashes(tiny_run)
    summary = finetune.finetune(
        tiny_run, tmp_path / "mine", epochs=1, replay=2, device="cpu", progress=False
    )
    new = summary["run_dir"]
    assert new == tiny_run.parent / "tiny-mine" and (new / "best.pt").is_file()
    assert hashes(tiny_run) == before  # the run it started from is untouched
    ckpt = checkpoint.load(new / "best.pt")
    assert ckpt["classes"] == checkpoint.load(tiny_run / "best.pt")["classes"]
    params = ckpt["params"]
    assert params["init_from"] == str(tiny_run / "best.pt")
    assert params["finetune"]["counts"] == {"7": 3, "A": 3}
    assert params["data"] == "synth-small"  # evaluation reads the original test split
    # 2 classes × 3 examples × REPEAT, plus 2 replayed per class of the run's classes
    assert params["train_images"] == 6 * finetune.REPEAT + 2 * len(ckpt["classes"])
    first = hashes(new)
    again = finetune.finetune(
        tiny_run, tmp_path / "mine", epochs=1, replay=0, device="cpu", progress=False
    )
    assert again["run_dir"] == tiny_run.parent / "tiny-mine-2"  # never over the first
    assert hashes(new) == first


def test_finetune_starts_from_the_runs_weights(tiny_run, tmp_path):
    """Epoch 0 of a fine-tune is the run itself: with lr 0 the weights stay the run's."""
    from charlib.training import train

    ds = load_dataset("synth-small", progress=False)
    train.fit(
        ds.train.subset(1, 0), ds.validation.subset(1, 0), run_dir=tmp_path / "r", device="cpu",
        epochs=1, lr=1e-12, batch_size=32, stem="imagenet", progress=False,
        init_from=tiny_run / "best.pt",
    )  # fmt: skip
    old = checkpoint.load(tiny_run / "best.pt")["model"]
    new = checkpoint.load(tmp_path / "r" / "best.pt")["model"]
    conv = next(k for k in old if k.endswith("conv1.weight"))
    assert np.allclose(old[conv].numpy(), new[conv].numpy(), atol=1e-6)


def test_finetune_refuses_too_few_examples(tiny_run, tmp_path):
    save_examples(tmp_path, "A", mine.MIN_EXAMPLES - 1)
    save_examples(tmp_path, "7", mine.MIN_EXAMPLES)
    with pytest.raises(ValueError, match=r"too few examples: A \(65\) has 2; save at least 3"):
        finetune.finetune(tiny_run, tmp_path, epochs=1, device="cpu", progress=False)
    assert not (tiny_run.parent / "tiny-mine-3").exists()


def test_finetune_refuses_empty_missing_and_unknown(tiny_run, tmp_path):
    with pytest.raises(FileNotFoundError, match="no examples folder"):
        finetune.finetune(tiny_run, tmp_path / "nope", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no saved examples"):
        finetune.finetune(tiny_run, tmp_path / "empty", progress=False)
    save_examples(tmp_path / "odd", "A", 3)
    mine.save(A, "é", dest=tmp_path / "odd")  # saved without a run's classes to check
    with pytest.raises(ValueError, match=r"not trained on: é \(233\)"):
        finetune.finetune(tiny_run, tmp_path / "odd", progress=False)


def test_finetune_refuses_an_unsafe_checkpoint(tmp_path):
    marker = tmp_path / "pwned"
    run = write_evil_checkpoint(tmp_path / "evil" / "best.pt", marker).parent
    save_examples(tmp_path / "mine", "A", 3)
    with pytest.raises(ValueError, match="refused|unsafe|not a charlib"):
        finetune.finetune(run, tmp_path / "mine", progress=False)
    assert not marker.exists()


def test_finetune_command_line(tiny_run, tmp_path, capsys):
    save_examples(tmp_path / "mine", "A7", 3)
    into = tmp_path / "tuned"
    argv = ["finetune", "--run", str(tiny_run), "--data", str(tmp_path / "mine")]
    argv += ["--into", str(into), "--epochs", "1", "--replay", "1", "--device", "cpu"]
    assert cli.main(argv) == 0
    assert (into / "best.pt").is_file()
    assert "fine-tuned in 1 epochs" in capsys.readouterr().out
    assert cli.main(argv) == 1  # the same target again: refused, the run kept
    err = capsys.readouterr().err.strip()
    assert err.startswith("charlib: error:") and "\n" not in err
    assert cli.main(["finetune", "--run", str(tiny_run), "--data", str(tmp_path / "x")]) == 1
    assert "no examples folder" in capsys.readouterr().err
    assert cli.main(argv[:5] + ["--replay", "-1"]) == 1
    assert "replay must be an integer of at least 0" in capsys.readouterr().err


# The served page's save endpoint ----------------------------------------------------------------

A_JSON = {"strokes": [[list(p) for p in s] for s in A.strokes], "width": 280, "height": 280}


@pytest.fixture(scope="module")
def saving(tiny_run, tmp_path_factory):
    from fastapi.testclient import TestClient

    folder = tmp_path_factory.mktemp("served") / "mine"
    service = serve.load(tiny_run, "torch", device="cpu", save_to=folder)
    with TestClient(serve.create_app(service)) as client:
        yield client, folder
    service.batcher.close()


def test_serve_saves_only_when_asked(tiny_run):
    from fastapi.testclient import TestClient

    service = serve.load(tiny_run, "torch", device="cpu")
    try:
        with TestClient(serve.create_app(service)) as client:
            answer = client.post("/mine", json={**A_JSON, "label": "A"})
            assert answer.status_code == 403 and "--save-to" in answer.json()["error"]
            assert client.get("/mine").json()["enabled"] is False
            assert client.get("/health").json()["saving"] is False
    finally:
        service.batcher.close()


def test_serve_saves_a_corrected_drawing(saving):
    client, folder = saving
    answer = client.post("/mine", json={**A_JSON, "label": "A", "guess": "H"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["saved"] == "65/00001.png" and body["counts"] == {"A": 1}
    record = json.loads((folder / "65" / "00001.json").read_text())
    assert record["note"] == {"run": "tiny", "guess": "H"}
    assert client.get("/mine").json()["summary"] == "A ×1 (1 examples)"


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({**A_JSON}, 422, "choose the right character"),
        ({**A_JSON, "label": ""}, 422, "choose the right character"),
        ({**A_JSON, "label": "AB"}, 422, "one character"),
        ({**A_JSON, "label": "\u0007"}, 422, "printable"),
        ({**A_JSON, "label": "é"}, 422, "not one of the run's"),
        ({**A_JSON, "label": 65}, 422, "'label' must be the character"),
        ({**A_JSON, "label": "A", "guess": ["x"]}, 422, "'guess'"),
        ({"strokes": [], "label": "A"}, 422, "nothing drawn"),
        ({**A_JSON, "label": "A", "colour": "red"}, 422, "colour"),
    ],
)
def test_serve_refuses_bad_saves(saving, body, status, words):
    client, folder = saving
    before = hashes(folder) if folder.exists() else {}
    answer = client.post("/mine", json=body)
    assert answer.status_code == status, answer.text
    assert words in answer.json()["error"]
    assert (hashes(folder) if folder.exists() else {}) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_serve_refuses_an_unwritable_save_folder(tiny_run, tmp_path, capsys):
    tmp_path.chmod(0o500)
    try:
        argv = ["serve", "--run", str(tiny_run), "--port", "0", "--save-to", str(tmp_path / "m")]
        assert cli.main(argv) == 1
    finally:
        tmp_path.chmod(0o700)
    assert "is not writable" in capsys.readouterr().err


def test_serve_refuses_a_file_as_save_folder(tiny_run, tmp_path, capsys):
    (tmp_path / "m").write_text("not a folder")
    argv = ["serve", "--run", str(tiny_run), "--port", "0", "--save-to", str(tmp_path / "m")]
    assert cli.main(argv) == 1
    assert "is not writable" in capsys.readouterr().err
    assert (tmp_path / "m").read_text() == "not a folder"


# The notebook's pad: the teach row --------------------------------------------------------------


@pytest.fixture(scope="module")
def predictor(tiny_run):
    from charlib.inference.infer import Predictor

    return Predictor.from_run(tiny_run, device="cpu")


def test_pad_saves_a_corrected_drawing(predictor, tmp_path):
    from charlib.apps.canvas import DrawingPad

    pad = DrawingPad(predictor, save_to=tmp_path / "mine")
    row = pad.teach
    assert "charlib-teach" in row.widget._dom_classes and "none saved yet" in row.counts.value
    assert len(row.label.options) == len(predictor.classes) and "A" in row.label.options
    assert row.save() is None and "nothing drawn" not in row.message.value  # no label first
    assert "choose the right character" in row.message.value
    row.label.value = "A"
    assert row.save() is None and "nothing drawn" in row.message.value  # an empty pad
    pad.draw(SCRIPTED["A"])
    guess = pad.predict()[0]["char"]
    row.label.value = "AB"
    assert row.save() is None and "one character" in row.message.value
    row.label.value = "é"
    assert row.save() is None and "not one of the run's" in row.message.value
    assert not (tmp_path / "mine").exists()  # nothing written by any refusal
    row.label.value = "A"
    path = row.save()
    assert (
        path == tmp_path / "mine" / "65" / "00001.png"
        and "saved as 65/00001.png" in row.message.value
    )
    assert "A ×1" in row.counts.value and row.label.value == ""
    record = json.loads(path.with_suffix(".json").read_text())
    assert record["note"] == {"guess": guess, "run": "tiny"}
    saved = np.asarray(Image.open(path))
    assert np.array_equal(255 - saved, predictor.prepare(SCRIPTED["A"]))  # what the model saw
    pad.use(predictor)  # switching runs keeps the drawing and asks again
    assert pad.prediction is not None and not pad.strokes.empty


def test_pad_default_folder_is_data_mine(predictor, isolated_dirs):
    from charlib.apps.canvas import DrawingPad

    pad = DrawingPad(predictor)
    assert pad.teach.folder == mine.default_dir() == isolated_dirs / "data" / "mine"


def test_saved_drawings_read_back(tmp_path):
    save_examples(tmp_path, "A7", 2)
    (tmp_path / "65" / "notes.json").write_text("not a drawing")  # the user's own file: skipped
    back = mine.drawings(tmp_path)
    assert [code for _, code in back] == [55, 55, 65, 65]
    first, expected = back[0][0], script("7", 0)
    assert len(first.strokes) == len(expected.strokes)
    for got, want in zip(first.strokes, expected.strokes, strict=True):
        assert np.allclose(got, want, atol=0.01)  # kept to 0.01 px


def test_serve_save_to_alone_means_data_mine(monkeypatch, isolated_dirs):
    seen = {}
    monkeypatch.setattr(serve, "serve", lambda run, **kw: seen.update(kw))
    assert cli.main(["serve", "--save-to"]) == 0
    assert seen["save_to"] == isolated_dirs / "data" / "mine"
    assert cli.main(["serve", "--save-to", "elsewhere"]) == 0 and seen["save_to"] == "elsewhere"
    assert cli.main(["serve"]) == 0 and seen["save_to"] is None  # off by default


def test_replay_zero_replays_nothing(tiny_run, tmp_path):
    """replay=0 trains on your examples alone (not on the whole original training split)."""
    save_examples(tmp_path / "mine", "A", 3)
    summary = finetune.finetune(
        tiny_run, tmp_path / "mine", name=str(tmp_path / "t"), epochs=1, replay=0,
        device="cpu", progress=False,
    )  # fmt: skip
    params = checkpoint.load(summary["run_dir"] / "best.pt")["params"]
    assert params["train_images"] == 3 * finetune.REPEAT
