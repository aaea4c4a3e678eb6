"""The example architectures, rebuildable by name: `build_model("SmallCNN", num_classes, image_size)`.

A checkpoint names its class in "architecture"; a loader needs only this module and the
state dict, no training code. Constructors take `(num_classes, image_size)`, nothing else.

Importing this module does not import torch (vtm's start-up paths import it): the classes are
defined on first use of any of them, as ordinary module-level classes (`SmallCNN.__module__` is
this module and pickle finds them by name), through the module `__getattr__` (PEP 562).
"""
from __future__ import annotations

import functools
from typing import Any

TASK_TYPES = {"SmallCNN": "classification", "TinySegNet": "segmentation"}  # architecture -> task type
_LAZY = (*TASK_TYPES, "ARCHITECTURES")


@functools.cache
def _define() -> dict[str, Any]:
    """The classes, defined once (pickle needs one class object per name)."""
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

    classes = {cls.__name__: cls for cls in (SmallCNN, TinySegNet)}
    for cls in classes.values():
        cls.__qualname__ = cls.__name__
        cls.__module__ = __name__
    return classes


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if "ARCHITECTURES" not in globals():  # once: a second definition would orphan the classes handed out
        classes = _define()
        globals().update(classes, ARCHITECTURES=classes)
    return globals()[name]


def build_model(architecture: str, num_classes: int, image_size: int):
    """A fresh, randomly initialised torch.nn.Module of that architecture; ValueError if unknown."""
    if architecture not in TASK_TYPES:
        known = ", ".join(sorted(TASK_TYPES))
        raise ValueError(f"unknown architecture {architecture!r} (known: {known})")
    return _define()[architecture](num_classes, image_size)
