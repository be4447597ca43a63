"""Ticket bookkeeping that needs no worker: references, revisions, claiming and fencing."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tickets import batch, outbound, references, services, sync
from tickets.models import SyncAttempt, SyncState, Ticket


@pytest.fixture
def account(account_factory):
    return account_factory("kapture")


@pytest.mark.django_db
def test_references_are_unique_sequential_and_never_change(account):
    first = services.create_ticket(account=account, title="one")
    second = services.create_ticket(account=account, title="two")
    assert first.reference == f"TC-{first.pk:06d}"
    assert second.reference == f"TC-{second.pk:06d}" != first.reference
    services.update_ticket(ticket=first, changes={"title": "one, renamed"})
    first.refresh_from_db()
    assert first.reference == f"TC-{first.pk:06d}"


@pytest.mark.django_db
def test_every_way_of_inserting_a_ticket_gives_it_its_reference(account):
    """The database assigns it in the INSERT: a create is that one statement, and a bulk insert
    or an id past six digits gets the same reference as `create_ticket` would give."""
    with CaptureQueriesContext(connection) as queries:
        created = services.create_ticket(account=account, title="one statement")
    writes = [q["sql"].split()[0] for q in queries.captured_queries if not q["sql"].startswith("SELECT")]
    assert writes == ["INSERT"]  # no BEGIN/COMMIT, no UPDATE of the reference
    Ticket.objects.bulk_create(
        [Ticket(account=account, title="bulk"), Ticket(account=account, title="given", reference="TC-KEPT")]
    )
    Ticket.objects.create(pk=1_234_567, account=account, title="seven digits")
    stored = dict(Ticket.objects.values_list("title", "reference"))
    bulk = Ticket.objects.get(title="bulk")
    assert stored == {
        "one statement": created.reference,
        "bulk": f"TC-{bulk.pk:06d}",
        "given": "TC-KEPT",
        "seven digits": "TC-1234567",
    }
    assert created.reference == f"TC-{created.pk:06d}"


@pytest.mark.django_db
def test_a_created_ticket_is_stored_as_it_was_given(account, django_user_model):
    """`create_ticket` writes its INSERT by hand (tickets/statements.py): every field lands in
    its column as the ORM would have stored it, and the returned ticket is the stored one."""
    agent = django_user_model.objects.create_user("agent", password="x")
    due = timezone.now().replace(microsecond=0) + timedelta(days=2)
    created = services.create_ticket(
        account=account,
        title="Printer on fire",
        description="Second floor.\nSmoke.",
        requester_email="ana@example.com",
        requester_name="Ana Lima",
        priority="urgent",
        impact="high",
        due_at=due,
        tags=["printers", "floor-2"],
        extra={"channel": "phone", "nested": {"n": 1}},
        created_by=agent,
    )
    stored = Ticket.objects.get(pk=created.pk)
    names = [field.attname for field in Ticket._meta.concrete_fields]
    assert {name: getattr(stored, name) for name in names} == {name: getattr(created, name) for name in names}
    assert (stored.due_at, stored.tags, stored.extra["nested"], stored.created_by) == (
        due,
        ["printers", "floor-2"],
        {"n": 1},
        agent,
    )
    assert (stored.sync_state, stored.revision, stored.synced_revision) == ("pending", 1, 0)
    assert stored.created_at is not None and stored.updated_at is not None


@pytest.mark.django_db(transaction=True)
def test_a_reference_trigger_lost_to_a_table_rebuild_comes_back_after_migrate(account):
    """Django's SQLite schema editor drops a table's triggers when it rebuilds it; the next
    migrate puts the trigger back and gives the tickets inserted meanwhile their references."""
    references.drop_trigger(connection)
    try:
        Ticket.objects.bulk_create([Ticket(account=account, title="meanwhile")])
        assert Ticket.objects.get().reference is None
    finally:
        call_command("migrate", verbosity=0)
    meanwhile = Ticket.objects.get()
    assert meanwhile.reference == f"TC-{meanwhile.pk:06d}"
    after = services.create_ticket(account=account, title="after")
    assert after.reference == Ticket.objects.get(pk=after.pk).reference == f"TC-{after.pk:06d}"


@pytest.mark.django_db(transaction=True)
def test_migrating_back_before_the_reference_trigger_leaves_it_out(account):
    """The repair after migrate puts back a trigger a rebuild lost, not one a migration took away."""
    call_command("migrate", "tickets", "0014", verbosity=0)
    try:
        assert not references.trigger_installed(connection)
    finally:
        call_command("migrate", verbosity=0)
    assert references.trigger_installed(connection)
    created = services.create_ticket(account=account, title="after")
    assert Ticket.objects.get(pk=created.pk).reference == f"TC-{created.pk:06d}"


@pytest.mark.django_db
def test_an_edit_bumps_the_revision_and_makes_the_ticket_pending(account):
    ticket = services.create_ticket(account=account, title="one")
    Ticket.objects.filter(pk=ticket.pk).update(sync_state=SyncState.SYNCED, synced_revision=1)
    ticket = services.update_ticket(ticket=Ticket.objects.get(pk=ticket.pk), changes={"priority": "urgent"})
    assert (ticket.revision, ticket.sync_state, ticket.has_unsynced_changes) == (2, "pending", True)


@pytest.mark.django_db
def test_an_edit_while_sending_keeps_the_claim_and_an_unknown_create_stays_held(account):
    sending = services.create_ticket(account=account, title="in flight")
    Ticket.objects.filter(pk=sending.pk).update(sync_state=SyncState.SENDING, attempts=1)
    sending = services.update_ticket(ticket=Ticket.objects.get(pk=sending.pk), changes={"title": "x"})
    assert (sending.sync_state, sending.attempts, sending.revision) == ("sending", 1, 2)

    held = services.create_ticket(account=account, title="unknown")
    Ticket.objects.filter(pk=held.pk).update(sync_state=SyncState.NEEDS_ATTENTION)
    held = services.update_ticket(ticket=Ticket.objects.get(pk=held.pk), changes={"title": "y"})
    assert held.sync_state == "needs_attention"


@pytest.mark.django_db
def test_only_one_worker_can_claim_a_ticket(account):
    ticket = services.create_ticket(account=account, title="one")
    assert [row.pk for row in batch.claim_batch(sync.TICKETS, account.pk, limit=8)] == [ticket.pk]
    assert batch.claim_batch(sync.TICKETS, account.pk, limit=8) == []  # a duplicate message finds nothing


@pytest.mark.django_db
def test_a_stale_worker_cannot_overwrite_the_outcome_of_a_newer_claim(account):
    ticket = services.create_ticket(account=account, title="one")
    [stale] = batch.claim_batch(sync.TICKETS, account.pk, limit=8)
    # The sweeper gave the row away and another worker claimed it again.
    Ticket.objects.filter(pk=ticket.pk).update(sync_state=SyncState.PENDING)
    [current] = batch.claim_batch(sync.TICKETS, account.pk, limit=8)
    assert current.attempts == stale.attempts + 1
    decision = outbound.Decision(SyncState.FAILED, SyncAttempt.Outcome.FAILED, "stale failure")
    recorded = outbound.finish_group(sync.TICKETS, [outbound.Outcome(stale, "create", decision)])
    assert recorded.applied == set()
    ticket.refresh_from_db()
    assert ticket.sync_state == SyncState.SENDING and ticket.last_error == ""
    assert SyncAttempt.objects.get(ticket=ticket).error == "stale failure"  # still audited


@pytest.mark.django_db
def test_retry_is_refused_for_a_synced_ticket(account):
    ticket = services.create_ticket(account=account, title="one")
    Ticket.objects.filter(pk=ticket.pk).update(sync_state=SyncState.SYNCED)
    ticket.refresh_from_db()
    with pytest.raises(services.TicketActionError, match="nothing to retry"):
        services.retry_sync(ticket=ticket)


def test_backoff_grows_exponentially_with_jitter_and_honours_retry_after(settings):
    settings.SYNC_BACKOFF_BASE, settings.SYNC_BACKOFF_CAP = 2.0, 60.0
    assert 1.0 <= outbound.backoff(1) <= 2.0
    assert 8.0 <= outbound.backoff(4) <= 16.0
    assert 30.0 <= outbound.backoff(20) <= 60.0
    assert outbound.backoff(3, retry_after=42) == 42
