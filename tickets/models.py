from django.conf import settings
from django.db import models

from providers.models import ProviderAccount

# The console's vocabulary lives with the adapters that map it; tickets/ imports it from here.
from providers.vocabulary import Impact, Priority, Status
from tickets import references


class SyncState(models.TextChoices):
    PENDING = "pending", "Pending"  # waiting for a worker (maybe until next_attempt_at)
    SENDING = "sending", "Sending"  # claimed by a worker; the call is under way
    SYNCED = "synced", "Synced"
    FAILED = "failed", "Failed"  # the provider refused it; a person must change something
    NEEDS_ATTENTION = "needs_attention", "Needs attention"  # outcome unknown: a person decides
    CANCELLED = "cancelled", "Sync cancelled"
    #: Changed in the console after the create, in a way the provider has no call for (Keliweb
    #: cannot update a ticket): the console's copy differs from the provider's, on purpose.
    LOCAL_ONLY = "local_only", "Kept here only"


class Ticket(models.Model):
    # Set by the database from the pk inside the INSERT (tickets/references.py); never NULL after.
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
    #: While `sending`: when the worker claimed the row or last renewed its lease (SYNC_LEASE).
    lease_renewed_at = models.DateTimeField(null=True, blank=True, editable=False)
    #: An update to this ticket went unanswered and the provider may still apply it: nothing
    #: more is sent before this moment, whatever asks (an edit, a retry, a release), so the
    #: late request cannot land after a newer one (tickets/sync.py, SYNC_UPDATE_SETTLE).
    settle_until = models.DateTimeField(null=True, blank=True, editable=False)
    last_error = models.TextField(blank=True, editable=False)
    #: The last failure was the account's (credentials, configuration, a disabled account), not
    #: this ticket's: the agent is told a provider admin must act, not to change the ticket.
    account_problem = models.BooleanField(default=False, editable=False)
    #: Fields changed in the console after the create that the provider cannot take (all of
    #: them at Keliweb, all but the status at Kapture): the ticket shows "kept here only".
    local_only_fields = models.JSONField(default=list, blank=True, editable=False)
    last_synced_at = models.DateTimeField(null=True, blank=True, editable=False)
    #: The values both sides agreed on at the last sync ({"status", "remote_status"}): the
    #: baseline pull compares against to tell a remote change from a console change.
    synced_fields = models.JSONField(default=dict, blank=True, editable=False)
    pulled_at = models.DateTimeField(null=True, blank=True, editable=False)
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
        inserting = self._state.adding
        super().save(*args, **kwargs)
        if inserting:
            self.inserted()

    def inserted(self) -> None:
        """After the row's INSERT (`save`, or `statements.insert_new` for `create_ticket`): the
        reference the database's trigger wrote (tickets/references.py), without reading it."""
        if self.reference is None:
            self.reference = references.for_pk(self.pk)

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
        #: A token or key exchange made for one of the above (ApiRequest.purpose SIGN_IN).
        SIGN_IN = "sign_in", "Sign in"

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


def attachment_path(instance: "Attachment", filename: str) -> str:
    return f"attachments/{instance.ticket_id}/{filename}"


class Attachment(models.Model):
    """A file on a ticket, sent where the provider takes files (Keliweb inline, Motadata upload)."""

    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="attachments")
    file = models.FileField(upload_to=attachment_path)
    name = models.CharField(max_length=255)
    size = models.PositiveIntegerField()
    content_type = models.CharField(max_length=100, blank=True)
    #: What the provider calls the uploaded file (Motadata's refFileName), once uploaded.
    remote_ref = models.CharField(max_length=255, blank=True)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return self.name

    def record_upload(self, ref: str) -> None:
        """Keep the provider's reference for this file (a Provider's on_upload), written at
        once so a create retried after a failure reuses the upload instead of sending it again."""
        self.remote_ref = ref
        type(self).objects.filter(pk=self.pk).update(remote_ref=ref)


class Reply(models.Model):
    """A message of a ticket's conversation: written here and pushed by the sync engine where
    the provider takes replies (outbound), or read back from the provider by pull (inbound)."""

    class Direction(models.TextChoices):
        OUTBOUND = "outbound", "Sent from the console"
        INBOUND = "inbound", "Received from the provider"

    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="replies")
    body = models.TextField()
    #: Inbound replies are stored as synced and never claimed for sending (tickets/replies.py).
    direction = models.CharField(max_length=10, choices=Direction.choices, default=Direction.OUTBOUND)
    #: The provider's id of this message once it is seen in a read answer (both directions):
    #: a pull stores each remote message once, and recognises the console's own.
    remote_id = models.CharField(max_length=100, blank=True)
    #: Inbound: who wrote it at the provider, and the provider's own time text.
    remote_author = models.CharField(max_length=200, blank=True)
    remote_by_staff = models.BooleanField(default=False)
    remote_date = models.CharField(max_length=40, blank=True)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    sync_state = models.CharField(max_length=20, choices=SyncState.choices, default=SyncState.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    #: When a published nudge announced this reply (tickets/dispatch.py), as a ticket's: a
    #: burst of replies publishes one nudge per account, and the sweeper republishes a due
    #: reply only once its announcement is old or missing.
    enqueued_at = models.DateTimeField(null=True, blank=True, editable=False)
    lease_renewed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["sync_state", "next_attempt_at"], name="reply_sync_due")]
        constraints = [
            models.UniqueConstraint(
                fields=["ticket", "remote_id"], condition=~models.Q(remote_id=""), name="reply_remote_once"
            ),
        ]

    def __str__(self) -> str:
        return f"reply to {self.ticket_id}"


class InboundEvent(models.Model):
    """A payload a provider sent us (Knight's callbackAddress), stored once, applied if possible."""

    account = models.ForeignKey(ProviderAccount, on_delete=models.CASCADE, related_name="inbound_events")
    ticket = models.ForeignKey(
        Ticket, null=True, blank=True, on_delete=models.SET_NULL, related_name="inbound_events"
    )
    digest = models.CharField(max_length=64, unique=True, help_text="SHA-256 of the body: de-duplication.")
    payload = models.JSONField(default=dict, blank=True)
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    applied = models.BooleanField(default=False)
    note = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]

    def __str__(self) -> str:
        return f"inbound {self.digest[:12]}"


class BulkJob(models.Model):
    """A bulk action run in the background over a selection of tickets, with counters."""

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    action = models.CharField(max_length=40)
    params = models.JSONField(default=dict, blank=True)
    #: How the tickets were chosen: {"ids": [...]} or a changelist filter, walked by key in chunks.
    selection = models.JSONField(default=dict, blank=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED, db_index=True)
    total = models.PositiveIntegerField(default=0)
    processed = models.PositiveIntegerField(default=0)
    succeeded = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    #: Changed in the console only: the provider has no way to take the change (not "succeeded").
    kept_here = models.PositiveIntegerField(default=0)
    #: Per-reason counts and example ticket ids, e.g. {"failed": {"<reason>": {"count": n, "ids": [...]}}}
    results = models.JSONField(default=dict, blank=True)
    #: Highest ticket id handled so far: a restarted job resumes after it.
    cursor = models.BigIntegerField(default=0)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        # A job and its export belong to whoever started it (tickets/access.py); this lets a
        # supervisor see everyone's.
        permissions = [("view_all_bulk_jobs", "Can view every user's bulk jobs and exports")]

    def __str__(self) -> str:
        return f"{self.action} #{self.pk}"
