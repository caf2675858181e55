"""Reading settings from the environment, failing early with a message that names the variable.

Every problem raises ``ImproperlyConfigured`` whose text names the variable, says what is wrong
and shows a valid example, so an operator can fix ``.env`` without reading code.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from urllib.parse import urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured

from portal.known_keys import is_known_key

# Shell commands that print a fresh key. Plain Python, not manage.py: settings refuse to load
# until the key is set, so no management command that needs it could run.
SECRET_KEY_COMMAND = 'python -c "import secrets; print(secrets.token_urlsafe(50))"'
TOKEN_KEY_COMMAND = (
    'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
)

# Management commands that read the models and migrations only: they sign, serve, encrypt and
# decrypt nothing, so they run on a checkout with no keys yet (a fresh clone, CI's migration
# check). ``check`` is not one of them: it also checks the deployment's settings.
SCHEMA_COMMANDS = frozenset({"makemigrations", "showmigrations", "sqlmigrate"})
_stand_in_keys = False


def allow_stand_in_keys(argv: list[str]) -> None:
    """Called by ``manage.py`` with its arguments, before the settings load: for a command of
    ``SCHEMA_COMMANDS``, a missing ``SECRET_KEY`` or ``TOKEN_ENCRYPTION_KEYS`` becomes a random
    key for this process alone (never written anywhere, gone when the command ends). Keys that
    are set are checked as ever. Not an environment variable, so no server or worker can be
    started this way."""
    global _stand_in_keys
    _stand_in_keys = len(argv) > 1 and argv[1] in SCHEMA_COMMANDS


EXAMPLES = {
    # A command, never a literal key: whatever is printed here is published.
    "SECRET_KEY": f"SECRET_KEY=<the output of: {SECRET_KEY_COMMAND}>",
    "DEBUG": "DEBUG=false",
    "ALLOWED_HOSTS": "ALLOWED_HOSTS=ledgerlink.example.com,localhost",
    "CSRF_TRUSTED_ORIGINS": "CSRF_TRUSTED_ORIGINS=https://ledgerlink.example.com",
    "DATABASE_URL": "DATABASE_URL=postgres://ledgerlink:secret@127.0.0.1:5432/ledgerlink "
    "(or sqlite:///db.sqlite3)",
    "REDIS_URL": "REDIS_URL=redis://127.0.0.1:6379/0",
    "TOKEN_ENCRYPTION_KEYS": f"TOKEN_ENCRYPTION_KEYS=<the output of: {TOKEN_KEY_COMMAND}>"
    "[,<older key>]",
    "QBO_ENVIRONMENT": "QBO_ENVIRONMENT=emulator (or sandbox, production)",
    "QBO_EMULATOR_URL": "QBO_EMULATOR_URL=http://127.0.0.1:8765",
    "QBO_REDIRECT_URI": "QBO_REDIRECT_URI=http://127.0.0.1:8000/integrations/quickbooks/callback/",
    "STAFF_REQUIRE_MFA": "STAFF_REQUIRE_MFA=true",
    "SYNC_SCHEDULE_MINUTES": "SYNC_SCHEDULE_MINUTES=15",
    "SYNC_LOCK_LEASE_SECONDS": "SYNC_LOCK_LEASE_SECONDS=300",
}


def fail(variable: str, problem: str) -> ImproperlyConfigured:
    """Build the start-up error for ``variable``; the caller raises it."""
    example = EXAMPLES.get(variable, f"{variable}=...")
    return ImproperlyConfigured(
        f"Setting {variable} {problem}. Set it in the environment or in .env, for example: "
        f"{example}"
    )


_KNOWN_KEY_PROBLEMS = {
    "SECRET_KEY": "is a key {published}, so anyone can forge sessions and signed links with it. "
    "Replace it with a fresh key",
    "TOKEN_ENCRYPTION_KEYS": "has a key in position {position} that is {published}, so anyone "
    "holding the database can decrypt the QuickBooks tokens. Replace it with a fresh key; to "
    "keep the tokens stored under it, put the fresh key first, run "
    "`DEBUG=true python manage.py qbo_reencrypt_tokens` once, then remove the published key",
}


def refuse_known_keys(name: str, keys: list[str]) -> None:
    """Raise ``fail()`` for SECRET_KEY or TOKEN_ENCRYPTION_KEYS when one of `keys` is published.

    Published keys are those in ``portal.known_keys``. Settings call this only with DEBUG off,
    which is also why the advice for TOKEN_ENCRYPTION_KEYS can run ``qbo_reencrypt_tokens``
    with DEBUG on.
    """
    for position, key in enumerate(keys, start=1):
        if is_known_key(key):
            published = "published in Ledgerlink's repository (its tests, examples or docs)"
            raise fail(
                name, _KNOWN_KEY_PROBLEMS[name].format(position=position, published=published)
            )


class Settings:
    """Typed accessors over one ``environ.Env`` that turn every failure into ``fail()``."""

    def __init__(self, env: environ.Env):
        self.env = env

    def secret_key(self, name: str) -> str:
        """A required secret (``allow_stand_in_keys`` may stand in for a missing one)."""
        value = self.env.str(name, default="").strip()
        if not value and _stand_in_keys:
            return secrets.token_urlsafe(50)
        if not value:
            raise fail(name, "is missing")
        return value

    def str(self, name: str, default: str) -> str:
        return self.env.str(name, default=default).strip()

    def bool(self, name: str, default: bool) -> bool:
        raw = self.env.str(name, default="").strip().lower()
        if raw == "":
            return default
        if raw in {"1", "true", "yes", "on"}:
            return True
        if raw in {"0", "false", "no", "off"}:
            return False
        raise fail(name, f"is {raw!r}, which is not true or false")

    def int(self, name: str, default: int, *, minimum: int = 0) -> int:
        raw = self.env.str(name, default="").strip()
        if raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise fail(name, f"is {raw!r}, which is not a whole number") from None
        if value < minimum:
            raise fail(name, f"is {value}, which is below the minimum of {minimum}")
        return value

    def list(self, name: str, default: list[str]) -> list[str]:
        raw = self.env.str(name, default="")
        if raw.strip() == "":
            return list(default)
        return [part.strip() for part in raw.split(",") if part.strip()]

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.str(name, default).lower()
        if value not in choices:
            raise fail(name, f"is {value!r}; it must be one of {', '.join(choices)}")
        return value

    def url(self, name: str, default: str, *, schemes: tuple[str, ...]) -> str:
        value = self.str(name, default)
        if not value:
            return value
        parts = urlsplit(value)
        if parts.scheme not in schemes or not parts.netloc:
            raise fail(name, f"is {value!r}, which is not a {' or '.join(schemes)} URL")
        return value

    def database(self, name: str, default: str) -> dict:
        raw = self.str(name, default)
        scheme = urlsplit(raw).scheme
        if scheme not in environ.Env.DB_SCHEMES:
            raise fail(name, f"has the unknown scheme {scheme!r}")
        try:
            config = environ.Env.db_url_config(raw)
        except Exception as exc:  # django-environ raises several types for bad URLs
            raise fail(name, f"could not be read ({exc})") from None
        if not config.get("NAME"):
            raise fail(name, "names no database")
        return config

    def fernet_keys(self, name: str) -> list[str]:
        keys = self.list(name, [])
        if not keys and _stand_in_keys:
            return [base64.urlsafe_b64encode(secrets.token_bytes(32)).decode("ascii")]
        if not keys:
            raise fail(name, "is missing")
        for position, key in enumerate(keys, start=1):
            try:
                valid = len(base64.urlsafe_b64decode(key.encode("ascii"))) == 32
            except (binascii.Error, ValueError, UnicodeEncodeError):
                valid = False
            if not valid:
                raise fail(
                    name,
                    f"has a malformed key in position {position} (a Fernet key is 32 "
                    "url-safe base64-encoded bytes)",
                )
        return keys
