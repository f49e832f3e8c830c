"""emnist.ensure against a fake NIST archive served on 127.0.0.1 (no network)."""

from __future__ import annotations

import gzip
import hashlib
import io
import socket
import struct
import threading
import zipfile
from http.server import ThreadingHTTPServer

import numpy as np
import pytest
from PIL import Image

from charlib.data import download, emnist
from charlib.data.download import DownloadError

from conftest import RangeSender

# ByClass labels of the fake archive -> how many images of each in the official parts.
TRAIN_COUNTS = {0: 12, 10: 7, 61: 2}  # '0' (48), 'A' (65), 'z' (122)
TEST_COUNTS = {0: 2, 10: 3, 61: 1}
CODES = {0: 48, 10: 65, 61: 122}


def upright_images(counts: dict[int, int], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Shuffled labels and distinct upright images: dim noise, a bright bar along the top."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.repeat(list(counts), list(counts.values()))).astype(np.uint8)
    images = rng.integers(0, 40, (len(labels), 28, 28)).astype(np.uint8)
    images[:, 2:5, 3:25] = 255  # asymmetric: transposed, the bar would run down the left side
    return labels, images


def idx(array: np.ndarray) -> bytes:
    """An idx file of unsigned bytes, gzipped as NIST ships it."""
    header = struct.pack(f">{1 + array.ndim}I", 0x0800 + array.ndim, *array.shape)
    return gzip.compress(header + array.tobytes())


def make_archive() -> tuple[bytes, dict]:
    """A tiny gzip.zip in NIST's layout (images stored transposed) and the upright truth."""
    parts = {"train": upright_images(TRAIN_COUNTS, 1), "test": upright_images(TEST_COUNTS, 2)}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("gzip/emnist-mnist-train-labels-idx1-ubyte.gz", idx(np.zeros(3, np.uint8)))
        for part, (labels, images) in parts.items():
            prefix = f"gzip/emnist-byclass-{part}"
            z.writestr(f"{prefix}-labels-idx1-ubyte.gz", idx(labels))
            z.writestr(f"{prefix}-images-idx3-ubyte.gz", idx(images.transpose(0, 2, 1).copy()))
    return buf.getvalue(), parts


class Handler(RangeSender):
    """Serves /gzip.zip with Range support; switches live in `server.state`."""

    def do_GET(self) -> None:
        st = self.server.state
        st["requests"].append(self.headers.get("Range"))
        if self.path != "/gzip.zip":
            return self._send(404, b"not found", {})
        data = st["payload"]
        if st["wrong"]:
            data = bytes(b ^ 0xFF for b in data)  # same size, different bytes
        start = int((self.headers.get("Range") or "bytes=0-")[6:-1])
        if start >= len(data) and start:
            return self._send(416, b"", {"Content-Range": f"bytes */{len(data)}"})
        code, extra = 200, {}
        if start:
            code, extra = 206, {"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"}
        self._send(code, data[start:], extra, st["cut"])


@pytest.fixture
def server():
    """A running fake NIST; yields its state (payload, truth, switches, request log, stop)."""
    payload, parts = make_archive()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)

    def stop() -> None:
        if thread.is_alive():
            httpd.shutdown()
            thread.join(timeout=5)
        httpd.server_close()

    httpd.state = {
        "payload": payload,
        "md5": hashlib.md5(payload).hexdigest(),
        "parts": parts,
        "cut": None,  # bytes of the body sent before the connection is closed
        "wrong": False,  # serve corrupted bytes
        "requests": [],  # the Range header of each request, or None
        "url": f"http://127.0.0.1:{httpd.server_address[1]}/gzip.zip",
        "stop": stop,
    }
    thread.start()
    try:
        yield httpd.state
    finally:
        stop()


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    """Small chunks and blocks, so that transfers and conversions take several steps."""
    monkeypatch.setattr(download, "CHUNK", 1024)
    monkeypatch.setattr(emnist, "BLOCK", 4)


def fetch(server, dest, **kw):
    return emnist.ensure(
        dest, url=server["url"], md5=server["md5"], progress=False, timeout=5, **kw
    )


def members(path) -> dict[str, np.ndarray]:
    with zipfile.ZipFile(path) as z:
        return {n: np.asarray(Image.open(io.BytesIO(z.read(n)))) for n in z.namelist()}


def dead_url() -> str:
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/gzip.zip"


def test_converted_zips_hold_every_image_upright_under_its_code(server, tmp_path):
    dest = tmp_path / "emnist"
    assert fetch(server, dest) == dest
    assert sorted(p.name for p in dest.iterdir()) == sorted(emnist.FILES)  # archive deleted
    train = members(dest / "train.zip") | members(dest / "validation.zip")
    for part, found in (("train", train), ("test", members(dest / "test.zip"))):
        labels, images = server["parts"][part]
        assert sorted(found) == sorted(f"{CODES[k]}/{row}.png" for row, k in enumerate(labels))
        for row, (k, image) in enumerate(zip(labels, images, strict=True)):
            np.testing.assert_array_equal(found[f"{CODES[k]}/{row}.png"], image)


def test_loads_with_the_right_classes_and_counts(server, tmp_path):
    from charlib.data.loading import load_dataset

    ds = load_dataset(fetch(server, tmp_path / "emnist"), progress=False)
    assert ds.train.classes == ds.test.classes == (48, 65, 122)
    assert dict(zip(ds.test.classes, ds.test.counts(), strict=True)) == {
        CODES[k]: n for k, n in TEST_COUNTS.items()
    }
    both = ds.train.counts() + ds.validation.counts()
    assert dict(zip(ds.train.classes, both, strict=True)) == {
        CODES[k]: n for k, n in TRAIN_COUNTS.items()
    }
    top, left = ds.test.images[:, 2:5, 3:25], ds.test.images[:, 3:25, 2:5]
    assert (top.mean(axis=(1, 2)) > 200).all() and (left.mean(axis=(1, 2)) < 100).all()


def test_validation_is_stratified_seeded_and_disjoint(server, tmp_path):
    dest = fetch(server, tmp_path / "emnist")
    with zipfile.ZipFile(dest / "train.zip") as t, zipfile.ZipFile(dest / "validation.zip") as v:
        train, validation = set(t.namelist()), set(v.namelist())
    assert not train & validation
    for k, n in TRAIN_COUNTS.items():
        picked = [name for name in validation if name.startswith(f"{CODES[k]}/")]
        assert len(picked) == max(round(n / 6), 1)
        assert any(name.startswith(f"{CODES[k]}/") for name in train)
    labels = server["parts"]["train"][0]
    rows = {int(name.split("/")[1].removesuffix(".png")) for name in validation}
    assert rows == set(np.flatnonzero(emnist.validation_rows(labels)))
    assert not np.array_equal(emnist.validation_rows(labels, 1), emnist.validation_rows(labels))


def test_second_call_needs_no_network(server, tmp_path, monkeypatch):
    from charlib.data import loading

    monkeypatch.setenv("CHARLIB_DATA_DIR", str(tmp_path))
    monkeypatch.setenv(emnist.URL_VARIABLE, server["url"])
    monkeypatch.setattr(emnist, "MD5", server["md5"])
    loading.check_source("emnist")  # what `charlib run --data emnist` does before notebook 01
    assert (tmp_path / "emnist" / "test.zip").is_file()
    server["stop"]()
    monkeypatch.setenv(emnist.URL_VARIABLE, dead_url())
    loading.check_source("emnist")
    assert len(server["requests"]) == 1


def test_kept_archive_is_reconverted_without_network(server, tmp_path):
    dest = fetch(server, tmp_path / "emnist", keep_archive=True)
    assert (dest / emnist.ARCHIVE).read_bytes() == server["payload"]
    before = (dest / "test.zip").read_bytes()
    for name in emnist.FILES:
        (dest / name).unlink()
    server["stop"]()
    fetch(server, dest)
    assert (dest / "test.zip").is_file() and not (dest / emnist.ARCHIVE).exists()
    assert members(dest / "test.zip").keys() == members(io.BytesIO(before)).keys()


def test_broken_download_resumes(server, tmp_path):
    k = 3000
    server["cut"] = k
    with pytest.raises(DownloadError, match="offline") as err:
        fetch(server, tmp_path)
    assert "\n" not in str(err.value)
    assert (tmp_path / "gzip.zip.part").read_bytes() == server["payload"][:k]
    assert not any((tmp_path / name).exists() for name in emnist.FILES)
    server["cut"] = None
    server["requests"].clear()
    fetch(server, tmp_path)
    assert server["requests"] == [f"bytes={k}-"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(emnist.FILES)


def test_bad_checksum_is_refused_in_one_line(server, tmp_path):
    server["wrong"] = True
    with pytest.raises(DownloadError, match="checksum") as err:
        fetch(server, tmp_path)
    assert "\n" not in str(err.value) and server["url"] in str(err.value)
    assert list(tmp_path.iterdir()) == []  # no zip, no archive, no part


def test_interrupted_conversion_leaves_no_zip(server, tmp_path, monkeypatch):
    calls = []

    def failing_png(image):
        calls.append(1)
        if len(calls) > 10:
            raise KeyboardInterrupt
        return b"png"

    monkeypatch.setattr(emnist, "png", failing_png)
    with pytest.raises(KeyboardInterrupt):
        fetch(server, tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [emnist.ARCHIVE]  # kept for the rerun
    monkeypatch.undo()
    fetch(server, tmp_path)
    assert len(server["requests"]) == 1  # the rerun converted the archive it had
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(emnist.FILES)


def test_offline_gives_one_line_message(tmp_path, capsys):
    from charlib.cli import main

    url = dead_url()
    with pytest.raises(DownloadError) as err:
        emnist.ensure(tmp_path, url=url, progress=False, timeout=5)
    msg = str(err.value)
    assert "\n" not in msg and "offline" in msg and url in msg and str(tmp_path) in msg
    assert main(["data", "emnist", "--dest", str(tmp_path), "--url", url]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "you seem to be offline" in lines[0]
    assert not any((tmp_path / name).exists() for name in emnist.FILES)


def test_data_emnist_offline_stops_in_one_line(tmp_path, monkeypatch):
    from charlib.data import loading

    monkeypatch.setenv("CHARLIB_DATA_DIR", str(tmp_path))
    monkeypatch.setenv(emnist.URL_VARIABLE, dead_url())
    with pytest.raises(DownloadError, match="you seem to be offline") as err:
        loading.check_source("emnist")  # `make run DATA=emnist` stops here, before any notebook
    assert "\n" not in str(err.value)


def test_http_error_names_the_url_and_the_override(server, tmp_path):
    url = server["url"].replace("gzip.zip", "missing.zip")
    with pytest.raises(DownloadError, match="404") as err:
        emnist.ensure(tmp_path, url=url, progress=False, timeout=5)
    assert url in str(err.value) and emnist.URL_VARIABLE in str(err.value)
    assert list(tmp_path.iterdir()) == []
