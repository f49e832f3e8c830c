"""`python -m charlib predict / evaluate / export`: happy paths, one-line errors on bad input."""

import io
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from test_images import bomb_png

from charlib.cli import main
from charlib.data import photos
from charlib.inference.infer import Prediction
from charlib.inference.plots import photo_rgb, prediction_figure
from charlib.vision.strokes import SCRIPTED, rasterize

from conftest import glyph, write_evil_checkpoint


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    for char in ("A", "7"):
        Image.fromarray(255 - rasterize(SCRIPTED[char])).save(folder / f"{char}.png")
    (folder / "nested").mkdir()
    Image.fromarray(rasterize(SCRIPTED["L"])).save(folder / "nested" / "L.jpg")
    (folder / "broken.png").write_bytes(b"not a png at all")
    (folder / "notes.txt").write_text("ignored: not an image suffix")
    return folder


def test_predict_one_image_prints_top_k(tiny_run, images, capsys, tmp_path):
    viz = tmp_path / "viz.png"
    argv = ["predict", "--image", str(images / "A.png"), "--run", "tiny", "--top-k", "3"]
    assert main([*argv, "--save-viz", str(viz)]) == 0
    out = capsys.readouterr().out
    line = out.splitlines()[0]
    assert line.startswith(f"{images / 'A.png'}: ") and line.count("%") == 3
    with Image.open(viz) as img:
        assert img.format == "PNG" and img.width > 400


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_save_viz_of_a_photo_shows_it_in_colour(tiny_run, tmp_path, capsys, suffix):
    rng = np.random.default_rng(0)
    data = photos.render(glyph(65, dark_on_light=False), rng, ("paper", "shadow", "blue_pen"))
    photo = tmp_path / f"photo{suffix}"
    Image.open(io.BytesIO(data)).convert("RGB").save(photo)
    viz = tmp_path / "viz.png"
    assert main(["predict", "--image", str(photo), "--run", "tiny", "--save-viz", str(viz)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].count("%") == 5 and f"visualisation written to {viz}" in out
    with Image.open(viz) as img:
        assert img.format == "PNG" and img.width > 400
        img.load()
    # the figure the CLI saves: the photo as handed in (colour, its own shape), then the
    # 28×28 gray image the model saw
    seen = Prediction([], "nothing drawn", None)
    figure = prediction_figure(photo, seen, title=photo.name)
    first, second = (ax.images[0].get_array() for ax in figure.axes[:2])
    assert first.shape == (640, 480, 3) and first.dtype == np.uint8
    assert np.ptp(first[..., 2].astype(int) - first[..., 0]) > 40  # blue ink on cream paper
    assert figure.axes[0].get_title() == "photo (480×640 px)" and second.shape == (28, 28)


def test_photo_rgb_is_upright_and_at_most_800_px():
    img = Image.new("RGB", (1200, 600), (200, 30, 30))
    exif = img.getexif()
    exif[0x0112] = 6  # the camera was turned: shown rotated a quarter turn, 600 wide, 1200 tall
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif)
    shown, size = photo_rgb(buf.getvalue())
    assert size == (600, 1200) and shown.shape == (800, 400, 3)
    assert shown[400, 200, 0] > 150 > shown[400, 200, 1]  # still red
    gray, _ = photo_rgb(Image.new("L", (30, 20), 128))
    assert gray.shape == (20, 30, 3)


@pytest.mark.parametrize(
    "degradations",
    [
        ("noise",),
        ("paper", "noise"),
    ],
)
def test_a_photo_of_blank_paper_is_nothing_drawn(tiny_run, tmp_path, capsys, degradations):
    data = photos.render(np.zeros((28, 28), np.uint8), np.random.default_rng(0), degradations)
    photo = tmp_path / "blank.png"
    photo.write_bytes(data)
    viz = tmp_path / "viz.png"
    assert main(["predict", "--image", str(photo), "--run", "tiny", "--save-viz", str(viz)]) == 0
    assert capsys.readouterr().out.splitlines()[0] == f"{photo}: nothing drawn"
    assert viz.is_file()


def test_predict_folder_writes_csv_and_json_and_keeps_going(tiny_run, images, tmp_path, capsys):
    csv, js = tmp_path / "out.csv", tmp_path / "out.json"
    assert main(["predict", "--folder", str(images), "--out", str(csv)]) == 0
    assert "4 image(s), 1 unreadable" in capsys.readouterr().out
    table = pd.read_csv(csv)
    assert sorted(table.path.map(lambda p: p.split("/")[-1])) == [
        "7.png",
        "A.png",
        "L.jpg",
        "broken.png",
    ]
    broken = table[table.path.str.endswith("broken.png")].iloc[0]
    assert broken.status == "unreadable: unreadable image (not an image)"
    good = table[~table.path.str.endswith("broken.png")]
    assert (good.confidence_1 >= good.confidence_5).all() and good.code_1.notna().all()
    assert main(["predict", "--folder", str(images), "--out", str(js), "--top-k", "2"]) == 0
    rows = json.loads(js.read_text())
    assert len(rows) == 4 and all("char_3" not in r for r in rows)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["predict", "--image", "missing.png"], "missing.png: no such image file"),
        (["predict", "--folder", "no_such_dir"], "no_such_dir: no such folder"),
        (["predict", "--image", "{images}/broken.png"], "broken.png: unreadable image"),
        (["predict", "--image", "{images}/A.png", "--out", "x.xlsx"], "use a .csv or .json"),
        (["predict", "--image", "{images}/A.png", "--top-k", "0"], "--top-k must be at least 1"),
        (["predict", "--folder", "{images}", "--save-viz", "v.png"], "pass a single --image"),
        (["predict", "--image", "{images}/A.png", "--run", "nope"], "nope: no such run folder"),
        (["evaluate", "--run", "nope"], "nope: no such run folder"),
        (["evaluate", "--run", "{images}"], "no best.pt there"),  # a folder, but not a run
        (["evaluate", "--run", "tiny", "--per-class", "0"], "--per-class must be at least 1"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(tiny_run, images, capsys, argv, message):
    argv = [a.format(images=images) for a in argv]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("charlib: error: ") and message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_wrong_checkpoint_file_is_refused(tmp_path, images, capsys):
    run = tmp_path / "garbage"
    run.mkdir()
    (run / "best.pt").write_bytes(b"definitely not a checkpoint")
    assert main(["predict", "--image", str(images / "A.png"), "--run", str(run)]) == 1
    err = capsys.readouterr().err
    assert "not a safe charlib checkpoint" in err and "weights_only" not in err
    assert len(err.strip().splitlines()) == 1


def test_hostile_checkpoint_is_refused_in_one_line(tmp_path, images):
    """The real process, so that nothing torch prints (warnings included) joins the one line."""
    marker = tmp_path / "pwned"
    run = write_evil_checkpoint(tmp_path / "evil" / "best.pt", marker).parent
    done = subprocess.run(
        [sys.executable, "-m", "charlib", "predict", "--image", str(images / "A.png")]
        + ["--run", str(run)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1 and not marker.exists()
    assert done.stderr.startswith(f"charlib: error: {run / 'best.pt'}: refused: loading this file")
    assert "would run code" in done.stderr and "weights_only" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_decompression_bomb_is_a_one_line_error(tiny_run, images, tmp_path, capsys):
    folder = tmp_path / "bomb"
    folder.mkdir()
    (folder / "big.png").write_bytes(bomb_png())  # 20000×20000 pixels, 390 KB
    (folder / "A.png").write_bytes((images / "A.png").read_bytes())
    assert main(["predict", "--image", str(folder / "big.png"), "--run", "tiny"]) == 1
    err = capsys.readouterr().err
    assert err == f"charlib: error: {folder / 'big.png'}: unreadable image (too large)\n"
    # in a folder it is one unreadable row among the predictions, not the end of them
    out = tmp_path / "out.json"
    assert main(["predict", "--folder", str(folder), "--run", "tiny", "--out", str(out)]) == 0
    assert "2 image(s), 1 unreadable" in capsys.readouterr().out
    status = {r["path"].split("/")[-1]: r["status"] for r in json.loads(out.read_text())}
    assert status["big.png"] == "unreadable: unreadable image (too large)"
    assert not status["A.png"].startswith("unreadable")


def test_data_info_reports_a_decompression_bomb(make_dataset, capsys):
    root = make_dataset("folders", extra={"train": {"66/bomb.png": bomb_png()}})
    assert main(["data", "info", str(root)]) == 0
    out = capsys.readouterr().out
    assert "skipped/ignored: too large 1" in out
    assert "skipped train/66/bomb.png: too large" in out


@pytest.mark.slow
def test_evaluate_quick_and_export(tiny_run, capsys, tmp_path):
    assert main(["evaluate", "--run", "tiny", "--quick", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "accuracy" in out and "top-5 accuracy" in out and "metrics.json" in out
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    assert 0 <= metrics["accuracy"] <= 1 and metrics["split"] == "test"
    target = tmp_path / "m.onnx"
    assert main(["export", "--run", "tiny", "--onnx", "--out", str(target)]) == 0
    assert target.stat().st_size > 1_000_000 and str(target) in capsys.readouterr().out


def test_command_line_entry_point_runs(tiny_run, images):
    """The real `python -m charlib` process: exit status and stderr, no traceback."""
    done = subprocess.run(
        [sys.executable, "-m", "charlib", "predict", "--image", str(images / "nope.png")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "nope.png: no such image file" in done.stderr
