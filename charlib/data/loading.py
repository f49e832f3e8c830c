"""Load a dataset in the AlphaNum layout (folder or zips) into uint8 arrays, decoding once."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from charlib.common import paths
from charlib.common.codes import IMAGE_SIZE, INK_LEVEL, display_label, is_code
from charlib.common.files import atomic_write
from charlib.common.progress import bar
from charlib.common.progress import report as progress_line
from charlib.data.sources import SPLITS, DataError, Tree, find_splits, is_system
from charlib.vision.images import BadImage, decode, fit_square

CACHE_VERSION = 1
IGNORED_FOLDER = "folder name is not an ASCII code"
LOOSE_FILE = "file outside the class folders"
SYSTEM_FILE = "system file"
STROKES_SUFFIX = ".json"  # the strokes `mine.save` keeps beside each saved drawing's PNG


@dataclass(frozen=True)
class CharData:
    """One split: images uint8 N×H×W (white on black), labels index into `classes` (ASCII codes)."""

    images: np.ndarray
    labels: np.ndarray
    classes: tuple[int, ...]
    names: np.ndarray  # where each image came from, relative to its split

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def codes(self) -> np.ndarray:
        """The ASCII code of each image."""
        return np.asarray(self.classes, dtype=np.int64)[self.labels]

    def counts(self) -> np.ndarray:
        """Images per class, in class order."""
        return np.bincount(self.labels, minlength=len(self.classes))

    def take(self, codes, per_class: int | None = None, seed: int = 0) -> CharData:
        """Only the given class codes, in that order; `per_class` random images of each if given."""
        missing = [c for c in codes if c not in self.classes]
        if missing:
            shown = ", ".join(display_label(c) for c in missing)
            raise ValueError(f"classes {shown} are not in this dataset; pick from its classes")
        picks = self._pick([self.classes.index(c) for c in codes], per_class, seed)
        return self._rows(np.concatenate(picks) if picks else np.zeros(0, np.int64))

    def subset(self, per_class: int, seed: int = 0) -> CharData:
        """At most `per_class` images of each class, chosen with a seeded shuffle."""
        keep = self._pick(range(len(self.classes)), per_class, seed)
        if not any(len(k) for k in keep):
            return self
        return self._rows(np.sort(np.concatenate(keep)))

    def rows(self, idx) -> CharData:
        """The images at these row indices, in that order."""
        return self._rows(np.asarray(idx, dtype=np.int64))

    def _pick(self, labels, per_class: int | None, seed: int) -> list[np.ndarray]:
        """Indices of each label in turn: `per_class` of them drawn with `seed`, else all."""
        rng = np.random.default_rng(seed)
        out = []
        for k in labels:
            idx = np.flatnonzero(self.labels == k)
            out.append(np.sort(rng.permutation(idx)[:per_class]) if per_class else idx)
        return out

    def _rows(self, idx: np.ndarray) -> CharData:
        return CharData(self.images[idx], self.labels[idx], self.classes, self.names[idx])


@dataclass
class LoadReport:
    """What loading found: images per split, files skipped and entries ignored, with reasons."""

    source: str
    layout: str
    image_size: int
    counts: dict[str, int] = field(default_factory=dict)
    skipped: list[dict] = field(default_factory=list)  # split, path, reason, detail
    ignored: list[dict] = field(default_factory=list)  # split, path, reason
    inverted: dict[str, int] = field(default_factory=dict)
    resized: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    from_cache: bool = False

    def reasons(self) -> dict[str, int]:
        """Number of skipped files and ignored entries per reason."""
        return dict(Counter(row["reason"] for row in self.skipped + self.ignored))

    def table(self):
        """Every skipped file and ignored entry as a pandas DataFrame (split, path, reason)."""
        import pandas as pd

        rows = [{"action": "skipped", **r} for r in self.skipped]
        rows += [{"action": "ignored", **r, "detail": ""} for r in self.ignored]
        return pd.DataFrame(rows, columns=["split", "action", "path", "reason", "detail"])

    def __str__(self) -> str:
        loaded = ", ".join(f"{s} {n:,}" for s, n in self.counts.items())
        side = self.image_size
        lines = [
            f"{self.source} ({self.layout}): {loaded} images of {side}×{side}",
            f"inverted to white-on-black: {sum(self.inverted.values()):,}; "
            f"fitted to size: {sum(self.resized.values()):,}",
        ]
        problems = self.reasons()
        lines.append(
            "skipped/ignored: " + ", ".join(f"{r} {n}" for r, n in sorted(problems.items()))
            if problems
            else "skipped/ignored: nothing"
        )
        return "\n".join(lines + self.notes)


@dataclass
class Dataset:
    """The three splits of a dataset, sharing one class list, and the load report."""

    train: CharData
    validation: CharData
    test: CharData
    report: LoadReport

    @property
    def classes(self) -> tuple[int, ...]:
        return self.train.classes

    def __getitem__(self, split: str) -> CharData:
        if split not in SPLITS:
            raise KeyError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
        return getattr(self, split)

    def splits(self) -> dict[str, CharData]:
        """Split name -> CharData, in the order train, validation, test."""
        return {s: self[s] for s in SPLITS}


def load_dataset(
    source: str | os.PathLike,
    *,
    size: int | None = None,
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    progress: bool = True,
) -> Dataset:
    """Load train/validation/test from a folder, zips, or 'synth'/'synth-small' (built-in data).

    `size` fits every image to size×size; by default the most common size of the training images.
    One folder of class folders without splits is split here, stratified by class and seeded.
    """
    root = _resolve(source, progress=progress)
    found = find_splits(root)
    if isinstance(found, Tree):
        ds = _load_unsplit(root, found, size, seed, val_fraction, test_fraction, progress)
        progress_line(str(ds.report).splitlines()[0])
        return ds
    parts, report = {}, None
    for split in SPLITS:
        tree = found[split]
        part = _load_tree(tree, size, progress)
        size = part["size"]
        if report is None:
            layout = "split folders" if tree.is_folder else "split zips"
            report = LoadReport(source=str(root), layout=layout, image_size=size, from_cache=True)
        report.from_cache &= part["from_cache"]
        _note(report, split, tree.label, part)
        parts[split] = part
    classes = _check_classes(root, parts)
    data = {s: _to_chardata(p, classes) for s, p in parts.items()}
    progress_line(str(report).splitlines()[0] + (" (from cache)" if report.from_cache else ""))
    return Dataset(**data, report=report)


def load_split(source: str | os.PathLike, split: str, **kwargs) -> CharData:
    """One split of `load_dataset(source, **kwargs)` (cached, so cheap after the first load)."""
    return load_dataset(source, **kwargs)[split]


SMOKE_PER_CLASS = {"train": 8, "validation": 4}  # what a smoke run trains and selects on


def smoke_subsets(ds: Dataset, seed: int) -> tuple[CharData, CharData]:
    """The training and validation images a smoke run uses (a few per class, seeded)."""
    n = SMOKE_PER_CLASS
    return ds.train.subset(n["train"], seed), ds.validation.subset(n["validation"], seed)


def smoke_source(source: str | os.PathLike, smoke: bool) -> str | os.PathLike:
    """Smoke runs swap the default built-in data ('synth') for its small preset."""
    return "synth-small" if smoke and str(source) == "synth" else source


def _resolve(source: str | os.PathLike, *, progress: bool) -> Path:
    from charlib.data import download, emnist, synth

    if str(source) in synth.PRESETS:
        return synth.ensure(str(source), progress=progress)
    if str(source) == download.ALPHANUM:
        return download.alphanum(progress=progress)
    if str(source) == emnist.NAME:
        return emnist.ensure(progress=progress)
    return Path(source).expanduser()


def check_source(source: str | os.PathLike) -> None:
    """Refuse, before any work starts, a source that is neither a built-in name nor an existing
    folder or zip; fetch AlphaNum or EMNIST on first use (offline: `DownloadError`, one line)."""
    from charlib.data import download, emnist, synth

    names = [*synth.PRESETS, download.ALPHANUM, emnist.NAME]
    if str(source) in names:
        _resolve(source, progress=True)
    elif not Path(source).expanduser().exists():
        raise FileNotFoundError(
            f"{source}: no such dataset folder or .zip; pass a folder in the AlphaNum layout "
            f"(one folder per ASCII code) or a built-in name: {', '.join(names)}"
        )


def _note(report: LoadReport, split: str, label: str, part: dict) -> None:
    report.counts[split] = len(part["codes"])
    report.inverted[split] = int(part["inverted"])
    report.resized[split] = int(part["resized"])
    report.skipped += [{"split": split, **r} for r in part["skipped"]]
    report.ignored += [{"split": split, **r} for r in part["ignored"]]
    if len(part["codes"]) == 0:
        raise DataError(
            f"{label}: no readable images in class folders named by ASCII code "
            "(e.g. 65/ for 'A'); see data/README.md for the layout"
        )


def _check_classes(root: Path, parts: dict[str, dict]) -> tuple[int, ...]:
    classes = tuple(sorted(set(parts["train"]["codes"].tolist())))
    for split in ("validation", "test"):
        extra = sorted(set(parts[split]["codes"].tolist()) - set(classes))
        if extra:
            shown = ", ".join(display_label(c) for c in extra[:5])
            raise DataError(
                f"{root}: {split} has classes that train lacks ({shown}); "
                "add training images for them or remove those folders"
            )
    return classes


def _to_chardata(part: dict, classes: tuple[int, ...]) -> CharData:
    labels = np.searchsorted(np.asarray(classes), part["codes"]).astype(np.int64)
    return CharData(part["images"], labels, classes, part["names"])


def _load_unsplit(root, tree, size, seed, val_fraction, test_fraction, progress) -> Dataset:
    part = _load_tree(tree, size, progress)
    layout = f"one set of class folders, split here (seed {seed})"
    report = LoadReport(str(root), layout, part["size"], from_cache=part["from_cache"])
    _note(report, "all", tree.label, part)
    del report.counts["all"]
    idx = stratified_split(part["codes"], seed=seed, fractions=(val_fraction, test_fraction))
    parts = {s: {k: part[k][i] for k in ("images", "codes", "names")} for s, i in idx.items()}
    classes = tuple(sorted(set(part["codes"].tolist())))
    for split, p in parts.items():
        report.counts[split] = len(p["codes"])
    return Dataset(**{s: _to_chardata(p, classes) for s, p in parts.items()}, report=report)


def stratified_split(
    codes: np.ndarray, *, seed: int, fractions=(0.1, 0.1)
) -> dict[str, np.ndarray]:
    """Indices per split; each class is shuffled with `seed` and cut by the fractions."""
    rng = np.random.default_rng(seed)
    out = {s: [] for s in SPLITS}
    for code in np.unique(codes):
        idx = rng.permutation(np.flatnonzero(codes == code))
        n_val, n_test = (int(round(len(idx) * f)) for f in fractions)
        n_val, n_test = min(n_val, len(idx) - 1), min(n_test, max(len(idx) - 1 - n_val, 0))
        out["validation"].append(idx[:n_val])
        out["test"].append(idx[n_val : n_val + n_test])
        out["train"].append(idx[n_val + n_test :])
    return {s: np.sort(np.concatenate(v)).astype(np.int64) for s, v in out.items()}


def _classify(names: list[str]) -> tuple[list[tuple[str, int]], list[dict]]:
    """Members in class folders as (name, code); everything else as ignored entries."""
    members, ignored = [], {}
    for name in names:
        top, _, rest = name.partition("/")
        if is_system(name):
            litter = next(p for p in name.split("/") if is_system(p))
            where = name[: name.index(litter) + len(litter)]
            ignored.setdefault(where, SYSTEM_FILE)
        elif not rest:
            ignored.setdefault(name, LOOSE_FILE)
        elif not is_code(top):
            ignored.setdefault(top + "/", IGNORED_FOLDER)
        elif name.endswith(STROKES_SUFFIX):  # a saved drawing's strokes, beside its PNG
            continue
        else:
            members.append((name, int(top)))
    return members, [{"path": p, "reason": r} for p, r in ignored.items()]


def _load_tree(tree: Tree, size: int | None, progress: bool) -> dict:
    """Decode a tree (or read its cache): images fitted to one size, codes, names, problems."""
    key = tree.fingerprint() + f"-v{CACHE_VERSION}-size{size or 'auto'}"
    cache = _cache_path(tree, hashlib.sha1(key.encode()).hexdigest()[:16])
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as z:
            part = {k: z[k] for k in z.files}
        meta = json.loads(str(part.pop("meta")))
        return {**part, **meta, "from_cache": True}
    members, ignored = _classify(tree.names)
    arrays, codes, names, skipped, inverted = [], [], [], [], 0
    for row in _decode_all(tree, members, progress):
        if len(row) == 3:
            skipped.append(dict(zip(("path", "reason", "detail"), row, strict=True)))
            continue
        names.append(row[0])
        codes.append(row[1])
        arrays.append(row[2])
        inverted += row[3]
    shapes = Counter(max(a.shape) for a in arrays)
    size = size or (shapes.most_common(1)[0][0] if shapes else IMAGE_SIZE)
    resized = sum(a.shape != (size, size) for a in arrays)
    images = (
        np.stack([fit_square(a, size) for a in arrays])
        if arrays
        else np.zeros((0, size, size), np.uint8)
    )
    meta = {
        "size": size,
        "inverted": inverted,
        "resized": resized,
        "skipped": skipped,
        "ignored": ignored,
    }
    part = {
        "images": images,
        "codes": np.asarray(codes, np.int64),
        "names": np.asarray(names, dtype=str),
    }
    _save_cache(cache, part, meta)
    return {**part, **meta, "from_cache": False}


CHUNK = 2048  # members per decoding task: enough to amortise handing work to a process
_WORKER_TREES: dict[tuple[str, str], Tree] = {}  # per worker process: zips stay open across tasks


def _decode_all(tree: Tree, members: list[tuple[str, int]], progress: bool) -> list[tuple]:
    """Decode members in order, on every core for big trees; see `_decode_chunk` for the rows."""
    chunks = [members[i : i + CHUNK] for i in range(0, len(members), CHUNK)]
    workers = min(len(chunks), os.cpu_count() or 1, 8)
    rows = []
    with bar(total=len(members), enabled=progress, desc=f"decoding {tree.label}") as shown:
        if workers > 1:
            light = replace(tree, _names=[])  # workers need no listing; it is pickled per task
            with ProcessPoolExecutor(workers) as pool:
                for out in pool.map(_decode_in_worker, [light] * len(chunks), chunks):
                    rows += out
                    shown.update(len(out))
        else:
            try:
                for chunk in chunks:
                    rows += _decode_chunk(tree, chunk)
                    shown.update(len(chunk))
            finally:
                tree.close()
    return rows


def _decode_in_worker(tree: Tree, members: list[tuple[str, int]]) -> list[tuple]:
    # Opening a zip reads its whole directory (0.6 s for 67k members): once per process.
    mine = _WORKER_TREES.setdefault((str(tree.path), tree.prefix), tree)
    return _decode_chunk(mine, members)


def _decode_chunk(tree: Tree, members: list[tuple[str, int]]) -> list[tuple]:
    """(name, code, image, inverted) per readable member; (name, reason, detail) per bad one."""
    out = []
    for name, code in members:
        try:
            arr, flipped = decode(tree.read(name))
        except BadImage as e:
            out.append((name, e.reason, str(e)))
            continue
        out.append((name, code, arr, flipped))
    return out


def _cache_path(tree: Tree, digest: str) -> Path:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", tree.label.strip("/"))[-60:]
    where = hashlib.sha1(f"{tree.path.resolve()}:{tree.prefix}".encode()).hexdigest()[:8]
    return paths.cache_dir() / f"{slug}-{where}-{digest}.npz"


def _save_cache(cache: Path, part: dict, meta: dict) -> None:
    """Atomic write; older caches of the same source are removed (they can never match again)."""
    try:
        atomic_write(cache, lambda f: np.savez(f, **part, meta=np.asarray(json.dumps(meta))))
    except OSError:
        return  # a read-only cache only costs speed
    stem = cache.name.rsplit("-", 1)[0]
    for old in cache.parent.glob(f"{stem}-*.npz"):
        if old != cache:
            old.unlink(missing_ok=True)


def class_table(ds: Dataset):
    """Per class: label, images per split, and the training images' mean intensity and ink cover."""
    import pandas as pd

    train = ds.train
    images = train.images.reshape(len(train), -1)
    rows = []
    for k, code in enumerate(ds.classes):
        mine = images[train.labels == k]
        rows.append(
            {
                "code": code,
                "label": display_label(code),
                **{split: int(part.counts()[k]) for split, part in ds.splits().items()},
                "mean_intensity": float(mine.mean()) if len(mine) else float("nan"),
                "ink_coverage": float((mine > INK_LEVEL).mean()) if len(mine) else float("nan"),
            }
        )
    return pd.DataFrame(rows)
