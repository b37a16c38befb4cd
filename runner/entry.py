"""Console entry point: ``validate`` skips the CLI framework's import (see validate_cmd)."""

from __future__ import annotations

import sys


def main() -> None:
    args = sys.argv[1:]
    if args[:1] == ["validate"] and not {"--help", "-h"} & set(args):
        import os

        from runner.validate_cmd import main as validate_main

        code = validate_main(args[1:])
        # Nothing to clean up: skip the interpreter's teardown of thousands of pydantic and
        # typing objects, which costs as much as validating a typical plan.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    from runner.cli import main as cli_main

    cli_main()
