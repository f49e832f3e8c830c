"""Batched, per-sample random augmentation on tensors, and the model-input (eval) transform.

Input and output are float batches N×1×H×W in [0, 1], white strokes on black. One grid_sample
call applies rotation, translation, scale, perspective and elastic distortion together; there
are no flips (b/d, p/q would swap classes).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

# Model input normalisation (mean, std) per channel: the seed's ImageNet statistics for RGB,
# or a plain centring of [0, 1] to [-1, 1] for grayscale.
NORMALIZATION = {
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "half": ((0.5,), (0.5,)),
}

# The seed's augmentation set; every magnitude is a keyword of `augment`.
DEFAULTS = {
    "rotation": 15.0,  # degrees, ±
    "translate": 0.1,  # fraction of the image side, ±
    "scale": 0.1,  # zoom 1 ± scale
    "perspective": 0.2,  # corner shift, fraction of half the side (on half of the samples)
    "brightness": 0.3,  # factor 1 ± brightness
    "contrast": 0.3,  # factor 1 ± contrast
    "stroke": 0.0,  # share of samples whose strokes are thickened or thinned by one pixel
    "elastic": 0.0,  # displacement of a smooth random field, fraction of half the side
    # share of the training images replaced, once before training, by what the photo path makes
    # of them (`photos.through_cleaner`: rendered as a photo, then cleaned by `ink.find`)
    "photo": 0.0,
}


def settings(overrides: dict | None = None) -> dict:
    """DEFAULTS with `overrides` on top, checked: known names and non-negative numbers."""
    if not isinstance(overrides or {}, dict):
        raise ValueError(f"augmentation must be a dict of magnitudes, got {overrides!r}")
    unknown = set(overrides or {}) - set(DEFAULTS)
    if unknown:
        raise ValueError(
            f"unknown augmentation {sorted(unknown)}; expected some of {list(DEFAULTS)}"
        )
    m = {**DEFAULTS, **(overrides or {})}
    bad = {k: v for k, v in m.items() if isinstance(v, bool) or not isinstance(v, (int, float))}
    bad |= {k: v for k, v in m.items() if k not in bad and not v >= 0}
    if bad:
        raise ValueError(f"augmentation magnitudes must be non-negative numbers, got {bad}")
    if m["photo"] > 1:
        raise ValueError(
            f"augmentation photo is a share of the training images, 0 to 1; got {m['photo']}"
        )
    return m


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 N×H×W (white on black) -> float N×1×H×W in [0, 1], the input of `augment`."""
    return images.unsqueeze(1).float().div_(255)


def to_model_input(
    x: torch.Tensor, *, size: int, channels: int, normalization: str
) -> torch.Tensor:
    """Float N×1×H×W in [0, 1] -> the model's input: resized, 1 or 3 channels, normalised."""
    if normalization not in NORMALIZATION:
        raise ValueError(f"unknown normalization {normalization!r}; expected {list(NORMALIZATION)}")
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(
            x, size=(size, size), mode="bilinear", antialias=True, align_corners=False
        )
    if channels == 3:
        x = x.expand(-1, 3, -1, -1)
    mean, std = NORMALIZATION[normalization]
    mean = torch.tensor(mean, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    std = torch.tensor(std, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    return (x - mean) / std


def model_input(x: torch.Tensor, params: dict) -> torch.Tensor:
    """Float N×1×H×W in [0, 1] -> a run's model input (its size, channels, normalisation)."""
    return to_model_input(
        x,
        size=params["img_size"],
        channels=params["channels"],
        normalization=params["normalization"],
    )


def eval_input(images: torch.Tensor, params: dict) -> torch.Tensor:
    """uint8 N×H×W (white on black) -> the model input evaluation and prediction use."""
    return model_input(to_unit(images), params)


def _uniform(n: int, low: float, high: float, x: torch.Tensor, g) -> torch.Tensor:
    return torch.rand(n, device=x.device, generator=g) * (high - low) + low


def augment(
    x: torch.Tensor, *, generator: torch.Generator | None = None, **magnitudes
) -> torch.Tensor:
    """Augment a batch N×1×H×W in [0, 1]; magnitudes default to DEFAULTS, 0 switches one off."""
    m = settings(magnitudes)
    g, n = generator, x.shape[0]
    if m["stroke"] > 0:
        x = _stroke(x, m["stroke"], g)
    grid = _sampling_grid(x, m, g)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if m["brightness"] > 0 or m["contrast"] > 0:
        b = _uniform(n, 1 - m["brightness"], 1 + m["brightness"], x, g).view(n, 1, 1, 1)
        c = _uniform(n, 1 - m["contrast"], 1 + m["contrast"], x, g).view(n, 1, 1, 1)
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = ((x * b - mean * b) * c + mean * b).clamp(0, 1)
    return x


def _sampling_grid(x: torch.Tensor, m: dict, g) -> torch.Tensor:
    """Where each output pixel samples the input (N×H×W×2, normalised -1..1 coordinates)."""
    n, _, h, w = x.shape
    angle = _uniform(n, -m["rotation"], m["rotation"], x, g) * (math.pi / 180)
    zoom = _uniform(n, 1 - m["scale"], 1 + m["scale"], x, g)
    shift = (torch.rand(n, 2, device=x.device, generator=g) * 2 - 1) * (2 * m["translate"])
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    # theta maps output to input coordinates: the inverse of "rotate, zoom, then shift".
    theta = torch.stack(
        [
            torch.stack([cos, sin, -(cos * shift[:, 0] + sin * shift[:, 1])], 1),
            torch.stack([-sin, cos, -(-sin * shift[:, 0] + cos * shift[:, 1])], 1),
        ],
        dim=1,
    )
    grid = F.affine_grid(theta, [n, 1, h, w], align_corners=False)
    if m["perspective"] > 0:
        grid = _perspective(grid, m["perspective"], g)
    if m["elastic"] > 0:
        field = torch.randn(n, 2, 4, 4, device=x.device, generator=g) * m["elastic"]
        field = F.interpolate(field, size=(h, w), mode="bicubic", align_corners=True)
        grid = grid + field.permute(0, 2, 3, 1)
    return grid


def _perspective(grid: torch.Tensor, distortion: float, g) -> torch.Tensor:
    """Pass the grid through a random homography for half of the samples (torchvision's p=0.5)."""
    n = grid.shape[0]
    corners = torch.tensor([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]], device=grid.device)
    # Corners move inwards by up to `distortion` of half the side, like RandomPerspective.
    jitter = torch.rand(n, 4, 2, device=grid.device, generator=g) * distortion
    moved = corners - corners.sign() * jitter
    apply = torch.rand(n, device=grid.device, generator=g) < 0.5
    moved = torch.where(apply.view(n, 1, 1), moved, corners.expand(n, 4, 2))
    hom = _homography(corners.expand(n, 4, 2), moved)  # output corner -> input corner
    flat = grid.reshape(n, -1, 2)
    ones = torch.ones_like(flat[..., :1])
    mapped = torch.cat([flat, ones], -1) @ hom.transpose(1, 2)
    return (mapped[..., :2] / mapped[..., 2:].clamp(min=1e-6)).reshape(grid.shape)


def _homography(src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """The N×3×3 homographies taking 4 src points to 4 dst points (direct linear solve)."""
    n = src.shape[0]
    rows = []
    for i in range(4):
        x, y = src[:, i, 0], src[:, i, 1]
        u, v = dst[:, i, 0], dst[:, i, 1]
        zero, one = torch.zeros_like(x), torch.ones_like(x)
        rows.append(torch.stack([x, y, one, zero, zero, zero, -u * x, -u * y], 1))
        rows.append(torch.stack([zero, zero, zero, x, y, one, -v * x, -v * y], 1))
    a = torch.stack(rows, 1)
    b = dst.reshape(n, 8)
    h = torch.linalg.solve(a, b)
    return torch.cat([h, torch.ones(n, 1, device=src.device)], 1).view(n, 3, 3)


def _stroke(x: torch.Tensor, share: float, g) -> torch.Tensor:
    """Thicken (dilate) or thin (erode) strokes by one pixel for a random share of samples."""
    n = x.shape[0]
    pick = torch.rand(n, device=x.device, generator=g)
    thick = F.max_pool2d(x, 3, stride=1, padding=1)
    # A full one-pixel erosion erases the thin strokes of a 28 px character; half of it thins.
    thin = (x - F.max_pool2d(-x, 3, stride=1, padding=1)) / 2
    out = torch.where((pick < share / 2).view(n, 1, 1, 1), thick, x)
    return torch.where(((pick >= share / 2) & (pick < share)).view(n, 1, 1, 1), thin, out)


def preview(images: np.ndarray, *, seed: int = 0, **magnitudes) -> dict[str, np.ndarray]:
    """Panels for notebook 02: originals, each augmentation alone, then all together (uint8)."""
    m = settings(magnitudes)
    x = to_unit(torch.from_numpy(np.ascontiguousarray(images)))
    off = dict.fromkeys(DEFAULTS, 0.0)
    panels = {"original": images}
    solo = {
        "rotation": ["rotation"],
        "translation": ["translate"],
        "scale": ["scale"],
        "perspective": ["perspective"],
        "brightness / contrast": ["brightness", "contrast"],
        "stroke width": ["stroke"],
        "elastic": ["elastic"],
        "all together": [k for k in DEFAULTS if k != "photo"],
    }
    for title, keys in solo.items():
        if not any(m[k] for k in keys):
            continue
        alone = {**off, **{k: m[k] for k in keys}}
        g = torch.Generator().manual_seed(seed)
        out = augment(x, generator=g, **alone)
        panels[title] = (out.squeeze(1) * 255).round().byte().numpy()
    if m["photo"]:  # before training, not per batch: every image here, as a share would be
        from charlib.data import photos
        from charlib.vision import ink, preprocess

        seen = photos.through_cleaner(
            images, 1.0, seed=seed, fill=preprocess.ink_fill(images), width=ink.stroke_width(images)
        )[0]
        panels["photo, through the cleaner"] = seen
    return panels


# Test-time augmentation: the identity, one-pixel shifts each way and a slightly smaller and
# larger copy (dx px, dy px, scale); never flips, which would swap b/d and p/q.
TTA_VIEWS = (
    (0, 0, 1.0),
    (1, 0, 1.0),
    (-1, 0, 1.0),
    (0, 1, 1.0),
    (0, -1, 1.0),
    (0, 0, 0.9),
    (0, 0, 1.1),
)


def tta_views(x: torch.Tensor) -> list[torch.Tensor]:
    """A float N×1×H×W batch in [0, 1] as each of TTA_VIEWS (the first is `x` itself)."""
    n, _, h, w = x.shape
    views = [x]
    for dx, dy, scale in TTA_VIEWS[1:]:
        theta = torch.zeros(n, 2, 3, device=x.device, dtype=x.dtype)
        theta[:, 0, 0] = theta[:, 1, 1] = 1 / scale  # sample farther out: the glyph grows
        theta[:, 0, 2], theta[:, 1, 2] = -2 * dx / w, -2 * dy / h  # content moves by dx, dy
        grid = F.affine_grid(theta, [n, 1, h, w], align_corners=False)
        views.append(
            F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        )
    return views
