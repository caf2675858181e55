#!/usr/bin/env python
"""Django's command-line utility for Ledgerlink."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    from portal.envcheck import allow_stand_in_keys

    allow_stand_in_keys(sys.argv)  # makemigrations and the like need no keys

    try:
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as exc:
        # A bad setting is an operator's mistake, not a crash: one clear line, no traceback.
        sys.stderr.write(f"Ledgerlink cannot start: {exc}\n")
        sys.exit(2)


if __name__ == "__main__":
    main()
