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

from vtm_tui.train.common import (
    batches,
    build_parser,
    check_args,
    checkpoint_dict,
    checkpoint_path,
    loggable_params,
    pick_device,
    run_script,
    setup_torch,
    shape_names,
    split_sizes,
    synthetic_segmentation,
    tensorboard_dir_template,
)
from vtm_tui.train.logger import TrainingLogger
from vtm_tui.train.models import TinySegNet

TASK_TYPE = "segmentation"
BEST_METRIC = "val_miou"


def train_one_epoch(model, optimizer, x, y, batch_size, generator) -> float:
    model.train()
    total, count = 0.0, 0
    for idx in batches(len(x), batch_size, shuffle=True, generator=generator):
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x[idx]), y[idx])
        loss.backward()
        optimizer.step()
        total += loss.item() * len(idx)
        count += len(idx)
    return total / count


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
    parser = build_parser(__doc__.splitlines()[0], num_classes=3, image_size=64, samples=256)
    args = parser.parse_args(argv)
    check_args(parser, args, min_classes=2)
    setup_torch(args.seed)
    device = pick_device(args.device)

    x, y = synthetic_segmentation(args.samples, args.num_classes, args.image_size, args.seed)
    n_train, n_val = split_sizes(args.samples)
    x, y = x.to(device), y.to(device)
    x_train, y_train, x_val, y_val = x[:n_train], y[:n_train], x[n_train:], y[n_train:]
    model = TinySegNet(args.num_classes, args.image_size).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.learning_rate)
    shuffle = torch.Generator().manual_seed(args.seed)

    with TrainingLogger(
        experiment_name=args.experiment_name,
        run_name=args.run_name,
        params=loggable_params(args),
        tb_dir=tensorboard_dir_template(args.output_dir),
        tags={"vtm.task_type": TASK_TYPE},
    ) as tl:
        print(f"device={device} train={n_train} val={n_val} run={tl.run_name} tensorboard={tl.tb_dir}", flush=True)
        ckpt = checkpoint_path(args.output_dir, tl.run_id)
        best = None
        for epoch in range(1, args.epochs + 1):
            train_loss = train_one_epoch(model, optimizer, x_train, y_train, args.batch_size, shuffle)
            val_loss, val_miou, val_pixel_accuracy = evaluate(model, x_val, y_val, args.batch_size, args.num_classes)
            metrics = {
                "train_loss": train_loss,
                "val_loss": val_loss,
                "val_miou": val_miou,
                "val_pixel_accuracy": val_pixel_accuracy,
            }
            tl.log_epoch(epoch, args.epochs, metrics)
            if best is None or val_miou > best:
                best = val_miou
                ckpt.parent.mkdir(parents=True, exist_ok=True)
                torch.save(
                    checkpoint_dict(
                        task_type=TASK_TYPE, model=model, num_classes=args.num_classes,
                        image_size=args.image_size, class_names=shape_names(args.num_classes),
                        epoch=epoch, metric={BEST_METRIC: val_miou}, mlflow_run_id=tl.run_id,
                    ),
                    ckpt,
                )
        tl.log_checkpoint(ckpt)
        print(f"best {BEST_METRIC}={best:.4f} checkpoint={ckpt}", flush=True)
        # The logged model carries the best epoch's weights, like the checkpoint: a model served
        # from MLflow and the same run's checkpoint published to the registry must agree.
        model.load_state_dict(torch.load(ckpt, map_location=device, weights_only=True)["state_dict"])
        tl.log_model(model, artifact_path="model", input_example=x_val[:2].cpu().numpy())
    return 0


if __name__ == "__main__":
    run_script(main)
