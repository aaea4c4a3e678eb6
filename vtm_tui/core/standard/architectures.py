"""The example architectures, rebuildable by name: `build_model("SmallCNN", num_classes, image_size)`.

A checkpoint names its class in "architecture"; a loader needs only this module and the
state dict, no training code. Constructors take `(num_classes, image_size)`, nothing else.
"""
from __future__ import annotations

import torch
from torch import nn


class SmallCNN(nn.Module):
    """Image classifier: (N, 3, H, W) float -> (N, num_classes) logits."""

    task_type = "classification"

    def __init__(self, num_classes: int, image_size: int) -> None:
        super().__init__()
        self.num_classes = int(num_classes)
        self.image_size = int(image_size)
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(1),
        )
        self.classifier = nn.Linear(32, self.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


class TinySegNet(nn.Module):
    """Fully convolutional segmenter: (N, 3, H, W) float -> (N, num_classes, H, W) logits."""

    task_type = "segmentation"

    def __init__(self, num_classes: int, image_size: int) -> None:
        super().__init__()
        self.num_classes = int(num_classes)
        self.image_size = int(image_size)
        # BatchNorm: without it the default lr (1e-3) and ~7 steps per epoch leave the net
        # predicting background only for the first several epochs.
        self.body = nn.Sequential(
            nn.Conv2d(3, 16, kernel_size=3, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(inplace=True),
            nn.Conv2d(16, 16, kernel_size=3, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(inplace=True),
        )
        self.head = nn.Conv2d(16, self.num_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


ARCHITECTURES: dict[str, type[nn.Module]] = {
    cls.__name__: cls for cls in (SmallCNN, TinySegNet)
}


def build_model(architecture: str, num_classes: int, image_size: int) -> nn.Module:
    try:
        cls = ARCHITECTURES[architecture]
    except KeyError:
        known = ", ".join(sorted(ARCHITECTURES))
        raise ValueError(f"unknown architecture {architecture!r} (known: {known})") from None
    return cls(num_classes, image_size)
