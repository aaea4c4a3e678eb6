"""Pieces the example training scripts share: arguments, device, seeding, synthetic data, checkpoints."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

CHECKPOINT_FORMAT = "vtm-checkpoint-v1"
CHECKPOINT_NAME = "best_checkpoint.pth"

COLOR_NAMES = ["red", "green", "blue", "yellow", "magenta", "cyan", "orange", "purple", "white", "gray"]
_PALETTE = torch.tensor(
    [
        [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0], [1.0, 0.0, 1.0],
        [0.0, 1.0, 1.0], [1.0, 0.5, 0.0], [0.5, 0.0, 1.0], [1.0, 1.0, 1.0], [0.5, 0.5, 0.5],
    ]
)
SHAPE_NAMES = ["rectangle", "circle", "diamond", "triangle"]


def build_parser(description: str, *, num_classes: int, image_size: int, samples: int) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--learning_rate", type=float, default=0.001)
    parser.add_argument("--num_classes", type=int, default=num_classes)
    parser.add_argument("--image_size", type=int, default=image_size)
    parser.add_argument("--samples", type=int, default=samples, help="synthetic dataset size")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--experiment_name", type=str, default="void-train-manager")
    parser.add_argument("--output_dir", type=Path, default=Path("./outputs"))
    parser.add_argument("--run_name", type=str, default=None)
    return parser


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace, *, min_classes: int) -> None:
    for name in ("epochs", "batch_size", "samples", "image_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.samples < 2:
        parser.error("--samples must be at least 2 (one train, one validation sample)")
    if args.image_size < 8:
        parser.error("--image_size must be at least 8")
    if args.num_classes < min_classes:
        parser.error(f"--num_classes must be at least {min_classes}")
    if args.learning_rate <= 0:
        parser.error("--learning_rate must be positive")


def pick_device(choice: str = "auto") -> torch.device:
    if choice == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: CUDA is not available on this machine")
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(choice)


def setup_torch(seed: int) -> None:
    """Seed torch and keep CPU threads low: these tiny models gain nothing from more.

    Python's `random` stays unseeded on purpose: MLflow draws generated run names from
    it, and a seeded one would give every run with the same --seed the same name.
    """
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    torch.manual_seed(seed)


def split_sizes(samples: int, val_fraction: float = 0.2) -> tuple[int, int]:
    val = min(max(1, round(samples * val_fraction)), samples - 1)
    return samples - val, val


def color_names(num_classes: int) -> list[str]:
    return [COLOR_NAMES[i] if i < len(COLOR_NAMES) else f"class_{i}" for i in range(num_classes)]


def _class_colors(num_classes: int, generator: torch.Generator) -> torch.Tensor:
    if num_classes <= len(_PALETTE):
        return _PALETTE[:num_classes].clone()
    extra = torch.rand(num_classes - len(_PALETTE), 3, generator=generator)
    return torch.cat([_PALETTE, extra])


def synthetic_classification(samples: int, num_classes: int, image_size: int, seed: int):
    """Noisy checkerboards tinted by their class colour: (x, y), x float in [0, 1], y class index.

    A per-image jitter of the tint makes neighbouring classes overlap a little, so accuracy
    climbs over a few epochs instead of saturating in one.
    """
    g = torch.Generator().manual_seed(seed)
    colors = _class_colors(num_classes, g)
    labels = torch.randint(0, num_classes, (samples,), generator=g)
    coords = torch.arange(image_size)
    period = max(2, image_size // 8)
    checker = (((coords[:, None] // period) + (coords[None, :] // period)) % 2).float()
    pattern = 0.35 + 0.3 * checker  # (H, W)
    tints = colors[labels] + 0.45 * (2 * torch.rand(samples, 3, generator=g) - 1)
    images = tints[:, :, None, None] * pattern[None, None]
    images = images + 0.45 * torch.randn(samples, 3, image_size, image_size, generator=g)
    return images.clamp(0.0, 1.0), labels


def shape_names(num_classes: int) -> list[str]:
    names = ["background"]
    for c in range(1, num_classes):
        base = SHAPE_NAMES[(c - 1) % len(SHAPE_NAMES)]
        round_ = (c - 1) // len(SHAPE_NAMES)
        names.append(base if round_ == 0 else f"{base}_{round_ + 1}")
    return names


def synthetic_segmentation(samples: int, num_classes: int, image_size: int, seed: int, shapes_per_image: int = 3):
    """Noisy images with coloured shapes; mask pixel = shape class (0 is background)."""
    g = torch.Generator().manual_seed(seed)
    colors = _class_colors(num_classes, g)
    size = image_size
    yy, xx = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    masks = torch.zeros(samples, size, size, dtype=torch.long)
    for _ in range(shapes_per_image):
        cls = torch.randint(1, num_classes, (samples,), generator=g)
        cx = torch.rand(samples, generator=g) * size
        cy = torch.rand(samples, generator=g) * size
        r = (0.1 + 0.15 * torch.rand(samples, generator=g)) * size
        dx = (xx[None] - cx[:, None, None]).abs()
        dy = yy[None] - cy[:, None, None]
        rr = r[:, None, None]
        kind = ((cls - 1) % len(SHAPE_NAMES))[:, None, None]
        inside = torch.where(
            kind == 0, (dx < rr) & (dy.abs() < rr * 0.7),
            torch.where(
                kind == 1, dx**2 + dy**2 < rr**2,
                torch.where(kind == 2, dx + dy.abs() < rr, (dy.abs() < rr) & (dx < (dy + rr) / 2)),
            ),
        )
        masks = torch.where(inside, cls[:, None, None], masks)
    background = torch.full((3,), 0.2)
    table = torch.cat([background[None], colors[1:num_classes]]) if num_classes > 1 else background[None]
    images = table[masks].permute(0, 3, 1, 2)  # (N, 3, H, W)
    images = images + 0.3 * torch.randn(samples, 3, size, size, generator=g)
    return images.clamp(0.0, 1.0).contiguous(), masks


def batches(n: int, batch_size: int, *, shuffle: bool, generator: torch.Generator | None = None):
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    for start in range(0, n, batch_size):
        yield order[start:start + batch_size]


def checkpoint_dict(
    *,
    task_type: str,
    model: torch.nn.Module,
    num_classes: int,
    image_size: int,
    class_names: list[str],
    epoch: int,
    metric: dict[str, float],
    mlflow_run_id: str | None = None,
) -> dict:
    """The vtm-checkpoint-v1 dict: tensors and plain types only (torch.load(weights_only=True) reads it)."""
    return {
        "format": CHECKPOINT_FORMAT,
        "task_type": task_type,
        "architecture": type(model).__name__,
        "num_classes": int(num_classes),
        "image_size": int(image_size),
        "input_shape": [3, int(image_size), int(image_size)],
        "class_names": [str(name) for name in class_names],
        "state_dict": {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()},
        "epoch": int(epoch),
        "metric": {str(k): float(v) for k, v in metric.items()},
        "mlflow_run_id": mlflow_run_id,
    }


def checkpoint_path(output_dir: Path, run_id: str) -> Path:
    return Path(output_dir) / "checkpoints" / run_id / CHECKPOINT_NAME


def tensorboard_dir_template(output_dir: Path) -> str:
    """`<output_dir>/tensorboard/{run_name}` for TrainingLogger, which fills in the MLflow run name."""
    escaped = str(output_dir).replace("{", "{{").replace("}", "}}")
    return str(Path(escaped) / "tensorboard" / "{run_name}")


def loggable_params(args: argparse.Namespace) -> dict:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}


def parse_args(description: str, argv: list[str] | None, *, num_classes: int, image_size: int,
               samples: int) -> argparse.Namespace:
    """The example scripts' command line, checked; torch seeded for this run."""
    parser = build_parser(description, num_classes=num_classes, image_size=image_size, samples=samples)
    args = parser.parse_args(argv)
    check_args(parser, args, min_classes=2)
    setup_torch(args.seed)
    return args


def train_one_epoch(model, optimizer, x, y, batch_size, generator) -> float:
    """One pass of cross-entropy training (per image or per pixel); the mean loss."""
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


def fit(args: argparse.Namespace, *, task_type: str, model: torch.nn.Module, data: tuple[torch.Tensor, torch.Tensor],
        evaluate: Callable[[torch.nn.Module, torch.Tensor, torch.Tensor], dict[str, float]],
        best_metric: str, class_names: list[str]) -> None:
    """The loop both example scripts share. Every epoch trains on the first 80% of `data` and
    evaluates on the rest; its metrics go to MLflow, TensorBoard and vtm's progress line. The
    epoch with the highest `best_metric` is kept as the checkpoint, and the logged model carries
    those same weights."""
    from vtm_tui.train.logger import TrainingLogger

    device = pick_device(args.device)
    x, y = (tensor.to(device) for tensor in data)
    n_train, n_val = split_sizes(len(x))
    x_train, y_train, x_val, y_val = x[:n_train], y[:n_train], x[n_train:], y[n_train:]
    model = model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.learning_rate)
    shuffle = torch.Generator().manual_seed(args.seed)
    with TrainingLogger(
        experiment_name=args.experiment_name,
        run_name=args.run_name,
        params=loggable_params(args),
        tb_dir=tensorboard_dir_template(args.output_dir),
        tags={"vtm.task_type": task_type},
    ) as tl:
        print(f"device={device} train={n_train} val={n_val} run={tl.run_name} tensorboard={tl.tb_dir}", flush=True)
        ckpt = checkpoint_path(args.output_dir, tl.run_id or tl.run_name)  # no MLflow run id while it is unreachable
        best = None
        for epoch in range(1, args.epochs + 1):
            train_loss = train_one_epoch(model, optimizer, x_train, y_train, args.batch_size, shuffle)
            metrics = {"train_loss": train_loss, **evaluate(model, x_val, y_val)}
            tl.log_epoch(epoch, args.epochs, metrics)
            if best is None or metrics[best_metric] > best:
                best = metrics[best_metric]
                ckpt.parent.mkdir(parents=True, exist_ok=True)
                torch.save(
                    checkpoint_dict(
                        task_type=task_type, model=model, num_classes=args.num_classes,
                        image_size=args.image_size, class_names=class_names,
                        epoch=epoch, metric={best_metric: best}, mlflow_run_id=tl.run_id,
                    ),
                    ckpt,
                )
        tl.log_checkpoint(ckpt)
        print(f"best {best_metric}={best:.4f} checkpoint={ckpt}", flush=True)
        # The logged model carries the best epoch's weights, like the checkpoint: a model served
        # from MLflow and the same run's checkpoint published to the registry must agree.
        model.load_state_dict(torch.load(ckpt, map_location=device, weights_only=True)["state_dict"])
        tl.log_model(model, artifact_path="model", input_example=x_val[:2].cpu().numpy())


def run_script(main) -> None:
    """Exit like a shell would: 130 after Ctrl-C / SIGINT, 143 after SIGTERM, no traceback for either."""
    from vtm_tui.train.logger import TrainingTerminated

    try:
        code = main()
    except TrainingTerminated:
        print("training terminated (SIGTERM)", file=sys.stderr, flush=True)
        code = 143
    except KeyboardInterrupt:
        print("training interrupted (SIGINT)", file=sys.stderr, flush=True)
        code = 130
    sys.exit(code)
