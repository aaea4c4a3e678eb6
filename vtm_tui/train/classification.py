"""Example classification training: a small CNN on synthetic tinted-checkerboard images.

    python -m vtm_tui.train.classification --epochs 5
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

from vtm_tui.core.standard.architectures import SmallCNN
from vtm_tui.train.common import batches, color_names, fit, parse_args, run_script, synthetic_classification

TASK_TYPE = "classification"
BEST_METRIC = "val_accuracy"


@torch.no_grad()
def evaluate(model, x, y, batch_size) -> tuple[float, float]:
    model.eval()
    loss_sum, correct = 0.0, 0
    for idx in batches(len(x), batch_size, shuffle=False):
        logits = model(x[idx])
        loss_sum += F.cross_entropy(logits, y[idx], reduction="sum").item()
        correct += int((logits.argmax(dim=1) == y[idx]).sum().item())
    return loss_sum / len(x), correct / len(x)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__.splitlines()[0], argv, num_classes=5, image_size=32, samples=512)
    data = synthetic_classification(args.samples, args.num_classes, args.image_size, args.seed)

    def val_metrics(model, x, y) -> dict[str, float]:
        val_loss, val_accuracy = evaluate(model, x, y, args.batch_size)
        return {"val_loss": val_loss, "val_accuracy": val_accuracy}

    fit(args, task_type=TASK_TYPE, model=SmallCNN(args.num_classes, args.image_size), data=data,
        evaluate=val_metrics, best_metric=BEST_METRIC, class_names=color_names(args.num_classes))
    return 0


if __name__ == "__main__":
    run_script(main)
