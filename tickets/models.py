from django.conf import settings
from django.db import models, transaction

from providers.models import ProviderAccount


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


class SyncState(models.TextChoices):
    PENDING = "pending", "Pending"  # waiting for a worker (maybe until next_attempt_at)
    SENDING = "sending", "Sending"  # claimed by a worker; the call is under way
    SYNCED = "synced", "Synced"
    FAILED = "failed", "Failed"  # the provider refused it; a person must change something
    NEEDS_ATTENTION = "needs_attention", "Needs attention"  # outcome unknown: a person decides
    CANCELLED = "cancelled", "Sync cancelled"


REFERENCE_PREFIX = "TC-"


class Ticket(models.Model):
    # NULL only inside the insert transaction, until save() derives it from the pk.
    reference = models.CharField(max_length=20, unique=True, null=True, editable=False)  # noqa: DJ001
    account = models.ForeignKey(ProviderAccount, on_delete=models.PROTECT, related_name="tickets")
    title = models.CharField(max_length=255)
    description = models.TextField(blank=True)
    requester_email = models.EmailField(blank=True)
    requester_name = models.CharField(max_length=200, blank=True)
    priority = models.CharField(max_length=10, choices=Priority.choices, default=Priority.MEDIUM)
    impact = models.CharField(max_length=10, choices=Impact.choices, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.NEW)
    remote_status = models.CharField(max_length=100, blank=True, editable=False)
    due_at = models.DateTimeField(null=True, blank=True)
    tags = models.JSONField(default=list, blank=True)
    extra = models.JSONField(default=dict, blank=True)
    remote_id = models.CharField(max_length=100, blank=True, db_index=True)
    remote_number = models.CharField(max_length=100, blank=True, db_index=True)
    remote_url = models.URLField(max_length=500, blank=True)
    # sync bookkeeping (see tickets/sync.py)
    sync_state = models.CharField(
        max_length=20, choices=SyncState.choices, default=SyncState.PENDING, editable=False
    )
    revision = models.PositiveIntegerField(default=0, editable=False)
    synced_revision = models.PositiveIntegerField(default=0, editable=False)
    attempts = models.PositiveIntegerField(default=0, editable=False)
    next_attempt_at = models.DateTimeField(null=True, blank=True, editable=False)
    enqueued_at = models.DateTimeField(null=True, blank=True, editable=False)
    sending_since = models.DateTimeField(null=True, blank=True, editable=False)
    last_error = models.TextField(blank=True, editable=False)
    last_synced_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, editable=False
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["sync_state", "next_attempt_at"], name="ticket_sync_due"),
            models.Index(fields=["account", "sync_state"], name="ticket_account_state"),
            models.Index(fields=["status", "created_at"], name="ticket_status_created"),
            models.Index(fields=["priority", "created_at"], name="ticket_priority_created"),
        ]

    def __str__(self) -> str:
        return f"{self.reference or 'new ticket'}: {self.title}"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None:
            super().save(*args, **kwargs)
            return
        # The reference comes from the primary key, so it is unique and assigned exactly
        # once; the insert and the reference land in one transaction.
        with transaction.atomic(using=kwargs.get("using")):
            super().save(*args, **kwargs)
            self.reference = f"{REFERENCE_PREFIX}{self.pk:06d}"
            type(self).objects.filter(pk=self.pk).update(reference=self.reference)

    @property
    def has_unsynced_changes(self) -> bool:
        return self.revision > self.synced_revision


class SyncAttempt(models.Model):
    """One remote call: the audit trail and the debugger. Never holds a secret."""

    class Operation(models.TextChoices):
        CREATE = "create"
        UPDATE = "update"
        FETCH = "fetch"
        REPLY = "reply"
        TEST = "test"

    class Outcome(models.TextChoices):
        SUCCESS = "success", "Success"
        FAILED = "failed", "Failed"
        RETRY = "retry", "Will retry"
        UNKNOWN = "unknown", "Outcome unknown"

    ticket = models.ForeignKey(
        Ticket, null=True, blank=True, on_delete=models.CASCADE, related_name="attempts_log"
    )
    account = models.ForeignKey(ProviderAccount, on_delete=models.CASCADE, related_name="attempts")
    operation = models.CharField(max_length=10, choices=Operation.choices)
    revision = models.PositiveIntegerField(null=True, blank=True)
    started_at = models.DateTimeField(db_index=True)
    duration_ms = models.PositiveIntegerField(default=0)
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    request_method = models.CharField(max_length=10, blank=True)
    request_url = models.CharField(max_length=1000, blank=True)
    request_headers = models.JSONField(default=dict, blank=True)
    request_body = models.TextField(blank=True)
    response_body = models.TextField(blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [
            models.Index(fields=["ticket", "-started_at"], name="attempt_ticket_recent"),
            models.Index(fields=["account", "-started_at"], name="attempt_account_recent"),
        ]

    def __str__(self) -> str:
        return f"{self.operation} {self.outcome} at {self.started_at:%Y-%m-%d %H:%M:%S}"
