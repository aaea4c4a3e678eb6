"""Local predict benchmark: a Torch Standard v2 program (torch.export, loaded by vtm's local loader)
against the eager model it was converted from, in the same process, and the cost of converting.

    python benchmarks/local_predict.py                   # ResNet and UNet of tests/user_project, 64x64
    python benchmarks/local_predict.py --size 128 --batch 64 --repeat 9 --json

For each network (the test-only user project's ResNetClassifier and dict-output UNetSegmenter):

  eager           model(torch.from_numpy(batch)) -> numpy, under torch.no_grad (the baseline)
  program         LoadedProgram.predict(batch): what `vtm predict` runs for a batch of N inputs
                  (numpy in, the spec's output tensor selected, numpy out)
  predict path    serving.fallback.predict_program on a .npy file: reading the input, the
                  program, and summarising the outputs into a Prediction
  conversion      convert_to_standard: read the checkpoint, build the network, torch.export,
                  prove against the eager model (batches 2 and 3), save, load back, prove again;
                  of which `torch.export.export` alone
  load            load_program: the pickle-free check of the archive + torch.export.load

Ratios compare program (and predict path) with eager; median of interleaved repetitions after a
warm-up. Timings on a shared machine are noisy: the script prints the load average.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
MODELS = REPO / "tests" / "user_project" / "models.py"


def user_models():
    spec = importlib.util.spec_from_file_location("bench_user_models", MODELS)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def timed(call, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return times


def bench(arch: str, cls: str, kwargs: dict, size: int, batch: int, repeat: int, work: Path) -> dict:
    import numpy as np
    import torch

    from vtm_tui.core.serving.fallback import predict_program
    from vtm_tui.core.standard import ConvertRequest, convert_to_standard, load_program
    from vtm_tui.core.standard.exporter import export_model

    torch.manual_seed(0)
    model = getattr(user_models(), cls)(**kwargs).eval()
    torch.save({"state_dict": model.state_dict()}, work / f"{arch}.pth")
    request = ConvertRequest(architecture=f"{MODELS}:{cls}", arch_kwargs=kwargs, input_shape=(3, size, size))
    started = time.perf_counter()
    result = convert_to_standard(work / f"{arch}.pth", work / "model-standard.pt2", request)
    conversion = time.perf_counter() - started
    started = time.perf_counter()
    export_model(model, result.spec)
    export_only = time.perf_counter() - started
    started = time.perf_counter()
    program = load_program(work / "model-standard.pt2", device="cpu")
    load = time.perf_counter() - started

    x = np.random.default_rng(1).random((batch, 3, size, size), dtype=np.float32)
    np.save(work / "x.npy", x)
    key = result.spec.output_key

    def eager():
        with torch.no_grad():
            out = model(torch.from_numpy(x))
            return (out[key] if key else out).numpy()

    def run_program():
        return program.predict(x)

    def predict_path():
        return predict_program(program, str(work / "x.npy"))

    assert np.abs(eager() - run_program()).max() < 1e-5  # the same numbers, and a warm-up
    predict_path()
    samples = {"eager": [], "program": [], "predict path": []}
    for _ in range(repeat):  # interleaved, so load changes hit all three alike
        for name, call in (("eager", eager), ("program", run_program), ("predict path", predict_path)):
            samples[name] += timed(call, 1)
    median = {name: statistics.median(values) for name, values in samples.items()}
    return {"arch": arch, "batch": batch, "size": size, "params": sum(p.numel() for p in model.parameters()),
            "eager_s": median["eager"], "program_s": median["program"], "predict_path_s": median["predict path"],
            "program_ratio": median["program"] / median["eager"],
            "predict_path_ratio": median["predict path"] / median["eager"],
            "conversion_s": conversion, "export_s": export_only, "load_s": load,
            "max_abs_diff": result.conversion.max_abs_diff}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64, help="image side (divisible by 4)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    import torch

    networks = [("resnet", "ResNetClassifier", {"num_classes": 10, "width": 16, "blocks": (2, 2, 2)}),
                ("unet", "UNetSegmenter", {"num_classes": 4, "width": 16})]
    rows = []
    with tempfile.TemporaryDirectory(prefix="vtm-bench-predict-") as tmp:
        for arch, cls, kwargs in networks:
            rows.append(bench(arch, cls, kwargs, args.size, args.batch, args.repeat, Path(tmp)))
    load = os.getloadavg()
    if args.json:
        print(json.dumps({"rows": rows, "load": load, "torch": torch.__version__,
                          "threads": torch.get_num_threads()}, indent=2))
        return 0
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {load[0]:.1f} "
          f"{load[1]:.1f} {load[2]:.1f}; batch {args.batch} x 3x{args.size}x{args.size}, median of {args.repeat}")
    print(f"{'network':<8} {'params':>9} {'eager':>9} {'program':>9} {'ratio':>6} {'predict':>9} {'ratio':>6} "
          f"{'convert':>8} {'export':>7} {'load':>6}")
    for r in rows:
        print(f"{r['arch']:<8} {r['params']:>9,} {r['eager_s'] * 1e3:>7.1f}ms {r['program_s'] * 1e3:>7.1f}ms "
              f"{r['program_ratio']:>5.2f}x {r['predict_path_s'] * 1e3:>7.1f}ms {r['predict_path_ratio']:>5.2f}x "
              f"{r['conversion_s']:>7.2f}s {r['export_s']:>6.2f}s {r['load_s']:>5.2f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
