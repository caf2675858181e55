"""Intuit's webhook endpoint: parse the request, call one service, answer in JSON."""

from __future__ import annotations

import logging

from django.conf import settings
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from integrations import webhooks

logger = logging.getLogger(__name__)


@csrf_exempt  # Intuit cannot send a CSRF token; the HMAC signature authenticates instead.
@require_POST
def quickbooks_webhook(request):
    """Receive a QuickBooks change notification (classic or CloudEvents).

    401 for a missing or bad signature, 400 for a body that is not a webhook payload, 503 when
    no verifier token is configured; in each case nothing is recorded or queued. Otherwise 200,
    also for a redelivery or an unknown realm, so that Intuit stops redelivering.
    """
    try:
        receipt = webhooks.webhook_receive(
            body=request.body,
            signature=request.headers.get(webhooks.SIGNATURE_HEADER),
            verifier=settings.QBO_WEBHOOK_VERIFIER_TOKEN,
        )
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
