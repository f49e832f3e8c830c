"""download_alphanum against a local fake Hugging Face server (no network)."""

from __future__ import annotations

import hashlib
import io
import json
import random
import socket
import threading
import zipfile
from http.server import ThreadingHTTPServer

import pytest

from charlib.data import download
from charlib.data.download import FILES, REPO, DownloadError, download_alphanum

from conftest import RangeSender

TREE = f"/api/datasets/{REPO}/tree/main"
RESOLVE = f"/datasets/{REPO}/resolve/main/"


def make_zip(seed: int) -> bytes:
    """A small real zip in the AlphaNum layout; stored random bytes so its size is predictable."""
    rng = random.Random(seed)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for code in (65, 97):
            for i in range(3):
                z.writestr(f"{code}/{i}.png", rng.randbytes(5000))
    return buf.getvalue()


class Handler(RangeSender):
    """Serves the tree listing and the zips; behaviour switches live in `server.state`."""

    def do_GET(self) -> None:
        st = self.server.state
        st["requests"].append((self.path, self.headers.get("Range")))
        if self.path == TREE:
            return self._send(200, json.dumps(st["listing"]).encode())
        name = self.path.removeprefix(RESOLVE)
        if not self.path.startswith(RESOLVE) or name not in st["payloads"] or name in st["404"]:
            return self._send(404, b"Entry not found")
        data = st["payloads"][name]
        if name in st["wrong"]:
            data = bytes(b ^ 0xFF for b in data)  # same size, different bytes
        start, rng = 0, self.headers.get("Range")
        if rng and not st["ignore_range"]:
            start = int(rng.removeprefix("bytes=").removesuffix("-"))
            if start >= len(data):
                return self._send(416, b"", {"Content-Range": f"bytes */{len(data)}"})
            extra = {"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"}
            return self._send(206, data[start:], extra, st["cut"].get(name))
        self._send(200, data, {}, st["cut"].get(name))


@pytest.fixture
def server():
    """A running fake server; yields its state dict (payloads, switches, request log)."""
    payloads = {name: make_zip(i) for i, name in enumerate(FILES)}
    listing = [{"type": "directory", "path": "extra", "oid": "0" * 40, "size": 0}]
    for name, data in payloads.items():
        sha = hashlib.sha256(data).hexdigest()
        lfs = {"oid": sha, "size": len(data), "pointerSize": 130}
        listing.append({"type": "file", "path": name, "size": len(data), "oid": "x", "lfs": lfs})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    httpd.state = {
        "payloads": payloads,
        "listing": listing,
        "cut": {},  # name -> bytes of body sent before the connection is closed
        "wrong": set(),  # names served with corrupted bytes
        "404": set(),  # names answered with 404
        "ignore_range": False,
        "requests": [],  # (path, Range header or None)
        "url": f"http://127.0.0.1:{httpd.server_address[1]}",
    }
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield httpd.state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    """Small chunks so that each transfer takes several reads, as real ones do."""
    monkeypatch.setattr(download, "CHUNK", 4096)


def fetch(server, dest, **kw):
    return download_alphanum(dest, endpoint=server["url"], progress=False, timeout=5, **kw)


def file_requests(server) -> list[tuple[str, str | None]]:
    return [r for r in server["requests"] if r[0].startswith(RESOLVE)]


def assert_complete(server, dest) -> None:
    for name in FILES:
        assert (dest / name).read_bytes() == server["payloads"][name]
    assert not list(dest.glob("*.part"))


def test_happy_path(server, tmp_path):
    dest = tmp_path / "alphanum"
    assert fetch(server, dest) == dest
    assert_complete(server, dest)
    assert file_requests(server) == [(RESOLVE + name, None) for name in FILES]
    for name in FILES:
        with zipfile.ZipFile(dest / name) as z:
            assert "65/0.png" in z.namelist()


def test_second_call_downloads_nothing(server, tmp_path):
    fetch(server, tmp_path)
    before = len(file_requests(server))
    fetch(server, tmp_path)
    assert len(file_requests(server)) == before
    assert_complete(server, tmp_path)


def test_corrupted_final_file_is_downloaded_again(server, tmp_path):
    fetch(server, tmp_path)
    (tmp_path / "test.zip").write_bytes(b"x" * len(server["payloads"]["test.zip"]))
    fetch(server, tmp_path)
    assert file_requests(server)[-1] == (RESOLVE + "test.zip", None)
    assert_complete(server, tmp_path)


def test_broken_download_keeps_part_and_resumes(server, tmp_path):
    k = 10_000
    server["cut"]["validation.zip"] = k
    with pytest.raises(DownloadError, match="offline") as err:
        fetch(server, tmp_path)
    assert "\n" not in str(err.value)
    data = server["payloads"]["validation.zip"]
    assert (tmp_path / "validation.zip.part").read_bytes() == data[:k]
    assert not (tmp_path / "validation.zip").exists()  # never a half-written final file
    assert (tmp_path / "train.zip").read_bytes() == server["payloads"]["train.zip"]

    server["cut"].clear()
    server["requests"].clear()
    fetch(server, tmp_path)
    assert file_requests(server) == [
        (RESOLVE + "validation.zip", f"bytes={k}-"),
        (RESOLVE + "test.zip", None),
    ]
    assert_complete(server, tmp_path)


def test_checksum_mismatch_deletes_part(server, tmp_path):
    server["wrong"].add("train.zip")
    with pytest.raises(DownloadError, match="checksum") as err:
        fetch(server, tmp_path)
    assert "train.zip" in str(err.value)
    assert not (tmp_path / "train.zip.part").exists()
    assert not (tmp_path / "train.zip").exists()


def test_offline_gives_one_line_message(tmp_path):
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    with pytest.raises(DownloadError) as err:
        download_alphanum(tmp_path, endpoint=endpoint, progress=False, timeout=5)
    msg = str(err.value)
    assert "\n" not in msg
    assert "offline" in msg and endpoint in msg and str(tmp_path) in msg
    assert all(name in msg for name in FILES)


def test_http_404_names_the_file(server, tmp_path):
    server["404"].add("test.zip")
    with pytest.raises(DownloadError, match="404") as err:
        fetch(server, tmp_path)
    assert "test.zip" in str(err.value)
    assert not (tmp_path / "test.zip").exists()


def test_file_missing_from_listing(server, tmp_path):
    server["listing"] = [e for e in server["listing"] if e["path"] != "validation.zip"]
    with pytest.raises(DownloadError, match="validation.zip"):
        fetch(server, tmp_path)
    assert file_requests(server) == []  # the listing is checked before anything is downloaded


def test_listing_without_sha256(server, tmp_path):
    for entry in server["listing"]:
        entry.pop("lfs", None)
    with pytest.raises(DownloadError, match="sha256"):
        fetch(server, tmp_path)


def test_server_ignoring_range_restarts(server, tmp_path):
    k = 7_000
    server["cut"]["train.zip"] = k
    with pytest.raises(DownloadError):
        fetch(server, tmp_path)
    assert (tmp_path / "train.zip.part").stat().st_size == k
    server["cut"].clear()
    server["ignore_range"] = True
    server["requests"].clear()
    fetch(server, tmp_path)
    # One request for train.zip: the 200 answer is written from zero, not appended and retried.
    assert file_requests(server)[0] == (RESOLVE + "train.zip", f"bytes={k}-")
    assert [r[0] for r in file_requests(server)] == [RESOLVE + name for name in FILES]
    assert_complete(server, tmp_path)


def test_complete_part_answered_416_is_verified(server, tmp_path):
    (tmp_path / "train.zip.part").write_bytes(server["payloads"]["train.zip"])
    fetch(server, tmp_path)
    assert file_requests(server)[0] == (
        RESOLVE + "train.zip",
        f"bytes={len(server['payloads']['train.zip'])}-",
    )
    assert_complete(server, tmp_path)


def test_oversized_part_answered_416_restarts(server, tmp_path):
    size = len(server["payloads"]["train.zip"])
    (tmp_path / "train.zip.part").write_bytes(b"junk" * size)
    fetch(server, tmp_path)
    assert file_requests(server)[:2] == [
        (RESOLVE + "train.zip", f"bytes={4 * size}-"),
        (RESOLVE + "train.zip", None),
    ]
    assert_complete(server, tmp_path)


def test_defaults_from_environment(server, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", server["url"])  # read at call time, after import
    monkeypatch.setenv("CHARLIB_DATA_DIR", str(tmp_path))
    dest = download_alphanum(progress=False, timeout=5)
    assert dest == tmp_path / "alphanum"
    assert_complete(server, dest)


def test_the_name_alphanum_downloads_on_first_use_then_needs_no_network(
    server, tmp_path, monkeypatch
):
    from charlib.data import loading

    monkeypatch.setenv("CHARLIB_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("HF_ENDPOINT", server["url"])
    loading.check_source("alphanum")  # what `charlib run --data alphanum` does before notebook 01
    assert_complete(server, tmp_path / "alphanum")
    before = len(file_requests(server))
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    loading.check_source("alphanum")
    assert len(file_requests(server)) == before


def test_run_with_alphanum_offline_stops_before_any_notebook(tmp_path, monkeypatch, capsys):
    from charlib.cli import main
    from charlib.workflow import pipeline

    monkeypatch.setenv("CHARLIB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setattr(pipeline, "run_all", lambda *a, **kw: pytest.fail("a notebook ran"))
    assert main(["run", "--data", "alphanum", "--out", str(tmp_path / "reports")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "you seem to be offline" in err[0]
    assert not (tmp_path / "reports").exists()
