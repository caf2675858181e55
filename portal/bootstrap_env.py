"""Write a ``.env`` for a local demo with fresh secrets, keeping any that already exist.

Run before Django starts (``python -m portal.bootstrap_env``), since settings refuse to load
without SECRET_KEY and TOKEN_ENCRYPTION_KEYS.
"""

from __future__ import annotations

import base64
import secrets
import sys
from pathlib import Path

ENV_FILE = Path(__file__).resolve().parent.parent / ".env"


def _existing(path: Path) -> dict[str, str]:
    values = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if "=" in line and not line.lstrip().startswith("#"):
                key, value = line.split("=", 1)
                values[key.strip()] = value.strip()
    return values


def main(path: Path = ENV_FILE) -> int:
    values = _existing(path)
    additions = {}
    if not values.get("SECRET_KEY"):
        additions["SECRET_KEY"] = secrets.token_urlsafe(50)
    if not values.get("TOKEN_ENCRYPTION_KEYS"):
        additions["TOKEN_ENCRYPTION_KEYS"] = base64.urlsafe_b64encode(
            secrets.token_bytes(32)
        ).decode()
    if not values.get("DEBUG"):
        additions["DEBUG"] = "true"
    if not values.get("DEMO_PASSWORD"):
        # The demo login's password, the same on every `make demo` (load_demo_data).
        additions["DEMO_PASSWORD"] = secrets.token_urlsafe(12)
    if additions:
        with path.open("a") as handle:
            if path.stat().st_size and not path.read_text().endswith("\n"):
                handle.write("\n")
            handle.write("# Written by `make demo`; keep this file out of version control.\n")
            for key, value in additions.items():
                handle.write(f"{key}={value}\n")
        print(f"Wrote {', '.join(additions)} to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
