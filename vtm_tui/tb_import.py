"""`python -m vtm_tui.tb_import --tensorboard-dir D [--tracking-uri U] [--experiment-name E]
[--run-name R]`: the original migration command, over vtm's core (same as `vtm import-tb`).
Exit codes: 0 all imported, 1 some records or batches failed, 2 usage errors."""
from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    from vtm_tui.commands import EXIT_USAGE
    from vtm_tui.commands.tb_import import add_arguments, cmd_import_tb
    from vtm_tui.core.errors import user_error_types
    from vtm_tui.settings import Settings

    parser = argparse.ArgumentParser(
        prog="python -m vtm_tui.tb_import",
        description="Import TensorBoard event logs into MLflow (one run per event directory).")
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return cmd_import_tb(args, Settings.load())
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if not isinstance(exc, user_error_types()):
            raise
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
