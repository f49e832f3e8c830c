"""The models: ResNet-18 (the default: the seed's ImageNet stem for 224 px, or a small stem for
24-32 px images), ResNet-34, MobileNetV3-Small, EfficientNet-B0 and a plain CNN baseline, all
for 1- or 3-channel small images; and their forward pass: bf16 autocast and channels-last on
CUDA, batched logits for uint8 images.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision import models as tv
from torchvision.models import ResNet18_Weights

from charlib.training.augment import eval_input, model_input, to_unit, tta_views

STEMS = ("imagenet", "small")
# MODEL / model=: the architectures `build` makes; resnet18 is the default of every recipe.
MODELS = ("resnet18", "resnet34", "mobilenet_v3_small", "efficientnet_b0", "plain_cnn")
# torchvision's ImageNet weights; CHARLIB_WEIGHTS_URL points at a mirror (its file name must keep
# the 'resnet18-<sha256 prefix>.pth' form, which torch.hub checks after downloading).
WEIGHTS_URL = ResNet18_Weights.IMAGENET1K_V1.url
_warned = False


def build(
    name: str,
    num_classes: int,
    *,
    stem: str = "small",
    in_channels: int = 1,
    pretrained: bool = False,
) -> nn.Module:
    """The architecture `name` (one of MODELS) with `num_classes` outputs, the chosen stem
    ("small": stride 1 at the input, so a 28 px character is not shrunk to nothing; "imagenet":
    torchvision's) and input channels. ImageNet weights exist for resnet18 only."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; expected one of {', '.join(MODELS)}")
    if stem not in STEMS:
        raise ValueError(f"unknown stem {stem!r}; expected 'imagenet' or 'small'")
    if in_channels not in (1, 3):
        raise ValueError(f"in_channels must be 1 (grayscale) or 3 (RGB), got {in_channels}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}")
    if pretrained and name != "resnet18":
        raise ValueError(f"pretrained weights are offered for resnet18 only, not {name}")
    if name.startswith("resnet"):
        return resnet(name, num_classes, stem=stem, in_channels=in_channels, pretrained=pretrained)
    if name == "plain_cnn":
        return plain_cnn(num_classes, in_channels)
    model = getattr(tv, name)(weights=None, num_classes=num_classes)
    first = model.features[0][0]  # the stem convolution: 3x3 stride 2 in both families
    stride = 1 if stem == "small" else 2
    model.features[0][0] = nn.Conv2d(
        in_channels, first.out_channels, kernel_size=3, stride=stride, padding=1, bias=False
    )
    for norm in model.modules():
        if isinstance(norm, nn.BatchNorm2d):
            # MobileNetV3's 0.01 lets the running statistics lag so far behind a short run
            # (one CPU epoch: ~180 steps) that evaluation reads chance; 0.1 is torch's default.
            norm.momentum = 0.1
    return model


def plain_cnn(num_classes: int, in_channels: int = 1) -> nn.Module:
    """A small plain CNN (four 3x3 conv blocks, two pools, global average): a sanity baseline."""

    def block(cin: int, cout: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

    return nn.Sequential(
        *block(in_channels, 32),
        *block(32, 64),
        nn.MaxPool2d(2),
        *block(64, 128),
        nn.MaxPool2d(2),
        *block(128, 256),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(256, num_classes),
    )


def resnet18(
    num_classes: int, *, stem: str = "small", in_channels: int = 1, pretrained: bool = False
) -> nn.Module:
    """torchvision ResNet-18 with `num_classes` outputs, the chosen stem and input channels."""
    return build("resnet18", num_classes, stem=stem, in_channels=in_channels, pretrained=pretrained)


def resnet(
    name: str, num_classes: int, *, stem: str, in_channels: int, pretrained: bool
) -> nn.Module:
    """torchvision ResNet-18/34 with the stem and channels asked for (checked by `build`)."""
    model = getattr(tv, name)(weights=None, num_classes=num_classes)
    if stem == "small":
        # 3×3 stride 1 and no max-pool: a 28 px character keeps 28×28 resolution in layer1
        # instead of shrinking to 7×7 before the first residual block.
        model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    elif in_channels != 3:
        model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    for conv in model.layer4.modules():
        if type(conv) is nn.Conv2d and CentreTapConv.applies(conv):
            conv.__class__ = CentreTapConv  # same weights and state dict, another forward
    if pretrained:
        state = imagenet_weights()
        if state is not None:
            _load_pretrained(model, state, stem=stem, in_channels=in_channels)
    return model


class CentreTapConv(nn.Conv2d):
    """A 3×3, stride-1, padding-1 convolution that, on a 1×1 input, uses only its centre tap.

    With the ImageNet stem a 28 px character reaches layer4 as 1×1: the other eight taps see
    only padding zeros, so the result (and every gradient) is that of the centre tap alone.
    oneDNN's backward for this shape is pathological on CPUs (2 cores: 270 ms for a batch of
    256, against 11 ms as a 1×1 convolution), and it is most of a CPU training step.
    """

    @staticmethod
    def applies(conv: nn.Conv2d) -> bool:
        return (
            conv.kernel_size == (3, 3)
            and conv.stride == (1, 1)
            and conv.padding == (1, 1)
            and conv.dilation == (1, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] == (1, 1):
            return F.conv2d(x, self.weight[:, :, 1:2, 1:2], self.bias, groups=self.groups)
        return super().forward(x)


def imagenet_weights() -> dict[str, torch.Tensor] | None:
    """ImageNet ResNet-18 weights from the torch hub cache or by download; None when offline."""
    global _warned
    url = os.environ.get("CHARLIB_WEIGHTS_URL") or WEIGHTS_URL
    try:
        return torch.hub.load_state_dict_from_url(
            url, progress=True, check_hash=True, weights_only=True, map_location="cpu"
        )
    except (OSError, RuntimeError) as e:  # URLError is an OSError; a bad hash a RuntimeError
        if not _warned:
            warnings.warn(
                f"ImageNet weights unavailable ({e.__class__.__name__}: {e}); training from "
                f"scratch. To use them, place {os.path.basename(url)} in "
                f"{os.path.join(torch.hub.get_dir(), 'checkpoints')}",
                stacklevel=2,
            )
            _warned = True
        return None


def _load_pretrained(model: nn.Module, state: dict, *, stem: str, in_channels: int) -> None:
    """Copy ImageNet weights; the fc layer (and a small stem's conv1) stay freshly initialised."""
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    if stem == "small":
        state.pop("conv1.weight")
    elif in_channels == 1:
        # Grayscale: a gray pixel g is the RGB pixel (g, g, g), so summing over RGB is exact.
        state["conv1.weight"] = state["conv1.weight"].sum(dim=1, keepdim=True)
    missing, unexpected = model.load_state_dict(state, strict=False)
    expected_missing = {"fc.weight", "fc.bias"} | ({"conv1.weight"} if stem == "small" else set())
    if set(missing) != expected_missing or unexpected:
        raise ValueError(
            f"ImageNet weights do not fit ResNet-18: missing {missing}, extra {unexpected}"
        )


def accelerated(dev: torch.device) -> bool:
    """bf16 autocast and channels-last memory: on CUDA (tensor cores), not on CPU."""
    return dev.type == "cuda"


def prepare(model: nn.Module, dev: torch.device) -> nn.Module:
    """The model on `dev`, in channels-last memory where `accelerated`."""
    model = model.to(dev)
    return model.to(memory_format=torch.channels_last) if accelerated(dev) else model


def forward(model: nn.Module, x: torch.Tensor, dev: torch.device) -> torch.Tensor:
    """model(x), in bf16 autocast with channels-last input where `accelerated`."""
    fast = accelerated(dev)
    if fast:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=fast):
        return model(x)


@torch.no_grad()
def predict_logits(
    model: nn.Module, images: np.ndarray, params: dict, dev: torch.device, batch_size: int = 1024
) -> torch.Tensor:
    """Logits (float32, on CPU) for uint8 N×H×W images, through the run's eval transform."""
    model.eval()
    out = []
    for i in range(0, len(images), batch_size):
        x = eval_input(torch.from_numpy(images[i : i + batch_size]).to(dev), params)
        out.append(forward(model, x, dev).float().cpu())
    return torch.cat(out) if out else torch.zeros(0, len(params["classes"]))


def evaluate_loss(model, data, params: dict, dev: torch.device) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of `model` on a CharData split."""
    logits = predict_logits(model, data.images, params, dev)
    labels = torch.from_numpy(data.labels)
    loss = F.cross_entropy(logits, labels).item() if len(labels) else float("nan")
    return loss, float((logits.argmax(1) == labels).float().mean()) if len(labels) else 0.0


@torch.no_grad()
def predict_probs(
    models: list[nn.Module],
    images: np.ndarray,
    params: dict,
    dev: torch.device,
    *,
    tta: bool = False,
    batch_size: int = 1024,
) -> torch.Tensor:
    """Softmax probabilities (float32, on CPU) for uint8 N×H×W images, averaged over `models`
    (an ensemble sharing `params`' input) and, with `tta`, over `augment.TTA_VIEWS`."""
    for m in models:
        m.eval()
    out = []
    for i in range(0, len(images), batch_size):
        x = to_unit(torch.from_numpy(images[i : i + batch_size]).to(dev))
        views = tta_views(x) if tta else [x]
        total = sum(
            torch.softmax(forward(m, model_input(v, params), dev).float(), 1)
            for m in models
            for v in views
        )
        out.append((total / (len(models) * len(views))).cpu())
    return torch.cat(out) if out else torch.zeros(0, len(params["classes"]))
