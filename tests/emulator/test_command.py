"""``manage.py qbo_emulator`` prints its base URL and serves until stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import django
    from django.conf import settings
    from django.core.management import call_command

    settings.configure(
        INSTALLED_APPS=["integrations"],
        QBO_CLIENT_ID="settings-client",
        QBO_CLIENT_SECRET="settings-secret",
        QBO_REDIRECT_URI="http://localhost:8000/cb",
        QBO_EMULATOR_URL="http://127.0.0.1:0",
    )
    django.setup()
    call_command("qbo_emulator", "--no-throttle", "--port", "0")
    """
)


def test_management_command_serves_with_defaults_from_settings():
    process = subprocess.Popen(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        base_url = process.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:"), process.stderr.read()
        status = requests.get(f"{base_url}/_emulator", timeout=5).json()
        assert status["config"]["client_id"] == "settings-client"
        assert status["config"]["redirect_uris"] == ["http://localhost:8000/cb"]
        assert status["config"]["throttle"] is False
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)
    assert process.returncode == 0
