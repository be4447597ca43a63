"""The audit trail of remote calls: the exchanges of one push or fetch, as SyncAttempt rows."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.utils import timezone

from providers.http import SIGN_IN, Exchange
from tickets.models import SyncAttempt, Ticket


@dataclass
class AttemptLog:
    """Collects the provider's exchanges of one call, written as SyncAttempt rows at the end."""

    exchanges: list[Exchange] = field(default_factory=list)

    def add(self, exchange: Exchange) -> None:
        self.exchanges.append(exchange)

    def rows(
        self,
        *,
        account_id: int,
        operation: str,
        outcome: str,
        message: str,
        ticket: Ticket | None = None,
    ) -> list[SyncAttempt]:
        common = {
            "ticket": ticket,
            "account_id": account_id,
            "operation": operation,
            "revision": ticket.revision if ticket else None,
        }
        if not self.exchanges:  # refused before anything was sent (configuration, keys)
            return [SyncAttempt(**common, started_at=timezone.now(), outcome=outcome, error=message)]
        rows = []
        for index, exchange in enumerate(self.exchanges):
            last = index == len(self.exchanges) - 1
            ok = exchange.status is not None and exchange.status < 300 and not exchange.error
            # A token call is recorded as signing in, whatever operation needed it — except in a
            # connection test, where signing in is part of what is being tested.
            signing_in = (
                {"operation": SyncAttempt.Operation.SIGN_IN}
                if exchange.purpose == SIGN_IN and operation != SyncAttempt.Operation.TEST
                else {}
            )
            rows.append(
                SyncAttempt(
                    **{**common, **signing_in},
                    started_at=exchange.started_at,
                    duration_ms=exchange.duration_ms,
                    outcome=outcome if last else ("success" if ok else "failed"),
                    http_status=exchange.status,
                    request_method=exchange.method,
                    request_url=exchange.url[:1000],
                    request_headers=exchange.request_headers,
                    request_body=exchange.request_body,
                    response_body=exchange.response_body,
                    error=message if last else exchange.error,
                )
            )
        return rows

    def save(self, *, ticket: Ticket, operation: str, outcome: str, message: str) -> None:
        SyncAttempt.objects.bulk_create(
            self.rows(
                account_id=ticket.account_id,
                operation=operation,
                outcome=outcome,
                message=message,
                ticket=ticket,
            )
        )
