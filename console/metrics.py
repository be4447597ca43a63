"""`/metrics`: Prometheus metrics read from the database at scrape time.

The database is the one place every web process, worker and beat writes to, so figures
computed from it at scrape time are the same whichever process answers the scrape; counters
kept in process memory would each see only their own process (prefork workers, several
machines) and start again from zero at every restart. Every figure is one grouped query
(six in all, whatever the number of tickets or calls); nothing is read row by row.

Call outcomes and latencies are counted over the last `METRICS_WINDOW` seconds (300) of
`SyncAttempt` rows, as gauges: retention deletes old rows, so a count of all rows would not
only ever grow as a Prometheus counter must. The latency histogram is therefore a *gauge
histogram* (exposed as type histogram): `histogram_quantile` reads its buckets directly,
without `rate()`.

Labels are account names and provider kinds, never a credential or a URL. The endpoint is
off (404) until `METRICS_TOKEN` is set, and then wants `Authorization: Bearer <token>`.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from datetime import timedelta

from django.conf import settings
from django.db.models import Count, Min, Q, Sum
from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeHistogramMetricFamily, GaugeMetricFamily, Metric

from providers.models import ProviderAccount
from tickets.limits import breaker_threshold
from tickets.models import BulkJob, SyncAttempt, SyncState, Ticket

PREFIX = "ticket_console"
#: The sync states a ticket waits in: for a worker, or for a person.
QUEUE_STATES = (SyncState.PENDING, SyncState.SENDING, SyncState.NEEDS_ATTENTION, SyncState.FAILED)
WAITING_STATES = (SyncState.PENDING, SyncState.SENDING)
#: Calls that push the console's changes to a provider (pull's fetches and admin tests are not).
PUSH_OPERATIONS = (SyncAttempt.Operation.CREATE, SyncAttempt.Operation.UPDATE, SyncAttempt.Operation.REPLY)
#: Upper bounds of the push latency buckets, in seconds.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class ConsoleCollector:
    """Queue, breaker, call and bulk-job figures, collected afresh at every scrape."""

    def collect(self) -> Iterator[Metric]:
        now = timezone.now()
        accounts = list(
            ProviderAccount.objects.only(
                "name", "kind", "enabled", "settings", "paused_until", "consecutive_failures"
            ).order_by("name")
        )
        yield from self.queue_metrics(accounts, now=now)
        yield from self.breaker_metrics(accounts, now=now)
        yield from self.call_metrics(now=now)
        yield from self.bulk_job_metrics()

    def queue_metrics(self, accounts: list[ProviderAccount], *, now) -> Iterator[Metric]:
        depth = GaugeMetricFamily(
            f"{PREFIX}_sync_queue_tickets",
            "Tickets per account in each sync state that waits (for a worker, or for a person).",
            labels=["account", "provider", "sync_state"],
        )
        counts = {
            (row["account_id"], row["sync_state"]): row["n"]
            for row in Ticket.objects.filter(sync_state__in=QUEUE_STATES)
            .values("account_id", "sync_state")
            .annotate(n=Count("id"))
            .order_by()
        }
        oldest_age = GaugeMetricFamily(
            f"{PREFIX}_oldest_waiting_ticket_age_seconds",
            "Seconds since the last save of the account's oldest pending or sending ticket "
            "(0 when none waits).",
            labels=["account", "provider"],
        )
        oldest = dict(
            Ticket.objects.filter(sync_state__in=WAITING_STATES)
            .values("account_id")
            .annotate(oldest=Min("updated_at"))
            .values_list("account_id", "oldest")
            .order_by()
        )
        for account in accounts:
            # Every account has every series, zeros included, so alerts and graphs never
            # see a series vanish when a queue empties.
            for state in QUEUE_STATES:
                count = counts.get((account.pk, state), 0)
                depth.add_metric([account.name, account.kind, state.value], count)
            since = oldest.get(account.pk)
            oldest_age.add_metric(
                [account.name, account.kind], max(0.0, (now - since).total_seconds()) if since else 0.0
            )
        yield depth
        yield oldest_age

    def breaker_metrics(self, accounts: list[ProviderAccount], *, now) -> Iterator[Metric]:
        labels = ["account", "provider"]
        paused = GaugeMetricFamily(
            f"{PREFIX}_account_paused",
            "1 while nothing is sent to the account: its breaker is open, or it was paused by hand.",
            labels=labels,
        )
        failures = GaugeMetricFamily(
            f"{PREFIX}_account_consecutive_failures",
            "Consecutive failed calls that count towards the account's circuit breaker.",
            labels=labels,
        )
        threshold = GaugeMetricFamily(
            f"{PREFIX}_account_breaker_threshold",
            "Consecutive failures at which the account's breaker opens.",
            labels=labels,
        )
        enabled = GaugeMetricFamily(
            f"{PREFIX}_account_enabled", "1 when the account is enabled.", labels=labels
        )
        for account in accounts:
            values = [account.name, account.kind]
            paused.add_metric(values, 1 if account.paused_until and account.paused_until > now else 0)
            failures.add_metric(values, account.consecutive_failures)
            threshold.add_metric(values, breaker_threshold(account))
            enabled.add_metric(values, 1 if account.enabled else 0)
        yield from (paused, failures, threshold, enabled)

    def call_metrics(self, *, now) -> Iterator[Metric]:
        window = settings.METRICS_WINDOW
        recent = SyncAttempt.objects.filter(started_at__gte=now - timedelta(seconds=window))
        calls = GaugeMetricFamily(
            f"{PREFIX}_sync_calls_recent",
            f"Calls to providers started in the last {window:g} s, by provider, operation and outcome "
            "(success, failed, retry: a passing fault, unknown: the answer was lost).",
            labels=["provider", "operation", "outcome"],
        )
        for row in (
            recent.exclude(operation=SyncAttempt.Operation.TEST)
            .values("account__kind", "operation", "outcome")
            .annotate(n=Count("id"))
            .order_by("account__kind", "operation", "outcome")
        ):
            calls.add_metric([row["account__kind"], row["operation"], row["outcome"]], row["n"])
        yield calls

        latency = GaugeHistogramMetricFamily(
            f"{PREFIX}_push_duration_seconds",
            f"Duration of push calls (create, update, reply) started in the last {window:g} s.",
            labels=["provider"],
        )
        bucket_counts = {
            f"le_{index}": Count("id", filter=Q(duration_ms__lte=bound * 1000))
            for index, bound in enumerate(LATENCY_BUCKETS)
        }
        for row in (
            recent.filter(operation__in=PUSH_OPERATIONS)
            .values("account__kind")
            .annotate(n=Count("id"), total_ms=Sum("duration_ms"), **bucket_counts)
            .order_by("account__kind")
        ):
            buckets = [(str(bound), row[f"le_{index}"]) for index, bound in enumerate(LATENCY_BUCKETS)]
            latency.add_metric(
                [row["account__kind"]], [*buckets, ("+Inf", row["n"])], (row["total_ms"] or 0) / 1000
            )
        yield latency

    def bulk_job_metrics(self) -> Iterator[Metric]:
        labels = ["job", "action"]
        total = GaugeMetricFamily(
            f"{PREFIX}_bulk_job_tickets", "Tickets a running bulk job works through.", labels=labels
        )
        processed = GaugeMetricFamily(
            f"{PREFIX}_bulk_job_processed_tickets", "Tickets a running bulk job has handled.", labels=labels
        )
        running = BulkJob.objects.filter(state=BulkJob.State.RUNNING).order_by("pk")
        for pk, action, job_total, job_processed in running.values_list("pk", "action", "total", "processed"):
            total.add_metric([str(pk), action], job_total)
            processed.add_metric([str(pk), action], job_processed)
        yield total
        yield processed


def authorized(request: HttpRequest, *, token: str) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    # compare_digest: the time taken does not tell how much of a guess was right.
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    token = settings.METRICS_TOKEN
    if not token:
        raise Http404("metrics are off")
    if not authorized(request, token=token):
        response = HttpResponse("a bearer token is required", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    registry = CollectorRegistry()
    registry.register(ConsoleCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
