"""Read-only views of a dataset split stored as a folder or a zip, in the AlphaNum layout."""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from charlib.common.codes import is_code

SPLITS = ("train", "validation", "test")
# Folder or zip names accepted for each split, first one preferred.
SPLIT_NAMES = {"train": ("train",), "validation": ("validation", "val", "valid"), "test": ("test",)}
# Files and folders that operating systems and archivers leave behind.
SYSTEM_NAMES = {"__MACOSX", ".DS_Store", "Thumbs.db", "desktop.ini", ".ipynb_checkpoints"}


def data_name(source) -> str:
    """How pages name a dataset: 'synth', 'EMNIST', 'alphanum', else the folder's (zip's) name."""
    if source is None or not str(source).strip():
        return "unknown data"
    name = Path(str(source).rstrip("/\\")).name
    name = name[: -len(".zip")] if name.lower().endswith(".zip") else name
    if name.startswith("synth"):
        return "synth"
    if "emnist" in name.lower():
        return "EMNIST"
    return name


def split_label(source, split: str) -> str:
    """'synth test', 'EMNIST test', 'my-letters validation': an accuracy's data, named."""
    return f"{data_name(source)} {split}"


def measured_on(metrics: dict, source=None) -> str:
    """'synth test': what an evaluation's metrics.json was measured on (`source` when the file
    names no data; the test split when it names no split)."""
    return split_label(metrics.get("data") or source, metrics.get("split", "test"))


class DataError(ValueError):
    """An unusable dataset; the message names the path and what to do."""


@dataclass
class Tree:
    """Files of one split, named relative to its root as '<code>/<file>' (POSIX separators).

    Listing is lazy: a cached load needs only `fingerprint()`, which reads no zip directory.
    """

    label: str  # how messages name it, e.g. 'data/x/train.zip'
    path: Path  # the folder or the zip file
    prefix: str = ""  # folder inside a zip that holds the class folders
    _names: list[str] | None = field(default=None, repr=False)
    _zip: zipfile.ZipFile | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.is_folder = self.path.is_dir()

    @property
    def names(self) -> list[str]:
        """Member names, sorted; a zip's members are checked for escaping paths here."""
        if self._names is None:
            if self.is_folder:
                self._names = _walk(self.path)
            else:
                self.prefix, self._names = _strip_top_folder(
                    self.prefix, _zip_names(self.path, self.prefix)
                )
        return self._names

    def read(self, name: str) -> bytes:
        """The bytes of one member."""
        if self.is_folder:
            return (self.path / name).read_bytes()
        if self._zip is None:
            self._zip = zipfile.ZipFile(self.path)
        return self._zip.read(self.prefix + name)

    def close(self) -> None:
        """Release the zip handle, if one is open."""
        if self._zip is not None:
            self._zip.close()
            self._zip = None

    def fingerprint(self) -> str:
        """Changes whenever a file is added, removed or rewritten."""
        if self.is_folder:
            stats = [(n, *_stat(self.path / n)) for n in self.names]
        else:
            stats = [_stat(self.path)]
        blob = json.dumps([str(self.path.resolve()), self.label, stats])
        return hashlib.sha1(blob.encode()).hexdigest()


def _stat(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def _walk(path: Path) -> list[str]:
    """All files under a folder, walked in sorted order."""
    names = []
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames.sort()
        rel = Path(dirpath).relative_to(path).as_posix()
        names += [f if rel == "." else f"{rel}/{f}" for f in sorted(filenames)]
    return names


def _zip_names(path: Path, prefix: str) -> list[str]:
    """Members under `prefix`, relative to it; refuses members that would escape their folder."""
    try:
        with zipfile.ZipFile(path) as zf:
            members = [i.filename for i in zf.infolist() if not i.is_dir()]
    except (zipfile.BadZipFile, OSError) as e:
        raise DataError(f"{path}: not a readable zip ({e}); download or re-create it") from None
    for name in members:
        parts = name.replace("\\", "/").split("/")
        if name.startswith(("/", "\\")) or ".." in parts or ":" in parts[0]:
            raise DataError(
                f"{path}: member '{name}' has an absolute path or '..'; refusing this zip, "
                "re-create it with relative paths"
            )
    return sorted(n[len(prefix) :] for n in members if n.startswith(prefix))


def folder_tree(path: Path) -> Tree:
    """A split stored as a folder of class folders."""
    return Tree(label=str(path), path=path)


def zip_tree(path: Path) -> Tree:
    """A split stored as a zip of class folders (or of one folder holding them)."""
    if not zipfile.is_zipfile(path):
        raise DataError(f"{path}: not a readable zip; download or re-create it")
    return Tree(label=str(path), path=path)


def _strip_top_folder(prefix: str, names: list[str]) -> tuple[str, list[str]]:
    """A zip may wrap its class (or split) folders in one extra top folder."""
    useful = [n for n in names if not is_system(n)]
    tops = {n.split("/", 1)[0] for n in useful}
    if len(tops) != 1 or any("/" not in n for n in useful):
        return prefix, names
    top = tops.pop()
    if is_code(top) or top in SPLIT_ALIASES:
        return prefix, names
    inner = top + "/"
    return prefix + inner, [n[len(inner) :] for n in names if n.startswith(inner)]


SPLIT_ALIASES = {alias: split for split, names in SPLIT_NAMES.items() for alias in names}


def is_system(name: str) -> bool:
    """Whether any part of a member name is operating-system or archiver litter."""
    return any(p in SYSTEM_NAMES or p.startswith("._") for p in name.split("/"))


def subtree(tree: Tree, top: str) -> Tree:
    """The members under one top folder of a zip tree, as a tree of their own."""
    inner = top + "/"
    names = [n[len(inner) :] for n in tree.names if n.startswith(inner)]
    return Tree(
        label=f"{tree.label}/{top}", path=tree.path, prefix=tree.prefix + inner, _names=names
    )


def find_splits(root: Path) -> dict[str, Tree] | Tree:
    """The three split trees of a dataset root, or one tree of class folders to split here."""
    if not root.exists():
        raise DataError(
            f"{root}: no such file or folder; pass a folder with train/ validation/ test/ "
            "(or train.zip, validation.zip, test.zip), or 'synth' for the built-in data"
        )
    if root.is_file():
        if not zipfile.is_zipfile(root):
            raise DataError(f"{root}: not a folder or a zip; pass the dataset's folder")
        whole = zip_tree(root)
        tops = {n.split("/", 1)[0] for n in whole.names if "/" in n}
        found = {SPLIT_ALIASES[t]: subtree(whole, t) for t in sorted(tops) if t in SPLIT_ALIASES}
        return _complete(root, found) if found else whole
    found = {}
    for split, names in SPLIT_NAMES.items():
        for name in names:
            if (root / name).is_dir():
                found[split] = folder_tree(root / name)
                break
            if (root / f"{name}.zip").is_file():
                found[split] = zip_tree(root / f"{name}.zip")
                break
    return _complete(root, found) if found else folder_tree(root)


def _complete(root: Path, found: dict[str, Tree]) -> dict[str, Tree]:
    missing = [s for s in SPLITS if s not in found]
    if missing:
        names = ", ".join(f"{s}/ or {s}.zip" for s in missing)
        raise DataError(
            f"{root}: split {names} is missing; add it, or keep only class folders "
            "at the top and charlib makes a seeded split"
        )
    return found
