"""benchmarks/assemble_photos.py on fake checkouts of the three sources: names, labels, counts,
provenance, and that nothing already there is overwritten."""

from __future__ import annotations

import csv
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location(
    "assemble_photos", ROOT / "benchmarks" / "assemble_photos.py"
)
ap = sys.modules.setdefault("assemble_photos", importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(ap)


def png(path: Path, value: int = 200, size=(28, 28)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full(size[::-1], value, np.uint8)).save(path)


def fake_choice(root: Path) -> Path:
    (root / "V0.3").mkdir(parents=True)
    (root / "V0.3" / "label.txt").write_text("0\n1\na\n")
    png(root / "V0.3" / "data" / "0" / "0 (1).png", 10)
    png(root / "V0.3" / "data" / "2" / "a (5).png", 20)
    return root


def fake_nsysu(root: Path) -> Path:
    base = root / "nsysu-digits"
    png(base / "00000042.png", 30)
    png(base / "00000007.png", 40)
    with open(base / "nsysu-digits.csv", "w", newline="") as f:
        csv.writer(f).writerows([["00000042.png", "3.0", "q1"], ["00000007.png", "0", "q2"]])
    return root


def fake_sse(root: Path) -> Path:
    base = root / "raw-data" / "dataset-2024"
    png(base / "frames" / "frame_3.png", 120, size=(500, 300))  # 5 × 3 cells of 100 × 100
    for letter in "AKE":  # the authors kept three of the card's letters
        png(base / f"{letter}_set" / f"{letter}_3.png")
    (root / "raw-data" / "dataset-2025").mkdir(parents=True)
    return root


def test_each_source_is_built_with_its_labels_and_provenance(tmp_path, capsys):
    out = tmp_path / "photos"
    args = ["--out", str(out), "--choice", str(fake_choice(tmp_path / "c"))]
    args += [
        "--nsysu",
        str(fake_nsysu(tmp_path / "n")),
        "--sse-letters",
        str(fake_sse(tmp_path / "s")),
    ]
    assert ap.main(args) == 0
    names = {p.name for p in (out / "choice").iterdir()}
    assert names == {"48_48001.png", "97_97005.png", "provenance.csv"}
    src = tmp_path / "c" / "V0.3" / "data" / "2" / "a (5).png"
    assert (out / "choice" / "97_97005.png").read_bytes() == src.read_bytes()  # byte for byte
    assert {p.name for p in (out / "nsysu-digits").iterdir()} == {
        "51_42.png",
        "48_7.png",
        "provenance.csv",
    }
    cells = sorted(p.name for p in (out / "vu-charwizard").glob("*.png"))
    assert cells == ["65_3.png", "69_3.png", "75_3.png"]  # A, E, K: only the cells kept
    with Image.open(out / "vu-charwizard" / "65_3.png") as cell:
        assert cell.size == (88, 88)  # a 100 px cell with 6% trimmed on every side
    with open(out / "choice" / "provenance.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["file", "source"] and ["97_97005.png", "V0.3/data/2/a (5).png"] in rows
    assert "choice: 2 images" in capsys.readouterr().out
    assert not list(out.glob("*.partial"))


def test_an_existing_folder_is_never_overwritten(tmp_path):
    out = tmp_path / "photos"
    (out / "choice").mkdir(parents=True)
    (out / "choice" / "mine.png").write_bytes(b"user data")
    with pytest.raises(SystemExit, match="already exists; move it away or pass --out"):
        ap.main(["--out", str(out), "--choice", str(fake_choice(tmp_path / "c"))])
    assert [p.name for p in (out / "choice").iterdir()] == ["mine.png"]


def test_a_wrong_checkout_or_a_mislabelled_file_stops_with_one_line(tmp_path):
    out = tmp_path / "photos"
    with pytest.raises(SystemExit, match="no V0.3/label.txt here; pass a checkout"):
        ap.main(["--out", str(out), "--choice", str(tmp_path)])
    repo = fake_choice(tmp_path / "c")
    png(repo / "V0.3" / "data" / "1" / "7 (2).png")  # a 7 in the 1 folder
    with pytest.raises(SystemExit, match="does not match its class '1'"):
        ap.main(["--out", str(out), "--choice", str(repo)])
    assert not (out / "choice").exists()  # no half-built folder under the real name
    with pytest.raises(SystemExit):  # no source named: argparse's usage error
        ap.main(["--out", str(out)])


def fake_numbers(root: Path) -> Path:
    (root / "tools").mkdir(parents=True)
    (root / "tools" / "create-svg.el").write_text(";; the grid's generator\n")
    png(root / "0001_CH4M" / "0" / "number-1.png", 50)
    png(root / "0023_DE3F" / "7" / "number-599.png", 60)
    png(root / "UNCATEGORIZED" / "number-5.png", 70)  # not labelled: left out
    (root / "0023_DE3F" / "7" / "notes.txt").write_text("not an image")
    return root


def test_the_numbers_grid_cells_are_named_by_digit_and_writer(tmp_path, capsys):
    out = tmp_path / "photos"
    repo = fake_numbers(tmp_path / "k")
    assert ap.main(["--out", str(out), "--numbers", str(repo)]) == 0
    names = {p.name for p in (out / "numbers-digits").iterdir()}
    assert names == {"48_1001.png", "55_23599.png", "provenance.csv"}
    src = repo / "0023_DE3F" / "7" / "number-599.png"
    assert (out / "numbers-digits" / "55_23599.png").read_bytes() == src.read_bytes()
    assert "numbers-digits: 2 images" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="no tools/create-svg.el here; pass a checkout"):
        ap.main(["--out", str(tmp_path / "other"), "--numbers", str(tmp_path / "c")])
