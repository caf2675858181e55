"""``python -m qbo_emulator``: the emulator without Django.

Same flags as ``manage.py qbo_emulator``, with built-in defaults instead of settings.
"""

from __future__ import annotations

import argparse
import sys

from .cli import add_arguments, serve_until_signalled, start_from_options


def main(argv: list[str] | None = None) -> int:
    """Parse flags, serve until SIGINT/SIGTERM, return the exit status."""
    parser = argparse.ArgumentParser(prog="qbo-emulator", description=__doc__)
    add_arguments(parser)
    options = vars(parser.parse_args(argv))
    try:
        emulator = start_from_options(options)
    except ValueError as exc:
        parser.error(str(exc))
    serve_until_signalled(emulator, lambda url: print(url, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
