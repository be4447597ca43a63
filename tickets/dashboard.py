"""The sync dashboard: per account, what waits, what fails, how fast changes reach the provider.

Every figure comes from aggregate queries (four, whatever the number of tickets or attempts)
and links to the admin changelist that shows the rows behind it.

Latency measured: for each create that succeeded in the last 24 h, the time from the ticket
being saved (`Ticket.created_at`) to the start of the successful create call
(`SyncAttempt.started_at`) plus that call's duration, i.e. until the provider's answer. Updates
are not measured: the moment of an edit is not stored per revision. The median is read from a
histogram counted in SQL, so it is given as a range ("2–5 s").

Rate limit: "throttled" when a request starting now would be held by the account's rate limit
(read from the account row, no query); "drains in about …" estimates when the last pending
ticket's request may start at the account's rate and burst (one request per ticket, so a token
call or a retry makes it later; nothing drains while the account is paused).

Oldest waiting: the earliest last save (`Ticket.updated_at`) among pending and sending tickets.
Successes and failures: sync calls (every SyncAttempt but connection tests) per hour; "failures"
include calls that will be retried and creates whose outcome is unknown.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlencode

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import (
    Case,
    Count,
    DurationField,
    ExpressionWrapper,
    F,
    Func,
    IntegerField,
    Min,
    Q,
    QuerySet,
    Value,
    When,
)
from django.db.models.functions import TruncHour
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from providers.models import ProviderAccount
from tickets.access import can_manage_accounts, can_see_dashboard, dashboard_accounts, watched_accounts
from tickets.account_admin import pause_state
from tickets.limits import drain_seconds, rate_wait
from tickets.models import SyncAttempt, SyncState, Ticket
from tickets.problems import current_problems

WINDOW_HOURS = 24
#: Upper edges, in seconds, of the latency histogram's buckets (the last one is open).
LATENCY_EDGES = (1, 2, 5, 10, 30, 60, 120, 300, 900, 3600)
FAILED_OUTCOMES = (SyncAttempt.Outcome.FAILED, SyncAttempt.Outcome.RETRY, SyncAttempt.Outcome.UNKNOWN)


@dataclass
class HourBar:
    start: datetime
    successes: int = 0
    failures: int = 0
    success_height: int = 0  # percent of the account's busiest hour
    failure_height: int = 0
    successes_url: str = ""
    failures_url: str = ""


@dataclass
class AccountFigures:
    account: ProviderAccount
    paused: str = ""
    pending: int = 0
    sending: int = 0
    needs_attention: int = 0
    failed: int = 0
    #: Changed here in a way the provider cannot take: counted apart from the synced ones.
    local_only: int = 0
    oldest_pending_since: datetime | None = None
    successes: int = 0
    failures: int = 0
    hours: list[HourBar] = field(default_factory=list)
    latency_counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_EDGES) + 1))
    links: dict[str, str] = field(default_factory=dict)
    #: Seconds a request starting now would be held by the rate limit (0: not throttled).
    throttled_for: float = 0.0
    #: Seconds until the last pending ticket's request may start (None: nothing to drain).
    drains_in: float | None = None

    @property
    def rate_words(self) -> str:
        """The account's rate limit in words, e.g. '10 requests/s, burst 20'."""
        rate = float(self.account.rate_limit or 0)
        if rate <= 0:
            return "no rate limit"
        return f"{rate:g} requests/s, burst {self.account.rate_burst}"

    @property
    def throttled_words(self) -> str:
        if self.throttled_for <= 0:
            return ""
        return f"Throttled: the next request waits {in_words(self.throttled_for)} for the rate limit"

    @property
    def drain_words(self) -> str:
        if self.drains_in is None:
            return ""
        if self.drains_in < 1:
            return "The queue can go at once"
        return f"The queue drains in about {in_words(self.drains_in)}"

    @property
    def queue_depth(self) -> int:
        return self.pending + self.sending

    @property
    def oldest_pending_age(self) -> timedelta | None:
        return timezone.now() - self.oldest_pending_since if self.oldest_pending_since else None

    @property
    def latency_samples(self) -> int:
        return sum(self.latency_counts)

    @property
    def median_latency(self) -> str:
        """The histogram bucket holding the median, e.g. '2–5 s'; '' without samples."""
        total = self.latency_samples
        if not total:
            return ""
        seen = 0
        for index, count in enumerate(self.latency_counts):
            seen += count
            if seen * 2 >= total:
                return latency_range(index)
        return latency_range(len(LATENCY_EDGES))


class Milliseconds(Func):
    """An integer column of milliseconds as a duration (Django has no portable cast for it)."""

    output_field = DurationField()

    def as_sql(self, compiler, connection, **extra_context):
        return super().as_sql(compiler, connection, template="(%(expressions)s * INTERVAL '1 millisecond')")

    def as_sqlite(self, compiler, connection, **extra_context):
        # SQLite keeps durations as integer microseconds.
        return super().as_sql(compiler, connection, template="(%(expressions)s * 1000)")


def in_words(seconds: float) -> str:
    """A wait in plain words, rounded: '1 s', '40 s', '3 min', '2 h'."""
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    return f"{round(seconds / 3600)} h"


def latency_range(index: int) -> str:
    def words(seconds: int) -> str:
        return f"{seconds // 60} min" if seconds >= 60 else f"{seconds} s"

    if index == 0:
        return f"< {words(LATENCY_EDGES[0])}"
    if index == len(LATENCY_EDGES):
        return f"> {words(LATENCY_EDGES[-1])}"
    return f"{words(LATENCY_EDGES[index - 1])} – {words(LATENCY_EDGES[index])}"


def changelist(model: str, **filters) -> str:
    return f"{reverse(f'admin:tickets_{model}_changelist')}?{urlencode(filters)}"


def collect(
    *, accounts: QuerySet[ProviderAccount] | None = None, now: datetime | None = None
) -> list[AccountFigures]:
    """The dashboard's figures for `accounts` (default: every account), in four queries."""
    now = now or timezone.now()
    current_hour = now.replace(minute=0, second=0, microsecond=0)
    first_hour = current_hour - timedelta(hours=WINDOW_HOURS - 1)
    figures = {
        account.pk: AccountFigures(account=account, paused=pause_state(account))
        for account in (ProviderAccount.objects.all() if accounts is None else accounts).order_by("name")
    }

    waiting = Q(sync_state__in=[SyncState.PENDING, SyncState.SENDING])
    for row in (
        Ticket.objects.filter(account_id__in=list(figures))
        .values("account_id")
        .annotate(
            pending=Count("id", filter=Q(sync_state=SyncState.PENDING)),
            sending=Count("id", filter=Q(sync_state=SyncState.SENDING)),
            needs_attention=Count("id", filter=Q(sync_state=SyncState.NEEDS_ATTENTION)),
            failed=Count("id", filter=Q(sync_state=SyncState.FAILED)),
            local_only=Count("id", filter=Q(sync_state=SyncState.LOCAL_ONLY)),
            oldest=Min("updated_at", filter=waiting),
        )
        .order_by()
    ):
        item = figures.get(row["account_id"])
        if item:
            item.pending, item.sending = row["pending"], row["sending"]
            item.needs_attention, item.failed = row["needs_attention"], row["failed"]
            item.local_only = row["local_only"]
            item.oldest_pending_since = row["oldest"]

    for item in figures.values():
        item.hours = [HourBar(start=first_hour + timedelta(hours=h)) for h in range(WINDOW_HOURS)]
    recent = SyncAttempt.objects.filter(account_id__in=list(figures), started_at__gte=first_hour).exclude(
        operation=SyncAttempt.Operation.TEST
    )
    for row in (
        recent.annotate(hour=TruncHour("started_at"))
        .values("account_id", "hour")
        .annotate(
            successes=Count("id", filter=Q(outcome=SyncAttempt.Outcome.SUCCESS)),
            failures=Count("id", filter=Q(outcome__in=FAILED_OUTCOMES)),
        )
        .order_by()
    ):
        item = figures.get(row["account_id"])
        index = int((row["hour"] - first_hour).total_seconds() // 3600)
        if item and 0 <= index < WINDOW_HOURS:
            item.hours[index].successes += row["successes"]
            item.hours[index].failures += row["failures"]

    latency = ExpressionWrapper(
        F("started_at") - F("ticket__created_at") + Milliseconds("duration_ms"),
        output_field=DurationField(),
    )
    bucket = Case(
        *[When(latency__lt=timedelta(seconds=edge), then=Value(i)) for i, edge in enumerate(LATENCY_EDGES)],
        default=Value(len(LATENCY_EDGES)),
        output_field=IntegerField(),
    )
    created = recent.filter(
        operation=SyncAttempt.Operation.CREATE, outcome=SyncAttempt.Outcome.SUCCESS, ticket__isnull=False
    )
    for row in (
        created.annotate(latency=latency, bucket=bucket)
        .values("account_id", "bucket")
        .annotate(n=Count("id"))
        .order_by()
    ):
        item = figures.get(row["account_id"])
        if item:
            item.latency_counts[row["bucket"]] += row["n"]

    for item in figures.values():
        item.throttled_for = rate_wait(item.account, now=now)
        if item.pending and not item.paused:
            item.drains_in = drain_seconds(item.account, item.pending, now=now)
        finish(item)
    return list(figures.values())


def finish(item: AccountFigures) -> None:
    """Totals, bar heights and the links behind every figure."""
    account_id = item.account.pk
    busiest = max((bar.successes + bar.failures for bar in item.hours), default=0) or 1
    failed_outcomes = ",".join(FAILED_OUTCOMES)
    for bar in item.hours:
        item.successes += bar.successes
        item.failures += bar.failures
        bar.success_height = round(100 * bar.successes / busiest)
        bar.failure_height = round(100 * bar.failures / busiest)
        span = {
            "started_at__gte": bar.start.isoformat(),
            "started_at__lt": (bar.start + timedelta(hours=1)).isoformat(),
        }
        bar.successes_url = changelist(
            "syncattempt", account__id__exact=account_id, outcome__exact="success", **span
        )
        bar.failures_url = changelist(
            "syncattempt", account__id__exact=account_id, outcome__in=failed_outcomes, **span
        )
    since = item.hours[0].start.isoformat()
    item.links = {
        "queue": changelist("ticket", account__id__exact=account_id, sync_state__in="pending,sending"),
        "pending": changelist("ticket", account__id__exact=account_id, sync_state__exact="pending"),
        "needs_attention": changelist(
            "ticket", account__id__exact=account_id, sync_state__exact="needs_attention"
        ),
        "failed": changelist("ticket", account__id__exact=account_id, sync_state__exact="failed"),
        "local_only": changelist("ticket", account__id__exact=account_id, sync_state__exact="local_only"),
        "successes": changelist(
            "syncattempt", account__id__exact=account_id, outcome__exact="success", started_at__gte=since
        ),
        "failures": changelist(
            "syncattempt", account__id__exact=account_id, outcome__in=failed_outcomes, started_at__gte=since
        ),
        "creates": changelist(
            "syncattempt",
            account__id__exact=account_id,
            operation__exact="create",
            outcome__exact="success",
            started_at__gte=since,
        ),
    }


def sync_dashboard_view(request):
    """Support staff and provider admins; only provider admins get links to account settings."""
    if not can_see_dashboard(request.user):
        raise PermissionDenied
    accounts = dashboard_accounts(request.user)
    context = {
        **admin.site.each_context(request),
        "title": "Sync dashboard",
        "accounts": collect(accounts=accounts),
        "account_problems": current_problems(watched_accounts(request.user)),
        "window_hours": WINDOW_HOURS,
        "can_manage_accounts": can_manage_accounts(request.user),
    }
    return TemplateResponse(request, "admin/dashboard.html", context)


sync_dashboard = admin.site.admin_view(sync_dashboard_view)
