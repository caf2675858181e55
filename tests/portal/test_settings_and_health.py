import os
import re
import secrets
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.db import OperationalError
from django.urls import reverse

ROOT = Path(__file__).resolve().parents[2]
# Fresh keys: settings refuse, with DEBUG off, any key written in the repository.
GOOD_ENV = {
    "SECRET_KEY": secrets.token_urlsafe(50),
    "TOKEN_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
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


def test_makemigrations_runs_on_a_checkout_with_no_keys_and_servers_still_refuse():
    """A fresh clone has no .env: the migration check (which signs, serves and decrypts
    nothing) runs all the same, while anything that would use the keys still refuses."""
    no_keys = {"SECRET_KEY": None, "TOKEN_ENCRYPTION_KEYS": None}

    checked = _start(no_keys, "makemigrations", "--check", "--dry-run")
    assert checked.returncode == 0, checked.stderr
    assert "No changes detected" in checked.stdout

    for command in ("check", "runserver", "qcluster", "createsuperuser"):
        refused = _start(no_keys, command)
        assert refused.returncode == 2, (command, refused.stderr)
        assert "Setting SECRET_KEY is missing" in refused.stderr, command
    # A key that is set is checked as ever.
    malformed = _start({"TOKEN_ENCRYPTION_KEYS": "not-a-key"}, "makemigrations", "--check")
    assert malformed.returncode == 2
    assert "TOKEN_ENCRYPTION_KEYS has a malformed key" in malformed.stderr


# What tests/settings.py set before test runs made fresh keys.
OLD_TEST_SECRET_KEY = "test-secret-key-that-is-long-enough-for-django-checks"
OLD_TEST_TOKEN_KEY = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4="


def _key_from_the_message(stderr: str) -> str:
    """Run the command the start-up error shows for a fresh key, as an operator would."""
    [command] = re.findall(r"<the output of: (python -c .+?)>", stderr)
    argv = shlex.split(command)
    done = subprocess.run(
        [sys.executable, *argv[1:]], capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout.strip()


def test_debug_off_refuses_a_secret_key_from_the_repository_and_says_how_to_make_one():
    result = _start({"DEBUG": "false", "SECRET_KEY": OLD_TEST_SECRET_KEY})

    assert result.returncode == 2
    assert result.stderr.startswith(
        "Ledgerlink cannot start: Setting SECRET_KEY is a key published in Ledgerlink's "
        "repository (its tests, examples or docs), so anyone can forge sessions and signed links "
        "with it. Replace it with a fresh key. Set it in the environment or in .env, for "
        'example: SECRET_KEY=<the output of: python -c "import secrets; '
        'print(secrets.token_urlsafe(50))">'
    )
    assert OLD_TEST_SECRET_KEY not in result.stderr
    fresh = _key_from_the_message(result.stderr)
    assert len(fresh) >= 50
    result = _start({"DEBUG": "false", "SECRET_KEY": fresh})
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("position", [1, 2])
def test_debug_off_refuses_an_encryption_key_from_the_repository_in_any_position(position):
    # The settings-test key in its other base64 spelling: Fernet reads it as the same key.
    known = OLD_TEST_TOKEN_KEY.replace("-", "+").replace("_", "/")
    fresh = Fernet.generate_key().decode()
    keys = [known, fresh] if position == 1 else [fresh, known]

    result = _start({"DEBUG": "false", "TOKEN_ENCRYPTION_KEYS": ",".join(keys)})

    assert result.returncode == 2
    assert result.stderr.startswith(
        "Ledgerlink cannot start: Setting TOKEN_ENCRYPTION_KEYS has a key in position "
        f"{position} that is published in Ledgerlink's repository (its tests, examples or "
        "docs), so anyone holding the database can decrypt the QuickBooks tokens. Replace it "
        "with a fresh key; to keep the tokens stored under it, put the fresh key first, run "
        "`DEBUG=true python manage.py qbo_reencrypt_tokens` once, then remove the published "
        "key. Set it in the environment or in .env, for example: TOKEN_ENCRYPTION_KEYS=<the "
        'output of: python -c "from cryptography.fernet import Fernet; '
        'print(Fernet.generate_key().decode())">[,<older key>]'
    )
    assert known not in result.stderr
    rotated = f"{_key_from_the_message(result.stderr)},{fresh}"
    result = _start({"DEBUG": "false", "TOKEN_ENCRYPTION_KEYS": rotated})
    assert result.returncode == 0, result.stderr


def test_debug_on_accepts_keys_from_the_repository():
    # A developer's machine, and the one-off re-encryption the refusal recommends.
    result = _start(
        {
            "DEBUG": "true",
            "SECRET_KEY": OLD_TEST_SECRET_KEY,
            "TOKEN_ENCRYPTION_KEYS": f"{Fernet.generate_key().decode()},{OLD_TEST_TOKEN_KEY}",
        }
    )
    assert result.returncode == 0, result.stderr


def test_check_deploy_with_production_settings_reports_nothing_serious():
    result = _start(
        {
            "DEBUG": "false",
            "ALLOWED_HOSTS": "ledgerlink.example.com",
            "SECRET_KEY": secrets.token_urlsafe(50),
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
