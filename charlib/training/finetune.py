"""Fine-tuning: a trained run adapted to your own examples (data/mine, see `mine`), as a new run.

Training starts from the run's weights and mixes your examples (each seen `repeat` times an
epoch, through the run's own augmentation) with images replayed from the run's original training
data (`replay` per class), so it learns your hand without forgetting the rest. Validation is
your examples plus a slice of the original validation split. The result is a new run,
<run>-mine beside it (then -mine-2, ...): the original run is never touched.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from charlib.common.codes import code_to_char, display_label
from charlib.common.paths import recorded_data, resolve_run, runs_dir
from charlib.common.progress import report
from charlib.data import mine
from charlib.data.loading import CharData, load_dataset
from charlib.training import checkpoint
from charlib.training.train import fit

EPOCHS = 6
REPLAY = 100  # original training images per class, mixed into every epoch (30 forgot 2.3 points)
REPLAY_VAL = 10  # original validation images per class, in the validation set
REPEAT = 8  # each of your examples is seen this many times an epoch (augmented each time)
LR_SHARE = 0.1  # of the run's learning rate: adapt, do not start over


def finetune(
    run=None,
    data=None,
    *,
    name: str | None = None,
    epochs: int = EPOCHS,
    replay: int = REPLAY,
    repeat: int = REPEAT,
    replay_data=None,
    device: str = "auto",
    seed: int = 0,
    progress: bool = True,
) -> dict:
    """Fine-tune `run` (a name, folder or None for the latest) on the examples in `data`
    (default data/mine) into a new run; returns fit's summary with its `run_dir`.

    `replay_data` is the original data when the run's own record of it no longer loads.
    """
    for key, value, least in (("replay", replay, 0), ("repeat", repeat, 1)):
        if not isinstance(value, int) or value < least:
            raise ValueError(f"{key} must be an integer of at least {least}, got {value!r}")
    run_dir = resolve_run(run)
    ckpt = checkpoint.load(run_dir / "best.pt")  # an unsafe checkpoint is refused here
    params, classes = ckpt["params"], tuple(int(c) for c in ckpt["classes"])
    folder = Path(data or mine.default_dir())
    found = check_examples(folder, classes)
    train, val = _sets(folder, ckpt, replay_data, replay=replay, repeat=repeat, seed=seed)
    target = _target(run_dir, name)
    report(
        f"fine-tuning {run_dir.name} on {sum(found.values())} examples ({mine.counts_line(found)})"
        f" + {replay} replayed per class -> {target}"
    )
    return fit(
        train,
        val,
        run_dir=target,
        recipe=params["recipe"],
        device=device,
        seed=seed,
        model=params.get("model", "resnet18"),
        epochs=epochs,
        batch_size=min(params["batch_size"], 128),
        lr=params["lr"] * LR_SHARE,
        img_size=params["img_size"],
        stem=params["stem"],
        augmentation=params["augmentation"],
        resume=False,
        progress=progress,
        data_source=params.get("data"),  # evaluation reads the original test split
        init_from=run_dir / "best.pt",
        extra={
            "finetune": {
                "from": str(run_dir),
                "examples": str(folder),
                "counts": {code_to_char(c): n for c, n in found.items()},
                "replay": replay,
                "repeat": repeat,
            }
        },
    ) | {"run_dir": target}


def _sets(folder: Path, ckpt: dict, replay_data, *, replay: int, repeat: int, seed: int):
    """Training: your examples `repeat` times and `replay` original images per class;
    validation: your examples and REPLAY_VAL original validation images per class."""
    params, classes = ckpt["params"], tuple(int(c) for c in ckpt["classes"])
    yours = _your_examples(folder, classes, params["data_size"])
    original = _original(replay_data or recorded_data(params.get("data")), params["data_size"])
    train = _concat([*[yours] * repeat, _replay(original.train, classes, replay, seed)])
    val = _concat([yours, _replay(original.validation, classes, REPLAY_VAL, seed)])
    return train, val


def check_examples(folder: Path, classes) -> dict[int, int]:
    """Examples per class in `folder`; refused in one line when there are none, when a class is
    not one of the run's, or when one has fewer than `mine.MIN_EXAMPLES`."""
    if not folder.is_dir():
        raise FileNotFoundError(f"no examples folder {folder}; save drawings from the pad first")
    found = mine.counts(folder)
    if not found:
        raise ValueError(f"no saved examples in {folder}; save drawings from the pad first")
    unknown = [display_label(c) for c in found if c not in classes]
    if unknown:
        raise ValueError(
            f"{folder} has characters the run was not trained on: {', '.join(unknown)}; remove"
            " those folders or fine-tune a run trained with them"
        )
    few = [f"{display_label(c)} has {n}" for c, n in found.items() if n < mine.MIN_EXAMPLES]
    if few:
        raise ValueError(
            f"too few examples: {', '.join(few)}; save at least {mine.MIN_EXAMPLES} of each"
            " character you teach (or remove its folder)"
        )
    return found


def _your_examples(folder: Path, classes: tuple[int, ...], size: int) -> CharData:
    ds = load_dataset(folder, size=size, val_fraction=0, test_fraction=0, progress=False)
    return _concat([_in_classes(ds[s], classes) for s in ("train", "validation", "test")])


def _original(source, size: int):
    if not source:
        raise ValueError(
            "the run does not record its training data; pass replay_data (--replay-data)"
        )
    try:
        return load_dataset(source, size=size, progress=False)
    except (OSError, ValueError) as e:
        raise ValueError(
            f"the run's training data {source} does not load ({e}); pass replay_data"
            " (--replay-data) to replay other images of its classes"
        ) from None


def _replay(split: CharData, classes: tuple[int, ...], per_class: int, seed: int) -> CharData:
    """`per_class` images of each of the run's classes from the original data (none for 0)."""
    split = _in_classes(split.take([c for c in classes if c in split.classes]), classes)
    return split.subset(per_class, seed) if per_class else split.rows([])


def _in_classes(part: CharData, classes: tuple[int, ...]) -> CharData:
    """The same images labelled by their index in `classes` (the run's, a superset of theirs)."""
    labels = np.searchsorted(np.asarray(classes), part.codes).astype(np.int64)
    return CharData(part.images, labels, classes, part.names)


def _concat(parts: list[CharData]) -> CharData:
    return CharData(
        np.concatenate([p.images for p in parts]),
        np.concatenate([p.labels for p in parts]),
        parts[0].classes,
        np.concatenate([p.names for p in parts]),
    )


def _target(run_dir: Path, name) -> Path:
    """The new run's folder: `name` (under runs/ unless a path), else <run>-mine, -mine-2, ...
    beside the run."""
    if name is None:
        return _free(run_dir.parent / f"{run_dir.name}-mine")
    return Path(name) if "/" in str(name) or os.sep in str(name) else runs_dir() / str(name)


def _free(base: Path) -> Path:
    """base, or base-2, base-3, ...: the first that does not exist."""
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path
