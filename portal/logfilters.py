"""Log filters: expected refusals in one line, unexpected errors with their traceback."""

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
