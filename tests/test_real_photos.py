"""benchmarks/real_photos.py: file-name labels, the look / held-out split, the scores, and the
benchmark's main on a tiny folder of generated images with a tiny trained run (no real data)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from charlib.inference.infer import Predictor

from conftest import glyph, png_bytes

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location(
    "real_photos", ROOT / "benchmarks" / "real_photos.py"
)
rp = sys.modules.setdefault("real_photos", importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(rp)

CODES = (65, 66, 100)  # A, B, d: classes the tiny run (synth-small) has


def write_source(folder: Path, *, per_class: int = 6, size: int = 80) -> Path:
    """A source folder: <code>_<n>.png for CODES (dark on light, larger than the training images,
    so they take the photo path), plus a note and a stray image that are not named by the
    convention."""
    folder.mkdir(parents=True, exist_ok=True)
    for code in CODES:
        for n in range(1, per_class + 1):
            (folder / f"{code}_{n}.png").write_bytes(png_bytes(glyph(code, size, seed=n)))
    (folder / "notes.txt").write_text("where these came from\n")
    (folder / "A_1.png").write_bytes(png_bytes(glyph(65, size)))
    return folder


# File names ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, label",
    [
        ("65_3.jpg", ("A", 3)),
        ("48_0.png", ("0", 0)),
        ("122_1017.JPEG", ("z", 1017)),
        ("33_2.bmp", ("!", 2)),
        ("126_5.png", ("~", 5)),
        ("32_1.png", None),  # a space is not a character
        ("127_1.png", None),
        ("999_1.png", None),  # "no character" is not a label here
        ("A_1.png", None),
        ("65-1.png", None),
        ("65_1", None),
        ("65_1.png.txt", None),
        ("x65_1.png", None),
        ("65_.png", None),
    ],
)
def test_parse_name_reads_the_code_and_number(name, label):
    assert rp.parse_name(name) == label


# The look / held-out split ------------------------------------------------------------------------


def test_parts_are_fixed_by_the_number_alone():
    """The same n is in the same part whatever its code or source, run after run; about half."""
    first = [rp.part_of(n) for n in range(2000)]
    assert first == [rp.part_of(n) for n in range(2000)]
    assert set(first) == {"look", "held-out"}
    assert 900 < first.count("look") < 1100
    for n in (0, 7, 1017, 24045):  # the rule data/README.md states, so others can redo it
        even = hashlib.sha256(str(n).encode()).digest()[0] % 2 == 0
        assert rp.part_of(n) == ("look" if even else "held-out")


def test_parts_split_a_folder_into_two_disjoint_halves(tmp_path):
    folder = write_source(tmp_path / "src", per_class=12)
    every, report = rp.load(folder, "all")
    look, _ = rp.load(folder, "look")
    held, _ = rp.load(folder, "held-out")

    def names(photos):
        return {p.path.name for p in photos}

    assert names(look) & names(held) == set()
    assert names(look) | names(held) == names(every)
    assert look and held
    assert names(look) == names(rp.load(folder, "look")[0])  # deterministic
    # a writer's (card's) characters stay together: one n, one part
    assert {p.n for p in look}.isdisjoint({p.n for p in held})
    assert report["images"] == report["files_named"] == 36
    assert report["files_ignored"] == ["A_1.png", "notes.txt"]
    assert report["classes"] == "ABd" and report["letters"] == 36 and report["digits"] == 0


@pytest.mark.parametrize("make", ["none", "empty", "unnamed"])
def test_a_folder_without_images_is_one_clear_message(tmp_path, make):
    folder = tmp_path / "photos"
    if make != "none":
        folder.mkdir()
    if make == "unnamed":
        (folder / "IMG_0001.jpg").write_bytes(png_bytes(glyph(65, 40)))
    with pytest.raises(FileNotFoundError) as e:
        rp.load(folder, "all")
    assert str(folder) in str(e.value) and "\n" not in str(e.value)


def test_unknown_part_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown part 'test'"):
        rp.load(write_source(tmp_path / "src"), "test")


# Scores -------------------------------------------------------------------------------------------


def test_metrics_count_each_measure():
    ranked = [
        ["A", "4", "H"],  # right
        ["a", "A", "4"],  # wrong case: forgiven by the lenient score
        ["O", "0", "Q"],  # a look-alike of 0, digits-only right
        ["7", "x", "y", "z", "w", "1"],  # wrong, 1 not in the top 5, digits-only 7
        [],  # nothing drawn
        ["2", "Z"],  # right
    ]
    truth = ["A", "A", "0", "1", "B", "2"]
    got = rp.metrics(ranked, truth)
    assert got["n"] == 6
    assert got["top1"] == pytest.approx(2 / 6, abs=1e-4)
    assert got["top1_lenient"] == pytest.approx(4 / 6, abs=1e-4)
    assert got["top5"] == pytest.approx(4 / 6, abs=1e-4)
    assert got["nothing_drawn"] == 1
    assert got["nothing_drawn_share"] == pytest.approx(1 / 6, abs=1e-4)
    assert got["digit_drawings"] == 3
    assert got["digits_only_top1"] == pytest.approx(2 / 3, abs=1e-4)
    assert rp.metrics([], [])["nothing_drawn_share"] is None


def test_evenly_spreads_and_keeps_the_ends():
    assert rp.evenly(list(range(5)), 10) == [0, 1, 2, 3, 4]
    picked = rp.evenly(list(range(1000)), 60)
    assert len(picked) == len(set(picked)) == 60
    assert picked[0] == 0 and picked[-1] == 999


# The benchmark on a tiny trained run --------------------------------------------------------------


def test_predictions_are_predict_many_on_the_file_bytes(tiny_run, tmp_path, monkeypatch):
    monkeypatch.setattr(rp, "BATCH", 4)  # 18 images: several batches
    photos, _ = rp.load(write_source(tmp_path / "src", per_class=6), "all")
    predictor = Predictor.from_run(tiny_run, device="cpu")
    predictions, unreadable = rp.predict(predictor, photos)
    assert unreadable == [] and len(predictions) == 18
    for photo, pred in zip(photos, predictions, strict=True):
        assert len(pred) == len(predictor.classes)
        assert [g["char"] for g in pred[:3]] == [
            g["char"] for g in predictor.predict(photo.path, top_k=3)
        ]
        assert pred.image.shape == (predictor.size, predictor.size)


def test_main_scores_every_source_and_draws_the_misses(tiny_run, tmp_path, capsys):
    first = write_source(tmp_path / "first")
    second = write_source(tmp_path / "second", per_class=3, size=120)
    (second / "66_9.png").write_bytes(b"not an image")
    out = tmp_path / "results"
    args = [str(first), str(second), "--run", str(tiny_run), "--part", "all"]
    assert rp.main([*args, "--out", str(out), "--tag", "t", "--device", "cpu"]) == 0
    result = json.loads((out / "real_photos-t.json").read_text())
    assert [s["name"] for s in result["sources"]] == ["first", "second"]
    assert [s["images"] for s in result["sources"]] == [18, 10]
    (run,) = result["runs"]
    assert run["data"] == "synth-small" and run["run_dirs"] == [str(tiny_run.resolve())]
    assert result["machine"]["torch"] and result["lookalikes"]
    one, two = run["per_source"]["first"], run["per_source"]["second"]
    assert one["n"] == 18 and two["n"] == 9 and two["unreadable"] == ["66_9.png"]
    assert run["overall"]["n"] == 27
    hits = round(one["top1"] * 18) + round(two["top1"] * 9)
    assert run["overall"]["top1"] == pytest.approx(hits / 27, abs=1e-4)
    for source in (one, two):
        assert source["misses"] == round((1 - source["top1"]) * source["n"])
        if source["misses"]:
            picture = Image.open(source["gallery"])
            assert picture.format == "PNG" and min(picture.size) > 100
            assert np.asarray(picture.convert("L")).std() > 0
        else:
            assert source["gallery"] is None
    printed = capsys.readouterr().out
    assert "first" in printed and "second" in printed and "overall" in printed


def test_main_parts_add_up_to_all(tiny_run, tmp_path):
    folder = write_source(tmp_path / "src", per_class=8)
    counts = {}
    for part in rp.PARTS:
        args = [str(folder), "--run", str(tiny_run), "--part", part, "--device", "cpu"]
        assert rp.main([*args, "--out", str(tmp_path / "r")]) == 0
        result = json.loads((tmp_path / "r" / f"real_photos-{part}.json").read_text())
        counts[part] = result["runs"][0]["per_source"]["src"]["n"]
    assert counts["look"] + counts["held-out"] == counts["all"] == 24
    assert counts["look"] and counts["held-out"]


def test_ensemble_of_one_run_twice_scores_as_the_run(tiny_run, tmp_path):
    folder = write_source(tmp_path / "src")
    base = [str(folder), "--part", "all", "--device", "cpu", "--out", str(tmp_path / "r")]
    assert rp.main([*base, "--run", str(tiny_run), "--tag", "one"]) == 0
    twice = ["--run", str(tiny_run), "--run", str(tiny_run), "--ensemble", "--tag", "two"]
    assert rp.main([*base, *twice]) == 0
    one = json.loads((tmp_path / "r" / "real_photos-one.json").read_text())["runs"]
    two = json.loads((tmp_path / "r" / "real_photos-two.json").read_text())["runs"]
    assert len(two) == 1 and "+" in two[0]["run"] and len(two[0]["run_dirs"]) == 2
    assert two[0]["overall"] == one[0]["overall"]


@pytest.mark.parametrize(
    "argv, says",
    [
        (["{missing}"], "no such folder"),
        (["{empty}"], "no file named by the convention"),
    ],
)
def test_main_without_data_is_one_line(tmp_path, capsys, argv, says):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("nothing here\n")
    argv = [a.format(missing=tmp_path / "missing", empty=tmp_path / "empty") for a in argv]
    assert rp.main([*argv, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and says in err
    assert not (tmp_path / "r").exists()


def test_ensemble_needs_two_runs(tiny_run, tmp_path, capsys):
    folder = write_source(tmp_path / "src")
    args = [str(folder), "--run", str(tiny_run), "--ensemble", "--out", str(tmp_path / "r")]
    assert rp.main(args) == 2
    assert "--ensemble needs two" in capsys.readouterr().err
