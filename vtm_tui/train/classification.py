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

from vtm_tui.train.common import (
    batches,
    build_parser,
    check_args,
    checkpoint_dict,
    checkpoint_path,
    color_names,
    loggable_params,
    pick_device,
    run_script,
    setup_torch,
    split_sizes,
    synthetic_classification,
    tensorboard_dir_template,
)
from vtm_tui.train.logger import TrainingLogger
from vtm_tui.train.models import SmallCNN

TASK_TYPE = "classification"
BEST_METRIC = "val_accuracy"


def train_one_epoch(model, optimizer, x, y, batch_size, generator) -> float:
    model.train()
    total, count = 0.0, 0
    for idx in batches(len(x), batch_size, shuffle=True, generator=generator):
        xb, yb = x[idx], y[idx]
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(xb), yb)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(idx)
        count += len(idx)
    return total / count


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
    parser = build_parser(__doc__.splitlines()[0], num_classes=5, image_size=32, samples=512)
    args = parser.parse_args(argv)
    check_args(parser, args, min_classes=2)
    setup_torch(args.seed)
    device = pick_device(args.device)

    x, y = synthetic_classification(args.samples, args.num_classes, args.image_size, args.seed)
    n_train, n_val = split_sizes(args.samples)
    x, y = x.to(device), y.to(device)
    x_train, y_train, x_val, y_val = x[:n_train], y[:n_train], x[n_train:], y[n_train:]
    model = SmallCNN(args.num_classes, args.image_size).to(device)
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
            val_loss, val_accuracy = evaluate(model, x_val, y_val, args.batch_size)
            metrics = {"train_loss": train_loss, "val_loss": val_loss, "val_accuracy": val_accuracy}
            tl.log_epoch(epoch, args.epochs, metrics)
            if best is None or val_accuracy > best:
                best = val_accuracy
                ckpt.parent.mkdir(parents=True, exist_ok=True)
                torch.save(
                    checkpoint_dict(
                        task_type=TASK_TYPE, model=model, num_classes=args.num_classes,
                        image_size=args.image_size, class_names=color_names(args.num_classes),
                        epoch=epoch, metric={BEST_METRIC: val_accuracy}, mlflow_run_id=tl.run_id,
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
