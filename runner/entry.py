"""Console entry point: ``validate`` skips the CLI framework's import (see validate_cmd), and
the one-shot commands skip the interpreter's teardown."""

from __future__ import annotations

import sys

# Commands that print a result and exit, holding nothing that needs closing: the plan's nodes
# and the night's events (hundreds of thousands of objects for a 10,000-step plan) are not
# collected, neither by the cyclic collector while they live nor by the interpreter's
# teardown after the result is printed — 0.5 s of a 4 s estimate.
_ONE_SHOT = {"estimate"}


def _exit_now(code: int) -> None:
    import os

    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main() -> None:
    args = sys.argv[1:]
    if args[:1] == ["validate"] and not {"--help", "-h"} & set(args):
        from runner.validate_cmd import main as validate_main

        _exit_now(validate_main(args[1:]))
    from runner.cli import main as cli_main

    if args[:1] and args[0] in _ONE_SHOT:
        import gc

        gc.disable()
        try:
            cli_main()
        except SystemExit as exc:
            code = exc.code
            if code is not None and not isinstance(code, int):
                print(code, file=sys.stderr)
                code = 1
            _exit_now(code or 0)
        _exit_now(0)
    cli_main()
