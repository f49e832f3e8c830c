import numpy as np
import pytest
import torch

from charlib.training import augment as aug

from conftest import glyph

OFF = dict.fromkeys(aug.DEFAULTS, 0.0)


@pytest.fixture
def batch():
    images = np.stack([255 - glyph(c) for c in range(65, 81)])  # white on black
    return torch.from_numpy(images).float().div(255).unsqueeze(1)


def test_shape_range_and_determinism(batch):
    a = aug.augment(batch, generator=torch.Generator().manual_seed(1), stroke=0.5, elastic=0.05)
    b = aug.augment(batch, generator=torch.Generator().manual_seed(1), stroke=0.5, elastic=0.05)
    c = aug.augment(batch, generator=torch.Generator().manual_seed(2), stroke=0.5, elastic=0.05)
    assert a.shape == batch.shape and a.dtype == batch.dtype
    assert a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_all_off_is_identity(batch):
    out = aug.augment(batch, generator=torch.Generator().manual_seed(0), **OFF)
    assert torch.allclose(out, batch, atol=1e-5)


def test_each_sample_gets_its_own_transform(batch):
    same = batch[:1].expand(8, -1, -1, -1).contiguous()
    out = aug.augment(same, generator=torch.Generator().manual_seed(0), **{**OFF, "rotation": 15.0})
    assert len({round(float(o.sum()), 3) for o in out}) > 4


def test_never_mirrors():
    ell = torch.zeros(64, 1, 28, 28)
    ell[:, :, 4:24, 4:8] = 1.0  # an "L" hugging the left side
    ell[:, :, 20:24, 4:14] = 1.0
    out = aug.augment(ell, generator=torch.Generator().manual_seed(0), stroke=0.5, elastic=0.05)
    cols = torch.arange(28.0)
    centre_x = (out.sum(2).squeeze(1) * cols).sum(1) / out.sum((1, 2, 3))
    assert (centre_x < 11).all()  # a horizontal flip would put the ink right of 13.5


def test_stroke_width_changes_ink(batch):
    g = torch.Generator().manual_seed(0)
    thick = aug._stroke(batch, 1.0, g)  # every sample changed: half thicker, half thinner
    ink_before = (batch > 0.5).flatten(1).sum(1)
    ink_after = (thick > 0.5).flatten(1).sum(1)
    assert (ink_after > ink_before).any() and (ink_after < ink_before).any()


def test_unknown_augmentation_is_refused(batch):
    with pytest.raises(ValueError, match=r"unknown augmentation \['flip'\]"):
        aug.augment(batch, flip=0.5)


def test_model_input_seed_style(batch):
    x = aug.to_model_input(
        torch.zeros(2, 1, 28, 28), size=224, channels=3, normalization="imagenet"
    )
    assert x.shape == (2, 3, 224, 224)
    black = (0 - 0.485) / 0.229
    assert torch.isclose(x[0, 0, 0, 0], torch.tensor(black), atol=1e-4)
    with pytest.raises(ValueError, match="unknown normalization 'z'"):
        aug.to_model_input(batch, size=28, channels=1, normalization="z")


def test_preview_panels():
    images = np.stack([255 - glyph(c) for c in (65, 66, 67)])
    panels = aug.preview(images, seed=0, stroke=0.5, elastic=0.05)
    assert list(panels)[:2] == ["original", "rotation"] and "all together" in panels
    assert all(p.shape == images.shape and p.dtype == np.uint8 for p in panels.values())
    np.testing.assert_array_equal(panels["original"], images)
    assert "elastic" not in aug.preview(images, elastic=0.0)  # switched off: no panel


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"rotaton": 20}, r"unknown augmentation \['rotaton'\]"),
        ({"rotation": -1}, "must be non-negative numbers, got {'rotation': -1}"),
        ({"elastic": "a lot"}, "must be non-negative numbers"),
        ({"stroke": True}, "must be non-negative numbers"),
        ([("rotation", 20)], "augmentation must be a dict of magnitudes"),
    ],
)
def test_settings_are_checked_before_training(overrides, message):
    with pytest.raises(ValueError, match=message):
        aug.settings(overrides)


def test_settings_are_the_defaults_with_overrides():
    assert aug.settings(None) == aug.DEFAULTS
    assert aug.settings({"rotation": 20}) == {**aug.DEFAULTS, "rotation": 20}


def test_photo_is_a_share_and_its_panel_is_the_photo_path():
    with pytest.raises(
        ValueError, match="photo is a share of the training images, 0 to 1; got 1.5"
    ):
        aug.settings({"photo": 1.5})
    images = np.stack([glyph(65 + k, 28, seed=k) for k in range(3)])
    images = 255 - images  # white on black, like the training images
    panels = aug.preview(images, photo=0.3)
    seen = panels["photo, through the cleaner"]
    assert seen.shape == images.shape and not np.array_equal(seen, images)
    assert "photo, through the cleaner" not in aug.preview(images)  # off by default
