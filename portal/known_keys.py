"""Key values published in Ledgerlink's repository, which settings refuse when DEBUG is off.

Tests, examples and docs need key-shaped values, and anyone who can read the repository knows
them: with one as SECRET_KEY anyone can forge sessions and signed links, and with one in
TOKEN_ENCRYPTION_KEYS anyone who gets the database can decrypt the QuickBooks tokens.

The values are listed here rather than found by scanning the checkout at start-up, since a
deployed tree need not hold the tests or docs. ``tests/portal/test_known_keys.py`` scans the
repository's tracked files and fails, naming the file, for any key-shaped value missing here.
Add such a value; never remove one, as past commits and old checkouts still publish it.
"""

from __future__ import annotations

import base64
import binascii

KNOWN_KEYS = frozenset(
    {
        # tests/settings.py (until test runs made fresh keys).
        "test-secret-key-that-is-long-enough-for-django-checks",
        "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=",
        # tests/portal/test_settings_and_health.py (until it made fresh keys).
        "a-long-enough-secret-key-for-this-start-up-test-0123",
        "k3Jq9vX2mB7pL4nR8sT1wY6zA0cE5gH3jK9mN2pQ7rS4uV8xZ1bD6fG0hJ3kL5n",
        # portal/envcheck.py: the SECRET_KEY example that start-up errors used to print.
        "3b1f0c9e6d0a4f5e8a7c2d1b9e8f7a6c5d4e3f2a1b0c9d8e",
        # tests/emulator/test_webhooks.py: a well-known HMAC-SHA256 vector, which is 32 bytes
        # of base64 and so a valid Fernet key.
        "97yD9DBThCSxMpjmqm+xQ+9NWaFJRhdZl0edvC0aPNg=",
    }
)


def fernet_key_bytes(value: str) -> bytes | None:
    """The 32 bytes a Fernet key decodes to, or None when `value` is not one.

    Decodes as Fernet itself does (``urlsafe_b64decode``), which also takes ``+`` and ``/`` and
    skips characters outside the alphabet: many spellings are the same key.
    """
    try:
        raw = base64.urlsafe_b64decode(value.strip().encode("ascii"))
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return None
    return raw if len(raw) == 32 else None


_KNOWN_KEY_BYTES = frozenset(filter(None, map(fernet_key_bytes, KNOWN_KEYS)))


def is_known_key(value: str) -> bool:
    """Whether `value` is a published key, compared by its bytes when it is a Fernet key."""
    value = value.strip()
    return value in KNOWN_KEYS or fernet_key_bytes(value) in _KNOWN_KEY_BYTES
