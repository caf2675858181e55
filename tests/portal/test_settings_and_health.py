import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import OperationalError
from django.urls import reverse

ROOT = Path(__file__).resolve().parents[2]
GOOD_ENV = {
    "SECRET_KEY": "a-long-enough-secret-key-for-this-start-up-test-0123",
    "TOKEN_ENCRYPTION_KEYS": "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=",
    "DATABASE_URL": "sqlite:///:memory:",
}


def _start(env_overrides: dict, *args: str) -> subprocess.CompletedProcess:
    # Only what a shell would have: the test run's own settings variables must not leak in.
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    env.update(GOOD_ENV)
    env.update(env_overrides)
    env = {k: v for k, v in env.items() if v is not None}
    env["DJANGO_SETTINGS_MODULE"] = "portal.settings"
    # A .env in the checkout must not fill in what the test removed.
    env["LEDGERLINK_ENV_FILE"] = os.devnull
    return subprocess.run(
        [sys.executable, "manage.py", *(args or ("check",))],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_good_settings_start():
    result = _start({})
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"SECRET_KEY": None},
            "Setting SECRET_KEY is missing. Set it in the environment or in .env, "
            "for example: SECRET_KEY=",
        ),
        ({"DEBUG": "maybe"}, "Setting DEBUG is 'maybe', which is not true or false"),
        ({"DATABASE_URL": "mysqll://x/y"}, "Setting DATABASE_URL has the unknown scheme 'mysqll'"),
        (
            {"TOKEN_ENCRYPTION_KEYS": "not-a-key"},
            "Setting TOKEN_ENCRYPTION_KEYS has a malformed key in position 1",
        ),
        ({"TOKEN_ENCRYPTION_KEYS": None}, "Setting TOKEN_ENCRYPTION_KEYS is missing"),
        (
            {"QBO_ENVIRONMENT": "staging"},
            "Setting QBO_ENVIRONMENT is 'staging'; it must be one of emulator, sandbox, production",
        ),
        (
            {"REDIS_URL": "localhost:6379"},
            "Setting REDIS_URL is 'localhost:6379', which is not a redis or rediss or unix URL",
        ),
        ({"QBO_ENVIRONMENT": "production"}, "Setting QBO_CLIENT_ID must be your Intuit app's key"),
    ],
)
def test_a_bad_setting_stops_start_up_naming_the_variable(overrides, message):
    result = _start(overrides)
    assert result.returncode == 2
    assert result.stderr.startswith("Ledgerlink cannot start: ")
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_check_deploy_with_production_settings_reports_nothing_serious():
    result = _start(
        {
            "DEBUG": "false",
            "ALLOWED_HOSTS": "ledgerlink.example.com",
            "SECRET_KEY": "k3Jq9vX2mB7pL4nR8sT1wY6zA0cE5gH3jK9mN2pQ7rS4uV8xZ1bD6fG0hJ3kL5n",
            "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "QBO_ENVIRONMENT": "production",
            "QBO_CLIENT_ID": "ABcdEF123",
            "QBO_CLIENT_SECRET": "s3cr3t",
            "QBO_WEBHOOK_VERIFIER_TOKEN": "verifier-from-intuit",
            "QBO_REDIRECT_URI": "https://ledgerlink.example.com/integrations/quickbooks/callback/",
        },
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


@pytest.mark.django_db
def test_healthz_reports_database_and_task_queue(client):
    response = client.get(reverse("healthz"))
    assert response.status_code == 200
    body = response.json()
    assert body["database"]["status"] == "ok"
    assert body["task_queue"]["broker"] in {"orm", "redis"}
    assert body["task_queue"]["status"] in {"ok", "no workers"}
    assert "queued" in body["task_queue"]


@pytest.mark.django_db
def test_healthz_answers_503_when_the_database_is_down(client, monkeypatch):
    from django.db.backends.base.base import BaseDatabaseWrapper

    def broken_cursor(self, *args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(BaseDatabaseWrapper, "cursor", broken_cursor)
    response = client.get(reverse("healthz"))
    assert response.status_code == 503
    assert response.json()["database"] == {"status": "error", "error": "OperationalError"}
