"""Test settings: the real settings module, with the variables a test run needs defaulted."""

import os
import secrets

from cryptography.fernet import Fernet

# Fresh keys per run: with DEBUG off, as here, settings refuse any key written in the repository.
# Set in os.environ, so the worker processes a test starts share them.
os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
os.environ.setdefault("TOKEN_ENCRYPTION_KEYS", Fernet.generate_key().decode())
os.environ.setdefault("DEBUG", "false")
os.environ.setdefault("SECURE_HTTPS", "false")

from portal.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# One process in tests: a local-memory cache is shared by everything the test touches and is
# cleared between tests (rate limits would otherwise leak from one test into the next).
if not REDIS_URL:  # noqa: F405
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
