"""Plain views outside the admin."""

from django.db import DatabaseError, connection
from django.http import HttpResponse, JsonResponse
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


FAVICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16">'
    '<rect width="16" height="16" rx="3" fill="#2e7d32"/>'
    '<path d="M4 4h2v6h5v2H4z" fill="#fff"/></svg>'
)


@require_GET
def favicon(request):
    """Browsers ask for /favicon.ico on every page; answer it instead of logging a 404."""
    response = HttpResponse(FAVICON, content_type="image/svg+xml")
    response["Cache-Control"] = "public, max-age=86400"
    return response
