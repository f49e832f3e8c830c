"""Every figure: functions take data and return a matplotlib Figure (no pyplot state)."""

from __future__ import annotations

import io
import os

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from PIL import Image, ImageOps

from charlib.common.codes import IMAGE_SIZE, INK_LEVEL, UNKNOWN, code_to_char, display_label
from charlib.vision.images import check_size
from charlib.vision.strokes import Strokes, rasterize

SPLIT_COLORS = {"train": "#4C72B0", "validation": "#DD8452", "test": "#55A868"}


def _tile(images: np.ndarray, cols: int) -> np.ndarray:
    """N×H×W images -> one mosaic with `cols` columns and a 1-pixel grey gutter."""
    n, h, w = images.shape
    rows = -(-n // cols)
    out = np.full((rows * (h + 1) - 1, cols * (w + 1) - 1), 60, np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        out[r * (h + 1) : r * (h + 1) + h, c * (w + 1) : c * (w + 1) + w] = img
    return out


def _class_grid(n: int, cols: int, *, cell: tuple[float, float], top: float):
    """A figure with one blank panel per class (n panels, `cols` a row) and its flat axes."""
    rows = -(-n // cols)
    fig = Figure(figsize=(cols * cell[0], rows * cell[1] + top), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).flatten()
    for ax in axes:
        ax.set_axis_off()
    return fig, axes


def sample_grid(data, *, per_class: int = 6, cols: int = 8, seed: int = 0) -> Figure:
    """A few random training images of every class, titled like 'A (65)'."""
    rng = np.random.default_rng(seed)
    fig, axes = _class_grid(len(data.classes), cols, cell=(2.0, 0.75), top=0.6)
    for k, code in enumerate(data.classes):
        idx = np.flatnonzero(data.labels == k)
        pick = rng.choice(idx, size=min(per_class, len(idx)), replace=False)
        ax = axes[k]
        ax.imshow(_tile(data.images[pick], per_class), cmap="gray", vmin=0, vmax=255)
        ax.set_title(display_label(code), fontsize=9)
    fig.suptitle(f"{per_class} random training images per class", fontsize=12)
    return fig


def class_distribution(table) -> Figure:
    """Images per class, stacked by split, from `data.class_table`."""
    fig = Figure(figsize=(min(16, max(10, len(table) * 0.16)), 4), layout="constrained")
    ax = fig.subplots()
    x = np.arange(len(table))
    bottom = np.zeros(len(table))
    for split, color in SPLIT_COLORS.items():
        ax.bar(x, table[split], bottom=bottom, color=color, label=split, width=0.8)
        bottom += table[split].to_numpy()
    ax.set_xticks(x, [code_to_char(c) for c in table["code"]], fontsize=7)
    ax.set_xlim(-0.7, len(table) - 0.3)
    ax.set_xlabel("class (character)")
    ax.set_ylabel("images")
    ax.legend(ncols=3, loc="lower right", bbox_to_anchor=(1, 1), frameon=False)
    ax.set_title("Images per class, stacked by split", loc="left")
    return fig


def split_sizes(counts: dict[str, int]) -> Figure:
    """A horizontal bar per split, labelled with its image count."""
    fig = Figure(figsize=(6, 1.8), layout="constrained")
    ax = fig.subplots()
    names = list(counts)
    bars = ax.barh(names, [counts[n] for n in names], color=[SPLIT_COLORS[n] for n in names])
    ax.bar_label(bars, labels=[f"{counts[n]:,}" for n in names], padding=3)
    ax.invert_yaxis()
    ax.set_xlabel("images")
    ax.margins(x=0.15)
    return fig


def image_stats(table) -> Figure:
    """Mean intensity and ink coverage per class (training images), from `data.class_table`."""
    fig = Figure(figsize=(min(16, max(10, len(table) * 0.16)), 5), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True)
    x = np.arange(len(table))
    top.bar(x, table["mean_intensity"], color="#4C72B0")
    top.set_ylabel("mean intensity\n(0-255)")
    bottom.bar(x, table["ink_coverage"] * 100, color="#C44E52")
    bottom.set_ylabel(f"ink coverage\n(% pixels > {INK_LEVEL})")
    bottom.set_xticks(x, [code_to_char(c) for c in table["code"]], fontsize=7)
    bottom.set_xlabel("class (character)")
    fig.suptitle("Image statistics per class (training split)")
    return fig


def mean_images(data, *, cols: int = 16) -> Figure:
    """The average image of each class: what a 'typical' sample looks like."""
    fig, axes = _class_grid(len(data.classes), cols, cell=(0.8, 0.95), top=0.5)
    for k, code in enumerate(data.classes):
        mine = data.images[data.labels == k]
        ax = axes[k]
        ax.imshow(mine.mean(axis=0), cmap="magma", vmin=0, vmax=255)
        ax.set_title(display_label(code), fontsize=7)
    fig.suptitle("Mean image per class (training split)", fontsize=12)
    return fig


def augmentation_panels(panels: dict[str, np.ndarray], labels: list[str] | None = None) -> Figure:
    """One row per augmentation (from `augment.preview`), the same images in every row."""
    names = list(panels)
    n = len(panels[names[0]])
    fig = Figure(figsize=(n * 0.9 + 1.6, len(names) * 0.95 + 0.4), layout="constrained")
    axes = fig.subplots(len(names), 1, squeeze=False)[:, 0]
    for ax, name in zip(axes, names, strict=True):
        ax.imshow(_tile(panels[name], n), cmap="gray", vmin=0, vmax=255)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=10)
    if labels:
        side = panels[names[0]].shape[-1] + 1
        axes[0].set_xticks(np.arange(n) * side + side / 2 - 1, labels, fontsize=8)
        axes[0].xaxis.tick_top()
    return fig


def training_history(history: list[dict]) -> Figure:
    """Loss and accuracy per epoch (training and validation) and the learning rate."""
    fig = Figure(figsize=(13, 3.6), layout="constrained")
    loss_ax, acc_ax, lr_ax = fig.subplots(1, 3)
    epochs = [r["epoch"] for r in history]
    loss_ax.plot(epochs, [r["train_loss"] for r in history], "o-", label="train")
    loss_ax.plot(epochs, [r["val_loss"] for r in history], "o-", label="validation")
    loss_ax.set_title("loss (cross-entropy)")
    acc_ax.plot(epochs, [100 * r["train_acc"] for r in history], "o-", label="train (augmented)")
    acc_ax.plot(epochs, [100 * r["val_acc"] for r in history], "o-", label="validation")
    if history:
        best = max(history, key=lambda r: r["val_acc"])
        acc_ax.annotate(
            f"best {100 * best['val_acc']:.1f}%",
            (best["epoch"], 100 * best["val_acc"]),
            textcoords="offset points",
            xytext=(0, -16),
            ha="center",
            fontsize=9,
        )
    acc_ax.set_title("accuracy (%)")
    lr_ax.plot(epochs, [r["lr"] for r in history], "o-", color="#8172B3")
    lr_ax.set_title("learning rate at epoch end")
    for ax in (loss_ax, acc_ax, lr_ax):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    loss_ax.legend()
    acc_ax.legend()
    return fig


def _tick_size(n: int) -> float:
    """Tick label font size that keeps one label per class readable (62-95 classes: 6-7 pt)."""
    return 9 if n <= 30 else 7 if n <= 70 else 6


def _short(code: int) -> str:
    """A tick label one glyph wide where possible: the character, 'unk' for unknown (999)."""
    return "unk" if int(code) == UNKNOWN else code_to_char(code)


def confusion_matrix(cm: np.ndarray, classes) -> Figure:
    """Row-normalised confusion matrix (rows: true class), one tick per class character."""
    from matplotlib.colors import PowerNorm

    n = len(classes)
    side = min(16.0, max(5.0, 0.15 * n + 2.5))
    fig = Figure(figsize=(side + 1.2, side), layout="constrained")
    ax = fig.subplots()
    # A power scale: the diagonal sits near 1, while the mistakes worth seeing are a few percent.
    image = ax.imshow(cm, cmap="magma_r", norm=PowerNorm(0.4, vmin=0, vmax=1))
    chars = [_short(c) for c in classes]
    ticks = np.arange(n)
    ax.set_xticks(ticks, chars, fontsize=_tick_size(n))
    ax.set_yticks(ticks, chars, fontsize=_tick_size(n))
    ax.tick_params(length=2, pad=1, top=True, labeltop=True, right=True, labelright=True)
    # thin lines between cells help follow a row or column across 95 classes
    ax.set_xticks(ticks[:-1] + 0.5, minor=True)
    ax.set_yticks(ticks[:-1] + 0.5, minor=True)
    ax.tick_params(which="minor", length=0)
    ax.grid(which="minor", color="white", linewidth=0.4)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    fig.colorbar(image, ax=ax, shrink=0.6, label="share of the true class (power scale)")
    ax.set_title(
        "Confusion matrix: each row sums to 1; off-diagonal cells are mistakes", loc="left"
    )
    return fig


def class_accuracy(per_class: list[dict], *, highlight: int = 10) -> Figure:
    """Accuracy of each class, sorted from worst; the `highlight` worst classes in red."""
    rows = sorted((r for r in per_class if r["support"]), key=lambda r: (r["accuracy"], r["code"]))
    n = len(rows)
    fig = Figure(figsize=(min(16, max(8, n * 0.16)), 3.8), layout="constrained")
    ax = fig.subplots()
    x = np.arange(n)
    acc = np.array([100 * r["accuracy"] for r in rows])
    colors = ["#C44E52" if i < highlight else "#4C72B0" for i in range(n)]
    ax.bar(x, acc, color=colors, width=0.8)
    total = sum(r["support"] for r in rows)
    mean = sum(r["accuracy"] * r["support"] for r in rows) / total * 100 if total else 0
    ax.axhline(mean, color="0.3", linestyle="--", linewidth=1, label=f"overall {mean:.1f}%")
    ax.set_xticks(x, [_short(r["code"]) for r in rows], fontsize=_tick_size(n))
    ax.set_xlim(-0.7, n - 0.3)
    ax.set_ylim(0, 100)
    ax.set_xlabel("class (character), worst first")
    ax.set_ylabel("accuracy (%)")
    ax.legend(loc="lower right", bbox_to_anchor=(1, 1), frameon=False)
    ax.set_title(f"Accuracy per class; the {min(highlight, n)} worst in red", loc="left")
    return fig


def _no_mistakes(text: str) -> Figure:
    fig = Figure(figsize=(6, 1.2), layout="constrained")
    ax = fig.subplots()
    ax.set_axis_off()
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=11)
    return fig


def misclassified_gallery(preds, n: int = 40, *, cols: int = 10) -> Figure:
    """The `n` most confident mistakes: each image titled 'true → predicted' and the confidence."""
    if preds.images is None:
        raise ValueError("these predictions carry no images; use evaluate.predict_split")
    wrong = np.flatnonzero(preds.predicted != preds.labels)
    wrong = wrong[np.argsort(-preds.confidence[wrong], kind="stable")][:n]
    if not len(wrong):
        return _no_mistakes("no misclassified images")
    fig, axes = _class_grid(len(wrong), min(cols, len(wrong)), cell=(1.25, 1.45), top=0.5)
    predicted, confidence = preds.predicted, preds.confidence
    for ax, i in zip(axes, wrong, strict=False):
        ax.imshow(preds.images[i], cmap="gray", vmin=0, vmax=255)
        true, guess = (code_to_char(preds.classes[k]) for k in (preds.labels[i], predicted[i]))
        ax.set_title(f"{true} → {guess}\n{100 * confidence[i]:.0f}%", fontsize=9)
    fig.suptitle(
        f"The {len(wrong)} most confident mistakes (true → predicted, confidence)", fontsize=12
    )
    return fig


def confused_pairs(pairs, preds, *, examples: int = 8) -> Figure:
    """One row per confused pair (from `evaluate.confused_pairs`): images of the true class that
    the model read as the other one, most confident first."""
    if preds.images is None:
        raise ValueError("these predictions carry no images; use evaluate.predict_split")
    if not len(pairs):
        return _no_mistakes("no confused pairs: every image was classified correctly")
    side = preds.images.shape[-1]
    fig = Figure(figsize=(examples * 0.85 + 3.2, len(pairs) * 0.9 + 0.6), layout="constrained")
    axes = fig.subplots(len(pairs), 1, squeeze=False)[:, 0]
    for ax, row in zip(axes, pairs.itertuples(), strict=True):
        shown = np.full((examples, side, side), 60, np.uint8)  # empty slots: gutter grey
        picked = preds.images[row.examples[:examples]]
        shown[: len(picked)] = picked
        ax.imshow(_tile(shown, examples), cmap="gray", vmin=0, vmax=255)
        ax.set_xticks([])
        ax.set_yticks([])
        label = f"{row.true} → {row.predicted}\n{row.count} images ({100 * row.share:.0f}%)"
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    fig.suptitle("Most confused pairs: true → predicted, with examples", fontsize=12)
    return fig


def reliability_diagram(calibration: dict) -> Figure:
    """Accuracy against confidence per bin (a calibrated model follows the diagonal), with the
    images per bin below; ECE in the title."""
    edges = np.asarray(calibration["edges"])
    centers, width = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
    filled = [i for i, a in enumerate(calibration["accuracy"]) if a is not None]
    acc = np.array([calibration["accuracy"][i] for i in filled])
    conf = np.array([calibration["confidence"][i] for i in filled])
    fig = Figure(figsize=(5.5, 6), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    top.bar(
        centers[filled],
        acc,
        width=width[filled],
        color="#4C72B0",
        edgecolor="white",
        label="accuracy",
    )
    top.bar(
        centers[filled],
        np.abs(conf - acc),
        bottom=np.minimum(conf, acc),
        width=width[filled],
        facecolor="none",
        edgecolor="#C44E52",
        hatch="///",
        label="gap to mean confidence",
    )
    top.plot([0, 1], [0, 1], "--", color="0.3", linewidth=1, label="perfect calibration")
    top.set_ylim(0, 1)
    top.set_ylabel("accuracy")
    top.legend(loc="upper left", frameon=False)
    top.set_title(f"Reliability diagram (ECE {100 * calibration['ece']:.2f}%)", loc="left")
    bottom.bar(centers, calibration["count"], width=width, color="0.5", edgecolor="white")
    bottom.set_yscale("log")
    bottom.set_xlim(0, 1)
    bottom.set_xlabel("confidence (top-class probability)")
    bottom.set_ylabel("images")
    return fig


MAX_SHOWN = 800  # the longest side, in px, at which `prediction_figure` draws a photo


def photo_rgb(x, *, max_side: int = MAX_SHOWN) -> tuple[np.ndarray, tuple[int, int]]:
    """A path, file bytes or PIL image as the user sees it -> (uint8 H×W×3 RGB, ×4 when it has
    transparency, upright by its EXIF, at most `max_side` px on its longer side; its width and
    height as handed in)."""
    if not isinstance(x, Image.Image):
        with Image.open(io.BytesIO(bytes(x)) if isinstance(x, (bytes, bytearray)) else x) as img:
            check_size(img.size)  # a decompression bomb is refused before it is decoded
            return photo_rgb(img, max_side=max_side)
    img = ImageOps.exif_transpose(x)
    size = img.size
    alpha = img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info
    img = img.convert("RGBA" if alpha else "RGB")
    img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return np.asarray(img, np.uint8), size


def _as_shown(drawing) -> tuple[np.ndarray, tuple[int, int], str]:
    """(the image to draw, its width and height as handed in, what it is) for any input."""
    if isinstance(drawing, Strokes):
        shown = rasterize(drawing)
        return shown, (shown.shape[1], shown.shape[0]), "drawn"
    if isinstance(drawing, (str, os.PathLike, bytes, bytearray, Image.Image)):
        return *photo_rgb(drawing), "photo"
    shown = np.asarray(drawing)
    return shown, (shown.shape[1], shown.shape[0]), "photo" if shown.ndim == 3 else "input"


def prediction_figure(drawing, prediction, *, title: str | None = None) -> Figure:
    """The input as the user handed it in, the model's view and the top-k bars.

    `drawing`: Strokes or a 2-D white-on-black array (drawn in gray), an H×W×3 RGB array, or a
    path, file bytes or PIL image (drawn in colour, upright, at most MAX_SHOWN px on a side).
    """
    shown, (width, height), kind = _as_shown(drawing)
    aspect = float(np.clip(shown.shape[1] / max(shown.shape[0], 1), 0.5, 2.0))
    side = 2.8  # inches: the model's view; the input as tall, as wide as its aspect asks
    fig = Figure(figsize=(side * (aspect + 1) + 4.4, side + 0.6), layout="constrained")
    ax_in, ax_seen, ax_bars = fig.subplots(
        1, 3, gridspec_kw={"width_ratios": [side * aspect, side, 4.4]}
    )
    if shown.ndim == 3:
        ax_in.imshow(shown)
    else:
        ax_in.imshow(shown, cmap="gray", vmin=0, vmax=255)
    ax_in.set_title(f"{kind} ({width}×{height} px)", fontsize=10)
    seen = prediction.image
    empty = np.zeros((IMAGE_SIZE, IMAGE_SIZE), np.uint8)
    ax_seen.imshow(empty if seen is None else seen, cmap="gray", vmin=0, vmax=255)
    size = "none" if seen is None else f"{seen.shape[1]}×{seen.shape[0]}"
    ax_seen.set_title(f"model input ({size})", fontsize=10)
    for ax in (ax_in, ax_seen):
        ax.set_xticks([])
        ax.set_yticks([])
    _top_k_bars(ax_bars, prediction)
    if title:
        fig.suptitle(title, fontsize=12)
    return fig


def _top_k_bars(ax, prediction) -> None:
    """The guesses as horizontal bars, best on top; 'nothing drawn' for a blank input."""
    if prediction.blank:
        ax.text(0.5, 0.5, "nothing drawn", ha="center", va="center", fontsize=14)
        ax.set_xticks([])
        ax.set_yticks([])
        return
    labels = [display_label(g["code"]) for g in prediction][::-1]
    values = [g["confidence"] for g in prediction][::-1]
    color = "#d9822b" if prediction.unsure else "#2b7bd9"
    bars = ax.barh(labels, values, color=color)
    ax.bar_label(bars, labels=[f"{v:.1%}" for v in values], padding=3, fontsize=9)
    ax.set_xlim(0, 1.15)
    ax.set_xlabel("confidence")
    ax.set_title(f"top {len(prediction)} ({prediction.status})", fontsize=10)


TOWARD, AGAINST = (1.0, 0.23, 0.19), (0.18, 0.55, 1.0)  # RGB: saliency red and blue
SALIENCY_KEY = (
    "red: ink pushing toward the titled class · blue: ink pushing against it\n"
    "('what would make it X': toward X rather than the top guess)"
)


def saliency_overlay(image: np.ndarray, attribution: np.ndarray, *, smooth: float = 1.0):
    """A white-on-black uint8 image, dimmed to grey, under a signed map: RGB float H×W×3.

    The map is smoothed (Gaussian, `smooth` px) so regions read rather than single pixels; red
    where it is positive, blue where negative, opaque at its largest |value|.
    """
    from scipy.ndimage import gaussian_filter

    shown = gaussian_filter(np.asarray(attribution, np.float32), smooth) if smooth else attribution
    scale = float(np.abs(shown).max()) or 1.0
    strength = np.clip(np.abs(shown) / scale, 0, 1)[..., None] ** 0.7
    colour = np.where(shown[..., None] >= 0, TOWARD, AGAINST)
    grey = np.repeat(image[..., None] / 255.0 * 0.55, 3, axis=2)
    return (1 - strength) * grey + strength * colour


def saliency_figure(image, maps, titles=(), *, rows=None, title: str | None = None) -> Figure:
    """The image the model saw, then one panel per map: the image in grey under the map.

    One image (H×W) with maps K×H×W, K titles and `rows` its label, or a gallery: N×H×W,
    N×K×H×W, N lists of K titles and `rows` a label per image (default 'model input').
    No maps (a blank drawing): 'nothing drawn'.
    """
    if image is None:  # a blank drawing: the model saw nothing
        return _no_mistakes("nothing drawn")
    images, maps = np.asarray(image), np.asarray(maps)
    if images.ndim == 2:
        images, maps, titles, rows = images[None], maps[None], [list(titles)], [rows]
    if not len(images):
        return _no_mistakes("no images to explain")
    if not maps.shape[1]:
        return _no_mistakes("nothing drawn")
    n, k = maps.shape[:2]
    fig = Figure(figsize=(1.75 * (k + 1), 1.85 * n + 0.6), layout="constrained")
    axes = fig.subplots(n, k + 1, squeeze=False)
    for r in range(n):
        axes[r, 0].imshow(images[r], cmap="gray", vmin=0, vmax=255)
        axes[r, 0].set_title(rows[r] if rows and rows[r] else "model input", fontsize=9)
        for c in range(k):
            overlay = saliency_overlay(images[r], maps[r, c])
            axes[r, c + 1].imshow(overlay, interpolation="bilinear")
            axes[r, c + 1].set_title(titles[r][c].replace(" — ", "\n"), fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.supxlabel(SALIENCY_KEY, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def validation_curves(histories: dict[str, list[dict]]) -> Figure:
    """Validation accuracy per epoch of several runs, overlaid (against epochs and seconds)."""
    fig = Figure(figsize=(13, 4), layout="constrained")
    by_epoch, by_time = fig.subplots(1, 2)
    for name, history in histories.items():
        acc = [100 * r["val_acc"] for r in history]
        by_epoch.plot([r["epoch"] for r in history], acc, "o-", ms=3, label=name)
        by_time.plot(np.cumsum([r["seconds"] for r in history]), acc, "o-", ms=3, label=name)
    by_epoch.set_xlabel("epoch")
    by_epoch.xaxis.set_major_locator(MaxNLocator(integer=True))
    by_time.set_xlabel("training seconds")
    for ax in (by_epoch, by_time):
        ax.set_ylabel("validation accuracy (%)")
        ax.grid(alpha=0.3)
    by_epoch.legend(fontsize=8)
    fig.suptitle("validation accuracy of each run")
    return fig


def accuracy_vs_time(board) -> Figure:
    """Test accuracy against training time, one labelled point per evaluated run."""
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.subplots()
    done = board.dropna(subset=["accuracy"])
    ax.scatter(done["training s"], 100 * done["accuracy"], color="#4C72B0")
    for run, seconds, accuracy in zip(
        done["run"], done["training s"], done["accuracy"], strict=True
    ):
        ax.annotate(
            run, (seconds, 100 * accuracy), textcoords="offset points", xytext=(4, 4), fontsize=8
        )
    ax.set_xlabel("training seconds")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("what each run's time bought")
    ax.grid(alpha=0.3)
    return fig


def class_gains(table, examples: dict[int, np.ndarray], *, best: str, baseline: str) -> Figure:
    """The classes the best run gains and loses most against the baseline (bars), each with a
    few of its test images; `table` from `compare.class_differences`."""
    shown = table.iloc[list(range(min(6, len(table)))) + list(range(-min(6, len(table)), 0))]
    shown = shown.drop_duplicates("code")
    fig = Figure(figsize=(13, 0.55 * len(shown) + 1.5), layout="constrained")
    bars, pics = fig.subplots(1, 2, width_ratios=[2, 1])
    y = np.arange(len(shown))[::-1]
    colors = ["#55A868" if d >= 0 else "#C44E52" for d in shown["difference"]]
    bars.barh(y, 100 * shown["difference"], color=colors)
    bars.set_yticks(y, shown["class"], fontsize=9)
    bars.axvline(0, color="#444", lw=0.8)
    bars.set_xlabel(f"test accuracy points, {best} minus {baseline}")
    rows = [examples.get(c, np.zeros((1, IMAGE_SIZE, IMAGE_SIZE), np.uint8)) for c in shown["code"]]
    width = max(len(r) for r in rows)
    strip = [
        _tile(np.concatenate([r, np.zeros((width - len(r), *r.shape[1:]), r.dtype)]), width)
        for r in rows
    ]
    pics.imshow(np.concatenate(strip), cmap="gray", vmin=0, vmax=255, aspect="auto")
    pics.set_axis_off()
    pics.set_title("test images of each class, same order")
    fig.suptitle("biggest per-class gains and losses")
    return fig
