"""Several processes training one model with torchrun: who each is, its shard, sums across all.

    torchrun --nproc_per_node 2 -m charlib train --data synth --run-name wide

torchrun starts the processes and sets RANK, WORLD_SIZE, LOCAL_RANK and the rendezvous address;
`join` opens the process group (NCCL on GPUs, gloo on CPUs) and `fit` does the rest: each rank
keeps its shard of the training set on its device, DistributedDataParallel all-reduces the
gradients, validation is sharded and summed, rank 0 alone writes files. Several machines are
torchrun's rendezvous (`--nnodes 2 --rdzv-backend c10d --rdzv-endpoint HOST:29400`); nothing
here changes for them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Group:
    """This process's place: rank (0 writes files), world size, and its GPU on this machine."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


ALONE = Group()


def join(device: str) -> Group:
    """The process group torchrun set up for this process (initialised once), or ALONE."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return ALONE
    import torch.distributed as dist

    if not dist.is_initialized():
        gpu = str(device).startswith("cuda") or (device == "auto" and torch.cuda.is_available())
        dist.init_process_group("nccl" if gpu else "gloo")
    return Group(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def device_for(group: Group, device: str) -> str:
    """Each rank's device: its own GPU (cuda:LOCAL_RANK) when training on CUDA."""
    if group.active and device.startswith("cuda"):
        torch.cuda.set_device(group.local_rank)
        return f"cuda:{group.local_rank}"
    return device


def shard(data, group: Group, *, equal: bool = True):
    """This rank's rows of a CharData split: every world-th row from its rank. `equal` makes
    every shard the same length (training: DistributedDataParallel needs as many steps on
    every rank); validation keeps every row (its sums are totalled)."""
    if not group.active:
        return data
    end = len(data) // group.world * group.world if equal else len(data)
    return data.rows(range(group.rank, end, group.world))


def total(group: Group, *values: float) -> list[float]:
    """The sums of `values` over every rank (each rank passes its own)."""
    if not group.active:
        return [float(v) for v in values]
    import torch.distributed as dist

    backend = dist.get_backend()
    dev = torch.device("cuda", group.local_rank) if backend == "nccl" else torch.device("cpu")
    t = torch.tensor(values, dtype=torch.float64, device=dev)
    dist.all_reduce(t)
    return t.tolist()


def from_main(group: Group, value):
    """Rank 0's `value` on every rank (a plan decided once, so every rank follows it)."""
    if not group.active:
        return value
    import torch.distributed as dist

    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def wrap(model: torch.nn.Module, group: Group, dev: torch.device) -> torch.nn.Module:
    """The model as DistributedDataParallel (gradients all-reduced in backward) when several."""
    if not group.active:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [dev.index] if dev.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def leave(group: Group) -> None:
    """Close the process group at the end of training."""
    if group.active:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()
