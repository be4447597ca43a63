"""The console's own ticket vocabulary: what every adapter maps to and from.

Kept here, below `tickets/`, so that adapters, the account form and the ticket model share
one list: `tickets.models` takes its choices from these classes.
"""

from django.db import models


class Priority(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"
    URGENT = "urgent", "Urgent"


class Impact(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"


class Status(models.TextChoices):
    NEW = "new", "New"
    OPEN = "open", "Open"
    IN_PROGRESS = "in_progress", "In progress"
    ON_HOLD = "on_hold", "On hold"
    PENDING = "pending", "Pending"
    RESOLVED = "resolved", "Resolved"
    CLOSED = "closed", "Closed"
    CANCELLED = "cancelled", "Cancelled"


CONSOLE_STATUSES = tuple(Status.values)
CONSOLE_PRIORITIES = tuple(Priority.values)

#: How a console ticket field is named in sentences to people (the model's verbose names;
#: tests/tickets/test_vocabulary.py keeps the two in step).
TICKET_FIELD_LABELS = {
    "title": "title",
    "description": "description",
    "requester_email": "requester email",
    "requester_name": "requester name",
    "priority": "priority",
    "impact": "impact",
    "status": "status",
    "due_at": "due at",
    "tags": "tags",
    "extra": "extra",
}


def field_label(name: str) -> str:
    return TICKET_FIELD_LABELS.get(name, name.replace("_", " "))
