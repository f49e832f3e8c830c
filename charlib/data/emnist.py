"""EMNIST ByClass from its official source (NIST), converted once to the AlphaNum layout.

`ensure()` downloads NIST's archive gzip.zip (over 500 MB; resumable, md5-checked against the
checksum torchvision's datasets.EMNIST uses), streams the four byclass idx files out of it
without extracting anything, and writes data/emnist/{train,validation,test}.zip, each member
`<ASCII code>/<index>.png` (index: the image's row in the official file). The official test
part is the test split; a stratified, seeded 1/6 of each class of the official train part is
the validation split, the rest is train. The archive is deleted after a finished conversion,
since the zips are all that later runs read, unless `keep_archive=True` (`--keep-archive`).
"""

from __future__ import annotations

import gzip
import os
import struct
import tempfile
import zipfile
import zlib
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from charlib.common import paths
from charlib.common.files import file_digest
from charlib.common.progress import bar
from charlib.data.download import (
    NETWORK_ERRORS,
    DownloadError,
    fetch_verified,
    network_reason,
)
from charlib.data.sources import DataError

NAME = "emnist"  # the dataset name DATA / --data take: downloaded and converted on first use
URL = "https://biometrics.nist.gov/cs_links/EMNIST/gzip.zip"  # torchvision's EMNIST.url
MD5 = "58c8d27c78d21e728a6bc7b3cc06412e"  # torchvision's EMNIST.md5: the one published checksum
URL_VARIABLE = "CHARLIB_EMNIST_URL"  # a mirror (or a test's local server) instead of URL
HINT = f"check the URL, or set {URL_VARIABLE} (--url) to a working mirror of {URL}"
ARCHIVE = "gzip.zip"
FILES = ("train.zip", "validation.zip", "test.zip")
MEMBER = "gzip/emnist-byclass-{part}-{kind}-ubyte.gz"  # part: train/test
# ByClass labels 0-61 -> ASCII codes: digits 48-57, then A-Z 65-90, then a-z 97-122.
CODES = np.array([*range(48, 58), *range(65, 91), *range(97, 123)], dtype=np.int64)
VALIDATION_FRACTION = 1 / 6  # of each class of the official train part
SEED = 0
SIDE = 28  # pixels; every EMNIST image is SIDE×SIDE
BLOCK = 4096  # images read and transposed at a time (3.2 MB)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def ensure(
    dest: str | os.PathLike | None = None,
    *,
    url: str | None = None,
    md5: str | None = None,
    keep_archive: bool = False,
    progress: bool = True,
    timeout: float = 30.0,
) -> Path:
    """data/emnist in the AlphaNum layout, fetched and converted on first use; once its three
    zips are there (only a finished conversion names them), it needs no network."""
    dest = Path(dest) if dest is not None else paths.data_dir() / NAME
    if all((dest / name).is_file() for name in FILES):
        return dest
    # Read the variable now, not at import, so a mirror set after import is honoured.
    url = url or os.environ.get(URL_VARIABLE) or URL
    md5 = md5 or MD5
    archive = dest / ARCHIVE
    dest.mkdir(parents=True, exist_ok=True)
    # An archive kept earlier (--keep-archive) or put there by hand is used once it checks out.
    if not (archive.is_file() and file_digest(archive, "md5") == md5):
        _download(url, archive, md5, progress=progress, timeout=timeout)
    convert(archive, dest, progress=progress)
    if not keep_archive:
        archive.unlink()
    return dest


def _download(url: str, archive: Path, md5: str, *, progress: bool, timeout: float) -> None:
    """The archive via its .part (resumed), md5-checked; offline: a one-line DownloadError."""
    try:
        fetch_verified(
            url,
            archive,
            digest=md5,
            algorithm="md5",
            timeout=timeout,
            progress=progress,
            hint=HINT,
        )
    except NETWORK_ERRORS as e:
        raise DownloadError(
            f"cannot reach {url} ({network_reason(e)}): you seem to be offline; rerun when "
            f"online to resume, or download {url} by hand into {archive.parent} "
            f"(it is converted from there)"
        ) from e


def convert(
    archive: str | os.PathLike, dest: str | os.PathLike, *, seed: int = SEED, progress: bool = True
) -> Path:
    """dest/{train,validation,test}.zip from the archive's byclass idx files: all three or none."""
    dest = Path(dest)
    with zipfile.ZipFile(archive) as z:
        train_labels, test_labels = _labels(z, "train"), _labels(z, "test")
        in_validation = validation_rows(train_labels, seed).astype(np.int64)
        total = len(train_labels) + len(test_labels)
        with (
            bar(total=total, desc="EMNIST to PNG", unit="img", enabled=progress) as shown,
            _staged(dest, FILES) as tmp,
        ):
            with (
                zipfile.ZipFile(tmp["train.zip"], "w") as train,
                zipfile.ZipFile(tmp["validation.zip"], "w") as validation,
            ):
                _write(z, "train", train_labels, (train, validation), in_validation, shown)
            with zipfile.ZipFile(tmp["test.zip"], "w") as test:
                _write(z, "test", test_labels, (test,), np.zeros_like(test_labels), shown)
    return dest


def validation_rows(labels: np.ndarray, seed: int = SEED) -> np.ndarray:
    """True for a seeded 1/6 of each class's rows (at least one of a class of two or more)."""
    rng = np.random.default_rng(seed)
    chosen = np.zeros(len(labels), dtype=bool)
    for k in np.unique(labels):
        rows = np.flatnonzero(labels == k)
        n = max(round(len(rows) * VALIDATION_FRACTION), int(len(rows) > 1))
        chosen[rng.permutation(rows)[:n]] = True
    return chosen


def png(image: np.ndarray) -> bytes:
    """One H×W uint8 image as an 8-bit grayscale PNG, written directly: about 4x faster than
    PIL for 28×28 images, which matters for 814,255 of them (zlib level 1: PNGs this small
    gain almost nothing from more)."""
    h, w = image.shape
    rows = np.zeros((h, w + 1), dtype=np.uint8)  # each row starts with filter type 0 (none)
    rows[:, 1:] = image
    header = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)  # 8-bit grayscale, not interlaced
    idat = zlib.compress(rows.tobytes(), 1)
    chunks = (_chunk(b"IHDR", header), _chunk(b"IDAT", idat), _chunk(b"IEND", b""))
    return PNG_SIGNATURE + b"".join(chunks)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _write(z, part: str, labels: np.ndarray, outs, which: np.ndarray, shown) -> None:
    """Every image of one official part as a PNG into outs[which[row]], named code/row.png."""
    codes = CODES[labels]
    with _idx(z, part, "images-idx3", 3) as (shape, stream):
        if shape != [len(labels), SIDE, SIDE]:
            raise DataError(
                f"{z.filename}: {part} images are {shape}, expected {[len(labels), SIDE, SIDE]} "
                f"(one {SIDE}×{SIDE} image per label); is this the EMNIST archive?"
            )
        for start in range(0, len(labels), BLOCK):
            n = min(BLOCK, len(labels) - start)
            block = np.frombuffer(_read(stream, n * SIDE * SIDE, z, part), dtype=np.uint8)
            # EMNIST stores each image transposed: swap rows and columns to make it upright.
            block = block.reshape(n, SIDE, SIDE).transpose(0, 2, 1)
            for row, image in enumerate(block, start):
                outs[which[row]].writestr(f"{codes[row]}/{row}.png", png(image))
            shown.update(n)


def _labels(z: zipfile.ZipFile, part: str) -> np.ndarray:
    """The labels (0-61) of one official part."""
    with _idx(z, part, "labels-idx1", 1) as (shape, stream):
        labels = np.frombuffer(_read(stream, shape[0], z, part), dtype=np.uint8).astype(np.int64)
    if len(labels) and labels.max() >= len(CODES):
        raise DataError(
            f"{z.filename}: {part} label {labels.max()} is not a ByClass label (0-61); "
            f"is this the EMNIST archive?"
        )
    return labels


@contextmanager
def _idx(z: zipfile.ZipFile, part: str, kind: str, dims: int):
    """(shape, stream after the header) of one gzipped idx file inside the archive."""
    member = MEMBER.format(part=part, kind=kind)
    try:
        raw = z.open(member)
    except KeyError:
        raise DataError(f"{z.filename}: no {member}; is this the EMNIST archive?") from None
    with raw, gzip.GzipFile(fileobj=raw) as stream:
        magic, *shape = struct.unpack(f">{1 + dims}I", _read(stream, 4 * (1 + dims), z, part))
        if magic != 0x0800 + dims:  # unsigned bytes, `dims` dimensions
            raise DataError(f"{z.filename}: {member} is not an idx file of unsigned bytes")
        yield shape, stream


def _read(stream, n: int, z: zipfile.ZipFile, part: str) -> bytes:
    data = stream.read(n)
    if len(data) != n:
        raise DataError(f"{z.filename}: the {part} idx file ends early; download it again")
    return data


@contextmanager
def _staged(dest: Path, names: tuple[str, ...]):
    """Temp files beside `names` in dest, renamed to them only when the block finishes, so an
    interrupted conversion leaves no zip that passes for a finished one."""
    dest.mkdir(parents=True, exist_ok=True)
    tmp: dict[str, Path] = {}
    try:
        for name in names:
            fd, path = tempfile.mkstemp(dir=dest, prefix=f".{name}.", suffix=".tmp")
            os.close(fd)
            tmp[name] = Path(path)
        yield tmp
        for name in names:
            os.replace(tmp[name], dest / name)
    finally:
        for path in tmp.values():
            path.unlink(missing_ok=True)
