"""What an adapter reads of a ticket: a ticket-shaped input, not the console's model.

`tickets.models.Ticket` satisfies these protocols; so do the plain objects the provider unit
tests build. Adapters read only what is listed here and never write to it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol


class StoredFile(Protocol):
    """A file's content, opened like Django's FieldFile."""

    def open(self, mode: str = "rb") -> Any: ...


class AttachmentLike(Protocol):
    name: str
    content_type: str
    #: What the provider calls the file once uploaded ("" before); see Provider.on_upload.
    remote_ref: str
    file: StoredFile


class AttachmentSet(Protocol):
    def all(self) -> Any: ...


class TicketLike(Protocol):
    pk: Any
    #: The console's reference (TC-000123): Knight's ticketId and the marker in descriptions.
    reference: str | None
    title: str
    description: str
    requester_email: str
    requester_name: str
    #: Values of providers.vocabulary.Priority / Impact / Status.
    priority: str
    impact: str
    status: str
    due_at: datetime | None
    tags: list
    extra: dict
    remote_id: str
    remote_number: str
    remote_url: str
    revision: int
    #: The ticket's attachments (iterated with .all()); read only where a pk exists.
    attachments: AttachmentSet


def read_attachment(attachment: AttachmentLike) -> bytes:
    with attachment.file.open("rb") as handle:
        return handle.read()
