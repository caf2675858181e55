"""Ledgerlink settings, all read from the environment (and an optional ``.env`` file).

``.env.example`` lists every variable. A missing or malformed required variable stops start-up
with a message naming it (see ``portal.envcheck``).
"""

from __future__ import annotations

from pathlib import Path

import environ

from portal.envcheck import Settings, fail, refuse_known_keys

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# LEDGERLINK_ENV_FILE points elsewhere (or at /dev/null to read none).
_env_file = Path(env.str("LEDGERLINK_ENV_FILE", default=str(BASE_DIR / ".env")))
if _env_file.is_file():
    environ.Env.read_env(str(_env_file), overwrite=False)
config = Settings(env)

# --- Core -------------------------------------------------------------------------------------
SECRET_KEY = config.secret_key("SECRET_KEY")
if len(SECRET_KEY) < 32:
    raise fail("SECRET_KEY", "is shorter than 32 characters")
DEBUG = config.bool("DEBUG", False)
if not DEBUG:
    # Keys from the repository's tests and examples are public (portal.known_keys).
    refuse_known_keys("SECRET_KEY", [SECRET_KEY])
ALLOWED_HOSTS = config.list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = config.list("CSRF_TRUSTED_ORIGINS", [])
for _origin in CSRF_TRUSTED_ORIGINS:
    if not _origin.startswith(("http://", "https://")):
        raise fail("CSRF_TRUSTED_ORIGINS", f"has {_origin!r}, which lacks http:// or https://")

INSTALLED_APPS = [
    "portal.apps.LedgerlinkAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "django_q",
    "simple_history",
    "import_export",
    "portal.apps.PortalConfig",
    "integrations.apps.IntegrationsConfig",
    "sync.apps.SyncConfig",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "portal.middleware.StaffMFARequiredMiddleware",
    # Changes staff make carry their name, and one request's changes read as one change.
    "simple_history.middleware.HistoryRequestMiddleware",
    "portal.middleware.change_unit_middleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database, cache, task queue --------------------------------------------------------------
DATABASES = {"default": config.database("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Worker and web server share the file: wait for locks instead of failing at once, and
    # take the write lock at BEGIN so two writers never deadlock on a lock upgrade.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    )
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", config.int("CONN_MAX_AGE", 60))
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = config.url("REDIS_URL", "", schemes=("redis", "rediss", "unix"))
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
        }
    }
else:
    # Shared between the web server and the worker processes (rate limits, the per-realm
    # request limiter), which a per-process LocMemCache could not be.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "ledgerlink_cache",
        }
    }

Q_CLUSTER = {
    "name": "ledgerlink",
    "workers": config.int("Q_WORKERS", 2, minimum=1),
    # A task may take this long; `retry` is django-q2's redelivery timeout and must stay above it.
    "timeout": 300,
    "retry": 360,
    "max_attempts": 3,
    "catch_up": False,
    # Tasks a cluster takes from the queue ahead of its workers (django-q2's default is
    # workers squared, and its pusher holds one more): kept at one, so a machine whose
    # workers are busy leaves the next companies' syncs to the machines that are idle.
    "queue_limit": 1,
    "save_limit": 500,
    "label": "Task queue",
    # Off for a worker that should only run queued tasks (the browser tests' worker).
    "scheduler": config.bool("Q_SCHEDULER", True),
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"
    Q_CLUSTER["poll"] = 1

# --- Authentication (django-allauth, staff only) ----------------------------------------------
AUTH_USER_MODEL = "portal.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "admin:index"
ACCOUNT_ADAPTER = "portal.auth.StaffAccountAdapter"
ACCOUNT_LOGIN_METHODS = {"username", "email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "username*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = "none"
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False
ACCOUNT_SESSION_REMEMBER = None
ACCOUNT_PRESERVE_USERNAME_CASING = False
ACCOUNT_RATE_LIMITS = {
    # Failed logins: at most 5 per 5 minutes for one account, 20 per minute from one address.
    "login_failed": "20/m/ip,5/5m/key",
    "login": "30/m/ip",
    "reset_password": "20/m/ip,5/m/key",
}
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[Ledgerlink] "
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = "Ledgerlink"
# Every staff member must set up two-factor before any admin page (allauth has no such switch).
STAFF_REQUIRE_MFA = config.bool("STAFF_REQUIRE_MFA", False)

EMAIL_BACKEND = config.str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = config.str("DEFAULT_FROM_EMAIL", "Ledgerlink <ledgerlink@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
EMAIL_HOST = config.str("EMAIL_HOST", "localhost")
EMAIL_PORT = config.int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = config.str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = config.str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = config.bool("EMAIL_USE_TLS", False)

# --- Internationalisation, static files --------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = config.str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
DEFAULT_CURRENCY = config.str("DEFAULT_CURRENCY", "USD").upper()
if len(DEFAULT_CURRENCY) != 3 or not DEFAULT_CURRENCY.isalpha():
    raise fail("DEFAULT_CURRENCY", f"is {DEFAULT_CURRENCY!r}, not a 3-letter ISO code like USD")

# --- Security (production values when DEBUG is off) -------------------------------------------
SECURE_HTTPS = config.bool("SECURE_HTTPS", not DEBUG)
SESSION_COOKIE_SECURE = SECURE_HTTPS
CSRF_COOKIE_SECURE = SECURE_HTTPS
SECURE_SSL_REDIRECT = config.bool("SECURE_SSL_REDIRECT", SECURE_HTTPS)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_HSTS_SECONDS = config.int("SECURE_HSTS_SECONDS", 31536000 if SECURE_HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = SECURE_HSTS_SECONDS > 0
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if config.bool("BEHIND_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"

# The `demo` login's password, kept across `make demo` starts (load_demo_data); demo only.
DEMO_PASSWORD = config.str("DEMO_PASSWORD", "")

# --- Admin: change history, CSV exports ------------------------------------------------------
# The History page shows who changed what (portal.history); it never puts an old version back.
SIMPLE_HISTORY_REVERT_DISABLED = True
# Lists export what they show as CSV to those who may view the records (export only).
IMPORT_EXPORT_EXPORT_PERMISSION_CODE = "view"

# --- QuickBooks Online --------------------------------------------------------------------------
QBO_ENVIRONMENT = config.choice(
    "QBO_ENVIRONMENT", "emulator", ("emulator", "sandbox", "production")
)
QBO_CLIENT_ID = config.str("QBO_CLIENT_ID", "ledgerlink-demo-client")
QBO_CLIENT_SECRET = config.str("QBO_CLIENT_SECRET", "ledgerlink-demo-secret")
QBO_REDIRECT_URI = config.url(
    "QBO_REDIRECT_URI",
    "http://127.0.0.1:8000/integrations/quickbooks/callback/",
    schemes=("http", "https"),
)
QBO_WEBHOOK_VERIFIER_TOKEN = config.str("QBO_WEBHOOK_VERIFIER_TOKEN", "ledgerlink-demo-verifier")
QBO_EMULATOR_URL = config.url("QBO_EMULATOR_URL", "http://127.0.0.1:8765", schemes=("http",))
QBO_EMULATOR_WEBHOOK_URL = config.url(
    "QBO_EMULATOR_WEBHOOK_URL",
    "http://127.0.0.1:8000/integrations/quickbooks/webhooks/",
    schemes=("http", "https"),
)
QBO_MINOR_VERSION = config.int("QBO_MINOR_VERSION", 75, minimum=75)
# Batch writes a push keeps in flight at once per company (QuickBooks allows 10 requests at
# once; the limiter holds every worker to 8 together).
QBO_WRITES_IN_FLIGHT = config.int("QBO_WRITES_IN_FLIGHT", 4, minimum=1)
if QBO_ENVIRONMENT != "emulator":
    for _name in ("QBO_CLIENT_ID", "QBO_CLIENT_SECRET", "QBO_WEBHOOK_VERIFIER_TOKEN"):
        if globals()[_name].startswith("ledgerlink-demo"):
            raise fail(
                _name, f"must be your Intuit app's key when QBO_ENVIRONMENT={QBO_ENVIRONMENT}"
            )
# Fernet keys for tokens at rest, newest first; older keys still decrypt during a rotation.
TOKEN_ENCRYPTION_KEYS = config.fernet_keys("TOKEN_ENCRYPTION_KEYS")
if not DEBUG:
    refuse_known_keys("TOKEN_ENCRYPTION_KEYS", TOKEN_ENCRYPTION_KEYS)
SYNC_SCHEDULE_MINUTES = config.int("SYNC_SCHEDULE_MINUTES", 15, minimum=1)
# A run holds its company's lock for this long and renews it as it goes; a worker that dies
# frees it within this time.
SYNC_LOCK_LEASE_SECONDS = config.int("SYNC_LOCK_LEASE_SECONDS", 300, minimum=30)

# --- Logging -------------------------------------------------------------------------------------
LOG_LEVEL = config.choice("LOG_LEVEL", "info", ("debug", "info", "warning", "error")).upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {
            "()": "portal.logfilters.EventFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
        }
    },
    # Refusals the portal means (403, 400) in one line; unexpected errors with a traceback.
    "filters": {"expected_refusals": {"()": "portal.logfilters.ExpectedRefusals"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["expected_refusals"],
        }
    },
    "root": {"handlers": ["console"], "level": "WARNING"},
    # The app's loggers hand records to the root's handler (so test capture sees them too).
    "loggers": {
        **{
            name: {"level": LOG_LEVEL}
            for name in ("portal", "integrations", "sync", "qbo_emulator.webhooks")
        },
        # Filtered where they are logged too, so every handler gets them in one line.
        "django.request": {"filters": ["expected_refusals"]},
    },
}
