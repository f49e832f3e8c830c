"""The shared EMNIST ByClass data: exact counts, classes, size and polarity."""

import numpy as np
import pytest

from charlib.data.loading import load_dataset

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


@pytest.fixture(scope="module")
def emnist_run(emnist, shared_data, tmp_path_factory):
    """A small model trained on the shared data (about a minute on 2 CPU cores)."""
    from charlib.training.train import fit

    run = tmp_path_factory.mktemp("runs") / "emnist-parity"
    fit(
        emnist.train.subset(per_class=80, seed=0),
        emnist.validation.subset(per_class=20, seed=0),
        run_dir=run,
        epochs=2,
        device="cpu",
        progress=False,
        data_source=str(shared_data),
    )
    return run


def test_predictor_on_the_test_files_agrees_with_evaluate(emnist_run, shared_data):
    """The PNG files through `Predictor` and the split through `evaluate`: within 0.3 points."""
    import zipfile

    from charlib.inference.evaluate import metrics, predict_split
    from charlib.inference.infer import Predictor

    evaluated = metrics(predict_split(emnist_run, "test", data=shared_data, device="cpu"))
    predictor = Predictor.from_run(emnist_run, device="cpu")
    with zipfile.ZipFile(shared_data / "test.zip") as zf:
        names = [n for n in zf.namelist() if n.endswith(".png")]
        files = [zf.read(n) for n in names]
    truth = np.array([int(n.split("/")[0]) for n in names])
    guesses = []
    for start in range(0, len(files), 512):
        guesses += predictor.predict_many(files[start : start + 512], top_k=1)
    codes = np.array([g[0]["code"] if len(g) else -1 for g in guesses])
    predicted = float((codes == truth).mean())
    assert len(files) == 14_525 and sum(g.blank for g in guesses) == 0
    assert evaluated["accuracy"] > 0.3  # a real model, so the comparison means something
    assert abs(predicted - evaluated["accuracy"]) <= 0.003, (predicted, evaluated["accuracy"])
