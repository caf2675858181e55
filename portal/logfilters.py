"""Log filters and format: expected refusals in one line, unexpected errors with their
traceback, and each event's details (``extra=``) on its line."""

from __future__ import annotations

import logging

from django.core.exceptions import BadRequest, PermissionDenied, SuspiciousOperation

# Refusals the portal makes on purpose, for a request that may not or cannot be served: the
# reason is the news, not where in the code it was refused.
EXPECTED_REFUSALS = (PermissionDenied, BadRequest, SuspiciousOperation)


class ExpectedRefusals(logging.Filter):
    """A refused request (403 PermissionDenied, 400 BadRequest or SuspiciousOperation) is
    logged in one line, with the reason and who asked, instead of a traceback:

        WARNING django.request Forbidden (Permission denied): /admin/... - You may not sync
        invoices. (user alex)

    CSRF failures are already one line (``django.security.csrf``). Any other exception keeps
    its traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, EXPECTED_REFUSALS):
            return True
        text = record.getMessage()
        reason = str(exc)
        if reason and reason not in text:
            text = f"{text} - {reason}"
        user = getattr(getattr(record, "request", None), "user", None)
        if user is not None:
            who = user.get_username() if user.is_authenticated else "anonymous"
            text = f"{text} (user {who})"
        record.msg, record.args = text, ()
        record.exc_info = record.exc_text = None
        return True


# What every LogRecord has, and what Django's request logging adds: not an event's details.
_STANDARD = {*vars(logging.LogRecord("", 0, "", 0, "", (), None)), "message", "asctime"}
_NOT_DETAILS = _STANDARD | {"request", "status_code", "server_time"}


class EventFormatter(logging.Formatter):
    """The plain line, then the event's details given as ``extra=`` in ``key=value`` pairs
    (logfmt), so ``logger.info("qbo.limiter.wait", extra={"realm": ..., "wait": 0.4})``
    reads ``... INFO integrations.quickbooks.limiter qbo.limiter.wait realm=9130 wait=0.4``
    instead of the bare event name. Values with spaces or quotes are quoted."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # before any traceback
        text = super().formatMessage(record)
        details = [
            f"{key}={_logfmt(value)}"
            for key, value in vars(record).items()
            if key not in _NOT_DETAILS and not key.startswith("_")
        ]
        return " ".join([text, *details])


def _logfmt(value) -> str:
    text = f"{value:.3g}" if isinstance(value, float) else str(value)
    if not text or any(ch in text for ch in ' "=\n'):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text
