"""Inbound callback endpoints (Knight's callbackAddress); the work is in tickets/inbound.py."""

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from tickets import inbound


@csrf_exempt  # a provider posts here, not a browser: the secret in the URL authenticates it
@require_POST
def knight_callback(request: HttpRequest, account_id: int, secret: str) -> JsonResponse:
    length = int(request.headers.get("Content-Length") or 0)
    if length > settings.INBOUND_MAX_BYTES:
        return JsonResponse({"error": "payload too large"}, status=413)
    body = request.body
    if len(body) > settings.INBOUND_MAX_BYTES:
        return JsonResponse({"error": "payload too large"}, status=413)
    try:
        received = inbound.receive(kind="knight", account_id=account_id, secret=secret, body=body)
    except inbound.CallbackRefused:
        return JsonResponse({"error": "not found"}, status=404)
    event = received.event
    return JsonResponse({"stored": True, "duplicate": received.duplicate, "applied": event.applied})


urlpatterns = [
    path("knight/<int:account_id>/<str:secret>/", knight_callback, name="inbound-knight"),
]
