"""benchmarks/pen_strokes.py: the UJI pen-data parsers, the lenient scoring, and the benchmark's
core on a tiny fake dataset with a tiny trained run (no real data needed)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from charlib.apps import serve
from charlib.inference.infer import Predictor
from charlib.vision.strokes import CANVAS_SIZE, PEN

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location(
    "pen_strokes", ROOT / "benchmarks" / "pen_strokes.py"
)
ps = sys.modules.setdefault("pen_strokes", importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(ps)

# The v1 files' layout (UJIpenchars-w01..w11), cut down: a header, a one-stroke "1" with a
# repeated point, and a two-stroke "T".
V1 = """\
.LEXICON "a" "b" "1" "T"
.COMMENT Class #01: [A] = { "a" , "A" }
.HIERARCHY CHARACTER

.COMMENT Lines ".DT 100" are artificial

.SEGMENT CHARACTER 0 ? "1"
.COMMENT Class [1]

.PEN_DOWN
 500  300
 500  300
 500 1300
.PEN_UP
.DT 100

.SEGMENT CHARACTER 1 ? "T"
.COMMENT Class [T]

.PEN_DOWN
 300  400
 900  400
.PEN_UP
.DT 100
.PEN_DOWN
 600  400
 600 1400
.PEN_UP
.DT 100
"""

# The v2 file's layout (ujipenchars2.txt), Latin-1 like the original: comments, a two-stroke "x",
# a one-stroke "o" from another writer, and an "ñ" (not one of the 62 scored characters).
V2 = """\
//
// UJI: 100 units per millimetre
//
// ASCII char: x
WORD x trn_UJI_W01-01
  NUMSTROKES 2
  POINTS 2 # 100 100 600 600
  POINTS 2 # 600 100 100 600
// ASCII char: o
WORD o tst_UPV_W42-02
  NUMSTROKES 1
  POINTS 5 # 300 100 500 300 300 500 100 300 300 100
// Non-ASCII char: ntilde
WORD \u00f1 trn_UJI_W01-01
  NUMSTROKES 1
  POINTS 2 # 0 0 10 10
"""


def write_fake(folder: Path, *, v1: bool = True, v2: bool = False) -> Path:
    """A data folder with the v1 sample as one writer's file, or the v2 sample, or both."""
    folder.mkdir(parents=True, exist_ok=True)
    if v1:
        (folder / "UJIpenchars-w07").write_text(V1)
        (folder / "UJIpenchars-w08").write_text(V1.replace('"T"', '"7"'))
    if v2:
        (folder / "ujipenchars2.txt").write_bytes(V2.encode("latin-1"))
    (folder / "README.md").write_text("# notes\nnot pen data\n")
    return folder


# Parsers ----------------------------------------------------------------------------------------


def test_v1_parser_keeps_characters_strokes_points_and_writer(tmp_path):
    kind, drawings = ps.parse_file(write_fake(tmp_path) / "UJIpenchars-w07")
    assert kind == "ujipenchars"
    assert [d.char for d in drawings] == ["1", "T"]
    assert {d.writer for d in drawings} == {"w07"}
    one, tee = drawings
    assert one.strokes == [[(500.0, 300.0), (500.0, 300.0), (500.0, 1300.0)]]
    assert tee.strokes == [[(300.0, 400.0), (900.0, 400.0)], [(600.0, 400.0), (600.0, 1400.0)]]
    assert one.origin == "UJIpenchars-w07:7"


def test_v2_parser_reads_latin1_and_writers(tmp_path):
    kind, drawings = ps.parse_file(write_fake(tmp_path, v1=False, v2=True) / "ujipenchars2.txt")
    assert kind == "ujipenchars2"
    assert [(d.char, d.writer) for d in drawings] == [
        ("x", "trn_UJI_W01"),
        ("o", "tst_UPV_W42"),
        ("\u00f1", "trn_UJI_W01"),
    ]
    assert drawings[0].strokes == [
        [(100.0, 100.0), (600.0, 600.0)],
        [(600.0, 100.0), (100.0, 600.0)],
    ]
    assert len(drawings[1].strokes[0]) == 5


@pytest.mark.parametrize(
    "text, where",
    [
        ("WORD a trn_UJI_W01-01\n  NUMSTROKES 1\n  POINTS 3 # 0 0 1 1\n", "f:3"),
        ("WORD a trn_UJI_W01-01\n  NUMSTROKES 2\n  POINTS 1 # 0 0\n", "f: ends 1"),
        ("WORD a trn_UJI_W01-01\n  NUMSTROKES 1\n  POINTS 1 # 0 zero\n", "f:3"),
    ],
)
def test_v2_parser_refuses_counts_that_disagree(text, where):
    with pytest.raises(ValueError, match=where):
        ps.parse_uji2(text, name="f")


def test_v1_parser_refuses_a_point_outside_a_stroke():
    text = '.SEGMENT CHARACTER 0 ? "a"\n 1 2\n'
    with pytest.raises(ValueError, match="f:2"):
        ps.parse_unipen(text, writer="w01", name="f")


def test_load_reads_every_writers_file(tmp_path):
    drawings, report = ps.load(write_fake(tmp_path / "pen"))
    assert [(d.char, d.writer) for d in drawings] == [
        ("1", "w07"),
        ("T", "w07"),
        ("1", "w08"),
        ("7", "w08"),
    ]
    assert report["formats"] == ["ujipenchars"]
    assert report["files_read"] == 2 and report["files_skipped"] == ["README.md"]
    assert report["writers"] == 2 and report["classes"] == 3


def test_load_scores_the_62_characters_and_reports_the_rest(tmp_path):
    drawings, report = ps.load(write_fake(tmp_path / "pen", v1=False, v2=True))
    assert [d.char for d in drawings] == ["x", "o"]
    assert report["formats"] == ["ujipenchars2"]
    assert report["drawings_in_files"] == 3 and report["drawings_scored"] == 2
    assert report["left_out"] == {"\u00f1": 1}
    assert report["writers"] == 2 and report["classes"] == 2


def test_load_refuses_v1_and_v2_together(tmp_path):
    """v2 holds every v1 drawing: read together they would be counted twice."""
    with pytest.raises(ValueError, match="both UJI v1 and v2"):
        ps.load(write_fake(tmp_path / "pen", v2=True))


@pytest.mark.parametrize("make", [False, True])
def test_no_data_is_one_clear_message(tmp_path, make):
    folder = tmp_path / "nothing"
    if make:
        folder.mkdir()
        (folder / "notes.txt").write_text("hello\n")
    with pytest.raises(FileNotFoundError) as e:
        ps.load(folder)
    assert str(folder) in str(e.value) and "data/README.md" in str(e.value)
    assert "\n" not in str(e.value)


# The pad's canvas -------------------------------------------------------------------------------


def test_on_pad_centres_and_keeps_the_aspect_ratio(tmp_path):
    tall = ps.Drawing("1", "w", [[(1000.0, 0.0), (1100.0, 2000.0)]], "f:1")
    drawing = ps.on_pad(tall)
    assert (drawing.width, drawing.height, drawing.pen) == (CANVAS_SIZE, CANVAS_SIZE, PEN)
    (x0, y0), (x1, y1) = drawing.strokes[0]
    assert y1 - y0 == pytest.approx(ps.FILL * CANVAS_SIZE)
    assert (x1 - x0) / (y1 - y0) == pytest.approx(100 / 2000)
    assert (x0 + x1) / 2 == pytest.approx(CANVAS_SIZE / 2)
    assert (y0 + y1) / 2 == pytest.approx(CANVAS_SIZE / 2)


# Scoring ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "guess, truth, forgiven",
    [
        ("c", "C", True),
        ("O", "0", True),
        ("o", "0", True),
        ("|", "1", True),
        ("l", "I", True),
        ("9", "q", True),
        ("q", "Q", True),
        ("9", "Q", False),  # groups do not chain
        ("S", "5", True),
        ("b", "6", True),
        ("a", "d", False),
        ("7", "1", False),
        ("u", "v", False),
    ],
)
def test_same_forgives_case_and_lookalikes_only(guess, truth, forgiven):
    assert ps.same(guess, truth) is forgiven


def test_score_counts_each_measure():
    ranked = [
        ["1", "l", "7"],  # right
        ["l", "1", "7"],  # wrong, forgiven, digits-only right
        ["7", "a", "b", "c", "d", "1"],  # wrong, 1 not in the top 5, digits-only wrong (7)
        ["a", "A", "b"],  # right
        [],  # nothing drawn
    ]
    truth = ["1", "1", "1", "a", "b"]
    got = ps.score(ranked, truth)
    assert got["n"] == 5
    assert got["top1"] == pytest.approx(2 / 5)
    assert got["top1_lenient"] == pytest.approx(3 / 5)
    assert got["top5"] == pytest.approx(3 / 5)
    assert got["digit_drawings"] == 3
    assert got["digits_top1_open"] == pytest.approx(1 / 3, abs=1e-4)
    assert got["digits_only_top1"] == pytest.approx(2 / 3, abs=1e-4)
    assert got["nothing_drawn"] == 1
    classes = ps.per_class(ranked, truth)
    assert list(classes) == ["1", "a", "b"]
    assert classes["1"]["most_wrong"] in {"l", "7"} and classes["a"]["most_wrong"] is None


# The benchmark's core on a tiny trained run -----------------------------------------------------


def test_batched_guesses_are_the_pads_own(tiny_run, tmp_path, monkeypatch):
    """Batches of predict_many give each drawing the guesses the pad (predict on its strokes)
    and the served page (the strokes as JSON, through serve.check_drawing) give it."""
    monkeypatch.setattr(ps, "BATCH", 3)  # 4 drawings: two batches
    drawings, _ = ps.load(write_fake(tmp_path / "pen"))
    predictor = Predictor.from_run(tiny_run, device="cpu")
    ranked = ps.guesses(predictor, drawings)
    assert len(ranked) == 4 and all(len(r) == len(predictor.classes) for r in ranked)
    for d, r in zip(drawings, ranked, strict=True):
        pad = ps.on_pad(d)
        assert [g["char"] for g in predictor.predict(pad, top_k=len(r))] == r
        sent = serve.check_drawing(pad.to_dict()["strokes"], CANVAS_SIZE, CANVAS_SIZE)
        assert predictor.predict(sent, top_k=1)[0]["char"] == r[0]


def test_main_writes_the_result_and_prints_the_table(tiny_run, tmp_path, capsys):
    folder = write_fake(tmp_path / "pen")
    out = tmp_path / "results"
    args = ["--run", str(tiny_run), "--run", str(tiny_run), "--data", str(folder)]
    assert ps.main([*args, "--out", str(out), "--tag", "t", "--device", "cpu"]) == 0
    result = json.loads((out / "pen_strokes-t.json").read_text())
    assert result["source"]["drawings_scored"] == 4
    assert len(result["runs"]) == 2
    first = result["runs"][0]
    assert first["data"] == "synth-small" and first["missing_classes"] == ""
    assert first["overall"] == result["runs"][1]["overall"]
    assert sum(c["n"] for c in first["per_class"].values()) == 4
    assert first["overall"]["digit_drawings"] == 3
    printed = capsys.readouterr().out
    assert "4 drawings, 2 writers, 3 characters" in printed and "top-1" in printed


def test_main_without_data_says_where_to_get_it(tmp_path, capsys):
    missing = tmp_path / "external" / "ujipenchars"
    assert ps.main(["--data", str(missing), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(missing) in err and "UJI Pen Characters" in err
    assert not list(tmp_path.glob("*.json"))
