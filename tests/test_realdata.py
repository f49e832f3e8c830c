"""The shared EMNIST ByClass data: exact counts, classes, size and polarity."""

import numpy as np
import pytest

from charlib.data import load_dataset

pytestmark = pytest.mark.realdata
EXPECTED_CLASSES = (*range(48, 58), *range(65, 91), *range(97, 123))


@pytest.fixture(scope="module")
def emnist(shared_data, tmp_path_factory):
    return load_dataset(shared_data, progress=False)


def test_counts(emnist):
    assert emnist.report.counts == {"train": 67_737, "validation": 14_512, "test": 14_525}
    assert [len(emnist[s]) for s in ("train", "validation", "test")] == [67_737, 14_512, 14_525]
    assert not emnist.report.skipped and not emnist.report.ignored


def test_classes_in_numeric_order(emnist):
    assert emnist.classes == EXPECTED_CLASSES and len(emnist.classes) == 62
    for split in ("train", "validation", "test"):
        assert set(np.unique(emnist[split].codes).tolist()) == set(EXPECTED_CLASSES)


def test_images_are_28px_white_on_black(emnist):
    images = emnist.train.images
    assert images.shape[1:] == (28, 28) and images.dtype == np.uint8
    assert emnist.report.inverted == {"train": 0, "validation": 0, "test": 0}
    assert images[:, 0, :].mean() < 5 and images.mean() < 60  # dark background, light strokes
    assert (images.reshape(len(images), -1).max(axis=1) > 128).mean() > 0.99


def test_second_load_comes_from_cache(shared_data, emnist):
    again = load_dataset(shared_data, progress=False)
    assert again.report.from_cache
    np.testing.assert_array_equal(again.test.images, emnist.test.images)
    np.testing.assert_array_equal(again.test.labels, emnist.test.labels)
