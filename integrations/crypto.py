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


def _fernet() -> MultiFernet:
    return MultiFernet([Fernet(key.encode()) for key in settings.TOKEN_ENCRYPTION_KEYS])


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
    except InvalidToken:
        raise TokenDecryptionError() from None


def rotate(value: str) -> str:
    """Re-encrypt with the newest key."""
    if not value:
        return ""
    try:
        return _fernet().rotate(value.encode()).decode()
    except InvalidToken:
        raise TokenDecryptionError() from None
