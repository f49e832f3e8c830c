import json
import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from charlib.data.loading import CharData, load_dataset
from charlib.training import checkpoint, model, settings, train
from charlib.training.settings import Settings

from conftest import glyph, write_evil_checkpoint

OFF = {"rotation": 0, "translate": 0, "scale": 0, "perspective": 0, "brightness": 0, "contrast": 0}


def tiny(classes=8, per_class=16, seed=0, size=28):
    images = np.stack(
        [
            255 - glyph(65 + k, size, seed=seed * 1000 + i)
            for k in range(classes)
            for i in range(per_class)
        ]
    )
    labels = np.repeat(np.arange(classes), per_class)
    names = np.array([f"{65 + k}/{i}.png" for k in range(classes) for i in range(per_class)])
    return CharData(images, labels, tuple(range(65, 65 + classes)), names)


def cpu_fit(data, val=None, **kwargs):
    """train.fit on the CPU without progress bars; validation defaults to the training data."""
    return train.fit(data, data if val is None else val, progress=False, device="cpu", **kwargs)


def test_settings_resolve_to_the_cpu_defaults_and_refuse_bad_values():
    p = Settings(device="cpu").params()
    assert p["stem"] == settings.CPU_DEFAULTS["fast"]["stem"] and p["device"] == "cpu"
    assert Settings(recipe="seed", device="cpu").params()["img_size"] == 224
    assert Settings(device="cpu", epochs=2).params()["epochs"] == 2
    with pytest.raises(ValueError, match="unknown recipe 'slow'; expected 'fast' or 'seed'"):
        Settings(recipe="slow", device="cpu").params()
    with pytest.raises(ValueError, match="epochs must be a positive integer"):
        Settings(device="cpu", epochs=0).params()
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        Settings(device="tpu").params()
    with pytest.raises(ValueError, match=r"unknown training setting\(s\) \['epoch'\]"):
        Settings().but(epoch=3)


@pytest.mark.slow
def test_overfits_one_batch(tmp_path):
    data = tiny(classes=8, per_class=8)
    summary = cpu_fit(
        data, run_dir=tmp_path / "r", epochs=40, batch_size=64, lr=3e-3, augmentation=OFF
    )
    history = json.loads((tmp_path / "r" / "history.json").read_text())
    assert history[-1]["train_loss"] < history[0]["train_loss"] / 3
    assert summary["best_val_acc"] == 1.0


def test_artifacts_and_safe_checkpoints(tmp_path):
    run = tmp_path / "run"
    summary = cpu_fit(
        tiny(), tiny(seed=1), run_dir=run, epochs=4, batch_size=32, checkpoint_every=2
    )
    assert summary["epochs_run"] == 4 and summary["recipe"] == "fast"
    assert {p.name for p in run.iterdir()} == {
        "params.json",
        "history.json",
        "last.pt",
        "best.pt",
        "epoch_002.pt",
        "epoch_004.pt",
    }
    params = json.loads((run / "params.json").read_text())
    assert params["classes"] == list(range(65, 73)) and params["epochs"] == 4
    assert "torch" in params["environment"]
    for name in ("last.pt", "best.pt", "epoch_002.pt"):
        ckpt = torch.load(run / name, map_location="cpu", weights_only=True)
        assert ckpt["format"] == checkpoint.FORMAT and ckpt["classes"] == list(range(65, 73))
    best = checkpoint.load(run / "best.pt")
    assert best["epoch"] == summary["best_epoch"] and "optimizer" not in best
    assert [r["epoch"] for r in json.loads((run / "history.json").read_text())] == [1, 2, 3, 4]


def test_early_stopping(tmp_path):
    data = tiny(classes=4, per_class=4)
    summary = cpu_fit(
        data,
        run_dir=tmp_path / "r",
        epochs=30,
        batch_size=16,
        lr=1e-9,
        patience=2,
        augmentation=OFF,
    )
    assert summary["epochs_run"] < 30  # nothing improves with lr 1e-9: stopped after patience


@pytest.mark.slow
def test_resume_after_a_crash(tmp_path):
    run = tmp_path / "run"
    data = tiny(per_class=16)  # 128 images: 8 batches of 16 per epoch
    np.savez(tmp_path / "data.npz", images=data.images, labels=data.labels)
    script = textwrap.dedent(f"""
        import os, signal
        import numpy as np
        from charlib.training import batches
        from charlib.data.loading import CharData
        from charlib.training.train import fit
        z = np.load({str(tmp_path / "data.npz")!r})
        data = CharData(z["images"], z["labels"], tuple(range(65, 73)), np.array(["x"] * 128))
        real = batches.DeviceBatches.epoch
        def dying(self, epoch):
            for i, batch in enumerate(real(self, epoch)):
                if epoch == 3 and i == 3:  # a power cut in the middle of epoch 3, after the
                    os.kill(os.getpid(), signal.SIGKILL)  # checkpoint of epoch 2 was written
                yield batch
        batches.DeviceBatches.epoch = dying
        fit(data, data, run_dir={str(run)!r}, epochs=6, batch_size=16, progress=False,
            device="cpu")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == -9, done.stderr
    saved = checkpoint.load(run / "last.pt")
    finished = saved["history"]
    assert 2 <= len(finished) < 6 and [r["epoch"] for r in finished] == list(
        range(1, len(finished) + 1)
    )
    assert len(finished) == 2  # deterministic: exactly the epochs before the power cut
    summary = cpu_fit(data, run_dir=run, epochs=6, batch_size=16)
    history = json.loads((run / "history.json").read_text())
    assert [r["epoch"] for r in history] == [1, 2, 3, 4, 5, 6]
    assert history[: len(finished)] == finished  # no finished epoch lost or redone
    assert summary["epochs_run"] == 6


def test_resume_with_other_settings_is_refused(tmp_path):
    cpu_fit(tiny(), run_dir=tmp_path / "r", epochs=1, batch_size=32)
    with pytest.raises(ValueError, match="holds a run with other stem"):
        cpu_fit(tiny(), run_dir=tmp_path / "r", epochs=1, batch_size=32, stem="small")


class _Hostile:
    """Unpickling this runs `touch <marker>`, saved by torch.save this time."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


REFUSED = "refused: loading this file would run code it carries"


@pytest.mark.parametrize("style", ["pickle", "torch zip", "torch legacy"])
def test_malicious_checkpoint_is_refused(tmp_path, style):
    marker, path = tmp_path / "pwned", tmp_path / "evil.pt"
    if style == "pickle":
        write_evil_checkpoint(path, marker)
    else:
        hostile = {"format": checkpoint.FORMAT, "model": _Hostile(marker)}
        torch.save(hostile, path, _use_new_zipfile_serialization=style == "torch zip")
    with pytest.raises(ValueError) as info:
        checkpoint.load(path)
    message = str(info.value)
    assert message.startswith(f"{path}: {REFUSED}") and "trust" in message
    assert "\n" not in message and "weights_only" not in message and "weights only" not in message
    assert not marker.exists()
    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        checkpoint.load(tmp_path / "missing.pt")


def test_broken_checkpoint_is_one_line_without_torch_advice(tmp_path):
    good = tmp_path / "good.pt"
    torch.save({"format": checkpoint.FORMAT, "w": torch.zeros(100)}, good)
    files = {
        "garbage.pt": (b"definitely not a checkpoint", "UnpicklingError"),
        "cut.pt": (good.read_bytes()[:300], "RuntimeError: PytorchStreamReader failed"),
        "empty.pt": (b"", "EOFError"),
        "plain.pt": (pickle.dumps({"format": checkpoint.FORMAT}, protocol=4), "UnpicklingError"),
    }
    for name, (data, expected) in files.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ValueError) as info:
            checkpoint.load(tmp_path / name)
        message = str(info.value)
        assert message.startswith(f"{tmp_path / name}: not a safe charlib checkpoint ({expected}")
        assert "\n" not in message and "weights" not in message.lower() and REFUSED not in message


def test_seed_recipe_runs_end_to_end(tmp_path):
    data = tiny(classes=3, per_class=6)
    summary = cpu_fit(
        data, run_dir=tmp_path / "seed", recipe="seed", epochs=1, batch_size=6, num_workers=2
    )
    params = json.loads((tmp_path / "seed" / "params.json").read_text())
    assert (params["img_size"], params["channels"], params["stem"]) == (224, 3, "imagenet")
    assert params["normalization"] == "imagenet" and summary["epochs_run"] == 1


@pytest.mark.realdata
def test_learns_real_handwriting_on_cpu(shared_data, tmp_path):
    ds = load_dataset(shared_data, progress=False)
    tr = ds.train.subset(per_class=30, seed=0)
    va = ds.validation.subset(per_class=10, seed=0)
    summary = cpu_fit(tr, va, run_dir=tmp_path / "emnist", epochs=2, batch_size=32)
    # 62 classes: chance is 1.6%; a real learner gets far above it in 4 minutes' worth of
    # images (here about 51% validation after 116 steps on 1,860 images, in 20 s)
    assert summary["best_val_acc"] > 0.4


@pytest.mark.slow
def test_accelerated_path_runs_on_cpu(tmp_path, monkeypatch):
    """The CUDA-only branches (bf16 autocast, channels-last) and EMA, exercised on the CPU."""
    monkeypatch.setattr(model, "accelerated", lambda dev: True)
    data = tiny(classes=4, per_class=16)
    summary = cpu_fit(data, run_dir=tmp_path / "r", epochs=3, batch_size=32, ema=True)
    history = json.loads((tmp_path / "r" / "history.json").read_text())
    assert all(np.isfinite([r["train_loss"], r["val_loss"]]).all() for r in history)
    ckpt = checkpoint.load(tmp_path / "r" / "best.pt")
    net = checkpoint.model_from_checkpoint(ckpt)
    logits = model.predict_logits(net, data.images, ckpt["params"], torch.device("cpu"))
    assert logits.dtype == torch.float32 and logits.shape == (64, 4)
    assert summary["epochs_run"] == 3 and ckpt["params"]["ema"] is True


@pytest.mark.slow
def test_compiled_training_step_follows_the_same_loss_curve(tmp_path):
    """torch.compile of the training step (the GPU speed path; 'aot_eager' here, no C++
    build) trains exactly as eager does on the same data, seed and batches."""
    data = tiny(classes=4, per_class=16)
    curves = {}
    for compiled in (False, "aot_eager"):
        run = tmp_path / str(compiled)
        cpu_fit(data, run_dir=run, epochs=3, batch_size=16, augmentation=OFF, compile=compiled)
        history = json.loads((run / "history.json").read_text())
        curves[compiled] = [r["train_loss"] for r in history]
    assert (
        json.loads((tmp_path / "aot_eager" / "params.json").read_text())["compile"] == "aot_eager"
    )
    np.testing.assert_allclose(curves["aot_eager"], curves[False], rtol=1e-3)


def test_photo_augmentation_trains_on_what_the_cleaner_leaves(tmp_path):
    from charlib.data import photos

    data = tiny(classes=4, per_class=8)
    fill, width = 0.8, 0.15
    once, replaced = photos.through_cleaner(data.images, 0.5, seed=3, fill=fill, width=width)
    again, _ = photos.through_cleaner(data.images, 0.5, seed=3, fill=fill, width=width)
    assert np.array_equal(once, again) and 0 < replaced <= len(data)  # seeded: same share
    changed = (once != data.images).any(axis=(1, 2)).sum()
    assert changed == replaced and replaced < len(data)
    assert np.array_equal(data.images, tiny(classes=4, per_class=8).images)  # input untouched
    with pytest.raises(ValueError, match="photo share must be between 0 and 1"):
        photos.through_cleaner(data.images, 2.0, fill=fill, width=width)
    cpu_fit(data, run_dir=tmp_path / "r", epochs=1, batch_size=16, augmentation={"photo": 0.5})
    params = json.loads((tmp_path / "r" / "params.json").read_text())
    assert params["augmentation"]["photo"] == 0.5 and params["photo_seconds"] >= 0  # not budgeted


def notebook_parameter_defaults(path) -> dict:
    """Notebook 03's parameters cell, run: name -> default."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    scope: dict = {}
    exec(cell.source, scope)  # plain assignments (and a typing import)
    return {k: v for k, v in scope.items() if k.isupper()}


def test_notebook_03_declares_every_setting_with_its_default():
    """One home: the notebook's parameters that are settings are the settings, defaults and all;
    a new setting without its notebook line, or a drifted default, fails here."""
    from charlib.common.paths import notebooks_dir

    declared = notebook_parameter_defaults(notebooks_dir() / "03_train_gpu.ipynb")
    expected = settings.notebook_defaults()
    assert {k: declared.get(k, "missing") for k in expected} == expected
    chosen = settings.from_notebook(declared)
    assert chosen == Settings(time_budget="auto")  # the notebook trains within a budget


def test_the_train_command_has_a_flag_per_setting_and_reads_them_back():
    import argparse
    from dataclasses import fields

    parser = argparse.ArgumentParser()
    settings.add_flags(parser)
    flags = {a.dest for a in parser._actions if a.option_strings and a.dest != "help"}
    assert flags == {f.name for f in fields(Settings) if f.metadata["flag"]}
    args = parser.parse_args(["--epochs", "3", "--ema", "--time-budget", "auto", "--stem", "small"])
    assert settings.from_args(args) == Settings(
        epochs=3, ema=True, time_budget="auto", stem="small"
    )
    assert settings.from_args(parser.parse_args(["--compile"])).compile is True
    with pytest.raises(ValueError, match="--time-budget takes seconds, 'auto' or 'none'"):
        settings.from_args(parser.parse_args(["--time-budget", "soon"]))


def test_fit_takes_settings_or_changes_by_name_and_refuses_unknown_ones(tmp_path):
    with pytest.raises(ValueError, match=r"unknown training setting\(s\) \['epoch'\]"):
        cpu_fit(tiny(), run_dir=tmp_path / "r", epoch=2)
    assert not (tmp_path / "r").exists()  # refused before anything was written
    summary = train.fit(
        tiny(), tiny(), Settings(device="cpu", epochs=1, batch_size=64), run_dir=tmp_path / "s",
        progress=False, augmentation=OFF,
    )  # fmt: skip
    recorded = json.loads((tmp_path / "s" / "params.json").read_text())
    assert summary["epochs_run"] == 1 and recorded["batch_size"] == 64
    assert recorded["augmentation"] == {**recorded["augmentation"], **OFF}
