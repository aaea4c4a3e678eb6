"""A vtm user's own training script (catalog `runner.targetEnvVar` points a task at a file like this).

    python train.py --arch resnet --epochs 1 --samples 64 --image_size 32 --checkpoint_format wrapped

It knows nothing of vtm beyond the stdout protocol:
    VTM_PROGRESS::{"epoch": 1, "total_epochs": 1, "val_accuracy": 0.5, ...}   (val_miou for --arch unet)
    VTM_RUN_META::{"mlflow_run_id": "..."}                                    (when MLFLOW_TRACKING_URI is set)

With MLflow it logs the trained net as the model "model" (MLflow's default pt2 format). A dict
output cannot be served by `mlflow models serve` (HTTP 400: it wants one output tensor), so for
the UNet it also logs "model_out": a view of the same net that returns its "out" tensor, the model
to serve natively.

Data is synthetic and deterministic by --seed: tinted shapes to classify (resnet), coloured shapes
on a background to segment (unet). Nothing is downloaded.

The checkpoint is saved the ways people save them (--checkpoint_format):
    plain          OUTPUT/checkpoint.pth  model.state_dict()
    wrapped        OUTPUT/checkpoint.pth  {"epoch", "model_state_dict", "optimizer_state_dict"}
    dataparallel   OUTPUT/checkpoint.pth  nn.DataParallel(model).state_dict()  (keys "module.*")
    compile        OUTPUT/checkpoint.pth  torch.compile(model).state_dict()    (keys "_orig_mod.*")
    lightning      OUTPUT/best.ckpt       pytorch-lightning's ModelCheckpoint   (state_dict keys "model.*")
                   (--lightning_hparams rich adds a pathlib.Path and a numpy float to its hyper_parameters)
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from models import build_model
from torch import nn

FORMATS = ("plain", "wrapped", "dataparallel", "compile", "lightning")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=("resnet", "unet"), default="resnet")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--learning_rate", type=float, default=1e-2)
    parser.add_argument("--num_classes", type=int, default=4)
    parser.add_argument("--image_size", type=int, default=32, help="divisible by 4 for unet")
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--width", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output_dir", default="outputs/user_project")
    parser.add_argument("--checkpoint_format", choices=FORMATS, default="plain")
    parser.add_argument("--compile_backend", default="eager",
                        help="torch.compile backend for --checkpoint_format compile ('inductor' needs a C compiler)")
    parser.add_argument("--limit_batches", type=int, default=None, help="lightning: batches per epoch (train and val)")
    parser.add_argument("--lightning_hparams", choices=("plain", "rich"), default="plain",
                        help="lightning: 'rich' also saves a pathlib.Path and a numpy float as hyper-parameters, "
                             "as real projects do (torch.load(weights_only=True) refuses those globals)")
    parser.add_argument("--no_mlflow", action="store_true", help="do not log even if MLFLOW_TRACKING_URI is set")
    args = parser.parse_args(argv)
    if args.arch == "unet" and args.image_size % 4:
        parser.error("--image_size must be divisible by 4 for unet")
    return args


# ---------------------------------------------------------------------------
# Synthetic data
# ---------------------------------------------------------------------------


def _colors(num_classes: int, g: torch.Generator) -> torch.Tensor:
    base = torch.tensor([[0.9, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.2, 0.9], [0.9, 0.8, 0.1],
                         [0.8, 0.1, 0.8], [0.1, 0.8, 0.8]])
    if num_classes <= len(base):
        return base[:num_classes]
    return torch.cat([base, torch.rand(num_classes - len(base), 3, generator=g)])


def _disc_masks(samples: int, size: int, g: torch.Generator, scale: float = 1.0) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    cx, cy = (torch.rand(2, samples, 1, 1, generator=g) * 0.6 + 0.2) * size
    r = (0.15 + 0.15 * torch.rand(samples, 1, 1, generator=g)) * size * scale
    return (xx - cx) ** 2 + (yy - cy) ** 2 < r ** 2


def classification_data(samples: int, num_classes: int, size: int, seed: int):
    """A disc tinted by its class colour on a noisy grey background; (images, labels)."""
    g = torch.Generator().manual_seed(seed)
    colors = _colors(num_classes, g)
    labels = torch.randint(0, num_classes, (samples,), generator=g)
    tint = colors[labels] + 0.2 * torch.randn(samples, 3, generator=g)
    inside = _disc_masks(samples, size, g)[:, None]
    images = torch.where(inside, tint[:, :, None, None], torch.full((1, 3, 1, 1), 0.4))
    images = images + 0.25 * torch.randn(samples, 3, size, size, generator=g)
    return images.clamp(0, 1), labels


def segmentation_data(samples: int, num_classes: int, size: int, seed: int, shapes: int = 3):
    """Coloured discs and squares on a dark background; (images, masks), mask 0 = background."""
    g = torch.Generator().manual_seed(seed)
    colors = _colors(num_classes, g)
    masks = torch.zeros(samples, size, size, dtype=torch.long)
    for index in range(shapes):
        cls = torch.randint(1, max(2, num_classes), (samples, 1, 1), generator=g).clamp(max=num_classes - 1)
        if index % 2:
            corner = (torch.rand(2, samples, 1, 1, generator=g) * 0.6 * size).long()
            side = size // 4
            rows, cols = torch.arange(size)[None, :, None], torch.arange(size)[None, None, :]
            inside = ((rows - corner[0]).clamp(min=-1) // side == 0) & ((cols - corner[1]).clamp(min=-1) // side == 0)
        else:
            inside = _disc_masks(samples, size, g, scale=0.8)
        masks = torch.where(inside, cls, masks)
    table = torch.cat([torch.full((1, 3), 0.15), colors[1:]])
    images = table[masks].permute(0, 3, 1, 2) + 0.2 * torch.randn(samples, 3, size, size, generator=g)
    return images.clamp(0, 1).contiguous(), masks


def make_data(args):
    make = classification_data if args.arch == "resnet" else segmentation_data
    x, y = make(args.samples, args.num_classes, args.image_size, args.seed)
    n_val = min(max(1, args.samples // 5), args.samples - 1)
    return (x[n_val:], y[n_val:]), (x[:n_val], y[:n_val])


# ---------------------------------------------------------------------------
# Loss and metrics (one definition for the plain loop and the LightningModule)
# ---------------------------------------------------------------------------


def compute_loss(output, target: torch.Tensor) -> torch.Tensor:
    if isinstance(output, dict):  # segmentation: main head plus the auxiliary one
        loss = F.cross_entropy(output["out"], target)
        if "aux" in output:
            loss = loss + 0.4 * F.cross_entropy(output["aux"], target)
        return loss
    return F.cross_entropy(output, target)


class Scores:
    """Accumulates predictions over a validation pass: accuracy, or mean IoU for segmentation."""

    def __init__(self, num_classes: int):
        self.num_classes = num_classes
        self.confusion = torch.zeros(num_classes, num_classes, dtype=torch.long)
        self.loss_sum = 0.0
        self.count = 0

    def update(self, output, target: torch.Tensor, loss: torch.Tensor) -> None:
        logits = output["out"] if isinstance(output, dict) else output
        pred = logits.argmax(1)
        index = target.flatten() * self.num_classes + pred.flatten()
        self.confusion += torch.bincount(index.cpu(), minlength=self.num_classes ** 2).view_as(self.confusion)
        self.loss_sum += loss.item() * target.shape[0]
        self.count += target.shape[0]

    def result(self, segmentation: bool) -> dict[str, float]:
        c = self.confusion.double()
        out = {"val_loss": round(self.loss_sum / max(1, self.count), 6)}
        accuracy = float(c.diag().sum() / c.sum().clamp(min=1))
        if not segmentation:
            out["val_accuracy"] = round(accuracy, 6)
            return out
        union = c.sum(0) + c.sum(1) - c.diag()
        present = union > 0
        iou = c.diag()[present] / union[present]
        out["val_miou"] = round(float(iou.mean()) if present.any() else 0.0, 6)
        out["val_pixel_accuracy"] = round(accuracy, 6)
        return out


def progress(epoch: int, total: int, metrics: dict) -> None:
    clean = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and math.isfinite(v)}
    print("VTM_PROGRESS::" + json.dumps({"epoch": epoch, "total_epochs": total, **clean}), flush=True)


# ---------------------------------------------------------------------------
# Plain PyTorch loop (plain, wrapped, dataparallel, compile)
# ---------------------------------------------------------------------------


def wrap(model: nn.Module, args) -> nn.Module:
    if args.checkpoint_format == "dataparallel":
        return nn.DataParallel(model)  # without GPUs it just calls the module
    if args.checkpoint_format == "compile":
        return torch.compile(model, backend=args.compile_backend)
    return model


def train_plain(args, model: nn.Module, train, val, tracker) -> Path:
    net = wrap(model, args)
    optimizer = torch.optim.SGD(net.parameters(), lr=args.learning_rate, momentum=0.9)
    g = torch.Generator().manual_seed(args.seed + 1)
    x_train, y_train = train
    for epoch in range(1, args.epochs + 1):
        net.train()
        seen, loss_sum = 0, 0.0
        order = torch.randperm(len(x_train), generator=g)
        for start in range(0, len(x_train), args.batch_size):
            batch = order[start:start + args.batch_size]
            if len(batch) < 2:  # BatchNorm needs more than one value per channel in training
                continue
            loss = compute_loss(net(x_train[batch]), y_train[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * len(batch)
            seen += len(batch)
        metrics = {"train_loss": round(loss_sum / max(1, seen), 6), **evaluate(net, val, args)}
        tracker.log(metrics, epoch)
        progress(epoch, args.epochs, metrics)

    path = Path(args.output_dir) / "checkpoint.pth"
    if args.checkpoint_format == "wrapped":
        torch.save({"epoch": args.epochs, "model_state_dict": model.state_dict(),
                    "optimizer_state_dict": optimizer.state_dict()}, path)
    else:  # plain: the bare model; dataparallel / compile: the wrapper's keys, as people save them
        torch.save(net.state_dict(), path)
    return path


@torch.no_grad()
def evaluate(net: nn.Module, val, args) -> dict[str, float]:
    net.eval()
    scores = Scores(args.num_classes)
    x_val, y_val = val
    for start in range(0, len(x_val), args.batch_size):
        x, y = x_val[start:start + args.batch_size], y_val[start:start + args.batch_size]
        output = net(x)
        scores.update(output, y, compute_loss(output, y))
    return scores.result(args.arch == "unet")


# ---------------------------------------------------------------------------
# pytorch-lightning (imported only for --checkpoint_format lightning)
# ---------------------------------------------------------------------------


def train_lightning(args, model: nn.Module, train, val, tracker) -> Path:
    import warnings

    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import ModelCheckpoint
    from torch.utils.data import DataLoader, TensorDataset

    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")  # torch 2.13 vs lightning 2.6's pytree use
    monitor = "val_miou" if args.arch == "unet" else "val_accuracy"

    class LitModel(pl.LightningModule):
        def __init__(self, net: nn.Module, arch: str, num_classes: int, width: int, learning_rate: float,
                     **extra):
            super().__init__()
            self.save_hyperparameters(ignore=["net"])  # everything but the net, `extra` flattened in
            self.model = net  # the weights land under state_dict as "model.*"
            self.scores = Scores(num_classes)
            self.train_loss = [0.0, 0]  # (sum, samples) over the current epoch

        def forward(self, x):
            return self.model(x)

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = compute_loss(self.model(x), y)
            self.train_loss = [self.train_loss[0] + loss.item() * len(y), self.train_loss[1] + len(y)]
            return loss

        def on_train_epoch_start(self):
            self.train_loss = [0.0, 0]

        def on_validation_epoch_start(self):
            self.scores = Scores(self.hparams.num_classes)

        def validation_step(self, batch, batch_idx):
            x, y = batch
            output = self.model(x)
            self.scores.update(output, y, compute_loss(output, y))

        def on_validation_epoch_end(self):
            metrics = self.scores.result(self.hparams.arch == "unet")
            self.log_dict(metrics)
            if self.trainer.sanity_checking:
                return
            total, count = self.train_loss
            metrics = {"train_loss": round(total / max(1, count), 6), **metrics}
            tracker.log(metrics, self.current_epoch + 1)
            progress(self.current_epoch + 1, args.epochs, metrics)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=self.hparams.learning_rate, momentum=0.9)

    extra = {}
    if args.lightning_hparams == "rich":
        import numpy as np

        extra = {"data_dir": Path(args.output_dir).resolve(), "pixel_mean": np.float64(train[0].mean())}
    lit = LitModel(model, args.arch, args.num_classes, args.width, args.learning_rate, **extra)
    loader = DataLoader(TensorDataset(*train), batch_size=args.batch_size, shuffle=True, drop_last=True,
                        generator=torch.Generator().manual_seed(args.seed + 1))
    val_loader = DataLoader(TensorDataset(*val), batch_size=args.batch_size)
    checkpoint = ModelCheckpoint(dirpath=args.output_dir, filename="best", monitor=monitor, mode="max",
                                 save_top_k=1, enable_version_counter=False)
    trainer = pl.Trainer(
        accelerator="cpu", devices=1, max_epochs=args.epochs, default_root_dir=args.output_dir,
        limit_train_batches=args.limit_batches, limit_val_batches=args.limit_batches,
        num_sanity_val_steps=0, logger=False, callbacks=[checkpoint],
        enable_progress_bar=False, enable_model_summary=False, deterministic=True,
    )
    trainer.fit(lit, loader, val_loader)
    return Path(checkpoint.best_model_path)


# ---------------------------------------------------------------------------
# Optional MLflow
# ---------------------------------------------------------------------------


class OutputOf(nn.Module):
    """The same network, returning one entry of its dict output (what native serving can serve)."""

    def __init__(self, net: nn.Module, key: str):
        super().__init__()
        self.net = net
        self.key = key

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)[self.key]


class Tracker:
    """MLflow when MLFLOW_TRACKING_URI is set (and --no_mlflow is not), else nothing."""

    def __init__(self, args):
        self.mlflow = None
        if args.no_mlflow or not os.environ.get("MLFLOW_TRACKING_URI"):
            return
        import mlflow

        self.mlflow = mlflow
        mlflow.set_experiment(os.environ.get("MLFLOW_EXPERIMENT_NAME") or f"user-project-{args.arch}")
        run = mlflow.start_run()
        print("VTM_RUN_META::" + json.dumps({"mlflow_run_id": run.info.run_id}), flush=True)
        mlflow.log_params(vars(args))

    def log(self, metrics: dict, epoch: int) -> None:
        if self.mlflow is not None:
            self.mlflow.log_metrics(metrics, step=epoch)

    def finish(self, model: nn.Module, example: torch.Tensor, checkpoint: Path) -> None:
        if self.mlflow is None:
            return
        import mlflow.pytorch
        from mlflow.models import infer_signature

        model = model.to("cpu").eval()  # torch.export traces the module in the mode it is in
        example = example[:2].numpy()  # a batch of 2 keeps the batch dimension dynamic in pt2
        with torch.no_grad():
            output = model(torch.from_numpy(example))
        # MLflow infers a signature only for a single output tensor; a dict output needs it spelled out,
        # and its default pt2 format (torch.export) refuses to log without one.
        outputs = {k: v.numpy() for k, v in output.items()} if isinstance(output, dict) else output.numpy()
        requirements = [f"torch=={torch.__version__.split('+')[0]}"]
        mlflow.pytorch.log_model(model, name="model", input_example=example,
                                 signature=infer_signature(example, outputs), pip_requirements=requirements)
        if isinstance(output, dict):
            mlflow.pytorch.log_model(OutputOf(model, "out").eval(), name="model_out", input_example=example,
                                     signature=infer_signature(example, outputs["out"]),
                                     pip_requirements=requirements)
        self.mlflow.log_artifact(str(checkpoint), artifact_path="checkpoints")
        self.mlflow.end_run()


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)
    Path(args.output_dir).mkdir(parents=True, exist_ok=True)
    train, val = make_data(args)
    model = build_model(args.arch, args.num_classes, args.width)
    tracker = Tracker(args)
    print(f"training {args.arch} on {len(train[0])} samples, {args.epochs} epoch(s), "
          f"checkpoint format {args.checkpoint_format}", flush=True)
    if args.checkpoint_format == "lightning":
        path = train_lightning(args, model, train, val, tracker)
    else:
        path = train_plain(args, model, train, val, tracker)
    tracker.finish(model, val[0], path)
    print(f"saved {path}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
