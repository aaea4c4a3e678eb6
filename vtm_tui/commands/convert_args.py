"""The options that describe a model for `--convert-standard` (registry publish and publish-best):
the architecture, its arguments and the input/output spec, turned into a core ConvertRequest;
and the lines that report a conversion."""
from __future__ import annotations

import argparse

from vtm_tui.settings import Settings


def add_convert_arguments(parser: argparse.ArgumentParser) -> None:
    """--arch, --arch-kwargs, --input-shape, --class-names, --mean, --std, --channel-order,
    --resize, --output-key, --output-kind, --allow-pickle, --trust-torchscript."""
    group = parser.add_argument_group(
        "model spec (--convert-standard)",
        "What rebuilding and feeding the network needs; unset values come from the file, the catalog "
        "task's model: block or the model's own outputs. A TorchScript file is converted only with "
        "--trust-torchscript: torch.jit.load has no safe mode and runs the file's code.")
    group.add_argument("--arch", metavar="MODULE_OR_FILE:CALLABLE",
                       help="the network: torchvision.models:resnet50, ./models.py:UNet (a file of your tree), "
                            "or vtm's SmallCNN / TinySegNet")
    group.add_argument("--arch-kwargs", metavar="JSON", help='its keyword arguments, e.g. \'{"num_classes": 5}\'')
    group.add_argument("--input-shape", metavar="C,H,W", help="one input sample, e.g. 3,224,224")
    group.add_argument("--class-names", metavar="A,B,...", help="one name per class, comma-separated")
    group.add_argument("--mean", metavar="M[,M,M]", help="per-channel mean of inputs scaled to [0, 1]")
    group.add_argument("--std", metavar="S[,S,S]", help="per-channel std of inputs scaled to [0, 1]")
    group.add_argument("--channel-order", choices=["RGB", "BGR"], help="of image inputs (default RGB)")
    group.add_argument("--resize", metavar="H,W", help="resize images to this, then centre-crop to the input")
    group.add_argument("--output-key", metavar="KEY",
                       help="the output to use when the model returns a dict (default 'out' or its only key)")
    group.add_argument("--output-kind", choices=["logits", "probabilities"], help="default logits")
    group.add_argument("--allow-pickle", action="store_true",
                       help="allow an MLflow model in the pickle format: loading it RUNS THE FILE'S CODE")
    group.add_argument("--trust-torchscript", action="store_true",
                       help="allow converting a TorchScript file: torch.jit.load RUNS THE FILE'S CODE")


def request_from_args(args, settings: Settings, task_type: str | None = None):
    """A core.standard ConvertRequest from the parsed options and a task type (a relative --arch
    file is looked up from vtm's working directory); SpecError (exit code 2) for a malformed
    value."""
    from vtm_tui.core.standard.spec import ConvertRequest, parse_floats, parse_ints, parse_json_object

    def opt(name):
        return getattr(args, name, None)

    return ConvertRequest(
        task_type=task_type, num_classes=opt("num_classes"), architecture=opt("arch"),
        arch_kwargs=parse_json_object(opt("arch_kwargs"), "--arch-kwargs"),
        input_shape=parse_ints(args.input_shape, "--input-shape", 3) if opt("input_shape") else None,
        class_names=[n.strip() for n in args.class_names.split(",")] if opt("class_names") else None,
        mean=parse_floats(args.mean, "--mean") if opt("mean") else None,
        std=parse_floats(args.std, "--std") if opt("std") else None,
        channel_order=opt("channel_order"),
        resize=parse_ints(args.resize, "--resize", 2) if opt("resize") else None,
        output_key=opt("output_key"), output_kind=opt("output_kind"),
        allow_pickle=bool(opt("allow_pickle")), trust_torchscript=bool(opt("trust_torchscript")),
        base_dir=str(settings.workdir))


def conversion_lines(manifest) -> list[str]:
    """What a publish reports of its standard program: file, source, recorded difference, spec."""
    conversion, spec = manifest.conversion, manifest.spec
    if not conversion or not spec:
        return []
    from vtm_tui.core.standard.spec import ModelSpec

    diff = conversion.get("max_abs_diff")
    lines = [f"standard program: {manifest.standard_name} (from {conversion.get('source')}): max abs difference "
             f"{diff:.3g} vs its source on batches of {', '.join(map(str, conversion.get('batches', [])))} "
             f"(< {conversion.get('tolerance'):g})",
             f"  spec: {ModelSpec.from_json(spec).describe()}"]
    return lines + [f"  note: {note}" for note in conversion.get("notes", [])]
