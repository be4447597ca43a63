"""Inbound callback endpoints, one route per provider that calls back (providers/inbound.py);
the work is in tickets/inbound.py."""

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from tickets import inbound


class BodyRefused(Exception):
    def __init__(self, status: int, error: str) -> None:
        super().__init__(error)
        self.status = status
        self.error = error


def read_body(request: HttpRequest, *, limit: int) -> bytes:
    """The request body, at most `limit` bytes, whether it came with a Content-Length or
    chunked (Transfer-Encoding: chunked, no length: Django alone would read it as empty)."""
    declared = request.META.get("CONTENT_LENGTH") or ""
    chunked = "chunked" in request.headers.get("Transfer-Encoding", "").lower()
    if declared or not chunked:
        if declared and not (declared.isascii() and declared.isdigit()):
            raise BodyRefused(400, "invalid Content-Length")
        if declared and int(declared) > limit:
            raise BodyRefused(413, "payload too large")
        body = request.body
    elif request.META.get("wsgi.input_terminated"):
        # The server decoded the chunks and ends the stream with the body (gunicorn does).
        stream = request.META["wsgi.input"]
        parts, size = [], 0
        while size <= limit:
            part = stream.read(min(64 * 1024, limit + 1 - size))
            if not part:
                break
            parts.append(part)
            size += len(part)
        body = b"".join(parts)
    else:  # a server that cannot hand over a chunked body (runserver): say what to send
        raise BodyRefused(411, "send the body with a Content-Length")
    if len(body) > limit:
        raise BodyRefused(413, "payload too large")
    return body


@csrf_exempt  # a provider posts here, not a browser: the secret in the URL authenticates it
@require_POST
def callback(request: HttpRequest, route: str, account_id: int, secret: str) -> JsonResponse:
    try:
        body = read_body(request, limit=settings.INBOUND_MAX_BYTES)
    except BodyRefused as refused:
        return JsonResponse({"error": refused.error}, status=refused.status)
    try:
        received = inbound.receive(route=route, account_id=account_id, secret=secret, body=body)
    except inbound.CallbackRefused:
        return JsonResponse({"error": "not found"}, status=404)
    event = received.event
    return JsonResponse({"stored": True, "duplicate": received.duplicate, "applied": event.applied})


urlpatterns = [
    # Knight's addresses (/inbound/knight/<id>/<secret>/) already given out match this exactly.
    path("<slug:route>/<int:account_id>/<str:secret>/", callback, name="inbound"),
]
