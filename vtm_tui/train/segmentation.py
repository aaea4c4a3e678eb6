"""Example segmentation training: a tiny fully convolutional net on synthetic coloured shapes.

    python -m vtm_tui.train.segmentation --epochs 5
"""
from __future__ import annotations

if __package__ in (None, ""):  # run as a file path: import the package from this checkout
    import pathlib
    import sys

    _here = pathlib.Path(__file__).resolve()
    if sys.path and pathlib.Path(sys.path[0] or ".").resolve() == _here.parent:
        sys.path.pop(0)  # this folder's common.py / models.py must not shadow top-level modules
    sys.path.insert(0, str(_here.parents[2]))

import torch
import torch.nn.functional as F

from vtm_tui.core.standard.architectures import TinySegNet
from vtm_tui.train.common import batches, fit, parse_args, run_script, shape_names, synthetic_segmentation

TASK_TYPE = "segmentation"
BEST_METRIC = "val_miou"


def miou_and_pixel_accuracy(confusion: torch.Tensor) -> tuple[float, float]:
    """From a (true, predicted) confusion matrix; classes absent from both sides do not count."""
    confusion = confusion.double()
    tp = confusion.diag()
    union = confusion.sum(0) + confusion.sum(1) - tp
    present = union > 0
    miou = (tp[present] / union[present]).mean().item() if present.any() else 0.0
    pixel_accuracy = (tp.sum() / confusion.sum()).item()
    return float(miou), float(pixel_accuracy)


@torch.no_grad()
def evaluate(model, x, y, batch_size, num_classes) -> tuple[float, float, float]:
    model.eval()
    loss_sum, pixels = 0.0, 0
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.long, device=x.device)
    for idx in batches(len(x), batch_size, shuffle=False):
        logits = model(x[idx])
        target = y[idx]
        loss_sum += F.cross_entropy(logits, target, reduction="sum").item()
        pixels += target.numel()
        pred = logits.argmax(dim=1)
        confusion += torch.bincount(
            target.flatten() * num_classes + pred.flatten(), minlength=num_classes * num_classes
        ).reshape(num_classes, num_classes)
    miou, pixel_accuracy = miou_and_pixel_accuracy(confusion.cpu())
    return loss_sum / pixels, miou, pixel_accuracy


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__.splitlines()[0], argv, num_classes=3, image_size=64, samples=256)
    data = synthetic_segmentation(args.samples, args.num_classes, args.image_size, args.seed)

    def val_metrics(model, x, y) -> dict[str, float]:
        val_loss, val_miou, val_pixel_accuracy = evaluate(model, x, y, args.batch_size, args.num_classes)
        return {"val_loss": val_loss, "val_miou": val_miou, "val_pixel_accuracy": val_pixel_accuracy}

    fit(args, task_type=TASK_TYPE, model=TinySegNet(args.num_classes, args.image_size), data=data,
        evaluate=val_metrics, best_metric=BEST_METRIC, class_names=shape_names(args.num_classes))
    return 0


if __name__ == "__main__":
    run_script(main)
