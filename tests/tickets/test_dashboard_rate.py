"""The sync dashboard says, per account, when the rate limit is holding requests now and when
the pending queue should drain, in words."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.urls import reverse
from django.utils import timezone

from providers.models import ProviderAccount
from tickets.models import SyncState, Ticket

DASHBOARD_URL = reverse("sync_dashboard")


def queue(account, count: int) -> None:
    Ticket.objects.bulk_create(
        Ticket(account=account, title=f"Queued {n}", sync_state=SyncState.PENDING, revision=1)
        for n in range(count)
    )


def row_of(html: str, name: str) -> str:
    start = html.index(f">{name}</a>", html.index("<tbody>"))  # the table's row, not a notice
    return html[start : html.index("</tr>", start)]


@pytest.mark.django_db
def test_a_throttled_account_and_when_its_queue_drains(client, account_factory):
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    busy = account_factory("kapture", name="Busy", rate_limit=1, rate_burst=5)
    # The bucket ran 10 s ahead (a bulk action just went out): with a burst of 5 (4 s of room)
    # the next request waits 6 s; 65 pending tickets need 64 more seconds after the first.
    ProviderAccount.objects.filter(pk=busy.pk).update(next_request_at=timezone.now() + timedelta(seconds=10))
    queue(busy, 65)
    idle = account_factory("kapture", name="Idle", rate_limit=10, rate_burst=20)
    queue(idle, 12)
    paused = account_factory("kapture", name="Paused", paused_until=timezone.now() + timedelta(hours=1))
    queue(paused, 3)

    html = client.get(DASHBOARD_URL).content.decode()

    busy_row = row_of(html, "Busy")
    assert "Throttled: the next request waits 6 s for the rate limit" in busy_row
    assert "The queue drains in about 70 s" in busy_row
    assert "1 requests/s, burst 5" in busy_row
    idle_row = row_of(html, "Idle")
    assert "Throttled" not in idle_row and "Running" in idle_row
    assert "The queue can go at once" in idle_row  # 12 pending fit in a burst of 20
    paused_row = row_of(html, "Paused")
    assert "Paused until" in paused_row and "drains" not in paused_row
