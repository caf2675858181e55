"""Test settings: the real settings module, with the variables a test run needs defaulted."""

import os

os.environ.setdefault("SECRET_KEY", "test-secret-key-that-is-long-enough-for-django-checks")
os.environ.setdefault("TOKEN_ENCRYPTION_KEYS", "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=")
os.environ.setdefault("DEBUG", "false")
os.environ.setdefault("SECURE_HTTPS", "false")

from portal.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# One process in tests: a local-memory cache is shared by everything the test touches and is
# cleared between tests (rate limits would otherwise leak from one test into the next).
if not REDIS_URL:  # noqa: F405
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
