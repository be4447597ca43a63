"""The sync dashboard: figures per account on a small data set, each linking to its rows."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from tickets.dashboard import collect
from tickets.models import SyncAttempt, SyncState, Ticket

DASHBOARD_URL = reverse("sync_dashboard")


def make_ticket(account, state: str, *, age: timedelta = timedelta(0)) -> Ticket:
    ticket = Ticket.objects.create(account=account, title=f"{state} ticket", sync_state=state, revision=1)
    moment = timezone.now() - age
    Ticket.objects.filter(pk=ticket.pk).update(created_at=moment, updated_at=moment)
    ticket.refresh_from_db()
    return ticket


def record(ticket, operation: str, outcome: str, *, started_at, duration_ms: int = 100) -> SyncAttempt:
    return SyncAttempt.objects.create(
        ticket=ticket,
        account=ticket.account,
        operation=operation,
        outcome=outcome,
        started_at=started_at,
        duration_ms=duration_ms,
    )


@pytest.fixture
def small_data_set(account_factory):
    """Kapture: a queue, one held create, one failure, three created tickets; Keliweb: idle, paused."""
    kapture = account_factory("kapture")
    idle = account_factory("keliweb", paused_until=timezone.now() + timedelta(minutes=30))
    make_ticket(kapture, SyncState.PENDING, age=timedelta(minutes=50))
    make_ticket(kapture, SyncState.PENDING, age=timedelta(minutes=5))
    make_ticket(kapture, SyncState.SENDING)
    make_ticket(kapture, SyncState.NEEDS_ATTENTION)
    failed = make_ticket(kapture, SyncState.FAILED)
    record(failed, "create", "failed", started_at=timezone.now() - timedelta(hours=2))
    record(failed, "create", "retry", started_at=timezone.now() - timedelta(hours=3))
    # Three creates answered 3.1 s, 3.5 s and 40 s after the ticket was saved: median 2-5 s.
    for seconds in (3, 3.4, 39.9):
        synced = make_ticket(kapture, SyncState.SYNCED, age=timedelta(hours=1))
        record(synced, "create", "success", started_at=synced.created_at + timedelta(seconds=seconds))
    record(synced, "test", "success", started_at=timezone.now())  # tests are not sync traffic
    old = make_ticket(kapture, SyncState.SYNCED, age=timedelta(days=3))
    record(old, "create", "success", started_at=timezone.now() - timedelta(days=2))  # outside 24 h
    return kapture, idle


@pytest.mark.django_db
def test_figures_per_account_on_a_small_data_set(small_data_set):
    kapture, idle = small_data_set
    figures = {item.account.name: item for item in collect()}
    busy = figures[kapture.name]
    assert (busy.pending, busy.sending, busy.queue_depth) == (2, 1, 3)
    assert busy.needs_attention == 1 and busy.failed == 1
    assert timedelta(minutes=49) < busy.oldest_pending_age < timedelta(minutes=52)
    assert (busy.successes, busy.failures) == (3, 2)
    assert sum(bar.successes for bar in busy.hours) == 3
    assert busy.latency_samples == 3 and busy.median_latency == "2 s – 5 s"
    assert busy.paused == ""

    quiet = figures[idle.name]
    assert (quiet.queue_depth, quiet.successes, quiet.failures, quiet.latency_samples) == (0, 0, 0, 0)
    assert quiet.paused.startswith("Paused until")


@pytest.mark.django_db
def test_the_number_of_queries_does_not_grow_with_the_tickets(account_factory):
    account = account_factory("kapture")

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            collect()
        return len(captured)

    ticket = make_ticket(account, SyncState.SYNCED)
    record(ticket, "create", "success", started_at=timezone.now())
    few = queries()
    for _ in range(20):
        ticket = make_ticket(account, SyncState.PENDING)
        record(ticket, "update", "retry", started_at=timezone.now())
    account_factory("keliweb")
    assert queries() == few <= 4


@pytest.mark.django_db
def test_every_figure_links_to_its_filtered_changelist(admin_client, small_data_set):
    kapture, _ = small_data_set
    html = admin_client.get(DASHBOARD_URL).content.decode()
    base = f"account__id__exact={kapture.pk}"
    for query in (
        f"/admin/tickets/ticket/?{base}&amp;sync_state__in=pending%2Csending",
        f"/admin/tickets/ticket/?{base}&amp;sync_state__exact=needs_attention",
        f"/admin/tickets/ticket/?{base}&amp;sync_state__exact=failed",
        f"/admin/tickets/syncattempt/?{base}&amp;outcome__exact=success",
    ):
        assert query in html, query
    assert "Paused until" in html and "2 s – 5 s" in html
    # The links open the rows behind the figure.
    queue = admin_client.get(f"/admin/tickets/ticket/?{base}&sync_state__in=pending,sending")
    assert queue.status_code == 200
    shown = {ticket.sync_state for ticket in queue.context["cl"].result_list}
    assert queue.context["cl"].result_count == 3 and shown == {"pending", "sending"}


@pytest.mark.django_db
def test_the_dashboard_is_linked_from_the_admin_index(admin_client):
    assert DASHBOARD_URL in admin_client.get(reverse("admin:index")).content.decode()


@pytest.mark.django_db
def test_agents_see_the_figures_but_not_the_account_settings(client, small_data_set):
    kapture, _ = small_data_set
    agent = User.objects.create_user("agent", "agent@example.com", "pw", is_staff=True)
    agent.user_permissions.add(*Permission.objects.filter(content_type__app_label="tickets"))
    client.force_login(agent)
    html = client.get(DASHBOARD_URL).content.decode()
    assert kapture.name in html and "2 s – 5 s" in html
    assert reverse("admin:providers_provideraccount_change", args=[kapture.pk]) not in html
    assert "/admin/providers/" not in html


@pytest.mark.django_db
def test_staff_without_ticket_access_cannot_open_the_dashboard(client):
    client.force_login(User.objects.create_user("visitor", "v@example.com", "pw", is_staff=True))
    assert client.get(DASHBOARD_URL).status_code == 403
