import zipfile

import numpy as np
import pytest
from test_images import bomb_png

from charlib.common import paths
from charlib.data.loading import CharData, class_table, load_dataset, load_split, stratified_split
from charlib.data.sources import DataError

from conftest import glyph, make_split_files, png_bytes, snapshot, write_folder, write_zip

CODES = (65, 66, 100)  # "100" sorts before "65" as text: class order must be numeric


@pytest.mark.parametrize("layout", ["folders", "zips"])
def test_loads_layout(make_dataset, layout):
    ds = load_dataset(make_dataset(layout), progress=False)
    assert ds.classes == (65, 66, 100)
    for split in ("train", "validation", "test"):
        part = ds[split]
        assert part.images.shape == (12, 28, 28) and part.images.dtype == np.uint8
        assert part.counts().tolist() == [4, 4, 4]
        # labels index the numeric class order: 'd' (100) is the last class
        assert set(part.codes[part.labels == 2]) == {100}
    # white strokes on black: the frame is dark, the glyph's bars bright
    assert ds.train.images[:, 0, :].mean() < 30 and ds.train.images.max() > 230
    assert ds.report.counts == {"train": 12, "validation": 12, "test": 12}
    assert sum(ds.report.inverted.values()) == 36
    assert not ds.report.skipped and not ds.report.ignored


def test_images_match_their_files(make_dataset):
    ds = load_dataset(make_dataset(), progress=False)
    i = int(np.flatnonzero(ds.train.names == "66/2.png")[0])
    np.testing.assert_array_equal(ds.train.images[i], 255 - glyph(66, seed=2))


def test_zip_with_one_top_folder(tmp_path):
    for split in ("train", "validation", "test"):
        files = {f"AlphaNum/{k}": v for k, v in make_split_files(CODES).items()}
        write_zip(tmp_path / f"{split}.zip", files)
    ds = load_dataset(tmp_path, progress=False)
    assert ds.classes == CODES and len(ds.test) == 12


def test_single_zip_holding_splits(tmp_path):
    files = {}
    for split in ("train", "val", "test"):
        files.update({f"data/{split}/{k}": v for k, v in make_split_files(CODES).items()})
    ds = load_dataset(write_zip(tmp_path / "all.zip", files), progress=False)
    assert [len(ds[s]) for s in ("train", "validation", "test")] == [12, 12, 12]


def test_unsplit_folder_gets_a_seeded_stratified_split(tmp_path):
    write_folder(tmp_path / "flat", make_split_files(CODES, per_class=20))
    a = load_dataset(tmp_path / "flat", seed=3, progress=False)
    b = load_dataset(tmp_path / "flat", seed=3, progress=False)
    c = load_dataset(tmp_path / "flat", seed=4, progress=False)
    assert [a[s].counts().tolist() for s in ("train", "validation", "test")] == [
        [16, 16, 16],
        [2, 2, 2],
        [2, 2, 2],
    ]
    assert a.test.names.tolist() == b.test.names.tolist() != c.test.names.tolist()
    every = sorted(np.concatenate([a[s].names for s in ("train", "validation", "test")]).tolist())
    assert every == sorted(make_split_files(CODES, per_class=20))  # nothing lost or doubled
    assert "split here (seed 3)" in a.report.layout


def test_stratified_split_keeps_tiny_classes_in_train():
    codes = np.array([65] * 1 + [66] * 2 + [67] * 50)
    idx = stratified_split(codes, seed=0, fractions=(0.1, 0.1))
    train = codes[idx["train"]]
    assert {65, 66, 67} <= set(train.tolist())
    assert sorted(np.concatenate(list(idx.values())).tolist()) == list(range(len(codes)))


def test_bad_files_are_skipped_and_reported(make_dataset):
    good = png_bytes(glyph(65))
    extra = {
        "train": {
            "65/empty.png": b"",
            "65/notes.txt": b"not an image at all",
            "66/cut.png": good[: len(good) // 3],
            "66/.DS_Store": b"\x00\x00\x00\x01Bud1",
            ".DS_Store": b"\x00",
            "__MACOSX/65/._0.png": b"\x00",
            "abc/0.png": good,
            "README.txt": b"hello",
        }
    }
    ds = load_dataset(make_dataset("zips", extra=extra), progress=False)
    assert len(ds.train) == 12  # only the good images
    skipped = {r["path"]: r["reason"] for r in ds.report.skipped}
    assert skipped == {
        "65/empty.png": "empty file",
        "65/notes.txt": "not an image",
        "66/cut.png": "truncated",
    }
    ignored = {r["path"]: r["reason"] for r in ds.report.ignored}
    assert ignored == {
        "66/.DS_Store": "system file",
        ".DS_Store": "system file",
        "__MACOSX": "system file",
        "abc/": "folder name is not an ASCII code",
        "README.txt": "file outside the class folders",
    }
    assert ds.report.reasons()["system file"] == 3
    table = ds.report.table()
    assert len(table) == 8 and set(table["split"]) == {"train"}
    assert "truncated 1" in str(ds.report)


@pytest.mark.parametrize("layout", ["folders", "zips"])
def test_decompression_bomb_is_skipped_as_too_large(make_dataset, tmp_path, monkeypatch, layout):
    monkeypatch.setenv("CHARLIB_CACHE_DIR", str(tmp_path / "own-cache"))
    root = make_dataset(layout, extra={"train": {"66/bomb.png": bomb_png()}})  # 20000×20000
    for cached in (False, True):  # the second load reads the report back from the cache
        ds = load_dataset(root, progress=False)
        assert ds.report.from_cache is cached
        assert len(ds.train) == 12 and ds.train.counts().tolist() == [4, 4, 4]
        assert [(r["split"], r["path"], r["reason"]) for r in ds.report.skipped] == [
            ("train", "66/bomb.png", "too large")
        ]
        assert ds.report.reasons() == {"too large": 1} and "too large 1" in str(ds.report)


def test_mixed_sizes_fit_the_most_common_size(tmp_path):
    files = make_split_files(CODES, per_class=3, size=24)
    wide = np.zeros((12, 48), np.uint8)
    wide[5:7, :] = 255
    files["65/wide.png"] = png_bytes(wide)
    files["66/big.png"] = png_bytes(glyph(66, size=40, dark_on_light=False))
    for split in ("train", "validation", "test"):
        write_folder(tmp_path / split, files)
    ds = load_dataset(tmp_path, progress=False)
    assert ds.train.images.shape[1:] == (24, 24) and ds.report.image_size == 24
    assert ds.report.resized["train"] == 2
    img = ds.train.images[np.flatnonzero(ds.train.names == "65/wide.png")[0]]
    lit_rows = np.flatnonzero(img.max(axis=1) > 100)
    assert len(lit_rows) <= 3  # a thin bar stays thin: the aspect ratio is kept
    assert load_dataset(tmp_path, size=32, progress=False).train.images.shape[1:] == (32, 32)


def test_cache_is_used_and_invalidated(make_dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("CHARLIB_CACHE_DIR", str(tmp_path / "own-cache"))
    root = make_dataset("folders")
    first = load_dataset(root, progress=False)
    second = load_dataset(root, progress=False)
    assert not first.report.from_cache and second.report.from_cache
    np.testing.assert_array_equal(first.train.images, second.train.images)
    assert list(paths.cache_dir().glob("*.npz"))
    (root / "train" / "66" / "new.png").write_bytes(png_bytes(glyph(66, seed=9)))
    third = load_dataset(root, progress=False)
    assert not third.report.from_cache and len(third.train) == 13
    # the stale cache of that split was replaced, not kept beside the new one
    assert len([p for p in paths.cache_dir().glob("*train*.npz")]) == 1


def test_nothing_is_written_into_the_dataset(make_dataset):
    root = make_dataset("zips", extra={"train": {"65/bad.png": b""}})
    before = snapshot(root)
    load_dataset(root, progress=False)
    load_dataset(root, progress=False)
    assert snapshot(root) == before


def test_missing_path_is_a_one_line_error(tmp_path):
    with pytest.raises(DataError, match="no such file or folder") as info:
        load_dataset(tmp_path / "nope", progress=False)
    assert str(tmp_path / "nope") in str(info.value) and "\n" not in str(info.value)


def test_missing_split_names_it(make_dataset):
    root = make_dataset("folders")
    import shutil

    shutil.rmtree(root / "validation")
    with pytest.raises(DataError, match="validation/ or validation.zip is missing"):
        load_dataset(root, progress=False)


def test_empty_dataset(tmp_path):
    for split in ("train", "validation", "test"):
        (tmp_path / split / "65").mkdir(parents=True)
    with pytest.raises(DataError, match="no readable images") as info:
        load_dataset(tmp_path, progress=False)
    assert "train" in str(info.value)


def test_not_a_dataset_file(tmp_path):
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(DataError, match="not a folder or a zip"):
        load_dataset(tmp_path / "x.txt", progress=False)


def test_broken_zip(tmp_path):
    for split in ("train", "validation", "test"):
        (tmp_path / f"{split}.zip").write_bytes(b"PK\x03\x04 definitely not a zip")
    with pytest.raises(DataError, match="not a readable zip"):
        load_dataset(tmp_path, progress=False)


def test_class_only_in_validation_is_refused(tmp_path):
    write_folder(tmp_path / "train", make_split_files((65, 66)))
    write_folder(tmp_path / "validation", make_split_files((65, 66, 67)))
    write_folder(tmp_path / "test", make_split_files((65, 66)))
    with pytest.raises(DataError, match=r"validation has classes that train lacks \(C \(67\)\)"):
        load_dataset(tmp_path, progress=False)


@pytest.mark.parametrize("evil", ["../escape/65/0.png", "/abs/65/0.png", "65/../../x.png"])
def test_zip_members_escaping_are_refused(tmp_path, evil):
    files = make_split_files(CODES)
    for split in ("validation", "test"):
        write_zip(tmp_path / f"{split}.zip", files)
    with zipfile.ZipFile(tmp_path / "train.zip", "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        zf.writestr(zipfile.ZipInfo(evil), png_bytes(glyph(65)))
    with pytest.raises(DataError, match="absolute path or '..'; refusing"):
        load_dataset(tmp_path, progress=False)


def test_load_split_and_subset(make_dataset):
    root = make_dataset(per_class=6)
    val = load_split(root, "validation", progress=False)
    assert isinstance(val, CharData) and len(val) == 18
    small = val.subset(per_class=2, seed=1)
    assert small.counts().tolist() == [2, 2, 2] and small.classes == val.classes
    with pytest.raises(KeyError, match="unknown split"):
        load_dataset(root, progress=False)["dev"]


def test_class_table(make_dataset):
    table = class_table(load_dataset(make_dataset(), progress=False))
    assert table["label"].tolist() == ["A (65)", "B (66)", "d (100)"]
    assert table[["train", "validation", "test"]].to_numpy().tolist() == [[4, 4, 4]] * 3
    assert ((table["ink_coverage"] > 0) & (table["ink_coverage"] < 0.5)).all()
