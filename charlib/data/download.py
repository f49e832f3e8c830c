"""Download the AlphaNum dataset zips from Hugging Face: resumable, sha256-verified, stdlib only;
the resumable, verified fetch of one file serves the EMNIST download too."""

from __future__ import annotations

import http.client
import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote

from charlib.common import paths
from charlib.common.files import file_digest
from charlib.common.progress import bar

REPO = "louisraedisch/AlphaNum"
FILES = ("train.zip", "validation.zip", "test.zip")
DEFAULT_ENDPOINT = "https://huggingface.co"
CHUNK = 1 << 20  # 1 MiB: big enough to be fast, small enough for a smooth progress bar
USER_AGENT = "charlib-download/0.1 (urllib)"
# Everything a dropped or unreachable connection can raise; HTTPError is handled before these.
# socket.timeout is TimeoutError since Python 3.10.
NETWORK_ERRORS = (urllib.error.URLError, ConnectionError, TimeoutError, http.client.HTTPException)


ALPHANUM = "alphanum"  # the dataset name DATA / --data take: downloaded on first use
HF_HINT = "check the repository and revision, or set HF_ENDPOINT to a working mirror"


class DownloadError(RuntimeError):
    """A failed download; the one-line message names the URL or path and the fix."""


def alphanum(*, progress: bool = True) -> Path:
    """data/alphanum, downloaded on first use: every zip there (only verified ones get their
    final names) means nothing to fetch, so this needs no network once done."""
    dest = paths.data_dir() / ALPHANUM
    if all((dest / name).is_file() for name in FILES):
        return dest
    return download_alphanum(dest, progress=progress)


def download_alphanum(
    dest: str | os.PathLike | None = None,
    *,
    endpoint: str | None = None,
    revision: str = "main",
    progress: bool = True,
    timeout: float = 30.0,
) -> Path:
    """Fetch train/validation/test zips of AlphaNum into `dest` (resumes, checks sha256)."""
    dest = Path(dest) if dest is not None else paths.data_dir() / "alphanum"
    # Read HF_ENDPOINT now, not at import, so a mirror set after import is honoured.
    endpoint = (endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")
    try:
        expected = _listing(endpoint, revision, timeout)
        dest.mkdir(parents=True, exist_ok=True)
        for name in FILES:
            sha, size = expected[name]
            final = dest / name
            if final.is_file() and final.stat().st_size == size and file_digest(final) == sha:
                continue
            url = f"{endpoint}/datasets/{REPO}/resolve/{quote(revision, safe='')}/{name}"
            fetch_verified(url, final, digest=sha, size=size, timeout=timeout, progress=progress)
    except NETWORK_ERRORS as e:
        raise DownloadError(
            f"cannot reach {endpoint} ({network_reason(e)}): you seem to be offline; rerun when "
            f"online to resume, or download {', '.join(FILES)} from {endpoint}/datasets/{REPO} "
            f"by hand into {dest}"
        ) from e
    return dest


def network_reason(error: BaseException) -> str:
    """One line saying why the network failed (urllib hides it in `reason`)."""
    return " ".join(str(getattr(error, "reason", None) or error).split()) or type(error).__name__


def _listing(endpoint: str, revision: str, timeout: float) -> dict[str, tuple[str, int]]:
    """Expected (sha256, size) of each of FILES, from the repository's file tree."""
    url = f"{endpoint}/api/datasets/{REPO}/tree/{quote(revision, safe='')}"
    with open_url(url, timeout=timeout) as resp:
        try:
            entries = json.load(resp)
        except ValueError:
            entries = None
    if not isinstance(entries, list):
        raise DownloadError(f"{url} did not answer with a file list: check endpoint / HF_ENDPOINT")
    found = {e.get("path"): e for e in entries if isinstance(e, dict) and e.get("type") == "file"}
    expected = {}
    for name in FILES:
        entry = found.get(name)
        if entry is None:
            raise DownloadError(f"{name} is missing from {url}: check the revision ({revision!r})")
        lfs = entry.get("lfs") or {}
        sha, size = lfs.get("oid"), lfs.get("size", entry.get("size"))
        # Without a sha256 a truncated or corrupted file could pass silently, so refuse.
        if not (isinstance(sha, str) and len(sha) == 64) or not isinstance(size, int):
            raise DownloadError(
                f"{url} gives no sha256 and size for {name}, so it cannot be verified: "
                f"download it by hand from {endpoint}/datasets/{REPO}"
            )
        expected[name] = (sha.lower(), size)
    return expected


def fetch_verified(
    url: str,
    final: Path,
    *,
    digest: str,
    algorithm: str = "sha256",
    size: int | None = None,
    timeout: float = 30.0,
    progress: bool = True,
    hint: str = HF_HINT,
) -> None:
    """Download url via `final`.part (resuming it), check its digest, then move it into place."""
    part = final.with_name(final.name + ".part")
    for attempt in (1, 2):
        resumed = fetch_part(url, part, size=size, timeout=timeout, progress=progress, hint=hint)
        if file_digest(part, algorithm) == digest:
            # Only a verified file gets the final name, so a half-written one never looks done.
            os.replace(part, final)
            return
        part.unlink()
        # A part kept from an earlier run may be stale (e.g. the file changed upstream):
        # start once from zero before blaming the server.
        if not resumed or attempt == 2:
            raise DownloadError(
                f"{url} checksum mismatch ({algorithm} differs from the published one); "
                f"the partial file was deleted, run the command again"
            )


def fetch_part(
    url: str,
    part: Path,
    *,
    size: int | None = None,
    timeout: float = 30.0,
    progress: bool = True,
    hint: str = HF_HINT,
) -> bool:
    """Append the rest of url to part; return whether bytes from an earlier run were kept.
    Without a known `size`, the server's Content-Range or Content-Length gives it."""
    have = part.stat().st_size if part.is_file() else 0
    resp = open_url(url, timeout=timeout, offset=have, hint=hint)
    if resp is None:  # 416: the server has nothing past `have`, so part is complete (or too big)
        return True
    with resp:
        if resp.status != 206:
            have = 0  # the server ignored Range and sends everything: start over, don't append
        size = size if size is not None else _announced_size(resp, have)
        with (
            open(part, "ab" if have else "wb") as f,
            bar(
                total=size,
                initial=have,
                desc=part.name.removesuffix(".part"),
                unit="B",
                unit_scale=True,
                enabled=progress,
            ) as shown,
        ):
            while chunk := resp.read(CHUNK):
                f.write(chunk)
                shown.update(len(chunk))
    got = part.stat().st_size
    if size is not None and got < size:
        # http.client returns b"" on a connection closed early, so check the length ourselves;
        # the part is kept so that the next run resumes from here.
        raise ConnectionError(f"connection closed after {got} of {size} bytes of {url}")
    return have > 0


def _announced_size(resp: http.client.HTTPResponse, have: int) -> int | None:
    """The whole file's size in bytes as the answer states it (206: Content-Range), or None."""
    total = (resp.headers.get("Content-Range") or "").rpartition("/")[2]
    if resp.status == 206 and total.isdigit():
        return int(total)
    length = resp.headers.get("Content-Length")
    return have + int(length) if length and length.isdigit() else None


def open_url(
    url: str, *, timeout: float, offset: int = 0, hint: str = HF_HINT
) -> http.client.HTTPResponse | None:
    """Open url (from byte `offset`); None when the server says the range is past the end.
    An HTTP error becomes a one-line DownloadError ending with `hint` (what to check)."""
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as e:
        e.close()
        if e.code == 416 and offset:
            return None
        raise DownloadError(f"{url} answered HTTP {e.code} ({e.reason}): {hint}") from None
