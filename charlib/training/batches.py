"""Training batches: the training set as one uint8 tensor on the device (recipe "fast"), or the
seed's per-image PIL pipeline in a DataLoader (recipe "seed"). Both yield (model input, labels)
on the training device through the same `epoch(n)` interface.
"""

from __future__ import annotations

import itertools

import torch

from charlib.training import augment as aug


class DeviceBatches:
    """The training set as one uint8 tensor on the device; batches indexed and augmented there."""

    def __init__(self, data, params: dict, dev: torch.device, num_workers: int = 0):
        self.images = torch.from_numpy(data.images).to(dev)
        self.labels = torch.from_numpy(data.labels).to(dev)
        self.params, self.dev = params, dev
        self.batch = params["batch_size"]
        self.limit = params.get("steps_per_epoch")  # a time budget's share of the data

    def __len__(self) -> int:
        # A last partial batch is dropped (its images come in other epochs' batches): one batch
        # shape means cuDNN autotunes once and batch-norm never sees a handful of images.
        full = len(self.labels) // self.batch
        full = full if full >= 2 else -(-len(self.labels) // self.batch)
        return min(full, self.limit or full)

    @property
    def images_per_epoch(self) -> int:
        return min(len(self) * self.batch, len(self.labels))

    def epoch(self, epoch: int):
        # Seeded per epoch, so a resumed run sees the batches an uninterrupted one would.
        seed = self.params["seed"] * 100_003 + epoch
        order = torch.randperm(len(self.labels), generator=torch.Generator().manual_seed(seed))
        order = order.to(self.dev)
        gdev = torch.Generator(device=self.dev).manual_seed(seed)
        p = self.params
        for i in range(0, len(self) * self.batch, self.batch):
            idx = order[i : i + self.batch]
            x = aug.augment(aug.to_unit(self.images[idx]), generator=gdev, **p["augmentation"])
            yield aug.model_input(x, p), self.labels[idx]


class SeedDataset(torch.utils.data.Dataset):
    """The seed's per-image PIL pipeline: RGB, resize to 224, torchvision transforms."""

    def __init__(self, data, params: dict):
        from torchvision import transforms as T

        mean, std = aug.NORMALIZATION[params["normalization"]]
        self.data = data
        self.transform = T.Compose(
            [
                T.Resize((params["img_size"], params["img_size"])),
                T.RandomRotation(15),
                T.RandomAffine(degrees=0, translate=(0.1, 0.1), scale=(0.9, 1.1)),
                T.ColorJitter(brightness=0.3, contrast=0.3),
                T.RandomPerspective(distortion_scale=0.2, p=0.5),
                T.ToTensor(),
                T.Normalize(mean, std),
            ]
        )

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i):
        from PIL import Image

        img = Image.fromarray(self.data.images[i]).convert("RGB")
        return self.transform(img), int(self.data.labels[i])


class WorkerBatches:
    """The seed's DataLoader: shuffled batches of `SeedDataset`, moved to the device."""

    def __init__(self, data, params: dict, dev: torch.device, num_workers: int = 4):
        self.dev = dev
        self.limit = params.get("steps_per_epoch")  # a time budget's share of the data
        self.loader = torch.utils.data.DataLoader(
            SeedDataset(data, params),
            batch_size=params["batch_size"],
            shuffle=True,
            num_workers=num_workers,
            pin_memory=dev.type == "cuda",
            generator=torch.Generator().manual_seed(params["seed"]),
            persistent_workers=num_workers > 0,
        )

    def __len__(self) -> int:
        return min(len(self.loader), self.limit or len(self.loader))

    @property
    def images_per_epoch(self) -> int:
        return min(len(self.loader.dataset), len(self) * self.loader.batch_size)

    def epoch(self, epoch: int):
        for x, y in itertools.islice(self.loader, len(self)):
            yield x.to(self.dev, non_blocking=True), y.to(self.dev)


# Recipe table value -> batch source (settings.RECIPES[...]["batches"]).
SOURCES = {"device": DeviceBatches, "workers": WorkerBatches}
