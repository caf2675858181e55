"""Plain views outside the admin."""

from django.db import DatabaseError, connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from portal.selectors import task_queue_state


@never_cache
@require_GET
def healthz(request):
    """Database and task-queue state as JSON; 503 when the database cannot be reached."""
    body: dict = {"status": "ok"}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        body["database"] = {"status": "ok", "vendor": connection.vendor}
    except DatabaseError as exc:
        body["status"] = "error"
        body["database"] = {"status": "error", "error": exc.__class__.__name__}
        body["task_queue"] = {"status": "unknown"}
        return JsonResponse(body, status=503)
    body["task_queue"] = task_queue_state()
    if body["task_queue"]["status"] == "error":
        body["status"] = "degraded"
    return JsonResponse(body)
