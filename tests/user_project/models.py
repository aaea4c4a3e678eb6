"""A vtm user's own networks: what an ML engineer's project looks like, not vtm's code.

vtm never imports this file. Tests load it by path (or run train.py, which sits beside it),
so a process that predicts with an exported model must work without it on sys.path.

- ResNetClassifier: residual basic blocks with BatchNorm, a strided 1x1 downsample path,
  adaptive average pooling and a linear head; logits (N, num_classes).
- UNetSegmenter: a two-level encoder/decoder with skip connections, one ConvTranspose2d and
  one interpolate upsampling, BatchNorm; returns a dict like torchvision's segmentation
  models: {"out": (N, C, H, W) logits, "aux": (N, C, H, W) logits from the bottleneck}.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class BasicBlock(nn.Module):
    """conv-bn-relu-conv-bn plus the identity (or a strided 1x1 conv-bn when the shape changes)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + identity)


class ResNetClassifier(nn.Module):
    def __init__(self, num_classes: int = 4, width: int = 8, blocks: tuple[int, ...] = (1, 1, 1),
                 in_channels: int = 3):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        )
        layers = []
        channels = width
        for stage, count in enumerate(blocks):
            out_channels = width * 2 ** stage
            stage_blocks = []
            for index in range(count):
                stride = 2 if stage > 0 and index == 0 else 1
                stage_blocks.append(BasicBlock(channels, out_channels, stride))
                channels = out_channels
            layers.append(nn.Sequential(*stage_blocks))
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(self.stem(x))
        return self.fc(torch.flatten(self.pool(x), 1))


class DoubleConv(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class UNetSegmenter(nn.Module):
    """Input sides must be divisible by 4 (two 2x poolings)."""

    def __init__(self, num_classes: int = 4, width: int = 8, in_channels: int = 3, aux: bool = True):
        super().__init__()
        self.enc1 = DoubleConv(in_channels, width)
        self.enc2 = DoubleConv(width, width * 2)
        self.bottleneck = DoubleConv(width * 2, width * 4)
        self.up2 = nn.ConvTranspose2d(width * 4, width * 2, 2, stride=2)
        self.dec2 = DoubleConv(width * 4, width * 2)
        self.reduce1 = nn.Conv2d(width * 2, width, 1)  # after the interpolate upsampling
        self.dec1 = DoubleConv(width * 2, width)
        self.head = nn.Conv2d(width, num_classes, 1)
        self.aux_head = nn.Conv2d(width * 4, num_classes, 1) if aux else None

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        size = x.shape[-2:]
        e1 = self.enc1(x)
        e2 = self.enc2(F.max_pool2d(e1, 2))
        b = self.bottleneck(F.max_pool2d(e2, 2))
        d2 = self.dec2(torch.cat([self.up2(b), e2], dim=1))
        up1 = F.interpolate(d2, size=e1.shape[-2:], mode="bilinear", align_corners=False)
        d1 = self.dec1(torch.cat([self.reduce1(up1), e1], dim=1))
        result = {"out": self.head(d1)}
        if self.aux_head is not None:
            result["aux"] = F.interpolate(self.aux_head(b), size=size, mode="bilinear", align_corners=False)
        return result


ARCHITECTURES = {"resnet": ResNetClassifier, "unet": UNetSegmenter}


def build_model(arch: str, num_classes: int, width: int = 8) -> nn.Module:
    return ARCHITECTURES[arch](num_classes=num_classes, width=width)
