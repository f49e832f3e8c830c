"""Training with several processes (torchrun, gloo on the CPU): shards, sums, one run written.

The end-to-end tests start `python -m torch.distributed.run --nproc_per_node 2 -m charlib
train` on tiny data, as a user would with `torchrun`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from browser_helpers import free_port

from charlib.data.loading import load_dataset
from charlib.inference.infer import Predictor
from charlib.training import checkpoint, distributed

TINY = ["--data", "synth-small", "--per-class", "4", "--batch-size", "16", "--device", "cpu"]


def torchrun(run_dir: Path, *extra: str, processes: int = 2, **popen):
    """`torchrun --nproc_per_node N -m charlib train` on the tiny data into `run_dir`."""
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        f"--nproc_per_node={processes}", "-m", "charlib", "train",
        "--run-name", str(run_dir), *TINY, *extra,
    ]  # fmt: skip
    env = {**os.environ, "CHARLIB_PROGRESS": "0", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **popen)


def finished(proc, timeout: float = 300) -> str:
    try:
        out, _ = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text[-3000:]
    return text


def test_shards_split_every_row_once(tiny_run):
    ds = load_dataset("synth-small", progress=False)
    val = ds.validation
    parts = [distributed.shard(val, distributed.Group(r, 3), equal=False) for r in range(3)]
    assert sum(len(p) for p in parts) == len(val)
    names = np.concatenate([p.names for p in parts])
    assert sorted(names) == sorted(val.names)
    equal = [distributed.shard(ds.train, distributed.Group(r, 3)) for r in range(3)]
    assert len({len(p) for p in equal}) == 1 and len(equal[0]) == len(ds.train) // 3
    assert distributed.shard(val, distributed.ALONE) is val
    assert distributed.total(distributed.ALONE, 1.5, 2) == [1.5, 2.0]


@pytest.mark.slow
def test_two_processes_train_one_run(tiny_run, tmp_path):
    """2 gloo processes: one run, the single-process format and classes, loss decreasing."""
    run = tmp_path / "two"
    out = finished(torchrun(run, "--epochs", "3", start_new_session=True))
    assert f"{run}: 3 epochs" in out and out.count("best validation") == 1  # rank 0 alone prints
    params = json.loads((run / "params.json").read_text())
    assert params["world_size"] == 2 and params["global_batch"] == 32
    assert params["lr"] == pytest.approx(2 * params["lr_one_process"])
    history = json.loads((run / "history.json").read_text())
    losses = [r["train_loss"] for r in history]
    assert losses[-1] < losses[0], losses
    ds = load_dataset("synth-small", progress=False)
    assert history[0]["images"] == len(ds.train.subset(4, 0)) // 2 // 16 * 16 * 2
    best = checkpoint.load(run / "best.pt")
    assert best["classes"] == list(ds.classes)
    alone = tiny_run  # trained by one process: the same files, keys and weight names
    assert set(best) == set(checkpoint.load(alone / "best.pt"))
    assert set(checkpoint.load(run / "last.pt")) == set(checkpoint.load(alone / "last.pt"))
    assert set(best["model"]) == set(checkpoint.load(alone / "best.pt")["model"])
    assert not any(k.startswith("module.") for k in best["model"])  # plain weights, no DDP names
    predictor = Predictor.from_run(run, device="cpu")
    assert len(predictor.predict(ds.test.images[0])) == 5


@pytest.mark.slow
def test_a_killed_run_resumes(tiny_run, tmp_path):
    """Killed after its first epoch, the 2-process run continues from last.pt to the end."""
    run = tmp_path / "killed"
    proc = torchrun(run, "--epochs", "3", start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while not (run / "history.json").is_file() and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stdout.read().decode(errors="replace")[-3000:]
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # every process of the group, mid-run
        proc.wait(30)
    first = json.loads((run / "history.json").read_text())
    assert 1 <= len(first) < 3
    out = finished(torchrun(run, "--epochs", "3", "--resume", start_new_session=True))
    assert f"{run}: 3 epochs" in out
    history = json.loads((run / "history.json").read_text())
    assert [r["epoch"] for r in history] == [1, 2, 3]
    assert history[0] == first[0]  # the finished epoch kept, not redone
    assert checkpoint.load(run / "last.pt")["epoch"] == 3


def test_world_size_is_checked_on_resume(tiny_run, tmp_path):
    """A run trained by one process is not resumed by two (shards and lr would differ)."""
    ckpt = checkpoint.load(tiny_run / "last.pt")
    params = {**ckpt["params"], "world_size": 2}
    with pytest.raises(ValueError, match="other world_size"):
        checkpoint.check_resume(ckpt, params, tmp_path)


def test_ddp_step_matches_one_process_on_the_same_batch(tmp_path):
    """One gloo process group of one rank: DDP's step equals the plain model's."""
    import torch.distributed as dist

    if dist.is_initialized():
        pytest.skip("a process group is already open")
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()))
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        torch.manual_seed(0)
        plain = torch.nn.Linear(4, 3)
        twin = torch.nn.Linear(4, 3)
        twin.load_state_dict(plain.state_dict())
        wrapped = distributed.wrap(twin, distributed.Group(0, 2), torch.device("cpu"))
        x = torch.randn(8, 4)
        for model in (plain, wrapped):
            model(x).square().mean().backward()
        assert torch.allclose(plain.weight.grad, twin.weight.grad)
    finally:
        dist.destroy_process_group()


def test_train_command_refuses_bad_input_in_one_line(tiny_run, capsys):
    from charlib import cli

    assert cli.main(["train", "--time-budget", "soon"]) == 1
    assert "--time-budget takes seconds" in capsys.readouterr().err
    before = (tiny_run / "best.pt").stat().st_mtime_ns
    assert cli.main(["train", "--run-name", str(tiny_run), *TINY]) == 1  # a trained run
    err = capsys.readouterr().err
    assert "already holds a trained run" in err and len(err.strip().splitlines()) == 1
    assert (tiny_run / "best.pt").stat().st_mtime_ns == before
