"""Encryption of QuickBooks tokens at rest (Fernet; several keys so keys can be rotated)."""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class TokenDecryptionError(Exception):
    """A stored token cannot be decrypted with any configured key."""

    def __str__(self) -> str:
        return (
            "A stored QuickBooks token cannot be decrypted with TOKEN_ENCRYPTION_KEYS; the key "
            "that encrypted it was removed. Restore it, or reconnect QuickBooks."
        )


def _keys() -> list[str]:
    keys = settings.TOKEN_ENCRYPTION_KEYS
    # Settings parse the variable into a list; a plain "new,old" string (as in .env) is
    # accepted too rather than being iterated character by character.
    if isinstance(keys, str):
        keys = keys.split(",")
    return [key.strip() for key in keys if key and key.strip()]


def _fernet() -> MultiFernet:
    # Read at call time so a key rotation (or a test's override) takes effect at once.
    return MultiFernet([Fernet(key.encode()) for key in _keys()])


def encrypt(value: str) -> str:
    """Encrypt with the newest key; empty stays empty."""
    if not value:
        return ""
    return _fernet().encrypt(value.encode()).decode()


def decrypt(value: str) -> str:
    """Decrypt with any configured key; raises TokenDecryptionError (never the token)."""
    if not value:
        return ""
    try:
        return _fernet().decrypt(value.encode()).decode()
    except (InvalidToken, UnicodeError):
        raise TokenDecryptionError() from None


def rotate(value: str) -> str:
    """Re-encrypt with the newest key; raises TokenDecryptionError (never the token)."""
    if not value:
        return ""
    try:
        return _fernet().rotate(value.encode()).decode()
    except (InvalidToken, UnicodeError):
        raise TokenDecryptionError() from None
