"""What a person looks for at the provider when a create's outcome is unknown.

The answer to a create was lost (or its worker stopped), so the ticket may or may not exist
remotely. The ticket page lists what identifies it there — the marker every provider module
writes at the end of the description, the title, the requester and when the create was sent —
and links to the provider's own UI where the account has its address in its defaults
(`web_url`, and `web_search_url` with a `{query}` placeholder).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import quote

from providers.base import FETCH
from tickets.models import SyncAttempt, SyncState, Ticket


@dataclass(frozen=True)
class ProviderLink:
    label: str
    url: str


@dataclass(frozen=True)
class LookupGuide:
    provider_label: str
    marker: str
    title: str
    requester: str
    #: When each create with a lost answer was sent, oldest first (empty: not recorded).
    sent_at: list[datetime] = field(default_factory=list)
    links: list[ProviderLink] = field(default_factory=list)
    #: True when the console reads the id a person links before accepting it.
    id_is_checked: bool = False


def search_url(template: str, query: str) -> str:
    return template.replace("{query}", quote(query, safe=""))


def provider_links(ticket: Ticket, marker: str) -> list[ProviderLink]:
    """Links into the provider's own UI, from the account's defaults (checked when saved)."""
    settings = ticket.account.settings or {}
    label = ticket.account.provider_class.label
    links = []
    template = settings.get("web_search_url")
    if isinstance(template, str) and template.startswith(("https://", "http://")):
        links.append(ProviderLink(f"Search {label} for the marker", search_url(template, marker)))
        links.append(ProviderLink(f"Search {label} for the title", search_url(template, ticket.title)))
    web_url = settings.get("web_url")
    if isinstance(web_url, str) and web_url.startswith(("https://", "http://")):
        links.append(ProviderLink(f"Open {label}", web_url))
    return links


def lookup_guide(ticket: Ticket) -> LookupGuide | None:
    """The guide for a create whose outcome is unknown; None for any other ticket."""
    if ticket.sync_state != SyncState.NEEDS_ATTENTION or ticket.remote_id:
        return None
    provider_class = ticket.account.provider_class
    marker = provider_class.marker(ticket)
    lost_creates = ticket.attempts_log.filter(
        operation=SyncAttempt.Operation.CREATE, outcome=SyncAttempt.Outcome.UNKNOWN
    )
    sent_at = list(lost_creates.order_by("started_at", "id").values_list("started_at", flat=True))
    requester = " ".join(
        part
        for part in (ticket.requester_name, f"<{ticket.requester_email}>" if ticket.requester_email else "")
        if part
    )
    return LookupGuide(
        provider_label=provider_class.label,
        marker=marker,
        title=ticket.title,
        requester=requester,
        sent_at=sent_at,
        links=provider_links(ticket, marker),
        id_is_checked=provider_class.supports(FETCH),
    )
