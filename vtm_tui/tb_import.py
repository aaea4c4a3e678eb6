"""`python -m vtm_tui.tb_import --tensorboard-dir D [--tracking-uri U] [--experiment-name E]
[--run-name R]`: the original migration command, over vtm's core (same as `vtm import-tb`).
Exit codes: 0 all imported, 1 some records or batches failed, 2 usage errors."""
from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    from vtm_tui.commands import run_reporting_user_errors
    from vtm_tui.commands.tensorboard import add_arguments, cmd_import_tb
    from vtm_tui.settings import Settings

    parser = argparse.ArgumentParser(
        prog="python -m vtm_tui.tb_import",
        description="Import TensorBoard event logs into MLflow (one run per event directory).")
    add_arguments(parser)
    args = parser.parse_args(argv)
    return run_reporting_user_errors(parser.prog, lambda: cmd_import_tb(args, Settings.load()))


if __name__ == "__main__":
    sys.exit(main())
