"""Intuit's webhook endpoint: parse the request, call one service, answer in JSON."""

from __future__ import annotations

import logging

from django.conf import settings
from django.conf.global_settings import DATA_UPLOAD_MAX_MEMORY_SIZE as DJANGO_DEFAULT_LIMIT
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from integrations import webhooks

logger = logging.getLogger(__name__)

# Bytes read at a time, so a refused body costs at most the limit plus one chunk.
READ_CHUNK = 64 * 1024


def webhook_body_limit() -> int:
    """The largest webhook body accepted, in bytes: Django's DATA_UPLOAD_MAX_MEMORY_SIZE.

    The receiver must hold the whole body in memory to check its HMAC and parse it, which is
    what that setting bounds for every other view (2.5 MB unless set). Intuit's notifications
    name the changed entities without their contents, a few hundred bytes each, so real
    deliveries stay far below it; one setting then governs every body Ledgerlink buffers.
    When it is None (Django's "no limit"), Django's default applies here all the same: this
    endpoint is open to anyone, and buffering an unbounded body would let anyone exhaust memory.
    """
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return DJANGO_DEFAULT_LIMIT if limit is None else limit


def read_body(request: HttpRequest, *, limit: int) -> bytes:
    """Read the raw request body in chunks of READ_CHUNK bytes, up to `limit` bytes.

    A Content-Length above `limit` is refused before any byte is read. A body without one
    (sent chunked) is read until it ends or passes `limit`, stopping one byte past it. Under
    WSGI, Django's request stream yields nothing without a Content-Length, so such a body is
    read from the server's input when the server ends that stream with the body
    (``wsgi.input_terminated``, which gunicorn sets); otherwise it reads as empty, as before.

    Raises webhooks.PayloadTooLarge.
    """
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or "")
    except ValueError:
        declared = None
    if declared is not None and declared > limit:
        raise webhooks.PayloadTooLarge(limit)
    stream = request
    if declared is None and request.META.get("wsgi.input_terminated"):
        stream = request.META["wsgi.input"]
    chunks = []
    size = 0
    while True:
        chunk = stream.read(min(READ_CHUNK, limit + 1 - size))
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise webhooks.PayloadTooLarge(limit)
        chunks.append(chunk)


@csrf_exempt  # Intuit cannot send a CSRF token; the HMAC signature authenticates instead.
@require_POST
def quickbooks_webhook(request):
    """Receive a QuickBooks change notification (classic or CloudEvents).

    413 for a body over webhook_body_limit() (refused unread when its Content-Length says so),
    401 for a missing or bad signature, 400 for a body that is not a webhook payload, 503 when
    no verifier token is configured; in each case nothing is recorded or queued. Otherwise 200,
    also for a redelivery or an unknown realm, so that Intuit stops redelivering.
    """
    try:
        body = read_body(request, limit=webhook_body_limit())
        receipt = webhooks.webhook_receive(
            body=body,
            signature=request.headers.get(webhooks.SIGNATURE_HEADER),
            verifier=settings.QBO_WEBHOOK_VERIFIER_TOKEN,
        )
    except webhooks.PayloadTooLarge as exc:
        logger.warning(
            "qbo.webhook.payload_too_large",
            extra={"limit": exc.limit, "content_length": request.META.get("CONTENT_LENGTH")},
        )
        return JsonResponse({"error": str(exc)}, status=413)
    except webhooks.SignatureVerificationError as exc:
        logger.warning("qbo.webhook.signature_refused", extra={"reason": type(exc).__name__})
        return JsonResponse({"error": str(exc)}, status=401)
    except webhooks.PayloadError as exc:
        logger.warning("qbo.webhook.payload_refused", extra={"reason": str(exc)})
        return JsonResponse({"error": str(exc)}, status=400)
    except webhooks.WebhookNotConfigured as exc:
        logger.error("qbo.webhook.not_configured")
        return JsonResponse({"error": str(exc)}, status=503)
    return JsonResponse(
        {"received": receipt.events, "pulls_queued": len(receipt.queued_realms)}, status=200
    )
