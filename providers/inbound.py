"""Inbound webhooks as a provider capability: what a provider posts to the console.

A provider that calls back declares an `InboundHandler` on its class (`Provider.inbound`):
the route segment of its address (`/inbound/<route>/<account id>/<secret>/`), how a request
is verified, and how a body names a ticket and a status. tickets/inbound.py and
tickets/views_inbound.py stay generic: they find the handler by route, store every body once
and apply what the handler parsed. Nothing here touches the database.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any, ClassVar

from providers.registry import PROVIDERS, get_provider_class

#: A stand-in compared when there are fewer real secrets than can be accepted, so the time
#: taken tells nothing about which accounts exist or whether a rotation is in its grace.
STAND_IN_SECRET = b"\0" * 43
#: The most secrets accepted at once: the current one and the previous one within its grace.
MOST_ACCEPTED = 2


@dataclass(frozen=True)
class InboundChange:
    """What one callback body says: the console reference of a ticket and its remote status
    ("" when the body names a ticket without a status)."""

    reference: str
    status: str = ""


class InboundHandler:
    #: The address segment after /inbound/; addresses already given to a provider contain it,
    #: so it never changes once in use.
    route: ClassVar[str]

    def verify(self, given_secret: str, accepted: list[str]) -> bool:
        """True when the request carries one of the account's `accepted` callback secrets
        (providers/callback_secret.py): the secret is the last segment of the address.
        Every candidate is compared, stand-ins included, so timing reveals nothing."""
        candidates = [value.encode() for value in accepted]
        candidates += [STAND_IN_SECRET] * (MOST_ACCEPTED - len(candidates))
        given = (given_secret or "").encode()
        results = [hmac.compare_digest(candidate, given) for candidate in candidates]
        return any(results[: len(accepted)])

    def parse(self, payload: dict[str, Any]) -> InboundChange | None:
        """The change a JSON object body reports; None when it names no ticket."""
        raise NotImplementedError


def handler_for(route: str) -> tuple[str, InboundHandler] | None:
    """The provider kind and handler serving `route`, or None when no provider calls back there."""
    for kind in PROVIDERS:
        handler = get_provider_class(kind).inbound
        if handler is not None and handler.route == route:
            return kind, handler
    return None
